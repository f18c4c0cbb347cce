//! zab-thin's records: each input dataset record with its `thin` outcome
//! (and the error of a failed destroy), then the `end` record with what was
//! destroyed and, with a TARGET-PATH, the target datasets missing on the
//! source (docs/records.md).

use serde::Serialize;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::record::{Dataset, Record, ThinOutcome, ThinSide};

use crate::cli::TOOL;
use crate::plan::Job;

/// The `end` record's own fields.
#[derive(Debug, Serialize)]
struct EndFields<'a> {
    destroyed: usize,
    /// Only when nothing was destroyed on purpose (`--test`,
    /// `--no-thinning`).
    #[serde(skip_serializing_if = "Option::is_none")]
    would_destroy: Option<usize>,
    /// Only with a TARGET-PATH.
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<Vec<Missing<'a>>>,
}

/// A target dataset missing on the source, in the `end` record.
#[derive(Debug, Serialize)]
struct Missing<'a> {
    dataset: &'a str,
    kept: usize,
    destroy: &'a [String],
    destroyed: bool,
    dataset_destroyed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Writes the records of `datasets` as `jobs` left them, then the end
/// record; exit 1 when a dataset failed. As upstream, errors on target
/// datasets missing on the source are reported (stderr, the end record) but
/// not counted as failed datasets.
pub fn write(
    mut datasets: Vec<Dataset>,
    jobs: &[Job],
    acted: bool,
    with_target: bool,
) -> Result<(), Error> {
    for j in jobs {
        if let Some((i, is_target)) = j.record {
            attach(&mut datasets[i], j, is_target);
        }
    }
    let failed = datasets.iter().filter(|d| d.error.is_some()).count();
    let mut out = Writer::new(std::io::stdout().lock());
    for d in &datasets {
        out.write(&Record::Dataset(d.clone()))?;
    }
    let end = EndFields {
        destroyed: jobs.iter().map(|j| j.destroyed).sum(),
        would_destroy: (!acted).then(|| jobs.iter().map(|j| j.destroy.len()).sum()),
        missing: with_target.then(|| {
            jobs.iter()
                .filter(|j| j.record.is_none())
                .map(|j| Missing {
                    dataset: &j.dataset,
                    kept: j.kept,
                    destroy: &j.destroy,
                    destroyed: j.done,
                    dataset_destroyed: j.done && j.destroy_dataset && j.error.is_none(),
                    note: j.note.as_deref(),
                    error: j.error.as_deref(),
                })
                .collect()
        }),
    };
    out.finish(TOOL, datasets.len(), failed, &end)
}

/// Puts job `j`'s outcome (its source side, or its target side when
/// `is_target`) into its record `d`.
pub(crate) fn attach(d: &mut Dataset, j: &Job, is_target: bool) {
    let side = ThinSide {
        dataset: j.dataset.clone(),
        kept: j.kept,
        destroy: j.destroy.clone(),
        destroyed: j.done,
        spared: j.spared.clone(),
        bookmarks: j.bookmarks.clone(),
    };
    if let Some(e) = &j.error {
        d.error = Some(e.clone());
    }
    match (&mut d.thin, is_target) {
        (Some(t), true) => t.target = Some(side),
        (_, false) => {
            d.thin = Some(ThinOutcome {
                source: side,
                target: None,
            })
        }
        (None, true) => {}
    }
}
