//! The commands of zab-check: what a snapshot is and where its parent is
//! mounted, and the temporary read-only views of a snapshot's content (a
//! mount of a filesystem snapshot, a clone of a volume snapshot).

/// The argv of one `zfs get` that tells a snapshot's parent type and mount
/// state (`type`, `mounted`, `mountpoint`) and that the snapshot exists
/// (its own `type` row): `zfs` fails when it does not.
pub fn snapshot_props_args(snapshot: &str) -> Vec<String> {
    let dataset = snapshot.split('@').next().unwrap_or(snapshot);
    [
        "zfs",
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value,source",
        "type,mounted,mountpoint",
        dataset,
        snapshot,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The argv that mounts a filesystem snapshot read-only at `dir`.
pub fn mount_args(snapshot: &str, dir: &str) -> Vec<String> {
    ["mount", "-t", "zfs", "-o", "ro", snapshot, dir]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The argv that unmounts what [`mount_args`] mounted.
pub fn umount_args(dir: &str) -> Vec<String> {
    vec!["umount".into(), dir.into()]
}

/// The name of the temporary clone of `snapshot` (a volume's): beside the
/// volume, named after it and the process, so two runs never share one.
pub fn clone_name(snapshot: &str, pid: u32) -> String {
    let volume = snapshot.split('@').next().unwrap_or(snapshot);
    format!("{volume}_zab-check-{pid}")
}

/// The argv that clones a volume snapshot read-only, with a device node
/// (`volmode=dev`, whatever the pool's default) to read it through.
pub fn clone_args(snapshot: &str, clone: &str) -> Vec<String> {
    [
        "zfs",
        "clone",
        "-o",
        "readonly=on",
        "-o",
        "volmode=dev",
        snapshot,
        clone,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The device node of a volume (or of its clone) on Linux.
pub fn zvol_device(volume: &str) -> String {
    format!("/dev/zvol/{volume}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_the_parent_and_the_snapshot_in_one_get() {
        assert_eq!(
            snapshot_props_args("tank/a b@s1").join(" "),
            "zfs get -H -p -o name,property,value,source type,mounted,mountpoint tank/a b tank/a b@s1"
        );
    }

    #[test]
    fn clone_is_read_only_with_a_device_beside_the_volume() {
        let name = clone_name("tank/vol@s1", 42);
        assert_eq!(name, "tank/vol_zab-check-42");
        assert_eq!(
            clone_args("tank/vol@s1", &name).join(" "),
            "zfs clone -o readonly=on -o volmode=dev tank/vol@s1 tank/vol_zab-check-42"
        );
        assert_eq!(zvol_device(&name), "/dev/zvol/tank/vol_zab-check-42");
    }

    #[test]
    fn mounts_read_only() {
        assert_eq!(
            mount_args("tank/a@s1", "/run/zab/check-1").join(" "),
            "mount -t zfs -o ro tank/a@s1 /run/zab/check-1"
        );
        assert_eq!(
            umount_args("/run/zab/check-1"),
            ["umount", "/run/zab/check-1"]
        );
    }
}
