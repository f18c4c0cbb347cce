//! One object into `zfs recv`: the object streams from the store (its
//! pieces from the download of the whole plan, [`Download`]) into the
//! receiving side (`[DECOMPRESS |] zfs recv OPTIONS TARGET`, a shell line
//! on the target host), and its SHA-256 is computed on the way (by the
//! download, on its own thread, over the pieces in order). The last
//! [`HOLD`] bytes are held back until the hash is known: a `zfs send`
//! stream ends with its END record, so `zfs recv` cannot commit the
//! snapshot before it has them. On a mismatch (or a short object) the
//! receiving side is stopped without them, and nothing of the object is
//! committed (for a `-I` stream, the snapshots before its last one are
//! committed as they come; `zfs recv` checks each of them against the
//! stream's own checksums).
//!
//! An object whose partial receive goes on passes through a
//! [`Resumer`] (resume.rs) between the bytes held back and the receiving
//! side, and only the resuming stream made from it is written. The
//! object is downloaded and hashed whole, or, from a checkpoint
//! (checkpoint.rs), from the checkpoint's piece on, its hash going on
//! from the midstate saved there: still the whole object's hash. While an
//! uncompressed object streams in, a [`Walker`] takes checkpoints on the
//! way (a [`Walk`]). A compressed one is
//! decompressed here first ([`Local`], decompress.rs), and the receiving
//! side is `zfs recv` alone: the pieces (hashed) go into the
//! decompressor, its output through [`HoldBack`] into the [`Resumer`],
//! and the last [`HOLD`] bytes of the decompressed stream wait for the
//! hash of the whole stored object.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use zab_core::Host;
use zab_store::download::Download;
use zab_store::manifest::Entry;
use zab_store::Store;

use crate::checkpoint::{self, Checkpoint, Walker};
use crate::decompress::Local;
use crate::resume::{corrupt_in, unsupported_in, Resumer, Token};

/// The bytes held back until the hash is checked: an END record is 312
/// bytes, and a compressed block of zstd, gzip, xz or lz4 well below this.
pub const HOLD: usize = 1 << 20;

/// The receiving side running now, so that SIGINT or SIGTERM stops it.
#[derive(Debug, Default)]
pub struct Running {
    pid: AtomicU32,
    /// Whether the pid leads a process group of its own (a local side).
    group: AtomicBool,
    pub stopped: AtomicBool,
}

impl Running {
    fn set(&self, child: &Child, group: bool) {
        self.group.store(group, Ordering::SeqCst);
        self.pid.store(child.id(), Ordering::SeqCst);
    }

    fn clear(&self) {
        self.pid.store(0, Ordering::SeqCst);
    }

    /// Stops the receiving side (SIGTERM): a local side's whole process
    /// group, a remote side's ssh (which ends the remote side with it).
    pub fn stop_child(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        let Ok(pid) = i32::try_from(pid) else { return };
        if pid == 0 {
            return;
        }
        let pid = Pid::from_raw(pid);
        let _ = match self.group.load(Ordering::SeqCst) {
            true => killpg(pid, Signal::SIGTERM),
            false => kill(pid, Signal::SIGTERM),
        };
    }

    /// SIGINT or SIGTERM: marks the run stopped and stops the receive.
    pub fn interrupt(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop_child();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// A writer that passes everything on except the last `hold` bytes,
/// which [`HoldBack::release`] writes once the caller knows they may go.
struct HoldBack<W> {
    inner: W,
    held: Vec<u8>,
    hold: usize,
    total: u64,
}

impl<W: Write> HoldBack<W> {
    fn new(inner: W, hold: usize) -> Self {
        HoldBack {
            inner,
            held: Vec::with_capacity(2 * hold),
            hold,
            total: 0,
        }
    }

    /// The bytes seen.
    fn total(&self) -> u64 {
        self.total
    }

    /// Writes the bytes held back; returns the writer.
    fn release(mut self) -> std::io::Result<W> {
        self.inner.write_all(&self.held)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for HoldBack<W> {
    /// Small writes gather in `held` up to twice `hold`; a large one goes
    /// out mostly straight from `buf`, only its last `hold` bytes copied.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total += buf.len() as u64;
        if self.held.len() + buf.len() < 2 * self.hold {
            self.held.extend_from_slice(buf);
            return Ok(buf.len());
        }
        let out = self.held.len() + buf.len() - self.hold;
        let from_held = out.min(self.held.len());
        self.inner.write_all(&self.held[..from_held])?;
        self.held.drain(..from_held);
        let from_buf = out - from_held;
        self.inner.write_all(&buf[..from_buf])?;
        self.held.extend_from_slice(&buf[from_buf..]);
        Ok(buf.len())
    }

    /// Flushes what was passed on; the bytes held back stay.
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why a receive failed: one line that names the object.
#[derive(Debug)]
pub enum Failure {
    /// The resuming stream cannot be made from the object (the receive
    /// was stopped; the object goes again whole).
    Unsupported(String),
    /// The object is not what the manifest says: nothing of it may stay.
    Corrupt(String),
    /// Interrupted, the store, or zfs recv: what was received stays as a
    /// partial receive that the next run goes on with.
    Other(String),
}

impl Failure {
    pub fn message(self) -> String {
        match self {
            Failure::Unsupported(m) | Failure::Corrupt(m) | Failure::Other(m) => m,
        }
    }
}

/// How an object goes into the receive.
#[derive(Debug, Default)]
pub struct Via<'a> {
    /// The resuming stream for this token, made from the object's first
    /// byte, or from a checkpoint (the download starting at its piece).
    pub resume: Option<(&'a Token, Option<&'a Checkpoint>)>,
    /// The checkpoints taken on the way, appended to a file.
    pub walk: Option<Walk>,
}

/// A walk of the object's records ([`Walker`]) and its checkpoint file.
#[derive(Debug)]
pub struct Walk {
    pub walker: Walker,
    pub file: std::fs::File,
}

impl Walk {
    /// Takes a piece; its checkpoints appended to the file (a failed
    /// write is no failure of the restore: the walk stops).
    fn piece(walk: &mut Option<Walk>, p: &zab_store::download::Piece) {
        let Some(w) = walk else { return };
        let cps = w.walker.feed(p.at, p.midstate, &p.bytes);
        if checkpoint::append(&mut w.file, &cps).is_err() {
            *walk = None;
        }
    }
}

/// Receives object `e`, the `index`th of `download`, through the shell
/// line `line` on `host`, as `via` says. The bytes of the object
/// received (all of them, though only those from a checkpoint's piece
/// were downloaded).
pub fn receive(
    store: &Store,
    e: &Entry,
    (download, index): (&mut Download, usize),
    host: &Host,
    line: &str,
    running: &Running,
    via: Via,
) -> Result<u64, Failure> {
    let url = store.url_of(&e.key);
    let (mut child, err_thread) = start(host, line, running).map_err(Failure::Other)?;
    let result = feed(&mut child, e, (download, index), &url, running, via);
    if result.is_err() {
        // Without the bytes held back, zfs recv commits nothing; stop it.
        running.stop_child();
    }
    let status = child.wait();
    running.clear();
    let msgs = err_thread.join().unwrap_or_default();
    outcome(&url, result, status, &msgs)
}

/// Starts the receiving side (`line` on `host`, in a process group of its
/// own when local) and a thread that reads its stderr.
fn start(
    host: &Host,
    line: &str,
    running: &Running,
) -> Result<(Child, std::thread::JoinHandle<String>), String> {
    let mut cmd = host
        .command(&["sh", "-c", line])
        .map_err(|e| e.to_string())?;
    let local = host.dest().is_none();
    if local {
        cmd.process_group(0);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|err| format!("cannot start {line:?} on {}: {err}", host.name()))?;
    running.set(&child, local);
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = stderr {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    Ok((child, err_thread))
}

/// Streams the object (or the resuming stream made from it) into the
/// receiving side's stdin, all but the bytes held back; checks its size
/// and hash; then lets them through (or not).
fn feed(
    child: &mut Child,
    e: &Entry,
    dl: (&mut Download, usize),
    url: &str,
    running: &Running,
    via: Via,
) -> Result<u64, Stop> {
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| Stop::Store("no stdin to zfs recv".into()))?;
    grow_pipe(&stdin);
    let walk = via.walk;
    match via.resume {
        None => feed_through(HoldBack::new(stdin, HOLD), e, dl, (url, 0), running, walk),
        Some((t, cp)) => {
            let (r, from) = match cp {
                None => (Resumer::new(stdin, t.clone()), 0),
                Some(cp) => (
                    Resumer::from_checkpoint(stdin, t.clone(), cp)
                        .map_err(|err| write_failed(url, &err))?,
                    cp.piece,
                ),
            };
            let w = HoldBack::new(r, HOLD);
            let decompressor = e
                .compressor
                .as_deref()
                .map(|c| zab_core::compress::decompressor(c).ok_or(c));
            match decompressor {
                None => feed_through(w, e, dl, (url, from), running, walk),
                Some(Ok(program)) => feed_decompressed(program, w, e, dl, url, running),
                Some(Err(c)) => Err(Stop::Unsupported(format!(
                    "{url}: compressed with {c:?}, which this zab does not know"
                ))),
            }
        }
    }
}

/// [`feed`] of a compressed object through `program` here, its output
/// into `w` (the resuming stream's [`HoldBack`]).
fn feed_decompressed<W: Write + Send + 'static>(
    program: &'static str,
    w: HoldBack<W>,
    e: &Entry,
    (download, index): (&mut Download, usize),
    url: &str,
    running: &Running,
) -> Result<u64, Stop> {
    let mut d = Local::start(program, w).map_err(|err| write_failed(url, &err))?;
    let sha = pieces(download, index, url, &mut d, running, None)?;
    check(e, url, d.written, &sha, running)?;
    let bytes = d.written;
    // Its input ended, the decompressor's output is all in `w`, the last
    // bytes held back; the hash is checked, so they may go.
    let w = d.finish().map_err(|err| write_failed(url, &err))?;
    w.release()
        .map(|_| bytes)
        .map_err(|err| write_failed(url, &err))
}

/// [`feed`] through `w`, the object from byte `from` on.
fn feed_through<W: Write>(
    mut w: HoldBack<W>,
    e: &Entry,
    (download, index): (&mut Download, usize),
    (url, from): (&str, u64),
    running: &Running,
    walk: Option<Walk>,
) -> Result<u64, Stop> {
    let sha = pieces(download, index, url, &mut w, running, walk)?;
    let bytes = from + w.total();
    check(e, url, bytes, &sha, running)?;
    // Closing stdin (dropped here) ends the stream.
    w.release()
        .map(|_| bytes)
        .map_err(|err| write_failed(url, &err))
}

/// The object's size and hash as the manifest says, once all of it went
/// through (`bytes`, `sha`); not when the run was stopped.
fn check(e: &Entry, url: &str, bytes: u64, sha: &str, running: &Running) -> Result<(), Stop> {
    if running.is_stopped() {
        return Err(Stop::Interrupted);
    }
    if bytes != e.stored_bytes {
        return Err(Stop::Check(format!(
            "object {url} has {bytes} bytes, the manifest says {}; the receive was stopped before the end of the stream",
            e.stored_bytes
        )));
    }
    // An object read from zfs3backup's metadata has no hash: its size
    // is checked, and zfs recv checks the stream's own checksums.
    if !zab_store::zfs3backup::described(e) && sha != e.sha256 {
        return Err(Stop::Check(format!(
            "object {url} is corrupt: its SHA-256 is {sha}, the manifest says {}; the receive was stopped before the end of the stream",
            e.sha256
        )));
    }
    Ok(())
}

/// A write to the receiving side failed: the resuming stream could not be
/// made, the stored stream failed its own checksums, or the write itself
/// failed.
fn write_failed(url: &str, err: &std::io::Error) -> Stop {
    if let Some(c) = corrupt_in(err) {
        return Stop::Check(format!(
            "object {url} is corrupt: {c}; the receive was stopped before the end of the stream"
        ));
    }
    match unsupported_in(err) {
        Some(u) => Stop::Unsupported(format!("{url}: {u}")),
        None => Stop::Store(format!("writing {url} out: {err}")),
    }
}

/// The receive's result, from what feeding it gave, how the receiving
/// side ended and what it said on stderr.
fn outcome(
    url: &str,
    result: Result<u64, Stop>,
    status: std::io::Result<std::process::ExitStatus>,
    msgs: &str,
) -> Result<u64, Failure> {
    let msgs = msgs
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let recv_failed = match &status {
        Ok(st) if st.success() => None,
        Ok(st) => Some(zab_core::error::Status::from_exit(*st).to_string()),
        Err(err) => Some(err.to_string()),
    };
    let with_msgs = |what: String| match msgs.is_empty() {
        true => what,
        false => format!("{what}: {msgs}"),
    };
    match (result, recv_failed) {
        (Ok(bytes), None) => Ok(bytes),
        (Err(Stop::Check(why)), _) => Err(Failure::Corrupt(why)),
        (Err(Stop::Interrupted), _) => Err(Failure::Other("interrupted".into())),
        (Err(Stop::Unsupported(why)), _) => Err(Failure::Unsupported(why)),
        // The receive failed first (a write to it then fails too).
        (Err(Stop::Store(_)), Some(st)) if !msgs.is_empty() => Err(Failure::Other(with_msgs(
            format!("receiving {url}: zfs recv failed ({st})"),
        ))),
        (Err(Stop::Store(why)), _) => Err(Failure::Other(why)),
        (Ok(_), Some(st)) => Err(Failure::Other(with_msgs(format!(
            "receiving {url}: zfs recv failed ({st})"
        )))),
    }
}

/// The pipe into the receiving side, grown from 64 KiB to [`PIPE`]: the
/// pieces are written 8 MiB at a time, and a larger pipe wakes its reader
/// (and us) fewer times. Only a speed-up: where the kernel refuses (over
/// `/proc/sys/fs/pipe-max-size`), the pipe stays as it was.
fn grow_pipe(pipe: &std::process::ChildStdin) {
    let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE));
}

/// The size asked for the pipe into the receiving side (the largest an
/// unprivileged process may ask by default).
const PIPE: i32 = 1 << 20;

/// Writes the pieces of object `index` to `w`, in order, up to its last
/// (each through `walk` first, when walked); the SHA-256 of them all (the
/// download computes it on its own thread).
fn pieces(
    download: &mut Download,
    index: usize,
    url: &str,
    w: &mut dyn Write,
    running: &Running,
    mut walk: Option<Walk>,
) -> Result<String, Stop> {
    loop {
        if running.is_stopped() {
            return Err(Stop::Interrupted);
        }
        match download.next_piece() {
            None => return Err(Stop::Store(format!("{url}: the download ended early"))),
            Some(Err(err)) => return Err(Stop::Store(err.to_string())),
            Some(Ok(p)) if p.object != index => {
                return Err(Stop::Store(format!(
                    "{url}: the download went on to another object early"
                )))
            }
            Some(Ok(p)) => {
                Walk::piece(&mut walk, &p);
                // A write that fails because the run was stopped (the
                // receive killed) is the stop, not a failure to go on.
                let stopped = |err: std::io::Error| match running.is_stopped() {
                    true => Stop::Interrupted,
                    false => write_failed(url, &err),
                };
                w.write_all(&p.bytes).map_err(stopped)?;
                if p.last {
                    w.flush().map_err(stopped)?;
                    return p
                        .sha256
                        .ok_or_else(|| Stop::Store(format!("{url}: no hash from the download")));
                }
            }
        }
    }
}

/// Why a receive was stopped.
enum Stop {
    /// The object is not what the manifest says.
    Check(String),
    /// SIGINT or SIGTERM.
    Interrupted,
    /// The resuming stream cannot be made from the object.
    Unsupported(String),
    /// Reading the store or writing to the receive failed.
    Store(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_bytes_are_held_back_until_released() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = HoldBack::new(Vec::new(), 1000);
        for chunk in data.chunks(777) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        assert!(w.inner.len() <= data.len() - 1000, "{}", w.inner.len());
        assert_eq!(&w.inner[..], &data[..w.inner.len()]);
        assert_eq!(w.total(), 10_000);
        assert_eq!(w.release().unwrap(), data);
    }

    #[test]
    fn large_and_small_writes_mixed_keep_the_order() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let mut w = HoldBack::new(Vec::new(), 1000);
        let mut at = 0;
        for (i, size) in [10, 5000, 3, 999, 1001, 2000, 7, 12_000, 1]
            .iter()
            .cycle()
            .enumerate()
        {
            if at >= data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            w.write_all(&data[at..end]).unwrap();
            at = end;
            assert!(w.held.len() < 2 * 1000 || i == 0, "{}", w.held.len());
            assert!(
                at < 1000 || w.held.len() >= 1000,
                "held back {} at {at}",
                w.held.len()
            );
            assert_eq!(&w.inner[..], &data[..w.inner.len()]);
        }
        assert_eq!(w.release().unwrap(), data);
    }

    #[test]
    fn a_small_object_is_held_back_whole() {
        let mut w = HoldBack::new(Vec::new(), HOLD);
        w.write_all(b"a small stream").unwrap();
        assert!(w.inner.is_empty());
        assert_eq!(w.release().unwrap(), b"a small stream");
    }
}
