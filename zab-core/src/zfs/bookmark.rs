//! Bookmarks of many datasets of one pool made by one ZFS channel program
//! ([`PROGRAM`], `zfs program`, root only; `zfs.sync.bookmark` is in
//! OpenZFS 2.0+). The fallback, one command per bookmark (`zfs bookmark`
//! takes one pair per call), is [`super::bookmark_args`].
//!
//! The program makes each pair of its arguments (`pool/ds@snap`,
//! `pool/ds#name`) on its own and returns those that failed, by bookmark,
//! with their errno: one that exists already (`EEXIST`) or whose snapshot
//! is gone (`ENOENT`) fails alone and the others are made. It decides
//! nothing: which bookmarks to make is zab-send's. Its limits are kept as
//! [`super::destroy`] keeps them ([`batches`]): at most [`PROGRAM_PAIRS`]
//! pairs and [`PROGRAM_ARG_BYTES`] bytes of arguments per program, so the
//! program itself goes on stdin (`/dev/stdin`) over ssh too. Measured on
//! OpenZFS 2.3.2: 1,000 pairs (67 KB of arguments) in one program within
//! the default limits, 8.3 s in the lab against 0.44 s per `zfs bookmark`.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::host::quote;

pub use super::destroy::PROGRAM_ARG_BYTES;

/// The channel program: for each pair of its arguments, the snapshot and
/// the new bookmark's full names, makes the bookmark; returns a table of
/// the ones that failed, full bookmark name to errno. An odd number of
/// arguments fails the program as a whole.
pub const PROGRAM: &str = r#"local argv = (...)["argv"]
local failed = {}
for i = 1, #argv, 2 do
    local err = zfs.sync.bookmark(argv[i], argv[i + 1])
    if err ~= 0 then failed[argv[i + 1]] = err end
end
return failed
"#;

/// At most this many pairs per program.
pub const PROGRAM_PAIRS: usize = 1000;

/// One bookmark to make: full names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// `pool/ds@snap`.
    pub snapshot: String,
    /// `pool/ds#name`.
    pub bookmark: String,
}

impl Pair {
    /// The pair that bookmarks `dataset@snapshot` as `dataset#name`.
    pub fn new(dataset: &str, snapshot: &str, name: &str) -> Pair {
        Pair {
            snapshot: format!("{dataset}@{snapshot}"),
            bookmark: format!("{dataset}#{name}"),
        }
    }

    /// The bytes its two arguments take on a remote command line.
    fn arg_bytes(&self) -> usize {
        quote(&self.snapshot).len() + quote(&self.bookmark).len() + 2
    }
}

/// The argv that runs [`PROGRAM`] (given on stdin) on `pool` for `pairs`.
pub fn program_args(pool: &str, pairs: &[Pair]) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "zfs".into(),
        "program".into(),
        "-j".into(),
        pool.into(),
        "/dev/stdin".into(),
    ];
    for p in pairs {
        argv.push(p.snapshot.clone());
        argv.push(p.bookmark.clone());
    }
    argv
}

/// Cuts `pairs` (in order) into runs that each fit one program: the ranges
/// of indices. A pair over the byte bound alone still gets a program.
pub fn batches(pairs: &[Pair]) -> Vec<Range<usize>> {
    super::destroy::cut(
        pairs.iter().map(Pair::arg_bytes),
        PROGRAM_PAIRS,
        PROGRAM_ARG_BYTES,
    )
}

/// The bookmarks (full names) that [`PROGRAM`] could not make, with their
/// errno, from its `-j` output (`{"return":{"pool/a#b":17}}`).
pub fn parse_program(stdout: &str) -> Result<BTreeMap<String, i32>, String> {
    super::destroy::parse_program(stdout)
}

/// What an errno of the program means: the system's words for it, and
/// zfs's own for the one above 1024 that a bookmark can give.
pub fn errno_text(errno: i32) -> String {
    match errno {
        // ZFS_ERR_BOOKMARK_SOURCE_NOT_ANCESTOR (sys/fs/zfs.h).
        1039 => "the snapshot is not of the bookmark's dataset (zfs error 1039)".into(),
        e => std::io::Error::from_raw_os_error(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_argv_gives_the_pairs_in_order() {
        let pairs = [
            Pair::new("tank/a", "s1", "s1_7"),
            Pair::new("tank/b c", "s2", "s2_7"),
        ];
        assert_eq!(
            program_args("tank", &pairs),
            [
                "zfs",
                "program",
                "-j",
                "tank",
                "/dev/stdin",
                "tank/a@s1",
                "tank/a#s1_7",
                "tank/b c@s2",
                "tank/b c#s2_7"
            ]
        );
        assert_eq!(
            program_args("tank", &[]),
            ["zfs", "program", "-j", "tank", "/dev/stdin"]
        );
    }

    #[test]
    fn batches_keep_both_limits() {
        assert!(batches(&[]).is_empty());
        let short: Vec<Pair> = (0..2500)
            .map(|i| Pair::new("p/d", &format!("s{i}"), "b"))
            .collect();
        assert_eq!(batches(&short), vec![0..1000, 1000..2000, 2000..2500]);
        // Pairs of 1,024 bytes (quoted, with the spaces): 48 per program.
        let long: Vec<Pair> = (0..200)
            .map(|i| Pair::new(&format!("p/{:0>500}", i), "s123456", "b123456"))
            .collect();
        assert_eq!(long[0].arg_bytes(), 1024);
        let b = batches(&long);
        assert_eq!(b[0], 0..48);
        assert_eq!(b.iter().map(|r| r.len()).sum::<usize>(), 200);
        assert!(b.windows(2).all(|w| w[0].end == w[1].start));
        for r in &b {
            let bytes: usize = long[r.clone()].iter().map(Pair::arg_bytes).sum();
            assert!(bytes <= PROGRAM_ARG_BYTES && r.len() <= PROGRAM_PAIRS);
        }
        // One pair over the byte bound still gets a program of its own.
        let huge = Pair::new(&"p/x".repeat(PROGRAM_ARG_BYTES), "s", "b");
        let small = Pair::new("p/a", "s", "b");
        assert_eq!(batches(&[huge, small]), vec![0..1, 1..2]);
    }

    /// Outputs recorded from the lab (OpenZFS 2.3.2, `zfs program -j`).
    #[test]
    fn program_output_from_the_lab_parsed() {
        assert!(parse_program("{\"return\":{}}").unwrap().is_empty());
        // Made twice (EEXIST), a snapshot that is not there (ENOENT), a
        // bad name (EINVAL), another dataset's snapshot.
        let out = "{\"return\":{\"zabr-hbm/b#x\":2,\"zabr-hbm/a#s1_9\":17,\
                   \"zabr-hbm/b#bad name!\":22,\"zabr-hbm/a#cross\":1039}}";
        let f = parse_program(out).unwrap();
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            [
                ("zabr-hbm/a#cross".to_string(), 1039),
                ("zabr-hbm/a#s1_9".to_string(), 17),
                ("zabr-hbm/b#bad name!".to_string(), 22),
                ("zabr-hbm/b#x".to_string(), 2),
            ]
        );
        // A program that failed as a whole prints its error on stderr and
        // nothing on stdout.
        assert!(parse_program("").is_err());
        assert!(parse_program("{\"return\":\"x\"}").is_err());
    }

    #[test]
    fn errno_in_words() {
        assert!(
            errno_text(17).starts_with("File exists"),
            "{}",
            errno_text(17)
        );
        assert!(
            errno_text(2).starts_with("No such file"),
            "{}",
            errno_text(2)
        );
        assert!(errno_text(1039).contains("not of the bookmark's dataset"));
    }
}
