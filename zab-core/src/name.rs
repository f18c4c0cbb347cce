//! ZFS's name grammar, checked before a name reaches a command line.
//!
//! The rules are OpenZFS's (`module/zcommon/zfs_namecheck.c`): a dataset
//! name is components separated by `/`, each made of letters, digits and
//! `_ - . :` and space, none empty, none `.` or `..`; the first component
//! (the pool) starts with a letter; the whole name is shorter than 256
//! bytes. A snapshot name is a dataset name, `@`, and one more component.
//! A name that passes cannot be read by `zfs` as an option (`-r`), a
//! snapshot (`tank@x`), a bookmark (`tank#x`) or a path (`/tank`).
//!
//! [`target_path`] is the one check of a TARGET-PATH argument, for every
//! tool that takes one.

use crate::error::Error;
use crate::record::Dataset;
use crate::zfs::is_under;

/// ZFS_MAX_DATASET_NAME_LEN: a name, with its terminating NUL, fits in 256
/// bytes.
pub const MAX_NAME_LEN: usize = 255;

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' ')
}

/// One component (between `/`, or after `@`).
fn validate_component(part: &str, what: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("empty {what}"));
    }
    if part == "." || part == ".." {
        return Err(format!("{what} {part:?} is not allowed"));
    }
    if let Some(c) = part.chars().find(|&c| !valid_char(c)) {
        return Err(format!(
            "invalid character {c:?} (allowed: letters, digits, '_', '-', '.', ':' and space)"
        ));
    }
    Ok(())
}

/// Checks that `name` is a filesystem or volume name as ZFS accepts it
/// (`tank`, `tank/backup/host1`). The error says why, in a few words.
pub fn validate_dataset(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} bytes"));
    }
    if name.contains('@') {
        return Err("'@' names a snapshot, not a dataset".into());
    }
    if name.contains('#') {
        return Err("'#' names a bookmark, not a dataset".into());
    }
    if name.starts_with('/') {
        return Err("leading '/': give a dataset name, not a mount point".into());
    }
    if name.ends_with('/') {
        return Err("trailing '/'".into());
    }
    for part in name.split('/') {
        validate_component(part, "component")?;
    }
    let pool = name.split('/').next().unwrap_or(name);
    if !pool.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("the pool name {pool:?} must start with a letter"));
    }
    Ok(())
}

/// Checks that `name` is a full snapshot name (`tank/a@offsite1-20261122`).
pub fn validate_snapshot(name: &str) -> Result<(), String> {
    let (dataset, snap) = name
        .split_once('@')
        .ok_or_else(|| "no '@': not a snapshot name".to_string())?;
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} bytes"));
    }
    validate_dataset(dataset)?;
    if snap.contains('@') {
        return Err("more than one '@'".into());
    }
    if snap.contains('/') {
        return Err("'/' after '@'".into());
    }
    if snap.contains('#') {
        return Err("'#' names a bookmark, not a snapshot".into());
    }
    validate_component(snap, "snapshot name")
}

/// The check of a TARGET-PATH argument, the same in every tool: a dataset
/// name, or a usage error (exit 2) that says which and why.
pub fn target_path(path: &str) -> Result<(), Error> {
    validate_dataset(path).map_err(|why| {
        Error::Usage(format!(
            "invalid TARGET-PATH {path:?}: {why} (give a dataset name such as backup/host1)"
        ))
    })
}

/// Refuses a TARGET-PATH on `target_host` (None: this machine) that is a
/// selected source dataset on the same host (both local, or the same ssh
/// destination), above one or below one. Backups there would mix with
/// their sources, and thinning the target tree would take sources for
/// backups whose source is gone.
pub fn target_overlap(
    path: &str,
    target_host: Option<&str>,
    datasets: &[Dataset],
) -> Result<(), Error> {
    let sources = datasets
        .iter()
        .filter(|d| d.selected && d.host.as_deref() == target_host);
    for src in sources.map(|d| d.name.as_str()) {
        let how = if src == path {
            "is"
        } else if is_under(src, path) {
            "is above"
        } else if is_under(path, src) {
            "is below"
        } else {
            continue;
        };
        return Err(Error::Usage(format!(
            "TARGET-PATH {path} {how} the selected source dataset {src} on the same host: \
             give a target outside the datasets backed up"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_follow_the_zfs_grammar() {
        for good in [
            "tank",
            "tank/backup/host1",
            "a",
            "Tank-1/x_y.z:w",
            "tank/with space",
            "tank/-dash",
            "tank/.hidden",
        ] {
            assert_eq!(validate_dataset(good), Ok(()), "{good}");
        }
        let why = |n: &str| validate_dataset(n).unwrap_err();
        assert!(
            why("-r").contains("must start with a letter"),
            "{}",
            why("-r")
        );
        assert!(why("tank@x").contains("snapshot"));
        assert!(why("tank#x").contains("bookmark"));
        assert!(why("a//b").contains("empty component"));
        assert!(why("tank/").contains("trailing"));
        assert!(why("/tank").contains("leading"));
        assert!(why("").contains("empty"));
        assert!(why(" tank").contains("must start with a letter"));
        assert!(why("1tank").contains("must start with a letter"));
        assert!(why("tank/a/../b").contains("not allowed"));
        assert!(why("tank/./b").contains("not allowed"));
        assert!(why("tank/a\tb").contains("invalid character"));
        assert!(why("tank/a\nb").contains("invalid character"));
        assert!(why("tank/ä").contains("invalid character"));
        assert!(why("tank/a*").contains("invalid character"));
        let long = format!("tank/{}", "x".repeat(MAX_NAME_LEN - 5));
        assert_eq!(long.len(), MAX_NAME_LEN);
        assert_eq!(validate_dataset(&long), Ok(()));
        assert!(why(&format!("{long}x")).contains("longer than 255"));
    }

    #[test]
    fn snapshot_names_follow_the_zfs_grammar() {
        assert_eq!(validate_snapshot("tank/a@off-20261122101500"), Ok(()));
        assert_eq!(validate_snapshot("tank/a b@s p"), Ok(()));
        let why = |n: &str| validate_snapshot(n).unwrap_err();
        assert!(why("tank/a").contains("no '@'"));
        assert!(why("tank/a@").contains("empty snapshot name"));
        assert!(why("@s").contains("empty"));
        assert!(why("tank@a@b").contains("more than one"));
        assert!(why("tank@a/b").contains("'/' after '@'"));
        assert!(why("tank@a#b").contains("bookmark"));
        assert!(why("-r@s").contains("must start with a letter"));
        assert_eq!(validate_snapshot("tank@-"), Ok(()));
    }

    #[test]
    fn target_path_errors_are_usage_errors_on_one_line() {
        assert!(target_path("backup/host1").is_ok());
        let e = target_path("-r").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert_eq!(
            e.to_string(),
            "invalid TARGET-PATH \"-r\": the pool name \"-r\" must start with a letter \
             (give a dataset name such as backup/host1)"
        );
        let e = target_path("tank/a\nb").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    fn record(host: Option<&str>, name: &str, selected: bool) -> Dataset {
        serde_json::from_value(serde_json::json!({
            "backup": "b", "host": host, "name": name, "type": "filesystem",
            "selected": selected, "reason": if selected { "selected" } else { "unset" },
            "value": null, "source": "local", "inherited_from": null,
            "createtxg": 1, "written": 0,
        }))
        .unwrap()
    }

    #[test]
    fn a_target_path_may_not_overlap_a_source_on_the_same_host() {
        let src = [
            record(None, "tank/a", true),
            record(None, "tank/b/c", true),
            record(None, "tank/off", false),
            record(Some("root@nas"), "nas/a", true),
        ];
        let ok = |t: &str, host: Option<&str>| target_overlap(t, host, &src).is_ok();
        assert!(ok("backup/host1", None));
        assert!(ok("tank/backup", None));
        // A string prefix is not a path prefix.
        assert!(ok("tank/ab", None) && ok("tank/b/cc", None));
        // Not selected: not a source.
        assert!(ok("tank/off/x", None));
        // Another host: no overlap, whatever the names.
        assert!(ok("tank", Some("root@nas")) && ok("nas", None));
        assert!(ok("nas/b", Some("root@nas")) && ok("x", Some("root@other")));
        let e = |t: &str, host: Option<&str>| target_overlap(t, host, &src).unwrap_err();
        assert!(matches!(e("tank", None), Error::Usage(_)));
        assert_eq!(
            e("tank", None).to_string(),
            "TARGET-PATH tank is above the selected source dataset tank/a on the same host: \
             give a target outside the datasets backed up"
        );
        let says = |t: &str, host: Option<&str>, what: &str| {
            let m = e(t, host).to_string();
            assert!(m.contains(what), "{m}");
        };
        says(
            "tank/b",
            None,
            "is above the selected source dataset tank/b/c",
        );
        says(
            "tank/a",
            None,
            "tank/a is the selected source dataset tank/a",
        );
        says(
            "tank/a/backup",
            None,
            "is below the selected source dataset tank/a",
        );
        says("tank/b/c/d/e", None, "is below");
        says(
            "nas",
            Some("root@nas"),
            "is above the selected source dataset nas/a",
        );
    }
}
