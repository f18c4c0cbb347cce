//! ZFS's name grammar: which dataset and snapshot names `zfs` accepts.
//!
//! Names read from outside (NDJSON records, the command line) go into `zfs`
//! argv. A name that is not one ZFS could have made is refused before it
//! gets there: `-R` must never become a flag, `tank@x` is not a dataset.
//! The rules are OpenZFS's (`module/zcommon/zfs_namecheck.c`,
//! `entity_namecheck` and `pool_namecheck`, and the names `zpool create`
//! reserves):
//!
//! * at most 255 bytes in all (`ZFS_MAX_DATASET_NAME_LEN` is 256 with the NUL);
//! * components separated by `/`, none empty, none `.` or `..`, no leading
//!   or trailing `/`;
//! * components of ASCII letters and digits, `_ - : .`, space, and `%`
//!   (which ZFS uses for its temporary clones);
//! * the first component is the pool: it starts with a letter, has no `%`,
//!   and is not `log` nor begins with `mirror`, `raidz`, `draid` or `spare`;
//! * a snapshot is a dataset, `@`, and one more component of the same
//!   characters (no `/`, `@` or `#`).
//!
//! [`target_path`] is the one check of a TARGET-PATH argument, for every
//! tool that takes one, and [`target_overlap`] refuses a TARGET-PATH that
//! mixes with the sources it backs up. [`target_map`] is the one mapping
//! of source datasets to their target datasets (`--strip-path`), with the
//! one collision check.

use crate::error::Error;
use crate::record::Dataset;
use crate::zfs::{is_under, target_name};

/// The longest name ZFS accepts, in bytes.
pub const MAX_LEN: usize = 255;

/// The longest pool name: room is left for `/$ORIGIN@$ORIGIN`.
const MAX_POOL_LEN: usize = 239;

/// The characters of a name component besides `%` (ZFS's `valid_char`).
fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | ' ')
}

/// Checks one component (between `/`, or after `@`).
fn component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("it has an empty component (two / in a row, or a / or @ at an end)".into());
    }
    if c == "." || c == ".." {
        return Err(format!("it has a component {c:?}"));
    }
    match c.chars().find(|&ch| !valid_char(ch) && ch != '%') {
        Some(ch) => Err(format!(
            "{ch:?} is not allowed (letters, digits, space and _ - : . %)"
        )),
        None => Ok(()),
    }
}

/// Checks the pool name (the first component).
fn pool(p: &str) -> Result<(), String> {
    if !p.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("the pool name {p:?} does not start with a letter"));
    }
    if p.contains('%') {
        return Err(format!("the pool name {p:?} has a %"));
    }
    if p.len() > MAX_POOL_LEN {
        return Err(format!("the pool name is longer than {MAX_POOL_LEN} bytes"));
    }
    let reserved = ["mirror", "raidz", "draid", "spare"];
    if p == "log" || reserved.iter().any(|r| p.starts_with(r)) {
        return Err(format!("the pool name {p:?} is reserved by ZFS"));
    }
    Ok(())
}

/// Checks a dataset's path, whichever the caller found it in.
fn dataset_path(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} bytes"));
    }
    if name.contains('#') {
        return Err("it has a # (a bookmark?)".into());
    }
    for c in name.split('/') {
        component(c)?;
    }
    pool(name.split('/').next().unwrap_or(name))
}

/// Checks a dataset name (filesystem or volume): `tank/data/vm-1`.
pub fn dataset(name: &str) -> Result<(), String> {
    let bad = |why: String| Err(format!("{name:?} is not a dataset name: {why}"));
    if name.contains('@') {
        return bad("it has an @ (a snapshot?)".into());
    }
    dataset_path(name).or_else(bad)
}

/// Checks a snapshot's name after the `@`: `offsite1-20261122101500`.
pub fn snapshot_name(name: &str) -> Result<(), String> {
    let bad = |why: String| Err(format!("{name:?} is not a snapshot name: {why}"));
    if name.contains(['@', '/', '#']) {
        return bad("it has an @, / or #".into());
    }
    if name.len() > MAX_LEN {
        return bad(format!("it is longer than {MAX_LEN} bytes"));
    }
    component(name).or_else(bad)
}

/// Checks a full snapshot name: `tank/data@offsite1-20261122101500`.
pub fn snapshot(name: &str) -> Result<(), String> {
    let bad = |why: String| Err(format!("{name:?} is not a snapshot name: {why}"));
    let Some((ds, snap)) = name.split_once('@') else {
        return bad("it has no @".into());
    };
    if name.len() > MAX_LEN {
        return bad(format!("it is longer than {MAX_LEN} bytes"));
    }
    if snap.contains(['@', '/', '#']) {
        return bad("the part after the @ has an @, / or #".into());
    }
    dataset_path(ds).or_else(bad)?;
    component(snap).or_else(bad)
}

/// The check of a TARGET-PATH argument, the same in every tool: a dataset
/// name, or a usage error (exit 2) that says which and why. A trailing `/`
/// is refused, not stripped, with the name to write instead.
pub fn target_path(path: &str) -> Result<(), Error> {
    let trimmed = path.trim_end_matches('/');
    if trimmed != path && !trimmed.is_empty() {
        return Err(Error::Usage(format!(
            "invalid TARGET-PATH {path:?}: it ends in a / (write {trimmed})"
        )));
    }
    dataset(path).map_err(|why| {
        Error::Usage(format!(
            "invalid TARGET-PATH: {why} (give a dataset name such as backup/host1)"
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

/// Where each of `sources` goes under `target_path` with `--strip-path
/// strip` (see [`target_name`]), source name → target name: the one
/// mapping of zab-send and zab-thin. Stripping more components than a name
/// has, or two sources that land on one target dataset, is a usage error
/// (exit 2), found before anything is done.
pub fn target_map<'a>(
    sources: impl IntoIterator<Item = &'a str>,
    target_path: &str,
    strip: usize,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut map = std::collections::BTreeMap::new();
    let mut seen: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
    for src in sources {
        let t = target_name(src, target_path, strip).map_err(Error::Usage)?;
        // The same name twice (two source hosts) collides too.
        if let Some(other) = seen.insert(t.clone(), src) {
            return Err(Error::Usage(format!(
                "target collision: {other} and {src} both map to {t} (--strip-path {strip})"
            )));
        }
        map.insert(src.to_string(), t);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for ok in [
            "tank",
            "tank/a",
            "rpool/data/vm-1",
            "t/a b",
            "T0/x:y.z_w-v",
            "tank/%recv",
            "logs/a",
            "z",
        ] {
            assert_eq!(dataset(ok), Ok(()), "{ok}");
            assert_eq!(snapshot(&format!("{ok}@offsite1-20261122101500")), Ok(()));
        }
        assert_eq!(snapshot_name("s 1:x.y_z-%"), Ok(()));
        let longest = format!("t/{}", "a".repeat(MAX_LEN - 2));
        assert_eq!(dataset(&longest), Ok(()));
    }

    #[test]
    fn bad_dataset_names() {
        for (bad, why) in [
            ("-R", "does not start with a letter"),
            ("", "empty"),
            ("/tank", "empty component"),
            ("tank/", "empty component"),
            ("tank//a", "empty component"),
            ("tank@x", "snapshot"),
            ("tank#b", "bookmark"),
            ("tank/./a", "component \".\""),
            ("tank/..", "component \"..\""),
            ("tank/a\nb", "'\\n' is not allowed"),
            ("tank/é", "'é' is not allowed"),
            ("tank/a*", "'*' is not allowed"),
            ("1tank", "does not start with a letter"),
            ("mirror", "reserved"),
            ("raidz2/a", "reserved"),
            ("draid", "reserved"),
            ("spare1", "reserved"),
            ("log", "reserved"),
            ("ta%nk", "has a %"),
        ] {
            let err = dataset(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("is not a dataset name"), "{err}");
        }
        let too_long = format!("t/{}", "a".repeat(MAX_LEN - 1));
        assert!(dataset(&too_long).unwrap_err().contains("longer than 255"));
        assert!(dataset(&"p".repeat(240)).unwrap_err().contains("239"));
    }

    #[test]
    fn bad_snapshot_names() {
        for bad in [
            "tank",
            "tank@",
            "@x",
            "tank@a@b",
            "tank@a/b",
            "tank@a#b",
            "tank@.",
            "-R@x",
            "tank/@x",
            "tank@x\u{1b}[2J",
        ] {
            let err = snapshot(bad).unwrap_err();
            assert!(err.contains("is not a snapshot name"), "{bad:?}: {err}");
        }
        let too_long = format!("t@{}", "a".repeat(MAX_LEN - 1));
        assert!(snapshot(&too_long).is_err());
        for bad in ["", "a@b", "a/b", "..", "a\tb"] {
            assert!(snapshot_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn target_path_errors_are_usage_errors_on_one_line() {
        assert!(target_path("backup/host1").is_ok());
        let e = target_path("-r").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert_eq!(
            e.to_string(),
            "invalid TARGET-PATH: \"-r\" is not a dataset name: the pool name \"-r\" \
             does not start with a letter (give a dataset name such as backup/host1)"
        );
        let e = target_path("tank/a\nb").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    /// Found by the property tests: markdown quotes (`` `//` ``) in a
    /// message for the terminal.
    #[test]
    fn an_empty_component_is_said_in_plain_words() {
        assert_eq!(
            dataset("tank//a").unwrap_err(),
            "\"tank//a\" is not a dataset name: it has an empty component \
             (two / in a row, or a / or @ at an end)"
        );
    }

    /// A trailing slash was told to `zfs create backup/host1/`, itself
    /// invalid: it is refused, with the name to write instead.
    #[test]
    fn a_target_path_with_a_trailing_slash_is_refused_plainly() {
        for (path, fixed) in [("backup/host1/", "backup/host1"), ("backup//", "backup")] {
            let e = target_path(path).unwrap_err();
            assert!(matches!(e, Error::Usage(_)));
            assert_eq!(
                e.to_string(),
                format!("invalid TARGET-PATH {path:?}: it ends in a / (write {fixed})")
            );
        }
        assert!(target_path("/").is_err());
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

    #[test]
    fn the_target_map_strips_and_refuses_collisions() {
        let m = target_map(["rpool/data/vm", "rpool/data"], "backup/h1", 1).unwrap();
        assert_eq!(m["rpool/data/vm"], "backup/h1/data/vm");
        assert_eq!(m["rpool/data"], "backup/h1/data");
        let m = target_map(["rpool/data"], "backup/h1", 2).unwrap();
        assert_eq!(m["rpool/data"], "backup/h1");
        let e = target_map(["a/x/y", "b/x/y"], "t", 1).unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert_eq!(
            e.to_string(),
            "target collision: a/x/y and b/x/y both map to t/x/y (--strip-path 1)"
        );
        let e = target_map(["a/x", "a/x"], "t", 0).unwrap_err();
        assert!(
            e.to_string().contains("a/x and a/x both map to t/a/x"),
            "{e}"
        );
        let e = target_map(["a/b"], "t", 3).unwrap_err();
        assert!(e.to_string().contains("strips too much"), "{e}");
    }

    mod properties {
        use super::*;
        use crate::fuzz::{assert_plain_line, config, damaged, noise};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config(256))]

            /// Names from records and TARGET-PATH: accepted, or one line.
            #[test]
            fn any_name_is_checked_in_one_line(
                s in prop_oneof![noise(), damaged("tank/data/vm-1@offsite1-20261122101500"), "\\PC{0,20}", "[a-z/@#%. -]{0,300}"],
            ) {
                for checked in [dataset(&s), snapshot_name(&s), snapshot(&s)] {
                    if let Err(e) = checked {
                        assert_plain_line(&e, &s);
                    }
                }
                match target_path(&s) {
                    Ok(()) => prop_assert!(dataset(&s).is_ok()),
                    Err(e) => {
                        prop_assert_eq!(e.exit(), crate::Exit::Usage);
                        assert_plain_line(&e.to_string(), &s);
                    }
                }
            }
        }
    }
}
