//! zab-restore's records: one `restore` record per dataset, written as
//! soon as it is done (its error also one line on stderr), and the `end`
//! record (`Writer::finish`) with the run's totals.

use serde::Serialize;
use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_store::manifest::{Entry, Kind};
use zab_store::Store;

use crate::cli::{Config, TOOL};
use crate::execute::Done;
use crate::gather::Job;
use crate::plan::Restore;
use crate::receive::Running;

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
struct Record<'a> {
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
    /// A partial receive found on the target and gone on with, inside its
    /// object (with --test, to be gone on with).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    resumed_partial: bool,
    /// The objects still needed when the run began, in order.
    objects: Vec<Object>,
    /// Bytes received (as stored).
    bytes: u64,
    /// Bytes downloaded for them, when fewer (a partial receive gone on
    /// from a checkpoint: its object downloaded from there).
    #[serde(skip_serializing_if = "Option::is_none")]
    downloaded_bytes: Option<u64>,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The end record's own fields.
#[derive(Debug, Default, Serialize)]
struct EndFields {
    restored: usize,
    up_to_date: usize,
    objects: usize,
    bytes: u64,
}

/// The records so far.
pub struct Report<'c> {
    cfg: &'c Config,
    out: Writer<std::io::StdoutLock<'static>>,
    fields: EndFields,
    written: usize,
    failed: usize,
}

impl<'c> Report<'c> {
    pub fn new(cfg: &'c Config) -> Self {
        Report {
            cfg,
            out: Writer::new(std::io::stdout().lock()),
            fields: EndFields::default(),
            written: 0,
            failed: 0,
        }
    }

    /// The record of `job`, planned as `r`, which did `done`.
    pub fn add(
        &mut self,
        store: &Store,
        job: &Job,
        r: &Result<Restore, String>,
        done: Done,
        log: &Log,
    ) -> Result<(), Error> {
        let cfg = self.cfg;
        let r = r.as_ref().ok();
        let status = match (&done.error, r) {
            (Some(_), _) | (None, None) => "failed",
            (None, Some(r)) if r.plan.todo.is_empty() => "up-to-date",
            (None, Some(_)) if cfg.test => "planned",
            (None, Some(_)) => "restored",
        };
        let objects: Vec<Object> = r
            .map(|r| {
                r.plan
                    .todo
                    .iter()
                    .enumerate()
                    .map(|(i, e)| object(store, e, i < done.received))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(e) = &done.error {
            log.error(format!("{}: {e}", job.dataset));
        }
        let rec = Record {
            kind: "restore",
            dataset: &job.dataset,
            url: cfg.location.url(),
            target: &job.target,
            host: cfg.host.dest(),
            status,
            snapshot: r.map(|r| r.plan.snapshot.clone()),
            from: r.and_then(|r| r.plan.from.clone()),
            aborted_partial: done.aborted,
            resumed_partial: done.resumed,
            objects,
            bytes: done.bytes,
            downloaded_bytes: (done.downloaded < done.bytes).then_some(done.downloaded),
            seconds: done.seconds,
            error: done.error,
        };
        self.fields.restored += usize::from(status == "restored");
        self.fields.up_to_date += usize::from(status == "up-to-date");
        self.fields.objects += done.received;
        self.fields.bytes += rec.bytes;
        self.failed += usize::from(rec.error.is_some());
        self.written += 1;
        self.out.write(&rec)
    }

    /// The end record; an interrupted run's error last.
    pub fn finish(self, running: &Running) -> Result<(), Error> {
        let result = self
            .out
            .finish(TOOL, self.written, self.failed, &self.fields);
        if running.is_stopped() {
            return Err(Error::Interrupted(
                "the receive was stopped; the next run goes on from where it stopped".into(),
            ));
        }
        result
    }
}

fn object(store: &Store, e: &Entry, received: bool) -> Object {
    Object {
        url: store.url_of(&e.key),
        kind: e.kind,
        snapshot: e.snapshot.clone(),
        snapshots: e.snapshots.iter().map(|s| s.name.clone()).collect(),
        stored_bytes: e.stored_bytes,
        raw: e.raw,
        compressor: e.compressor.clone(),
        received,
    }
}
