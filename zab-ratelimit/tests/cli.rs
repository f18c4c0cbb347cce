//! zab-ratelimit as a program: integrity through every path (splice(2)
//! between pipes, from a file, into a file, and read/write), the progress
//! outputs, and every way a transfer can fail.
//!
//! The rate's accuracy is measured by scripts/bench/stream and its maths is
//! tested on a fake clock in `bucket.rs`; here only what cannot flake is
//! asserted about time: a limited transfer is never faster than its limit.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;

fn zab_ratelimit(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zab-ratelimit"));
    c.args(args).env_clear();
    c
}

fn spawn(args: &[&str]) -> Child {
    zab_ratelimit(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zab-ratelimit starts")
}

/// `n` pseudo-random bytes (xorshift64*), the same for the same seed.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Writes `data` in pieces of changing sizes, then closes stdin.
fn feed(mut stdin: ChildStdin, data: Vec<u8>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut rest = &data[..];
        let mut piece = 1;
        while !rest.is_empty() {
            let n = piece.min(rest.len());
            if stdin.write_all(&rest[..n]).is_err() {
                return;
            }
            rest = &rest[n..];
            piece = piece * 7 % 99991 + 1;
        }
    })
}

/// Runs with `input` on a piped stdin, stdout piped.
fn pass(args: &[&str], input: &[u8]) -> Output {
    let mut child = spawn(args);
    let feeder = feed(child.stdin.take().unwrap(), input.to_vec());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file of the test's own, removed at the end.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> Self {
        let p = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("zab-ratelimit-test-{}-{name}", std::process::id()));
        std::fs::write(&p, data).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wait_at_most_a_minute(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("zab-ratelimit did not end within a minute");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}

const SIZES: [usize; 11] = [
    0,
    1,
    4095,
    4096,
    4097,
    65535,
    65537,
    131071,
    131073,
    (1 << 20) + 7,
    3 << 20,
];

#[test]
fn every_byte_passes_between_pipes_with_and_without_splice() {
    for (i, &n) in SIZES.iter().enumerate() {
        let input = random_bytes(n, i as u64 + 1);
        for args in [&["-q"][..], &["-q", "-C"], &["-q", "-L", "1G"]] {
            let out = pass(args, &input);
            assert!(out.status.success(), "{n} bytes {args:?}: {}", stderr(&out));
            assert!(
                out.stdout == input,
                "{n} bytes {args:?}: the output differs"
            );
            assert_eq!(stderr(&out), "");
        }
    }
}

#[test]
fn every_byte_passes_from_a_file_and_into_a_file() {
    for (i, &n) in SIZES.iter().enumerate() {
        let input = random_bytes(n, i as u64 + 100);
        let src = TempFile::new("src", &input);
        // A file on stdin, a pipe on stdout: splice(2) from the file.
        let out = zab_ratelimit(&["-q"])
            .stdin(File::open(&src.0).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(out.stdout == input, "{n} bytes from a file");
        // A pipe on stdin, a file on stdout: splice(2) into the file.
        let dst = TempFile::new("dst", b"");
        let mut child = zab_ratelimit(&["-q"])
            .stdin(Stdio::piped())
            .stdout(File::create(&dst.0).unwrap())
            .spawn()
            .unwrap();
        let feeder = feed(child.stdin.take().unwrap(), input.clone());
        assert!(wait_at_most_a_minute(&mut child).success());
        feeder.join().unwrap();
        assert!(
            std::fs::read(&dst.0).unwrap() == input,
            "{n} bytes into a file"
        );
        // File to file: no pipe, so read(2) and write(2).
        let out = zab_ratelimit(&["-q"])
            .stdin(File::open(&src.0).unwrap())
            .stdout(File::create(&dst.0).unwrap())
            .status()
            .unwrap();
        assert!(out.success());
        assert!(
            std::fs::read(&dst.0).unwrap() == input,
            "{n} bytes file to file"
        );
    }
}

#[test]
fn an_append_only_stdout_falls_back_from_splice() {
    // splice(2) refuses O_APPEND files (EINVAL): the data must still pass.
    let input = random_bytes(300_000, 5);
    let dst = TempFile::new("append", b"head:");
    let mut child = zab_ratelimit(&["-q"])
        .stdin(Stdio::piped())
        .stdout(File::options().append(true).open(&dst.0).unwrap())
        .spawn()
        .unwrap();
    let feeder = feed(child.stdin.take().unwrap(), input.clone());
    assert!(wait_at_most_a_minute(&mut child).success());
    feeder.join().unwrap();
    let got = std::fs::read(&dst.0).unwrap();
    assert_eq!(&got[..5], b"head:");
    assert!(got[5..] == input[..]);
}

/// One `--json` record, read strictly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // every field is read by serde, some by the tests
struct Record {
    kind: String,
    bytes: u64,
    elapsed: f64,
    rate: u64,
    avg_rate: u64,
    size: Option<u64>,
    percent: Option<f64>,
    eta: Option<f64>,
    done: bool,
}

fn records(err: &str) -> Vec<Record> {
    err.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_limited_transfer_is_never_faster_than_its_limit() {
    // 512 KiB at 2 MiB/s: a quarter of a second at the very least (the
    // bucket starts empty), however fast the machine.
    let input = random_bytes(512 << 10, 7);
    let t = Instant::now();
    let out = pass(&["--json", "-s", "512K", "-L", "2M", "-i", "0.05"], &input);
    let took = t.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == input);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    let recs = records(&stderr(&out));
    let last = recs.last().unwrap();
    assert!(last.done && recs[..recs.len() - 1].iter().all(|r| !r.done));
    assert_eq!(last.kind, "progress");
    assert_eq!((last.bytes, last.size), (512 << 10, Some(512 << 10)));
    assert_eq!((last.percent, last.eta), (Some(100.0), Some(0.0)));
    assert!(last.elapsed >= 0.25, "{last:?}");
    assert!(last.avg_rate <= 2 << 20, "{last:?}");
    assert!(recs.windows(2).all(|w| w[0].bytes <= w[1].bytes));
}

#[test]
fn json_without_a_size_has_no_percentage_or_eta() {
    let out = pass(&["--json"], &random_bytes(1000, 1));
    let recs = records(&stderr(&out));
    let last = recs.last().unwrap();
    assert!(last.done);
    assert_eq!(
        (last.bytes, last.size, last.percent, last.eta),
        (1000, None, None, None)
    );
}

#[test]
fn numeric_mode_ends_at_100() {
    let out = pass(
        &["-n", "-s", "64K", "-L", "512K", "-i", "0.02"],
        &random_bytes(64 << 10, 2),
    );
    let err = stderr(&out);
    let nums: Vec<u64> = err.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(nums.last(), Some(&100), "{err}");
    assert!(nums.windows(2).all(|w| w[0] <= w[1]), "{err}");
}

#[test]
fn a_summary_line_unless_quiet_and_progress_lines_with_force() {
    let input = random_bytes(100_000, 3);
    let out = pass(&[], &input);
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("zab-ratelimit: 97.7 KiB in 0:00:00 ("),
        "{err}"
    );
    assert!(err.ends_with(" on average\n"), "{err}");
    assert_eq!(stderr(&pass(&["-q"], &input)), "");

    // -f: a progress line per update (about 50 here), then the summary.
    let out = pass(
        &["-f", "-i", "0.01", "-L", "1M", "-s", "512K"],
        &random_bytes(512 << 10, 4),
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(
        lines[0].contains(" 0:00:00 [") && lines[0].contains("% ETA "),
        "{err}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("zab-ratelimit: 512 KiB in "),
        "{err}"
    );
}

/// A progress line never wraps: with `COLUMNS=45` (a 45-column terminal)
/// every line has at most 44 characters; the summary is not cut.
#[test]
fn progress_lines_fit_the_width() {
    let mut c = zab_ratelimit(&["-f", "-i", "0.01", "-L", "1M", "-s", "512K"]);
    let mut child = c
        .env("COLUMNS", "45")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let feeder = feed(child.stdin.take().unwrap(), random_bytes(512 << 10, 4));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 3, "{err}");
    let (summary, progress) = lines.split_last().unwrap();
    for l in progress {
        assert!(l.chars().count() <= 44, "{l:?} is wider than 44");
    }
    // Cut, not dropped: the full line is longer than 44.
    assert!(progress.iter().any(|l| l.chars().count() == 44), "{err}");
    assert!(summary.starts_with("zab-ratelimit: 512 KiB in "), "{err}");
}

#[test]
fn pv_display_switches_are_accepted() {
    let input = random_bytes(5000, 6);
    let out = pass(
        &["-p", "-t", "-e", "-r", "-a", "-b", "-q", "-s", "5000"],
        &input,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == input);
}

/// Reads 1000 bytes, then goes away (`| head -c 1000`).
fn reader_goes_away(args: &[&str]) -> (ExitStatus, String) {
    let mut child = spawn(args);
    let feeder = feed(child.stdin.take().unwrap(), random_bytes(8 << 20, 13));
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1000];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = wait_at_most_a_minute(&mut child);
    let err = read_all(child.stderr.take().unwrap());
    feeder.join().unwrap();
    (status, err)
}

#[test]
fn a_reader_that_goes_away_is_a_failure_with_the_byte_count() {
    for args in [&["-q"][..], &["-q", "-C"]] {
        let (status, err) = reader_goes_away(args);
        assert_eq!(status.code(), Some(4), "{args:?}: {err}");
        assert!(
            err.starts_with("zab-ratelimit: write to stdout failed: Broken pipe"),
            "{err}"
        );
        assert!(err.contains(" bytes passed"), "{err}");
        assert!(
            err.trim_end()
                .ends_with("the rest of the input was not read"),
            "{err}"
        );
    }
}

#[test]
fn a_failing_writer_is_a_failure_with_the_lost_byte_count() {
    let src = TempFile::new("full", &random_bytes(300_000, 8));
    let out = zab_ratelimit(&["-q"])
        .stdin(File::open(&src.0).unwrap())
        .stdout(File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with(
            "zab-ratelimit: write to stdout failed: No space left on device (os error 28); \
             0 bytes passed, 131072 lost"
        ),
        "{err}"
    );
}

#[test]
fn a_failing_read_is_a_truncated_stream() {
    let out = zab_ratelimit(&["-q"])
        .stdin(File::open("/").unwrap()) // a directory: EISDIR
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert_eq!(
        err,
        "zab-ratelimit: read from stdin failed after 0 bytes: Is a directory (os error 21); \
         the output is truncated\n"
    );
}

#[test]
fn sigint_ends_the_transfer_with_the_count() {
    let mut child = spawn(&["-q", "-L", "64K"]);
    let feeder = feed(child.stdin.take().unwrap(), random_bytes(1 << 20, 9));
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap(); // the handler is in place
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_at_most_a_minute(&mut child);
    let err = read_all(child.stderr.take().unwrap());
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.starts_with("zab-ratelimit: interrupted: "), "{err}");
    assert!(err.trim_end().ends_with(" bytes passed"), "{err}");
    drop(stdout);
    feeder.join().unwrap();
}

#[test]
fn usage_errors_and_help() {
    let out = zab_ratelimit(&["-L", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = zab_ratelimit(&["--json", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = zab_ratelimit(&["--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(help.contains("Examples:\n"), "{help}");
    assert!(help.contains("zab-ratelimit -q -L 50M"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
}
