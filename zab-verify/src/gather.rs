//! zab-verify's reads: one snapshot listing per source host, one listing
//! of the target tree (both at the same time).

use std::collections::BTreeMap;

use zab_core::error::Error;
use zab_core::zfs::{self, Snapshot, Tree};

use crate::cli::Config;
use crate::input::Input;

/// Every snapshot of the sources (by dataset), and the target tree.
#[derive(Debug)]
pub struct Listed {
    pub sources: BTreeMap<String, Vec<Snapshot>>,
    pub target: Tree,
}

pub fn listings(cfg: &Config, input: &Input) -> Result<Listed, Error> {
    std::thread::scope(|s| {
        let target = s.spawn(|| zfs::list_tree(&cfg.target_host, &cfg.target_path));
        let mut sources = BTreeMap::new();
        let mut first_error = None;
        for (h, host) in input.hosts.iter().enumerate() {
            let names: Vec<&str> = input
                .picked
                .iter()
                .filter(|p| p.host == h)
                .map(|p| input.datasets[p.record].name.as_str())
                .collect();
            match zfs::list_snapshots(host, &names) {
                Ok(m) => sources.extend(m),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let target = target
            .join()
            .unwrap_or_else(|_| Err(Error::Io("the target listing panicked".into())));
        match first_error {
            Some(e) => Err(e),
            None => Ok(Listed {
                sources,
                target: target?,
            }),
        }
    })
}
