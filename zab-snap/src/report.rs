//! zab-snap's report: the records, in input order, each with what became of
//! its snapshot, then the `end` record (docs/records.md), and the exit.

use serde::Serialize;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::record::{Dataset, Record, SnapStatus};

use crate::cli::TOOL;
use crate::execute::Outcome;
use crate::plan::Decision;

/// zab-snap's fields of the `end` record.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct End<'a> {
    /// This run's snapshot name.
    snapshot: &'a str,
    created: usize,
    skipped: usize,
    /// Only with `--test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    would_create: Option<usize>,
    /// Post-snapshot commands that failed; only when some did.
    #[serde(skip_serializing_if = "is_zero")]
    hook_failures: usize,
    /// Hosts whose pre-snapshot commands failed; only when some did.
    #[serde(skip_serializing_if = "is_zero")]
    pre_hook_failures: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Writes `datasets` with their outcome and the `end` record on stdout.
/// Failed datasets make it [`Error::Failed`]; so do failed post-snapshot
/// commands, with no dataset failed.
pub fn report(
    mut datasets: Vec<Dataset>,
    outcome: Outcome,
    snapshot: &str,
    act: bool,
) -> Result<(), Error> {
    let (created, skipped, would) = merge(&mut datasets, outcome.decisions);
    let end = End {
        snapshot,
        created,
        skipped,
        would_create: (!act).then_some(would),
        hook_failures: outcome.hook_failures,
        pre_hook_failures: outcome.pre_hook_failures,
    };
    let failed = datasets.iter().filter(|d| d.error.is_some()).count();
    let mut out = Writer::new(std::io::stdout().lock());
    for d in &datasets {
        out.write(&Record::Dataset(d.clone()))?;
    }
    out.finish(TOOL, datasets.len(), failed, &end)?;
    if outcome.hook_failures > 0 {
        return Err(Error::Failed(0));
    }
    Ok(())
}

/// Puts each decision into its record; the numbers created, skipped and
/// would-create.
fn merge(datasets: &mut [Dataset], decisions: Vec<Option<Decision>>) -> (usize, usize, usize) {
    let (mut created, mut skipped, mut would) = (0, 0, 0);
    for (d, dec) in datasets.iter_mut().zip(decisions) {
        let Some(dec) = dec else { continue };
        match dec.outcome.status {
            SnapStatus::Created => created += 1,
            SnapStatus::Skipped => skipped += 1,
            SnapStatus::WouldCreate => would += 1,
            SnapStatus::Failed => {}
        }
        if dec.error.is_some() {
            d.error = dec.error;
        }
        d.snapshot = Some(dec.outcome);
    }
    (created, skipped, would)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(end: &End) -> String {
        serde_json::to_string(end).unwrap()
    }

    /// The fields docs/records.md shows: would_create only with --test,
    /// the hook counts only when not 0.
    #[test]
    fn end_fields_are_omitted_as_documented() {
        let end = End {
            snapshot: "off-1",
            created: 2,
            skipped: 1,
            would_create: None,
            hook_failures: 0,
            pre_hook_failures: 0,
        };
        assert_eq!(
            json(&end),
            r#"{"snapshot":"off-1","created":2,"skipped":1}"#
        );
        let end = End {
            would_create: Some(0),
            hook_failures: 1,
            pre_hook_failures: 2,
            ..end
        };
        assert_eq!(
            json(&end),
            r#"{"snapshot":"off-1","created":2,"skipped":1,"would_create":0,"hook_failures":1,"pre_hook_failures":2}"#
        );
    }
}
