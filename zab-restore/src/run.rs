//! zab-restore's run: open the store, read the dataset's manifest and
//! list its objects (one listing), list the target (one `zfs list` for
//! whether it exists, one for its snapshots), plan (plan.rs), receive each
//! object (receive.rs), and write the record and the end record.
//!
//! A problem of the store as a whole (a missing bucket or directory,
//! refused credentials) is exit 4 before anything runs; a problem of the
//! dataset (no backup of it, no whole chain, a corrupt object, a failed
//! receive) is its record's `error`, one line on stderr, and exit 1.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::zfs::replicate::{exists_args, recv_args};
use zab_core::Host;
use zab_store::location::manifest_key;
use zab_store::manifest::{Entry, Kind, Manifest};
use zab_store::Store;

use crate::cli::{Config, TOOL};
use crate::plan::{self, Have};
use crate::receive::{self, Running};

/// One object of the plan, as the record shows it.
#[derive(Debug, Serialize)]
struct Object<'a> {
    /// Its URL.
    url: String,
    kind: Kind,
    snapshot: &'a str,
    /// Every snapshot it carries.
    snapshots: Vec<&'a str>,
    stored_bytes: u64,
    raw: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    compressor: Option<&'a str>,
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
    /// The objects still needed when the run began, in order.
    objects: Vec<Object<'a>>,
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

pub fn run(cfg: &Config) -> Result<(), Error> {
    let t0 = Instant::now();
    let log = cfg.common.log(TOOL);
    let store =
        Store::open(&cfg.location, &cfg.settings).map_err(|e| Error::Store(e.to_string()))?;
    store
        .check(false)
        .map_err(|e| Error::Store(e.to_string()))?;
    let running = Arc::new(Running::default());
    let r = Arc::clone(&running);
    let _ = ctrlc::set_handler(move || r.interrupt());

    let mut rec = Restore {
        kind: "restore",
        dataset: &cfg.dataset,
        url: cfg.location.url(),
        target: &cfg.target,
        host: cfg.host.dest(),
        status: "failed",
        snapshot: None,
        from: None,
        objects: Vec::new(),
        bytes: 0,
        seconds: 0.0,
        error: None,
    };
    let manifest = read_manifest(&store, &cfg.dataset);
    let result = match &manifest {
        Ok(m) => restore(cfg, &store, m, &running, &mut rec, &log),
        Err(e) => Err(e.clone()),
    };
    if let Err(e) = &result {
        log.error(format!("{}: {e}", cfg.dataset));
        rec.error = Some(e.clone());
        rec.status = "failed";
    }
    rec.seconds = (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    let fields = EndFields {
        restored: usize::from(rec.status == "restored"),
        up_to_date: usize::from(rec.status == "up-to-date"),
        objects: rec.objects.iter().filter(|o| o.received).count(),
        bytes: rec.bytes,
    };
    let failed = usize::from(rec.error.is_some());
    let mut out = Writer::new(std::io::stdout().lock());
    out.write(&rec)?;
    let written = out.finish(TOOL, 1, failed, &fields);
    if running.is_stopped() {
        return Err(Error::Interrupted(
            "the receive was stopped; the next run goes on after the last snapshot received".into(),
        ));
    }
    written
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

/// The target's snapshots, None when it does not exist (then its parent
/// must).
fn target_snapshots(host: &Host, target: &str) -> Result<Option<Vec<Have>>, String> {
    let missing = |e: &Error| matches!(e, Error::Command(c) if c.stderr.contains("does not exist"));
    match host.output(&exists_args(target)) {
        Ok(_) => {}
        Err(e) if missing(&e) => {
            if let Some(parent) = zab_core::zfs::parent_of(target) {
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
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    }
    let all = zab_core::zfs::list_snapshots(host, &[target]).map_err(|e| e.to_string())?;
    Ok(Some(
        all.get(target)
            .map(|v| {
                v.iter()
                    .map(|s| Have {
                        name: s.name.clone(),
                        guid: s.guid,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    ))
}

fn object<'a>(store: &Store, e: &'a Entry) -> Object<'a> {
    Object {
        url: store.url_of(&e.key),
        kind: e.kind,
        snapshot: &e.snapshot,
        snapshots: e.snapshots.iter().map(|s| s.name.as_str()).collect(),
        stored_bytes: e.stored_bytes,
        raw: e.raw,
        compressor: e.compressor.as_deref(),
        received: false,
    }
}

/// Plans and receives; fills `rec` as it goes.
fn restore<'a>(
    cfg: &'a Config,
    store: &Store,
    m: &'a Manifest,
    running: &Running,
    rec: &mut Restore<'a>,
    log: &zab_core::cli::Log,
) -> Result<(), String> {
    let listed = listed(store, &cfg.dataset)?;
    let have = target_snapshots(&cfg.host, &cfg.target)?;
    let p = plan::plan(m, &listed, cfg.snapshot.as_deref(), have.as_deref())?;
    rec.snapshot = Some(p.snapshot.clone());
    rec.from = p.from.clone();
    let recv = recv_args(&cfg.recv_options, &cfg.target);
    let lines = p
        .todo
        .iter()
        .map(|e| receive::target_line(e, &recv))
        .collect::<Result<Vec<_>, _>>()?;
    for e in &p.todo {
        rec.objects.push(object(store, e));
    }
    let what = format!("{}@{} into {}", cfg.dataset, p.snapshot, cfg.target);
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
        eprintln!(
            "{TOOL}: --test: would restore {what}{from}: {} object(s) of a chain of {}",
            p.todo.len(),
            p.chain.len()
        );
        for (e, line) in p.todo.iter().zip(&lines) {
            eprintln!(
                "{TOOL}: --test: would stream {} ({} bytes, {:?}) into: {}",
                store.url_of(&e.key),
                e.stored_bytes,
                e.kind,
                cfg.host.display(&["sh", "-c", line])
            );
        }
        rec.status = "planned";
        return Ok(());
    }
    log.verbose(format!(
        "restoring {what}{from}: {} object(s)",
        p.todo.len()
    ));
    for (i, (e, line)) in p.todo.iter().zip(&lines).enumerate() {
        log.verbose(format!(
            "receiving {} ({} bytes)",
            store.url_of(&e.key),
            e.stored_bytes
        ));
        let n = receive::receive(store, e, &cfg.host, line, running)?;
        rec.bytes += n;
        rec.objects[i].received = true;
    }
    rec.status = "restored";
    Ok(())
}
