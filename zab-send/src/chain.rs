//! `--full-every` (object stores only): start a new chain with a full
//! stream when the store's current chain is old enough, or long enough, so
//! that zab-thin can drop old chains whole (docs/store.md, "Retention").
//!
//! The current chain is the one that ends at the common snapshot (the
//! newest object that carries it, walked back to its full stream,
//! zab_store::chain). Its age is the time of its full stream's snapshot
//! (from its name, else the time it was stored); its length is its
//! incrementals. A chain that does not reach a full stream is restarted
//! too. Pure: the decision and the change of the plan are tested on data.

use zab_core::naming::SnapshotFormat;
use zab_core::record::TransferKind;
use zab_core::zfs::Snapshot;
use zab_store::chain;
use zab_store::manifest::Manifest;

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
/// manifest `m`, the common snapshot `common` (name and guid), "now".
pub fn due(
    m: &Manifest,
    common: &Snapshot,
    fmt: &SnapshotFormat,
    every: FullEvery,
    now: i64,
) -> Option<String> {
    let last = chain::carrier(m, common.guid)?;
    let w = chain::walk(m, last);
    if !w.complete {
        return Some("the current chain does not reach a full stream".into());
    }
    let full = &m.objects[w.entries[0]];
    let incrementals = w.entries.len() - 1;
    match every {
        FullEvery::Count(n) if incrementals >= n => Some(format!(
            "--full-every {n}: the chain from @{} has {incrementals} incrementals",
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
                    "--full-every: the chain's full stream @{} is {} old",
                    full.snapshot,
                    words(now - t)
                )
            })
        }
    }
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
}
