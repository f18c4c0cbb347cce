//! `zfs destroy` of a whole dataset (zab-thin `--destroy-missing`) and of
//! a bookmark, and snapshots of many datasets of one pool destroyed by one ZFS channel
//! program ([`PROGRAM`], `zfs program`, OpenZFS 0.8+, root only). The
//! fallback, one command per dataset, is [`super::destroy_snapshots_args`].
//!
//! The program destroys each snapshot named in its arguments on its own
//! (`zfs.sync.destroy`) and returns those that failed with their errno, so
//! one held or busy snapshot fails alone and the others go. It decides
//! nothing: what to destroy is the plan's. Its limits, by default 10
//! million Lua instructions and 10 MiB (`-t`, `-m`), are kept by
//! [`batches`]: at most [`PROGRAM_SNAPSHOTS`] snapshots and
//! [`PROGRAM_ARG_BYTES`] bytes of arguments per program. Measured on
//! OpenZFS 2.3: 1,000 snapshot names of 21 bytes run in under 30,000
//! instructions and 200 KB. The byte bound also keeps a remote command line
//! under [`crate::host::LONG_REMOTE_COMMAND`], so the program itself can
//! go on stdin (`/dev/stdin`): nothing of ours is written on the host.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::host::quote;

/// The channel program: destroys each snapshot named in its arguments;
/// returns a table of the ones that failed, full name to errno.
pub const PROGRAM: &str = r#"local args = ...
local failed = {}
for _, snap in ipairs(args["argv"]) do
    local err = zfs.sync.destroy(snap)
    if err ~= 0 then failed[snap] = err end
end
return failed
"#;

/// At most this many snapshots per program.
pub const PROGRAM_SNAPSHOTS: usize = 1000;

/// At most this many bytes of (quoted) arguments per program.
pub const PROGRAM_ARG_BYTES: usize = 48 * 1024;

/// The argv that runs [`PROGRAM`] (given on stdin) on `pool` for the full
/// snapshot names `snapshots`; with `probe`, read-only (`-n`) and without
/// arguments: it checks that this host runs channel programs at all
/// (root, OpenZFS 0.8+) and changes nothing.
pub fn program_args(pool: &str, snapshots: &[&str], probe: bool) -> Vec<String> {
    let mut argv: Vec<String> = vec!["zfs".into(), "program".into(), "-j".into()];
    if probe {
        argv.push("-n".into());
    }
    argv.push(pool.into());
    argv.push("/dev/stdin".into());
    if !probe {
        argv.extend(snapshots.iter().map(|s| s.to_string()));
    }
    argv
}

/// Cuts `snapshots` (full names, in order) into runs that each fit one
/// program: the ranges of indices.
pub fn batches(snapshots: &[&str]) -> Vec<std::ops::Range<usize>> {
    cut(
        snapshots.iter().map(|s| quote(s).len() + 1),
        PROGRAM_SNAPSHOTS,
        PROGRAM_ARG_BYTES,
    )
}

/// Cuts items of the given argument lengths (in order) into runs of at
/// most `items` items and `bytes` bytes: the ranges of indices. An item
/// over the byte bound alone still gets a run. Shared by the channel
/// programs (this one and [`super::bookmark`]).
pub(crate) fn cut(
    lens: impl Iterator<Item = usize>,
    items: usize,
    bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut used, mut n) = (0, 0, 0);
    for (i, len) in lens.enumerate() {
        if i > start && (i - start == items || used + len > bytes) {
            out.push(start..i);
            (start, used) = (i, 0);
        }
        used += len;
        n = i + 1;
    }
    if start < n {
        out.push(start..n);
    }
    out
}

#[derive(Deserialize)]
struct Output {
    #[serde(rename = "return")]
    failed: BTreeMap<String, i32>,
}

/// The snapshots that [`PROGRAM`] could not destroy, with their errno, from
/// its `-j` output (`{"return":{"pool/a@s":16}}`).
pub fn parse_program(stdout: &str) -> Result<BTreeMap<String, i32>, String> {
    serde_json::from_str::<Output>(stdout.trim())
        .map(|o| o.failed)
        .map_err(|e| format!("unexpected output {:?}: {e}", stdout.trim()))
}

/// The argv that destroys `dataset` itself, not recursively: `zfs` refuses
/// it while the dataset has snapshots or children.
pub fn dataset_args(dataset: &str) -> Vec<String> {
    vec!["zfs".into(), "destroy".into(), dataset.into()]
}

/// The argv that destroys bookmark `dataset#name`: one per call.
pub fn bookmark_args(dataset: &str, name: &str) -> Vec<String> {
    vec!["zfs".into(), "destroy".into(), format!("{dataset}#{name}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_argv_and_probe() {
        assert_eq!(
            program_args("tank", &["tank/a@s1", "tank/b c@s2"], false),
            [
                "zfs",
                "program",
                "-j",
                "tank",
                "/dev/stdin",
                "tank/a@s1",
                "tank/b c@s2"
            ]
        );
        assert_eq!(
            program_args("tank", &["tank/a@s1"], true),
            ["zfs", "program", "-j", "-n", "tank", "/dev/stdin"]
        );
    }

    #[test]
    fn batches_keep_both_limits() {
        assert!(batches(&[]).is_empty());
        let short: Vec<String> = (0..2500).map(|i| format!("p/d@s{i}")).collect();
        let refs: Vec<&str> = short.iter().map(String::as_str).collect();
        assert_eq!(batches(&refs), vec![0..1000, 1000..2000, 2000..2500]);
        // 200 names of 1,023 bytes (1 KiB with the space): 48 per program.
        let long: Vec<String> = (0..200)
            .map(|i| format!("p/{:0>1016}@s{i:03}", 0))
            .collect();
        let refs: Vec<&str> = long.iter().map(String::as_str).collect();
        let b = batches(&refs);
        assert_eq!(b[0], 0..48);
        assert_eq!(b.iter().map(|r| r.len()).sum::<usize>(), 200);
        for r in &b {
            let bytes: usize = refs[r.clone()].iter().map(|s| quote(s).len() + 1).sum();
            assert!(bytes <= PROGRAM_ARG_BYTES && r.len() <= PROGRAM_SNAPSHOTS);
        }
        // One name over the byte bound still gets a program of its own.
        let huge = "p/x".repeat(PROGRAM_ARG_BYTES);
        assert_eq!(batches(&[&huge, "p/a@b"]), vec![0..1, 1..2]);
    }

    #[test]
    fn program_output_parsed() {
        assert!(parse_program("{\"return\":{}}\n").unwrap().is_empty());
        let f = parse_program("{\"return\":{\"p/x@b\":16}}").unwrap();
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            [("p/x@b".to_string(), 16)]
        );
        assert!(parse_program("").is_err());
        assert!(parse_program("{\"return\":{\"p/x@b\":\"EBUSY\"}}").is_err());
    }

    #[test]
    fn destroys_one_dataset_without_recursion() {
        assert_eq!(
            dataset_args("backup/gone"),
            ["zfs", "destroy", "backup/gone"]
        );
        assert_eq!(
            bookmark_args("tank/a b", "s1_42"),
            ["zfs", "destroy", "tank/a b#s1_42"]
        );
    }
}
