//! `--full-every` (object stores only): start a new chain with a full
//! stream when the store's current chain is old enough, or long enough, so
//! that zab-thin can drop old chains whole (docs/store.md, "Retention").
//!
//! The current chain is the one that ends at the common snapshot (the
//! newest object that carries it, walked back to its full stream,
//! zab_store::chain). Its age is the time of its full stream's snapshot
//! (from its name, else the time it was stored); its length is its
//! incrementals. A chain that does not reach a full stream is restarted
//! too.
//!
//! A chain that zab-send went on from zfs3backup's objects is walked on
//! through them (the dataset's view, zab_store::zfs3backup::view, read
//! only when the manifest's chain stops short: [`needs_view`]): its
//! length counts zfs3backup's incrementals, its age is that of
//! zfs3backup's full stream (its snapshot's name, else its LastModified
//! time), and only a zfs3backup chain that itself reaches no full stream
//! restarts it. Pure: the decision and the change of the plan are tested
//! on data.

use zab_core::naming::SnapshotFormat;
use zab_core::record::TransferKind;
use zab_core::zfs::Snapshot;
use zab_store::chain;
use zab_store::manifest::Manifest;
use zab_store::zfs3backup::described;

use crate::plan::{Plan, Step};

/// When a new chain starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullEvery {
    /// When the chain's full stream is this old (seconds).
    Age(i64),
    /// When the chain has this many incrementals.
    Count(usize),
}

/// Parses `--full-every`: a duration in zab's units (`1w`, `30d`, `12h`:
/// the grammar of every zab duration, where `m` is a month), or a bare
/// count of incrementals (`30`). Zero of either is refused.
pub fn parse(s: &str) -> Result<FullEvery, String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return match s.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "--full-every {s}: a count of incrementals is a whole number above 0"
            )),
            Ok(n) => Ok(FullEvery::Count(n)),
        };
    }
    match zab_core::schedule::parse_duration(s) {
        Ok(0) => Err(format!("--full-every {s}: a duration above 0")),
        Ok(t) => Ok(FullEvery::Age(t)),
        Err(e) => Err(format!(
            "--full-every {s}: {e} (or a count of incrementals, e.g. 30)"
        )),
    }
}

/// Why the next stream of a dataset starts a new chain, if it does: its
/// chains `m` (its manifest, or its view with zfs3backup's objects when
/// the manifest's chain goes on from them: [`needs_view`]), the common
/// snapshot `common` (name and guid), "now".
pub fn due(
    m: &Manifest,
    common: &Snapshot,
    fmt: &SnapshotFormat,
    every: FullEvery,
    now: i64,
) -> Option<String> {
    let last = chain::carrier_of(m, &common.name, common.guid)?;
    let w = chain::walk(m, last);
    if !w.complete {
        let first = &m.objects[w.entries[0]];
        return Some(match described(first) {
            true => format!(
                "the current chain does not reach a full stream (zfs3backup's chain stops at \
                 @{}: no earlier object carries its parent @{})",
                first.snapshot,
                first.parent.as_deref().unwrap_or("?")
            ),
            false => "the current chain does not reach a full stream".into(),
        });
    }
    let full = &m.objects[w.entries[0]];
    let whose = if described(full) {
        " (zfs3backup's)"
    } else {
        ""
    };
    let incrementals = w.entries.len() - 1;
    match every {
        FullEvery::Count(n) if incrementals >= n => Some(format!(
            "--full-every {n}: the chain from @{}{whose} has {incrementals} incrementals",
            full.snapshot
        )),
        FullEvery::Count(_) => None,
        FullEvery::Age(age) => {
            let t = fmt.parse(&full.snapshot).or_else(|| {
                chrono::DateTime::parse_from_rfc3339(&full.stored)
                    .ok()
                    .map(|t| t.timestamp())
            })?;
            (now - t >= age).then(|| {
                format!(
                    "--full-every: the chain's full stream @{}{whose} is {} old",
                    full.snapshot,
                    words(now - t)
                )
            })
        }
    }
}

/// Whether [`due`] needs the dataset's view, not manifest `m` alone: the
/// chain of the common snapshot `common` does not reach a full stream in
/// the manifest (it may go on through zfs3backup's objects, which no
/// manifest lists).
pub fn needs_view(m: &Manifest, common: &Snapshot) -> bool {
    chain::carrier_of(m, &common.name, common.guid).is_some_and(|i| !chain::walk(m, i).complete)
}

/// The common snapshot of plan `p` among `source`, the snapshots it was
/// made from.
pub fn common<'a>(p: &Plan, source: &'a [Snapshot]) -> Option<&'a Snapshot> {
    let c = p.common.as_deref()?;
    source.iter().find(|s| s.name == c)
}

/// Makes `p`'s first stream a full one: a full stream of the first
/// snapshot it would send, then the rest as planned (`source`: the
/// snapshots the plan was made from). Nothing changes when it sends
/// nothing, failed, or starts with a full or resumed stream.
pub fn restart(p: &mut Plan, source: &[Snapshot]) -> bool {
    let Some(first) = p.steps.first().cloned() else {
        return false;
    };
    if p.error.is_some() || first.kind != TransferKind::Incremental {
        return false;
    }
    let Some(from) = first.from.as_deref() else {
        return false;
    };
    // A -I stream carries the snapshots after its base, in order.
    let start = match first.snapshots {
        1 => first.to.clone(),
        _ => match source.iter().position(|s| s.name == from) {
            Some(i) if i + 1 < source.len() => source[i + 1].name.clone(),
            _ => return false,
        },
    };
    let mut steps = vec![Step {
        from: None,
        bookmark: None,
        to: start.clone(),
        kind: TransferKind::Full,
        snapshots: 1,
    }];
    if first.snapshots > 1 {
        steps.push(Step {
            from: Some(start.clone()),
            bookmark: None,
            to: first.to.clone(),
            kind: TransferKind::Incremental,
            snapshots: first.snapshots - 1,
        });
    }
    steps.extend(p.steps.iter().skip(1).cloned());
    p.steps = steps;
    true
}

/// An age in words: whole days, else whole hours, else seconds.
fn words(secs: i64) -> String {
    match secs {
        s if s >= 86400 => format!("{} days", s / 86400),
        s if s >= 3600 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_store::manifest::fixtures::{fmt, name, snap, timed};
    use zab_store::manifest::Entry;
    use zab_store::zfs3backup::{entries, merge, Described};

    const DAY: i64 = 86400;
    const START: i64 = 1_767_225_600;

    fn entry(t: i64, parent: Option<i64>) -> Entry {
        timed(&[t], parent)
    }

    /// A full on day 0, incrementals on days 1..days.
    fn chain(days: i64) -> Manifest {
        let mut m = Manifest::new("p/a");
        m.add(entry(START, None));
        for d in 1..days {
            m.add(entry(START + d * DAY, Some(START + (d - 1) * DAY)));
        }
        m
    }

    #[test]
    fn parses_a_duration_or_a_count() {
        assert_eq!(parse("1w"), Ok(FullEvery::Age(7 * DAY)));
        assert_eq!(parse("12h"), Ok(FullEvery::Age(12 * 3600)));
        assert_eq!(parse("30"), Ok(FullEvery::Count(30)));
        for bad in ["0", "0d", "", "1w2", "x", "-3", "1.5"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("1q").unwrap_err().contains("a count of incrementals"));
    }

    #[test]
    fn a_new_chain_when_the_full_is_old_enough() {
        let m = chain(7);
        let common = snap(START + 6 * DAY);
        let week = FullEvery::Age(7 * DAY);
        assert_eq!(due(&m, &common, &fmt(), week, START + 7 * DAY - 1), None);
        let why = due(&m, &common, &fmt(), week, START + 7 * DAY).unwrap();
        assert!(why.contains(&name(START)), "{why}");
    }

    #[test]
    fn a_new_chain_after_n_incrementals() {
        let m = chain(5);
        let common = snap(START + 4 * DAY);
        assert_eq!(due(&m, &common, &fmt(), FullEvery::Count(5), START), None);
        let why = due(&m, &common, &fmt(), FullEvery::Count(4), START).unwrap();
        assert!(why.contains("4 incrementals"), "{why}");
        // The count is of the current chain only.
        let mut m = chain(5);
        m.add(entry(START + 5 * DAY, None));
        let common = snap(START + 5 * DAY);
        assert_eq!(due(&m, &common, &fmt(), FullEvery::Count(1), START), None);
    }

    #[test]
    fn a_chain_that_reaches_no_full_is_restarted() {
        let mut m = chain(3);
        m.objects.remove(0);
        let common = snap(START + 2 * DAY);
        let why = due(&m, &common, &fmt(), FullEvery::Count(100), START).unwrap();
        assert!(why.contains("does not reach a full"), "{why}");
    }

    #[test]
    fn restart_sends_the_first_snapshot_in_full_then_the_rest() {
        let source: Vec<Snapshot> = (0..5).map(|d| snap(START + d * DAY)).collect();
        let plan = |steps: Vec<Step>| Plan {
            common: Some(name(START + DAY)),
            incompatible: vec![],
            destroy: vec![],
            rollback: None,
            resume: crate::plan::Resume::None,
            steps,
            skipped: vec![],
            error: None,
        };
        let step = |from: i64, to: i64, n: usize| Step {
            from: Some(name(START + from * DAY)),
            bookmark: None,
            to: name(START + to * DAY),
            kind: TransferKind::Incremental,
            snapshots: n,
        };
        // One -I stream of days 2..=4 becomes a full of day 2, then -I 3..=4.
        let mut p = plan(vec![step(1, 4, 3)]);
        assert!(restart(&mut p, &source));
        assert_eq!(
            p.steps,
            vec![
                Step {
                    from: None,
                    bookmark: None,
                    to: name(START + 2 * DAY),
                    kind: TransferKind::Full,
                    snapshots: 1
                },
                step(2, 4, 2)
            ]
        );
        // One -i stream: a full of its snapshot, the next steps unchanged.
        let mut p = plan(vec![step(1, 3, 1), step(3, 4, 1)]);
        assert!(restart(&mut p, &source));
        assert_eq!(p.steps[0].kind, TransferKind::Full);
        assert_eq!(p.steps[0].to, name(START + 3 * DAY));
        assert_eq!(p.steps[1], step(3, 4, 1));
        // Nothing to send: nothing changes.
        let mut p = plan(vec![]);
        assert!(!restart(&mut p, &source));
    }

    /// zfs3backup's objects of `p/a` as its metadata describe them: a
    /// full of our snapshot taken on day `days[0]`, then an incremental a
    /// day after each, each stored (LastModified) `late` seconds after its
    /// snapshot.
    fn zfs3backup(days: std::ops::Range<i64>, late: i64) -> Vec<Described> {
        days.clone()
            .map(|d| {
                let t = START + d * DAY;
                let modified = chrono::DateTime::from_timestamp(t + late, 0).unwrap();
                Described {
                    key: format!("p/a@{}", name(t)),
                    size: 100,
                    modified: modified.to_rfc3339(),
                    meta: match d == days.start {
                        true => vec![("isfull".into(), "true".into())],
                        false => vec![("parent".into(), format!("p/a@{}", name(t - DAY)))],
                    },
                }
            })
            .collect()
    }

    /// zab's manifest after going on from zfs3backup's object of day
    /// `from`: an incremental a day, up to day `to`.
    fn gone_on(from: i64, to: i64) -> Manifest {
        let mut m = Manifest::new("p/a");
        for d in from + 1..=to {
            m.add(entry(START + d * DAY, Some(START + (d - 1) * DAY)));
        }
        m
    }

    fn view(m: &Manifest, objects: &[Described]) -> Manifest {
        merge("p/a", Some(m), entries("p/a", objects))
    }

    #[test]
    fn a_chain_gone_on_from_zfs3backup_counts_from_zfs3backups_full() {
        // zfs3backup: a full on day 0, incrementals on days 1 and 2; zab's
        // on days 3 and 4.
        let m = gone_on(2, 4);
        let v = view(&m, &zfs3backup(0..3, 60));
        let common = snap(START + 4 * DAY);
        // The manifest alone does not reach a full stream: the view is read.
        assert!(needs_view(&m, &common));
        assert!(!needs_view(&v, &common));
        let why = due(&m, &common, &fmt(), FullEvery::Count(100), START).unwrap();
        assert!(why.contains("does not reach a full"), "{why}");
        // Through it: 4 incrementals from zfs3backup's full of day 0.
        assert_eq!(due(&v, &common, &fmt(), FullEvery::Count(5), START), None);
        let why = due(&v, &common, &fmt(), FullEvery::Count(4), START).unwrap();
        assert!(why.contains("4 incrementals"), "{why}");
        assert!(
            why.contains(&format!("@{} (zfs3backup's)", name(START))),
            "{why}"
        );
        // Its age: from the full's snapshot name.
        let week = FullEvery::Age(7 * DAY);
        assert_eq!(due(&v, &common, &fmt(), week, START + 7 * DAY - 1), None);
        let why = due(&v, &common, &fmt(), week, START + 7 * DAY).unwrap();
        assert!(why.contains("(zfs3backup's) is 7 days old"), "{why}");
    }

    #[test]
    fn a_zfs3backup_full_not_named_by_the_format_is_dated_when_stored() {
        let m = gone_on(2, 4);
        let mut objects = zfs3backup(0..3, 2 * DAY);
        objects[0].key = objects[0].key.replace("p/a@", "p/a@zfs3backup-");
        objects[1].meta = vec![("parent".into(), objects[0].key.clone())];
        let v = view(&m, &objects);
        let common = snap(START + 4 * DAY);
        let week = FullEvery::Age(7 * DAY);
        // Stored two days after day 0: a week old on day 9.
        assert_eq!(due(&v, &common, &fmt(), week, START + 9 * DAY - 1), None);
        assert!(due(&v, &common, &fmt(), week, START + 9 * DAY).is_some());
    }

    #[test]
    fn a_zfs3backup_chain_that_reaches_no_full_is_restarted() {
        let m = gone_on(2, 4);
        // zfs3backup's full of day 0 is not in the store.
        let mut objects = zfs3backup(0..3, 60);
        objects.remove(0);
        let v = view(&m, &objects);
        let common = snap(START + 4 * DAY);
        let why = due(&v, &common, &fmt(), FullEvery::Count(100), START).unwrap();
        assert!(why.contains("does not reach a full"), "{why}");
        assert!(
            why.contains(&format!("stops at @{}", name(START + DAY))),
            "{why}"
        );
    }

    #[test]
    fn going_on_from_zfs3backup_its_chain_is_measured_by_name() {
        // The run that goes on: no manifest yet; the common snapshot is
        // zfs3backup's last, which records no guid.
        let v = view(&Manifest::new("p/a"), &zfs3backup(0..3, 60));
        let common = snap(START + 2 * DAY);
        let why = due(&v, &common, &fmt(), FullEvery::Count(2), START).unwrap();
        assert!(why.contains("2 incrementals"), "{why}");
        assert_eq!(due(&v, &common, &fmt(), FullEvery::Count(3), START), None);
    }
}
