//! zab-snap's quiet-run cache (zab_core::quiet): read before the listings,
//! one file per source host, and written again after a successful run
//! that found something new. Not used under `--test` (nothing is read or
//! written in the state directory), nor with `--allow-empty` (which lists
//! nothing). A state directory that cannot be used is a warning: the run
//! goes on, listing everything.

use std::collections::BTreeMap;
use std::path::PathBuf;

use zab_core::quiet::{self, Cache, Facts};
use zab_core::record::{Dataset, SnapStatus};

use crate::cli::Config;
use crate::gather::Listing;
use crate::plan::Decision;

/// Each source host's cache (by ssh destination), and where it lives
/// (None: no state directory yet).
#[derive(Debug, Default)]
pub struct Caches {
    pub by_host: BTreeMap<Option<String>, (Cache, Option<PathBuf>)>,
}

impl Caches {
    /// The cache of `host`; None when this run uses none.
    pub fn of(&self, host: &Option<String>) -> Option<&Cache> {
        self.by_host.get(host).map(|(c, _)| c)
    }
}

/// Each record's facts, for the cache, in input order.
pub fn facts(datasets: &[Dataset]) -> Vec<Facts> {
    datasets
        .iter()
        .map(|d| Facts {
            createtxg: d.createtxg,
            changed: d.snapshots_changed,
            written: d.written,
        })
        .collect()
}

/// Reads the caches of `hosts`, when this run may use them.
pub fn load<'a>(config: &Config, hosts: impl Iterator<Item = &'a Option<String>>) -> Caches {
    let mut caches = Caches::default();
    if !config.act || config.min_change == 0 {
        return caches;
    }
    // No state directory yet: no cache, and none is made just to read.
    let dir = match state_dir_exists() {
        false => None,
        true => match zab_core::private::state_dir() {
            Ok(d) => Some(d),
            Err(e) => {
                config
                    .log
                    .warn(format!("the quiet-run cache is not used: {e}"));
                return caches;
            }
        },
    };
    for host in hosts {
        let key = quiet::key(&config.backup, host.as_deref(), config.format.pattern());
        let path = dir
            .as_ref()
            .map(|d| d.join(quiet::file_name(&config.backup, host.as_deref())));
        let (cache, why) = match &path {
            Some(p) => quiet::load(p, &key),
            None => (Cache::new(&key), Some("no state directory yet".to_string())),
        };
        if let Some(why) = why {
            config
                .log
                .debug(format!("quiet-run cache: {why}: listing everything"));
        }
        caches.by_host.insert(host.clone(), (cache, path));
    }
    caches
}

/// Whether this user's state directory exists (anything at its path).
fn state_dir_exists() -> bool {
    zab_core::private::state_dir_for(
        zab_core::private::euid(),
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
    )
    .is_ok_and(|d| std::fs::symlink_metadata(d).is_ok())
}

/// The cache of one host after this run: the entries the cache answered
/// with, kept; a new entry where a dataset was listed and no snapshot
/// taken (and [`quiet::entry`] trusts the listing); nothing for the rest
/// (a snapshot taken, a failure: its `snapshots_changed` moved, or may have).
pub fn updated(
    old: &Cache,
    l: &Listing,
    names: &[&str],
    facts: &[Facts],
    decisions: &[Option<Decision>],
    format: &zab_core::naming::SnapshotFormat,
) -> Cache {
    let mut new = old.clone();
    new.datasets.clear();
    for (&i, latest) in l.datasets.iter().zip(&l.latest) {
        let skipped = decisions[i]
            .as_ref()
            .is_some_and(|d| d.outcome.status == SnapStatus::Skipped && d.error.is_none());
        if !skipped {
            continue;
        }
        let entry = match (l.cached.contains(&i), l.listed_at) {
            (true, _) => old.datasets.get(names[i]).cloned(),
            (false, Some(at)) => {
                let snaps = l.snapshots.get(names[i]).map(Vec::as_slice);
                let ours = latest.as_deref().filter(|n| format.is_ours(n));
                quiet::entry(facts[i], snaps.unwrap_or_default(), ours, at)
            }
            (false, None) => None,
        };
        if let Some(e) = entry {
            new.datasets.insert(names[i].to_string(), e);
        }
    }
    new
}

/// Writes each host's new cache where it differs from what was read. A
/// failure is a warning: the next run lists everything.
pub fn save(config: &Config, caches: &Caches, new: Vec<(Option<String>, Cache)>) {
    for (host, cache) in new {
        let Some((old, path)) = caches.by_host.get(&host) else {
            continue;
        };
        if *old == cache {
            continue;
        }
        // The state directory is made (and checked) when first written to.
        let path = match path {
            Some(p) => Ok(p.clone()),
            None => zab_core::private::state_dir()
                .map(|d| d.join(quiet::file_name(&config.backup, host.as_deref()))),
        };
        if let Err(e) = path.and_then(|p| quiet::save(&p, &cache)) {
            config
                .log
                .warn(format!("the quiet-run cache was not written: {e}"));
        }
    }
}
