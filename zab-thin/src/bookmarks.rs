//! Our bookmarks on the source (zab-send makes one after each transfer,
//! issue 20): with a TARGET-PATH, those that no longer match a snapshot of
//! the target (by guid) are destroyed, the newest of ours always kept.
//!
//! Ours are named as zfs-autobackup 4.0 names them, `SNAPSHOT_GUID`
//! (`zab_core::zfs::bookmark_name`), where SNAPSHOT is a name of ours by
//! the snapshot format and GUID the TARGET-PATH dataset's: a bookmark of
//! another target, of another backup, or made by hand is never touched.
//! Nothing is decided without the target dataset's listing (a source whose
//! target is not there keeps all its bookmarks). One `zfs destroy ds#bm`
//! per bookmark (zfs destroys one bookmark per name; the snapshots' channel
//! program cannot take them: `zfs.sync.destroy` of `ds#bm` gives ENOENT on
//! OpenZFS 2.3.2, tried in the lab); `--test` and `--no-thinning` only say
//! what would go.

use std::collections::BTreeSet;

use zab_core::cli::Log;
use zab_core::naming::SnapshotFormat;
use zab_core::zfs::{self, Snapshot};

use crate::cli::Zfs;
use crate::gather::{Hosts, Listed};
use crate::plan::{Job, SOURCE};

/// Of a source dataset's `bookmarks` (oldest first), ours for the target
/// whose TARGET-PATH has guid `target_guid` that match none of the target
/// dataset's snapshots (`target`) by guid, the newest of ours excepted.
pub fn stale(
    bookmarks: &[Snapshot],
    target: &[Snapshot],
    target_guid: u64,
    fmt: &SnapshotFormat,
) -> Vec<String> {
    let ours: Vec<&Snapshot> = bookmarks
        .iter()
        .filter(|b| zfs::bookmarked_snapshot(&b.name, target_guid).is_some_and(|s| fmt.is_ours(s)))
        .collect();
    let on_target: BTreeSet<u64> = target.iter().map(|s| s.guid).collect();
    let newest = ours.iter().map(|b| b.createtxg).max();
    ours.iter()
        .filter(|b| Some(b.createtxg) != newest && !on_target.contains(&b.guid))
        .map(|b| b.name.clone())
        .collect()
}

/// Sets each source job's stale bookmarks ([`stale`]), with a TARGET-PATH
/// whose guid and dataset were listed.
pub fn mark(jobs: &mut [Job], config: &Zfs, listed: &Listed) {
    let (Some(t), Some(tc)) = (&listed.target, &config.target) else {
        return;
    };
    let Some(&guid) = t.tree.guids.get(&tc.path) else {
        return;
    };
    for job in jobs.iter_mut().filter(|j| j.side == SOURCE) {
        let Some((i, false)) = job.record else {
            continue;
        };
        let (Some(bms), Some(tname)) = (listed.bookmarks.get(&i), t.map.get(&i)) else {
            continue;
        };
        if let Some(tsnaps) = t.tree.snapshots.get(tname) {
            job.bookmarks = stale(bms, tsnaps, guid, &config.format);
        }
    }
}

/// Says what goes (`--verbose`), then, when `act`, destroys each job's
/// stale bookmarks; a failure fails that job.
pub fn destroy(jobs: &mut [Job], hosts: &Hosts, act: bool, log: &Log) {
    for j in jobs.iter_mut().filter(|j| !j.bookmarks.is_empty()) {
        for b in &j.bookmarks {
            log.verbose(format!(
                "{} {}#{b}: Destroying bookmark (no target snapshot has its guid)",
                j.side, j.dataset
            ));
        }
        if !act || j.error.is_some() {
            continue;
        }
        for b in &j.bookmarks {
            let argv = zfs::destroy::bookmark_args(&j.dataset, b);
            if let Err(e) = hosts.get(j.host).output(&argv) {
                let why = format!("{} destroying bookmark {}#{b}: {e}", j.side, j.dataset);
                log.error(why.clone());
                j.error = Some(why);
                break;
            }
        }
        j.done = j.error.is_none() && (j.done || j.destroy.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt() -> SnapshotFormat {
        SnapshotFormat::new("{}-%Y%m%d%H%M%S", "bk", true).unwrap()
    }

    fn s(name: &str, txg: u64, guid: u64) -> Snapshot {
        Snapshot::new(name, txg, guid)
    }

    #[test]
    fn ours_that_match_no_target_snapshot_go_the_newest_stays() {
        let bms = [
            // Ours, its snapshot thinned on the target: goes.
            s("bk-20261101000000_7", 1, 11),
            // Ours, still on the target: stays.
            s("bk-20261102000000_7", 2, 12),
            // Another target's, another backup's, by hand: never touched.
            s("bk-20261101000000_8", 1, 11),
            s("other-20261101000000_7", 1, 11),
            s("manual", 1, 11),
            // Ours, not on the target, but the newest of ours: stays.
            s("bk-20261104000000_7", 4, 14),
        ];
        let target = [s("bk-20261102000000", 2, 12), s("bk-20261103000000", 3, 13)];
        assert_eq!(stale(&bms, &target, 7, &fmt()), ["bk-20261101000000_7"]);
        // Matched by guid, not name: a target snapshot of that name with
        // another guid does not keep it.
        let target = [s("bk-20261102000000", 2, 99)];
        assert_eq!(
            stale(&bms, &target, 7, &fmt()),
            ["bk-20261101000000_7", "bk-20261102000000_7"]
        );
        // One of ours alone is the newest.
        assert!(stale(&bms[..1], &[], 7, &fmt()).is_empty());
        assert!(stale(&[], &target, 7, &fmt()).is_empty());
    }
}
