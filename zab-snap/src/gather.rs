//! zab-snap's reads: on each source host, one listing of the datasets'
//! snapshots and one `zfs get` of the `written@…` values the plan needs
//! (neither with `--allow-empty`), the hosts in parallel.
//!
//! Nothing is changed until every host has been read: a failed listing ends
//! the run (exit 4) before any hook or snapshot runs. What to ask for is
//! decided here ([`latest_ours`], [`written_query`]), as pure functions.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::error::Error;
use zab_core::naming::SnapshotFormat;
use zab_core::zfs::{self, Snapshot};
use zab_core::Host;

use crate::cli::Config;

/// `(dataset, snapshot name) → written@name`, None where zfs showed `-`.
pub type Written = BTreeMap<(String, String), Option<u64>>;

/// What was read on one source host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Its datasets: indices into the input records, in input order.
    pub datasets: Vec<usize>,
    /// Each dataset's snapshots, oldest first; empty with `--allow-empty`.
    pub snapshots: BTreeMap<String, Vec<Snapshot>>,
    /// Each dataset's newest snapshot of ours, in `datasets` order.
    pub latest: Vec<Option<String>>,
    /// The `written@…` value of each dataset's newest snapshot of ours.
    pub written: Written,
}

/// The source hosts (None = this machine), each with its datasets as indices
/// into `names`, and what was read there, in the same order.
pub fn gather(
    config: &Config,
    names: &[&str],
    by_host: BTreeMap<Option<String>, Vec<usize>>,
) -> Result<(Vec<Host>, Vec<Listing>), Error> {
    let mut hosts = Vec::with_capacity(by_host.len());
    let mut groups = Vec::with_capacity(by_host.len());
    for (dest, datasets) in by_host {
        hosts.push(
            config
                .common
                .host(dest.as_deref())?
                .with_read_only(config.read_only),
        );
        groups.push(datasets);
    }
    // One thread per host: the hosts do not wait on each other. Errors are
    // taken in host order.
    let listings = std::thread::scope(|s| {
        let reads: Vec<_> = hosts
            .iter()
            .zip(groups)
            .map(|(host, datasets)| s.spawn(move || read(config, host, names, datasets)))
            .collect();
        reads
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok((hosts, listings))
}

/// One host's two reads: the snapshot listing, then `written@<our newest>`
/// of every dataset that has one.
fn read(
    config: &Config,
    host: &Host,
    names: &[&str],
    datasets: Vec<usize>,
) -> Result<Listing, Error> {
    let asked: Vec<&str> = datasets.iter().map(|&i| names[i]).collect();
    // With --allow-empty every dataset is snapshotted whatever it holds,
    // so the listing is skipped, as zfs-autobackup skips it.
    let snapshots = if config.min_change > 0 {
        zfs::list_snapshots(host, &asked)?
    } else {
        BTreeMap::new()
    };
    let latest: Vec<Option<String>> = asked
        .iter()
        .map(|n| {
            let snaps = snapshots.get(*n).map(Vec::as_slice).unwrap_or_default();
            latest_ours(snaps, &config.format).map(str::to_string)
        })
        .collect();
    let (wnames, wsets) = written_query(&asked, &latest, config.min_change);
    let written = if wnames.is_empty() {
        Written::new()
    } else {
        zfs::written(host, &wnames, &wsets)?
    };
    Ok(Listing {
        datasets,
        snapshots,
        latest,
        written,
    })
}

/// The name of our newest snapshot among `snaps` (oldest first).
pub fn latest_ours<'a>(snaps: &'a [Snapshot], fmt: &SnapshotFormat) -> Option<&'a str> {
    snaps
        .iter()
        .rev()
        .find(|s| fmt.is_ours(&s.name))
        .map(|s| s.name.as_str())
}

/// The one `zfs get` a host needs: the distinct snapshot names to ask
/// `written@` for, and the datasets to ask (those of `datasets` whose
/// `latest` is known, in order). Empty when nothing is needed.
pub fn written_query<'a>(
    datasets: &[&'a str],
    latest: &'a [Option<String>],
    min_change: u64,
) -> (Vec<&'a str>, Vec<&'a str>) {
    if min_change == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut names = BTreeSet::new();
    let mut asked = Vec::new();
    for (&ds, prev) in datasets.iter().zip(latest) {
        if let Some(p) = prev {
            names.insert(p.as_str());
            asked.push(ds);
        }
    }
    (names.into_iter().collect(), asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::snaps;

    fn fmt() -> SnapshotFormat {
        SnapshotFormat::new("{}-%Y%m%d%H%M%S", "off", true).unwrap()
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
    fn one_written_query_with_distinct_names() {
        let datasets = ["t/a", "t/b", "u/c", "u/d"];
        let latest = [
            Some("off-1".to_string()),
            None,
            Some("off-1".to_string()),
            Some("off-0".to_string()),
        ];
        assert_eq!(
            written_query(&datasets, &latest, 1),
            (vec!["off-0", "off-1"], vec!["t/a", "u/c", "u/d"])
        );
    }

    #[test]
    fn allow_empty_asks_no_written() {
        let latest = [Some("off-1".to_string())];
        assert_eq!(written_query(&["t/a"], &latest, 0), (vec![], vec![]));
    }
}
