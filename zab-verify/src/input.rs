//! zab-verify's input: the records on stdin, checked against the command
//! line, and for each selected dataset (without an upstream error) its
//! source host and its target name (the one target map).

use zab_core::error::Error;
use zab_core::ndjson::read_stream;
use zab_core::record::Dataset;
use zab_core::Host;

use crate::cli::Config;

/// One dataset to verify.
#[derive(Debug, Clone)]
pub struct Picked {
    /// Index into the records.
    pub record: usize,
    /// Index into the source hosts.
    pub host: usize,
    /// Its target dataset.
    pub target: String,
}

/// The records, the source hosts, and the datasets to verify.
#[derive(Debug)]
pub struct Input {
    pub datasets: Vec<Dataset>,
    pub hosts: Vec<Host>,
    pub picked: Vec<Picked>,
}

/// Reads and checks stdin's records, and maps each selected dataset.
pub fn read(cfg: &Config) -> Result<Input, Error> {
    let stream = read_stream(std::io::stdin().lock())?;
    stream.check(&cfg.backup, cfg.ssh_source.as_deref())?;
    let by_host = stream.selected_by_host();
    let datasets = stream.datasets;
    let map = cfg.target.map(
        by_host
            .values()
            .flatten()
            .map(|&i| datasets[i].name.as_str()),
    )?;
    let mut hosts = Vec::new();
    let mut picked = Vec::new();
    for (dest, idx) in &by_host {
        hosts.push(cfg.common.host(dest.as_deref())?);
        for &record in idx {
            picked.push(Picked {
                record,
                host: hosts.len() - 1,
                target: map[datasets[record].name.as_str()].clone(),
            });
        }
    }
    Ok(Input {
        datasets,
        hosts,
        picked,
    })
}
