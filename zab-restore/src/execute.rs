//! zab-restore's changes, carried out as planned (plan.rs), deciding
//! nothing: --all's missing parents created (`zfs create -o
//! canmount=off`), then for each dataset a partial receive aborted (`zfs
//! recv -A`) where the plan says so, and the objects downloaded ahead and
//! received in order (receive.rs). With --test (the `act` switch is
//! `cfg.test`), each change is only said on stderr, with its command.

use std::time::Instant;

use zab_core::cli::Log;
use zab_core::zfs::replicate::{create_parent_args, recv_abort_args};
use zab_store::download::RANGE;
use zab_store::Store;

use crate::cli::{Config, TOOL};
use crate::gather::Job;
use crate::plan::{Plan, Restore};
use crate::receive::{self, Running};

/// What a dataset's restore did.
#[derive(Debug, Default)]
pub struct Done {
    /// Bytes received (as stored).
    pub bytes: u64,
    /// How many objects of the plan's `todo` were received, in order.
    pub received: usize,
    pub seconds: f64,
    pub error: Option<String>,
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

/// The abort, then the objects; fills `done` as it goes.
fn carry_out(
    cfg: &Config,
    store: &Store,
    job: &Job,
    r: &Restore,
    running: &Running,
    done: &mut Done,
    log: &Log,
) -> Result<(), String> {
    if let Some(token) = &r.abort {
        abort_partial(cfg, job, token, log)?;
    }
    let p = &r.plan;
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
        show_test(cfg, store, &format!("{what}{from}"), p, &r.lines);
        return Ok(());
    }
    log.verbose(format!(
        "restoring {what}{from}: {} object(s)",
        p.todo.len()
    ));
    receive_all(cfg, store, p, &r.lines, running, done, log)
}

/// The partial state of an object cut short, aborted (`zfs recv -A`);
/// with --test, only said.
fn abort_partial(cfg: &Config, job: &Job, token: &str, log: &Log) -> Result<(), String> {
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

/// The objects still needed, downloaded ahead and received in order.
fn receive_all(
    cfg: &Config,
    store: &Store,
    p: &Plan,
    lines: &[String],
    running: &Running,
    done: &mut Done,
    log: &Log,
) -> Result<(), String> {
    let objects: Vec<(String, u64)> = p
        .todo
        .iter()
        .map(|e| (e.key.clone(), e.stored_bytes))
        .collect();
    // Dropped on any error: the requests stop.
    let mut download = store.download(&objects, cfg.download_jobs, RANGE);
    for (i, (e, line)) in p.todo.iter().zip(lines).enumerate() {
        log.verbose(format!(
            "receiving {} ({} bytes)",
            store.url_of(&e.key),
            e.stored_bytes
        ));
        let n = receive::receive(store, e, (&mut download, i), &cfg.host, line, running)?;
        done.bytes += n;
        done.received = i + 1;
    }
    Ok(())
}
