//! The argv of the zfs verbs of replication (zab-send): send and receive,
//! resume tokens, rollback, parents, holds with `-r`, mounts: builders,
//! byte for byte the commands zab-send runs, and the reading of a batched
//! hold's or release's stderr ([`batch_failures`]). Which flags go in is
//! decided by the tool (zab-send's flags.rs), never here.

use std::collections::BTreeSet;

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

/// Which of `names` a failed `zfs hold TAG NAME…` (`hold`) or `zfs
/// release TAG NAME…` did not do, from its stderr. zfs tries each name on
/// its own, does the others, and says for each failure (recorded from
/// OpenZFS 2.3.2) `cannot hold snapshot 'NAME': …` or `cannot release
/// hold from snapshot 'NAME': …`, or `cannot open 'DATASET': …` when the
/// dataset itself is missing (every name on it failed). "tag already
/// exists on this dataset" is our hold being there (placed by a `zfs
/// hold -r` above it), and "no such tag on this dataset" our hold being
/// gone already: no failure. None when a line says something else, names
/// nothing asked for, or there is no line: the caller cannot tell.
pub fn batch_failures<'a>(
    hold: bool,
    stderr: &str,
    names: &'a [String],
) -> Option<Vec<&'a String>> {
    let (prefix, fine) = match hold {
        true => ("cannot hold snapshot '", "tag already exists"),
        false => ("cannot release hold from snapshot '", "no such tag"),
    };
    let mut failed: BTreeSet<&str> = BTreeSet::new();
    let mut lines = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    lines.peek()?;
    for line in lines {
        if let Some((name, why)) = line.strip_prefix(prefix).and_then(|r| r.split_once("': ")) {
            if !names.iter().any(|n| n == name) {
                return None;
            }
            if !why.starts_with(fine) {
                failed.insert(name);
            }
            continue;
        }
        let ds = line.strip_prefix("cannot open '")?.split_once("': ")?.0;
        let on_it: Vec<&String> = names
            .iter()
            .filter(|n| n.split_once('@').is_some_and(|(d, _)| d == ds))
            .collect();
        if on_it.is_empty() {
            return None;
        }
        failed.extend(on_it.iter().map(|n| n.as_str()));
    }
    Some(
        names
            .iter()
            .filter(|n| failed.contains(n.as_str()))
            .collect(),
    )
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

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn our_tag_already_there_is_no_failure() {
        let names = v(&["t/a@n", "t/b@n", "t/c@n"]);
        let f = |err: &str| batch_failures(true, err, &names);
        // Recorded from OpenZFS 2.3.2: zfs holds the others and exits 1.
        let err = "cannot hold snapshot 't/b@n': tag already exists on this dataset\n";
        assert_eq!(f(err), Some(vec![]));
        let err = "cannot hold snapshot 't/b@n': tag already exists on this dataset\n\
                   cannot hold snapshot 't/c@n': dataset does not exist\n";
        assert_eq!(f(err), Some(vec![&names[2]]));
        // Whatever cannot be told apart is None: the caller asks one by one.
        assert_eq!(f(""), None);
        assert_eq!(f("out of memory\n"), None);
        let err = "cannot hold snapshot 'other@n': tag already exists on this dataset\n";
        assert_eq!(f(err), None);
    }

    #[test]
    fn a_missing_dataset_fails_only_its_names() {
        let names = v(&["t/a@n", "t/b@n", "t/b/c@n", "t/bc@n"]);
        // Recorded from OpenZFS 2.3.2 (`zfs hold tg x@s nope@s y@s`: x and
        // y held, exit 1), the same for zfs release.
        let err = "cannot open 't/b': dataset does not exist\n";
        assert_eq!(batch_failures(true, err, &names), Some(vec![&names[1]]));
        assert_eq!(batch_failures(false, err, &names), Some(vec![&names[1]]));
        let err = "cannot open 'elsewhere': dataset does not exist\n";
        assert_eq!(batch_failures(true, err, &names), None);
    }

    #[test]
    fn release_failures_are_read_as_zfs_says_them() {
        let names = v(&["t/a@n", "t/b@n", "t/c@n"]);
        // Recorded from OpenZFS 2.3.2: `zfs release tg x@s x@nope nope@s y@s`.
        let err = "cannot release hold from snapshot 't/a@n': dataset does not exist\n\
                   cannot open 't/c': dataset does not exist\n";
        assert_eq!(
            batch_failures(false, err, &names),
            Some(vec![&names[0], &names[2]])
        );
        // Our hold gone already is no failure; a hold line is not read as a
        // release's.
        let err = "cannot release hold from snapshot 't/b@n': no such tag on this dataset\n";
        assert_eq!(batch_failures(false, err, &names), Some(vec![]));
        let err = "cannot hold snapshot 't/b@n': tag already exists on this dataset\n";
        assert_eq!(batch_failures(false, err, &names), None);
    }
}
