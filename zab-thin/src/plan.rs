//! The pure part of zab-thin, from the listings: which of our snapshots
//! the schedules no longer want (a source dataset and its target thinned
//! together), which target datasets are missing on the source, and what
//! `--destroy-missing` does with them. The result is a [`Draft`]: the holds
//! of what it would destroy settle the rest ([`crate::holds`]).
//!
//! The decisions are zfs-autobackup's (reference §3.4, §3.5): only our
//! snapshots (names that parse with the snapshot format) are candidates, in
//! listing (createtxg) order, with the newest of them protected; with a
//! target, the common snapshot is kept on both sides.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::naming::SnapshotFormat;
use zab_core::record::{Dataset, Reason, Spared};
use zab_core::schedule::{Schedule, Verdict};
use zab_core::zfs::Snapshot;

use crate::cli::Zfs;
use crate::gather::{Listed, Selection};
use crate::input::Input;

/// One dataset's snapshots of ours, with the schedule's verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Our snapshots' names, in listing order (oldest first).
    pub names: Vec<String>,
    /// Their times, from their names.
    pub times: Vec<i64>,
    /// The schedule's verdict on each.
    pub verdicts: Vec<Verdict>,
}

impl Plan {
    /// Thins `snaps` (one dataset's listing, oldest first) by `schedule`.
    /// The newest of ours and the names in `protect` are kept.
    pub fn new(
        snaps: &[Snapshot],
        fmt: &SnapshotFormat,
        schedule: &Schedule,
        now: i64,
        protect: &[&str],
    ) -> Plan {
        let mut plan = Plan {
            names: Vec::new(),
            times: Vec::new(),
            verdicts: Vec::new(),
        };
        for s in snaps {
            if let Some(t) = fmt.parse(&s.name) {
                plan.names.push(s.name.clone());
                plan.times.push(t);
            }
        }
        let n = plan.names.len();
        let protected: Vec<bool> = plan
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| i + 1 == n || protect.contains(&name.as_str()))
            .collect();
        plan.verdicts = schedule.explain(&plan.times, &protected, now);
        plan
    }

    /// The snapshots the schedule no longer wants.
    pub fn obsolete(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .zip(&self.verdicts)
            .filter(|(_, v)| !v.keep)
            .map(|(n, _)| n.as_str())
    }

    /// How many of ours are kept by the schedule.
    pub fn kept(&self) -> usize {
        self.verdicts.iter().filter(|v| v.keep).count()
    }
}

/// One source dataset and its target, thinned together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub source: Plan,
    pub target: Plan,
    /// The newest snapshot on both sides (name and guid): kept on both.
    pub common: Option<String>,
    /// Source snapshots the source schedule drops but that are not on the
    /// target yet, and that the target's schedule would keep: kept, so the
    /// next transfer can still send them (name → why).
    pub unsent: BTreeMap<String, String>,
}

/// Thins a source dataset's snapshots and its target's (both oldest
/// first), as zfs-autobackup does after a transfer (reference §3.4): the
/// common snapshot is kept on both sides; a source snapshot newer than it is
/// destroyed only when the target's schedule would not keep it either.
pub fn pair(
    src: &[Snapshot],
    tgt: &[Snapshot],
    fmt: &SnapshotFormat,
    keep_source: &Schedule,
    keep_target: &Schedule,
    now: i64,
    guid_check: bool,
) -> Pair {
    let common = zab_core::zfs::common_snapshot(src, tgt, guid_check).map(|s| s.name.clone());
    let protect: Vec<&str> = common.iter().map(String::as_str).collect();
    let source = Plan::new(src, fmt, keep_source, now, &protect);
    let target = Plan::new(tgt, fmt, keep_target, now, &protect);
    // The target as it will be once the rest is sent: its snapshots, then
    // the source's after the common one.
    let after: Vec<Snapshot> = match &common {
        Some(c) => src
            .iter()
            .skip_while(|s| &s.name != c)
            .skip(1)
            .cloned()
            .collect(),
        None => src.to_vec(),
    };
    let mut future: Vec<Snapshot> = tgt.to_vec();
    future.extend(
        after
            .iter()
            .filter(|a| tgt.iter().all(|t| t.name != a.name))
            .cloned(),
    );
    let virt = Plan::new(&future, fmt, keep_target, now, &protect);
    let mut unsent = BTreeMap::new();
    for name in source.obsolete() {
        let pending = after.iter().any(|a| a.name == name);
        let wanted = virt
            .names
            .iter()
            .zip(&virt.verdicts)
            .any(|(n, v)| n == name && v.keep);
        if pending && wanted {
            unsent.insert(
                name.to_string(),
                "not on the target yet, and the target's schedule keeps it".to_string(),
            );
        }
    }
    Pair {
        source,
        target,
        common,
        unsent,
    }
}

/// What `--destroy-missing` does with a target dataset whose source is gone
/// (reference §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Our snapshots to destroy (names after `@`).
    pub destroy: Vec<String>,
    /// Then destroy the dataset itself (not recursively).
    pub destroy_dataset: bool,
    /// What happens, in upstream's words where it has them.
    pub note: String,
}

/// Decides `--destroy-missing DURATION` for one target dataset.
pub fn missing(
    snaps: &[Snapshot],
    fmt: &SnapshotFormat,
    now: i64,
    duration: i64,
    has_children: bool,
) -> Option<Missing> {
    let ours: Vec<(&str, i64)> = snaps
        .iter()
        .filter_map(|s| fmt.parse(&s.name).map(|t| (s.name.as_str(), t)))
        .collect();
    let Some(&(newest, t)) = ours.last() else {
        // Upstream reports a leaf and ignores a parent (a container).
        return (!has_children).then(|| Missing {
            destroy: Vec::new(),
            destroy_dataset: false,
            note: "has no snapshots made by us (please destroy manually)".into(),
        });
    };
    if t + duration > now {
        return Some(Missing {
            destroy: Vec::new(),
            destroy_dataset: false,
            note: "Waiting for deadline".into(),
        });
    }
    let mut destroy: Vec<String> = ours[..ours.len() - 1]
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let foreign = snaps.len() > ours.len();
    let (destroy_dataset, note) = if foreign {
        (false, "Still in use by other snapshots".to_string())
    } else if has_children {
        (false, "Still has children here.".to_string())
    } else {
        destroy.push(newest.to_string());
        (true, "Destroying".to_string())
    };
    Some(Missing {
        destroy,
        destroy_dataset,
        note,
    })
}

/// Which target datasets without a record in the input are not missing on
/// the source after all, each with the note that says why (they are left
/// alone: neither thinned nor destroyed as missing).
///
/// `candidates`: the target datasets under `root` that no input record
/// maps to. `selections`: for each source host (its name, for messages),
/// the selection asked again there (zab_core::select), or why it could not
/// be. `input`: the records read; `upstream`: how many dataset records the
/// previous stage's end record counts.
///
/// A candidate is missing only when no source dataset the selection
/// selects (or cannot decide on: an invalid property) maps to it. Nothing
/// is missing when a selection could not be read, or when it does not
/// select a dataset the input says is selected (not the same property as
/// zab-select's: --property-format).
pub fn not_missing(
    candidates: &[&str],
    selections: &[Selection],
    input: &[Dataset],
    upstream: usize,
    root: &str,
    strip: usize,
) -> BTreeMap<String, String> {
    let all = |note: String| -> BTreeMap<String, String> {
        candidates
            .iter()
            .map(|c| (c.to_string(), note.clone()))
            .collect()
    };
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for (host, sel) in selections {
        let sel = match sel {
            Ok(sel) => sel,
            Err(e) => {
                return all(format!(
                    "Kept: not treated as missing, the selection on {host} could not be read: {e}"
                ))
            }
        };
        for d in sel {
            if d.selected || d.reason == Reason::Invalid {
                if let Ok(t) = zab_core::zfs::target_name(&d.name, root, strip) {
                    wanted.insert(t);
                }
            }
        }
    }
    let disagree = input.iter().find(|d| {
        d.selected
            && d.error.is_none()
            && !selections.iter().any(|(_, sel)| {
                sel.as_ref()
                    .is_ok_and(|s| s.iter().any(|x| x.name == d.name && x.selected))
            })
    });
    if let Some(d) = disagree {
        return all(format!(
            "Kept: not treated as missing, the source's selection does not select {}, \
             which the input does (is --property-format zab-select's?)",
            d.name
        ));
    }
    let why = if upstream > input.len() {
        format!(
            "a filter dropped {} of the {upstream} records?",
            upstream - input.len()
        )
    } else {
        "filtered?".to_string()
    };
    candidates
        .iter()
        .filter(|c| wanted.contains(**c))
        .map(|c| {
            (
                c.to_string(),
                format!("Kept: source still selected, but not in the input ({why})"),
            )
        })
        .collect()
}

/// The side a job thins, as messages name it.
pub const SOURCE: &str = "[Source]";
/// See [`SOURCE`].
pub const TARGET: &str = "[Target]";

/// One dataset's destroys, on one host: what the plan decided, then what
/// the execution did.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index into the run's hosts.
    pub host: usize,
    /// [`SOURCE`] or [`TARGET`], for messages.
    pub side: &'static str,
    pub dataset: String,
    pub kept: usize,
    pub destroy: Vec<String>,
    /// Of `destroy`, the ones whose hold of ours is released first.
    pub release: Vec<String>,
    pub spared: Vec<Spared>,
    /// `--destroy-missing`: then destroy the dataset itself.
    pub destroy_dataset: bool,
    pub note: Option<String>,
    /// The record it belongs to and whether it is its target side; None for
    /// a target dataset that is missing on the source.
    pub record: Option<(usize, bool)>,
    /// The schedule's verdicts, for --explain and --svg.
    pub plan: Plan,
    /// Thinned by --keep-target (else --keep-source).
    pub by_target: bool,
    /// Decided by the schedule (false: by --destroy-missing), so the
    /// pictures show it.
    pub by_schedule: bool,
    /// Set by the execution when a command failed.
    pub error: Option<String>,
    /// Set by the execution once its snapshots are destroyed.
    pub done: bool,
    /// A source's bookmarks of ours (names after `#`) that match no target
    /// snapshot any more (crate::bookmarks), destroyed with the snapshots.
    pub bookmarks: Vec<String>,
    /// How many of `destroy` the execution destroyed: all when `done`,
    /// some when a channel program could not destroy the others.
    pub destroyed: usize,
}

impl Job {
    fn new(host: usize, side: &'static str, dataset: &str, plan: Plan) -> Job {
        Job {
            host,
            side,
            dataset: dataset.to_string(),
            kept: plan.kept(),
            plan,
            by_target: side == TARGET,
            by_schedule: true,
            destroy: Vec::new(),
            release: Vec::new(),
            spared: Vec::new(),
            destroy_dataset: false,
            note: None,
            bookmarks: Vec::new(),
            record: None,
            error: None,
            done: false,
            destroyed: 0,
        }
    }

    /// Of the record at `i` (its target side when `target`).
    fn of(mut self, i: usize, target: bool) -> Job {
        self.record = Some((i, target));
        self
    }

    /// True for a `--destroy-missing` job that destroys something (not a
    /// target dataset without a source that the schedule thins).
    pub fn destroys_missing(&self) -> bool {
        self.record.is_none() && !self.by_schedule && !self.destroy.is_empty()
    }
}

/// A job whose obsolete snapshots wait for their holds.
#[derive(Debug)]
pub struct Pending {
    /// Index into [`Draft::jobs`].
    pub job: usize,
    pub plan: Plan,
    /// Obsolete snapshots kept anyway, and why.
    pub spare: BTreeMap<String, String>,
    /// No TARGET-PATH: our hold marks the common snapshot.
    pub snapshot_only: bool,
}

/// The plan before the holds are known: [`crate::holds`] reads the holds
/// of what it would destroy and decides the rest.
#[derive(Debug, Default)]
pub struct Draft {
    pub jobs: Vec<Job>,
    pub pending: Vec<Pending>,
    /// Each source dataset's common snapshot with its target, for --debug.
    pub commons: Vec<(String, String)>,
}

impl Draft {
    fn push(&mut self, job: Job, pending: Option<(BTreeMap<String, String>, bool)>) {
        if let Some((spare, snapshot_only)) = pending {
            self.pending.push(Pending {
                job: self.jobs.len(),
                plan: job.plan.clone(),
                spare,
                snapshot_only,
            });
        }
        self.jobs.push(job);
    }
}

/// The plan from the listings, before the holds are known: the selected
/// source datasets thinned by the schedules ([`thin`]), then the target
/// datasets without a record ([`add_missing`]).
pub fn draft(config: &Zfs, input: &Input, listed: &Listed) -> Draft {
    let mut draft = thin(config, &input.datasets, listed);
    add_missing(&mut draft, config, input, listed);
    draft
}

/// The selected source datasets thinned by `--keep-source`, each with its
/// target (if it has one) by `--keep-target`; without a TARGET-PATH, in
/// snapshot-only mode.
fn thin(config: &Zfs, datasets: &[Dataset], listed: &Listed) -> Draft {
    let mut draft = Draft::default();
    let (fmt, now) = (&config.format, config.now);
    for (&h, idx) in &listed.by_host {
        for &i in idx {
            let src = &listed.snapshots[&i];
            let name = datasets[i].name.as_str();
            let Some(t) = &listed.target else {
                let p = Plan::new(src, fmt, &config.keep_source, now, &[]);
                draft.push(
                    Job::new(h, SOURCE, name, p).of(i, false),
                    Some((BTreeMap::new(), true)),
                );
                continue;
            };
            let tname = &t.map[&i];
            let tsnaps = t.tree.snapshots.get(tname).cloned().unwrap_or_default();
            let guid_check = config.target.as_ref().is_some_and(|t| t.guid_check);
            let pr = pair(
                src,
                &tsnaps,
                fmt,
                &config.keep_source,
                &config.keep_target,
                now,
                guid_check,
            );
            if let Some(c) = &pr.common {
                draft.commons.push((name.to_string(), c.clone()));
            }
            draft.push(
                Job::new(h, SOURCE, name, pr.source).of(i, false),
                Some((pr.unsent, false)),
            );
            if t.tree.snapshots.contains_key(tname) {
                let job = Job::new(t.host, TARGET, tname, pr.target).of(i, true);
                draft.push(job, Some((BTreeMap::new(), false)));
            }
        }
    }
    draft
}

/// Adds the target datasets whose source is not selected (any more):
/// left alone when the selection still wants their source ([`not_missing`]),
/// destroyed by `--destroy-missing` when it says so ([`missing`]), else
/// thinned by `--keep-target`.
fn add_missing(draft: &mut Draft, config: &Zfs, input: &Input, listed: &Listed) {
    let (Some(target), Some(t)) = (&listed.target, &config.target) else {
        return;
    };
    let candidates: Vec<&str> = target.candidates.iter().map(String::as_str).collect();
    let kept = match candidates.is_empty() {
        true => BTreeMap::new(),
        false => not_missing(
            &candidates,
            &listed.selections,
            &input.datasets,
            input.upstream,
            &t.path,
            t.strip,
        ),
    };
    let (fmt, now, tree) = (&config.format, config.now, &target.tree);
    for tname in target.unmapped.iter().map(String::as_str) {
        let tsnaps = &tree.snapshots[tname];
        let p = Plan::new(tsnaps, fmt, &config.keep_target, now, &[]);
        let mut j = Job::new(target.host, TARGET, tname, p);
        if let Some(note) = kept.get(tname) {
            j.kept = j.plan.names.len();
            j.note = Some(note.clone());
            j.by_schedule = false;
            draft.push(j, None);
            continue;
        }
        let decided = config
            .destroy_missing
            .and_then(|d| missing(tsnaps, fmt, now, d, tree.has_children(tname)));
        match decided {
            Some(m) if !m.destroy.is_empty() || m.destroy_dataset => {
                j.kept = j.plan.names.len() - m.destroy.len();
                j.destroy = m.destroy;
                j.destroy_dataset = m.destroy_dataset;
                j.note = Some(m.note);
                j.by_schedule = false;
                draft.push(j, None);
            }
            other => {
                j.note = other.map(|m| m.note);
                draft.push(j, Some((BTreeMap::new(), false)));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gather::TargetTree;
    use crate::holds;
    use zab_core::zfs::Tree;

    pub const DAY: i64 = 86400;

    pub fn fmt() -> SnapshotFormat {
        SnapshotFormat::new("{}-%Y%m%d%H%M%S", "off", true).unwrap()
    }

    /// Our snapshot at `t`.
    pub fn name_at(t: i64) -> String {
        fmt().name_at(chrono::DateTime::from_timestamp(t, 0).unwrap())
    }

    pub fn listing(names: &[String]) -> Vec<Snapshot> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Snapshot {
                name: n.clone(),
                createtxg: 100 + i as u64,
                guid: 1000 + i as u64,
                userrefs: None,
            })
            .collect()
    }

    /// One a day for 20 days, plus foreign snapshots in between.
    fn daily(now: i64) -> Vec<Snapshot> {
        let mut names = Vec::new();
        for d in (0..20).rev() {
            names.push(name_at(now - d * DAY - 3600));
            if d % 5 == 0 {
                names.push(format!("manual-{d}"));
            }
        }
        listing(&names)
    }

    #[test]
    fn only_ours_are_candidates_and_the_newest_is_kept() {
        let now = 1_763_800_000 - 1_763_800_000 % DAY + 12 * 3600;
        let snaps = daily(now);
        let s = Schedule::parse("0").unwrap();
        let p = Plan::new(&snaps, &fmt(), &s, now, &[]);
        assert_eq!(p.names.len(), 20);
        assert!(p.names.iter().all(|n| !n.starts_with("manual")));
        let obsolete: Vec<&str> = p.obsolete().collect();
        assert_eq!(obsolete.len(), 19);
        assert_eq!(p.kept(), 1);
        assert!(p.verdicts[19].keep && p.verdicts[19].protected);
    }

    #[test]
    fn the_schedule_decides_with_protected_names() {
        let now = 1_763_800_000 - 1_763_800_000 % DAY + 12 * 3600;
        let snaps = daily(now);
        // Keep 3, and one a day for a week.
        let s = Schedule::parse("3,1d1w").unwrap();
        let p = Plan::new(&snaps, &fmt(), &s, now, &[]);
        let kept: Vec<usize> = (0..20).filter(|&i| p.verdicts[i].keep).collect();
        // Ages are d days and 1 hour: day 7 is just past the TTL.
        assert_eq!(kept, (13..20).collect::<Vec<_>>(), "{:?}", p.verdicts);
        // A protected name (the common snapshot) is kept too.
        let common = p.names[2].clone();
        let p = Plan::new(&snaps, &fmt(), &s, now, &[&common]);
        assert!(p.verdicts[2].keep && p.verdicts[2].protected);
    }

    #[test]
    fn a_pair_keeps_the_common_and_what_the_target_still_wants() {
        let now = 1_763_800_000 - 1_763_800_000 % DAY + 12 * 3600;
        // Source: ten dailies; target: the first six (sent), same guids.
        let names: Vec<String> = (0..10)
            .rev()
            .map(|d| name_at(now - d * DAY - 3600))
            .collect();
        let src = listing(&names);
        let tgt: Vec<Snapshot> = src[..6].to_vec();
        let keep_source = Schedule::parse("0").unwrap();
        let keep_target = Schedule::parse("1d1y").unwrap();
        let p = pair(&src, &tgt, &fmt(), &keep_source, &keep_target, now, true);
        assert_eq!(p.common.as_deref(), Some(names[5].as_str()));
        // Source keeps nothing by schedule, but the newest and the common stay,
        // and the four not yet sent that the target's schedule wants.
        let obsolete: Vec<&str> = p.source.obsolete().collect();
        assert!(!obsolete.contains(&names[5].as_str()) && !obsolete.contains(&names[9].as_str()));
        let unsent: Vec<&String> = p.unsent.keys().collect();
        assert_eq!(unsent, names[6..9].iter().collect::<Vec<_>>());
        let o = holds::outcome("t/a", &p.source, &BTreeMap::new(), "x", false, &p.unsent);
        assert_eq!(o.destroy, names[..5].to_vec());
        // With a keep-nothing target, the unsent ones may go too.
        let p = pair(
            &src,
            &tgt,
            &fmt(),
            &keep_source,
            &Schedule::parse("0").unwrap(),
            now,
            true,
        );
        assert!(p.unsent.is_empty());
        // A different guid: no common snapshot, so the target keeps its newest only.
        let mut other = tgt.clone();
        other.iter_mut().for_each(|s| s.guid += 1);
        let p = pair(
            &src,
            &other,
            &fmt(),
            &keep_source,
            &Schedule::parse("0").unwrap(),
            now,
            true,
        );
        assert_eq!(p.common, None);
        assert_eq!(p.target.kept(), 1);
    }

    #[test]
    fn destroy_missing_cases() {
        let now = 1_763_800_000;
        let names: Vec<String> = (1..=3).rev().map(|d| name_at(now - d * DAY)).collect();
        let ours = listing(&names);
        let mut with_foreign = ours.clone();
        with_foreign.push(listing(&["manual".to_string()])[0].clone());
        let m = |s: &[Snapshot], dur: i64, kids: bool| missing(s, &fmt(), now, dur, kids);
        // The newest of ours is a day old: a 2-day deadline is not reached.
        assert_eq!(
            m(&ours, 2 * DAY, false).unwrap().note,
            "Waiting for deadline"
        );
        let all = m(&ours, DAY, false).unwrap();
        assert_eq!(
            (all.destroy.clone(), all.destroy_dataset),
            (names.clone(), true)
        );
        let f = m(&with_foreign, DAY, false).unwrap();
        assert_eq!(f.destroy, names[..2].to_vec());
        assert_eq!(
            (f.destroy_dataset, f.note.as_str()),
            (false, "Still in use by other snapshots")
        );
        let k = m(&ours, 0, true).unwrap();
        assert_eq!(
            (k.destroy_dataset, k.note.as_str()),
            (false, "Still has children here.")
        );
        assert_eq!(k.destroy, names[..2].to_vec());
        assert!(m(&[], 0, true).is_none());
        assert!(m(&listing(&["manual".to_string()]), 0, false)
            .unwrap()
            .note
            .contains("please destroy manually"));
    }

    pub fn rec(name: &str, selected: bool, reason: &str) -> Dataset {
        serde_json::from_value(serde_json::json!({
            "backup": "b", "host": null, "name": name, "type": "filesystem",
            "selected": selected, "reason": reason, "value": null, "source": "local",
            "inherited_from": null, "createtxg": 1, "written": 0,
        }))
        .unwrap()
    }

    #[test]
    fn a_filtered_dataset_is_not_missing() {
        // On the source: a and f selected, gone unset (its property
        // removed), bad with an invalid property; deleted does not exist.
        let sel = vec![
            rec("p/a", true, "selected"),
            rec("p/f", true, "selected"),
            rec("p/gone", false, "unset"),
            rec("p/bad", false, "invalid"),
        ];
        let input = vec![rec("p/a", true, "selected")];
        let cands = ["t/p/f", "t/p/gone", "t/p/bad", "t/p/deleted"];
        let host = "this host".to_string();
        let kept = not_missing(
            &cands,
            &[(host.clone(), Ok(sel.clone()))],
            &input,
            2,
            "t",
            0,
        );
        let names: Vec<&str> = kept.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["t/p/bad", "t/p/f"]);
        assert_eq!(
            kept["t/p/f"],
            "Kept: source still selected, but not in the input \
             (a filter dropped 1 of the 2 records?)"
        );
        // The end record does not count more: still kept, said shorter.
        let kept = not_missing(
            &cands,
            &[(host.clone(), Ok(sel.clone()))],
            &input,
            1,
            "t",
            0,
        );
        assert!(kept["t/p/f"].ends_with("(filtered?)"));
        // --strip-path maps the same way as the transfer does.
        let kept = not_missing(
            &["t/f"],
            &[(host.clone(), Ok(sel.clone()))],
            &input,
            1,
            "t",
            1,
        );
        assert!(kept.contains_key("t/f"));
        // No input at all (everything filtered): the selection still decides.
        let kept = not_missing(&cands, &[(host.clone(), Ok(sel.clone()))], &[], 1, "t", 0);
        assert_eq!(kept.len(), 2, "{kept:?}");
    }

    #[test]
    fn nothing_is_missing_on_incomplete_information() {
        let input = vec![rec("p/a", true, "selected")];
        let cands = ["t/p/gone", "t/p/deleted"];
        let host = "root@nas".to_string();
        let kept = not_missing(
            &cands,
            &[(host.clone(), Err("exit 255".into()))],
            &input,
            1,
            "t",
            0,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(
            kept["t/p/gone"],
            "Kept: not treated as missing, the selection on root@nas could not be read: exit 255"
        );
        // Another property than zab-select's: it does not select p/a.
        let other = vec![rec("p/a", false, "unset"), rec("p/gone", false, "unset")];
        let kept = not_missing(&cands, &[(host.clone(), Ok(other))], &input, 1, "t", 0);
        assert_eq!(kept.len(), 2);
        assert!(
            kept["t/p/deleted"].contains("does not select p/a"),
            "{kept:?}"
        );
        // When it agrees, what it does not select is missing.
        let same = vec![rec("p/a", true, "selected"), rec("p/gone", false, "unset")];
        assert!(not_missing(&cands, &[(host, Ok(same))], &input, 1, "t", 0).is_empty());
    }

    /// A config, input and listings: source `tank/a` on the local host
    /// with its target `backup/a`, and `backup/gone` with no source.
    fn scene(
        argv: &[&str],
        src: &[String],
        tgt: &[String],
        gone: &[String],
    ) -> (Zfs, Input, Listed) {
        use clap::Parser;
        let mut full = vec!["zab-thin", "off", "backup"];
        full.extend(argv);
        let config = match crate::cli::Args::try_parse_from(full).unwrap().config() {
            Ok(crate::cli::Config::Zfs(c)) => c,
            other => panic!("{other:?}"),
        };
        let input = Input {
            datasets: vec![rec("tank/a", true, "selected")],
            selected: BTreeMap::from([(None, vec![0])]),
            upstream: 1,
            failed: Vec::new(),
            _lock: None,
        };
        let tree = Tree {
            datasets: vec![
                ("backup".to_string(), None),
                ("backup/a".to_string(), None),
                ("backup/gone".to_string(), None),
            ],
            snapshots: BTreeMap::from([
                ("backup".to_string(), Vec::new()),
                ("backup/a".to_string(), listing(tgt)),
                ("backup/gone".to_string(), listing(gone)),
            ]),
            ..Tree::default()
        };
        let map = BTreeMap::from([(0, "backup/a".to_string())]);
        let unmapped = crate::gather::unmapped(&input, &tree, &map, "backup", 0);
        let candidates = crate::gather::candidates(&unmapped, &tree, &config.format);
        // The selection, asked again, still wants tank/a only.
        let selected = vec![rec("tank/a", true, "selected")];
        let listed = Listed {
            by_host: BTreeMap::from([(0, vec![0])]),
            snapshots: BTreeMap::from([(0, listing(src))]),
            bookmarks: BTreeMap::new(),
            target: Some(TargetTree {
                host: 1,
                tree,
                map,
                unmapped,
                candidates,
            }),
            selections: vec![("localhost".to_string(), Ok(selected))],
        };
        (*config, input, listed)
    }

    /// The names of our snapshots `days` days old, oldest first.
    fn aged(now: i64, days: &[i64]) -> Vec<String> {
        days.iter().map(|d| name_at(now - d * DAY)).collect()
    }

    #[test]
    fn a_whole_plan_with_a_target_and_a_missing_dataset() {
        let now = 1_763_800_000;
        let at = now.to_string();
        let argv = [
            "--keep-source",
            "1",
            "--keep-target",
            "2",
            "--destroy-missing",
            "1d",
            "--now",
            at.as_str(),
        ];
        let src = aged(now, &[5, 4, 3]);
        let gone = aged(now, &[9, 8]);
        // The target has the first two (same names and guids).
        let (config, input, listed) = scene(&argv, &src, &src[..2], &gone);
        assert_eq!(config.now, now);
        let target = listed.target.as_ref().unwrap();
        assert_eq!(target.candidates, vec!["backup/gone"]);
        let draft = draft(&config, &input, &listed);
        assert_eq!(draft.commons, vec![("tank/a".to_string(), src[1].clone())]);
        let want = holds::queries(&draft);
        // The source keeps the newest (and the common), the target keeps 2;
        // the missing dataset's snapshots are all asked about.
        assert_eq!(
            want,
            BTreeMap::from([
                (0, vec![format!("tank/a@{}", src[0])]),
                (
                    1,
                    vec![
                        format!("backup/gone@{}", gone[0]),
                        format!("backup/gone@{}", gone[1])
                    ]
                ),
            ])
        );
        let mut holds = BTreeMap::new();
        holds.insert(format!("tank/a@{}", src[0]), vec![config.tag.clone()]);
        holds.insert(format!("backup/gone@{}", gone[1]), vec!["keep".to_string()]);
        let jobs = holds::decide(draft, &holds, &config.tag);
        let brief: Vec<_> = jobs
            .iter()
            .map(|j| {
                (
                    j.side,
                    j.dataset.as_str(),
                    j.destroy.clone(),
                    j.release.clone(),
                    j.destroy_dataset,
                    j.record,
                )
            })
            .collect();
        assert_eq!(
            brief,
            vec![
                (
                    SOURCE,
                    "tank/a",
                    vec![src[0].clone()],
                    vec![src[0].clone()],
                    false,
                    Some((0, false))
                ),
                (TARGET, "backup/a", vec![], vec![], false, Some((0, true))),
                (
                    TARGET,
                    "backup/gone",
                    vec![gone[0].clone()],
                    vec![],
                    false,
                    None
                ),
            ]
        );
        assert_eq!(jobs[2].note.as_deref(), Some("Still held by others"));
        assert_eq!(jobs[2].spared.len(), 1);
    }

    #[test]
    fn a_target_without_a_source_thinned_by_the_schedule_releases_once() {
        let now = 1_763_800_000;
        let at = now.to_string();
        let argv = ["--keep-target", "1", "--now", at.as_str()];
        let src = aged(now, &[2]);
        let gone = aged(now, &[9, 8]);
        let (config, input, listed) = scene(&argv, &src, &src, &gone);
        let draft = draft(&config, &input, &listed);
        let mut held = BTreeMap::new();
        held.insert(format!("backup/gone@{}", gone[0]), vec![config.tag.clone()]);
        let jobs = holds::decide(draft, &held, &config.tag);
        let j = jobs.iter().find(|j| j.dataset == "backup/gone").unwrap();
        assert!(j.by_schedule && j.record.is_none());
        assert_eq!(j.destroy, vec![gone[0].clone()]);
        assert_eq!(j.release, vec![gone[0].clone()], "released once");
    }
}
