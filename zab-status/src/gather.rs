//! zab-status's reads, all at the same time: one snapshot listing per
//! source host (the selected datasets, in the fast columns), one listing of
//! the target tree with its resume tokens; then zab-send's state file (it
//! is not looked for when a listing failed).

use std::collections::BTreeMap;

use zab_core::error::Error;
use zab_core::state::{self, State};
use zab_core::zfs::{self, Snapshot, Tree};
use zab_core::Host;

use crate::cli::Config;

/// What the listings and the state file say.
#[derive(Debug)]
pub struct Listed {
    /// Each source host's datasets' snapshots, by host index then dataset.
    pub sources: Vec<BTreeMap<String, Vec<Snapshot>>>,
    pub target: Tree,
    /// zab-send's state of this backup and target; None before its first run.
    pub state: Option<State>,
}

/// Lists every side at once; `datasets[h]`: the source datasets on host `h`.
/// Any listing that fails fails the whole: nothing is said on half of it.
pub fn gather(cfg: &Config, hosts: &[Host], datasets: &[Vec<&str>]) -> Result<Listed, Error> {
    let root = cfg.target_path.as_str();
    std::thread::scope(|s| {
        let target = s.spawn(|| {
            zfs::query(&cfg.target_host, &zfs::list_target_tree_args(root), |out| {
                zfs::parse_target_tree(out, root)
            })
        });
        let sources: Vec<_> = hosts
            .iter()
            .zip(datasets)
            .map(|(host, names)| s.spawn(move || zfs::list_snapshots(host, names)))
            .collect();
        let joined = |what: &str| Error::Io(format!("the {what} listing panicked"));
        let sources = sources
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(joined("source"))))
            .collect::<Result<Vec<_>, _>>()?;
        let target = target.join().unwrap_or_else(|_| Err(joined("target")))?;
        Ok(Listed {
            sources,
            target,
            state: state::find(&cfg.backup, cfg.target.host.ssh_target.as_deref(), root)?,
        })
    })
}
