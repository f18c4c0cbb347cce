//! zab-send's input: the records on stdin, checked against the command
//! line, and for each selected dataset its source host and its target
//! name (the one target map, with its collision check: a collision or an
//! over-stripped name ends the run before anything is done).

use zab_core::error::Error;
use zab_core::ndjson::{read_stdin, Picked};
use zab_core::record::Dataset;
use zab_core::Host;

use crate::cli::Config;

/// The records, the source hosts, and the selected datasets.
#[derive(Debug)]
pub struct Input {
    pub datasets: Vec<Dataset>,
    pub hosts: Vec<Host>,
    pub picked: Vec<Picked>,
}

impl Input {
    /// The source name of a selected dataset.
    pub fn name(&self, p: &Picked) -> &str {
        &self.datasets[p.record].name
    }
}

/// Reads and checks stdin's records, and maps each selected dataset.
pub fn read(cfg: &Config) -> Result<Input, Error> {
    let stream = read_stdin("zab-send")?;
    stream.check(&cfg.backup, cfg.ssh_source.as_deref())?;
    if cfg.store.is_none() {
        zab_core::name::target_overlap(
            &cfg.target_path,
            cfg.target.host.ssh_target.as_deref(),
            &stream.datasets,
        )?;
    }
    let map = cfg.map(
        stream
            .selected_by_host()
            .values()
            .flatten()
            .map(|&i| stream.datasets[i].name.as_str()),
    )?;
    let (hosts, picked) = stream.pick(&map, |dest| {
        Ok(cfg.common.host(dest)?.with_read_only(cfg.read_only))
    })?;
    Ok(Input {
        datasets: stream.datasets,
        hosts,
        picked,
    })
}
