//! zab-send's output: each record with its `send` field (the plan, what
//! was done, why not), the errors on stderr, and the `end` record with
//! zab-send's own fields, written by the one shared `Writer::finish`.

use serde::Serialize;
use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::record::{Dataset, Record, SendOutcome, SendStatus, Transfer};

use crate::execute::{Done, Executed};
use crate::jobs::Job;
use crate::parents;
use crate::plan::Step;
use crate::transfer::Outcome;

const TOOL: &str = "zab-send";

/// zab-send's fields of the `end` record (docs/records.md).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct End<'a> {
    pub target: &'a str,
    /// Datasets sent (`send.status` `sent`).
    pub sent: usize,
    /// Transfers done.
    pub transfers: usize,
    /// Bytes relayed.
    pub bytes: u64,
    /// The parents created; omitted when none.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub created_parents: &'a [String],
}

/// One step's record; `outcome` when it was tried.
pub fn step_record(s: &Step, outcome: Option<&Outcome>) -> Transfer {
    Transfer {
        snapshot: s.to.clone(),
        from: s.from.clone(),
        from_bookmark: s.bookmark.clone(),
        kind: s.kind,
        snapshots: s.snapshots,
        done: outcome.is_some_and(|o| o.error.is_none()),
        bytes: outcome.map(|o| o.bytes),
        seconds: outcome.map(|o| (o.seconds * 1000.0).round() / 1000.0),
        object: outcome.and_then(|o| o.object.clone()),
    }
}

/// The `send` field of a job, and its error.
pub fn outcome(
    job: &Job,
    done: &Done,
    created: &[String],
    dry: bool,
) -> (SendOutcome, Option<String>) {
    let error = job.plan.error.clone().or(done.error.clone());
    let mut notes = done.notes.clone();
    notes.extend(parents::notes(job, created));
    let transfers = job
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| step_record(s, done.outcomes.get(i)))
        .collect();
    let status = if error.is_some() {
        SendStatus::Failed
    } else if dry {
        SendStatus::Planned
    } else if job.plan.steps.is_empty() {
        SendStatus::UpToDate
    } else {
        SendStatus::Sent
    };
    let send = SendOutcome {
        target: job.target.clone(),
        status,
        common: job.plan.common.clone(),
        transfers,
        skipped: job.plan.skipped.clone(),
        incompatible: job.plan.incompatible.clone(),
        notes,
        target_createtxg: None,
        target_snapshots_changed: None,
    };
    (send, error)
}

/// The error of an interrupted run, after its records are out.
pub fn interrupted() -> Error {
    Error::Interrupted("the next run resumes the interrupted transfer".into())
}

/// Writes the records and the `end` record ([`attach`], then [`emit`]).
/// Fails with the number of datasets that failed here (not those that
/// arrived failed).
pub fn write(
    datasets: &mut [Dataset],
    jobs: &[Job],
    ex: &Executed,
    target_path: &str,
    dry: bool,
    log: &Log,
) -> Result<(), Error> {
    let counts = attach(datasets, jobs, ex, dry, log);
    emit(datasets, counts, &ex.created_parents, target_path)
}

/// What [`attach`] counted: the datasets that failed here, the transfers
/// done and the bytes relayed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    failed: usize,
    transfers: usize,
    bytes: u64,
}

/// Puts each job's `send` field (and error, said on stderr) into its
/// record, before anything is written.
pub fn attach(
    datasets: &mut [Dataset],
    jobs: &[Job],
    ex: &Executed,
    dry: bool,
    log: &Log,
) -> Counts {
    let mut failed = 0;
    let (mut transfers, mut bytes) = (0usize, 0u64);
    for (j, job) in jobs.iter().enumerate() {
        let done = ex.done.get(j).cloned().unwrap_or_default();
        let (send, error) = outcome(job, &done, &ex.created_parents, dry);
        transfers += done.outcomes.iter().filter(|o| o.error.is_none()).count();
        bytes += done.outcomes.iter().map(|o| o.bytes).sum::<u64>();
        let d = &mut datasets[job.record];
        if let Some(e) = &error {
            failed += 1;
            log.error(format!("[Target] {}: {e}", job.target));
            d.error = Some(e.clone());
        }
        d.send = Some(send);
    }
    Counts {
        failed,
        transfers,
        bytes,
    }
}

/// Writes the records as [`attach`] left them, then the `end` record.
pub fn emit(
    datasets: &[Dataset],
    counts: Counts,
    created_parents: &[String],
    target_path: &str,
) -> Result<(), Error> {
    let Counts {
        failed,
        transfers,
        bytes,
    } = counts;
    let stdout = std::io::stdout();
    let mut out = Writer::new(stdout.lock());
    for d in datasets.iter() {
        out.write(&Record::Dataset(d.clone()))?;
    }
    let failed_total = datasets.iter().filter(|d| d.error.is_some()).count();
    let sent = datasets
        .iter()
        .filter(|d| {
            d.send
                .as_ref()
                .is_some_and(|s| s.status == SendStatus::Sent)
        })
        .count();
    let end = End {
        target: target_path,
        sent,
        transfers,
        bytes,
        created_parents,
    };
    match out.finish(TOOL, datasets.len(), failed_total, &end) {
        Err(Error::Failed(_)) if failed == 0 => Ok(()),
        Err(Error::Failed(_)) => Err(Error::Failed(failed)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_fields_as_documented() {
        let none: Vec<String> = vec![];
        let e = End {
            target: "t/b",
            sent: 1,
            transfers: 2,
            bytes: 10,
            created_parents: &none,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"target":"t/b","sent":1,"transfers":2,"bytes":10}"#
        );
        let made = vec!["t/b/p".to_string()];
        let e = End {
            created_parents: &made,
            ..e
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"target":"t/b","sent":1,"transfers":2,"bytes":10,"created_parents":["t/b/p"]}"#
        );
    }

    /// Regression: an interrupted run said "interrupted: interrupted: the
    /// next run resumes …".
    #[test]
    fn an_interrupted_run_says_interrupted_once() {
        let e = interrupted();
        assert_eq!(
            e.to_string(),
            "interrupted: the next run resumes the interrupted transfer"
        );
        assert_eq!(e.to_string().matches("interrupted:").count(), 1);
    }
}
