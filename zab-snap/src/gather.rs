//! zab-snap's reads: on each source host, one listing of the datasets'
//! snapshots and one `zfs get` of the `written@…` values the plan needs
//! (neither with `--allow-empty`), the hosts in parallel. A dataset the
//! quiet-run cache vouches for (unchanged since a run that listed it,
//! cache.rs and zab_core::quiet) is in neither: its newest snapshot of
//! ours is the cache's, with nothing written since. A host whose datasets
//! are all such needs no process.
//!
//! Nothing is changed until every host has been read: a failed listing ends
//! the run (exit 4) before any hook or snapshot runs. What to ask for is
//! decided here ([`latest_ours`], [`written_query`]), as pure functions.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::error::Error;
use zab_core::naming::SnapshotFormat;
use zab_core::zfs::{self, Snapshot};
use zab_core::Host;

use crate::cache::Caches;
use crate::cli::Config;
use zab_core::quiet::Facts;

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
    /// The datasets (indices) the quiet-run cache answered for, unlisted.
    pub cached: BTreeSet<usize>,
    /// When the listing started (seconds since the epoch, this machine's
    /// clock); None when nothing was listed.
    pub listed_at: Option<i64>,
}

/// The source hosts (None = this machine), each with its datasets as indices
/// into `names`, and what was read there, in the same order.
pub fn gather(
    config: &Config,
    names: &[&str],
    by_host: BTreeMap<Option<String>, Vec<usize>>,
    caches: &Caches,
    facts: &[Facts],
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
        let hits: BTreeMap<usize, String> = match caches.of(&dest) {
            Some(c) => datasets
                .iter()
                .filter_map(|&i| Some((i, c.unchanged(names[i], facts[i])?.to_string())))
                .collect(),
            None => BTreeMap::new(),
        };
        groups.push((datasets, hits));
    }
    // One thread per host: the hosts do not wait on each other. Errors are
    // taken in host order.
    let listings = std::thread::scope(|s| {
        let reads: Vec<_> = hosts
            .iter()
            .zip(groups)
            .map(|(host, (datasets, hits))| {
                s.spawn(move || read(config, host, names, datasets, hits))
            })
            .collect();
        reads
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok((hosts, listings))
}

/// One host's two reads: the snapshot listing, then `written@<our newest>`
/// of every dataset that has one; neither for the datasets of `hits` (our
/// newest snapshot by the quiet-run cache, nothing written since).
fn read(
    config: &Config,
    host: &Host,
    names: &[&str],
    datasets: Vec<usize>,
    hits: BTreeMap<usize, String>,
) -> Result<Listing, Error> {
    let listed: Vec<usize> = datasets
        .iter()
        .copied()
        .filter(|i| !hits.contains_key(i))
        .collect();
    let asked: Vec<&str> = listed.iter().map(|&i| names[i]).collect();
    // With --allow-empty every dataset is snapshotted whatever it holds,
    // so the listing is skipped, as zfs-autobackup skips it.
    let listed_at = chrono::Utc::now().timestamp();
    let snapshots = if config.min_change > 0 && !asked.is_empty() {
        zfs::list_snapshots(host, &asked)?
    } else {
        BTreeMap::new()
    };
    let latest_listed: Vec<Option<String>> = asked
        .iter()
        .map(|n| {
            let snaps = snapshots.get(*n).map(Vec::as_slice).unwrap_or_default();
            latest_ours(snaps, &config.format).map(str::to_string)
        })
        .collect();
    let (wnames, wsets) = written_query(&asked, &latest_listed, config.min_change);
    let mut written = if wnames.is_empty() {
        Written::new()
    } else {
        zfs::written(host, &wnames, &wsets)?
    };
    let mut from_listing = listed.iter().zip(latest_listed);
    let latest = datasets
        .iter()
        .map(|i| match hits.get(i) {
            Some(l) => Some(l.clone()),
            None => from_listing.next().and_then(|(_, l)| l),
        })
        .collect();
    for (&i, l) in &hits {
        written.insert((names[i].to_string(), l.clone()), Some(0));
    }
    Ok(Listing {
        datasets,
        snapshots,
        latest,
        written,
        cached: hits.into_keys().collect(),
        listed_at: (!asked.is_empty() && config.min_change > 0).then_some(listed_at),
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
