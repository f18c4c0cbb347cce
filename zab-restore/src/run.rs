//! zab-restore's run: open the store; with --all, list the manifests
//! (one listing) and the datasets below TARGET-PATH (one `zfs list`), and
//! create the missing parents. Then for each dataset, parents first: read
//! its manifest and list its objects (one listing), list the target (one
//! `zfs list` for whether it exists and a partial receive's resume token,
//! one for its snapshots), plan (plan.rs), download ahead and receive each
//! object (receive.rs), and write its record; the end record last.
//!
//! A problem of the store as a whole (a missing bucket or directory,
//! refused credentials) is exit 4 before anything runs; a problem of a
//! dataset (no backup of it, no whole chain, a corrupt object, a failed
//! receive) is its record's `error`, one line on stderr, and exit 1.
//!
//! A partial receive left on a target (`zfs recv -s` cut short, with a
//! `receive_resume_token`) is aborted (`zfs recv -A`) and its object
//! received again from its start: see docs/store.md for why a stored
//! stream cannot go on from the token's offset.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::zfs::replicate::{create_parent_args, exists_args, recv_abort_args, recv_args};
use zab_core::Host;
use zab_store::download::RANGE;
use zab_store::location::{manifest_dataset, manifest_key, MANIFESTS};
use zab_store::manifest::{Entry, Kind, Manifest};
use zab_store::Store;

use crate::cli::{Config, What, TOOL};
use crate::plan::{self, Have};
use crate::receive::{self, Running};

/// One object of the plan, as the record shows it.
#[derive(Debug, Serialize)]
struct Object {
    /// Its URL.
    url: String,
    kind: Kind,
    snapshot: String,
    /// Every snapshot it carries.
    snapshots: Vec<String>,
    stored_bytes: u64,
    raw: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    compressor: Option<String>,
    /// Received (and its hash checked) by this run.
    received: bool,
}

/// The record of the dataset.
#[derive(Debug, Serialize)]
struct Restore<'a> {
    kind: &'static str,
    /// The dataset in the store.
    dataset: &'a str,
    url: String,
    target: &'a str,
    /// The receiving host's ssh destination; null for this machine.
    host: Option<&'a str>,
    /// restored, up-to-date, planned (--test) or failed.
    status: &'static str,
    /// The snapshot restored to (after @).
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<String>,
    /// The target's snapshot it went on from.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// A partial receive (a resume token) found on the target and aborted
    /// (`zfs recv -A`; with --test, to be aborted).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    aborted_partial: bool,
    /// The objects still needed when the run began, in order.
    objects: Vec<Object>,
    /// Bytes received (as stored).
    bytes: u64,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The end record's own fields.
#[derive(Debug, Serialize)]
struct EndFields {
    restored: usize,
    up_to_date: usize,
    objects: usize,
    bytes: u64,
}

/// One dataset to restore.
#[derive(Debug)]
struct Job {
    dataset: String,
    snapshot: Option<String>,
    target: String,
}

pub fn run(cfg: &Config) -> Result<(), Error> {
    let log = cfg.common.log(TOOL);
    let store =
        Store::open(&cfg.location, &cfg.settings).map_err(|e| Error::Store(e.to_string()))?;
    store
        .check(false)
        .map_err(|e| Error::Store(e.to_string()))?;
    let running = Arc::new(Running::default());
    let r = Arc::clone(&running);
    let _ = ctrlc::set_handler(move || r.interrupt());

    let (jobs, planned) = match &cfg.what {
        What::One {
            dataset,
            snapshot,
            target,
        } => (
            vec![Job {
                dataset: dataset.clone(),
                snapshot: snapshot.clone(),
                target: target.clone(),
            }],
            Vec::new(),
        ),
        What::All { below, target_path } => all(cfg, &store, below.as_deref(), target_path, &log)?,
    };
    let mut out = Writer::new(std::io::stdout().lock());
    let mut fields = EndFields {
        restored: 0,
        up_to_date: 0,
        objects: 0,
        bytes: 0,
    };
    let (mut written, mut failed) = (0, 0);
    for job in &jobs {
        if running.is_stopped() {
            break;
        }
        let rec = restore_dataset(cfg, &store, job, &planned, &running, &log);
        fields.restored += usize::from(rec.status == "restored");
        fields.up_to_date += usize::from(rec.status == "up-to-date");
        fields.objects += rec.objects.iter().filter(|o| o.received).count();
        fields.bytes += rec.bytes;
        failed += usize::from(rec.error.is_some());
        written += 1;
        out.write(&rec)?;
    }
    let result = out.finish(TOOL, written, failed, &fields);
    if running.is_stopped() {
        return Err(Error::Interrupted(
            "the receive was stopped; the next run goes on after the last snapshot received".into(),
        ));
    }
    result
}

/// --all: the datasets of the store below the path asked for, parents
/// first, and the targets' parents created (with --test, only named).
/// Returns the jobs and every target that exists once they ran.
fn all(
    cfg: &Config,
    store: &Store,
    below: Option<&str>,
    target_path: &str,
    log: &zab_core::cli::Log,
) -> Result<(Vec<Job>, Vec<String>), Error> {
    let datasets: Vec<String> = store
        .list(MANIFESTS)
        .map_err(|e| Error::Store(e.to_string()))?
        .iter()
        .filter_map(|l| manifest_dataset(&l.key).map(str::to_string))
        .collect();
    let pairs = plan::all_jobs(&datasets, below, target_path);
    if pairs.is_empty() {
        return Err(Error::Nothing(format!(
            "no dataset in {}{}",
            store.location().url(),
            below
                .map(|b| format!(" at or below {b}"))
                .unwrap_or_default()
        )));
    }
    let existing: Vec<String> = cfg
        .host
        .output(&[
            "zfs",
            "list",
            "-H",
            "-o",
            "name",
            "-t",
            "filesystem,volume",
            "-r",
            target_path,
        ])?
        .lines()
        .map(str::to_string)
        .collect();
    let targets: Vec<String> = pairs.iter().map(|(_, t)| t.clone()).collect();
    let parents = plan::parents_to_create(&targets, target_path, &existing);
    for p in &parents {
        if cfg.test {
            eprintln!(
                "{TOOL}: --test: would create {p} (canmount=off): {}",
                cfg.host.display(&create_parent_args(p))
            );
            continue;
        }
        log.verbose(format!("creating parent {p} (canmount=off)"));
        // A failure shows again, with its reason, in each child's record.
        if let Err(e) = cfg.host.output(&create_parent_args(p)) {
            log.error(format!("creating {p}: {e}"));
        }
    }
    let mut planned = parents;
    planned.extend(targets);
    let jobs = pairs
        .into_iter()
        .map(|(dataset, target)| Job {
            dataset,
            snapshot: None,
            target,
        })
        .collect();
    Ok((jobs, planned))
}

/// One dataset restored; its record.
fn restore_dataset<'a>(
    cfg: &'a Config,
    store: &Store,
    job: &'a Job,
    planned: &[String],
    running: &Running,
    log: &zab_core::cli::Log,
) -> Restore<'a> {
    let t0 = Instant::now();
    let mut rec = Restore {
        kind: "restore",
        dataset: &job.dataset,
        url: cfg.location.url(),
        target: &job.target,
        host: cfg.host.dest(),
        status: "failed",
        snapshot: None,
        from: None,
        aborted_partial: false,
        objects: Vec::new(),
        bytes: 0,
        seconds: 0.0,
        error: None,
    };
    let result = read_manifest(store, &job.dataset)
        .and_then(|m| restore(cfg, store, job, &m, planned, running, &mut rec, log));
    if let Err(e) = result {
        log.error(format!("{}: {e}", job.dataset));
        rec.error = Some(e);
        rec.status = "failed";
    }
    rec.seconds = (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    rec
}

/// The dataset's manifest, with the objects it does not list read from
/// their metadata (a zfs3backup bucket: zab_store::zfs3backup); an error
/// when the store has no backup of it.
fn read_manifest(store: &Store, dataset: &str) -> Result<Manifest, String> {
    let key = manifest_key(dataset);
    zab_store::zfs3backup::view(store, dataset)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no backup of {dataset} in {} (no manifest {}, no object {dataset}@…)",
                store.location().url(),
                store.url_of(&key)
            )
        })
}

/// The dataset's objects in the store, with their sizes: one listing of
/// the directory its objects are in.
fn listed(store: &Store, dataset: &str) -> Result<Vec<(String, u64)>, String> {
    let dir = dataset.rsplit_once('/').map_or("", |(d, _)| d);
    let mine = format!("{dataset}@");
    Ok(store
        .list(dir)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|l| l.key.starts_with(&mine))
        .map(|l| (l.key, l.size))
        .collect())
}

/// The target as it is.
#[derive(Debug, Default)]
struct Target {
    /// Its snapshots; None when it does not exist.
    snapshots: Option<Vec<Have>>,
    /// A partial receive's `receive_resume_token`.
    token: Option<String>,
}

/// `zfs list -H -p -o name,receive_resume_token TARGET`.
fn list_token_args(target: &str) -> Vec<String> {
    [
        "zfs",
        "list",
        "-H",
        "-p",
        "-o",
        "name,receive_resume_token",
        target,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The resume token in `zfs list -H -p -o name,receive_resume_token`'s
/// line, None when there is none (`-`).
fn token_of(line: &str) -> Option<String> {
    let (_, token) = line.trim_end_matches('\n').split_once('\t')?;
    let token = token.trim();
    (!token.is_empty() && token != "-").then(|| token.to_string())
}

/// The target's snapshots and resume token. When it does not exist, its
/// parent must, or be `planned` (--all: created or restored before it).
fn target_state(host: &Host, target: &str, planned: &[String]) -> Result<Target, String> {
    let missing = |e: &Error| matches!(e, Error::Command(c) if c.stderr.contains("does not exist"));
    let token = match host.output(&list_token_args(target)) {
        Ok(line) => token_of(&line),
        Err(e) if missing(&e) => {
            if let Some(parent) = zab_core::zfs::parent_of(target) {
                if planned.iter().any(|p| p == parent) {
                    return Ok(Target::default());
                }
                match host.output(&exists_args(parent)) {
                    Ok(_) => {}
                    Err(e) if missing(&e) => {
                        return Err(format!(
                        "{parent}, the parent of {target}, does not exist on {} (create it first)",
                        host.name()
                    ))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            return Ok(Target::default());
        }
        Err(e) => return Err(e.to_string()),
    };
    let all = zab_core::zfs::list_snapshots(host, &[target]).map_err(|e| e.to_string())?;
    let snapshots = all
        .get(target)
        .map(|v| {
            v.iter()
                .map(|s| Have {
                    name: s.name.clone(),
                    guid: s.guid,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Target {
        snapshots: Some(snapshots),
        token,
    })
}

fn object(store: &Store, e: &Entry) -> Object {
    Object {
        url: store.url_of(&e.key),
        kind: e.kind,
        snapshot: e.snapshot.clone(),
        snapshots: e.snapshots.iter().map(|s| s.name.clone()).collect(),
        stored_bytes: e.stored_bytes,
        raw: e.raw,
        compressor: e.compressor.clone(),
        received: false,
    }
}

/// Plans and receives; fills `rec` as it goes.
#[allow(clippy::too_many_arguments)]
fn restore(
    cfg: &Config,
    store: &Store,
    job: &Job,
    m: &Manifest,
    planned: &[String],
    running: &Running,
    rec: &mut Restore,
    log: &zab_core::cli::Log,
) -> Result<(), String> {
    let listed = listed(store, &job.dataset)?;
    let mut target = target_state(&cfg.host, &job.target, planned)?;
    if let Some(token) = target.token.clone() {
        rec.aborted_partial = true;
        target = abort_partial(cfg, job, &token, target, planned, log)?;
    }
    let p = plan::plan(
        m,
        &listed,
        job.snapshot.as_deref(),
        target.snapshots.as_deref(),
    )?;
    rec.snapshot = Some(p.snapshot.clone());
    rec.from = p.from.clone();
    let recv = recv_args(&cfg.recv_options, &job.target);
    let lines = p
        .todo
        .iter()
        .map(|e| receive::target_line(e, &recv))
        .collect::<Result<Vec<_>, _>>()?;
    for e in &p.todo {
        rec.objects.push(object(store, e));
    }
    let what = format!("{}@{} into {}", job.dataset, p.snapshot, job.target);
    if p.todo.is_empty() {
        log.verbose(format!("{what}: up to date"));
        rec.status = "up-to-date";
        return Ok(());
    }
    let from = match &p.from {
        Some(f) => format!(" (going on from @{f})"),
        None => String::new(),
    };
    if cfg.test {
        show_test(cfg, store, &format!("{what}{from}"), &p, &lines);
        rec.status = "planned";
        return Ok(());
    }
    log.verbose(format!(
        "restoring {what}{from}: {} object(s)",
        p.todo.len()
    ));
    receive_all(cfg, store, &p, &lines, running, rec, log)?;
    rec.status = "restored";
    Ok(())
}

/// The partial state of an object cut short: aborted (`zfs recv -A`), and
/// the object received again from its start (docs/store.md,
/// "Resuming"); with --test, only said. The target as it is then.
fn abort_partial(
    cfg: &Config,
    job: &Job,
    token: &str,
    mut target: Target,
    planned: &[String],
    log: &zab_core::cli::Log,
) -> Result<Target, String> {
    let abort = recv_abort_args(&job.target);
    if cfg.test {
        eprintln!(
            "{TOOL}: --test: would abort the partial receive on {} (receive_resume_token {}…): {}",
            job.target,
            token.get(..16).unwrap_or(token),
            cfg.host.display(&abort)
        );
        // A new dataset's partial receive goes with it.
        if target.snapshots.as_ref().is_some_and(Vec::is_empty) {
            target.snapshots = None;
        }
        return Ok(target);
    }
    log.verbose(format!(
        "{}: aborting a partial receive (zfs recv -A); its object is received again",
        job.target
    ));
    cfg.host
        .output(&abort)
        .map_err(|e| format!("aborting the partial receive on {}: {e}", job.target))?;
    target_state(&cfg.host, &job.target, planned)
}

/// --test: what would be restored, and each object's receiving command.
fn show_test(cfg: &Config, store: &Store, what: &str, p: &plan::Plan, lines: &[String]) {
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
    p: &plan::Plan,
    lines: &[String],
    running: &Running,
    rec: &mut Restore,
    log: &zab_core::cli::Log,
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
        rec.bytes += n;
        rec.objects[i].received = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_token_is_read_from_zfs_list() {
        assert_eq!(token_of("pool/r\t-\n"), None);
        assert_eq!(
            token_of("pool/r\t1-e604ea4bf-e0-789c63a2\n").as_deref(),
            Some("1-e604ea4bf-e0-789c63a2")
        );
        assert_eq!(token_of("pool/r"), None);
    }
}
