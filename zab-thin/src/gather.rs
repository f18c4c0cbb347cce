//! zab-thin's reads, each only when it is needed: every host's snapshots at
//! the same time (one `zfs list` per source host, one of the whole target
//! tree), then the source's selection asked again (one `zfs get` per source
//! host, only when target datasets have no record in the input), then the
//! holds of what the plan would destroy (one `zfs holds` per host, only
//! when there is any). Any failed read but the selection's ends the run
//! before anything is destroyed.

use std::collections::BTreeMap;

use zab_core::error::Error;
use zab_core::record::Dataset;
use zab_core::select::{self, Options as SelectOptions};
use zab_core::zfs::{self, Snapshot, Tree};
use zab_core::Host;

use crate::cli::Zfs;
use crate::input::Input;
use crate::plan::Reads;

/// The hosts of this run, each made once: every source host in the
/// records, then the target's, then any asked for the selection.
#[derive(Debug, Default)]
pub struct Hosts(Vec<(Option<String>, Host)>);

impl Hosts {
    /// The index of the host `dest` names, made on first use.
    fn index(&mut self, config: &Zfs, dest: &Option<String>) -> Result<usize, Error> {
        if let Some(i) = self.0.iter().position(|(d, _)| d == dest) {
            return Ok(i);
        }
        self.0.push((dest.clone(), config.host(dest.as_deref())?));
        Ok(self.0.len() - 1)
    }

    /// Host `i`.
    pub fn get(&self, i: usize) -> &Host {
        &self.0[i].1
    }

    /// Each host with its index, in the order they were made.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Host)> {
        self.0.iter().map(|(_, h)| h).enumerate()
    }
}

/// A source host's name (for messages) and its selection, asked again, or
/// why it could not be read.
pub type Selection = (String, Result<Vec<Dataset>, String>);

/// The target tree, and where each selected source dataset goes in it.
#[derive(Debug)]
pub struct TargetTree {
    /// Index into [`Hosts`].
    pub host: usize,
    pub tree: Tree,
    /// Input record index → target dataset.
    pub map: BTreeMap<usize, String>,
}

/// The snapshot listings.
#[derive(Debug)]
pub struct Listed {
    /// Host index → the selected records on it (indexes into the input).
    pub by_host: BTreeMap<usize, Vec<usize>>,
    /// Record index → its snapshots, oldest first.
    pub snapshots: BTreeMap<usize, Vec<Snapshot>>,
    pub target: Option<TargetTree>,
}

/// Every host's snapshots, all hosts at the same time: one listing per
/// source host and one of the whole target tree.
pub fn listings(config: &Zfs, input: &Input, hosts: &mut Hosts) -> Result<Listed, Error> {
    let mut by_host: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (dest, idx) in &input.selected {
        by_host.insert(hosts.index(config, dest)?, idx.clone());
    }
    let target_host = match &config.target {
        Some(t) => Some(hosts.index(config, &t.ssh)?),
        None => None,
    };
    let datasets = &input.datasets;
    let (listed, tree) = std::thread::scope(|scope| {
        let sources: Vec<_> = by_host
            .iter()
            .map(|(&h, idx)| {
                let names: Vec<&str> = idx.iter().map(|&i| datasets[i].name.as_str()).collect();
                let host = hosts.get(h);
                scope.spawn(move || zfs::list_snapshots(host, &names))
            })
            .collect();
        let tree = match (target_host, &config.target) {
            (Some(h), Some(t)) => Some(zfs::list_tree(hosts.get(h), &t.path)),
            _ => None,
        };
        let listed: Vec<_> = sources
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (listed, tree)
    });
    let mut snapshots: BTreeMap<usize, Vec<Snapshot>> = BTreeMap::new();
    for (idx, listed) in by_host.values().zip(listed) {
        let mut listed = listed?;
        for &i in idx {
            snapshots.insert(i, listed.remove(&datasets[i].name).unwrap_or_default());
        }
    }
    let target = match (&config.target, target_host, tree) {
        (Some(t), Some(host), Some(tree)) => {
            let tree = tree?;
            let selected = || by_host.values().flatten();
            let names = t
                .group
                .map(selected().map(|&i| datasets[i].name.as_str()))?;
            let map = selected()
                .map(|&i| (i, names[datasets[i].name.as_str()].clone()))
                .collect();
            Some(TargetTree { host, tree, map })
        }
        _ => None,
    };
    Ok(Listed {
        by_host,
        snapshots,
        target,
    })
}

/// For each source host (its name, for messages), the source's selection
/// asked again, or why it could not be read (said on stderr, not an error:
/// the plan then treats nothing as missing). Asked only when `needed`.
pub fn selections(
    config: &Zfs,
    input: &Input,
    hosts: &mut Hosts,
    needed: bool,
) -> Result<Vec<Selection>, Error> {
    let mut selections = Vec::new();
    let Some(target) = config.target.as_ref().filter(|_| needed) else {
        return Ok(selections);
    };
    let mut sources: std::collections::BTreeSet<Option<String>> =
        input.datasets.iter().map(|d| d.host.clone()).collect();
    if input.datasets.is_empty() || config.ssh_source.is_some() {
        sources.insert(config.ssh_source.clone());
    }
    for dest in sources {
        let h = hosts.index(config, &dest)?;
        let opts = SelectOptions {
            backup: config.backup.clone(),
            property: config.property.clone(),
            host: dest.clone(),
            exclude_paths: match dest == target.ssh {
                true => vec![target.path.clone()],
                false => Vec::new(),
            },
            exclude_received: false,
            exclude_unchanged: 0,
        };
        let sel = select::list(hosts.get(h), &opts).map_err(|e| e.to_string());
        if let Err(e) = &sel {
            config
                .log
                .error(format!("[Source] reading the selection: {e}"));
        }
        selections.push((hosts.get(h).name().to_string(), sel));
    }
    Ok(selections)
}

/// The holds of `want` (host index → full snapshot names): one `zfs holds`
/// per host. A snapshot it does not name has none.
pub fn holds(
    hosts: &Hosts,
    want: &BTreeMap<usize, Vec<String>>,
) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut holds = BTreeMap::new();
    for (&h, snaps) in want {
        let refs: Vec<&str> = snaps.iter().map(String::as_str).collect();
        holds.extend(zfs::holds(hosts.get(h), &refs)?);
    }
    Ok(holds)
}

/// The reads the plan asks for once it has a draft ([`Reads`]): the
/// selection again ([`selections`]) and the holds ([`holds`]), on the
/// hosts of the listings.
#[derive(Debug)]
pub struct Later<'a> {
    pub config: &'a Zfs,
    pub input: &'a Input,
    pub hosts: &'a mut Hosts,
}

impl Reads for Later<'_> {
    fn selections(&mut self, needed: bool) -> Result<Vec<Selection>, Error> {
        selections(self.config, self.input, self.hosts, needed)
    }

    fn holds(
        &mut self,
        want: &BTreeMap<usize, Vec<String>>,
    ) -> Result<BTreeMap<String, Vec<String>>, Error> {
        holds(self.hosts, want)
    }
}
