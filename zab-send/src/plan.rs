//! The plan of one dataset's replication, as data: pure functions of the
//! two listings and the options, so every rule is tested without ZFS.
//!
//! zfs-autobackup's rules (reference §2.5), in order:
//! 1. the common snapshot is the newest target snapshot that the source has
//!    too, by name and (unless `--no-guid-check`) guid. None while the
//!    target has snapshots: the dataset fails;
//! 2. target snapshots after it block a receive from the first one with
//!    data written on (in raw mode all of them): incompatible. The dataset
//!    fails unless `--destroy-incompatible`;
//! 3. the candidates are the source snapshots after the common one (all of
//!    them for a first transfer): ours, or every one with
//!    `--other-snapshots`, minus `--exclude-snapshot-pattern` matches, minus
//!    ours that the target schedule would destroy right after receiving
//!    them (thinned together with the target's own as if all had arrived);
//! 4. one transfer per snapshot (`zfs send -i`), except that consecutive
//!    snapshots with nothing skipped between them go as one `zfs send -I`
//!    stream, which receives exactly the same snapshots;
//! 5. a pending resume token is resumed when it leads to the first snapshot
//!    to send, and aborted otherwise.
//!
//! A source without snapshots fails: zab-snap comes first.

use regex::Regex;
use zab_core::naming::SnapshotFormat;
use zab_core::record::{Spared, TransferKind};
use zab_core::schedule::Schedule;
use zab_core::zfs::Snapshot;

/// A target dataset as listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// Its snapshots, oldest first, each with `written` (bytes written
    /// between the previous snapshot and it).
    pub snapshots: Vec<(Snapshot, u64)>,
    /// `receive_resume_token`, when an interrupted receive can be resumed.
    pub token: Option<String>,
}

/// The options that shape a plan.
#[derive(Debug)]
pub struct Options<'a> {
    pub format: &'a SnapshotFormat,
    pub other_snapshots: bool,
    pub exclude: &'a [Regex],
    pub keep_target: &'a Schedule,
    pub now: i64,
    pub guid_check: bool,
    pub destroy_incompatible: bool,
    pub rollback: bool,
}

/// One `zfs send | zfs recv` to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The incremental base (`-i`/`-I`), none for a full stream.
    pub from: Option<String>,
    /// The source's bookmark of `from` (name after `#`) to send from, when
    /// the source no longer has `from` itself: always `-i`, one snapshot.
    pub bookmark: Option<String>,
    /// The snapshot received last.
    pub to: String,
    pub kind: TransferKind,
    /// Snapshots the stream carries (more than one with `-I`).
    pub snapshots: usize,
}

/// What happens to a pending resume token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Resume {
    /// No token on the target.
    #[default]
    None,
    /// The first step resumes it.
    Continue(String),
    /// `zfs recv -A`, and why.
    Abort(String),
}

/// A dataset's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub common: Option<String>,
    pub incompatible: Vec<String>,
    /// Incompatible snapshots to destroy first (`--destroy-incompatible`).
    pub destroy: Vec<String>,
    /// `zfs rollback` to this target snapshot before the first transfer.
    pub rollback: Option<String>,
    pub resume: Resume,
    pub steps: Vec<Step>,
    pub skipped: Vec<Spared>,
    /// Why nothing can be done, when so.
    pub error: Option<String>,
}

impl Plan {
    /// Whether a raw stream could plan differently from this plan, made as
    /// if the source were not encrypted: it sends or resumes something, or
    /// the target has snapshots after the common one (which all block a raw
    /// receive, changed or not).
    pub fn raw_matters(&self, target: Option<&Target>) -> bool {
        if !self.steps.is_empty() {
            return true;
        }
        let Some(t) = target else {
            return false;
        };
        t.token.is_some()
            || match &self.common {
                Some(c) => t.snapshots.last().is_some_and(|(s, _)| &s.name != c),
                None => !t.snapshots.is_empty(),
            }
    }
}

/// Plans one dataset: `source` is its snapshots oldest first, `bookmarks`
/// its bookmarks, `dataset` its name, `target` the target dataset when it
/// exists, `raw` whether the stream is raw (encrypted and not `--decrypt`),
/// and `token_to` the snapshot name (after `@`) that the target's resume
/// token leads to, as the dry run `zfs send -nv -t` told (None when it
/// failed or said nothing).
pub fn plan(
    dataset: &str,
    source: &[Snapshot],
    bookmarks: &[Snapshot],
    target: Option<&Target>,
    raw: bool,
    token_to: Option<&str>,
    o: &Options,
) -> Plan {
    let mut p = Plan::default();
    let empty = Target::default();
    let t = target.unwrap_or(&empty);
    let tsnaps: Vec<Snapshot> = t.snapshots.iter().map(|(s, _)| s.clone()).collect();

    // 1. The common snapshot, or a newer target snapshot that only a
    // bookmark of the source keeps.
    let common = zab_core::zfs::common_snapshot(source, &tsnaps, o.guid_check);
    let mut common_t = common.and_then(|c| tsnaps.iter().rposition(|s| s.name == c.name));
    let common_s = common.and_then(|c| {
        source
            .iter()
            .rposition(|s| s.name == c.name && (!o.guid_check || s.guid == c.guid))
    });
    p.common = common.map(|c| c.name.clone());
    let bookmark = crate::bookmarks::base(bookmarks, &tsnaps).filter(|(i, _)| Some(*i) > common_t);
    if let Some((i, _)) = bookmark {
        common_t = Some(i);
        p.common = Some(tsnaps[i].name.clone());
    }
    if p.common.is_none() && !tsnaps.is_empty() {
        p.error = Some(no_common(source, &tsnaps));
        return p;
    }

    // 2. Incompatible target snapshots.
    if !incompatible_rule(&mut p, t, common_t, raw, o) {
        return p;
    }
    let kept_target: Vec<&Snapshot> = tsnaps
        .iter()
        .filter(|s| !p.incompatible.contains(&s.name))
        .collect();

    // 3. Candidates, and what the target would keep of them.
    let start = match bookmark {
        Some((_, bm)) => crate::bookmarks::after(source, bm),
        None => common_s.map_or(0, |i| i + 1),
    };
    let candidates = candidates(dataset, &source[start..], o, &mut p.skipped);
    let wanted = wanted(&kept_target, candidates, o, &mut p.skipped);
    p.skipped
        .sort_by_key(|sp| source.iter().position(|s| s.name == sp.name));

    // 4. Steps: -i per snapshot, runs without gaps as one -I; from a
    // bookmark, -i to the first.
    p.steps = match bookmark {
        Some((_, bm)) => crate::bookmarks::steps(source, p.common.clone(), bm, &wanted),
        None => steps(source, p.common.clone(), &wanted),
    };

    // 5. The resume token.
    if let Some(token) = &t.token {
        p.resume = resume(&mut p.steps, source, token, token_to);
    }
    if o.rollback && !p.steps.is_empty() && p.rollback.is_none() {
        p.rollback = kept_target.last().map(|s| s.name.clone());
    }
    if source.is_empty() {
        p.error = Some("no snapshots to send: run zab-snap first".into());
    }
    p
}

/// Step 2: the target's snapshots after the common one that the stream
/// cannot follow are destroyed (with a rollback to the common one) under
/// `--destroy-incompatible`, else the dataset fails: false.
fn incompatible_rule(
    p: &mut Plan,
    t: &Target,
    common_t: Option<usize>,
    raw: bool,
    o: &Options,
) -> bool {
    p.incompatible = incompatible(t, common_t, raw);
    if p.incompatible.is_empty() {
        return true;
    }
    if !o.destroy_incompatible {
        p.error = Some(format!(
            "incompatible snapshots on the target after the common one: {}; destroy them, \
             or use --destroy-incompatible",
            p.incompatible.join(", ")
        ));
        return false;
    }
    p.destroy = p.incompatible.clone();
    p.rollback = p.common.clone();
    true
}

/// Why there is no common snapshot.
fn no_common(source: &[Snapshot], tsnaps: &[Snapshot]) -> String {
    let clash = tsnaps
        .iter()
        .rev()
        .find(|t| source.iter().any(|s| s.name == t.name));
    match clash {
        Some(c) => format!(
            "no common snapshot: the target's @{} has another guid than the source's \
             (not the same snapshot); --no-guid-check compares names only",
            c.name
        ),
        None => format!(
            "no common snapshot: the target has {} snapshot(s), none of them on the source; \
             rename or destroy the target dataset to send it again in full",
            tsnaps.len()
        ),
    }
}

/// The target snapshots after the common one (at `common_t`) that block a
/// receive: from the first with data written on, all of them when raw.
fn incompatible(t: &Target, common_t: Option<usize>, raw: bool) -> Vec<String> {
    let after = common_t.map_or(0, |i| i + 1);
    let first_blocking = if raw {
        Some(after)
    } else {
        t.snapshots[after..]
            .iter()
            .position(|(_, w)| *w != 0)
            .map(|i| after + i)
    };
    match first_blocking {
        Some(i) => t.snapshots[i..]
            .iter()
            .map(|(s, _)| s.name.clone())
            .collect(),
        None => Vec::new(),
    }
}

/// The source snapshots after the common one that may be sent: ours (or
/// every one with `--other-snapshots`), minus the excluded ones (noted in
/// `skipped`).
fn candidates<'a>(
    dataset: &str,
    after: &'a [Snapshot],
    o: &Options,
    skipped: &mut Vec<Spared>,
) -> Vec<&'a Snapshot> {
    let mut candidates: Vec<&Snapshot> = Vec::new();
    for s in after {
        let ours = o.format.is_ours(&s.name);
        if !ours && !o.other_snapshots {
            continue;
        }
        let full = format!("{dataset}@{}", s.name);
        if let Some(re) = o.exclude.iter().find(|re| re.is_match(&full)) {
            skipped.push(Spared {
                name: s.name.clone(),
                why: format!("matches --exclude-snapshot-pattern {}", re.as_str()),
            });
            continue;
        }
        candidates.push(s);
    }
    candidates
}

/// The candidates the target schedule keeps, thinned together with the
/// target's own snapshots as if all had arrived (the newest is kept); the
/// others are noted in `skipped`.
fn wanted<'a>(
    kept_target: &[&Snapshot],
    candidates: Vec<&'a Snapshot>,
    o: &Options,
    skipped: &mut Vec<Spared>,
) -> Vec<&'a Snapshot> {
    let mut times = Vec::new();
    let mut virtual_index = Vec::new();
    for s in kept_target {
        if let Some(t) = o.format.parse(&s.name) {
            times.push(t);
            virtual_index.push(None);
        }
    }
    for (ci, s) in candidates.iter().enumerate() {
        if let Some(t) = o.format.parse(&s.name) {
            times.push(t);
            virtual_index.push(Some(ci));
        }
    }
    let mut protected = vec![false; times.len()];
    if let Some(last) = protected.last_mut() {
        *last = true;
    }
    let keep = o.keep_target.thin(&times, &protected, o.now);
    let mut unwanted = vec![false; candidates.len()];
    for (k, vi) in keep.iter().zip(&virtual_index) {
        if let (false, Some(ci)) = (k, vi) {
            unwanted[*ci] = true;
        }
    }
    let mut wanted: Vec<&Snapshot> = Vec::new();
    for (s, u) in candidates.into_iter().zip(&unwanted) {
        if *u {
            skipped.push(Spared {
                name: s.name.clone(),
                why: "the target's schedule would destroy it at once".into(),
            });
        } else {
            wanted.push(s);
        }
    }
    wanted
}

/// The steps that send `wanted` after `common`: `-i` per snapshot, runs
/// without gaps as one `-I`.
pub(crate) fn steps(
    source: &[Snapshot],
    common: Option<String>,
    wanted: &[&Snapshot],
) -> Vec<Step> {
    let pos = |name: &str| source.iter().position(|s| s.name == name);
    let mut steps: Vec<Step> = Vec::new();
    let mut from = common;
    for s in wanted {
        let kind = if from.is_none() {
            TransferKind::Full
        } else {
            TransferKind::Incremental
        };
        let adjacent = from
            .as_deref()
            .and_then(pos)
            .zip(pos(&s.name))
            .is_some_and(|(a, b)| b == a + 1);
        match steps.last_mut() {
            Some(last)
                if kind == TransferKind::Incremental
                    && last.kind == TransferKind::Incremental
                    && adjacent
                    && last.to == from.clone().unwrap_or_default()
                    && last_is_gapless(last, &pos) =>
            {
                last.to = s.name.clone();
                last.snapshots += 1;
            }
            _ => steps.push(Step {
                from: from.clone(),
                bookmark: None,
                to: s.name.clone(),
                kind,
                snapshots: 1,
            }),
        }
        from = Some(s.name.clone());
    }
    steps
}

/// What happens to the target's resume `token`, which leads to
/// `token_to`: resumed when it leads to the first snapshot to send (that
/// snapshot then a step of its own), else aborted.
fn resume(
    steps: &mut Vec<Step>,
    source: &[Snapshot],
    token: &str,
    token_to: Option<&str>,
) -> Resume {
    let first = steps.first().map(|s| first_snapshot(s, source));
    match (token_to, first) {
        (Some(to), Some(Some(first))) if to == first => {
            split_first(steps, source);
            steps[0].kind = TransferKind::Resumed;
            Resume::Continue(token.to_string())
        }
        (Some(to), Some(Some(first))) => Resume::Abort(format!(
            "the token resumes @{to}, but the next snapshot to send is @{first}"
        )),
        (Some(to), _) => Resume::Abort(format!(
            "the token resumes @{to}, and nothing is to be sent"
        )),
        (None, _) => Resume::Abort("the token could not be read on the source".into()),
    }
}

/// What a dataset's plan starts from: its snapshots as listed and, in a
/// dry run, the one `zab-snap --test` upstream would have taken
/// (`would_create`), as the newest: a dry run shows what a real run would
/// send.
pub fn source_snapshots(
    listed: &[Snapshot],
    would_create: Option<&str>,
    dry: bool,
) -> Vec<Snapshot> {
    let mut snaps = listed.to_vec();
    if let Some(name) = would_create.filter(|_| dry) {
        if !snaps.iter().any(|x| x.name == name) {
            let txg = snaps.last().map_or(0, |x| x.createtxg) + 1;
            snaps.push(Snapshot {
                name: name.to_string(),
                createtxg: txg,
                guid: 0,
                userrefs: None,
            });
        }
    }
    snaps
}

/// True when a step's stream holds every source snapshot between its ends
/// (always true for a single `-i`, checked for `-I` runs).
fn last_is_gapless(step: &Step, pos: &dyn Fn(&str) -> Option<usize>) -> bool {
    match step.from.as_deref().and_then(pos).zip(pos(&step.to)) {
        Some((a, b)) => b - a == step.snapshots,
        None => false,
    }
}

/// The first snapshot a step receives.
fn first_snapshot(step: &Step, source: &[Snapshot]) -> Option<String> {
    if step.snapshots == 1 {
        return Some(step.to.clone());
    }
    let from = step.from.as_deref()?;
    let i = source.iter().position(|s| s.name == from)?;
    source.get(i + 1).map(|s| s.name.clone())
}

/// Splits a `-I` run so that its first snapshot is a step of its own.
fn split_first(steps: &mut Vec<Step>, source: &[Snapshot]) {
    let Some(first) = steps.first().cloned() else {
        return;
    };
    if first.snapshots == 1 {
        return;
    }
    let Some(name) = first_snapshot(&first, source) else {
        return;
    };
    let rest = Step {
        from: Some(name.clone()),
        bookmark: None,
        to: first.to.clone(),
        kind: TransferKind::Incremental,
        snapshots: first.snapshots - 1,
    };
    steps[0] = Step {
        from: first.from,
        bookmark: first.bookmark,
        to: name,
        kind: first.kind,
        snapshots: 1,
    };
    steps.insert(1, rest);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2026-11-22 00:00:00 UTC.
    const NOW: i64 = 1_763_769_600;

    pub(crate) fn fmt() -> SnapshotFormat {
        SnapshotFormat::new("{}-%Y%m%d%H%M%S", "bk", true).unwrap()
    }

    /// Our snapshot `d` days before NOW (guid = 1000 + d).
    fn ours(d: i64) -> Snapshot {
        let t = chrono::DateTime::from_timestamp(NOW - d * DAY, 0).unwrap();
        Snapshot {
            name: fmt().name_at(t),
            createtxg: (1000 - d) as u64,
            guid: (1000 + d) as u64,
            userrefs: None,
        }
    }

    fn foreign(name: &str, txg: u64) -> Snapshot {
        Snapshot {
            name: name.into(),
            createtxg: txg,
            guid: 5000 + txg,
            userrefs: None,
        }
    }

    pub(crate) fn target(snaps: &[Snapshot]) -> Target {
        Target {
            snapshots: snaps.iter().map(|s| (s.clone(), 0)).collect(),
            token: None,
        }
    }

    pub(crate) fn opts<'a>(f: &'a SnapshotFormat, keep: &'a Schedule) -> Options<'a> {
        Options {
            format: f,
            other_snapshots: false,
            exclude: &[],
            keep_target: keep,
            now: NOW,
            guid_check: true,
            destroy_incompatible: false,
            rollback: false,
        }
    }

    fn names(steps: &[Step]) -> Vec<(Option<String>, String, TransferKind, usize)> {
        steps
            .iter()
            .map(|s| (s.from.clone(), s.to.clone(), s.kind, s.snapshots))
            .collect()
    }

    #[test]
    fn first_transfer_is_full_then_one_stream_for_the_rest() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), ours(2), ours(1)];
        let p = plan("p/a", &src, &[], None, false, None, &opts(&f, &keep));
        assert_eq!(p.error, None);
        assert_eq!(p.common, None);
        assert_eq!(
            names(&p.steps),
            vec![
                (None, src[0].name.clone(), TransferKind::Full, 1),
                (
                    Some(src[0].name.clone()),
                    src[2].name.clone(),
                    TransferKind::Incremental,
                    2
                ),
            ]
        );
    }

    #[test]
    fn incremental_from_the_common_snapshot_and_up_to_date() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), ours(2), ours(1)];
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&target(&src[..2])),
            false,
            None,
            &opts(&f, &keep),
        );
        assert_eq!(p.common.as_deref(), Some(src[1].name.as_str()));
        assert_eq!(
            names(&p.steps),
            vec![(
                Some(src[1].name.clone()),
                src[2].name.clone(),
                TransferKind::Incremental,
                1
            )]
        );
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&target(&src)),
            false,
            None,
            &opts(&f, &keep),
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.error, None);
    }

    #[test]
    fn foreign_snapshots_break_the_stream_unless_sent() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), foreign("manual", 998), ours(1), ours(0)];
        let t = target(&src[..1]);
        let p = plan("p/a", &src, &[], Some(&t), false, None, &opts(&f, &keep));
        // -i over the foreign snapshot, then -i (a gapless pair could be -I).
        assert_eq!(
            names(&p.steps),
            vec![
                (
                    Some(src[0].name.clone()),
                    src[2].name.clone(),
                    TransferKind::Incremental,
                    1
                ),
                (
                    Some(src[2].name.clone()),
                    src[3].name.clone(),
                    TransferKind::Incremental,
                    1
                ),
            ]
        );
        let mut o = opts(&f, &keep);
        o.other_snapshots = true;
        let p = plan("p/a", &src, &[], Some(&t), false, None, &o);
        assert_eq!(
            names(&p.steps),
            vec![(
                Some(src[0].name.clone()),
                src[3].name.clone(),
                TransferKind::Incremental,
                3
            )]
        );
    }

    #[test]
    fn excluded_snapshots_are_skipped_with_the_pattern() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), ours(2), ours(1)];
        let re = [Regex::new(&src[1].name[3..11]).unwrap()];
        let mut o = opts(&f, &keep);
        o.exclude = &re;
        let p = plan("p/a", &src, &[], Some(&target(&src[..1])), false, None, &o);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].name, src[1].name);
        assert!(p.skipped[0].why.contains("--exclude-snapshot-pattern"));
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].to, src[2].name);
    }

    #[test]
    fn snapshots_the_target_would_thin_are_not_sent() {
        // A backup 40 days behind: daily snapshots, target keeps 1d1w only
        // (plus the newest): the first 32 days would be destroyed at once.
        let (f, keep) = (fmt(), Schedule::parse("1d1w").unwrap());
        let src: Vec<Snapshot> = (0..=40).rev().map(ours).collect();
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&target(&src[..1])),
            false,
            None,
            &opts(&f, &keep),
        );
        let sent: usize = p.steps.iter().map(|s| s.snapshots).sum();
        assert_eq!(sent + p.skipped.len(), 40);
        assert!(p
            .skipped
            .iter()
            .all(|s| s.why.contains("would destroy it at once")));
        // What is sent is what the target keeps: the last week, and the newest.
        assert!((7..=9).contains(&sent), "{sent} sent");
        assert_eq!(p.steps.last().unwrap().to, src[40].name);
    }

    #[test]
    fn no_common_snapshot_fails_with_the_reason() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), ours(2)];
        let mut other = src[1].clone();
        other.guid = 1;
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&target(&[other])),
            false,
            None,
            &opts(&f, &keep),
        );
        assert!(
            p.error.as_deref().unwrap().contains("another guid"),
            "{p:?}"
        );
        assert!(p.steps.is_empty());
        let mut o = opts(&f, &keep);
        o.guid_check = false;
        let mut other = src[1].clone();
        other.guid = 1;
        let p = plan("p/a", &src, &[], Some(&target(&[other])), false, None, &o);
        assert_eq!(p.error, None);
        assert_eq!(p.common.as_deref(), Some(src[1].name.as_str()));
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&target(&[foreign("x", 1)])),
            false,
            None,
            &opts(&f, &keep),
        );
        assert!(p
            .error
            .as_deref()
            .unwrap()
            .contains("none of them on the source"));
    }

    #[test]
    fn incompatible_snapshots_block_unless_destroyed() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), ours(2), ours(1)];
        let mut t = target(&src[..1]);
        t.snapshots.push((foreign("empty", 2000), 0));
        t.snapshots.push((foreign("changed", 2001), 4096));
        t.snapshots.push((foreign("later", 2002), 0));
        let p = plan("p/a", &src, &[], Some(&t), false, None, &opts(&f, &keep));
        assert_eq!(p.incompatible, vec!["changed", "later"]);
        assert!(p
            .error
            .as_deref()
            .unwrap()
            .contains("--destroy-incompatible"));
        let mut o = opts(&f, &keep);
        o.destroy_incompatible = true;
        let p = plan("p/a", &src, &[], Some(&t), false, None, &o);
        assert_eq!(p.error, None);
        assert_eq!(p.destroy, vec!["changed", "later"]);
        assert_eq!(p.rollback.as_deref(), Some(src[0].name.as_str()));
        assert_eq!(p.steps.len(), 1);
        // Raw: every snapshot after the common one blocks.
        let p = plan("p/a", &src, &[], Some(&t), true, None, &o);
        assert_eq!(p.destroy, vec!["empty", "changed", "later"]);
    }

    #[test]
    fn encryption_is_asked_only_where_raw_plans_differently() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let o = opts(&f, &keep);
        let src = [ours(2), ours(1)];
        // Up to date: raw or not, nothing to do.
        let t = target(&src);
        let p = plan("p/a", &src, &[], Some(&t), false, None, &o);
        assert!(!p.raw_matters(Some(&t)));
        assert_eq!(p, plan("p/a", &src, &[], Some(&t), true, None, &o));
        // Something to send: the flags differ.
        let t = target(&src[..1]);
        let p = plan("p/a", &src, &[], Some(&t), false, None, &o);
        assert!(p.raw_matters(Some(&t)));
        assert!(plan("p/a", &src, &[], None, false, None, &o).raw_matters(None));
        // An unchanged snapshot after the common one: fine unless raw.
        let mut t = target(&src);
        t.snapshots.push((foreign("empty", 2000), 0));
        let p = plan("p/a", &src, &[], Some(&t), false, None, &o);
        assert_eq!(p.error, None);
        assert!(p.raw_matters(Some(&t)));
        assert!(plan("p/a", &src, &[], Some(&t), true, None, &o)
            .error
            .is_some());
        // A resume token.
        let mut t = target(&src);
        t.token = Some("1-abc".into());
        assert!(plan("p/a", &src, &[], Some(&t), false, None, &o).raw_matters(Some(&t)));
    }

    #[test]
    fn resume_tokens_are_resumed_or_aborted() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), ours(2), ours(1)];
        let mut t = target(&src[..1]);
        t.token = Some("1-abc".into());
        // The token leads to the first snapshot of a -I run: split off.
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&t),
            false,
            Some(&src[1].name),
            &opts(&f, &keep),
        );
        assert_eq!(p.resume, Resume::Continue("1-abc".into()));
        assert_eq!(
            names(&p.steps),
            vec![
                (
                    Some(src[0].name.clone()),
                    src[1].name.clone(),
                    TransferKind::Resumed,
                    1
                ),
                (
                    Some(src[1].name.clone()),
                    src[2].name.clone(),
                    TransferKind::Incremental,
                    1
                ),
            ]
        );
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&t),
            false,
            Some(&src[2].name),
            &opts(&f, &keep),
        );
        assert!(matches!(&p.resume, Resume::Abort(w) if w.contains("next snapshot to send")));
        assert_eq!(p.steps[0].kind, TransferKind::Incremental);
        let p = plan("p/a", &src, &[], Some(&t), false, None, &opts(&f, &keep));
        assert!(matches!(p.resume, Resume::Abort(_)));
        // An interrupted first transfer: the target exists, without snapshots.
        let t = Target {
            snapshots: vec![],
            token: Some("1-def".into()),
        };
        let p = plan(
            "p/a",
            &src,
            &[],
            Some(&t),
            false,
            Some(&src[0].name),
            &opts(&f, &keep),
        );
        assert_eq!(p.resume, Resume::Continue("1-def".into()));
        assert_eq!(p.steps[0].kind, TransferKind::Resumed);
        assert_eq!(p.steps[0].from, None);
    }

    #[test]
    fn a_dry_run_plans_the_snapshot_zab_snap_would_take() {
        let src = [ours(2), ours(1)];
        let s = source_snapshots(&src, Some("new"), true);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[2].name.as_str(), s[2].createtxg),
            ("new", src[1].createtxg + 1)
        );
        assert_eq!(source_snapshots(&src, Some("new"), false), src.to_vec());
        assert_eq!(
            source_snapshots(&src, Some(&src[1].name), true),
            src.to_vec()
        );
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let p = plan("p/a", &[], &[], None, false, None, &opts(&f, &keep));
        assert_eq!(
            p.error.as_deref(),
            Some("no snapshots to send: run zab-snap first")
        );
    }

    #[test]
    fn rollback_goes_to_the_latest_target_snapshot() {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        let src = [ours(3), ours(2), ours(1)];
        let mut o = opts(&f, &keep);
        o.rollback = true;
        let p = plan("p/a", &src, &[], Some(&target(&src[..2])), false, None, &o);
        assert_eq!(p.rollback.as_deref(), Some(src[1].name.as_str()));
        let p = plan("p/a", &src, &[], Some(&target(&src)), false, None, &o);
        assert_eq!(p.rollback, None, "nothing to send, nothing rolled back");
    }
}
