//! The argv of the zfs verbs of replication (zab-send): send and receive,
//! resume tokens, rollback, parents, holds with `-r`, mounts. Builders
//! only, byte for byte the commands zab-send runs; which flags go in is
//! decided by the tool (zab-send's flags.rs), never here.

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// `zfs send FLAGS… -P [-i|-I FROM] SNAPSHOT`: `flags` in the order given,
/// `from` the incremental base (full name) and whether it is a `-I` stream.
pub fn send_args(flags: &[&str], from: Option<(&str, bool)>, snapshot: &str) -> Vec<String> {
    let mut v = argv(&["zfs", "send"]);
    v.extend(flags.iter().map(|f| f.to_string()));
    v.push("-P".into());
    if let Some((base, many)) = from {
        v.push(if many { "-I" } else { "-i" }.into());
        v.push(base.into());
    }
    v.push(snapshot.into());
    v
}

/// `zfs send -P -t TOKEN`: resumes an interrupted receive.
pub fn send_resume_args(token: &str) -> Vec<String> {
    argv(&["zfs", "send", "-P", "-t", token])
}

/// `zfs send -nv -t TOKEN`: the dry run that says where a token leads.
pub fn send_resume_dry_args(token: &str) -> Vec<String> {
    argv(&["zfs", "send", "-nv", "-t", token])
}

/// `zfs recv OPTIONS… DATASET`.
pub fn recv_args(options: &[String], dataset: &str) -> Vec<String> {
    let mut v = argv(&["zfs", "recv"]);
    v.extend(options.iter().cloned());
    v.push(dataset.into());
    v
}

/// `zfs recv -A DATASET`: aborts a pending resume token.
pub fn recv_abort_args(dataset: &str) -> Vec<String> {
    argv(&["zfs", "recv", "-A", dataset])
}

/// `zfs rollback SNAPSHOT` (full name).
pub fn rollback_args(snapshot: &str) -> Vec<String> {
    argv(&["zfs", "rollback", snapshot])
}

/// `zfs list -H -o name NAME`: succeeds when NAME exists.
pub fn exists_args(name: &str) -> Vec<String> {
    argv(&["zfs", "list", "-H", "-o", "name", name])
}

/// `zfs create -o canmount=off DATASET`: a parent that mounts nothing.
pub fn create_parent_args(dataset: &str) -> Vec<String> {
    argv(&["zfs", "create", "-o", "canmount=off", dataset])
}

/// `zfs hold TAG SNAPSHOT…` (full names).
pub fn hold_args(tag: &str, snapshots: &[String]) -> Vec<String> {
    let mut v = argv(&["zfs", "hold", tag]);
    v.extend(snapshots.iter().cloned());
    v
}

/// `zfs hold -r TAG SNAPSHOT`: the snapshot and every descendant's of
/// the same name.
pub fn hold_recursive_args(tag: &str, snapshot: &str) -> Vec<String> {
    argv(&["zfs", "hold", "-r", tag, snapshot])
}

/// `zfs release -r TAG SNAPSHOT`.
pub fn release_recursive_args(tag: &str, snapshot: &str) -> Vec<String> {
    argv(&["zfs", "release", "-r", tag, snapshot])
}

/// `zfs mount DATASET`.
pub fn mount_args(dataset: &str) -> Vec<String> {
    argv(&["zfs", "mount", dataset])
}

/// `zfs mount -R DATASET`: it and every filesystem below it.
pub fn mount_recursive_args(dataset: &str) -> Vec<String> {
    argv(&["zfs", "mount", "-R", dataset])
}

/// `zfs unmount DATASET`.
pub fn unmount_args(dataset: &str) -> Vec<String> {
    argv(&["zfs", "unmount", dataset])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(v: Vec<String>) -> String {
        v.join(" ")
    }

    #[test]
    fn send_and_receive() {
        assert_eq!(
            line(send_args(
                &["-L", "-e", "-p"],
                Some(("p/a@1", true)),
                "p/a@3"
            )),
            "zfs send -L -e -p -P -I p/a@1 p/a@3"
        );
        assert_eq!(
            line(send_args(&["-w"], Some(("p/a@1", false)), "p/a@2")),
            "zfs send -w -P -i p/a@1 p/a@2"
        );
        assert_eq!(line(send_args(&[], None, "p/a@1")), "zfs send -P p/a@1");
        assert_eq!(line(send_resume_args("1-ab")), "zfs send -P -t 1-ab");
        assert_eq!(line(send_resume_dry_args("1-ab")), "zfs send -nv -t 1-ab");
        let o: Vec<String> = ["-u", "-x", "quota", "-s"].map(String::from).to_vec();
        assert_eq!(line(recv_args(&o, "t/a")), "zfs recv -u -x quota -s t/a");
        assert_eq!(line(recv_abort_args("t/a")), "zfs recv -A t/a");
    }

    #[test]
    fn target_verbs() {
        assert_eq!(line(rollback_args("t/a@s")), "zfs rollback t/a@s");
        assert_eq!(line(exists_args("t/a@s")), "zfs list -H -o name t/a@s");
        assert_eq!(
            line(create_parent_args("t/p")),
            "zfs create -o canmount=off t/p"
        );
        assert_eq!(
            line(hold_args("zab_b", &["t/a@s".into(), "t/b@s".into()])),
            "zfs hold zab_b t/a@s t/b@s"
        );
        assert_eq!(
            line(hold_recursive_args("zab_b", "t@s")),
            "zfs hold -r zab_b t@s"
        );
        assert_eq!(
            line(release_recursive_args("zab_b", "t@s")),
            "zfs release -r zab_b t@s"
        );
        assert_eq!(line(mount_args("t/a")), "zfs mount t/a");
        assert_eq!(line(mount_recursive_args("t/a")), "zfs mount -R t/a");
        assert_eq!(line(unmount_args("t/a")), "zfs unmount t/a");
    }
}
