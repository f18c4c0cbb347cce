//! zab-thin as a program: `--offline` end to end, with stdin, stdout, stderr
//! and the exit code checked strictly, and the TARGET-PATH check that comes
//! before any input is read. No ZFS is needed (nor touched).
//!
//! The main fixture is the worked example of zfs-autobackup's thinner
//! (reference §3.3, verified against upstream's Thinner class): schedule
//! `2,1d1w,1w1m`, now 2024-01-10 12:00 UTC, twelve snapshots, eight kept.

// A failed unwrap in a helper fails the test, which is what it is for.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

const NOW: i64 = 1_704_888_000; // 2024-01-10 12:00:00 UTC

/// The worked example (reference §3.3): (time, kept by upstream), shared
/// with zab-core's thinner test.
fn example() -> [(&'static str, bool); 12] {
    let rows: Vec<(&str, bool)> = include_str!("../../zab-core/tests/fixtures/worked-example.txt")
        .lines()
        .map(|l| {
            let (t, action) = l.split_once(' ').expect("time and action");
            (t, action == "keep")
        })
        .collect();
    rows.try_into().expect("12 rows")
}

fn at(d: &str) -> i64 {
    d.parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp()
}

fn name(d: &str) -> String {
    format!("offsite1-{}", d.replace(['-', 'T', ':', 'Z'], ""))
}

/// One line of input for snapshot `d` of the example, with `more` fields.
fn rec(d: &str, more: &str) -> String {
    format!(
        "{{\"kind\":\"snapshot\",\"name\":\"{}\",\"timestamp\":{}{more}}}\n",
        name(d),
        at(d)
    )
}

/// What a run left behind.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs zab-thin with `args` and `stdin`, in an empty environment.
fn zab_thin(args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zab-thin"))
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zab-thin starts");
    // A run that stops before reading (a usage error) closes its stdin.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn offline(extra: &[&str], stdin: &str) -> Out {
    let now = NOW.to_string();
    let mut args = vec!["--offline", "--keep", "2,1d1w,1w1m", "--now", &now];
    args.extend_from_slice(extra);
    zab_thin(&args, stdin)
}

/// An output snapshot record, parsed strictly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snap {
    kind: String,
    name: String,
    timestamp: i64,
    dataset: Option<String>,
    protected: Option<bool>,
    /// A field of the caller's, passed through.
    id: Option<u64>,
    action: String,
    reason: String,
    holds: Vec<Hold>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Hold {
    rule: String,
    block: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct End {
    kind: String,
    tool: String,
    version: String,
    datasets: usize,
    failed: usize,
    snapshots: usize,
    keep: usize,
    destroy: usize,
}

/// The records of a successful run: the snapshots and the end record.
fn records(out: &Out) -> (Vec<Snap>, End) {
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.ends_with('\n'));
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    let end = serde_json::from_str(lines.pop().expect("an end record")).unwrap();
    let snaps = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (snaps, end)
}

fn end(datasets: usize, keep: usize, destroy: usize) -> End {
    End {
        kind: "end".into(),
        tool: "zab-thin".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        datasets,
        failed: 0,
        snapshots: keep + destroy,
        keep,
        destroy,
    }
}

/// The worked example in a shuffled order, with a field of the caller's:
/// upstream's decisions, in input order, with the reasons.
#[test]
fn worked_example_end_to_end() {
    let order = [7, 0, 11, 3, 9, 1, 5, 10, 2, 8, 4, 6];
    let input: String = order
        .iter()
        .map(|&i| rec(example()[i].0, &format!(",\"id\":{i}")))
        .collect();
    let out = offline(&[], &input);
    assert_eq!(out.stderr, "");
    let (snaps, got_end) = records(&out);
    assert_eq!(got_end, end(1, 8, 4));
    assert_eq!(snaps.len(), 12);
    for (snap, &i) in snaps.iter().zip(&order) {
        let (d, kept) = example()[i];
        assert_eq!(snap.kind, "snapshot");
        assert_eq!(
            (snap.name.as_str(), snap.timestamp),
            (name(d).as_str(), at(d))
        );
        assert_eq!(snap.id, Some(i as u64), "passed through");
        assert_eq!((snap.dataset.as_deref(), snap.protected), (None, None));
        let want = if kept { "keep" } else { "destroy" };
        assert_eq!(snap.action, want, "{d}: {}", snap.reason);
        assert!(
            snap.reason.starts_with(&format!("{want}: ")),
            "{}",
            snap.reason
        );
    }
    let by_name = |d: &str| snaps.iter().find(|s| s.name == name(d)).unwrap();
    // The reference's reasons, one of each kind.
    let s = by_name("2023-12-20T10:00:00Z");
    assert_eq!(
        s.reason,
        "keep: holds block 2815 of 1w1m (Keep every 1 week, delete after 1 month.)"
    );
    assert_eq!(s.holds, vec![hold("1w1m", 2815)]);
    let s = by_name("2024-01-05T02:00:00Z");
    assert_eq!(s.holds, vec![hold("1d1w", 19727), hold("1w1m", 2818)]);
    assert_eq!(
        by_name("2024-01-03T08:00:00Z").reason,
        "destroy: block 2817 of 1w1m is held by offsite1-20231228090000; too old for 1d1w"
    );
    assert_eq!(
        by_name("2024-01-09T18:00:00Z").reason,
        "destroy: block 19731 of 1d1w is held by offsite1-20240109100000; \
         block 2818 of 1w1m is held by offsite1-20240105020000"
    );
    assert_eq!(
        by_name("2024-01-10T06:00:00Z").reason,
        "keep: one of the last 2"
    );
    let newest = by_name("2024-01-10T11:00:00Z");
    assert_eq!(newest.reason, "keep: one of the last 2; protected (newest)");
    assert!(newest.holds.is_empty());
}

fn hold(rule: &str, block: i64) -> Hold {
    Hold {
        rule: rule.into(),
        block,
    }
}

fn example_input() -> String {
    example().iter().map(|(d, _)| rec(d, "")).collect()
}

/// Datasets are thinned on their own; `protected` keeps one the schedule
/// would destroy; the end record counts the groups.
#[test]
fn datasets_are_thinned_separately_and_protected_is_kept() {
    let mut input = String::new();
    for ds in ["tank/a", "tank/b"] {
        for (d, _) in &example() {
            let prot = if *d == "2023-12-28T21:00:00Z" && ds == "tank/b" {
                ",\"protected\":true"
            } else {
                ""
            };
            input.push_str(&rec(d, &format!(",\"dataset\":\"{ds}\"{prot}")));
        }
    }
    let (snaps, got_end) = records(&offline(&[], &input));
    assert_eq!(got_end, end(2, 8 + 9, 4 + 3));
    let a: Vec<&Snap> = snaps
        .iter()
        .filter(|s| s.dataset.as_deref() == Some("tank/a"))
        .collect();
    let kept: Vec<bool> = a.iter().map(|s| s.action == "keep").collect();
    assert_eq!(kept, example().map(|(_, k)| k).to_vec());
    let held = snaps
        .iter()
        .find(|s| s.dataset.as_deref() == Some("tank/b") && s.name == name("2023-12-28T21:00:00Z"))
        .unwrap();
    assert_eq!(held.protected, Some(true));
    assert_eq!(held.action, "keep");
    assert_eq!(held.reason, "keep: protected");
}

/// An `end` record may close the input, and output can be thinned again:
/// our own fields are replaced, not doubled.
#[test]
fn output_can_be_thinned_again() {
    let first = offline(&[], &example_input());
    let again = zab_thin(
        &["--offline", "--keep", "1,1w1m", "--now", &NOW.to_string()],
        &first.stdout,
    );
    let (snaps, got_end) = records(&again);
    assert_eq!(got_end, end(1, 4, 8));
    let kept: Vec<&str> = snaps
        .iter()
        .filter(|s| s.action == "keep")
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        kept,
        vec![
            "offsite1-20231220100000",
            "offsite1-20231228090000",
            "offsite1-20240105020000",
            "offsite1-20240110110000"
        ]
    );
}

#[test]
fn empty_input_gives_only_the_end_record() {
    let (snaps, got_end) = records(&offline(&[], ""));
    assert!(snaps.is_empty());
    assert_eq!(got_end, end(0, 0, 0));
}

/// Bad input: one line on stderr naming the line, exit 3, nothing on stdout
/// (not even the records before the bad line).
#[test]
fn bad_input_is_one_error_line_and_no_output() {
    let good = example_input();
    let cases = [
        (
            format!("{good}{{\"kind\":\"snapshot\",\"name\":\"x\"}}\n"),
            "line 13: missing field \"timestamp\"",
        ),
        (
            format!("{}not json\n{good}", rec(example()[0].0, "")),
            "line 2: not a JSON record (expected one JSON object per line, such as \
             {\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":1763800000})",
        ),
        (
            format!("{good}{}", rec(example()[4].0, ",\"id\":1")),
            "line 13: snapshot \"offsite1-20240105020000\" is already on line 5",
        ),
        (
            format!(
                "{good}{{\"kind\":\"end\"}}\n{}",
                rec("2024-01-10T11:30:00Z", "")
            ),
            "line 14: record after the end record",
        ),
        (
            format!("{good}{{\"kind\":\"dataset\",\"name\":\"x\"}}\n"),
            "line 13: unknown record type \"dataset\" (expected one of: snapshot, end)",
        ),
        (
            format!("{good}{{\"kind\":\"snapshot\",\"name\":\"x\",\"timestamp\":\"today\"}}\n"),
            "line 13: invalid type: string \"today\", expected a whole number",
        ),
        // Cut off in the middle of the last line.
        (
            good[..good.len() - 20].to_string(),
            "line 12: the last line has no newline: the input was cut off",
        ),
    ];
    for (input, want) in cases {
        let out = offline(&[], &input);
        assert_eq!(out.code, 3, "{want}: {out:?}");
        assert_eq!(out.stdout, "", "{want}");
        assert!(
            out.stderr.starts_with(&format!("zab-thin: {want}")),
            "{want}: {}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let out = zab_thin(&["--offline", "--keep", "1d1w2"], "");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("left over"), "{}", out.stderr);
    let out = zab_thin(&["--offline", "--now", "99999999999999"], "");
    assert_eq!(
        (out.code, out.stderr.as_str(), out.stdout.as_str()),
        (
            2,
            "zab-thin: --now 99999999999999 is out of range (seconds since 1970, up to the year 9999)\n",
            ""
        )
    );
}

/// `--explain` prints the timeline instead of records.
#[test]
fn explain_prints_the_timeline() {
    let out = offline(&["--explain"], &example_input());
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert!(
        out.stdout.starts_with(
            "snapshots: 12 snapshots, keep 8, destroy 4\n  \
             schedule 2,1d1w,1w1m, now 2024-01-10 12:00:00 UTC (1704888000)\n"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(
        "    block 2817     2023-12-28 00:00:00  held by offsite1-20231228090000 (2023-12-28 09:00:00); 2 others in the block\n"
    ));
    assert!(out.stdout.contains(
        "    destroy  2024-01-05 23:00:00  offsite1-20240105230000  block 19727 of 1d1w held by offsite1-20240105020000; block 2818 of 1w1m held by offsite1-20240105020000\n"
    ));
    assert!(!out.stdout.contains("{\"kind\""));
    assert_eq!(out.stdout.matches("\n    keep ").count(), 8);
    assert_eq!(out.stdout.matches("\n    destroy ").count(), 4);
}

/// A temporary directory, removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("zab-thin-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `--svg FILE` writes the picture, and the records still go to stdout.
#[test]
fn svg_writes_the_picture_and_still_the_records() {
    let dir = TempDir::new("svg");
    let file = dir.0.join("thinning.svg");
    let out = offline(&["--svg", file.to_str().unwrap()], &example_input());
    let (snaps, got_end) = records(&out);
    assert_eq!((snaps.len(), got_end), (12, end(1, 8, 4)));
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>\n"));
    assert_eq!(svg.matches("class=\"gone\"").count(), 4);
    assert!(svg.contains(">1d1w<") && svg.contains(">1w1m<"));

    // A file that cannot be written: one line, exit 4, no records.
    let bad = dir.0.join("no/such/dir.svg");
    let out = offline(&["--svg", bad.to_str().unwrap()], &example_input());
    assert_eq!((out.code, out.stdout.as_str()), (4, ""));
    assert!(out
        .stderr
        .starts_with(&format!("zab-thin: cannot write {}: ", bad.display())));
    assert_eq!(out.stderr.lines().count(), 1);
}

/// `--svg FILE` where FILE is a symbolic link: the link is not followed
/// (as root, it could point at any file), its target stays as it was, and
/// the one error line says why; no records.
#[test]
fn svg_does_not_follow_a_symlink() {
    let dir = TempDir::new("svg-link");
    let target = dir.0.join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    let link = dir.0.join("thinning.svg");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = offline(&["--svg", link.to_str().unwrap()], &example_input());
    assert_eq!((out.code, out.stdout.as_str()), (4, ""));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        out.stderr,
        format!(
            "zab-thin: cannot write {}: it is a symbolic link (not followed)\n",
            link.display()
        )
    );
}

/// `--verbose` says the schedule in words; `--debug` the planning time.
#[test]
fn verbose_and_debug_talk_on_stderr() {
    let out = offline(&["--verbose"], &example_input());
    assert_eq!(
        out.stderr,
        "Keep the last 2 snapshots.\n\
         Keep every 1 day, delete after 1 week.\n\
         Keep every 1 week, delete after 1 month.\n\
         snapshots: 12 snapshots, keep 8, destroy 4\n"
    );
    assert_eq!(records(&out).0.len(), 12);
    let out = offline(&["--debug"], &example_input());
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("# planned 12 snapshots in ") && l.ends_with(" ms (1 group)")),
        "{}",
        out.stderr
    );
}

/// A TARGET-PATH that is not a dataset name (`-r` would reach `zfs list`
/// as an option and list every pool) is a usage error before anything is
/// read or run: one line, exit 2, no output.
#[test]
fn target_path_must_be_a_dataset_name() {
    let end = "{\"kind\":\"end\",\"tool\":\"zab-select\",\"version\":\"0.1.0\",\"datasets\":0,\"failed\":0}\n";
    for bad in ["-r", "tank@x", "a//b", "/tank", "tank/a b\tc"] {
        let out = zab_thin(&["--destroy-missing", "1d", "offsite1", "--", bad], end);
        assert_eq!(out.code, 2, "{bad:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!(
                "zab-thin: invalid TARGET-PATH: {bad:?} is not a dataset name: "
            )) && out.stderr.lines().count() == 1,
            "{bad:?}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{bad:?}");
    }
    // A trailing slash is said as such, with the name to write.
    let out = zab_thin(&["--destroy-missing", "1d", "offsite1", "--", "tank/"], end);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "zab-thin: invalid TARGET-PATH \"tank/\": it ends in a / (write tank)\n"
    );
}
