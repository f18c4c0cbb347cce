//! zab-ratelimit's run: the transfer in the main thread, progress in a
//! second one.
//!
//! The transfer asks the token bucket how much may go, moves it, and stores
//! the running byte count in an atomic; that is all it shares. The progress
//! thread reads the count every interval, so the display keeps moving (and
//! shows the rate falling) while the transfer is blocked in the kernel.
//!
//! Data moves with splice(2) when stdin or stdout is a pipe (Linux): the
//! kernel moves pages from one file to the other and nothing is copied
//! through this process, which is how pv is faster than cat. Anything
//! splice(2) refuses (EINVAL: a terminal, an O_APPEND file) falls back to
//! read(2) and write(2) through one buffer, as does `-C`. Pipes on either
//! side are grown to 1 MiB, which cuts the system calls by 16, and an empty
//! input pipe is tried a few times before sleeping on it ([`Spin`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use zab_core::error::Error;
use zab_core::progress::{fit_line, line, numeric, summary, width, Meter, Record, WINDOW};

use crate::bucket::{Grant, TokenBucket};
use crate::cli::{Config, Show};

const TOOL: &str = "zab-ratelimit";

/// The most one splice(2) is asked to move (it moves what the pipe holds).
const SPLICE_MAX: u64 = 1 << 20;
/// The buffer of the read(2)/write(2) path, as cat's.
const BUFFER: usize = 128 << 10;

pub fn run(cfg: &Config) -> Result<(), Error> {
    let input = io::stdin().as_fd().try_clone_to_owned();
    let input = File::from(input.map_err(|e| Error::Io(format!("stdin: {e}")))?);
    let output = io::stdout().as_fd().try_clone_to_owned();
    let output = File::from(output.map_err(|e| Error::Io(format!("stdout: {e}")))?);
    let start = Instant::now();
    let passed = Arc::new(AtomicU64::new(0));

    let (c, redraw) = (passed.clone(), cfg.show == Show::Redraw);
    ctrlc::set_handler(move || {
        if redraw {
            eprintln!();
        }
        let e = Error::Interrupted(format!("{} bytes passed", c.load(Relaxed)));
        eprintln!("{TOOL}: {e}");
        std::process::exit(e.exit().code().into());
    })
    .map_err(|e| Error::Io(format!("cannot handle signals: {e}")))?;

    let (done_tx, done_rx) = mpsc::channel();
    let display = match cfg.show {
        Show::Nothing => None,
        _ => {
            let (c, cfg) = (passed.clone(), cfg.clone());
            Some(
                thread::Builder::new()
                    .name("progress".into())
                    .spawn(move || display(&cfg, done_rx, &c, start))?,
            )
        }
    };
    let result = transfer(&input, &output, cfg, start, &passed);
    let _ = done_tx.send(result.is_ok());
    if let Some(d) = display {
        let _ = d.join();
    }
    result
}

/// Moves everything from `input` to `output`, within the rate.
fn transfer(
    input: &File,
    output: &File,
    cfg: &Config,
    start: Instant,
    passed: &AtomicU64,
) -> Result<(), Error> {
    let mut bucket = cfg.rate.map(|r| TokenBucket::for_rate(r, Duration::ZERO));
    let mut use_splice = cfg.splice && splice::possible(input, output);
    splice::grow_pipes(&[input, output]);
    let mut buf = Vec::new(); // allocated once, if splice(2) is not used
    let mut spin = Spin::new();
    let mut total = 0u64;
    loop {
        let max = if use_splice {
            SPLICE_MAX
        } else {
            BUFFER as u64
        };
        let want = match &mut bucket {
            None => max,
            Some(b) => loop {
                match b.grant(start.elapsed(), max) {
                    Grant::Go(n) => break n,
                    Grant::Wait(d) => thread::sleep(d),
                }
            },
        };
        let n = if use_splice {
            match spliced(input, output, want, &mut spin) {
                Ok(n) => n,
                Err(splice::Error::Unsupported) => {
                    use_splice = false;
                    continue;
                }
                Err(splice::Error::WouldBlock) => {
                    // Only with an O_NONBLOCK file: nothing to wait on but time.
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(splice::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(splice::Error::Io(e)) => return Err(splice_failed(&e, total)),
            }
        } else {
            if buf.is_empty() {
                buf = vec![0u8; BUFFER];
            }
            copy_once(input, output, &mut buf[..want as usize], total)?
        };
        if n == 0 {
            return Ok(());
        }
        if let Some(b) = &mut bucket {
            b.spend(n);
        }
        total += n;
        passed.store(total, Relaxed);
    }
}

/// One splice(2) of up to `max` bytes: first non-blocking ones while
/// [`Spin`] says so, then a blocking one.
fn spliced(input: &File, output: &File, max: u64, spin: &mut Spin) -> Result<u64, splice::Error> {
    for k in 0..spin.tries {
        match splice::once(input, output, max, true) {
            Err(splice::Error::WouldBlock) => thread::yield_now(),
            r => {
                spin.found(Some(k));
                return r;
            }
        }
    }
    spin.found(None);
    splice::once(input, output, max, false)
}

/// How often to try for data before sleeping in the kernel.
///
/// When the input pipe is empty, a blocking splice(2) sleeps, and the
/// producer's next write has to wake it: two context switches for every
/// write, which slows a producer of small writes (`head -c` writes 4 KiB)
/// by a third. So the transfer first tries a few non-blocking splices,
/// yielding the CPU between them, and sleeps only when none found data. The
/// number of tries adapts: it doubles (up to [`Spin::MAX`]) when trying
/// found data, and halves (down to 1) when it did not, so a slow producer
/// soon costs one more system call per wait, and no CPU.
#[derive(Debug)]
struct Spin {
    tries: u32,
}

impl Spin {
    const MAX: u32 = 128;

    fn new() -> Self {
        Spin { tries: 16 }
    }

    /// Data was found at try `k` (0: at once, which says nothing), or not.
    fn found(&mut self, at: Option<u32>) {
        match at {
            Some(0) => {}
            Some(_) => self.tries = (self.tries * 2).min(Self::MAX),
            None => self.tries = (self.tries / 2).max(1),
        }
    }
}

/// One read(2) into `buf` and the write(2)s that pass it on. Returns the
/// bytes moved, 0 at the end of the input.
fn copy_once(
    mut input: &File,
    mut output: &File,
    buf: &mut [u8],
    total: u64,
) -> Result<u64, Error> {
    let n = loop {
        match input.read(buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Io(format!(
                    "read from stdin failed after {total} bytes: {e}; the output is truncated"
                )))
            }
        }
    };
    let mut written = 0;
    while written < n {
        match output.write(&buf[written..n]) {
            Ok(0) => {
                return Err(write_failed(
                    &io::ErrorKind::WriteZero.into(),
                    total,
                    written,
                    n,
                ))
            }
            Ok(k) => written += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(write_failed(&e, total, written, n)),
        }
    }
    Ok(n as u64)
}

fn write_failed(e: &io::Error, total: u64, written: usize, read: usize) -> Error {
    Error::Io(format!(
        "write to stdout failed: {e}; {} bytes passed, {} lost, and the rest of the input was not read",
        total + written as u64,
        read - written
    ))
}

fn splice_failed(e: &io::Error, total: u64) -> Error {
    // A failed splice(2) moved nothing: what was not passed on is still in
    // the input, which nobody will read now.
    let what = if e.kind() == io::ErrorKind::BrokenPipe {
        "write to stdout failed"
    } else {
        "passing data from stdin to stdout failed"
    };
    Error::Io(format!(
        "{what}: {e}; {total} bytes passed, and the rest of the input was not read"
    ))
}

/// The progress thread: a sample every interval until the transfer ends
/// (true: every byte passed), then the last word.
fn display(cfg: &Config, done: Receiver<bool>, passed: &AtomicU64, start: Instant) {
    let mut meter = Meter::new(cfg.size, WINDOW, cfg.interval);
    let ok = loop {
        let tick = match cfg.show {
            Show::Summary => done.recv().map_err(|_| RecvTimeoutError::Disconnected),
            _ => done.recv_timeout(cfg.interval),
        };
        match tick {
            Ok(ok) => break ok,
            Err(RecvTimeoutError::Disconnected) => break false,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let p = meter.sample(start.elapsed(), passed.load(Relaxed));
        match cfg.show {
            Show::Redraw => eprint!("\r{}\x1b[K", fit_line(&line(&p), width())),
            Show::Lines => eprintln!("{}", fit_line(&line(&p), width())),
            Show::Numeric => eprintln!("{}", numeric(&p)),
            Show::Json => eprintln!("{}", Record::new(&p, false).to_line()),
            Show::Summary | Show::Nothing => {}
        }
    };
    let p = meter.sample(start.elapsed(), passed.load(Relaxed));
    match (cfg.show, ok) {
        (Show::Redraw, true) => eprint!("\r{TOOL}: {}\x1b[K\n", summary(&p)),
        (Show::Redraw, false) => eprintln!(), // keep the last line; the error follows
        (Show::Lines | Show::Summary, true) => eprintln!("{TOOL}: {}", summary(&p)),
        (Show::Numeric, true) => eprintln!("{}", numeric(&p)),
        (Show::Json, true) => eprintln!("{}", Record::new(&p, true).to_line()),
        _ => {}
    }
}

/// splice(2), where there is one.
#[cfg(target_os = "linux")]
mod splice {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileTypeExt;

    use nix::errno::Errno;
    use nix::fcntl::{fcntl, splice, FcntlArg, SpliceFFlags};

    #[derive(Debug)]
    pub enum Error {
        /// splice(2) does not work between these two files.
        Unsupported,
        /// Nothing to move now (non-blocking).
        WouldBlock,
        Io(io::Error),
    }

    /// splice(2) needs a pipe on one side.
    pub fn possible(input: &File, output: &File) -> bool {
        let fifo = |f: &File| f.metadata().is_ok_and(|m| m.file_type().is_fifo());
        fifo(input) || fifo(output)
    }

    /// Asks for 1 MiB pipes (the most an unprivileged process may ask for,
    /// /proc/sys/fs/pipe-max-size): 16 times fewer splice(2) and context
    /// switches than with the default 64 KiB. Files that are no pipes, or a
    /// refusal, are left as they are.
    pub fn grow_pipes(files: &[&File]) {
        for f in files {
            let _ = fcntl(f, FcntlArg::F_SETPIPE_SZ(1 << 20));
        }
    }

    /// Moves up to `max` bytes; 0 at the end of the input.
    pub fn once(input: &File, output: &File, max: u64, nonblocking: bool) -> Result<u64, Error> {
        let len = usize::try_from(max).unwrap_or(usize::MAX);
        let mut flags = SpliceFFlags::SPLICE_F_MOVE;
        if nonblocking {
            flags |= SpliceFFlags::SPLICE_F_NONBLOCK;
        }
        match splice(input, None, output, None, len, flags) {
            Ok(n) => Ok(n as u64),
            Err(Errno::EAGAIN) => Err(Error::WouldBlock),
            Err(Errno::EINVAL | Errno::ENOSYS) => Err(Error::Unsupported),
            Err(e) => Err(Error::Io(io::Error::from(e))),
        }
    }
}

/// No splice(2) here: always read(2) and write(2).
#[cfg(not(target_os = "linux"))]
mod splice {
    use std::fs::File;
    use std::io;

    #[derive(Debug)]
    pub enum Error {
        Unsupported,
        WouldBlock,
        Io(io::Error),
    }

    pub fn possible(_: &File, _: &File) -> bool {
        false
    }

    pub fn grow_pipes(_: &[&File]) {}

    pub fn once(_: &File, _: &File, _: u64, _: bool) -> Result<u64, Error> {
        Err(Error::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_adapts_to_the_producer() {
        let mut s = Spin::new();
        assert_eq!(s.tries, 16);
        s.found(Some(3)); // trying paid off: try longer
        assert_eq!(s.tries, 32);
        for _ in 0..10 {
            s.found(Some(1));
        }
        assert_eq!(s.tries, Spin::MAX);
        s.found(Some(0)); // data was there at once: says nothing
        assert_eq!(s.tries, Spin::MAX);
        for _ in 0..20 {
            s.found(None); // a slow producer: down to one try per wait
        }
        assert_eq!(s.tries, 1);
        s.found(Some(0));
        assert_eq!(s.tries, 1);
    }
}
