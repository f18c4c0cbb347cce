//! The holds of what the draft plan would destroy, and what they decide.
//!
//! [`read`] asks `zfs holds` (one per host) of the snapshots whose holds
//! decide the plan ([`queries`]): only those the draft would destroy. The
//! listings do not count holds: it would make zfs read every property of
//! every snapshot. [`decide`] then settles each job with the hold rule
//! (pure, unit-tested here): a snapshot only we hold is released first
//! (in snapshot-only mode, our hold marks the common snapshot, which is
//! kept); one that anyone else holds is kept and reported, never forced,
//! and a `--destroy-missing` dataset with such a snapshot is kept too.

use std::collections::BTreeMap;

use zab_core::error::Error;
use zab_core::record::Spared;
use zab_core::zfs;

use crate::gather::Hosts;
use crate::plan::{Draft, Job, Plan};

/// The holds of the snapshots in [`queries`] (full snapshot name → tags):
/// one `zfs holds` per host, none when there is nothing to ask. A snapshot
/// it does not name has none.
pub fn read(hosts: &Hosts, draft: &Draft) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut holds = BTreeMap::new();
    for (h, snaps) in queries(draft) {
        let refs: Vec<&str> = snaps.iter().map(String::as_str).collect();
        holds.extend(zfs::holds(hosts.get(h), &refs)?);
    }
    Ok(holds)
}

/// The snapshots whose holds decide the plan, by host: the obsolete ones
/// (but those kept anyway), then all that `--destroy-missing` destroys.
pub fn queries(draft: &Draft) -> BTreeMap<usize, Vec<String>> {
    let mut want: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for p in &draft.pending {
        let job = &draft.jobs[p.job];
        for s in p.plan.obsolete().filter(|s| !p.spare.contains_key(*s)) {
            want.entry(job.host)
                .or_default()
                .push(format!("{}@{s}", job.dataset));
        }
    }
    for j in draft.jobs.iter().filter(|j| j.destroys_missing()) {
        for s in &j.destroy {
            want.entry(j.host)
                .or_default()
                .push(format!("{}@{s}", j.dataset));
        }
    }
    want
}

/// The plan, once the holds of [`queries`] are known: each job's
/// destroys, releases and spared snapshots ([`outcome`],
/// [`missing_outcome`]).
pub fn decide(draft: Draft, holds: &BTreeMap<String, Vec<String>>, our_tag: &str) -> Vec<Job> {
    let mut jobs = draft.jobs;
    for p in &draft.pending {
        let job = &mut jobs[p.job];
        let o = outcome(
            &job.dataset,
            &p.plan,
            holds,
            our_tag,
            p.snapshot_only,
            &p.spare,
        );
        job.kept += o.spared.len();
        job.destroy = o.destroy;
        job.release = o.release;
        job.spared = o.spared;
    }
    for j in jobs.iter_mut().filter(|j| j.destroys_missing()) {
        let (o, blocked) = missing_outcome(&j.dataset, &j.destroy, holds, our_tag);
        j.destroy = o.destroy;
        j.release = o.release;
        j.spared.extend(o.spared);
        if blocked {
            j.destroy_dataset = false;
            j.note = Some("Still held by others".into());
        }
    }
    jobs
}

/// What becomes of one dataset's obsolete snapshots once holds are known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// To destroy (names after `@`), oldest first.
    pub destroy: Vec<String>,
    /// Of those, the ones whose hold of ours must be released first.
    pub release: Vec<String>,
    /// Kept against the schedule, and why.
    pub spared: Vec<Spared>,
}

/// Decides the obsolete snapshots of `dataset` given `holds` (full snapshot
/// name → tags, from one `zfs holds` of every obsolete snapshot: one it
/// does not name has none). `our_tag` is our hold tag. In snapshot-only
/// mode our hold marks the common snapshot, which is kept; otherwise (the common snapshot being known and protected) our
/// hold on an obsolete snapshot is released before it is destroyed.
pub fn outcome(
    dataset: &str,
    plan: &Plan,
    holds: &BTreeMap<String, Vec<String>>,
    our_tag: &str,
    snapshot_only: bool,
    spare: &BTreeMap<String, String>,
) -> Outcome {
    let mut out = Outcome::default();
    for name in plan.obsolete() {
        if let Some(why) = spare.get(name) {
            out.spared.push(Spared {
                name: name.to_string(),
                why: why.clone(),
            });
            continue;
        }
        let spare = |why: String| Spared {
            name: name.to_string(),
            why,
        };
        match held(holds, dataset, name, our_tag) {
            // No hold (one placed since is refused by `zfs destroy`).
            Held::Free => out.destroy.push(name.to_string()),
            Held::Others(others) => out
                .spared
                .push(spare(format!("held by {}", others.join(", ")))),
            Held::Ours if snapshot_only => out
                .spared
                .push(spare(format!("the common snapshot (held by {our_tag})"))),
            Held::Ours => {
                out.release.push(name.to_string());
                out.destroy.push(name.to_string());
            }
        }
    }
    out
}

/// Who holds one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held<'a> {
    /// No one.
    Free,
    /// Only we do (our tag).
    Ours,
    /// Someone else does (their tags), and maybe we too.
    Others(Vec<&'a str>),
}

/// Who holds `dataset@name`, from `holds` (one it does not name has none).
fn held<'a>(
    holds: &'a BTreeMap<String, Vec<String>>,
    dataset: &str,
    name: &str,
    our_tag: &str,
) -> Held<'a> {
    let tags = match holds.get(&format!("{dataset}@{name}")) {
        Some(tags) if !tags.is_empty() => tags,
        _ => return Held::Free,
    };
    let others: Vec<&str> = tags
        .iter()
        .map(String::as_str)
        .filter(|t| *t != our_tag)
        .collect();
    match others.is_empty() {
        true => Held::Ours,
        false => Held::Others(others),
    }
}

/// `--destroy-missing`'s destroys of `dataset` (from [`crate::plan::missing`]) once the
/// holds are known: our hold is released first; a snapshot anyone else
/// holds is kept, and then so is the dataset (`true`: blocked).
pub fn missing_outcome(
    dataset: &str,
    destroy: &[String],
    holds: &BTreeMap<String, Vec<String>>,
    our_tag: &str,
) -> (Outcome, bool) {
    let mut out = Outcome::default();
    for name in destroy {
        match held(holds, dataset, name, our_tag) {
            Held::Free => out.destroy.push(name.clone()),
            Held::Ours => {
                out.release.push(name.clone());
                out.destroy.push(name.clone());
            }
            Held::Others(_) => out.spared.push(Spared {
                name: name.clone(),
                why: "held by someone else".into(),
            }),
        }
    }
    let blocked = !out.spared.is_empty();
    (out, blocked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{fmt, listing, name_at, DAY};
    use zab_core::schedule::Schedule;

    fn held_plan() -> (Plan, BTreeMap<String, Vec<String>>) {
        let now = 1_763_800_000;
        let names: Vec<String> = (1..=4).map(|d| name_at(now - d * DAY)).rev().collect();
        // Held by us; by us and someone else; the other two by no one.
        let snaps = listing(&names);
        let p = Plan::new(&snaps, &fmt(), &Schedule::parse("0").unwrap(), now, &[]);
        let mut holds = BTreeMap::new();
        holds.insert(
            format!("t/a@{}", names[0]),
            vec!["zfs_autobackup:off".to_string()],
        );
        holds.insert(
            format!("t/a@{}", names[1]),
            vec!["zfs_autobackup:off".to_string(), "keep".to_string()],
        );
        (p, holds)
    }

    /// [`held_plan`] decided, in snapshot-only mode or with a target.
    fn held_outcome(snapshot_only: bool) -> (Plan, Outcome) {
        let (p, holds) = held_plan();
        let tag = "zfs_autobackup:off";
        let o = outcome("t/a", &p, &holds, tag, snapshot_only, &BTreeMap::new());
        (p, o)
    }

    #[test]
    fn holds_in_snapshot_only_mode() {
        let (p, o) = held_outcome(true);
        // The third is held by no one; the fourth is the newest, kept.
        assert_eq!(o.destroy, vec![p.names[2].clone()]);
        assert_eq!(o.release, Vec::<String>::new());
        let why: Vec<&str> = o.spared.iter().map(|s| s.why.as_str()).collect();
        assert_eq!(
            why,
            vec![
                "the common snapshot (held by zfs_autobackup:off)",
                "held by keep",
            ]
        );
    }

    #[test]
    fn holds_with_a_target_release_ours_first() {
        let (p, o) = held_outcome(false);
        assert_eq!(o.destroy, vec![p.names[0].clone(), p.names[2].clone()]);
        assert_eq!(o.release, vec![p.names[0].clone()]);
        assert_eq!(o.spared.len(), 1);
    }

    #[test]
    fn destroy_missing_releases_ours_and_stops_at_anyone_elses() {
        let tag = "zfs_autobackup:off";
        let destroy: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut holds = BTreeMap::new();
        holds.insert("t/gone@a".to_string(), vec![tag.to_string()]);
        // No one holds any: all destroyed, the dataset too.
        let (o, blocked) = missing_outcome("t/gone", &destroy, &BTreeMap::new(), tag);
        assert_eq!(
            (o.destroy.clone(), o.release.len(), blocked),
            (destroy.clone(), 0, false)
        );
        // Ours is released first, and does not block.
        let (o, blocked) = missing_outcome("t/gone", &destroy, &holds, tag);
        assert_eq!(o.destroy, destroy);
        assert_eq!((o.release, blocked), (vec!["a".to_string()], false));
        // Anyone else's keeps that snapshot (with ours too) and blocks the
        // dataset's destroy.
        holds.insert(
            "t/gone@b".to_string(),
            vec![tag.to_string(), "keep".to_string()],
        );
        let (o, blocked) = missing_outcome("t/gone", &destroy, &holds, tag);
        assert_eq!(o.destroy, vec!["a".to_string(), "c".to_string()]);
        assert_eq!(o.release, vec!["a".to_string()]);
        let why: Vec<(&str, &str)> = o
            .spared
            .iter()
            .map(|s| (s.name.as_str(), s.why.as_str()))
            .collect();
        assert_eq!(why, vec![("b", "held by someone else")]);
        assert!(blocked);
    }
}
