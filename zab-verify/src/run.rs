//! zab-verify, phase by phase, each in the file named after it:
//! [`crate::cli`] checks the options once; [`crate::input`] reads the
//! records whole and maps each dataset to its target; [`crate::gather`]
//! lists the sources' snapshots and the target tree (at the same time);
//! [`crate::plan`] picks each dataset's newest common snapshot; then, one
//! dataset after the other, [`crate::execute`] hashes it on both sides,
//! [`crate::compare`] compares the hashes and gives the verdict, and
//! [`crate::report`] adds it to the record (and says it on stderr); last,
//! [`crate::report`] writes the records.

use zab_core::error::Error;

use crate::cli::Config;
use crate::{compare, execute, gather, input, plan, report};

pub fn run(cfg: &Config) -> Result<(), Error> {
    let mut input = input::read(cfg)?;
    let listed = gather::listings(cfg, &input)?;
    let jobs = plan::jobs(&input, &listed, cfg.guid_check);
    for job in &jobs {
        let hashed = execute::hash(cfg, &input.hosts, job);
        let (outcome, error) = compare::verdict(job, hashed);
        report::add(&mut input.datasets[job.record], outcome, error, &cfg.log);
    }
    report::write(&input.datasets)
}
