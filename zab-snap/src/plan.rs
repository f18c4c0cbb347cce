//! zab-snap's plan, pure: from what was read on each host, which datasets
//! get this run's snapshot and why the others don't, and the commands that
//! take it: one `zfs snapshot` per pool, host by host.
//!
//! The rules are zfs-autobackup's (`is_changed_ours`): a dataset is
//! snapshotted when it has no snapshot of ours yet, when `--min-change` is 0,
//! or when `written@<our newest snapshot>` reaches `--min-change`.

use std::collections::BTreeMap;

use zab_core::record::{SnapOutcome, SnapStatus};
use zab_core::zfs::{self, Snapshot};

use crate::gather::{Listing, Written};

/// Everything a run does, decided before anything is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// This run's snapshot name (the part after `@`).
    pub name: String,
    /// What to do with each input record; None for one this stage does not
    /// act on (not selected, or failed upstream).
    pub decisions: Vec<Option<Decision>>,
    /// The hosts with something to snapshot, in the order they were read.
    pub hosts: Vec<HostPlan>,
}

/// The snapshots to take on one host, between its hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    /// Which host: an index into the hosts that were read.
    pub host: usize,
    /// Every dataset to snapshot there (input indices, input order).
    pub datasets: Vec<usize>,
    /// One atomic `zfs snapshot` per pool, pools in name order.
    pub pools: Vec<PoolPlan>,
}

/// One `zfs snapshot` of every dataset of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    pub pool: String,
    /// Its datasets (input indices, input order).
    pub datasets: Vec<usize>,
    pub argv: Vec<String>,
}

/// The plan for snapshot `name` of the datasets read on each host
/// (`listings`, in host order); `names` are the input records' dataset
/// names, `properties` the `-o` of every snapshot.
pub fn plan(
    listings: &[Listing],
    names: &[&str],
    name: &str,
    min_change: u64,
    properties: &[(String, String)],
) -> Plan {
    let mut decisions: Vec<Option<Decision>> = vec![None; names.len()];
    let mut hosts = Vec::new();
    for (host, l) in listings.iter().enumerate() {
        for (&i, latest) in l.datasets.iter().zip(&l.latest) {
            let snaps = l.snapshots.get(names[i]).map(Vec::as_slice);
            let snaps = snaps.unwrap_or_default();
            let latest = latest.as_deref();
            decisions[i] = Some(decide(
                names[i], name, snaps, latest, &l.written, min_change,
            ));
        }
        let take: Vec<usize> = l
            .datasets
            .iter()
            .copied()
            .filter(|&i| {
                decisions[i]
                    .as_ref()
                    .is_some_and(|d| d.outcome.status == SnapStatus::WouldCreate)
            })
            .collect();
        if take.is_empty() {
            continue;
        }
        let pools = by_pool(names, &take)
            .into_iter()
            .map(|(pool, datasets)| {
                let members: Vec<&str> = datasets.iter().map(|&i| names[i]).collect();
                PoolPlan {
                    pool: pool.to_string(),
                    argv: zfs::snapshot_args(properties, &members, name),
                    datasets,
                }
            })
            .collect();
        hosts.push(HostPlan {
            host,
            datasets: take,
            pools,
        });
    }
    Plan {
        name: name.to_string(),
        decisions,
        hosts,
    }
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

/// The datasets `take` (indices into `names`), grouped by pool (pools in
/// name order, datasets in the order given): each group is one `zfs snapshot`.
fn by_pool<'a>(names: &[&'a str], take: &[usize]) -> BTreeMap<&'a str, Vec<usize>> {
    let mut pools: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in take {
        pools.entry(zfs::pool_of(names[i])).or_default().push(i);
    }
    pools
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Snapshots named `names`, oldest first.
    pub(crate) fn snaps(names: &[&str]) -> Vec<Snapshot> {
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
    fn pools_group_in_input_order() {
        let g = by_pool(&["t/b", "u/x", "t", "t/a", "u/y"], &[0, 1, 2, 3]);
        assert_eq!(g.len(), 2);
        assert_eq!(g["t"], vec![0, 2, 3]);
        assert_eq!(g["u"], vec![1]);
    }

    /// Two hosts: on the first, t/a unchanged, t/b and u/c changed, t/new
    /// without a snapshot of ours; on the second nothing changed.
    /// Record 2 is not acted on (failed upstream).
    #[test]
    fn plans_one_snapshot_per_pool_per_host_with_something_to_take() {
        let prev = "off-20260102000000";
        let names = ["t/a", "t/b", "x/failed", "u/c", "t/new", "v/d"];
        let listing = |datasets: Vec<usize>, latest: Vec<Option<&str>>, w: Written| Listing {
            snapshots: datasets
                .iter()
                .zip(&latest)
                .map(|(&i, l)| {
                    (
                        names[i].to_string(),
                        snaps(&l.iter().copied().collect::<Vec<_>>()),
                    )
                })
                .collect(),
            datasets,
            latest: latest.iter().map(|l| l.map(str::to_string)).collect(),
            written: w,
            ..Listing::default()
        };
        let first = listing(
            vec![0, 1, 3, 4],
            vec![Some(prev), Some(prev), Some(prev), None],
            written(&[
                ("t/a", prev, Some(0)),
                ("t/b", prev, Some(5)),
                ("u/c", prev, Some(9)),
            ]),
        );
        let second = listing(
            vec![5],
            vec![Some(prev)],
            written(&[("v/d", prev, Some(0))]),
        );
        let props = [("com.x:a".to_string(), "1".to_string())];
        let p = plan(&[first, second], &names, NEW, 1, &props);

        assert_eq!(p.name, NEW);
        let status: Vec<Option<SnapStatus>> = p
            .decisions
            .iter()
            .map(|d| d.as_ref().map(|d| d.outcome.status))
            .collect();
        use SnapStatus::*;
        assert_eq!(
            status,
            [
                Some(Skipped),
                Some(WouldCreate),
                None,
                Some(WouldCreate),
                Some(WouldCreate),
                Some(Skipped)
            ]
        );
        // The second host has nothing to take: no hooks, no command there.
        assert_eq!(p.hosts.len(), 1);
        let h = &p.hosts[0];
        assert_eq!((h.host, &h.datasets), (0, &vec![1, 3, 4]));
        let pools: Vec<(&str, &[usize], String)> = h
            .pools
            .iter()
            .map(|p| (p.pool.as_str(), p.datasets.as_slice(), p.argv.join(" ")))
            .collect();
        assert_eq!(
            pools,
            [
                (
                    "t",
                    &[1, 4][..],
                    format!("zfs snapshot -o com.x:a=1 t/b@{NEW} t/new@{NEW}")
                ),
                (
                    "u",
                    &[3][..],
                    format!("zfs snapshot -o com.x:a=1 u/c@{NEW}")
                ),
            ]
        );
    }

    #[test]
    fn nothing_changed_plans_no_host() {
        let prev = "off-20260102000000";
        let l = Listing {
            datasets: vec![0],
            snapshots: [("t/a".to_string(), snaps(&[prev]))].into_iter().collect(),
            latest: vec![Some(prev.to_string())],
            written: written(&[("t/a", prev, Some(0))]),
            ..Listing::default()
        };
        let p = plan(&[l], &["t/a"], NEW, 1, &[]);
        assert!(p.hosts.is_empty());
        assert_eq!(
            p.decisions[0].as_ref().unwrap().outcome.status,
            SnapStatus::Skipped
        );
    }

    #[test]
    fn allow_empty_plans_every_dataset_without_a_listing() {
        let l = Listing {
            datasets: vec![0, 1],
            latest: vec![None, None],
            ..Listing::default()
        };
        let p = plan(&[l], &["t/a", "t/b"], NEW, 0, &[]);
        assert_eq!(
            p.hosts[0].pools[0].argv.join(" "),
            format!("zfs snapshot t/a@{NEW} t/b@{NEW}")
        );
    }
}
