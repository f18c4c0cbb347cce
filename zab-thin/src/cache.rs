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
fn read_facts(
    host: &zab_core::Host,
    names: &[&str],
    config: &Zfs,
) -> Option<BTreeMap<String, Facts>> {
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
    if !names
        .iter()
        .copied()
        .eq(cache.datasets.keys().map(String::as_str))
    {
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
    let mut snapshots: BTreeMap<String, Vec<zfs::Snapshot>> =
        cache.tree.iter().map(|d| (d.clone(), Vec::new())).collect();
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
        new.datasets
            .insert(d.name.clone(), Entry { source, target });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{listing, name_at, rec, DAY};
    use clap::Parser;

    const NOW: i64 = 1_763_800_000;
    /// `snapshots_changed` of both sides, well before the listing.
    const CHANGED: u64 = (NOW - 3600) as u64;

    fn config(argv: &[&str]) -> Zfs {
        let mut full = vec!["zab-thin", "off", "backup"];
        full.extend(argv);
        match crate::cli::Args::try_parse_from(full).unwrap().config() {
            Ok(crate::cli::Config::Zfs(c)) => *c,
            other => panic!("{other:?}"),
        }
    }

    /// Our snapshots 3, 2 and 1 days old.
    fn names() -> Vec<String> {
        [3, 2, 1].iter().map(|d| name_at(NOW - d * DAY)).collect()
    }

    /// `tank/a`'s record after zab-send read its target's facts.
    fn record() -> Dataset {
        let mut d = rec("tank/a", true, "selected");
        d.createtxg = 7;
        d.snapshots_changed = Some(CHANGED);
        d.send = Some(
            serde_json::from_value(serde_json::json!({
                "target": "backup/tank/a", "status": "up-to-date",
                "common": names()[2], "transfers": [],
                "target_createtxg": 40, "target_snapshots_changed": CHANGED,
            }))
            .unwrap(),
        );
        d
    }

    fn input(d: Dataset) -> Input {
        Input {
            datasets: vec![d],
            selected: BTreeMap::from([(None, vec![0])]),
            upstream: 1,
            failed: Vec::new(),
            _lock: None,
        }
    }

    /// The listings of a run: `tank/a` and `backup/tank/a` with the same
    /// snapshots, below the container `backup/tank`; `extra` more target
    /// datasets (with these snapshots).
    fn scene(config: &Zfs, input: &Input, extra: &[(&str, Vec<String>)]) -> Listed {
        let snaps = listing(&names());
        let mut tree = Tree {
            datasets: ["backup", "backup/tank", "backup/tank/a"]
                .map(|d| (d.to_string(), None))
                .to_vec(),
            snapshots: BTreeMap::from([
                ("backup".to_string(), Vec::new()),
                ("backup/tank".to_string(), Vec::new()),
                ("backup/tank/a".to_string(), snaps.clone()),
            ]),
            ..Tree::default()
        };
        for (d, s) in extra {
            tree.datasets.push((d.to_string(), None));
            tree.snapshots.insert(d.to_string(), listing(s));
        }
        let map = BTreeMap::from([(0, "backup/tank/a".to_string())]);
        let unmapped = gather::unmapped(input, &tree, &map, "backup", 0);
        let candidates = gather::candidates(&unmapped, &tree, &config.format);
        Listed {
            by_host: BTreeMap::from([(0, vec![0])]),
            snapshots: BTreeMap::from([(0, snaps)]),
            bookmarks: BTreeMap::from([(0, Vec::new())]),
            target: Some(TargetTree {
                host: 1,
                tree,
                map,
                unmapped,
                candidates,
            }),
            selections: Vec::new(),
        }
    }

    /// The plan of `listed` with no holds, as zab-thin decides it.
    fn jobs(config: &Zfs, input: &Input, listed: &Listed) -> Vec<Job> {
        let draft = crate::plan::draft(config, input, listed);
        let mut jobs = crate::holds::decide(draft, &BTreeMap::new(), &config.tag);
        crate::bookmarks::mark(&mut jobs, config, listed);
        jobs
    }

    /// The records a run writes from `jobs` (each dataset record, then the
    /// target datasets no record maps to), as JSON.
    fn records(input: &Input, jobs: &[Job]) -> Vec<String> {
        let mut datasets = input.datasets.clone();
        for j in jobs {
            if let Some((i, t)) = j.record {
                crate::report::attach(&mut datasets[i], j, t);
            }
        }
        let mut out: Vec<String> = datasets
            .iter()
            .map(|d| serde_json::to_string(d).unwrap())
            .collect();
        out.extend(
            jobs.iter()
                .filter(|j| j.record.is_none())
                .map(|j| format!("{} {} {:?}", j.dataset, j.kept, j.destroy)),
        );
        out
    }

    /// A listing run at NOW and the cache it leaves.
    fn after_listing(config: &Zfs, input: &Input) -> (Listed, Vec<Job>, Cache) {
        let l = scene(config, input, &[]);
        let j = jobs(config, input, &l);
        let r = Run {
            input,
            listed: &l,
            jobs: &j,
            listed_at: NOW,
        };
        assert!(to_ask(&r).is_empty(), "zab-send's facts are in the record");
        let c = updated(&Cache::new("k"), &r, &BTreeMap::new());
        (l, j, c)
    }

    fn at(now: i64) -> String {
        now.to_string()
    }

    #[test]
    fn a_quiet_run_plans_from_the_cache_and_writes_the_same_records() {
        let now = at(NOW);
        let cfg = config(&["--keep-source", "1,1d1w", "--now", &now]);
        let inp = input(record());
        let (l, j, c) = after_listing(&cfg, &inp);
        assert!(j.iter().all(untouched));
        assert_eq!(c.datasets.len(), 1);
        assert_eq!(c.tree, ["backup", "backup/tank", "backup/tank/a"]);
        let e = &c.datasets["tank/a"];
        assert_eq!((e.source.createtxg, e.source.changed), (7, CHANGED));
        let (tname, t) = e.target.as_ref().unwrap();
        assert_eq!(
            (tname.as_str(), t.createtxg, t.changed),
            ("backup/tank/a", 40, CHANGED)
        );
        // Nothing changed: the cache's listings, the same plan and records.
        let cached = listed(&cfg, &inp, &mut Hosts::default(), &c).unwrap();
        assert_eq!(cached.snapshots, l.snapshots);
        let cj = jobs(&cfg, &inp, &cached);
        assert!(crate::holds::queries(&crate::plan::draft(&cfg, &inp, &cached)).is_empty());
        assert_eq!(records(&inp, &cj), records(&inp, &j));
        assert_eq!(records(&inp, &cj).len(), 2, "the record and the container");
        // Eight days later the schedule drops the oldest: the cache's plan
        // would destroy, so the run lists (crate::run::read).
        let later = at(NOW + 8 * DAY);
        let cfg = config(&["--keep-source", "1,1d1w", "--now", &later]);
        let cached = listed(&cfg, &inp, &mut Hosts::default(), &c).unwrap();
        let want = crate::holds::queries(&crate::plan::draft(&cfg, &inp, &cached));
        assert!(!want.is_empty());
    }

    #[test]
    fn anything_changed_reads_as_list() {
        let now = at(NOW);
        let cfg = config(&["--now", &now]);
        let (_, _, c) = after_listing(&cfg, &input(record()));
        // Unchanged: the cache answers (the cases below differ by one fact).
        assert!(listed(&cfg, &input(record()), &mut Hosts::default(), &c).is_some());
        let lists = |d: Dataset| {
            let inp = input(d);
            assert!(
                listed(&cfg, &inp, &mut Hosts::default(), &c).is_none(),
                "{:?}",
                inp.datasets[0]
            );
        };
        // A snapshot made or destroyed by hand on the source.
        lists(Dataset {
            snapshots_changed: Some(CHANGED + 1),
            ..record()
        });
        // The source made again, or older than OpenZFS 2.2.
        lists(Dataset {
            createtxg: 8,
            ..record()
        });
        lists(Dataset {
            snapshots_changed: None,
            ..record()
        });
        // A snapshot taken this run by zab-snap.
        let mut d = record();
        d.snapshot = Some(
            serde_json::from_value(serde_json::json!({
                "name": "x", "status": "created", "previous": null, "written": null,
            }))
            .unwrap(),
        );
        lists(d);
        // On the target: a snapshot made or destroyed by hand, the dataset
        // made again, another target name.
        let send = |f: fn(&mut zab_core::record::SendOutcome)| {
            let mut d = record();
            f(d.send.as_mut().unwrap());
            d
        };
        lists(send(|s| s.target_snapshots_changed = Some(CHANGED + 1)));
        lists(send(|s| s.target_createtxg = Some(41)));
        lists(send(|s| s.target_snapshots_changed = None));
        // Another dataset selected, or one less.
        let mut two = input(record());
        two.datasets.push(Dataset {
            name: "tank/b".into(),
            ..record()
        });
        two.selected = BTreeMap::from([(None, vec![0, 1])]);
        assert!(listed(&cfg, &two, &mut Hosts::default(), &c).is_none());
        let mut none = input(record());
        none.selected = BTreeMap::from([(None, vec![])]);
        assert!(listed(&cfg, &none, &mut Hosts::default(), &c).is_none());
        // Another schedule, format or mapping: another key.
        let o = options(&cfg);
        for argv in [
            &["--keep-source", "5"][..],
            &["--keep-target", "5"],
            &["--strip-path", "1"],
            &["--snapshot-format", "x-{}-%Y%m%d%H%M%S"],
            &["--no-guid-check"],
        ] {
            let mut a = argv.to_vec();
            a.extend(["--now", &now]);
            assert_ne!(options(&config(&a)), o, "{argv:?}");
        }
        // Read-only and acting-elsewhere modes use none.
        for argv in [
            &["--test"][..],
            &["--explain"],
            &["--destroy-missing", "1d"],
        ] {
            assert!(!usable(&config(argv), &input(record())), "{argv:?}");
        }
        let mut failed = input(record());
        failed.failed = vec![0];
        assert!(!usable(&cfg, &failed));
    }

    #[test]
    fn entries_only_for_what_a_listing_run_can_vouch_for() {
        let now = at(NOW);
        let cfg = config(&["--now", &now]);
        let inp = input(record());
        let l = scene(&cfg, &inp, &[]);
        let j = jobs(&cfg, &inp, &l);
        let run = |inp: &Input, l: &Listed, j: &[Job], at: i64, asked: &BTreeMap<String, Facts>| {
            let r = Run {
                input: inp,
                listed: l,
                jobs: j,
                listed_at: at,
            };
            updated(&Cache::new("k"), &r, asked)
        };
        let none = BTreeMap::new();
        assert_eq!(run(&inp, &l, &j, NOW, &none).datasets.len(), 1);
        // Too recent a change (one-second resolution): no entry.
        let soon = CHANGED as i64 + zab_core::quiet::MATURITY_SECS - 1;
        assert!(run(&inp, &l, &j, soon, &none).datasets.is_empty());
        // Something destroyed, released or failed on either side.
        for k in 0..2 {
            let mut j2 = j.clone();
            j2[k].destroy.push("x".into());
            assert!(run(&inp, &l, &j2, NOW, &none).datasets.is_empty(), "{k}");
            let mut j2 = j.clone();
            j2[k].error = Some("x".into());
            assert!(run(&inp, &l, &j2, NOW, &none).datasets.is_empty(), "{k}");
        }
        // The target's facts not in the record: asked after the run; with
        // a resume token there, or not read, no entry.
        let mut d = record();
        d.send.as_mut().unwrap().target_createtxg = None;
        let bare = input(d);
        let r = Run {
            input: &bare,
            listed: &l,
            jobs: &j,
            listed_at: NOW,
        };
        assert_eq!(to_ask(&r), ["backup/tank/a"]);
        assert!(run(&bare, &l, &j, NOW, &none).datasets.is_empty());
        let mut asked = BTreeMap::from([(
            "backup/tank/a".to_string(),
            Facts {
                changed: Some(CHANGED),
                createtxg: 40,
                token: None,
                userrefs: None,
            },
        )]);
        let c = run(&bare, &l, &j, NOW, &asked);
        assert_eq!(
            c.datasets["tank/a"].target.as_ref().unwrap().1.createtxg,
            40
        );
        asked.get_mut("backup/tank/a").unwrap().token = Some("1-x".into());
        assert!(run(&bare, &l, &j, NOW, &asked).datasets.is_empty());
        // A target dataset that may be missing on the source (a leaf with
        // snapshots of ours): the selection would be asked; no cache.
        let l2 = scene(&cfg, &inp, &[("backup/other", names())]);
        assert!(!l2.target.as_ref().unwrap().candidates.is_empty());
        let j2 = jobs(&cfg, &inp, &l2);
        let c = run(&inp, &l2, &j2, NOW, &none);
        assert!(c.datasets.is_empty() && c.tree.is_empty());
    }

    #[test]
    fn snapshot_only_mode_needs_the_source_alone() {
        use clap::Parser;
        let now = at(NOW);
        let cfg = match crate::cli::Args::try_parse_from(["zab-thin", "off", "--now", &now])
            .unwrap()
            .config()
        {
            Ok(crate::cli::Config::Zfs(c)) => *c,
            other => panic!("{other:?}"),
        };
        let inp = input(Dataset {
            send: None,
            ..record()
        });
        let l = Listed {
            by_host: BTreeMap::from([(0, vec![0])]),
            snapshots: BTreeMap::from([(0, listing(&names()))]),
            bookmarks: BTreeMap::from([(0, Vec::new())]),
            target: None,
            selections: Vec::new(),
        };
        let j = jobs(&cfg, &inp, &l);
        let r = Run {
            input: &inp,
            listed: &l,
            jobs: &j,
            listed_at: NOW,
        };
        let c = updated(&Cache::new("k"), &r, &BTreeMap::new());
        assert_eq!(c.datasets["tank/a"].target, None);
        let cached = listed(&cfg, &inp, &mut Hosts::default(), &c).unwrap();
        assert_eq!(records(&inp, &jobs(&cfg, &inp, &cached)), records(&inp, &j));
        let changed = input(Dataset {
            snapshots_changed: Some(CHANGED + 1),
            send: None,
            ..record()
        });
        assert!(listed(&cfg, &changed, &mut Hosts::default(), &c).is_none());
    }
}
