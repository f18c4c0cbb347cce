//! The pure part of zab-snap: from a snapshot listing and the `written@…`
//! values, which datasets get this run's snapshot, and why the others don't.
//!
//! The rules are zfs-autobackup's (`is_changed_ours`): a dataset is
//! snapshotted when it has no snapshot of ours yet, when `--min-change` is 0,
//! or when `written@<our newest snapshot>` reaches `--min-change`.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::naming::SnapshotFormat;
use zab_core::record::{SnapOutcome, SnapStatus};
use zab_core::zfs::Snapshot;

/// `(dataset, snapshot name) → written@name`, None where zfs showed `-`.
pub type Written = BTreeMap<(String, String), Option<u64>>;

/// The name of our newest snapshot among `snaps` (oldest first).
pub fn latest_ours<'a>(snaps: &'a [Snapshot], fmt: &SnapshotFormat) -> Option<&'a str> {
    snaps
        .iter()
        .rev()
        .find(|s| fmt.is_ours(&s.name))
        .map(|s| s.name.as_str())
}

/// The one `zfs get` a run needs: the distinct snapshot names to ask
/// `written@` for, and the datasets to ask. Empty when nothing is needed.
pub fn written_query(
    latest: &[(String, Option<String>)],
    min_change: u64,
) -> (Vec<String>, Vec<String>) {
    if min_change == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut names = BTreeSet::new();
    let mut datasets = Vec::new();
    for (ds, prev) in latest {
        if let Some(p) = prev {
            names.insert(p.clone());
            datasets.push(ds.clone());
        }
    }
    (names.into_iter().collect(), datasets)
}

/// What to do with one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Status `would-create` (to be taken), `skipped` or `failed`.
    pub outcome: SnapOutcome,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Decides one dataset: `new` is this run's snapshot name, `snaps` the
/// dataset's snapshots (oldest first), `latest` our newest among them.
pub fn decide(
    dataset: &str,
    new: &str,
    snaps: &[Snapshot],
    latest: Option<&str>,
    written: &Written,
    min_change: u64,
) -> Decision {
    let mut outcome = SnapOutcome {
        name: new.to_string(),
        status: SnapStatus::WouldCreate,
        previous: latest.map(str::to_string),
        written: None,
        reason: None,
    };
    if let (Some(prev), true) = (latest, min_change > 0) {
        // None: the snapshot went away since the listing; take a new one.
        let w = written
            .get(&(dataset.to_string(), prev.to_string()))
            .copied()
            .flatten();
        outcome.written = w;
        if let Some(w) = w.filter(|&w| w < min_change) {
            outcome.status = SnapStatus::Skipped;
            outcome.reason = Some(if w == 0 {
                format!("no changes since {prev}")
            } else {
                format!("{w} bytes written since {prev}, below --min-change {min_change}")
            });
            return Decision {
                outcome,
                error: None,
            };
        }
    }
    if snaps.iter().any(|s| s.name == new) {
        outcome.status = SnapStatus::Failed;
        return Decision {
            outcome,
            error: Some(format!(
                "{dataset}@{new} already exists (another run in the same second?)"
            )),
        };
    }
    Decision {
        outcome,
        error: None,
    }
}

/// The datasets to snapshot, grouped by pool (pools in name order, datasets
/// in input order): each group is one `zfs snapshot`.
pub fn by_pool<'a>(datasets: impl IntoIterator<Item = &'a str>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut pools: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in datasets {
        pools.entry(zab_core::zfs::pool_of(d)).or_default().push(d);
    }
    pools
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt() -> SnapshotFormat {
        SnapshotFormat::new("{}-%Y%m%d%H%M%S", "off", true).unwrap()
    }

    fn snaps(names: &[&str]) -> Vec<Snapshot> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Snapshot {
                name: n.to_string(),
                createtxg: 10 + i as u64,
                guid: 100 + i as u64,
                userrefs: None,
            })
            .collect()
    }

    const NEW: &str = "off-20261122120000";

    fn written(pairs: &[(&str, &str, Option<u64>)]) -> Written {
        pairs
            .iter()
            .map(|(d, s, w)| ((d.to_string(), s.to_string()), *w))
            .collect()
    }

    #[test]
    fn newest_of_ours_ignores_foreign_and_other_backups() {
        let s = snaps(&[
            "off-20260101000000",
            "off-20260102000000",
            "other-20260103000000",
            "manual",
            "off-2026",
        ]);
        assert_eq!(latest_ours(&s, &fmt()), Some("off-20260102000000"));
        assert_eq!(latest_ours(&snaps(&["manual"]), &fmt()), None);
        assert_eq!(latest_ours(&[], &fmt()), None);
    }

    #[test]
    fn no_snapshot_of_ours_is_always_taken() {
        let d = decide(
            "t/a",
            NEW,
            &snaps(&["manual"]),
            None,
            &Written::new(),
            1 << 30,
        );
        assert_eq!(d.outcome.status, SnapStatus::WouldCreate);
        assert_eq!(d.outcome.previous, None);
        assert_eq!(d.error, None);
    }

    #[test]
    fn min_change_threshold_is_inclusive() {
        let prev = "off-20260102000000";
        let s = snaps(&[prev]);
        for (w, min, status) in [
            (0, 1, SnapStatus::Skipped),
            (1, 1, SnapStatus::WouldCreate),
            (4095, 4096, SnapStatus::Skipped),
            (4096, 4096, SnapStatus::WouldCreate),
            (4097, 4096, SnapStatus::WouldCreate),
        ] {
            let wr = written(&[("t/a", prev, Some(w))]);
            let d = decide("t/a", NEW, &s, Some(prev), &wr, min);
            assert_eq!(d.outcome.status, status, "written {w}, min {min}");
            assert_eq!(d.outcome.written, Some(w));
        }
        let wr = written(&[("t/a", prev, Some(0))]);
        let d = decide("t/a", NEW, &s, Some(prev), &wr, 1);
        assert_eq!(
            d.outcome.reason.as_deref(),
            Some("no changes since off-20260102000000")
        );
        let wr = written(&[("t/a", prev, Some(10))]);
        let d = decide("t/a", NEW, &s, Some(prev), &wr, 100);
        assert_eq!(
            d.outcome.reason.as_deref(),
            Some("10 bytes written since off-20260102000000, below --min-change 100")
        );
    }

    #[test]
    fn allow_empty_takes_every_dataset_without_asking_written() {
        let prev = "off-20260102000000";
        let d = decide("t/a", NEW, &snaps(&[prev]), Some(prev), &Written::new(), 0);
        assert_eq!(d.outcome.status, SnapStatus::WouldCreate);
        assert_eq!(d.outcome.written, None);
        let latest = vec![("t/a".to_string(), Some(prev.to_string()))];
        assert_eq!(written_query(&latest, 0), (vec![], vec![]));
    }

    #[test]
    fn a_vanished_previous_snapshot_means_take_one() {
        let prev = "off-20260102000000";
        let wr = written(&[("t/a", prev, None)]);
        let d = decide("t/a", NEW, &snaps(&[prev]), Some(prev), &wr, 1);
        assert_eq!(d.outcome.status, SnapStatus::WouldCreate);
    }

    #[test]
    fn an_existing_name_fails_that_dataset() {
        let d = decide("t/a", NEW, &snaps(&[NEW]), Some(NEW), &Written::new(), 0);
        assert_eq!(d.outcome.status, SnapStatus::Failed);
        assert!(d
            .error
            .unwrap()
            .contains("t/a@off-20261122120000 already exists"));
    }

    #[test]
    fn one_written_query_with_distinct_names() {
        let latest = vec![
            ("t/a".to_string(), Some("off-1".to_string())),
            ("t/b".to_string(), None),
            ("u/c".to_string(), Some("off-1".to_string())),
            ("u/d".to_string(), Some("off-0".to_string())),
        ];
        assert_eq!(
            written_query(&latest, 1),
            (
                vec!["off-0".to_string(), "off-1".to_string()],
                vec!["t/a".to_string(), "u/c".to_string(), "u/d".to_string()]
            )
        );
    }

    #[test]
    fn pools_group_in_input_order() {
        let g = by_pool(["t/b", "u/x", "t", "t/a"]);
        assert_eq!(g.len(), 2);
        assert_eq!(g["t"], vec!["t/b", "t", "t/a"]);
        assert_eq!(g["u"], vec!["u/x"]);
    }
}
