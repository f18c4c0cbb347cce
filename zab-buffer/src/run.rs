//! zab-buffer's run: a reader thread, a writer thread, and the main thread
//! watching them.
//!
//! Both ends are the raw file descriptors 0 and 1 (duplicated into `File`s),
//! read and written with plain read(2)/write(2) of whole blocks: no
//! `io::stdout()` line buffer, no copy beyond the kernel's. Pipes on either
//! side are grown to 1 MiB. The main thread
//! waits for the first thing to happen: a thread ending, SIGINT/SIGTERM, or
//! (with `-W`) a watchdog tick. Any failure ends the process at once with a
//! line saying how many bytes were read, written and lost; the other thread
//! may still be blocked in the kernel, and exiting is what unblocks it.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use zab_core::cli::format_bytes;
use zab_core::error::Error;

use crate::cli::Config;
use crate::pool::{pool, Drainer, Filler};
use crate::xxh64::Xxh64;

const TOOL: &str = "zab-buffer";

/// Byte counters shared by the threads. The only shared state.
#[derive(Debug, Default)]
struct Counts {
    read: AtomicU64,
    written: AtomicU64,
}

impl Counts {
    fn read(&self) -> u64 {
        self.read.load(Relaxed)
    }
    fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }
    /// "N bytes read, M written, K lost" for error lines.
    fn tally(&self) -> String {
        let (r, w) = (self.read(), self.written());
        format!("{r} bytes read, {w} written, {} lost", r.saturating_sub(w))
    }
}

/// What the main thread hears about.
#[derive(Debug)]
enum Event {
    /// The reader ended: at the end of the input (true), or because the
    /// writer was gone (false); with how long it waited for room.
    Read(io::Result<(bool, Duration)>),
    /// The writer ended: all written (with the hash if asked for).
    Wrote(io::Result<(Option<u64>, Duration)>),
    Interrupted,
}

/// How the reader ended: whether at the end of the input, and how long it
/// waited for room.
type ReaderEnd = (bool, Duration);
/// How the writer ended: the hash (if asked for), and how long it waited
/// for data.
type WriterEnd = (Option<u64>, Duration);

pub fn run(cfg: &Config) -> Result<(), Error> {
    let (input, output) = open_ends()?;
    let (filler, drainer) = allocate(cfg)?;
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let events = start_threads(cfg, input, output, filler, drainer, &counts)?;
    let ((_, reader_waited), (hash, writer_waited)) = watch(cfg, &events, &counts)?;
    finish(
        cfg,
        &counts,
        start.elapsed(),
        reader_waited,
        writer_waited,
        hash,
    )
}

/// stdin and stdout as `File`s of their own, pipes grown.
fn open_ends() -> Result<(File, File), Error> {
    let input = io::stdin().as_fd().try_clone_to_owned();
    let input = File::from(input.map_err(|e| Error::Io(format!("stdin: {e}")))?);
    let output = io::stdout().as_fd().try_clone_to_owned();
    let output = File::from(output.map_err(|e| Error::Io(format!("stdout: {e}")))?);
    grow_pipes(&[&input, &output]);
    Ok((input, output))
}

/// The blocks, allocated before any byte moves.
fn allocate(cfg: &Config) -> Result<(Filler, Drainer), Error> {
    pool(cfg.blocks, cfg.block, cfg.start_writing, cfg.resume_reading).map_err(|e| {
        Error::Usage(format!(
            "cannot allocate the buffer (--memory {}): {e}",
            format_bytes(cfg.bytes() as u64)
        ))
    })
}

/// The signal handler, the reader and the writer, each telling the main
/// thread when it is done.
fn start_threads(
    cfg: &Config,
    input: File,
    output: File,
    filler: Filler,
    drainer: Drainer,
    counts: &Arc<Counts>,
) -> Result<Receiver<Event>, Error> {
    let (tx, rx) = mpsc::channel();
    // Before any byte moves, so an interrupted transfer always says so.
    let t = tx.clone();
    ctrlc::set_handler(move || {
        let _ = t.send(Event::Interrupted);
    })
    .map_err(|e| Error::Io(format!("cannot handle signals: {e}")))?;

    let verbose = cfg.verbose;
    let (c, t) = (counts.clone(), tx.clone());
    thread::Builder::new()
        .name("reader".into())
        .spawn(move || {
            let r = read_loop(input, filler, &c, verbose);
            let _ = t.send(Event::Read(r));
        })?;
    let (c, hash) = (counts.clone(), cfg.hash);
    thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            let r = write_loop(output, drainer, &c, hash.then(Xxh64::new), verbose);
            let _ = tx.send(Event::Wrote(r));
        })?;
    Ok(rx)
}

/// Waits for both threads to end well; the first failure, interruption or
/// watchdog alarm ends the wait with its error.
fn watch(
    cfg: &Config,
    events: &Receiver<Event>,
    counts: &Counts,
) -> Result<(ReaderEnd, WriterEnd), Error> {
    let mut watchdog = cfg
        .watchdog
        .map(|limit| Watchdog::new(limit, Instant::now()));
    let tick = cfg
        .watchdog
        .map(|w| (w / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    let mut reader = None;
    let mut writer = None;
    while let Some(event) = next_event(events, tick, watchdog.as_mut(), counts)? {
        match event {
            Event::Read(Ok(r)) => reader = Some(r),
            Event::Read(Err(e)) => {
                return Err(Error::Io(format!(
                    "read from stdin failed: {e}; {}; the output is truncated",
                    counts.tally()
                )))
            }
            Event::Wrote(Ok(w)) => writer = Some(w),
            Event::Wrote(Err(e)) => {
                return Err(Error::Io(format!(
                    "write to stdout failed: {e}; {}{}",
                    counts.tally(),
                    match reader {
                        Some((true, _)) => "",
                        _ => ", and the rest of the input was not read",
                    }
                )))
            }
            Event::Interrupted => {
                return Err(Error::Interrupted(counts.tally()));
            }
        }
        // The writer ends only after the reader has; the reader's event (an
        // error, perhaps) is the last one to wait for.
        if let (Some(r), Some(w)) = (reader, writer) {
            return Ok((r, w));
        }
    }
    Err(Error::Io(
        "internal error: a thread ended without a word".into(),
    ))
}

/// The next event (None: every sender is gone). With a watchdog, wakes up
/// every `tick` to check that bytes still move, and fails when they have
/// not for its limit.
fn next_event(
    events: &Receiver<Event>,
    tick: Option<Duration>,
    mut watchdog: Option<&mut Watchdog>,
    counts: &Counts,
) -> Result<Option<Event>, Error> {
    let Some(tick) = tick else {
        return Ok(events.recv().ok());
    };
    loop {
        match events.recv_timeout(tick) {
            Ok(e) => return Ok(Some(e)),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Some(w) = watchdog.as_deref_mut() {
            let moved = counts.read() + counts.written();
            if let Some(idle) = w.check(moved, Instant::now()) {
                return Err(Error::Io(format!(
                    "watchdog: no data moved for {:.1} s; {}",
                    idle.as_secs_f64(),
                    counts.tally()
                )));
            }
        }
    }
}

/// The summary and hash lines, once every byte was written.
fn finish(
    cfg: &Config,
    counts: &Counts,
    elapsed: Duration,
    reader_waited: Duration,
    writer_waited: Duration,
    hash: Option<u64>,
) -> Result<(), Error> {
    let (r, w) = (counts.read(), counts.written());
    if r != w {
        // Cannot happen: every block read is written before the writer ends.
        return Err(Error::Io(format!(
            "internal error: {r} bytes read but {w} written"
        )));
    }
    // On a terminal, another stage's progress line (zab-ratelimit -p, pv)
    // may be half drawn where the cursor is: clear it, so that these lines
    // stand on their own and the progress goes on below them.
    let start = if io::stderr().is_terminal() {
        "\r\x1b[K"
    } else {
        ""
    };
    if let Some(h) = hash {
        eprintln!("{start}{TOOL}: xxh64 {h:016x}, {w} bytes");
    }
    if !cfg.quiet {
        let secs = elapsed.as_secs_f64();
        eprintln!(
            "{start}{TOOL}: {} in {:.2} s ({}/s); waited {:.2} s for room, {:.2} s for data",
            format_bytes(w),
            secs,
            format_bytes((w as f64 / secs.max(1e-9)) as u64),
            reader_waited.as_secs_f64(),
            writer_waited.as_secs_f64(),
        );
    }
    Ok(())
}

/// Fills blocks from `input` and hands them to the writer until the input
/// ends (or the writer is gone). Returns whether the input ended, and how
/// long it waited for room.
fn read_loop(
    mut input: File,
    mut filler: Filler,
    counts: &Counts,
    verbose: bool,
) -> io::Result<(bool, Duration)> {
    loop {
        let Some(mut block) = filler.free_block() else {
            return Ok((false, filler.waited()));
        };
        if let (true, Some(w)) = (verbose, filler.take_wait()) {
            eprintln!(
                "{TOOL}: buffer full for {:.3} s; reading resumed at {} bytes read, {} written",
                w.as_secs_f64(),
                counts.read(),
                counts.written()
            );
        }
        let mut eof = false;
        while !block.is_full() {
            match input.read(block.spare()) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    block.filled(n);
                    counts.read.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !block.is_empty() && filler.send(block).is_err() {
            return Ok((false, filler.waited()));
        }
        if eof {
            return Ok((true, filler.waited()));
        }
    }
}

/// Writes full blocks to `output`, in order, and gives them back. Returns
/// the hash (if asked for) and how long it waited for data.
fn write_loop(
    mut output: File,
    mut drainer: Drainer,
    counts: &Counts,
    mut hash: Option<Xxh64>,
    verbose: bool,
) -> io::Result<(Option<u64>, Duration)> {
    while let Some(block) = drainer.full_block() {
        if let (true, Some(w)) = (verbose, drainer.take_wait()) {
            eprintln!(
                "{TOOL}: buffer empty for {:.3} s; writing resumed at {} bytes read, {} written",
                w.as_secs_f64(),
                counts.read(),
                counts.written()
            );
        }
        let mut data = block.data();
        while !data.is_empty() {
            match output.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    data = &data[n..];
                    counts.written.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(h) = &mut hash {
            h.update(block.data());
        }
        drainer.recycle(block);
    }
    Ok((hash.map(|h| h.digest()), drainer.waited()))
}

/// Asks for 1 MiB pipes (the most an unprivileged process may ask for,
/// /proc/sys/fs/pipe-max-size): a block then goes in one read(2) or write(2)
/// instead of two, with fewer context switches on the other side. Files that
/// are no pipes, or a refusal, are left as they are.
#[cfg(target_os = "linux")]
fn grow_pipes(files: &[&File]) {
    use nix::fcntl::{fcntl, FcntlArg};
    for f in files {
        let _ = fcntl(f, FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
}

#[cfg(not(target_os = "linux"))]
fn grow_pipes(_: &[&File]) {}

/// Fires when the byte count has not changed for `limit`. Pure: the caller
/// passes the time.
#[derive(Debug)]
struct Watchdog {
    limit: Duration,
    last_count: u64,
    last_move: Instant,
}

impl Watchdog {
    fn new(limit: Duration, now: Instant) -> Self {
        Watchdog {
            limit,
            last_count: 0,
            last_move: now,
        }
    }

    /// Given the bytes moved so far, how long nothing moved, once that
    /// reaches the limit.
    fn check(&mut self, count: u64, now: Instant) -> Option<Duration> {
        if count != self.last_count {
            self.last_count = count;
            self.last_move = now;
            return None;
        }
        let idle = now.saturating_duration_since(self.last_move);
        (idle >= self.limit).then_some(idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_fires_only_after_the_limit_without_movement() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = Watchdog::new(s(5), t0);
        assert_eq!(w.check(0, t0 + s(4)), None);
        assert_eq!(w.check(10, t0 + s(6)), None); // moved: starts again
        assert_eq!(w.check(10, t0 + s(10)), None);
        assert_eq!(w.check(10, t0 + s(11)), Some(s(5)));
        assert_eq!(w.check(10, t0 + s(12)), Some(s(6)));
        assert_eq!(w.check(11, t0 + s(13)), None);
    }

    #[test]
    fn tally_names_the_lost_bytes() {
        let c = Counts::default();
        c.read.store(300, Relaxed);
        c.written.store(100, Relaxed);
        assert_eq!(c.tally(), "300 bytes read, 100 written, 200 lost");
    }
}
