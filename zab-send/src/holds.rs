//! Holds on the common snapshots: after the transfers, each dataset's new
//! common snapshot is held on both sides and our hold on the previous one
//! is released, and on any older snapshot that still carries it (a run
//! stopped between a receive and its holds leaves one behind). At most one `zfs holds`, one `zfs hold` and one
//! `zfs release` per side (each split into a `-r` per recursive root and
//! one plain command for the rest, see below), and none of them where
//! nothing was sent and the common snapshot carries a hold. [`plan`] and
//! the functions below it decide, purely; [`apply`] carries that out.
//!
//! Which holds can be placed or released with `-r`:
//!
//! `zfs hold TAG a@s b@s …` places each hold in its own sync task, one
//! transaction group each: 100 snapshots take 3.6 s in the lab, where
//! `zfs hold -r TAG a@s`, one sync task for the whole subtree, takes 0.4 s
//! (`zfs release` alike). But `-r` acts on every descendant that has the
//! snapshot, so it is used only where that is exactly what is wanted.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::zfs::{self, is_under, parent_of, replicate, Snapshot};
use zab_core::Host;

use crate::execute::Done;
use crate::jobs::Job;
use crate::listing::TargetDs;

/// A snapshot to hold, and the older ones whose hold to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The job it is for.
    pub job: usize,
    /// Full name.
    pub new: String,
    /// Its holds as listed (None: not listed, maybe held).
    pub new_refs: Option<u64>,
    /// The previous common snapshot, then the target's other snapshots
    /// with holds, each with its holds as listed.
    pub old: Vec<(String, Option<u64>)>,
}

/// One side's holds: a source host (by index) or the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Index into the source hosts; None for the target.
    pub host: Option<usize>,
    pub wants: Vec<Want>,
}

impl Side {
    /// `[Source]` or `[Target]`, as the messages say.
    pub fn label(&self) -> &'static str {
        match self.host {
            Some(_) => "Source",
            None => "Target",
        }
    }
}

/// The hold plan: each side's wants (the sources in host order, then the
/// target), and what `-r` could touch on the target: every snapshot listed
/// before the transfers and every source snapshot of a dataset that
/// received something (a superset of what it has now), and for
/// releasing, the listed snapshots with holds. A source's is listed when
/// needed ([`subtree_roots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub sides: Vec<Side>,
    pub target_hold: BTreeSet<String>,
    pub target_release: BTreeSet<String>,
}

/// Plans the holds of `jobs` after they were carried out (`done`).
pub fn plan(
    jobs: &[Job],
    done: &[Done],
    hosts: usize,
    sources: &BTreeMap<String, Vec<Snapshot>>,
    tree: &BTreeMap<String, TargetDs>,
) -> Plan {
    let mut sides: Vec<Side> = (0..hosts)
        .map(Some)
        .chain([None])
        .map(|host| Side {
            host,
            wants: Vec::new(),
        })
        .collect();
    for (j, job) in jobs.iter().enumerate() {
        if job.plan.error.is_some() {
            continue;
        }
        let Some(new) = done[j]
            .received(job)
            .last()
            .map(|s| s.to.clone())
            .or(job.plan.common.clone())
        else {
            continue;
        };
        let old = job.plan.common.clone().filter(|o| *o != new);
        let stale = stale(job, tree, &new, old.as_deref());
        let src_snap = |name: &str| {
            sources
                .get(&job.source)
                .and_then(|s| s.iter().find(|x| x.name == name))
        };
        let on_source = |name: &str| src_snap(name).is_some();
        let src_refs = |name: &str| src_snap(name).and_then(|x| x.userrefs);
        let tgt_refs = |name: &str| {
            tree.get(&job.target)
                .and_then(|t| t.target.snapshots.iter().find(|(x, _)| x.name == name))
                .and_then(|(x, _)| x.userrefs)
        };
        // Nothing sent: the common snapshot is the one held by the run
        // that sent it. Only a target snapshot without any hold (that run
        // was stopped before holding, or used --no-holds) is held now, and
        // that needs no `zfs holds`: a quiet run costs no zfs process here.
        // (A source's listing does not say: its snapshot is held by the
        // next run that sends, or that finds an older held snapshot on
        // the target.)
        let sent = old.is_some() || done[j].received(job).next().is_some();
        let want = |ds: &str, refs: &dyn Fn(&str) -> Option<u64>, source: bool| Want {
            job: j,
            new: format!("{ds}@{new}"),
            new_refs: refs(&new),
            // A source that went on from a bookmark lacks the old common.
            old: old
                .iter()
                .chain(&stale)
                .filter(|o| !source || on_source(o))
                .map(|o| (format!("{ds}@{o}"), refs(o)))
                .collect(),
        };
        for (side, w) in [
            (job.host, want(&job.source, &src_refs, true)),
            (hosts, want(&job.target, &tgt_refs, false)),
        ] {
            // Up to date from a bookmark: nothing to hold on the source.
            let here = side == hosts || on_source(&new);
            if here && (sent || !stale.is_empty() || w.new_refs == Some(0)) {
                sides[side].wants.push(w);
            }
        }
    }
    let (target_hold, target_release) = target_affected(jobs, done, sources, tree);
    Plan {
        sides,
        target_hold,
        target_release,
    }
}

/// The target's other snapshots of `job` with holds (not `new`, not
/// `old`): a run stopped after a receive had finished in the kernel but
/// before its holds (its `zfs recv` killed, say) left our hold on an older
/// snapshot on both sides, which no common snapshot names any more. Only
/// ours is released ([`decide`]); a source snapshot is asked about only
/// where it still exists.
fn stale(
    job: &Job,
    tree: &BTreeMap<String, TargetDs>,
    new: &str,
    old: Option<&str>,
) -> Vec<String> {
    let Some(t) = tree.get(&job.target) else {
        return Vec::new();
    };
    t.target
        .snapshots
        .iter()
        .filter(|(x, _)| {
            x.name != new && Some(x.name.as_str()) != old && x.userrefs.is_some_and(|r| r > 0)
        })
        .map(|(x, _)| x.name.clone())
        .collect()
}

/// What `zfs hold -r`/`zfs release -r` could touch on the target (see
/// [`Plan`]).
fn target_affected(
    jobs: &[Job],
    done: &[Done],
    sources: &BTreeMap<String, Vec<Snapshot>>,
    tree: &BTreeMap<String, TargetDs>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut hold: BTreeSet<String> = BTreeSet::new();
    let mut release: BTreeSet<String> = BTreeSet::new();
    for (t, ds) in tree {
        for (s, _) in &ds.target.snapshots {
            hold.insert(format!("{t}@{}", s.name));
            if s.userrefs != Some(0) {
                release.insert(format!("{t}@{}", s.name));
            }
        }
    }
    for (j, job) in jobs.iter().enumerate() {
        if done[j].received(job).next().is_some() {
            for s in sources.get(&job.source).into_iter().flatten() {
                hold.insert(format!("{}@{}", job.target, s.name));
            }
        }
    }
    (hold, release)
}

/// The snapshots to ask `zfs holds` about: those that have a hold, or
/// may have.
pub fn ask(wants: &[Want]) -> Vec<&str> {
    let mut ask: Vec<&str> = Vec::new();
    for w in wants {
        if w.new_refs != Some(0) {
            ask.push(&w.new);
        }
        for (o, r) in &w.old {
            if *r != Some(0) {
                ask.push(o);
            }
        }
    }
    ask
}

/// Given who holds what (`held`, from [`ask`]'s `zfs holds`): the wants
/// whose new snapshot lacks our hold, and the old snapshots that carry it.
pub fn decide<'a>(
    wants: &'a [Want],
    held: &BTreeMap<String, Vec<String>>,
    tag: &str,
) -> (Vec<&'a Want>, Vec<String>) {
    let ours = |name: &str| held.get(name).is_some_and(|t| t.iter().any(|x| x == tag));
    let to_hold = wants.iter().filter(|w| !ours(&w.new)).collect();
    let release = wants
        .iter()
        .flat_map(|w| &w.old)
        .filter(|(o, _)| ours(o))
        .map(|(o, _)| o.clone())
        .collect();
    (to_hold, release)
}

/// On a source, where only the selected datasets were listed: the
/// datasets to list (`zfs list -r`) to know what `-r` could touch under
/// the roots that `hold` and `release` would have if nothing else were
/// there; roots under other roots are listed with them. Empty: no root.
pub fn subtree_roots(hold: &[String], release: &[String]) -> Vec<String> {
    let mut roots: BTreeSet<String> = BTreeSet::new();
    for names in [hold, release] {
        let all: BTreeSet<String> = names.iter().cloned().collect();
        for r in recursive_roots(names, &all).0 {
            roots.insert(r.split_once('@').map_or(r.clone(), |(d, _)| d.to_string()));
        }
    }
    roots
        .iter()
        .filter(|r| !roots.iter().any(|o| o != *r && is_under(r, o)))
        .cloned()
        .collect()
}

/// Parses `zfs list -H -p -t snapshot -o name,userrefs -r ROOTS`: (every
/// snapshot, those with holds).
pub fn parse_subtrees(out: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let (mut all, mut held) = (BTreeSet::new(), BTreeSet::new());
    for (i, line) in out.lines().enumerate() {
        let (name, refs) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {}: expected name, userrefs: {line:?}", i + 1))?;
        if refs != "0" {
            held.insert(name.to_string());
        }
        all.insert(name.to_string());
    }
    Ok((all, held))
}

/// Where the holds are carried out.
pub struct Hosts<'a> {
    pub sources: &'a [Host],
    pub target: &'a Host,
    pub log: &'a Log,
}

/// Carries out the hold plan of `jobs`: a failed hold fails its dataset;
/// a failed release or `zfs holds` is a warning.
pub fn apply(
    on: &Hosts,
    jobs: &[Job],
    done: &mut [Done],
    sources: &BTreeMap<String, Vec<Snapshot>>,
    tree: &BTreeMap<String, TargetDs>,
    tag: &str,
) {
    let p = plan(jobs, done, on.sources.len(), sources, tree);
    for side in p.sides.iter().filter(|s| !s.wants.is_empty()) {
        let host = side.host.map_or(on.target, |h| &on.sources[h]);
        let label = side.label();
        let ask = ask(&side.wants);
        let held = if ask.is_empty() {
            BTreeMap::new()
        } else {
            match zfs::holds(host, &ask) {
                Ok(h) => h,
                Err(e) => {
                    on.log.warn(format!("[{label}] reading holds failed: {e}"));
                    continue;
                }
            }
        };
        let (to_hold, release) = decide(&side.wants, &held, tag);
        let hold_names: Vec<String> = to_hold.iter().map(|w| w.new.clone()).collect();
        // `-r` where it is exact: on the target, whose whole tree was
        // listed; on a source, after listing the subtrees it could touch.
        let listed = match side.host {
            None => Some((p.target_hold.clone(), p.target_release.clone())),
            Some(_) => subtrees(on.log, host, &hold_names, &release),
        };
        let (for_hold, for_release) = match &listed {
            Some((h, r)) => (Some(h), Some(r)),
            None => (None, None),
        };
        if !hold_names.is_empty() {
            if let Some((failed, e)) = hold_cmd(on.log, host, true, tag, &hold_names, for_hold) {
                for w in to_hold.iter().filter(|w| failed.contains(&w.new)) {
                    done[w.job]
                        .error
                        .get_or_insert(format!("[{label}] holding {} failed: {e}", w.new));
                }
                continue;
            }
        }
        if !release.is_empty() {
            if let Some((failed, e)) = hold_cmd(on.log, host, false, tag, &release, for_release) {
                on.log.warn(format!(
                    "[{label}] releasing our old hold on {} failed: {e}",
                    failed.join(", ")
                ));
            }
        }
    }
}

/// On a source: one `zfs list -r` of [`subtree_roots`]; None when there is
/// no such root or the listing fails (then everything is done by name).
fn subtrees(
    log: &Log,
    host: &Host,
    hold: &[String],
    release: &[String],
) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let top = subtree_roots(hold, release);
    if top.is_empty() {
        return None;
    }
    let top: Vec<&str> = top.iter().map(String::as_str).collect();
    let argv = zfs::list_args("snapshot", "name,userrefs", &["-r"], &top);
    match zfs::query(host, &argv, parse_subtrees) {
        Ok(sets) => Some(sets),
        Err(e) => {
            log.debug(format!(
                "listing for zfs hold -r failed ({e}): by name instead"
            ));
            None
        }
    }
}

/// Runs `zfs hold TAG` (`hold`) or `zfs release TAG` on `names`: with
/// `-r`, one command per root, where `affected` (every snapshot `-r` could
/// touch) allows it exactly ([`recursive_roots`]), falling back to the
/// plain command for that root's names when `-r` fails; plainly for the
/// rest, all in one command. zfs goes on past a name it cannot do, so a
/// failed command is read name by name ([`replicate::batch_failures`]), or, when its
/// error cannot be read so, each name is tried again on its own. Returns
/// the names not done, and the error.
fn hold_cmd(
    log: &Log,
    host: &Host,
    hold: bool,
    tag: &str,
    names: &[String],
    affected: Option<&BTreeSet<String>>,
) -> Option<(Vec<String>, Error)> {
    let verb = if hold { "hold" } else { "release" };
    let (roots, mut plain) = match affected {
        Some(a) => recursive_roots(names, a),
        None => (Vec::new(), names.to_vec()),
    };
    for r in &roots {
        let argv = if hold {
            replicate::hold_recursive_args(tag, r)
        } else {
            replicate::release_recursive_args(tag, r)
        };
        if let Err(e) = host.output(&argv) {
            log.debug(format!(
                "zfs {verb} -r {r} failed ({e}): one by one instead"
            ));
            plain.extend(under(r, names).into_iter().cloned());
        }
    }
    if plain.is_empty() {
        return None;
    }
    let argv = plain_args(hold, tag, &plain);
    let c = match host.output(&argv) {
        Ok(_) => return None,
        Err(Error::Command(c)) => c,
        Err(e) => return Some((plain, e)),
    };
    // zfs goes on after a name it cannot do: the others are done.
    let failed: Vec<String> = match replicate::batch_failures(hold, &c.stderr, &plain) {
        Some(failed) => failed.into_iter().cloned().collect(),
        None => {
            log.debug(format!(
                "zfs {verb} of {} snapshots failed ({}): one by one to see which",
                plain.len(),
                c.stderr_line()
            ));
            one_by_one(host, hold, tag, &plain)
        }
    };
    if failed.is_empty() {
        log.debug(format!("zfs {verb}: nothing failed ({})", c.stderr_line()));
        return None;
    }
    Some((failed, Error::Command(c)))
}

/// `zfs hold TAG NAME…` or `zfs release TAG NAME…`.
fn plain_args(hold: bool, tag: &str, names: &[String]) -> Vec<String> {
    if hold {
        replicate::hold_args(tag, names)
    } else {
        zfs::release_args(tag, &names.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// After a batch whose error could not be read: each name on its own
/// (what the batch did is done again, a no-op), the names that failed.
fn one_by_one(host: &Host, hold: bool, tag: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            let one = std::slice::from_ref(*n);
            match host.output(&plain_args(hold, tag, one)) {
                Ok(_) => false,
                Err(Error::Command(c)) => {
                    replicate::batch_failures(hold, &c.stderr, one).map_or(true, |f| !f.is_empty())
                }
                Err(_) => true,
            }
        })
        .cloned()
        .collect()
}

/// Splits `want` (full snapshot names, `dataset@name`) into recursive
/// roots and plain names. A root is a wanted snapshot whose dataset's every
/// descendant (itself included) that is in `affected` (every snapshot the
/// recursive command would touch, as far as is known: a superset is safe)
/// is wanted too, and that covers at least one other wanted snapshot.
/// Each wanted name goes under its highest such ancestor: `zfs hold -r`
/// goes down through datasets that lack the snapshot (a parent created
/// with canmount=off), so a name below one can never be held again by
/// name after its root's `-r`. Each wanted name is under exactly one root
/// or in the plain list, and no plain name is under a root. Both lists
/// keep `want`'s order.
pub fn recursive_roots(want: &[String], affected: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let wanted: BTreeSet<&str> = want.iter().map(String::as_str).collect();
    // Every descendant of `ds` that has `@snap` and would be touched is wanted.
    let exact = |ds: &str, snap: &str| {
        affected.iter().all(|a| match a.split_once('@') {
            Some((d, s)) if s == snap && is_under(d, ds) => wanted.contains(a.as_str()),
            _ => true,
        })
    };
    // The highest wanted and exact ancestor (itself included). Exactness
    // only grows downwards, so this is the same root for every name below it.
    let mut root_of: Vec<Option<String>> = Vec::with_capacity(want.len());
    for w in want {
        let Some((ds, snap)) = w.split_once('@') else {
            root_of.push(None);
            continue;
        };
        let mut top = None;
        let mut d = Some(ds);
        while let Some(cur) = d {
            if !exact(cur, snap) {
                break;
            }
            if wanted.contains(format!("{cur}@{snap}").as_str()) {
                top = Some(cur);
            }
            d = parent_of(cur);
        }
        root_of.push(top.map(|t| format!("{t}@{snap}")));
    }
    let mut roots: Vec<String> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for (w, r) in want.iter().zip(&root_of) {
        match r {
            // A root that covers only itself is a plain name.
            Some(r) if root_of.iter().filter(|x| x.as_ref() == Some(r)).count() > 1 => {
                if w == r {
                    roots.push(r.clone());
                }
            }
            _ => plain.push(w.clone()),
        }
    }
    (roots, plain)
}

/// [`recursive_roots`] for datasets (`zfs mount -R`): `want` the datasets
/// to act on, `affected` every dataset the recursive command could touch
/// (a superset is safe). A dataset's name has no `@`, so each is taken as
/// a snapshot of one name.
pub fn dataset_roots(want: &[String], affected: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let at = |d: &String| format!("{d}@-");
    let want: Vec<String> = want.iter().map(at).collect();
    let affected: BTreeSet<String> = affected.iter().map(at).collect();
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|s| s.trim_end_matches("@-").to_string())
            .collect()
    };
    let (roots, plain) = recursive_roots(&want, &affected);
    (strip(roots), strip(plain))
}

/// The wanted names under `root` (a recursive root from [`recursive_roots`]).
pub fn under<'a>(root: &str, want: &'a [String]) -> Vec<&'a String> {
    let (rd, rs) = root.split_once('@').unwrap_or((root, ""));
    want.iter()
        .filter(|w| {
            w.split_once('@')
                .is_some_and(|(d, s)| s == rs && is_under(d, rd))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    use crate::jobs::testing::{done, job};
    use crate::plan::Target;
    use zab_core::record::TransferKind::{Full, Incremental};
    use zab_core::zfs::DatasetType;

    fn snap(name: &str, userrefs: Option<u64>) -> Snapshot {
        Snapshot {
            name: name.into(),
            createtxg: 1,
            guid: 1,
            userrefs,
        }
    }

    fn target_tree(rows: &[(&str, &[(&str, u64)])]) -> BTreeMap<String, TargetDs> {
        rows.iter()
            .map(|(name, snaps)| {
                let snapshots = snaps.iter().map(|(s, r)| (snap(s, Some(*r)), 0)).collect();
                (
                    name.to_string(),
                    TargetDs {
                        kind: DatasetType::Filesystem,
                        target: Target {
                            snapshots,
                            token: None,
                        },
                        guid: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_hold_plan_holds_the_new_common_and_releases_the_old_on_both_sides() {
        let jobs = [
            // Sent @2 and @3 on top of @1.
            job(
                "p/a",
                "t/a",
                Some("1"),
                &[(Some("1"), "2", Incremental), (Some("2"), "3", Incremental)],
            ),
            // First transfer, failed after @1.
            job(
                "p/b",
                "t/b",
                None,
                &[(None, "1", Full), (Some("1"), "2", Incremental)],
            ),
            // Nothing to send; the target's @1 was never held.
            job("p/c", "t/c", Some("1"), &[]),
            // Nothing to send; held already.
            job("p/d", "t/d", Some("1"), &[]),
        ];
        let done = [
            done(2, false),
            done(1, true),
            done(0, false),
            done(0, false),
        ];
        let sources: BTreeMap<String, Vec<Snapshot>> = [
            (
                "p/a",
                vec![snap("1", None), snap("2", None), snap("3", None)],
            ),
            ("p/b", vec![snap("1", None), snap("2", None)]),
        ]
        .map(|(n, s)| (n.to_string(), s))
        .into();
        let tree = target_tree(&[
            ("t/a", &[("1", 1)]),
            ("t/c", &[("1", 0)]),
            ("t/d", &[("1", 1)]),
        ]);
        let p = plan(&jobs, &done, 1, &sources, &tree);
        let wants = |side: usize| -> Vec<(String, Option<String>)> {
            p.sides[side]
                .wants
                .iter()
                .map(|w| (w.new.clone(), w.old.first().map(|o| o.0.clone())))
                .collect()
        };
        let o = |s: &str| Some(s.to_string());
        assert_eq!(p.sides[0].label(), "Source");
        assert_eq!(
            wants(0),
            vec![("p/a@3".into(), o("p/a@1")), ("p/b@1".into(), None)]
        );
        assert_eq!(p.sides[1].label(), "Target");
        assert_eq!(
            wants(1),
            vec![
                ("t/a@3".into(), o("t/a@1")),
                ("t/b@1".into(), None),
                ("t/c@1".into(), None)
            ]
        );
        // What -r could touch on the target: the listed snapshots, and the
        // source's of what received something; released: the held ones.
        assert_eq!(
            p.target_hold,
            set(&["t/a@1", "t/a@2", "t/a@3", "t/b@1", "t/b@2", "t/c@1", "t/d@1"])
        );
        assert_eq!(p.target_release, set(&["t/a@1", "t/d@1"]));
        // Asked: what may have a hold (t/c@1 has none; t/a@3 was not listed).
        assert_eq!(ask(&p.sides[1].wants), vec!["t/a@3", "t/a@1", "t/b@1"]);
    }

    /// Each want of side `side`: the snapshot to hold, those to release.
    fn wants_of(p: &Plan, side: usize) -> Vec<(String, Vec<String>)> {
        p.sides[side]
            .wants
            .iter()
            .map(|w| (w.new.clone(), w.old.iter().map(|o| o.0.clone()).collect()))
            .collect()
    }

    /// From a bookmark: the source no longer has the old common snapshot
    /// (zab-send then asked `zfs holds` about it, which failed and left
    /// the new one unheld); up to date from one, nothing is held there.
    #[test]
    fn after_a_bookmark_the_source_side_skips_the_gone_common_snapshot() {
        let jobs = [
            job("p/a", "t/a", Some("1"), &[(Some("1"), "2", Incremental)]),
            job("p/b", "t/b", Some("1"), &[]),
        ];
        let done = [done(1, false), done(0, false)];
        let sources: BTreeMap<String, Vec<Snapshot>> = [
            ("p/a", vec![snap("2", None)]),
            ("p/b", vec![snap("0", None)]),
        ]
        .map(|(n, s)| (n.to_string(), s))
        .into();
        let tree = target_tree(&[("t/a", &[("1", 1)]), ("t/b", &[("1", 0)])]);
        let p = plan(&jobs, &done, 1, &sources, &tree);
        let wants = |side: usize| wants_of(&p, side);
        assert_eq!(wants(0), vec![("p/a@2".to_string(), vec![])]);
        assert_eq!(
            wants(1),
            vec![
                ("t/a@2".to_string(), vec!["t/a@1".to_string()]),
                ("t/b@1".to_string(), vec![])
            ]
        );
    }

    /// The fault suite's round 3 (seed 1): a `zfs recv` killed after its
    /// receive had finished in the kernel; the run that sent @2 never held
    /// it, and the next run has nothing to send. Our hold on @1, on both
    /// sides, is released (where the source still has @1) and @2 held.
    #[test]
    fn a_hold_left_on_an_older_snapshot_is_released_when_nothing_is_sent() {
        let jobs = [
            job("p/a", "t/a", Some("2"), &[]),
            // The source has thinned @1 already.
            job("p/b", "t/b", Some("2"), &[]),
            // Quiet: only the common is held, so nothing at all to do.
            job("p/c", "t/c", Some("2"), &[]),
        ];
        let done = [done(0, false), done(0, false), done(0, false)];
        let sources: BTreeMap<String, Vec<Snapshot>> = [
            ("p/a", vec![snap("1", None), snap("2", None)]),
            ("p/b", vec![snap("2", None)]),
            ("p/c", vec![snap("1", None), snap("2", None)]),
        ]
        .map(|(n, s)| (n.to_string(), s))
        .into();
        let tree = target_tree(&[
            ("t/a", &[("1", 1), ("2", 0)]),
            ("t/b", &[("1", 2), ("2", 1)]),
            ("t/c", &[("1", 0), ("2", 1)]),
        ]);
        let p = plan(&jobs, &done, 1, &sources, &tree);
        let wants = |side: usize| wants_of(&p, side);
        assert_eq!(
            wants(0),
            vec![("p/a@2".into(), v(&["p/a@1"])), ("p/b@2".into(), v(&[]))]
        );
        assert_eq!(
            wants(1),
            vec![
                ("t/a@2".into(), v(&["t/a@1"])),
                ("t/b@2".into(), v(&["t/b@1"]))
            ]
        );
        // Only our hold goes: t/b@1 has a foreign one too.
        let held: BTreeMap<String, Vec<String>> = [
            ("t/a@1", vec!["zfs_autobackup:b"]),
            ("t/b@1", vec!["other", "zfs_autobackup:b"]),
            ("t/b@2", vec!["zfs_autobackup:b"]),
        ]
        .map(|(n, t)| (n.to_string(), t.into_iter().map(String::from).collect()))
        .into();
        let (hold, release) = decide(&p.sides[1].wants, &held, "zfs_autobackup:b");
        assert_eq!(hold, vec![&p.sides[1].wants[0]]);
        assert_eq!(release, v(&["t/a@1", "t/b@1"]));
    }

    #[test]
    fn only_what_lacks_our_hold_is_held_and_only_ours_released() {
        let w = |new: &str, old: Option<&str>| Want {
            job: 0,
            new: new.into(),
            new_refs: None,
            old: old.map(|o| (o.to_string(), None)).into_iter().collect(),
        };
        let wants = [w("t/a@3", Some("t/a@1")), w("t/b@2", Some("t/b@1"))];
        let held: BTreeMap<String, Vec<String>> = [
            ("t/a@1", vec!["zfs_autobackup:b"]),
            ("t/b@2", vec!["other", "zfs_autobackup:b"]),
            ("t/b@1", vec!["other"]),
        ]
        .map(|(n, t)| (n.to_string(), t.into_iter().map(String::from).collect()))
        .into();
        let (hold, release) = decide(&wants, &held, "zfs_autobackup:b");
        assert_eq!(hold, vec![&wants[0]]);
        assert_eq!(release, v(&["t/a@1"]));
    }

    #[test]
    fn a_source_lists_the_subtrees_of_its_roots() {
        let hold = v(&["p/a@3", "p/a/x@3", "p/b@3"]);
        let release = v(&["p/a@1", "p/a/x@1"]);
        assert_eq!(subtree_roots(&hold, &release), v(&["p/a"]));
        assert!(subtree_roots(&v(&["p/a@3"]), &[]).is_empty());
        let (all, held) = parse_subtrees("p/a@1\t1\np/a@3\t0\n").unwrap();
        assert_eq!((all, held), (set(&["p/a@1", "p/a@3"]), set(&["p/a@1"])));
        assert!(parse_subtrees("p/a@1\n").is_err());
    }

    #[test]
    fn datasets_to_mount_share_a_root_where_nothing_else_is_below() {
        let want = v(&["t/a", "t/a/b", "t/a/b/c", "t/d", "t/d/e"]);
        // t/d/x exists and is not to be mounted: t/d and t/d/e go by name.
        let all = set(&["t", "t/a", "t/a/b", "t/a/b/c", "t/d", "t/d/e", "t/d/x"]);
        let (roots, plain) = dataset_roots(&want, &all);
        assert_eq!(roots, v(&["t/a"]));
        assert_eq!(plain, v(&["t/d", "t/d/e"]));
        // A lone dataset is no root.
        let (roots, plain) = dataset_roots(&v(&["t/a"]), &all);
        assert!(roots.is_empty());
        assert_eq!(plain, v(&["t/a"]));
    }

    #[test]
    fn a_whole_wanted_tree_is_one_root() {
        let want = v(&["t/b@n", "t/b/a@n", "t/b/a/x@n", "t/b/c@n"]);
        let (roots, plain) =
            recursive_roots(&want, &set(&["t/b@n", "t/b/a@n", "t/b/a/x@n", "t/b/c@n"]));
        assert_eq!(roots, v(&["t/b@n"]));
        assert!(plain.is_empty());
        assert_eq!(under("t/b@n", &want).len(), 4);
    }

    #[test]
    fn a_descendant_not_wanted_keeps_its_ancestors_plain() {
        // t/b/c has @n and is not wanted (say it holds our tag already):
        // -r on t/b would touch it, -r on t/b/a would not.
        let want = v(&["t/b@n", "t/b/a@n", "t/b/a/x@n"]);
        let affected = set(&["t/b@n", "t/b/a@n", "t/b/a/x@n", "t/b/c@n"]);
        let (roots, plain) = recursive_roots(&want, &affected);
        assert_eq!(roots, v(&["t/b/a@n"]));
        assert_eq!(plain, v(&["t/b@n"]));
    }

    #[test]
    fn other_names_and_unaffected_datasets_do_not_matter() {
        // t/b/c has another snapshot name only; t/b/d is not affected at all.
        let want = v(&["t/b@n", "t/b/a@n", "t/b/c@m"]);
        let affected = set(&["t/b@n", "t/b/a@n", "t/b/c@m", "t/b/c@old"]);
        let (roots, plain) = recursive_roots(&want, &affected);
        assert_eq!(roots, v(&["t/b@n"]));
        assert_eq!(plain, v(&["t/b/c@m"]));
    }

    #[test]
    fn a_parent_not_wanted_stops_the_climb_and_lone_roots_are_plain() {
        // t/b is not wanted (no @n): -r starts below it. t/z/q stands alone.
        let want = v(&["t/b/a@n", "t/b/a/x@n", "t/b/c@n", "t/z/q@n"]);
        let affected = set(&["t/b/a@n", "t/b/a/x@n", "t/b/c@n", "t/z/q@n"]);
        let (roots, plain) = recursive_roots(&want, &affected);
        assert_eq!(roots, v(&["t/b/a@n"]));
        assert_eq!(plain, v(&["t/b/c@n", "t/z/q@n"]));
        // Names that share a prefix are not each other's descendants.
        let want = v(&["t/b@n", "t/bb@n", "t/b/a@n"]);
        let (roots, plain) =
            recursive_roots(&want, &set(&["t/b@n", "t/bb@n", "t/b/a@n", "t/bb/x@n"]));
        assert_eq!(roots, v(&["t/b@n"]));
        assert_eq!(plain, v(&["t/bb@n"]));
        assert_eq!(under("t/b@n", &want), vec![&want[0], &want[2]]);
    }

    #[test]
    fn a_name_below_a_parent_without_the_snapshot_goes_under_the_root() {
        // t/x was created by zab-send (canmount=off, no snapshots): `zfs
        // hold -r t@n` reaches t/x/b@n through it, so t/x/b@n must not be
        // held by name too ("tag already exists").
        let want = v(&["t/x/b@n", "t@n", "t/a@n"]);
        let affected = set(&["t@n", "t/a@n", "t/x/b@n", "t/x/b@old"]);
        let (roots, plain) = recursive_roots(&want, &affected);
        assert_eq!(roots, v(&["t@n"]));
        assert!(plain.is_empty(), "{plain:?}");
        assert_eq!(under("t@n", &want).len(), 3);
        // With t/x@n there and not wanted, t is no root, and neither is t/x/b.
        let affected = set(&["t@n", "t/a@n", "t/x@n", "t/x/b@n"]);
        let (roots, plain) = recursive_roots(&want, &affected);
        assert!(roots.is_empty(), "{roots:?}");
        assert_eq!(plain, want);
    }

    #[test]
    fn no_plain_name_is_under_a_root() {
        // Every shape of a small tree: whatever is wanted and affected, a
        // plain name is never reached by a root's -r.
        let all = ["t", "t/a", "t/a/b", "t/c", "t/c/d", "t/c/d/e"];
        for mask_w in 0u32..64 {
            for mask_a in 0u32..64 {
                let want: Vec<String> = (0..6)
                    .filter(|i| mask_w & (1 << i) != 0)
                    .map(|i| format!("{}@n", all[i]))
                    .collect();
                let mut affected: BTreeSet<String> = want.iter().cloned().collect();
                affected.extend(
                    (0..6)
                        .filter(|i| mask_a & (1 << i) != 0)
                        .map(|i| format!("{}@n", all[i])),
                );
                let (roots, plain) = recursive_roots(&want, &affected);
                for r in &roots {
                    for p in &plain {
                        assert!(
                            under(r, std::slice::from_ref(p)).is_empty(),
                            "{p} under {r}: want {want:?} affected {affected:?}"
                        );
                    }
                    // A root touches nothing unwanted.
                    let (rd, _) = r.split_once('@').unwrap();
                    for a in &affected {
                        let (d, _) = a.split_once('@').unwrap();
                        assert!(!is_under(d, rd) || want.contains(a), "{r} touches {a}");
                    }
                }
            }
        }
    }
}
