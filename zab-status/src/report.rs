//! zab-status's output: the records (each with its `status`, then the
//! `end` record with the count of each health), a table (`--human`), or
//! the Nagios line (`--warn`, `--crit`) whose state is the exit code.

use std::io::Write;

use serde::Serialize;
use zab_core::error::Error;
use zab_core::ndjson::Writer;
use zab_core::record::{Dataset, Health, Record};

use crate::assess::{self, words, Thresholds};
use crate::cli::{Config, Output, TOOL};

/// The `end` record's own fields.
#[derive(Debug, Serialize)]
struct EndFields {
    ok: usize,
    warning: usize,
    critical: usize,
    unknown: usize,
}

/// Writes the result; returns the exit code.
pub fn write(cfg: &Config, datasets: &[Dataset], t: Thresholds) -> Result<u8, Error> {
    // Only the selected datasets are checked; one that failed upstream
    // has no status, and counts as unknown.
    let checked: Vec<&Dataset> = datasets.iter().filter(|d| d.selected).collect();
    match cfg.output {
        Output::Nagios { .. } => {
            let rows: Vec<_> = checked
                .iter()
                .map(|d| (d.name.as_str(), d.status.as_ref()))
                .collect();
            let (line, code) = assess::nagios(&rows, t);
            say(&format!("{line}\n"))?;
            Ok(code)
        }
        Output::Human => {
            say(&table(&checked))?;
            Ok(0)
        }
        Output::Records => {
            let health = |h: Health| {
                checked
                    .iter()
                    .filter(|d| d.status.as_ref().map_or(Health::Unknown, |s| s.health) == h)
                    .count()
            };
            let fields = EndFields {
                ok: health(Health::Ok),
                warning: health(Health::Warning),
                critical: health(Health::Critical),
                unknown: health(Health::Unknown),
            };
            let failed = datasets.iter().filter(|d| d.error.is_some()).count();
            let mut out = Writer::new(std::io::stdout().lock());
            for d in datasets {
                out.write(&Record::Dataset(d.clone()))?;
            }
            match out.finish(TOOL, datasets.len(), failed, &fields) {
                // Failures from upstream are data here, as every health.
                Err(Error::Failed(_)) | Ok(()) => Ok(0),
                Err(e) => Err(e),
            }
        }
    }
}

/// Writes `text` on stdout; a reader that went away is not an error.
fn say(text: &str) -> Result<(), Error> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io(e.to_string())),
        _ => Ok(()),
    }
}

/// `--human`: one line per dataset, its ages in words.
fn table(datasets: &[&Dataset]) -> String {
    let age = |a: Option<i64>| a.map_or("-".to_string(), words);
    let mut rows = vec![[
        "DATASET", "HEALTH", "SOURCE", "TARGET", "SUCCESS", "SENT", "BYTES", "RESUME",
    ]
    .map(String::from)];
    for d in datasets {
        rows.push(match &d.status {
            None => [
                d.name.clone(),
                "unknown".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                d.error.clone().unwrap_or_default(),
            ],
            Some(s) => [
                d.name.clone(),
                serde_json::to_value(s.health)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                age(s.source_age),
                age(s.target_age),
                age(s.last_success_age),
                age(s.last_transfer_age),
                s.last_run_bytes
                    .map_or("-".to_string(), zab_core::cli::format_bytes),
                if s.resume_token { "pending" } else { "-" }.into(),
            ],
        });
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
