//! zab-verify, phase by phase, each in the file named after it:
//! [`crate::cli`] checks the options once; [`crate::input`] reads the
//! records whole and maps each dataset to its target; [`crate::gather`]
//! lists the sources' snapshots and the target tree (at the same time);
//! [`crate::plan`] picks each dataset's newest common snapshot and, once
//! [`crate::execute`] has hashed it on both sides, compares the hashes;
//! [`crate::report`] writes the records.

use zab_core::error::Error;
use zab_core::record::{VerifyOutcome, VerifyStatus};

use crate::cli::Config;
use crate::{execute, gather, input, plan, report};

pub fn run(cfg: &Config) -> Result<(), Error> {
    let log = cfg.log;
    let mut input = input::read(cfg)?;
    let listed = gather::listings(cfg, &input)?;
    for p in input.picked.clone() {
        let name = input.datasets[p.record].name.clone();
        let source = listed.sources.get(&name).map(Vec::as_slice).unwrap_or(&[]);
        let target = listed.target.snapshots.get(&p.target).map(Vec::as_slice);
        let target = target.filter(|_| listed.target.datasets.iter().any(|(d, _)| *d == p.target));
        let mut outcome = VerifyOutcome {
            target: p.target.clone(),
            status: VerifyStatus::NoCommonSnapshot,
            snapshot: None,
            chunks: None,
            differences: Vec::new(),
            more: None,
        };
        let error = match plan::snapshot(source, target, cfg.guid_check) {
            None => Some(format!("no snapshot in common with {}", p.target)),
            Some(snap) => {
                outcome.snapshot = Some(snap.clone());
                let hashed = execute::hash_both(
                    cfg,
                    (&input.hosts[p.host], &format!("{name}@{snap}")),
                    (&cfg.target_host, &format!("{}@{snap}", p.target)),
                );
                match hashed.and_then(|(a, b)| plan::compare(&a, &b).map_err(Error::Io)) {
                    Err(e) => {
                        outcome.status = VerifyStatus::Failed;
                        Some(e.to_string())
                    }
                    Ok(c) => {
                        outcome.chunks = Some(c.chunks);
                        outcome.more = (c.total > c.differences.len() as u64).then_some(c.total);
                        outcome.differences = c.differences;
                        if c.total == 0 {
                            outcome.status = VerifyStatus::Verified;
                            None
                        } else {
                            outcome.status = VerifyStatus::Mismatch;
                            Some(format!(
                                "{} of {} chunks differ from {}@{snap}",
                                c.total, c.chunks, p.target
                            ))
                        }
                    }
                }
            }
        };
        match &error {
            None => log.verbose(format!(
                "[Verify] {name}@{}: verified ({} chunks)",
                outcome.snapshot.as_deref().unwrap_or_default(),
                outcome.chunks.unwrap_or(0)
            )),
            Some(e) => log.error(format!("{name}: {e}")),
        }
        let record = &mut input.datasets[p.record];
        record.verify = Some(outcome);
        if record.error.is_none() {
            record.error = error;
        }
    }
    report::write(&input.datasets)
}
