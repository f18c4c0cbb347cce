//! zab-verify's input: the records on stdin, checked against the command
//! line, and for each selected dataset (without an upstream error) its
//! source host and its target name (the one target map).

use zab_core::error::Error;
use zab_core::ndjson::{read_stdin, Picked};
use zab_core::record::Dataset;
use zab_core::Host;

use crate::cli::Config;

/// The records, the source hosts, and the datasets to verify.
#[derive(Debug)]
pub struct Input {
    pub datasets: Vec<Dataset>,
    pub hosts: Vec<Host>,
    pub picked: Vec<Picked>,
}

/// Reads and checks stdin's records, and maps each selected dataset.
pub fn read(cfg: &Config) -> Result<Input, Error> {
    let stream = read_stdin("zab-verify")?;
    stream.check(&cfg.backup, cfg.ssh_source.as_deref())?;
    let map = cfg.target.map(
        stream
            .selected_by_host()
            .values()
            .flatten()
            .map(|&i| stream.datasets[i].name.as_str()),
    )?;
    let (hosts, picked) = stream.pick(&map, |dest| cfg.common.host(dest))?;
    Ok(Input {
        datasets: stream.datasets,
        hosts,
        picked,
    })
}
