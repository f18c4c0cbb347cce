//! `--explain` (on stderr: stdout carries the records) and `--svg FILE`
//! of the plan, one timeline per dataset thinned by a schedule, drawn
//! before anything is destroyed.

use zab_core::error::Error;

use crate::cli::Zfs;
use crate::picture::{self, Timeline};
use crate::plan::Job;

/// Prints and draws the timelines of `jobs`, when asked.
pub fn show(config: &Zfs, jobs: &[Job]) -> Result<(), Error> {
    if !config.explain && config.svg.is_none() {
        return Ok(());
    }
    let shown: Vec<&Job> = jobs.iter().filter(|j| j.by_schedule).collect();
    let labels: Vec<String> = shown
        .iter()
        .map(|j| format!("{} {}", j.side, j.dataset))
        .collect();
    let timelines: Vec<Timeline> = shown
        .iter()
        .zip(&labels)
        .map(|(j, label)| Timeline {
            dataset: label,
            schedule: if j.by_target {
                &config.keep_target
            } else {
                &config.keep_source
            },
            now: config.now,
            names: &j.plan.names,
            times: &j.plan.times,
            verdicts: &j.plan.verdicts,
        })
        .collect();
    if config.explain {
        for t in &timelines {
            eprintln!("{}", picture::explain(t));
        }
    }
    if let Some(path) = &config.svg {
        picture::write_svg(path, &picture::svg(&timelines))?;
    }
    Ok(())
}
