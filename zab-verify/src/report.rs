//! zab-verify's records: each input record, with its `verify` outcome
//! where it was verified (and an `error` where that failed), then the `end`
//! record with how many were verified. Each verdict is also said on stderr
//! as it comes (an error, or with --verbose).

use serde::Serialize;
use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::record::{Dataset, Record, VerifyOutcome, VerifyStatus};

use crate::cli::TOOL;

/// Adds a dataset's verdict to its record (an upstream error stays the
/// record's error) and says it on stderr.
pub fn add(record: &mut Dataset, outcome: VerifyOutcome, error: Option<String>, log: &Log) {
    match &error {
        None => log.verbose(format!(
            "[Verify] {}@{}: verified ({} chunks)",
            record.name,
            outcome.snapshot.as_deref().unwrap_or_default(),
            outcome.chunks.unwrap_or(0)
        )),
        Some(e) => log.error(format!("{}: {e}", record.name)),
    }
    record.verify = Some(outcome);
    if record.error.is_none() {
        record.error = error;
    }
}

/// The `end` record's own fields.
#[derive(Debug, Serialize)]
struct EndFields {
    verified: usize,
    mismatch: usize,
    no_common_snapshot: usize,
}

pub fn write(datasets: &[Dataset]) -> Result<(), Error> {
    let count = |s: VerifyStatus| {
        datasets
            .iter()
            .filter(|d| d.verify.as_ref().is_some_and(|v| v.status == s))
            .count()
    };
    let fields = EndFields {
        verified: count(VerifyStatus::Verified),
        mismatch: count(VerifyStatus::Mismatch),
        no_common_snapshot: count(VerifyStatus::NoCommonSnapshot),
    };
    let failed = datasets.iter().filter(|d| d.error.is_some()).count();
    let mut out = Writer::new(std::io::stdout().lock());
    for d in datasets {
        out.write(&Record::Dataset(d.clone()))?;
    }
    out.finish(TOOL, datasets.len(), failed, &fields)
}
