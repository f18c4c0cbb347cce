//! zab-buffer as a program: integrity on random data of many sizes, the
//! watermarks, the watchdog, and every way a transfer can fail.
//!
//! The buffer is made small (`-m 64K -s 4K`: 16 blocks) so a few hundred KiB
//! go round it many times. Nothing here asserts how long anything took: where
//! the order of events matters, the test waits for the event itself.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const SMALL: [&str; 4] = ["-m", "64K", "-s", "4K"];

fn zab_buffer(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zab-buffer"));
    c.args(args).env_clear();
    c
}

fn spawn(args: &[&str]) -> Child {
    zab_buffer(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zab-buffer starts")
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

/// Writes `data` to `stdin` in pieces of changing odd sizes, then closes it.
/// A reader that went away is not the feeder's business.
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
            piece = piece * 7 % 9973 + 1;
        }
    })
}

/// Runs zab-buffer with `input` on stdin and returns what it did.
fn pass(args: &[&str], input: &[u8]) -> Output {
    let mut child = spawn(args);
    let feeder = feed(child.stdin.take().expect("stdin"), input.to_vec());
    let out = child.wait_with_output().expect("zab-buffer ends");
    feeder.join().expect("feeder");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits for the child to end, killing it after a minute (a hang is a
/// failure, not a test that never ends).
fn wait_at_most_a_minute(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("zab-buffer did not end within a minute");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).expect("read");
    s
}

/// The number before the first `word` in `line` ("100 bytes read": 100).
fn count_before(line: &str, word: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.trim_end_matches(',') == word)
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    words[i - 1]
        .parse()
        .unwrap_or_else(|_| panic!("no count before {word:?} in {line:?}"))
}

/// The numbers in "N bytes read, M written, K lost".
fn tally(line: &str) -> (u64, u64, u64) {
    (
        count_before(line, "bytes"),
        count_before(line, "written"),
        count_before(line, "lost"),
    )
}

#[test]
fn every_byte_comes_out_in_order_for_any_size() {
    let block = 4096;
    let buffer = 16 * block;
    let sizes = [
        0,
        1,
        2,
        block - 1,
        block,
        block + 1,
        2 * block - 1,
        2 * block + 1,
        buffer - 1,
        buffer,
        buffer + 1,
        3 * buffer + 12345,
        1 << 20,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let input = random_bytes(n, i as u64 + 1);
        let mut args = SMALL.to_vec();
        args.push("-q");
        let out = pass(&args, &input);
        assert!(out.status.success(), "{n} bytes: {}", stderr(&out));
        assert_eq!(out.stdout.len(), n, "{n} bytes");
        assert!(out.stdout == input, "{n} bytes: the output differs");
        assert_eq!(stderr(&out), "", "{n} bytes");
    }
}

#[test]
fn default_buffer_with_watermarks_passes_random_data() {
    let input = random_bytes(3 << 20, 42);
    for args in [
        &["-q"][..],
        &["-q", "-m", "1M", "-s", "64K", "-P", "75", "-p", "10"],
    ] {
        let out = pass(args, &input);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(out.stdout == input, "{args:?}: the output differs");
    }
}

#[test]
fn hash_is_xxh64_of_the_stream() {
    let out = pass(&["-q", "--hash"], b"abc");
    assert_eq!(out.stdout, b"abc");
    assert_eq!(
        stderr(&out),
        "zab-buffer: xxh64 44bc2cf5ad770999, 3 bytes\n"
    );
    let out = pass(&["-q", "--hash"], b"");
    assert_eq!(
        stderr(&out),
        "zab-buffer: xxh64 ef46db3751d8e999, 0 bytes\n"
    );

    // The same stream gives the same hash however it is cut into blocks,
    // and one changed byte changes it.
    let input = random_bytes(300_001, 7);
    let small = [&SMALL[..], &["-q", "--hash"]].concat();
    let a = stderr(&pass(&small, &input));
    let b = stderr(&pass(&["-q", "--hash", "-s", "1M", "-m", "2M"], &input));
    assert_eq!(a, b);
    assert!(a.ends_with(", 300001 bytes\n"), "{a}");
    let mut changed = input.clone();
    changed[123_456] ^= 0x40;
    assert_ne!(stderr(&pass(&small, &changed)), a);
}

#[test]
fn summary_line_unless_quiet() {
    let out = pass(&[], &random_bytes(10_000, 3));
    let err = stderr(&out);
    assert!(out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("zab-buffer: 9.77 KiB in ") && err.contains(" for room, "),
        "{err}"
    );
    let out = pass(&["-q"], &random_bytes(10_000, 3));
    assert_eq!(stderr(&out), "");
}

/// On a terminal, the summary clears a progress line that another stage
/// left half drawn (`zab-ratelimit -p` before it in the pipe), so that it
/// stands on its own line. The terminal is a pty made by util-linux's
/// `script`.
#[test]
fn summary_on_a_terminal_starts_its_own_line() {
    let line = format!(
        "printf 'zab-ratelimit: 40%%' >&2; printf abcdef | '{}' >/dev/null",
        env!("CARGO_BIN_EXE_zab-buffer")
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux runs");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.starts_with("zab-ratelimit: 40%\r\x1b[Kzab-buffer: 6 B in "),
        "{shown:?}"
    );
    // Not on a terminal: the line as it is, for logs.
    let err = stderr(&pass(&[], b"abcdef"));
    assert!(err.starts_with("zab-buffer: 6 B in "), "{err:?}");
}

/// With -P 50, nothing is written until 8 of the 16 blocks are full, though
/// stdin stays open; then it flows.
#[test]
fn high_watermark_holds_output_until_reached() {
    let args = [&SMALL[..], &["-P", "50", "-v"]].concat();
    let mut child = spawn(&args);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut got = vec![0u8; 32 << 10];
        let mut first = true;
        let mut n = 0;
        while n < got.len() {
            let k = stdout.read(&mut got[n..]).unwrap();
            assert!(k > 0, "output ended early");
            if first {
                tx.send(Instant::now()).unwrap();
                first = false;
            }
            n += k;
        }
        tx.send(Instant::now()).unwrap();
        (stdout, got)
    });
    let input = random_bytes(32 << 10, 9);
    stdin.write_all(&input[..16 << 10]).unwrap(); // 4 blocks: 25 %
    thread::sleep(Duration::from_millis(300));
    let second_half = Instant::now();
    stdin.write_all(&input[16 << 10..]).unwrap(); // 8 blocks: 50 %
    let first_out = rx.recv_timeout(Duration::from_secs(60)).expect("output");
    assert!(first_out >= second_half, "wrote before reaching 50 %");
    // All 32 KiB came out while stdin is still open.
    rx.recv_timeout(Duration::from_secs(60))
        .expect("all 32 KiB");
    drop(stdin);
    let (mut stdout, got) = reader.join().unwrap();
    assert!(got == input);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let err = read_all(child.stderr.take().unwrap());
    assert!(wait_at_most_a_minute(&mut child).success(), "{err}");
    // The line for that first wait says 8 blocks were in when writing began.
    let line = err
        .lines()
        .find(|l| l.contains("writing resumed"))
        .unwrap_or_else(|| panic!("no resume line in {err}"));
    let (read, written) = (count_before(line, "bytes"), count_before(line, "written"));
    assert!(read >= 32 << 10 && written == 0, "{line}");
}

/// Counts of every "reading resumed" line of -v: (read, written).
fn resumes(err: &str) -> Vec<(u64, u64)> {
    err.lines()
        .filter(|l| l.contains("reading resumed"))
        .map(|l| (count_before(l, "bytes"), count_before(l, "written")))
        .collect()
}

/// Pushes 3 MiB through a consumer that reads slowly, with -v; returns the
/// resume counts. (zab-buffer grows its output pipe to 1 MiB: the first MiB
/// fills it, then the consumer's pace holds the writer back.)
fn slow_consumer(extra: &[&str]) -> Vec<(u64, u64)> {
    let args = [&SMALL[..], &["-v"], extra].concat();
    let mut child = spawn(&args);
    let input = random_bytes(3 << 20, 11);
    let feeder = feed(child.stdin.take().unwrap(), input.clone());
    let err = child.stderr.take().unwrap();
    let err = thread::spawn(move || read_all(err));
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        thread::sleep(Duration::from_millis(2));
    }
    feeder.join().unwrap();
    let err = err.join().unwrap();
    assert!(wait_at_most_a_minute(&mut child).success(), "{err}");
    assert!(got == input, "the output differs");
    let r = resumes(&err);
    assert!(!r.is_empty(), "the buffer never ran full: {err}");
    r
}

/// With -p 25, a full buffer is read into again only once at most 4 of its
/// 16 blocks (16 KiB) are still unwritten.
#[test]
fn low_watermark_holds_input_until_drained() {
    for (read, written) in slow_consumer(&["-p", "25"]) {
        assert!(
            read - written <= 16 << 10,
            "resumed with {} bytes unwritten",
            read - written
        );
    }
    // Without it, reading resumes as soon as one block is free: nearly the
    // whole buffer (15 blocks) is unwritten then.
    let r = slow_consumer(&[]);
    assert!(
        r.iter().any(|(read, written)| read - written > 16 << 10),
        "{r:?}"
    );
}

/// The resident memory of a process, from /proc, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    count_before(&format!("{line} kB"), "kB") * 1024
}

#[test]
fn a_full_buffer_stays_under_its_size_plus_8_mib() {
    let mut child = spawn(&["-q", "-m", "16M"]);
    let feeder = feed(child.stdin.take().unwrap(), random_bytes(64 << 20, 19));
    let stdout = child.stdout.take().unwrap(); // never read: the buffer fills
                                               // Wait until all 16 MiB of blocks were touched, then look a while longer.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rss(child.id()) < 16 << 20 {
        assert!(Instant::now() < deadline, "the buffer never filled");
        thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..10 {
        let r = rss(child.id());
        assert!(r <= 24 << 20, "RSS {r} bytes for a 16 MiB buffer");
        thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
    feeder.join().unwrap();
}

#[test]
fn watchdog_fires_when_nothing_moves() {
    let mut child = spawn(&["-W", "1", "-q"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[7u8; 100]).unwrap();
    // stdin stays open, and nothing more comes.
    let status = wait_at_most_a_minute(&mut child);
    let err = read_all(child.stderr.take().unwrap());
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(
        err.starts_with("zab-buffer: watchdog: no data moved for "),
        "{err}"
    );
    assert!(
        err.contains("; 100 bytes read, 0 written, 100 lost"),
        "{err}"
    );
    drop(stdin);
}

#[test]
fn watchdog_fires_when_the_reader_stalls() {
    let mut child = spawn(&[&SMALL[..], &["-W", "1", "-q"]].concat());
    let feeder = feed(child.stdin.take().unwrap(), random_bytes(4 << 20, 5));
    let stdout = child.stdout.take().unwrap(); // kept open, never read
    let status = wait_at_most_a_minute(&mut child);
    let err = read_all(child.stderr.take().unwrap());
    assert_eq!(status.code(), Some(4), "{err}");
    let (read, written, lost) = tally(&err);
    // 16 blocks of 4 KiB were still in the buffer.
    assert!(lost == read - written && lost >= 60 << 10, "{err}");
    drop(stdout);
    feeder.join().unwrap();
}

#[test]
fn watchdog_stays_quiet_while_data_trickles() {
    let mut child = spawn(&["-W", "3", "-q", "-s", "1", "-m", "2"]);
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..15 {
        stdin.write_all(b"x").unwrap();
        thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    let status = wait_at_most_a_minute(&mut child);
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    assert!(status.success(), "{err}");
    assert_eq!(out, "x".repeat(15));
}

#[test]
fn a_reader_that_goes_away_fails_with_the_lost_byte_count() {
    let mut child = spawn(&["-q"]);
    let feeder = feed(child.stdin.take().unwrap(), random_bytes(8 << 20, 13));
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1000];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // like `| head -c 1000`
    let status = wait_at_most_a_minute(&mut child);
    let err = read_all(child.stderr.take().unwrap());
    feeder.join().unwrap();
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(
        err.starts_with("zab-buffer: write to stdout failed: Broken pipe"),
        "{err}"
    );
    let (read, written, lost) = tally(&err);
    assert!(
        written >= 1000 && lost == read - written && lost > 0,
        "{err}"
    );
}

#[test]
fn a_failing_writer_fails_with_the_lost_byte_count() {
    let mut child = zab_buffer(&SMALL)
        .stdin(Stdio::piped())
        .stdout(File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let feeder = feed(child.stdin.take().unwrap(), random_bytes(1 << 20, 17));
    let status = wait_at_most_a_minute(&mut child);
    let err = read_all(child.stderr.take().unwrap());
    feeder.join().unwrap();
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(
        err.contains("write to stdout failed: No space left on device"),
        "{err}"
    );
    assert!(err.contains(", 0 written, "), "{err}");
    assert!(
        err.trim_end()
            .ends_with("and the rest of the input was not read"),
        "{err}"
    );
}

#[test]
fn a_failing_read_is_a_truncated_stream() {
    let out = zab_buffer(&["-q"])
        .stdin(File::open("/").unwrap()) // read(2) on a directory: EISDIR
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("read from stdin failed: Is a directory"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("the output is truncated"), "{err}");
}

#[test]
fn sigint_ends_the_transfer_with_the_counts() {
    let mut child = spawn(&["-q"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[1u8; 200 << 10]).unwrap(); // more than one block
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
    assert!(err.starts_with("zab-buffer: interrupted: "), "{err}");
    let (read, written, lost) = tally(&err);
    assert!(
        (128 << 10..=200 << 10).contains(&read) && lost == read - written,
        "{err}"
    );
    drop(stdin);
}

#[test]
fn bad_sizes_are_usage_errors() {
    let out = zab_buffer(&["-m", "4K", "-s", "4K"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "zab-buffer: --memory (4096) must hold at least 2 blocks of --block (4096)\n"
    );
    let out = zab_buffer(&["-P", "120"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A buffer larger than the memory available is a usage error before any
/// byte moves, not an abort (SIGABRT) from a failed allocation.
#[test]
fn a_buffer_larger_than_memory_is_a_usage_error() {
    let out = zab_buffer(&["-m", "1T"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("zab-buffer: --memory 1.00 TiB is more than the memory available"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
}

/// An allocation that fails although the memory looked available (here a
/// 512 MiB address-space limit against a 1 GiB buffer) is the same usage
/// error, not an abort.
#[test]
fn a_failed_allocation_is_a_usage_error() {
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 524288 && exec \"$0\" -q -m 1G"])
        .arg(env!("CARGO_BIN_EXE_zab-buffer"))
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("zab-buffer: cannot allocate the buffer (--memory 1.00 GiB): "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Values that are not what the option takes say so: a watchdog in
/// exponent notation or beyond the limit is not "below 0", and a byte
/// count with a fraction needs a unit.
#[test]
fn bad_values_say_what_is_wrong() {
    let out = zab_buffer(&["-W", "1e10"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("invalid duration \"1e10\""), "{err}");
    assert!(!err.contains("above 0"), "{err}");
    let out = zab_buffer(&["-W", "99999999999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("is too large"), "{err}");
    let out = zab_buffer(&["-m", "1.5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("whole number of bytes"), "{err}");
}

#[test]
fn help_has_examples_and_exit_codes() {
    let out = zab_buffer(&["--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(help.contains("Examples:\n"), "{help}");
    assert!(help.contains("zab-buffer -q -m 16M"), "{help}");
    assert!(help.contains("Exit status:"), "{help}");
}
