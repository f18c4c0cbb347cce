//! zab-restore's changes, carried out as planned (plan.rs), deciding
//! nothing: --all's missing parents created (`zfs create -o
//! canmount=off`), then for each dataset a partial receive gone on with
//! (its object's resuming stream, resume.rs) or aborted (`zfs recv -A`)
//! where the plan says so, and the objects downloaded ahead and received
//! in order (receive.rs). A partial receive goes on from the last
//! checkpoint before its token's point (checkpoint.rs), its object
//! downloaded from there, when there is one; every uncompressed object
//! received leaves checkpoints on the way, until it is whole. Two things change the plan on the way, as
//! they are only known then: a resuming stream that cannot be made after
//! all (a record resume.rs does not know) falls back to the abort and the
//! whole object; a corrupt object's partial receive is aborted, so that
//! nothing of it stays. With --test (the `act` switch is `cfg.test`),
//! each change is only said on stderr, with its command.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::Instant;

use zab_core::cli::Log;
use zab_core::zfs::replicate::{create_parent_args, recv_abort_args};
use zab_store::download::{Wanted, RANGE};
use zab_store::manifest::Entry;
use zab_store::Store;

use crate::checkpoint::{self, Checkpoint, Walker};
use crate::cli::{Config, TOOL};
use crate::gather::Job;
use crate::plan::{Plan, Restore};
use crate::receive::{self, Failure, Running, Via, Walk};
use crate::resume::Token;

/// A job's target's checkpoint file (checkpoint::path), found once, when
/// first needed (finding it creates the state directory: a job that needs
/// none, or a --test that goes on with no partial receive, leaves it
/// alone as before); Err when there is no state directory to keep it in.
struct CheckpointFile<'a> {
    host: &'a str,
    target: &'a str,
    path: OnceCell<Result<PathBuf, String>>,
}

impl CheckpointFile<'_> {
    fn get(&self) -> &Result<PathBuf, String> {
        self.path
            .get_or_init(|| checkpoint::path(self.host, self.target))
    }
}

/// What a dataset's restore did.
#[derive(Debug, Default)]
pub struct Done {
    /// Bytes received (as stored).
    pub bytes: u64,
    /// Bytes downloaded for them (less when going on from a checkpoint).
    pub downloaded: u64,
    /// How many objects of the plan's `todo` were received, in order.
    pub received: usize,
    pub seconds: f64,
    pub error: Option<String>,
    /// A partial receive on the target went on (--test: would go on).
    pub resumed: bool,
    /// A partial receive on the target was aborted (--test: would be).
    pub aborted: bool,
}

/// --all: the parents created (with --test, only named). A failure shows
/// again, with its reason, in each child's record.
pub fn parents(cfg: &Config, parents: &[String], log: &Log) {
    for p in parents {
        if cfg.test {
            eprintln!(
                "{TOOL}: --test: would create {p} (canmount=off): {}",
                cfg.host.display(&create_parent_args(p))
            );
            continue;
        }
        log.verbose(format!("creating parent {p} (canmount=off)"));
        if let Err(e) = cfg.host.output(&create_parent_args(p)) {
            log.error(format!("creating {p}: {e}"));
        }
    }
}

/// One dataset's restore carried out: what it did.
pub fn restore(
    cfg: &Config,
    store: &Store,
    job: &Job,
    r: &Result<Restore, String>,
    running: &Running,
    log: &Log,
) -> Done {
    let t0 = Instant::now();
    let mut done = Done::default();
    let result = match r {
        Err(e) => Err(e.clone()),
        Ok(r) => carry_out(cfg, store, job, r, running, &mut done, log),
    };
    done.error = result.err();
    done.seconds = (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    done
}

/// The partial receive gone on with or aborted, then the objects; fills
/// `done` as it goes.
fn carry_out(
    cfg: &Config,
    store: &Store,
    job: &Job,
    r: &Restore,
    running: &Running,
    done: &mut Done,
    log: &Log,
) -> Result<(), String> {
    let p = &r.plan;
    let file = CheckpointFile {
        host: cfg.host.name(),
        target: &job.target,
        path: OnceCell::new(),
    };
    if let (Some(token), None) = (&r.abort, &r.resume) {
        if let Some(why) = &r.no_resume {
            log.verbose(format!(
                "{}: the partial receive does not go on: {why}",
                job.target
            ));
        }
        abort_partial(cfg, job, &file, token, log)?;
        done.aborted = true;
    }
    let what = format!("{}@{} into {}", job.dataset, p.snapshot, job.target);
    if p.todo.is_empty() {
        log.verbose(format!("{what}: up to date"));
        return Ok(());
    }
    let from = match &p.from {
        Some(f) => format!(" (going on from @{f})"),
        None => String::new(),
    };
    if cfg.test {
        show_resume_test(cfg, store, job, &file, r, done);
        show_test(cfg, store, &format!("{what}{from}"), p, &r.lines);
        return Ok(());
    }
    log.verbose(format!(
        "restoring {what}{from}: {} object(s)",
        p.todo.len()
    ));
    let mut start = 0;
    if let (Some(t), Some(token)) = (&r.resume, &r.abort) {
        let line = (p, r.resume_line.as_str());
        match resume_first(cfg, store, (job, &file), line, t, running, done, log) {
            Ok(()) => start = 1,
            Err(Failure::Unsupported(_)) if running.is_stopped() => {
                return Err("interrupted".into())
            }
            Err(Failure::Unsupported(why)) => {
                log.verbose(format!(
                    "{}: the partial receive cannot go on: {why}",
                    job.target
                ));
                abort_partial(cfg, job, &file, token, log)?;
                done.aborted = true;
            }
            Err(Failure::Other(why)) if why != "interrupted" => {
                return Err(format!(
                    "{why} (going on with the partial receive on {t}; zfs recv -A {t} makes the next run receive the object whole)",
                    t = job.target
                ))
            }
            Err(f) => return Err(fail(cfg, job, &file, f, log)),
        }
    }
    receive_all(
        cfg,
        store,
        (job, &file),
        (p, &r.lines),
        start,
        running,
        done,
        log,
    )
    .map_err(|f| fail(cfg, job, &file, f, log))
}

/// `--test`: where the partial receive would go on, if it would, and
/// from which byte the object would be downloaded.
fn show_resume_test(
    cfg: &Config,
    store: &Store,
    job: &Job,
    file: &CheckpointFile,
    r: &Restore,
    done: &mut Done,
) {
    let (Some(t), Some(e)) = (&r.resume, r.plan.todo.first()) else {
        return;
    };
    let cps = load_checkpoints(file, e, t);
    eprintln!(
        "{TOOL}: --test: would go on with the partial receive on {}: resume {} at byte {} of {} of its stream (object {}, offset {}), {}",
        job.target,
        store.url_of(&e.key),
        t.bytes,
        e.stream_bytes,
        t.object,
        t.offset,
        match going_on_from(e, t, cps.as_deref()) {
            Ok(cp) => format!(
                "would download from byte {} of {} (checkpoint at byte {})",
                cp.piece, e.stored_bytes, cp.at
            ),
            Err(why) => format!("the whole object downloaded and hashed ({why})"),
        }
    );
    eprintln!(
        "{TOOL}: --test: would stream the resuming stream{} into: {}",
        decompressed_here(e),
        cfg.host.display(&["sh", "-c", &r.resume_line])
    );
    done.resumed = true;
}

/// The first object of the plan received as the resuming stream of the
/// partial receive of token `t`: downloaded from the last checkpoint
/// before the token's point when there is one, else whole.
#[allow(clippy::too_many_arguments)]
fn resume_first(
    cfg: &Config,
    store: &Store,
    (job, file): (&Job, &CheckpointFile),
    (p, line): (&Plan, &str),
    t: &Token,
    running: &Running,
    done: &mut Done,
    log: &Log,
) -> Result<(), Failure> {
    let e = p.todo[0];
    let cps = load_checkpoints(file, e, t);
    let from = going_on_from(e, t, cps.as_deref());
    log.verbose(format!(
        "going on with the partial receive of {} at byte {} of {} of its stream (object {}, offset {}); {}{}",
        store.url_of(&e.key),
        t.bytes,
        e.stream_bytes,
        t.object,
        t.offset,
        match &from {
            Ok(cp) => format!(
                "downloading from byte {} of {} (checkpoint at byte {})",
                cp.piece, e.stored_bytes, cp.at
            ),
            Err(why) => format!("the whole object is downloaded and hashed ({why})"),
        },
        decompressed_here(e)
    ));
    let cp = from.ok();
    let mut wanted = Wanted::whole(&e.key, e.stored_bytes);
    if let Some(cp) = cp {
        (wanted.from, wanted.state) = (cp.piece, cp.sha);
    }
    let mut download = store.download_at(&[wanted], cfg.download_jobs, RANGE);
    let via = Via {
        resume: Some((t, cp)),
        walk: walk(file, job, e, cp, log),
    };
    let n = receive::receive(store, e, (&mut download, 0), &cfg.host, line, running, via)?;
    forget_checkpoints(file);
    done.bytes += n;
    done.downloaded += e.stored_bytes - cp.map_or(0, |c| c.piece);
    done.received = 1;
    done.resumed = true;
    Ok(())
}

/// Why object `e` is not walked for checkpoints (nor gone on with from
/// one), if it is not: a compressed stream's offsets are not the
/// object's, and a zfs3backup object has no hash to check a midstate by.
fn not_walked(e: &Entry) -> Option<&'static str> {
    if e.compressor.is_some() {
        Some("a compressed object has no checkpoints")
    } else if zab_store::zfs3backup::described(e) {
        Some("a zfs3backup object has no checkpoints")
    } else {
        None
    }
}

/// The checkpoints of object `e` for the stream of token `t` in the
/// target's checkpoint file; None when there is no file to read.
fn load_checkpoints(file: &CheckpointFile, e: &Entry, t: &Token) -> Option<Vec<Checkpoint>> {
    let path = file.get().as_ref().ok()?;
    path.exists()
        .then(|| checkpoint::load(path, (&e.key, &e.sha256), t.toguid))
}

/// The checkpoint to go on from for token `t` in object `e`, or why none.
fn going_on_from<'a>(
    e: &Entry,
    t: &Token,
    cps: Option<&'a [Checkpoint]>,
) -> Result<&'a Checkpoint, String> {
    if let Some(why) = not_walked(e) {
        return Err(why.into());
    }
    let cps = cps.ok_or("no checkpoint file")?;
    checkpoint::choose(cps, t, e.stored_bytes).ok_or_else(|| {
        format!(
            "none of its {} checkpoint(s) is at or before the resume point",
            cps.len()
        )
    })
}

/// The walk that takes object `e`'s checkpoints, from checkpoint `cp` or
/// from its first byte (the file started anew); None for an object not
/// walked, or when the file cannot be opened (said with --verbose).
fn walk(
    file: &CheckpointFile,
    job: &Job,
    e: &Entry,
    cp: Option<&Checkpoint>,
    log: &Log,
) -> Option<Walk> {
    if not_walked(e).is_some() {
        return None;
    }
    let spacing = checkpoint::spacing(e.stored_bytes);
    let opened = file.get().as_ref().map_err(String::clone).and_then(|p| {
        checkpoint::open(p, cp.is_none()).map_err(|err| format!("{}: {err}", p.display()))
    });
    match opened {
        Ok(file) => Some(Walk {
            walker: match cp {
                Some(cp) => Walker::from_checkpoint(cp, spacing),
                None => Walker::new(&e.key, &e.sha256, spacing),
            },
            file,
        }),
        Err(why) => {
            log.verbose(format!("{}: no checkpoints: {why}", job.target));
            None
        }
    }
}

/// The target's checkpoint file removed: its object was received whole,
/// or its partial receive aborted.
fn forget_checkpoints(file: &CheckpointFile) {
    if let Ok(p) = file.get() {
        checkpoint::remove(p);
    }
}

/// What a resumed object's message adds when it is decompressed here.
fn decompressed_here(e: &zab_store::manifest::Entry) -> String {
    match e
        .compressor
        .as_deref()
        .and_then(zab_core::compress::decompressor)
    {
        Some(d) => format!(", decompressed here ({d})"),
        None => String::new(),
    }
}

/// A receive's failure as the dataset's error; a corrupt object's partial
/// receive aborted first, so that nothing of it stays.
fn fail(cfg: &Config, job: &Job, file: &CheckpointFile, f: Failure, log: &Log) -> String {
    let Failure::Corrupt(why) = f else {
        return f.message();
    };
    forget_checkpoints(file);
    // Nothing to abort is no error here: the receive may have been stopped
    // before it saved anything.
    if let Err(e) = cfg.host.output(&recv_abort_args(&job.target)) {
        log.verbose(format!("{}: zfs recv -A: {e}", job.target));
    }
    why
}

/// The partial state of an object cut short, aborted (`zfs recv -A`);
/// with --test, only said.
fn abort_partial(
    cfg: &Config,
    job: &Job,
    file: &CheckpointFile,
    token: &str,
    log: &Log,
) -> Result<(), String> {
    let abort = recv_abort_args(&job.target);
    if cfg.test {
        eprintln!(
            "{TOOL}: --test: would abort the partial receive on {} (receive_resume_token {}…): {}",
            job.target,
            token.get(..16).unwrap_or(token),
            cfg.host.display(&abort)
        );
        return Ok(());
    }
    log.verbose(format!(
        "{}: aborting a partial receive (zfs recv -A); its object is received again",
        job.target
    ));
    forget_checkpoints(file);
    cfg.host
        .output(&abort)
        .map(|_| ())
        .map_err(|e| format!("aborting the partial receive on {}: {e}", job.target))
}

/// --test: what would be restored, and each object's receiving command.
fn show_test(cfg: &Config, store: &Store, what: &str, p: &Plan, lines: &[String]) {
    eprintln!(
        "{TOOL}: --test: would restore {what}: {} object(s) of a chain of {}",
        p.todo.len(),
        p.chain.len()
    );
    for (e, line) in p.todo.iter().zip(lines) {
        eprintln!(
            "{TOOL}: --test: would stream {} ({} bytes, {:?}) into: {}",
            store.url_of(&e.key),
            e.stored_bytes,
            e.kind,
            cfg.host.display(&["sh", "-c", line])
        );
    }
}

/// The objects still needed from `start` on, downloaded ahead and
/// received in order, each walked for checkpoints on the way.
#[allow(clippy::too_many_arguments)]
fn receive_all(
    cfg: &Config,
    store: &Store,
    (job, file): (&Job, &CheckpointFile),
    (p, lines): (&Plan, &[String]),
    start: usize,
    running: &Running,
    done: &mut Done,
    log: &Log,
) -> Result<(), Failure> {
    let todo = p.todo.get(start..).unwrap_or_default();
    let objects: Vec<(String, u64)> = todo
        .iter()
        .map(|e| (e.key.clone(), e.stored_bytes))
        .collect();
    if objects.is_empty() {
        return Ok(());
    }
    // Dropped on any error: the requests stop.
    let mut download = store.download(&objects, cfg.download_jobs, RANGE);
    for (i, (e, line)) in todo.iter().zip(&lines[start..]).enumerate() {
        log.verbose(format!(
            "receiving {} ({} bytes)",
            store.url_of(&e.key),
            e.stored_bytes
        ));
        let via = Via {
            resume: None,
            walk: walk(file, job, e, None, log),
        };
        let n = receive::receive(store, e, (&mut download, i), &cfg.host, line, running, via)?;
        forget_checkpoints(file);
        done.bytes += n;
        done.downloaded += e.stored_bytes;
        done.received = start + i + 1;
    }
    Ok(())
}
