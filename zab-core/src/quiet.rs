//! The quiet-run cache (issue 19; docs/architecture.md, "Quiet runs"):
//! what zab-snap's last successful run found of each source dataset, so
//! that a run in which nothing changed needs no snapshot listing there.
//!
//! OpenZFS 2.2+ keeps `snapshots_changed` on every dataset: the time (in
//! seconds) a snapshot of it was last created, destroyed or renamed.
//! zab-select reads it in its one `zfs get` and puts it in the records. An
//! entry says: when `snapshots_changed` was C, our newest snapshot was L
//! and it was the dataset's newest snapshot of all. When a later run reads
//! the same C (and the same `createtxg`: the same dataset, not one made
//! again under its name), the snapshots are as they were, L is still the
//! newest, and `written` (since the newest snapshot) is `written@L`: with
//! `written` 0, zab-snap takes no snapshot, exactly as its listing and its
//! `zfs get written@L` would have decided. Anything else (no entry, no
//! `snapshots_changed` on a pool older than 2.2, another value, `written`
//! not 0) is read as without the cache.
//!
//! What makes an entry right is the order of the reads: C is read (by
//! zab-select) before the listing it is recorded with, so a change between
//! the two leaves an older C beside a newer listing, which the next run
//! finds different. A change after the listing within C's own second would
//! not show (one-second resolution): an entry is kept only when C is at
//! least [`MATURITY_SECS`] older than the listing by this machine's clock,
//! which also allows a source host's clock to be that much behind ours.
//!
//! One file per backup name and source host, in the private state
//! directory ([`crate::private::state_dir`]), written whole (a temporary
//! file in the same directory, then a rename) at the end of a successful
//! run of zab-snap that found something new, never under `--test`. A file that cannot
//! be read, is not ours (another backup, host or snapshot format) or of
//! another version is an empty cache. The cache only saves reads: a wrong
//! guess can at worst skip a snapshot zab-snap would have taken, and zab-snap
//! destroys nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::zfs::Snapshot;

/// How much older than the listing `snapshots_changed` must be for an
/// entry to be kept (seconds).
pub const MATURITY_SECS: i64 = 5;

/// The file format's version: a file of another one is not read.
const VERSION: u32 = 1;

/// What a run found of one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The dataset's `createtxg`.
    pub createtxg: u64,
    /// Its `snapshots_changed` as read before the listing.
    pub changed: u64,
    /// Our newest snapshot (the part after `@`), its newest of all.
    pub latest: String,
}

/// One backup's cache on one source host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    version: u32,
    /// Whose it is: [`key`].
    key: String,
    /// By dataset name.
    pub datasets: BTreeMap<String, Entry>,
}

/// What a dataset's record says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub createtxg: u64,
    /// None: not read (a pool older than OpenZFS 2.2 shows `-`).
    pub changed: Option<u64>,
    /// Bytes written since its newest snapshot.
    pub written: u64,
}

/// The key of a cache: the backup, the source host (None: this machine)
/// and the snapshot format (which snapshots are ours).
pub fn key(backup: &str, host: Option<&str>, format: &str) -> String {
    format!("{backup}\n{}\n{format}", host.unwrap_or(""))
}

impl Cache {
    /// An empty cache of `key`.
    pub fn new(key: &str) -> Cache {
        Cache {
            version: VERSION,
            key: key.to_string(),
            datasets: BTreeMap::new(),
        }
    }

    /// Our newest snapshot of `name`, when the cache can say it and it has
    /// nothing written since: the dataset is unchanged.
    pub fn unchanged(&self, name: &str, now: Facts) -> Option<&str> {
        let e = self.datasets.get(name)?;
        (now.changed == Some(e.changed) && now.createtxg == e.createtxg && now.written == 0)
            .then_some(e.latest.as_str())
    }
}

/// The entry of a dataset listed at `listed_at` (seconds since the epoch,
/// this machine's clock): `snaps` its snapshots oldest first, `ours` our
/// newest among them. None when the listing cannot be trusted later: no
/// `snapshots_changed`, one too recent, or a newest snapshot not ours.
pub fn entry(now: Facts, snaps: &[Snapshot], ours: Option<&str>, listed_at: i64) -> Option<Entry> {
    let changed = now.changed?;
    let old_enough = i64::try_from(changed).ok()? + MATURITY_SECS <= listed_at;
    let newest = snaps.last()?.name.as_str();
    let ours = ours?;
    (old_enough && newest == ours).then(|| Entry {
        createtxg: now.createtxg,
        changed,
        latest: ours.to_string(),
    })
}

/// A cache's file name in the state directory: `quiet-` and the backup
/// name and host, every byte but `[A-Za-z0-9._-]` as `%XX`.
pub fn file_name(backup: &str, host: Option<&str>) -> String {
    let mut name = String::from("quiet-");
    for b in format!("{backup}@{}", host.unwrap_or("")).bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => name.push(b as char),
            _ => name.push_str(&format!("%{b:02X}")),
        }
    }
    name + ".json"
}

/// Reads the cache of `key` from `path`: an empty one, and why, when the
/// file is missing, cannot be read, or is not this key's or version's.
pub fn load(path: &Path, key: &str) -> (Cache, Option<String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (Cache::new(key), Some("no cache yet".into()))
        }
        Err(e) => return (Cache::new(key), Some(format!("{}: {e}", path.display()))),
    };
    match serde_json::from_str::<Cache>(&text) {
        Ok(c) if c.version == VERSION && c.key == key => (c, None),
        Ok(_) => (
            Cache::new(key),
            Some(format!("{}: another backup's or version's", path.display())),
        ),
        Err(e) => (Cache::new(key), Some(format!("{}: {e}", path.display()))),
    }
}

/// Writes `cache` to `path` whole, readable by its owner only
/// ([`crate::state::write_atomic`]: a temporary file in the same
/// directory, then a rename over the old one).
pub fn save(path: &Path, cache: &Cache) -> Result<(), Error> {
    let text = serde_json::to_string(cache).map_err(|e| Error::Io(e.to_string()))?;
    crate::state::write_atomic(path, text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snaps(names: &[&str]) -> Vec<Snapshot> {
        names
            .iter()
            .map(|n| Snapshot {
                name: n.to_string(),
                createtxg: 1,
                guid: 1,
                userrefs: None,
            })
            .collect()
    }

    const F: Facts = Facts {
        createtxg: 7,
        changed: Some(1000),
        written: 0,
    };

    fn cache_with(name: &str, e: Entry) -> Cache {
        let mut c = Cache::new(&key("b", None, "{}-%Y"));
        c.datasets.insert(name.into(), e);
        c
    }

    #[test]
    fn an_entry_needs_an_old_enough_change_and_our_snapshot_newest() {
        let s = snaps(&["manual", "b-1", "b-2"]);
        let e = entry(F, &s, Some("b-2"), 1000 + MATURITY_SECS).unwrap();
        assert_eq!(
            (e.changed, e.createtxg, e.latest.as_str()),
            (1000, 7, "b-2")
        );
        // Within the maturity: a change later in the same second would not show.
        assert_eq!(entry(F, &s, Some("b-2"), 1000 + MATURITY_SECS - 1), None);
        // A clock behind the host's: never kept.
        assert_eq!(entry(F, &s, Some("b-2"), 900), None);
        // Not ours newest: `written` is not `written@ours`.
        let s2 = snaps(&["b-1", "b-2", "manual"]);
        assert_eq!(entry(F, &s2, Some("b-2"), 2000), None);
        // No snapshot of ours, none at all, or no snapshots_changed (pre-2.2).
        assert_eq!(entry(F, &s, None, 2000), None);
        assert_eq!(entry(F, &[], None, 2000), None);
        let old_pool = Facts { changed: None, ..F };
        assert_eq!(entry(old_pool, &s, Some("b-2"), 2000), None);
    }

    #[test]
    fn unchanged_only_when_every_fact_is_the_same_and_nothing_is_written() {
        let c = cache_with(
            "t/a",
            entry(F, &snaps(&["b-2"]), Some("b-2"), 2000).unwrap(),
        );
        assert_eq!(c.unchanged("t/a", F), Some("b-2"));
        assert_eq!(c.unchanged("t/b", F), None);
        let cases = [
            Facts {
                changed: Some(1001),
                ..F
            },
            Facts { changed: None, ..F },
            Facts { createtxg: 8, ..F },
            Facts { written: 1, ..F },
        ];
        for now in cases {
            assert_eq!(c.unchanged("t/a", now), None, "{now:?}");
        }
    }

    #[test]
    fn file_names_keep_only_safe_bytes() {
        assert_eq!(file_name("offsite1", None), "quiet-offsite1%40.json");
        assert_eq!(
            file_name("b", Some("root@host:22/x")),
            "quiet-b%40root%40host%3A22%2Fx.json"
        );
    }

    #[test]
    fn a_file_round_trips_and_anything_else_is_empty() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "../target/zab-core-tests/quiet-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name("b", None));
        let k = key("b", None, "{}-%Y");
        let c = cache_with(
            "t/a",
            entry(F, &snaps(&["b-2"]), Some("b-2"), 2000).unwrap(),
        );
        assert_eq!(load(&path, &k).0, Cache::new(&k));
        save(&path, &c).unwrap();
        assert_eq!(load(&path, &k), (c.clone(), None));
        // Another host's or format's key: empty.
        assert_eq!(
            load(&path, &key("b", Some("h"), "{}-%Y")).0.datasets.len(),
            0
        );
        assert_eq!(load(&path, &key("b", None, "x{}")).0.datasets.len(), 0);
        // A cut or corrupt file: empty, and said.
        std::fs::write(&path, "{\"version\":1,\"key\":").unwrap();
        let (empty, why) = load(&path, &k);
        assert_eq!((empty.datasets.len(), why.is_some()), (0, true));
        // No temporary file is left.
        save(&path, &c).unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
