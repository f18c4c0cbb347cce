//! zab-restore's reads, before anything changes: the store (opened and
//! checked: a missing bucket or directory, refused credentials end the
//! run here); with --all, the datasets it keeps (one listing of the
//! manifests), and which of them to restore where ([`all_jobs`]: this
//! file decides what to ask), and the tree below TARGET-PATH (one `zfs
//! list` of its datasets and snapshots with guids and resume tokens);
//! then for each dataset its manifest, its objects (one listing of the
//! directory they are in) and its target as it is: from --all's tree, or
//! one `zfs list` of it (and, only when it does not exist, whether its
//! parent does). "Does not exist" is zab_core's reading of zfs's error.
//! A dataset's failed read is its own error, not the run's.

use zab_core::error::Error;
use zab_core::zfs::Tree;
use zab_core::Host;
use zab_store::location::{manifest_dataset, manifest_key, MANIFESTS};
use zab_store::manifest::Manifest;
use zab_store::Store;

use crate::cli::{Config, What};
use crate::plan::{Have, Target};

/// One dataset to restore.
#[derive(Debug)]
pub struct Job {
    /// The dataset in the store.
    pub dataset: String,
    /// The snapshot asked for (after @); None for the newest whole one.
    pub snapshot: Option<String>,
    pub target: String,
}

/// What one dataset's restore is planned from.
#[derive(Debug)]
pub struct Dataset {
    pub manifest: Manifest,
    /// Its objects in the store, with their sizes.
    pub listed: Vec<(String, u64)>,
    pub target: Target,
}

/// Everything read.
#[derive(Debug)]
pub struct World {
    /// Parents first.
    pub jobs: Vec<Job>,
    /// --all: the tree below TARGET-PATH (TARGET-PATH included).
    pub tree: Option<Tree>,
    /// Each job's reads, or why they failed.
    pub datasets: Vec<Result<Dataset, String>>,
}

/// The store, opened and checked.
pub fn open(cfg: &Config) -> Result<Store, Error> {
    let store =
        Store::open(&cfg.location, &cfg.settings).map_err(|e| Error::Store(e.to_string()))?;
    store
        .check(false)
        .map_err(|e| Error::Store(e.to_string()))?;
    Ok(store)
}

/// The jobs, and each one's reads.
pub fn gather(cfg: &Config, store: &Store) -> Result<World, Error> {
    let (jobs, tree) = match &cfg.what {
        What::One {
            dataset,
            snapshot,
            target,
        } => (
            vec![Job {
                dataset: dataset.clone(),
                snapshot: snapshot.clone(),
                target: target.clone(),
            }],
            None,
        ),
        What::All { below, target_path } => {
            let jobs = all(store, below.as_deref(), target_path)?;
            (jobs, Some(below_target_path(&cfg.host, target_path)?))
        }
    };
    let datasets = jobs
        .iter()
        .map(|job| {
            let manifest = read_manifest(store, &job.dataset)?;
            let listed = listed(store, &job.dataset)?;
            let target =
                target_state(&cfg.host, &job.target, tree.as_ref()).map_err(|e| e.to_string())?;
            Ok(Dataset {
                manifest,
                listed,
                target,
            })
        })
        .collect();
    Ok(World {
        jobs,
        tree,
        datasets,
    })
}

/// --all: the datasets of the store below the path asked for, parents
/// first (one listing of the manifests); none is an error.
fn all(store: &Store, below: Option<&str>, target_path: &str) -> Result<Vec<Job>, Error> {
    let datasets: Vec<String> = store
        .list(MANIFESTS)
        .map_err(|e| Error::Store(e.to_string()))?
        .iter()
        .filter_map(|l| manifest_dataset(&l.key).map(str::to_string))
        .collect();
    let jobs = all_jobs(&datasets, below, target_path);
    if jobs.is_empty() {
        return Err(Error::Nothing(format!(
            "no dataset in {}{}",
            store.location().url(),
            below
                .map(|b| format!(" at or below {b}"))
                .unwrap_or_default()
        )));
    }
    Ok(jobs)
}

/// --all: the datasets of the store to restore (all, or `below` and
/// those below it), parents first, each with its target
/// (`TARGET-PATH/NAME`).
pub fn all_jobs(datasets: &[String], below: Option<&str>, target_path: &str) -> Vec<Job> {
    let mut v: Vec<&String> = datasets
        .iter()
        .filter(|d| below.map_or(true, |b| zab_core::zfs::is_under(d, b)))
        .collect();
    // A parent's name is a prefix of its children's: sorted, it comes first.
    v.sort();
    v.dedup();
    v.into_iter()
        .map(|d| Job {
            dataset: d.clone(),
            snapshot: None,
            target: format!("{target_path}/{d}"),
        })
        .collect()
}

/// --all: the tree below TARGET-PATH (one `zfs list` of its datasets and
/// snapshots, with guids and resume tokens); a missing TARGET-PATH is said
/// as such.
fn below_target_path(host: &Host, target_path: &str) -> Result<Tree, Error> {
    zab_core::zfs::list_restore_tree(host, target_path, false)?.ok_or_else(|| {
        Error::Usage(format!(
            "TARGET-PATH {target_path} does not exist on {}: create it first (zfs create {target_path})",
            host.name()
        ))
    })
}

/// The dataset's manifest, with the objects it does not list read from
/// their metadata (a zfs3backup bucket: zab_store::zfs3backup); an error
/// when the store has no backup of it.
fn read_manifest(store: &Store, dataset: &str) -> Result<Manifest, String> {
    let key = manifest_key(dataset);
    zab_store::zfs3backup::view(store, dataset)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no backup of {dataset} in {} (no manifest {}, no object {dataset}@…)",
                store.location().url(),
                store.url_of(&key)
            )
        })
}

/// The dataset's objects in the store, with their sizes: one listing of
/// the directory its objects are in.
fn listed(store: &Store, dataset: &str) -> Result<Vec<(String, u64)>, String> {
    let dir = dataset.rsplit_once('/').map_or("", |(d, _)| d);
    let mine = format!("{dataset}@");
    Ok(store
        .list(dir)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|l| l.key.starts_with(&mine))
        .map(|l| (l.key, l.size))
        .collect())
}

/// The target as it is: its snapshots and resume token, from --all's
/// `tree` (below TARGET-PATH), else from one `zfs list` of it; when it does
/// not exist, whether its parent does (in `tree`, else asked).
fn target_state(host: &Host, target: &str, tree: Option<&Tree>) -> Result<Target, Error> {
    let listed;
    let tree = match tree {
        Some(t) => Some(t),
        None => {
            listed = zab_core::zfs::list_restore_tree(host, target, true)?;
            listed.as_ref()
        }
    };
    if let Some(snapshots) = tree.and_then(|t| t.snapshots.get(target)) {
        return Ok(Target::Exists {
            snapshots: snapshots
                .iter()
                .map(|s| Have {
                    name: s.name.clone(),
                    guid: s.guid,
                })
                .collect(),
            token: tree.and_then(|t| t.tokens.get(target).cloned()),
        });
    }
    let parent_exists = match zab_core::zfs::parent_of(target) {
        None => true,
        // --all: every target's parent is TARGET-PATH or below it.
        Some(parent) => match tree {
            Some(t) => t.snapshots.contains_key(parent),
            None => zab_core::zfs::exists(host, parent)?,
        },
    };
    Ok(Target::Missing { parent_exists })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn all_restores_parents_first_below_the_target_path() {
        let ds = strings(&["zab-a/x/y", "zab-a/x", "zab-b/v", "zab-a/x-z", "zab-a/xy"]);
        let jobs = all_jobs(&ds, None, "pool/r");
        let names: Vec<&str> = jobs.iter().map(|j| j.dataset.as_str()).collect();
        assert_eq!(
            names,
            ["zab-a/x", "zab-a/x-z", "zab-a/x/y", "zab-a/xy", "zab-b/v"]
        );
        assert_eq!(jobs[2].target, "pool/r/zab-a/x/y");
        // DATASET and those below it, not its namesakes (x-z, xy).
        let jobs = all_jobs(&ds, Some("zab-a/x"), "pool");
        let pairs: Vec<(&str, &str)> = jobs
            .iter()
            .map(|j| (j.dataset.as_str(), j.target.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("zab-a/x", "pool/zab-a/x"), ("zab-a/x/y", "pool/zab-a/x/y")]
        );
        assert!(all_jobs(&ds, Some("zab-c"), "pool").is_empty());
    }
}
