//! The pure part of thinning a store: from one dataset's manifest and its
//! objects as listed, which objects go and which stay, and why.
//!
//! The schedule (`--keep-target`) decides on our snapshots in the store
//! exactly as on a ZFS target: the newest of ours is kept, and so is the
//! newest snapshot that can still be restored (its chain whole), when
//! that is another one. Snapshots not ours are always kept. Then the
//! objects: an object stays when a kept snapshot's chain needs it, every
//! object from the chain's full stream up to the object that carries the
//! snapshot ([`zab_store::chain`]). So an incremental inside a kept chain
//! is never deleted, and an old chain goes whole when nothing in it is
//! kept.
//!
//! A chain broken by hand (an object of the manifest missing, a parent no
//! earlier object carries) is never made worse: for a kept snapshot whose
//! chain is not whole, every object its carriers' walks reach stays, and,
//! when a walk stops at a parent no earlier object carries, every older
//! object of the dataset stays too (what it needs cannot be known). The
//! break is reported.
//!
//! A chain that zab-send went on from zfs3backup's objects (docs/store.md,
//! "zfs3backup buckets") starts with an incremental whose parent is an
//! object in the store that no manifest lists. That is no break: the
//! incremental restores as far as the store goes (zab-restore reads those
//! objects), so it counts as the start of its chain, and the objects
//! before it, not being in the manifest, are never deleted. Their keys are
//! in [`Retention::rooted`], for a `--verbose` line.

use std::collections::BTreeMap;

use zab_core::naming::SnapshotFormat;
use zab_core::schedule::Schedule;
use zab_store::chain;
use zab_store::manifest::{Kind, Manifest};

use crate::plan::Plan;

/// What becomes of one object (a manifest entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It stays, and why ("carries @s", "parent of @s").
    Keep(String),
    /// It is deleted, and why.
    Delete(String),
    /// Missing from the store, and needed by a kept chain: its entry
    /// stays in the manifest (the chain is reported broken).
    Missing,
    /// Missing from the store and needed by nothing: its entry is dropped.
    Drop,
}

/// One dataset of a store, thinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// The schedule's verdicts on our snapshots in the store.
    pub plan: Plan,
    /// One per manifest entry, in manifest order.
    pub fates: Vec<Fate>,
    /// What is broken in the chains that kept snapshots need, one phrase
    /// each.
    pub broken: Vec<String>,
    /// Our snapshots still in the store afterwards.
    pub kept: usize,
    /// The objects no manifest lists that a chain goes on from (zfs3backup's),
    /// by key: left alone.
    pub rooted: Vec<String>,
}

impl Retention {
    #[cfg(test)]
    /// The entries deleted, newest first (a run cut short leaves the
    /// older part of a chain, which still restores).
    pub fn deletes(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.fates.len())
            .filter(|&i| matches!(self.fates[i], Fate::Delete(_)))
            .collect();
        v.reverse();
        v
    }

    #[cfg(test)]
    /// Whether the manifest changes (an object deleted or an entry dropped).
    pub fn changes(&self) -> bool {
        self.fates
            .iter()
            .any(|f| matches!(f, Fate::Delete(_) | Fate::Drop))
    }
}

/// An entry is whole when listed at its stored size.
fn whole(m: &Manifest, listed: &BTreeMap<String, u64>, i: usize) -> bool {
    let e = &m.objects[i];
    listed.get(&e.key) == Some(&e.stored_bytes)
}

/// Every snapshot in the manifest once (by guid), oldest first.
fn snapshots(m: &Manifest) -> Vec<(String, u64, u64)> {
    let mut by_guid: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    for e in &m.objects {
        for s in &e.snapshots {
            by_guid.insert(s.guid, (s.name.clone(), s.createtxg));
        }
    }
    let mut v: Vec<(String, u64, u64)> = by_guid
        .into_iter()
        .map(|(g, (n, txg))| (n, g, txg))
        .collect();
    v.sort_by_key(|s| s.2);
    v
}

/// Thins one dataset of a store: `m` its manifest, `listed` its objects
/// (key → size).
pub fn plan(
    m: &Manifest,
    listed: &BTreeMap<String, u64>,
    fmt: &SnapshotFormat,
    schedule: &Schedule,
    now: i64,
) -> Retention {
    plan_with(m, listed, &|name| fmt.parse(name), schedule, now)
}

/// [`plan`], with `time` saying which snapshots are ours and when they
/// were taken (the snapshot format's parse; the simulations cache it).
pub fn plan_with(
    m: &Manifest,
    listed: &BTreeMap<String, u64>,
    time: &dyn Fn(&str) -> Option<i64>,
    schedule: &Schedule,
    now: i64,
) -> Retention {
    let chains = Chains::of(m, listed);
    let (plan, guids, kept) = verdicts(m, &chains, time, schedule, now);
    let mut needs = Needs {
        why: vec![None; m.objects.len()],
        broken: Vec::new(),
    };
    needs.kept(m, listed, &chains, &kept);
    let (fates, still) = fates(m, listed, needs.why);
    let kept = guids.iter().filter(|g| still.contains(g)).count();
    let mut rooted: Vec<String> = chains.rooted.iter().flatten().cloned().collect();
    rooted.sort();
    rooted.dedup();
    Retention {
        plan,
        fates,
        broken: needs.broken,
        kept,
        rooted,
    }
}

/// The dataset's chains, as thinning reads them.
struct Chains {
    /// Each entry's parent ([`chain::parent`]).
    parents: Vec<Option<usize>>,
    /// Whether each entry restores from whole objects (itself whole, and a
    /// full stream or its parent restores).
    restores: Vec<bool>,
    /// The carriers of each guid, oldest first.
    carriers: BTreeMap<u64, Vec<usize>>,
    /// For an incremental whose parent no entry carries, the object no
    /// manifest lists that it goes on from ([`chain::foreign_parent`]).
    rooted: Vec<Option<String>>,
}

impl Chains {
    fn of(m: &Manifest, listed: &BTreeMap<String, u64>) -> Chains {
        let len = m.objects.len();
        let parents: Vec<Option<usize>> = (0..len).map(|i| chain::parent(m, i)).collect();
        let rooted: Vec<Option<String>> = (0..len)
            .map(|i| match parents[i] {
                Some(_) => None,
                None => chain::foreign_parent(m, i, &|k| listed.contains_key(k)),
            })
            .collect();
        let mut restores = vec![false; len];
        for i in 0..len {
            restores[i] = whole(m, listed, i)
                && match m.objects[i].kind {
                    Kind::Full => true,
                    Kind::Incremental => {
                        parents[i].is_some_and(|p| restores[p]) || rooted[i].is_some()
                    }
                };
        }
        let mut carriers: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, e) in m.objects.iter().enumerate() {
            for s in &e.snapshots {
                carriers.entry(s.guid).or_default().push(i);
            }
        }
        Chains {
            parents,
            restores,
            carriers,
            rooted,
        }
    }

    /// The object that restores the snapshot of guid `g`: its newest
    /// carrier that does.
    fn restoring(&self, g: u64) -> Option<usize> {
        self.carriers
            .get(&g)
            .and_then(|c| c.iter().rev().find(|&&i| self.restores[i]).copied())
    }

    /// The carriers of guid `g`.
    fn carriers(&self, g: u64) -> &[usize] {
        self.carriers.get(&g).map_or(&[][..], Vec::as_slice)
    }
}

/// A kept snapshot: its name, guid, and why it is kept.
type Kept = (String, u64, &'static str);

/// The schedule's verdicts on our snapshots (the newest, and the newest
/// that restores, protected), their guids, and every kept snapshot,
/// oldest first, those not ours last.
fn verdicts(
    m: &Manifest,
    chains: &Chains,
    time: &dyn Fn(&str) -> Option<i64>,
    schedule: &Schedule,
    now: i64,
) -> (Plan, Vec<u64>, Vec<Kept>) {
    let mut plan = Plan {
        names: Vec::new(),
        times: Vec::new(),
        verdicts: Vec::new(),
    };
    let mut guids = Vec::new();
    let mut foreign = Vec::new();
    for (name, guid, _) in snapshots(m) {
        match time(&name) {
            Some(t) => {
                plan.names.push(name);
                plan.times.push(t);
                guids.push(guid);
            }
            None => foreign.push((name, guid)),
        }
    }
    // The newest snapshot of ours that restores, kept with the newest.
    let restorable = guids
        .iter()
        .rev()
        .find(|&&g| chains.restoring(g).is_some())
        .copied();
    let n = guids.len();
    let protected: Vec<bool> = guids
        .iter()
        .enumerate()
        .map(|(i, g)| i + 1 == n || Some(*g) == restorable)
        .collect();
    plan.verdicts = schedule.explain(&plan.times, &protected, now);
    let mut kept: Vec<Kept> = Vec::new();
    for (i, ((name, g), v)) in plan
        .names
        .iter()
        .zip(&guids)
        .zip(&plan.verdicts)
        .enumerate()
    {
        if v.keep {
            let why = match (v.protected, i + 1 == n) {
                (true, true) => "the newest",
                (true, false) => "the newest that restores",
                _ => "kept by the schedule",
            };
            kept.push((name.clone(), *g, why));
        }
    }
    for (name, g) in foreign {
        kept.push((name, g, "not ours"));
    }
    (plan, guids, kept)
}

/// Why each entry is needed (None: it is not), and what is broken.
struct Needs {
    why: Vec<Option<String>>,
    broken: Vec<String>,
}

impl Needs {
    fn note(&mut self, what: String) {
        if !self.broken.contains(&what) {
            self.broken.push(what);
        }
    }

    /// What the kept snapshots need: first the carriers, so that an object
    /// carrying a kept snapshot says so; then their chains, walked back
    /// until a walked one.
    fn kept(
        &mut self,
        m: &Manifest,
        listed: &BTreeMap<String, u64>,
        chains: &Chains,
        kept: &[Kept],
    ) {
        let mut walks: Vec<(&str, usize)> = Vec::new();
        for (name, g, why) in kept {
            match chains.restoring(*g) {
                Some(c) => {
                    self.why[c].get_or_insert_with(|| format!("carries @{name} ({why})"));
                    walks.push((name, c));
                }
                None => self.broken_chain(m, listed, chains, *g, name, why),
            }
        }
        let mut walked = vec![false; m.objects.len()];
        for (name, c) in walks {
            let mut at = Some(c);
            while let Some(j) = at {
                if walked[j] {
                    break;
                }
                walked[j] = true;
                self.why[j].get_or_insert_with(|| format!("parent of @{name}"));
                at = chains.parents[j];
            }
        }
    }

    /// A kept snapshot (guid `g`) that does not restore: all that its
    /// carriers reach stays (and, past a parent no earlier object carries,
    /// every older object), and the break is reported. A walk that stops
    /// at an object no manifest lists (zfs3backup's) stopped at the start
    /// of its chain, not at a break.
    fn broken_chain(
        &mut self,
        m: &Manifest,
        listed: &BTreeMap<String, u64>,
        chains: &Chains,
        g: u64,
        name: &str,
        why: &str,
    ) {
        for &c in chains.carriers(g) {
            self.why[c]
                .get_or_insert_with(|| format!("carries @{name} ({why}; its chain is broken)"));
            let w = chain::walk(m, c);
            for &j in &w.entries {
                let e = &m.objects[j];
                match listed.get(&e.key) {
                    None => self.note(format!("object {} is missing", e.key)),
                    Some(&size) if size != e.stored_bytes => self.note(format!(
                        "object {} is incomplete ({size} bytes of {})",
                        e.key, e.stored_bytes
                    )),
                    Some(_) => {}
                }
                self.why[j].get_or_insert_with(|| format!("parent of @{name} (a broken chain)"));
            }
            if !w.complete && chains.rooted[w.entries[0]].is_none() {
                let first = w.entries[0];
                let e = &m.objects[first];
                self.note(format!(
                    "{}: no earlier object carries its parent @{}",
                    e.key,
                    e.parent.as_deref().unwrap_or("?")
                ));
                for slot in self.why.iter_mut().take(first) {
                    slot.get_or_insert_with(|| format!("older than the break in @{name}'s chain"));
                }
            }
        }
    }
}

/// Each entry's fate from why it is needed and whether it is listed; the
/// guids still in the store afterwards.
fn fates(
    m: &Manifest,
    listed: &BTreeMap<String, u64>,
    need: Vec<Option<String>>,
) -> (Vec<Fate>, std::collections::BTreeSet<u64>) {
    let mut fates = Vec::with_capacity(need.len());
    let mut still: std::collections::BTreeSet<u64> = Default::default();
    for (i, why) in need.into_iter().enumerate() {
        let e = &m.objects[i];
        let present = listed.contains_key(&e.key);
        fates.push(match (why, present) {
            (Some(why), true) => {
                still.extend(e.snapshots.iter().map(|s| s.guid));
                Fate::Keep(why)
            }
            (Some(_), false) => Fate::Missing,
            (None, true) => {
                let names: Vec<String> =
                    e.snapshots.iter().map(|s| format!("@{}", s.name)).collect();
                Fate::Delete(format!(
                    "carries {}, which no kept snapshot's chain needs",
                    names.join(", ")
                ))
            }
            (None, false) => Fate::Drop,
        });
    }
    (fates, still)
}

/// `m` without the entries of `gone` (indexes), in order.
pub fn without(m: &Manifest, gone: &[usize]) -> Manifest {
    let mut out = Manifest::new(&m.dataset);
    out.objects = m
        .objects
        .iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, e)| e.clone())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_store::manifest::fixtures::{fmt, name, timed};
    use zab_store::manifest::Entry;

    const HOUR: i64 = 3600;
    const DAY: i64 = 86400;
    /// 2026-01-01T00:00:00Z.
    const START: i64 = 1_767_225_600;

    /// An object carrying the snapshots at `times` (guid = time), full or
    /// from the snapshot at `parent`.
    fn object(times: &[i64], parent: Option<i64>) -> Entry {
        timed(times, parent)
    }

    fn listed(m: &Manifest) -> BTreeMap<String, u64> {
        m.objects
            .iter()
            .map(|e| (e.key.clone(), e.stored_bytes))
            .collect()
    }

    /// A chain of daily objects: a full at `days[0]`, then incrementals.
    fn daily(m: &mut Manifest, days: std::ops::Range<i64>) {
        let mut prev = None;
        for d in days {
            let t = START + d * DAY;
            m.add(object(&[t], prev));
            prev = Some(t);
        }
    }

    fn fates_of(r: &Retention) -> Vec<char> {
        r.fates
            .iter()
            .map(|f| match f {
                Fate::Keep(_) => 'k',
                Fate::Delete(_) => 'd',
                Fate::Missing => 'm',
                Fate::Drop => '-',
            })
            .collect()
    }

    #[test]
    fn an_incremental_inside_a_kept_chain_stays() {
        // Full on day 0, incrementals days 1..=9; keep the last 1 only:
        // the newest needs every object of its chain.
        let mut m = Manifest::new("p/a");
        daily(&mut m, 0..10);
        let s = Schedule::parse("1").unwrap();
        let r = plan(&m, &listed(&m), &fmt(), &s, START + 10 * DAY);
        assert_eq!(fates_of(&r), vec!['k'; 10]);
        assert_eq!(r.kept, 10);
        assert!(r.broken.is_empty());
        assert_eq!(
            r.fates[9],
            Fate::Keep(format!("carries @{} (the newest)", name(START + 9 * DAY)))
        );
        assert_eq!(
            r.fates[3],
            Fate::Keep(format!("parent of @{}", name(START + 9 * DAY)))
        );
        assert!(!r.changes());
    }

    #[test]
    fn an_old_chain_goes_whole_when_nothing_in_it_is_kept() {
        let mut m = Manifest::new("p/a");
        daily(&mut m, 0..5);
        daily(&mut m, 5..10);
        let s = Schedule::parse("3").unwrap();
        let r = plan(&m, &listed(&m), &fmt(), &s, START + 10 * DAY);
        assert_eq!(fates_of(&r), "dddddkkkkk".chars().collect::<Vec<_>>());
        assert_eq!(r.deletes(), vec![4, 3, 2, 1, 0], "newest first");
        assert!(
            matches!(&r.fates[0], Fate::Delete(w) if w.contains("no kept snapshot's chain needs"))
        );
        assert_eq!(r.kept, 5);
        let after = without(&m, &r.deletes());
        assert_eq!(after.objects.len(), 5);
        assert_eq!(after.objects[0].kind, Kind::Full);
    }

    #[test]
    fn a_kept_snapshot_in_an_old_chain_keeps_its_parents_only() {
        // Keep the last 2 and one a week: day 0 holds its week block and
        // needs nothing before it; days 1 to 4 go.
        let mut m = Manifest::new("p/a");
        daily(&mut m, 0..5);
        daily(&mut m, 5..10);
        let s = Schedule::parse("2,1w1y").unwrap();
        let now = START + 10 * DAY;
        let r = plan(&m, &listed(&m), &fmt(), &s, now);
        let kept_by_week: Vec<&String> = r
            .plan
            .names
            .iter()
            .zip(&r.plan.verdicts)
            .filter(|(_, v)| v.keep && !v.tail && !v.protected)
            .map(|(n, _)| n)
            .collect();
        // 2026-01-01 is a Thursday: the epoch's week blocks start on
        // Thursdays, so day 0 and day 7 hold theirs (day 7 in the chain
        // that the last 2 keep anyway).
        assert_eq!(kept_by_week, vec![&name(START), &name(START + 7 * DAY)]);
        assert_eq!(fates_of(&r), "kddddkkkkk".chars().collect::<Vec<_>>());
    }

    #[test]
    fn a_missing_middle_object_is_reported_and_its_chain_kept() {
        let mut m = Manifest::new("p/a");
        daily(&mut m, 0..6);
        let mut l = listed(&m);
        l.remove(&m.objects[2].key);
        let s = Schedule::parse("1").unwrap();
        let r = plan(&m, &l, &fmt(), &s, START + 6 * DAY);
        // The newest (day 5) is broken; the newest that restores (day 1)
        // is kept with it; nothing the chain needs is deleted.
        assert_eq!(fates_of(&r), "kkmkkk".chars().collect::<Vec<_>>());
        assert_eq!(
            r.broken,
            vec![format!("object {} is missing", m.objects[2].key)]
        );
        assert_eq!(
            r.fates[1],
            Fate::Keep(format!(
                "carries @{} (the newest that restores)",
                name(START + DAY)
            ))
        );
        assert!(!r.changes());
    }

    #[test]
    fn a_broken_old_chain_goes_when_nothing_in_it_is_kept() {
        let mut m = Manifest::new("p/a");
        daily(&mut m, 0..4);
        daily(&mut m, 4..8);
        let mut l = listed(&m);
        l.remove(&m.objects[1].key);
        let s = Schedule::parse("2").unwrap();
        let r = plan(&m, &l, &fmt(), &s, START + 8 * DAY);
        assert_eq!(fates_of(&r), "d-ddkkkk".chars().collect::<Vec<_>>());
        assert!(r.broken.is_empty(), "no kept chain is broken");
    }

    #[test]
    fn an_unknown_parent_keeps_everything_older() {
        let mut m = Manifest::new("p/a");
        daily(&mut m, 0..3);
        // An incremental from a snapshot no object carries.
        let t = START + 5 * DAY;
        m.add(object(&[t], Some(START + 4 * DAY)));
        let s = Schedule::parse("1").unwrap();
        let r = plan(&m, &listed(&m), &fmt(), &s, t + DAY);
        assert_eq!(fates_of(&r), vec!['k'; 4]);
        assert_eq!(r.broken.len(), 1);
        assert!(
            r.broken[0].contains("no earlier object carries its parent"),
            "{:?}",
            r.broken
        );
    }

    /// zab's daily incrementals on `days`, going on from zfs3backup's
    /// object of the day before the first (listed, in no manifest), and the
    /// listing with that object in it.
    fn gone_on_from_zfs3backup(m: &mut Manifest, days: std::ops::Range<i64>) -> String {
        let base = START + (days.start - 1) * DAY;
        let mut prev = base;
        for d in days {
            let t = START + d * DAY;
            m.add(object(&[t], Some(prev)));
            prev = t;
        }
        zab_store::location::object_key(&m.dataset, &name(base))
    }

    #[test]
    fn a_chain_gone_on_from_zfs3backup_is_no_break() {
        let mut m = Manifest::new("p/a");
        let base = gone_on_from_zfs3backup(&mut m, 1..4);
        let mut l = listed(&m);
        l.insert(base.clone(), 100);
        let s = Schedule::parse("1").unwrap();
        let r = plan(&m, &l, &fmt(), &s, START + 4 * DAY);
        assert!(r.broken.is_empty(), "{:?}", r.broken);
        assert_eq!(fates_of(&r), vec!['k'; 3]);
        assert_eq!(
            r.fates[0],
            Fate::Keep(format!("parent of @{}", name(START + 3 * DAY)))
        );
        assert_eq!(r.rooted, vec![base]);
        assert!(!r.changes());
        // Without zfs3backup's object in the store, the same chain is broken.
        let r = plan(&m, &listed(&m), &fmt(), &s, START + 4 * DAY);
        assert_eq!(fates_of(&r), vec!['k'; 3]);
        assert_eq!(r.broken.len(), 1, "{:?}", r.broken);
        assert!(r.rooted.is_empty());
    }

    #[test]
    fn a_chain_gone_on_from_zfs3backup_goes_when_a_newer_chain_is_kept() {
        // zab's incrementals from zfs3backup's base, then zab's own full
        // chain (--full-every): the old chain goes whole, newest first;
        // zfs3backup's object is in no manifest and is not touched.
        let mut m = Manifest::new("p/a");
        let base = gone_on_from_zfs3backup(&mut m, 1..4);
        daily(&mut m, 4..7);
        let mut l = listed(&m);
        l.insert(base.clone(), 100);
        let s = Schedule::parse("3").unwrap();
        let r = plan(&m, &l, &fmt(), &s, START + 7 * DAY);
        assert_eq!(fates_of(&r), "dddkkk".chars().collect::<Vec<_>>());
        assert_eq!(r.deletes(), vec![2, 1, 0]);
        assert!(r.broken.is_empty(), "{:?}", r.broken);
        assert!(m.objects.iter().all(|e| e.key != base));
    }

    #[test]
    fn a_missing_object_after_zfs3backups_base_is_still_a_break() {
        let mut m = Manifest::new("p/a");
        let base = gone_on_from_zfs3backup(&mut m, 1..4);
        let mut l = listed(&m);
        l.insert(base, 100);
        l.remove(&m.objects[1].key);
        let s = Schedule::parse("1").unwrap();
        let r = plan(&m, &l, &fmt(), &s, START + 4 * DAY);
        assert_eq!(fates_of(&r), "kmk".chars().collect::<Vec<_>>());
        assert_eq!(r.broken.len(), 1, "{:?}", r.broken);
        assert!(r.broken[0].contains("is missing"), "{:?}", r.broken);
    }

    #[test]
    fn the_snapshots_inside_an_i_stream_are_thinned_with_their_object() {
        // A full, then one -I object carrying three days: the object
        // stays while any of its snapshots, or a later one, is kept.
        let mut m = Manifest::new("p/a");
        m.add(object(&[START], None));
        m.add(object(
            &[START + DAY, START + 2 * DAY, START + 3 * DAY],
            Some(START),
        ));
        let s = Schedule::parse("1").unwrap();
        let r = plan(&m, &listed(&m), &fmt(), &s, START + 4 * DAY);
        assert_eq!(fates_of(&r), vec!['k', 'k']);
        assert_eq!(r.kept, 4, "every snapshot the kept objects carry");
    }

    #[test]
    fn snapshots_not_ours_are_kept() {
        let mut m = Manifest::new("p/a");
        let mut full = object(&[START], None);
        full.snapshots[0].name = "manual".into();
        full.snapshot = "manual".into();
        full.key = "p/a@manual".into();
        m.add(full);
        let mut inc = object(&[START + DAY], None);
        inc.kind = Kind::Incremental;
        inc.parent = Some("manual".into());
        inc.parent_guid = Some(START as u64);
        m.add(inc);
        daily(&mut m, 2..4);
        let s = Schedule::parse("1").unwrap();
        let r = plan(&m, &listed(&m), &fmt(), &s, START + 5 * DAY);
        assert_eq!(fates_of(&r), vec!['k', 'd', 'k', 'k']);
    }

    /// What --full-every decides, run by run: a new chain when the current
    /// one's full is `age` old or has `count` incrementals.
    fn year(full_every: &dyn Fn(i64, usize) -> bool, schedule: &str, hours: i64) -> (usize, usize) {
        let s = Schedule::parse(schedule).unwrap();
        // The names' times, parsed once (chrono's parse is slow unoptimised).
        let times = std::cell::RefCell::new(BTreeMap::<String, Option<i64>>::new());
        let f = fmt();
        let time = |n: &str| -> Option<i64> {
            *times
                .borrow_mut()
                .entry(n.to_string())
                .or_insert_with(|| f.parse(n))
        };
        let mut m = Manifest::new("p/a");
        let mut listed = BTreeMap::new();
        // The oracle's own view: each snapshot's time → its chain's full.
        let mut chain_of: BTreeMap<i64, i64> = BTreeMap::new();
        let (mut full_at, mut incrementals) = (None::<i64>, 0usize);
        let mut max_objects = 0;
        for h in 0..hours {
            let now = START + h * HOUR;
            let prev = m.objects.last().map(|e| e.guid as i64);
            let new_chain = match full_at {
                None => true,
                Some(f) => full_every(now - f, incrementals),
            };
            let e = object(&[now], if new_chain { None } else { prev });
            if new_chain {
                full_at = Some(now);
                incrementals = 0;
            } else {
                incrementals += 1;
            }
            chain_of.insert(now, full_at.unwrap_or(now));
            listed.insert(e.key.clone(), e.stored_bytes);
            m.add(e);

            let r = plan_with(&m, &listed, &time, &s, now);
            assert!(r.broken.is_empty(), "hour {h}: {:?}", r.broken);
            // The oracle: each snapshot the schedule keeps, and every
            // object from its chain's full up to it.
            let mut want: std::collections::BTreeSet<i64> = Default::default();
            for (t, v) in r.plan.times.iter().zip(&r.plan.verdicts) {
                if v.keep {
                    let full = chain_of[t];
                    want.extend(chain_of.range(full..=*t).map(|(t, _)| *t));
                }
            }
            for i in r.deletes() {
                listed.remove(&m.objects[i].key);
            }
            let mut fates = r.fates.iter();
            m.objects
                .retain(|_| !matches!(fates.next(), Some(Fate::Delete(_) | Fate::Drop)));
            let have: std::collections::BTreeSet<i64> =
                m.objects.iter().map(|e| e.guid as i64).collect();
            assert_eq!(
                have, want,
                "hour {h}: the objects the schedule's chains need"
            );
            // Every snapshot in the store restores, no chain is broken:
            // each incremental continues an earlier object (so, by
            // induction, every walk reaches a full stream).
            for (i, e) in m.objects.iter().enumerate() {
                let ok = e.kind == Kind::Full || chain::parent(&m, i).is_some();
                assert!(ok, "hour {h}: {} does not restore", e.key);
            }
            max_objects = max_objects.max(m.objects.len());
        }
        (m.objects.len(), max_objects)
    }

    /// The brief's case: a year of hourly runs. Daily chains (a full
    /// every 24 incrementals): each kept snapshot needs at most a day of
    /// objects. (Unoptimised, about 15 s on an idle core.)
    #[test]
    fn a_year_of_hourly_runs_with_a_full_every_24_incrementals() {
        let (end, max) = year(&|_, n| n >= 24, "10,1d1w,1w1m,1m1y", 365 * 24);
        eprintln!("a year, a full every 24: {end} objects at the end, {max} at most");
        assert!(end <= 30 * 25 && max <= 30 * 25, "{end} {max}");
        assert!(end >= 24, "{end}");
    }

    /// Weekly chains (`--full-every 1w`) over a quarter of hourly runs (a
    /// year of them takes minutes unoptimised): each old chain is kept up
    /// to its kept snapshots, at most a week of hourly objects each.
    #[test]
    fn a_quarter_of_hourly_runs_with_a_full_every_week() {
        let (end, max) = year(&|age, _| age >= 7 * DAY, "10,1d1w,1w1m,1m1y", 91 * 24);
        eprintln!("a quarter, a full every week: {end} objects at the end, {max} at most");
        assert!(end <= 6 * 7 * 24 && max <= 6 * 7 * 24, "{end} {max}");
        assert!(end >= 7 * 24 / 2, "{end}");
    }

    #[test]
    fn without_full_every_a_single_chain_is_never_thinned() {
        let (end, _) = year(&|_, _| false, "10,1d1w", 30 * 24);
        assert_eq!(
            end,
            30 * 24,
            "one chain: every object is a parent of the newest"
        );
    }
}
