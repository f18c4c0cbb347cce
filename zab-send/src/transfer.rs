//! One transfer's processes: the source side (a shell line run on the
//! source host) writes the stream, zab-send relays it (counting the bytes,
//! through a local zab-ratelimit with `--rate`), and the target side (a
//! shell line run on the target host) receives it. Every process is built
//! by `zab_core::host` (zab-ratelimit as a command of the local host); it
//! is started here, with its pipes.
//!
//! Every process is registered while it runs, so that SIGINT or SIGTERM
//! stops them all: a `zfs recv -s` that is stopped keeps what it received,
//! and the next run resumes it.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use zab_core::Host;

use crate::board::Board;
use crate::stream::{parse_send_line, SendLine};

/// The pids of the processes running now, and whether we were interrupted.
#[derive(Debug, Default)]
pub struct Running {
    /// (pid, whether it leads its own process group).
    pids: Mutex<Vec<(u32, bool)>>,
    pub stop: AtomicBool,
}

impl Running {
    fn add(&self, pid: u32, group: bool) {
        if let Ok(mut p) = self.pids.lock() {
            p.push((pid, group));
        }
    }

    pub fn remove(&self, pid: u32) {
        if let Ok(mut p) = self.pids.lock() {
            p.retain(|&(x, _)| x != pid);
        }
    }

    /// Marks the run as interrupted and stops every process (SIGTERM): a
    /// local side's whole process group (the shell and its stages), a
    /// remote side's ssh (which ends the remote side with it).
    pub fn interrupt(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(p) = self.pids.lock() {
            for &(pid, group) in p.iter() {
                if let Ok(pid) = i32::try_from(pid) {
                    let pid = Pid::from_raw(pid);
                    let _ = if group {
                        killpg(pid, Signal::SIGTERM)
                    } else {
                        kill(pid, Signal::SIGTERM)
                    };
                }
            }
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// What to run for one transfer.
#[derive(Debug)]
pub struct Sides<'a> {
    pub source: &'a Host,
    pub source_line: String,
    pub target: &'a Host,
    pub target_line: String,
    /// `--rate`: the local zab-ratelimit and the rate.
    pub rate: Option<(String, u64)>,
    /// Show progress on this board under this label.
    pub progress: Option<(&'a Board, String)>,
}

/// How a transfer ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub bytes: u64,
    pub seconds: f64,
    /// None when it succeeded; else what failed, in one line.
    pub error: Option<String>,
    /// The object written, for a store.
    pub object: Option<zab_core::record::StoredObject>,
}

/// Starts a process and registers it; `group` puts it in a process group
/// of its own, so that stopping it stops its children too.
fn spawn(cmd: &mut Command, running: &Running, group: bool) -> Result<Child, String> {
    if group {
        cmd.process_group(0);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    running.add(child.id(), group);
    Ok(child)
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

/// The processes of one transfer, started: the source side, zab-ratelimit
/// with `--rate`, the target side, and what the relay reads.
struct Started {
    src: Child,
    limiter: Option<Child>,
    tgt: Child,
    reader: Box<dyn Read + Send>,
}

/// The source side started: its process, zab-ratelimit with `--rate`, and
/// what the relay reads.
pub struct SourceSide {
    pub src: Child,
    pub limiter: Option<Child>,
    pub reader: Box<dyn Read + Send>,
}

/// Starts the source side of a transfer (and zab-ratelimit with `--rate`);
/// on an error, none is left running.
pub fn start_source(
    source: &Host,
    mut src_cmd: Command,
    rate: &Option<(String, u64)>,
    running: &Running,
) -> Result<SourceSide, String> {
    src_cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut src = spawn(&mut src_cmd, running, source.dest().is_none())?;
    let Some(src_out) = src.stdout.take() else {
        return Err("no stdout from the source side".into());
    };
    let mut limiter = None;
    let reader: Box<dyn Read + Send> = match rate {
        None => Box::new(src_out),
        Some((prog, rate)) => {
            let started = Host::local()
                .command(&[prog.as_str(), "-q", "-L", &rate.to_string()])
                .map_err(|e| e.to_string())
                .and_then(|mut cmd| {
                    cmd.stdin(Stdio::from(src_out)).stdout(Stdio::piped());
                    spawn(&mut cmd, running, false)
                });
            match started {
                Ok(mut c) => {
                    let out = c.stdout.take();
                    limiter = Some(c);
                    match out {
                        Some(o) => Box::new(o),
                        None => return Err("no stdout from zab-ratelimit".into()),
                    }
                }
                Err(e) => {
                    let _ = src.kill();
                    return Err(e);
                }
            }
        }
    };
    Ok(SourceSide {
        src,
        limiter,
        reader,
    })
}

/// Starts the processes of a transfer; on an error, none is left running.
fn start(sides: &Sides, running: &Running) -> Result<Started, String> {
    // Both sides' commands first: a read-only host refuses them (a transfer
    // changes the target), and then nothing has started.
    let (src_cmd, mut tgt_cmd) = match (
        sides.source.command(&["sh", "-c", &sides.source_line]),
        sides.target.command(&["sh", "-c", &sides.target_line]),
    ) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
    };
    let SourceSide {
        mut src,
        limiter,
        reader,
    } = start_source(sides.source, src_cmd, &sides.rate, running)?;
    tgt_cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match spawn(&mut tgt_cmd, running, sides.target.dest().is_none()) {
        Ok(tgt) => Ok(Started {
            src,
            limiter,
            tgt,
            reader,
        }),
        Err(e) => {
            let _ = src.kill();
            Err(e)
        }
    }
}

/// Reads the source side's stderr: `zfs send -P`'s estimate into
/// `estimate`, and the lines to keep.
pub fn read_source_stderr(
    pipe: Option<std::process::ChildStderr>,
    estimate: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(p) = pipe {
            for line in BufReader::new(p).lines().map_while(Result::ok) {
                match parse_send_line(&line) {
                    SendLine::Estimate(n) => estimate.store(n, Ordering::Relaxed),
                    SendLine::Other(l) => kept.push(l),
                    _ => {}
                }
            }
        }
        kept
    })
}

/// Runs one transfer to its end.
pub fn run(sides: &Sides, running: &Running) -> Outcome {
    let t0 = Instant::now();
    let Started {
        mut src,
        mut limiter,
        mut tgt,
        reader,
    } = match start(sides, running) {
        Ok(s) => s,
        Err(e) => {
            return Outcome {
                bytes: 0,
                seconds: t0.elapsed().as_secs_f64(),
                error: Some(e),
                object: None,
            }
        }
    };

    // The source's stderr: estimates, and messages to keep.
    let estimate = Arc::new(AtomicU64::new(0));
    let src_err = read_source_stderr(src.stderr.take(), estimate.clone());
    let tgt_out = collect(tgt.stdout.take());
    let tgt_err = collect(tgt.stderr.take());

    // The relay.
    let bytes = Arc::new(AtomicU64::new(0));
    let relay = relay(reader, tgt.stdin.take(), bytes.clone());
    let shown = sides.progress.as_ref().map(|(board, label)| {
        (
            board,
            board.add(label.clone(), bytes.clone(), estimate.clone()),
        )
    });

    let relayed = relay
        .join()
        .unwrap_or_else(|_| Err("relay panicked".into()));
    let ended = Ended {
        src: src.wait(),
        limiter: limiter.as_mut().map(|c| c.wait()),
        tgt: tgt.wait(),
        src_msgs: Vec::new(),
        tgt_msgs: String::new(),
        relayed,
    };
    if let Some((board, id)) = shown {
        board.remove(id);
    }
    for c in [Some(&src), limiter.as_ref(), Some(&tgt)]
        .into_iter()
        .flatten()
    {
        running.remove(c.id());
    }
    let ended = Ended {
        src_msgs: src_err.join().unwrap_or_default(),
        tgt_msgs: tgt_err.join().unwrap_or_default(),
        ..ended
    };
    let _ = tgt_out.join();
    Outcome {
        bytes: bytes.load(Ordering::Relaxed),
        seconds: t0.elapsed().as_secs_f64(),
        error: ended.error(running.stopped()),
        object: None,
    }
}

/// Copies the stream to the target side's stdin, counting the bytes.
fn relay(
    mut reader: Box<dyn Read + Send>,
    mut writer: Option<std::process::ChildStdin>,
    counter: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || -> Result<(), String> {
        let Some(w) = writer.as_mut() else {
            return Err("no stdin to the target side".into());
        };
        loop {
            let n = std::io::copy(&mut (&mut reader).take(1 << 22), w)
                .map_err(|e| format!("relaying the stream: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            counter.fetch_add(n, Ordering::Relaxed);
        }
    })
}

type Exit = std::io::Result<std::process::ExitStatus>;

/// How the processes of a transfer ended.
struct Ended {
    src: Exit,
    limiter: Option<Exit>,
    tgt: Exit,
    /// The source side's stderr lines that are not progress.
    src_msgs: Vec<String>,
    tgt_msgs: String,
    relayed: Result<(), String>,
}

impl Ended {
    /// What failed, in one line; None when the transfer succeeded.
    fn error(&self, stopped: bool) -> Option<String> {
        let status_text = |s: &Exit| match s {
            Ok(st) if st.success() => None,
            Ok(st) => Some(zab_core::error::Status::from_exit(*st).to_string()),
            Err(e) => Some(e.to_string()),
        };
        let first = |text: &str| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let with = |what: String, msg: String| {
            if msg.is_empty() {
                what
            } else {
                format!("{what}: {msg}")
            }
        };
        let mut errors = Vec::new();
        let target_failed = status_text(&self.tgt).is_some();
        if target_failed && self.source_only_piped() {
            // Reported by the receiving side.
        } else if let Some(s) = status_text(&self.src) {
            let msg = first(&self.src_msgs.join("\n"));
            errors.push(with(format!("the sending side failed ({s})"), msg));
        }
        if let Some(Some(s)) = self.limiter.as_ref().map(status_text) {
            errors.push(format!("zab-ratelimit failed ({s})"));
        }
        if let Some(s) = status_text(&self.tgt) {
            let msg = first(&self.tgt_msgs);
            errors.push(with(format!("the receiving side failed ({s})"), msg));
        }
        if let Err(e) = &self.relayed {
            if errors.is_empty() {
                errors.push(e.clone());
            }
        }
        if stopped && !errors.is_empty() {
            errors.insert(0, "interrupted".into());
        }
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    /// When the receiving side failed, a sending side that only died of
    /// the broken pipe (SIGPIPE, 141 from a shell) says nothing more.
    fn source_only_piped(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let piped = match &self.src {
            Ok(st) => st.signal() == Some(13) || st.code() == Some(141),
            Err(_) => false,
        };
        let stages_piped = self.src_msgs.iter().all(|m| m.ends_with("exit status 141"));
        (piped || matches!(&self.src, Ok(st) if st.code() == Some(1)) && !self.src_msgs.is_empty())
            && stages_piped
    }
}
