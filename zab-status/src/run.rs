//! zab-status, phase by phase: [`crate::cli`] checks the options once;
//! the records are read whole and each selected dataset mapped to its
//! target (the one target map); [`crate::gather`] lists every side at once
//! and reads zab-send's state; [`crate::assess`] says how each dataset
//! stands (pure); [`crate::report`] writes the records, the table or the
//! Nagios line.

use zab_core::error::Error;
use zab_core::ndjson::read_stdin;

use crate::assess::{self, Facts, Thresholds};
use crate::cli::{Config, Output, TOOL};
use crate::{gather, report};

/// Runs the check; Ok holds the exit code (a Nagios state, or 0).
pub fn run(cfg: &Config) -> Result<u8, Error> {
    let stream = read_stdin(TOOL)?;
    stream.check(&cfg.backup, cfg.ssh_source.as_deref())?;
    let by_host = stream.selected_by_host();
    let map = cfg.target.map(
        by_host
            .values()
            .flatten()
            .map(|&i| stream.datasets[i].name.as_str()),
    )?;
    let (hosts, picked) = stream.pick(&map, |dest| cfg.common.host(dest))?;
    let names: Vec<Vec<&str>> = (0..hosts.len())
        .map(|h| {
            picked
                .iter()
                .filter(|p| p.host == h)
                .map(|p| stream.datasets[p.record].name.as_str())
                .collect()
        })
        .collect();
    let listed = gather::gather(cfg, &hosts, &names)?;
    let t = match cfg.output {
        Output::Nagios { warn, crit } => Thresholds { warn, crit },
        _ => Thresholds::default(),
    };
    let mut datasets = stream.datasets.clone();
    for p in &picked {
        let d = &mut datasets[p.record];
        let exists = listed.target.datasets.iter().any(|(n, _)| *n == p.target);
        let facts = Facts {
            target: &p.target,
            source: listed.sources[p.host]
                .get(&d.name)
                .map_or(&[][..], Vec::as_slice),
            on_target: listed
                .target
                .snapshots
                .get(&p.target)
                .filter(|_| exists)
                .map(Vec::as_slice),
            token: listed.target.tokens.contains_key(&p.target),
            state: listed
                .state
                .as_ref()
                .and_then(|s| s.datasets.get(&p.target)),
        };
        d.status = Some(assess::assess(&facts, &cfg.format, cfg.now, t));
    }
    report::write(cfg, &datasets, t)
}
