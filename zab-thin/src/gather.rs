//! zab-thin's reads of the listings, each only when it is needed: every
//! host's snapshots at the same time (one `zfs list` per source host, one
//! of the whole target tree), then, only when target datasets have no
//! record in the input, the source's selection asked again (one `zfs get`
//! per source host). This file decides what to ask: which target datasets
//! may be missing on the source ([`candidates`]). The holds, which depend
//! on the draft plan, are read by [`crate::holds`]. Any failed read but the
//! selection's ends the run before anything is destroyed.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::error::Error;
use zab_core::naming::SnapshotFormat;
use zab_core::record::Dataset;
use zab_core::select::{self, Options as SelectOptions};
use zab_core::zfs::{self, Snapshot, Tree};
use zab_core::Host;

use crate::cli::Zfs;
use crate::input::Input;

/// The hosts of this run, each made once: every source host in the
/// records, then the target's, then any asked for the selection.
#[derive(Debug, Default)]
pub struct Hosts(Vec<(Option<String>, Host)>);

impl Hosts {
    /// The index of the host `dest` names, made on first use.
    pub fn index(&mut self, config: &Zfs, dest: &Option<String>) -> Result<usize, Error> {
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
    /// The target datasets that no record maps to ([`unmapped`]).
    pub unmapped: Vec<String>,
    /// Of those, the ones that may be missing on the source
    /// ([`candidates`]): the selection is asked again only for them.
    pub candidates: Vec<String>,
}

/// The snapshot listings.
#[derive(Debug)]
pub struct Listed {
    /// Host index → the selected records on it (indexes into the input).
    pub by_host: BTreeMap<usize, Vec<usize>>,
    /// Record index → its snapshots, oldest first.
    pub snapshots: BTreeMap<usize, Vec<Snapshot>>,
    /// Record index → its bookmarks, oldest first (the same listing).
    pub bookmarks: BTreeMap<usize, Vec<Snapshot>>,
    pub target: Option<TargetTree>,
    /// The source's selection asked again, on each source host (only when
    /// there are [`TargetTree::candidates`]).
    pub selections: Vec<Selection>,
}

/// Every read that does not depend on the plan: the listings, then the
/// selection when target datasets may be missing on the source.
pub fn gather(config: &Zfs, input: &Input, hosts: &mut Hosts) -> Result<Listed, Error> {
    let mut listed = listings(config, input, hosts)?;
    let needed = listed
        .target
        .as_ref()
        .is_some_and(|t| !t.candidates.is_empty());
    listed.selections = selections(config, input, hosts, needed)?;
    Ok(listed)
}

/// Every host's snapshots, all hosts at the same time: one listing per
/// source host and one of the whole target tree.
fn listings(config: &Zfs, input: &Input, hosts: &mut Hosts) -> Result<Listed, Error> {
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
                scope.spawn(move || zfs::list_snapshots_and_bookmarks(host, &names))
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
    let mut bookmarks: BTreeMap<usize, Vec<Snapshot>> = BTreeMap::new();
    for (idx, listed) in by_host.values().zip(listed) {
        let mut listed = listed?;
        for &i in idx {
            let name = &datasets[i].name;
            snapshots.insert(i, listed.snapshots.remove(name).unwrap_or_default());
            bookmarks.insert(i, listed.bookmarks.remove(name).unwrap_or_default());
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
            let unmapped = unmapped(input, &tree, &map, &t.path, t.strip);
            let candidates = candidates(&unmapped, &tree, &config.format);
            Some(TargetTree {
                host,
                tree,
                map,
                unmapped,
                candidates,
            })
        }
        _ => None,
    };
    Ok(Listed {
        by_host,
        snapshots,
        bookmarks,
        target,
        selections: Vec::new(),
    })
}

/// The target datasets under `root` that no input record maps to (`map`),
/// nor a record that failed upstream (left alone with `--skip-failed`),
/// other than `root` itself: where backups go is never "missing".
pub fn unmapped(
    input: &Input,
    tree: &Tree,
    map: &BTreeMap<usize, String>,
    root: &str,
    strip: usize,
) -> Vec<String> {
    let left_alone: Vec<String> = input
        .failed
        .iter()
        .filter_map(|&i| zfs::target_name(&input.datasets[i].name, root, strip).ok())
        .collect();
    let used: BTreeSet<&String> = map.values().chain(&left_alone).collect();
    tree.datasets
        .iter()
        .map(|(d, _)| d)
        .filter(|d| !used.contains(d) && *d != root)
        .cloned()
        .collect()
}

/// Of the `unmapped` target datasets, those that may be missing on the
/// source: with a snapshot of ours, or no children (a container with no
/// snapshot of ours has nothing to thin or destroy). Only when there are
/// any is the source's selection asked again.
pub fn candidates(unmapped: &[String], tree: &Tree, fmt: &SnapshotFormat) -> Vec<String> {
    unmapped
        .iter()
        .filter(|t| {
            tree.snapshots[t.as_str()]
                .iter()
                .any(|s| fmt.parse(&s.name).is_some())
                || !tree.has_children(t)
        })
        .cloned()
        .collect()
}

/// For each source host (its name, for messages), the source's selection
/// asked again, or why it could not be read (said on stderr, not an error:
/// the plan then treats nothing as missing). Asked only when `needed`.
fn selections(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{fmt, listing, name_at, rec};

    /// Which target datasets are asked about: not the target path, not
    /// one a record maps to or one of a record that failed upstream, and
    /// not a container without a snapshot of ours.
    #[test]
    fn only_target_datasets_that_may_be_missing_are_asked_about() {
        let ours = name_at(1_763_800_000);
        let tree = Tree {
            datasets: [
                "b", "b/a", "b/failed", "b/box", "b/box/x", "b/kept", "b/kept/y", "b/empty",
            ]
            .map(|d| (d.to_string(), None))
            .to_vec(),
            snapshots: BTreeMap::from([
                ("b".to_string(), Vec::new()),
                ("b/a".to_string(), listing(std::slice::from_ref(&ours))),
                ("b/failed".to_string(), listing(std::slice::from_ref(&ours))),
                // A container with a foreign snapshot only: nothing to do.
                ("b/box".to_string(), listing(&["manual".to_string()])),
                ("b/box/x".to_string(), listing(std::slice::from_ref(&ours))),
                // A container with one of ours: thinned or destroyed.
                ("b/kept".to_string(), listing(std::slice::from_ref(&ours))),
                ("b/kept/y".to_string(), Vec::new()),
                // A leaf with nothing: said to be destroyed by hand.
                ("b/empty".to_string(), Vec::new()),
            ]),
            ..Tree::default()
        };
        let input = Input {
            datasets: vec![rec("a", true, "selected"), rec("failed", true, "selected")],
            selected: BTreeMap::from([(None, vec![0])]),
            upstream: 2,
            failed: vec![1],
            _lock: None,
        };
        let map = BTreeMap::from([(0, "b/a".to_string())]);
        let asked = unmapped(&input, &tree, &map, "b", 0);
        assert_eq!(asked, ["b/box", "b/box/x", "b/kept", "b/kept/y", "b/empty"]);
        assert_eq!(
            candidates(&asked, &tree, &fmt()),
            ["b/box/x", "b/kept", "b/kept/y", "b/empty"]
        );
        // Nothing unmapped: nothing to ask, so the selection is not read.
        let small = Tree {
            datasets: tree.datasets[..3].to_vec(),
            ..tree.clone()
        };
        assert!(unmapped(&input, &small, &map, "b", 0).is_empty());
    }
}
