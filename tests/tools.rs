//! Every tool binary on bad input, without the lab: random bytes and cut
//! records on stdin, unknown options and bad option values. Each must end
//! with a documented exit code (never 70, a bug, nor a signal) and say why
//! in exactly one line on stderr, starting with its name.
//!
//! No zfs runs: the record tools run with `--test` (read-only, no run
//! lock) and every input here is refused before their first zfs call;
//! zab-select gets only command lines refused before it lists anything.
//! The binaries are the ones built next to this test (`cargo test
//! --workspace` builds them). Random cases use proptest with a fixed seed
//! and a small count: the same cases on every run.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use zab_core::error::{Exit, EXIT_CODES};

/// A tool built next to this test.
fn tool(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/tools-HASH → target/debug/NAME
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build --workspace; cargo test --workspace does)",
        path.display()
    );
    path
}

/// What a run ended with.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `name` with `args` and `stdin`, in an empty environment but PATH
/// (so no ZAB_LOCK_FD or ssh settings of the caller leak in).
fn run(name: &str, args: &[&str], stdin: &[u8]) -> Ran {
    let mut child = Command::new(tool(name))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // A tool may stop reading early (a bad first line): a broken pipe here is fine.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Ran {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A refusal: a documented exit code that is not success nor a bug, and
/// one line on stderr that starts with the tool's name.
fn assert_refused(name: &str, ran: &Ran, what: &str) {
    let documented: Vec<i32> = EXIT_CODES.iter().map(|(e, _)| e.code().into()).collect();
    let code = ran
        .code
        .unwrap_or_else(|| panic!("{name} {what}: killed by a signal"));
    assert!(
        documented.contains(&code) && code != 0 && code != i32::from(Exit::Internal.code()),
        "{name} {what}: exit {code}: {}",
        ran.stderr
    );
    assert_one_line(name, ran, what);
}

fn assert_one_line(name: &str, ran: &Ran, what: &str) {
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert!(
        lines.len() == 1
            && lines[0].starts_with(&format!("{name}: "))
            && lines[0].len() > name.len() + 2,
        "{name} {what}: stderr is not one line starting with the tool's name: {:?}",
        ran.stderr
    );
}

/// The same cases on every run: a fixed seed, no files of failures.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(15),
        failure_persistence: None,
        ..Config::default()
    }
}

const TOOLS: [&str; 8] = [
    "zab-select",
    "zab-status",
    "zab-snap",
    "zab-send",
    "zab-thin",
    "zab-buffer",
    "zab-ratelimit",
    "zab-restore",
];

/// The record tools, with the arguments that make them read stdin and
/// change nothing.
const READERS: [(&str, &[&str]); 5] = [
    ("zab-snap", &["fz", "--test"]),
    ("zab-send", &["fz", "backup/fz", "--test"]),
    ("zab-thin", &["fz", "--test"]),
    ("zab-status", &["fz", "backup/fz"]),
    ("zab-thin", &["--offline", "--now", "1763900000"]),
];

const DS: &str = r#"{"kind":"dataset","backup":"fz","host":null,"name":"tank/a","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":7,"written":0}"#;
const END: &str = r#"{"kind":"end","tool":"zab-select","version":"0.1.0","datasets":1,"failed":0}"#;
const SNAP: &str = r#"{"kind":"snapshot","name":"fz-20251122101500","timestamp":1763806500}"#;

/// clap's usage errors were 3 to 5 lines without the tool's name.
#[test]
fn usage_errors_are_one_line_in_every_tool() {
    for name in TOOLS {
        let ran = run(name, &["--foo"], b"");
        assert_eq!(ran.code, Some(2), "{name}: {}", ran.stderr);
        assert_one_line(name, &ran, "--foo");
        assert!(
            ran.stderr
                .starts_with(&format!("{name}: unexpected argument '--foo' found")),
            "{}",
            ran.stderr
        );
        assert!(
            ran.stderr
                .trim_end()
                .ends_with(&format!("(see {name} --help)")),
            "{}",
            ran.stderr
        );
        // --help and --version still print on stdout and exit 0.
        for flag in ["--help", "--version"] {
            let ran = run(name, &[flag], b"");
            assert_eq!(ran.code, Some(0), "{name} {flag}: {}", ran.stderr);
            assert!(
                ran.stderr.is_empty() && !ran.stdout.is_empty(),
                "{name} {flag}"
            );
        }
    }
}

/// `--now 2024-01-10` said "invalid digit found in string".
#[test]
fn now_says_what_it_expects() {
    let ran = run("zab-snap", &["fz", "--now", "2024-01-10"], b"");
    assert_eq!(ran.code, Some(2));
    assert_one_line("zab-snap", &ran, "--now");
    assert!(
        ran.stderr.contains("expected a Unix time"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("invalid digit"), "{}", ran.stderr);
}

/// serde's words ("expected value", "unknown variant") reached users.
#[test]
fn bad_records_are_said_in_plain_words() {
    for (name, args) in READERS {
        let ran = run(name, args, b"hello\n");
        assert_refused(name, &ran, "not JSON");
        assert!(
            ran.stderr.contains("line 1: not a JSON record"),
            "{}",
            ran.stderr
        );
        let ran = run(name, args, b"{\"kind\":\"dataseta\"}\n");
        assert_refused(name, &ran, "unknown kind");
        assert!(
            ran.stderr
                .contains("line 1: unknown record type \"dataseta\" (expected one of: "),
            "{}",
            ran.stderr
        );
        assert!(!ran.stderr.contains('`'), "{}", ran.stderr);
    }
}

/// Empty stdin said "the stage before this one did not finish" when
/// nothing ran before it.
#[test]
fn empty_stdin_says_what_is_expected() {
    for (name, args) in &READERS[..4] {
        let ran = run(name, args, b"");
        assert_refused(name, &ran, "empty stdin");
        assert!(ran.stderr.contains("no records on stdin"), "{}", ran.stderr);
        assert!(ran.stderr.contains(&format!("| {name}")), "{}", ran.stderr);
        // Records without their end record: the stage before did not finish.
        let ran = run(name, args, format!("{DS}\n").as_bytes());
        assert_refused(name, &ran, "no end record");
        assert!(ran.stderr.contains("did not finish"), "{}", ran.stderr);
    }
}

/// On a terminal (nothing piped in), a record tool waited for input that
/// never came: it says what it expects instead, at once. The terminal is
/// made by script(1) (util-linux, in every Debian); `timeout` ends a tool
/// that waits.
#[test]
fn a_terminal_on_stdin_is_refused_at_once() {
    for (name, args) in &READERS[..4] {
        let command = format!("'{}' {}", tool(name).display(), args.join(" "));
        let out = Command::new("timeout")
            .args(["20", "script", "-qec", &command, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{name}: {text}");
        assert!(
            text.starts_with(&format!(
                "{name}: end of input: no records on stdin (it is a terminal): "
            )),
            "{name}: {text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}

/// Random bytes on stdin: refused in one line, or (zab-thin --offline, for
/// blank input) an empty list thinned; never a panic.
#[test]
fn random_bytes_on_stdin() {
    proptest!(config(24), |(bytes in proptest::collection::vec(any::<u8>(), 0..300))| {
        for (name, args) in READERS {
            let ran = run(name, args, &bytes);
            if ran.code == Some(0) {
                prop_assert!(args.contains(&"--offline"), "{name}: {bytes:?}");
                prop_assert!(ran.stderr.is_empty(), "{}", ran.stderr);
            } else {
                assert_refused(name, &ran, &format!("{bytes:?}"));
            }
        }
    });
}

/// A stream cut anywhere: refused in one line, never acted on.
#[test]
fn records_cut_anywhere() {
    let stream = format!("{DS}\n{}\n{END}\n", DS.replace("tank/a", "tank/b"));
    let snaps = format!("{SNAP}\n{}\n{END}\n", SNAP.replace("15\"", "16\""));
    proptest!(config(24), |(cut in 0..stream.len(), cut2 in 0..snaps.len())| {
        for (name, args) in READERS {
            let offline = args.contains(&"--offline");
            let text = if offline { &snaps[..cut2] } else { &stream[..cut] };
            let ran = run(name, args, text.as_bytes());
            if ran.code == Some(0) {
                // Cut at a line's end: a shorter list, complete in itself.
                prop_assert!(offline && (text.is_empty() || text.ends_with('\n')), "{name}: {text:?}");
            } else {
                assert_refused(name, &ran, text);
            }
        }
    });
}

/// Random bytes through the byte-stream tools come out unchanged.
#[test]
fn byte_tools_pass_random_bytes_through() {
    proptest!(config(8), |(bytes in proptest::collection::vec(any::<u8>(), 0..5000))| {
        for (name, args) in [("zab-buffer", &["-q", "-m", "1M"][..]), ("zab-ratelimit", &["-q"])] {
            let ran = run(name, args, &bytes);
            prop_assert_eq!(ran.code, Some(0), "{}: {}", name, ran.stderr);
            prop_assert!(ran.stdout == bytes, "{}", name);
        }
    });
}

/// Random option values: refused in one line (exit 2), or accepted.
#[test]
fn random_option_values() {
    let options: [(&str, &[&str], &str); 7] = [
        ("zab-buffer", &["-q"], "--memory"),
        ("zab-buffer", &["-q"], "--watchdog"),
        ("zab-ratelimit", &["-q"], "--rate"),
        ("zab-ratelimit", &["-q"], "--interval"),
        ("zab-ratelimit", &["-q"], "--size"),
        ("zab-select", &["fz"], "--exclude-unchanged"),
        ("zab-thin", &["--offline"], "--keep"),
    ];
    proptest!(config(24), |(value in "[0-9a-zA-Z.%-]{1,12}|\\PC{0,12}")| {
        for (name, args, option) in options {
            let with = format!("{option}={value}");
            let mut argv = args.to_vec();
            argv.push(&with);
            // Never run by zab-select: "y" is one argument too many.
            if name == "zab-select" {
                argv.extend(["x", "y"]);
            }
            let ran = run(name, &argv, b"");
            if ran.code != Some(0) {
                assert_refused(name, &ran, &with);
            }
        }
    });
}

/// `--help` groups every option of the ZFS tools under a heading of
/// `zab_core::cli::heading` (selection, naming, transfer, stream, holds,
/// ssh, output…): only --help and --version stay under "Options", and no
/// group is a long flat list.
#[test]
fn help_groups_the_options_under_headings() {
    use zab_core::cli::heading::*;
    let known = [
        SELECTION, SNAPSHOTS, NAMING, TARGET, TRANSFER, STREAM, HOLDS, THINNING, OFFLINE, SSH,
        OUTPUT,
    ];
    for (name, least) in [
        ("zab-select", 3),
        ("zab-snap", 4),
        ("zab-send", 8),
        ("zab-thin", 8),
    ] {
        let ran = run(name, &["--help"], b"");
        assert_eq!(ran.code, Some(0), "{name}: {}", ran.stderr);
        let help = String::from_utf8(ran.stdout).unwrap();
        // Each heading line ("Name:") with the options listed under it.
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for line in help.lines() {
            if line == "Examples:" || line == "Exit status:" {
                break;
            }
            if !line.starts_with(' ') && line.ends_with(':') && !line.contains(' ')
                || known.contains(&line.trim_end_matches(':'))
            {
                groups.push((line.trim_end_matches(':').to_string(), Vec::new()));
            } else if let (Some(g), true) = (groups.last_mut(), line.trim_start().starts_with('-'))
            {
                if line.starts_with("  -") || line.starts_with("      --") {
                    g.1.push(line.trim().to_string());
                }
            }
        }
        let names: Vec<&str> = groups.iter().map(|(h, _)| h.as_str()).collect();
        let option_groups: Vec<_> = groups
            .iter()
            .filter(|(h, _)| h != "Arguments" && h != "Options")
            .collect();
        assert!(option_groups.len() >= least, "{name}: only {names:?}");
        for (h, opts) in &groups {
            match h.as_str() {
                "Arguments" => {}
                "Options" => assert!(
                    opts.iter()
                        .all(|o| o.starts_with("-h, --help") || o.starts_with("-V, --version")),
                    "{name}: ungrouped options {opts:?}"
                ),
                h => {
                    assert!(
                        known.contains(&h),
                        "{name}: unknown heading {h:?} in {names:?}"
                    );
                    assert!(!opts.is_empty(), "{name}: {h} is empty");
                    assert!(opts.len() <= 14, "{name}: {h} has {} options", opts.len());
                }
            }
        }
    }
}
