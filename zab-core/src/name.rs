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
        assert!(why("-r").contains("must start with a letter"), "{}", why("-r"));
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
}
