//! zab-thin's quiet-run cache (zab_core::quiet::thin; docs/architecture.md,
//! "Quiet runs"): one file per backup, source host, target host and
//! TARGET-PATH in the private state directory.
//!
//! An entry holds what a listing run that destroyed nothing on a selected
//! dataset found there: both sides' `createtxg` and `snapshots_changed`
//! and their snapshots (name, createtxg, guid); with a TARGET-PATH the
//! cache also holds the target tree's datasets. When every selected
//! dataset's facts now are its entry's ([`listed`]), the cached snapshots
//! stand in for the listings and zab-thin plans from them at this run's
//! time: when that plan destroys nothing (no snapshot's holds to ask,
//! `crate::holds::queries`), nothing is listed and the records are those
//! a listing run writes; when it would destroy anything, or anything does
//! not match, the run lists as without the cache. The cache never decides
//! a destroy.
//!
//! The source's facts come from the records (zab-select's read, before any
//! listing); a snapshot zab-snap took this run makes the dataset not
//! quiet. The target's come from zab-send's records (`send.target_createtxg`,
//! `send.target_snapshots_changed`: read this run, nothing changed there),
//! or, where they are absent, from one `zfs get` of ours by name.
//!
//! Not used under `--test`/`--no-thinning`, `--explain` or `--svg`, with
//! `--destroy-missing` (it acts on target datasets no record maps to, which
//! only a listing finds), to an object store, with more than one source
//! host, or with input that failed upstream. Entries are written only
//! after a run whose records were all written without a failure, and only
//! when the target tree had no dataset that may be missing on the source
//! (`crate::gather::candidates`: the selection would be asked again).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use zab_core::quiet::thin::{self, Cache, Entry, Side};
use zab_core::record::{Dataset, SnapStatus};
use zab_core::zfs::{self, Facts, Tree};

use crate::cli::Zfs;
use crate::gather::{self, Hosts, Listed, TargetTree};
use crate::input::Input;
use crate::plan::Job;

/// The cache this run may use, and where it lives.
#[derive(Debug)]
pub struct Loaded {
    pub cache: Cache,
    pub path: PathBuf,
}

/// Whether this run may use a cache at all.
pub fn usable(config: &Zfs, input: &Input) -> bool {
    config.act()
        && !config.explain
        && config.svg.is_none()
        && config.destroy_missing.is_none()
        && config.store.is_none()
        && input.failed.is_empty()
        && input.selected.len() == 1
}

/// What a plan depends on besides the snapshots: part of the key, so that
/// a run with another schedule, format or mapping lists.
fn options(config: &Zfs) -> String {
    let target = config
        .target
        .as_ref()
        .map(|t| (t.strip, t.guid_check, format!("{:?}", t.group)));
    format!(
        "{:?}",
        (
            &config.format,
            &config.tag,
            config.keep_source.to_string(),
            config.keep_target.to_string(),
            target,
            config.skip_failed,
        )
    )
}

/// Reads the cache, when this run may use one (None: it lists, and writes
/// none).
pub fn load(config: &Zfs, input: &Input) -> Option<Loaded> {
    if !usable(config, input) {
        return None;
    }
    let log = config.log;
    let dir = match zab_core::private::state_dir() {
        Ok(d) => d,
        Err(e) => {
            log.warn(format!("the quiet-run cache is not used: {e}"));
            return None;
        }
    };
    let source = input.selected.keys().next()?.as_deref();
    let t = config.target.as_ref();
    let (ssh, path) = (t.and_then(|t| t.ssh.as_deref()), t.map(|t| t.path.as_str()));
    let key = thin::key(&config.backup, source, ssh, path, &options(config));
    let path = dir.join(thin::file_name(&config.backup, source, ssh, path));
    let (cache, why) = thin::load(&path, &key);
    if let Some(why) = why {
        log.debug(format!("quiet-run cache: {why}: listing everything"));
    }
    Some(Loaded { cache, path })
}

/// Whether zab-snap took (or failed to take) a snapshot of `d` this run:
/// its `snapshots_changed` is then older than its snapshots.
fn snapped(d: &Dataset) -> bool {
    d.snapshot
        .as_ref()
        .is_some_and(|s| s.status != SnapStatus::Skipped)
}

/// The target's facts (createtxg, `snapshots_changed`) of record `d` as
/// zab-send read them this run, when its target is `target`.
pub fn record_facts(d: &Dataset, target: &str) -> Option<(u64, Option<u64>)> {
    let s = d.send.as_ref().filter(|s| s.target == target)?;
    Some((s.target_createtxg?, s.target_snapshots_changed))
}

/// Reads the facts of `names` on `host` (one `zfs get`); None (said with
/// `--debug`) when it fails: a dataset gone, say.
fn read_facts(host: &zab_core::Host, names: &[&str], config: &Zfs) -> Option<BTreeMap<String, Facts>> {
    match zfs::query(host, &zfs::facts_args(names), |out| {
        zfs::parse_facts(out, names)
    }) {
        Ok(f) => Some(f),
        Err(e) => {
            config.log.debug(format!("quiet-run cache: {e}"));
            None
        }
    }
}

/// The listings as the cache has them, when every selected dataset's facts
/// now are its entry's (the target's from the records, else from one `zfs
/// get` of ours); None when anything is to be listed.
pub fn listed(config: &Zfs, input: &Input, hosts: &mut Hosts, cache: &Cache) -> Option<Listed> {
    let (dest, idx) = input.selected.iter().next()?;
    let datasets = &input.datasets;
    let names: BTreeSet<&str> = idx.iter().map(|&i| datasets[i].name.as_str()).collect();
    if !names.iter().copied().eq(cache.datasets.keys().map(String::as_str)) {
        return None;
    }
    let entries: Vec<&Entry> = idx
        .iter()
        .map(|&i| cache.datasets.get(&datasets[i].name))
        .collect::<Option<_>>()?;
    let source_same = idx.iter().zip(&entries).all(|(&i, e)| {
        let d = &datasets[i];
        !snapped(d) && e.source.same(d.createtxg, d.snapshots_changed)
    });
    if !source_same {
        return None;
    }
    let host = hosts.index(config, dest).ok()?;
    let mut snapshots = BTreeMap::new();
    let mut bookmarks = BTreeMap::new();
    for (&i, e) in idx.iter().zip(&entries) {
        snapshots.insert(i, e.source.listing());
        bookmarks.insert(i, Vec::new());
    }
    let target = match &config.target {
        None => None,
        Some(_) => Some(target_tree(config, input, hosts, cache, &entries)?),
    };
    Some(Listed {
        by_host: BTreeMap::from([(host, idx.clone())]),
        snapshots,
        bookmarks,
        target,
        selections: Vec::new(),
    })
}

/// The target tree as the cache has it, when each selected dataset's
/// target is its entry's and its facts now are the entry's, and no target
/// dataset may be missing on the source.
fn target_tree(
    config: &Zfs,
    input: &Input,
    hosts: &mut Hosts,
    cache: &Cache,
    entries: &[&Entry],
) -> Option<TargetTree> {
    let t = config.target.as_ref()?;
    let (_, idx) = input.selected.iter().next()?;
    let datasets = &input.datasets;
    let names = t
        .group
        .map(idx.iter().map(|&i| datasets[i].name.as_str()))
        .ok()?;
    let mut map = BTreeMap::new();
    let mut ask: Vec<(&str, &Side)> = Vec::new();
    for (&i, e) in idx.iter().zip(entries) {
        let d = &datasets[i];
        let (tname, side) = e.target.as_ref()?;
        if names.get(&d.name) != Some(tname) {
            return None;
        }
        match record_facts(d, tname) {
            Some((txg, changed)) if side.same(txg, changed) => {}
            Some(_) => return None,
            None => ask.push((tname, side)),
        }
        map.insert(i, tname.clone());
    }
    let host = hosts.index(config, &t.ssh).ok()?;
    if !ask.is_empty() {
        let asked: Vec<&str> = ask.iter().map(|(n, _)| *n).collect();
        let now = read_facts(hosts.get(host), &asked, config)?;
        let same = |(n, s): &(&str, &Side)| {
            now.get(*n)
                .is_some_and(|f| f.token.is_none() && s.same(f.createtxg, f.changed))
        };
        if !ask.iter().all(same) {
            return None;
        }
    }
    let tree = cached_tree(cache, entries);
    let unmapped = gather::unmapped(input, &tree, &map, &t.path, t.strip);
    let candidates = gather::candidates(&unmapped, &tree, &config.format);
    (!cache.tree.is_empty() && candidates.is_empty()).then_some(TargetTree {
        host,
        tree,
        map,
        unmapped,
        candidates,
    })
}

/// The target tree of the cache: its datasets, the entries' targets with
/// their snapshots, the others (none of ours: [`updated`]) with none.
fn cached_tree(cache: &Cache, entries: &[&Entry]) -> Tree {
    let mut snapshots: BTreeMap<String, Vec<zfs::Snapshot>> = cache
        .tree
        .iter()
        .map(|d| (d.clone(), Vec::new()))
        .collect();
    for (name, side) in entries.iter().filter_map(|e| e.target.as_ref()) {
        snapshots.insert(name.clone(), side.listing());
    }
    Tree {
        datasets: cache.tree.iter().map(|d| (d.clone(), None)).collect(),
        snapshots,
        ..Tree::default()
    }
}

/// Whether a job destroyed, released and failed nothing (a destroy moves
/// `snapshots_changed` anyway).
fn untouched(j: &Job) -> bool {
    j.destroy.is_empty() && j.release.is_empty() && j.bookmarks.is_empty() && j.error.is_none()
}

/// What a listing run found, for [`updated`].
#[derive(Debug)]
pub struct Run<'a> {
    pub input: &'a Input,
    pub listed: &'a Listed,
    pub jobs: &'a [Job],
    /// When the listings started (this machine's clock, seconds).
    pub listed_at: i64,
}

/// The target datasets whose facts [`updated`] needs and the records do
/// not carry (zab-send did not read them, or changed something there),
/// of the datasets that may get an entry: one `zfs get` after the run.
pub fn to_ask(r: &Run) -> Vec<String> {
    let Some(t) = &r.listed.target else {
        return Vec::new();
    };
    candidates(r)
        .into_iter()
        .filter_map(|i| {
            let tname = t.map.get(&i)?;
            record_facts(&r.input.datasets[i], tname)
                .is_none()
                .then(|| tname.clone())
        })
        .collect()
}

/// The selected records that may get an entry: no error, no snapshot
/// taken, and every job of theirs untouched.
fn candidates(r: &Run) -> Vec<usize> {
    let Some((_, idx)) = r.input.selected.iter().next() else {
        return Vec::new();
    };
    idx.iter()
        .copied()
        .filter(|&i| {
            let d = &r.input.datasets[i];
            d.error.is_none()
                && !snapped(d)
                && r.jobs
                    .iter()
                    .filter(|j| j.record.is_some_and(|(k, _)| k == i))
                    .all(untouched)
        })
        .collect()
}

/// The cache after a listing run (`asked`: the target's facts of
/// [`to_ask`], read after it): an entry for each record that may get one
/// and whose sides [`Side::new`] trusts. With a TARGET-PATH, none at all
/// when a target dataset may be missing on the source.
pub fn updated(key_of: &Cache, r: &Run, asked: &BTreeMap<String, Facts>) -> Cache {
    let mut new = key_of.clone();
    new.datasets.clear();
    new.tree.clear();
    if let Some(t) = &r.listed.target {
        if !t.candidates.is_empty() {
            return new;
        }
        new.tree = t.tree.datasets.iter().map(|(d, _)| d.clone()).collect();
    }
    for i in candidates(r) {
        let d = &r.input.datasets[i];
        let Some(src) = r.listed.snapshots.get(&i) else {
            continue;
        };
        let Some(source) = Side::new(d.createtxg, d.snapshots_changed, r.listed_at, src) else {
            continue;
        };
        let target = match &r.listed.target {
            None => None,
            Some(t) => match target_side(d, t, asked, r.listed_at, i) {
                Some(side) => Some(side),
                None => continue,
            },
        };
        new.datasets.insert(d.name.clone(), Entry { source, target });
    }
    new
}

/// The target side of record `d` (index `i`): its target must exist, its
/// facts be known (the record's, else `asked`, without a resume token).
fn target_side(
    d: &Dataset,
    t: &TargetTree,
    asked: &BTreeMap<String, Facts>,
    listed_at: i64,
    i: usize,
) -> Option<(String, Side)> {
    let tname = t.map.get(&i)?;
    let snaps = t.tree.snapshots.get(tname)?;
    let (txg, changed) = match record_facts(d, tname) {
        Some(f) => f,
        None => {
            let f = asked.get(tname).filter(|f| f.token.is_none())?;
            (f.createtxg, f.changed)
        }
    };
    Some((tname.clone(), Side::new(txg, changed, listed_at, snaps)?))
}

/// After a listing run, before its records are written: the cache
/// updated ([`updated`]), the target's facts of [`to_ask`] read now (one
/// `zfs get`; a failure, said with `--debug`, leaves those without an
/// entry).
pub fn after(config: &Zfs, loaded: &Loaded, hosts: &Hosts, r: &Run) -> Cache {
    let ask = to_ask(r);
    let mut asked = BTreeMap::new();
    if let (false, Some(t)) = (ask.is_empty(), &r.listed.target) {
        let names: Vec<&str> = ask.iter().map(String::as_str).collect();
        asked = read_facts(hosts.get(t.host), &names, config).unwrap_or_default();
    }
    updated(&loaded.cache, r, &asked)
}

/// Writes `new` where it differs from what was read, once the records
/// are written without a failure. A failure here is a warning: the next
/// run lists.
pub fn save(config: &Zfs, loaded: &Loaded, new: &Cache) {
    if *new != loaded.cache {
        if let Err(e) = zab_core::quiet::save(&loaded.path, new) {
            config
                .log
                .warn(format!("the quiet-run cache was not written: {e}"));
        }
    }
}

/// This machine's clock, seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
