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
//!
//! zab-send's cache ([`send`]) follows the same rules with both sides'
//! facts; it only ever confirms that nothing is to be done.

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
    escaped("quiet-", &format!("{backup}@{}", host.unwrap_or("")))
}

/// `prefix`, `text` with every byte but `[A-Za-z0-9._-]` as `%XX`, `.json`.
fn escaped(prefix: &str, text: &str) -> String {
    let mut name = String::from(prefix);
    for b in text.bytes() {
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
    read(path, Cache::new(key), |c: &Cache| {
        (c.version, c.key.as_str())
    })
}

/// Reads a cache file into `empty`'s type: `empty`, and why, when the
/// file is missing, cannot be read, or is not `empty`'s key's or version's
/// (`id`: a cache's version and key).
fn read<T: serde::de::DeserializeOwned>(
    path: &Path,
    empty: T,
    id: impl Fn(&T) -> (u32, &str),
) -> (T, Option<String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (empty, Some("no cache yet".into()))
        }
        Err(e) => return (empty, Some(format!("{}: {e}", path.display()))),
    };
    match serde_json::from_str::<T>(&text) {
        Ok(c) if id(&c) == id(&empty) => (c, None),
        Ok(_) => (
            empty,
            Some(format!("{}: another backup's or version's", path.display())),
        ),
        Err(e) => (empty, Some(format!("{}: {e}", path.display()))),
    }
}

/// Writes `cache` to `path` whole, readable by its owner only
/// ([`crate::state::write_atomic`]: a temporary file in the same
/// directory, then a rename over the old one).
pub fn save(path: &Path, cache: &impl Serialize) -> Result<(), Error> {
    let text = serde_json::to_string(cache).map_err(|e| Error::Io(e.to_string()))?;
    crate::state::write_atomic(path, text.as_bytes(), 0o600)
}

/// zab-send's cache (docs/architecture.md, "Quiet runs"): per selected
/// source dataset, what both sides were when a listing run found nothing
/// to do for it, and the `send` field it wrote.
pub mod send {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde::{Deserialize, Serialize};

    use crate::record::{SendOutcome, SendStatus};
    use crate::zfs::Facts;

    /// The file format's version.
    const VERSION: u32 = 1;

    /// One dataset's entry.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Entry {
        /// The source's `createtxg` and `snapshots_changed`, from the
        /// records (read by zab-select before the listing).
        pub source_createtxg: u64,
        pub source_changed: u64,
        /// The target dataset (full name), its `createtxg` and
        /// `snapshots_changed` (read after the listing, see [`entry`]).
        pub target: String,
        pub target_createtxg: u64,
        pub target_changed: u64,
        /// The `send` field the listing run wrote: up to date, its common
        /// snapshot the newest of both sides.
        pub send: SendOutcome,
    }

    impl Entry {
        /// The common snapshot, full name on the target.
        pub fn common(&self) -> Option<String> {
            let c = self.send.common.as_deref()?;
            Some(format!("{}@{c}", self.target))
        }
    }

    /// One backup's cache for one source host and target.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Cache {
        version: u32,
        key: String,
        /// By source dataset name.
        pub datasets: BTreeMap<String, Entry>,
    }

    impl Cache {
        pub fn new(key: &str) -> Cache {
            Cache {
                version: VERSION,
                key: key.to_string(),
                datasets: BTreeMap::new(),
            }
        }

        /// The names whose facts [`Cache::quiet`] needs: each entry's target
        /// and its common snapshot there.
        pub fn names(&self) -> Vec<String> {
            let mut names = Vec::new();
            for e in self.datasets.values() {
                names.push(e.target.clone());
                names.extend(e.common());
            }
            names
        }

        /// The `send` field of source dataset `name`, when the cache says
        /// nothing is to be done for it: the source's facts now (`source`:
        /// createtxg and `snapshots_changed`, and whether this run took a
        /// snapshot of it), the target side's as read now (`target`, by
        /// name), and with `holds`, the common snapshot still held.
        pub fn quiet(
            &self,
            name: &str,
            target_name: &str,
            source: (u64, Option<u64>, bool),
            target: &BTreeMap<String, Facts>,
            holds: bool,
        ) -> Option<&SendOutcome> {
            let e = self.datasets.get(name)?;
            let (txg, changed, snapped) = source;
            let t = target.get(&e.target)?;
            let c = target.get(&e.common()?)?;
            let same = e.target == target_name
                && !snapped
                && txg == e.source_createtxg
                && changed == Some(e.source_changed)
                && t.createtxg == e.target_createtxg
                && t.changed == Some(e.target_changed)
                && t.token.is_none()
                && (!holds || c.userrefs.is_some_and(|r| r > 0));
            same.then_some(&e.send)
        }
    }

    /// What a listing run knew of one dataset it did not change.
    #[derive(Debug, Clone, Copy)]
    pub struct Listed<'a> {
        /// The source's createtxg and `snapshots_changed` (records), and
        /// when its listing started (this machine's clock, seconds).
        pub source: (u64, Option<u64>),
        pub source_listed_at: i64,
        /// The newest snapshot of ours on the source, as listed.
        pub source_newest: Option<&'a str>,
        /// The target's snapshots as listed, oldest first, with holds.
        pub target_snaps: &'a [(&'a str, Option<u64>)],
        /// When the target's listing started.
        pub target_listed_at: i64,
        /// The `send` field written.
        pub send: &'a SendOutcome,
    }

    /// The entry of a dataset after a listing run, `after` the target's
    /// facts read after that run (the dataset's and its common
    /// snapshot's, by name). None unless the run found nothing to do:
    /// up to date, no error, nothing skipped, incompatible or noted, the
    /// common snapshot our newest on the source and the newest on the
    /// target, no resume token, and with `holds` the common snapshot
    /// held and no other target snapshot held (a listing run would
    /// release it). `snapshots_changed` must be at least
    /// [`super::MATURITY_SECS`] older than each side's listing: the
    /// source's was read before it (zab-select), the target's after it, so
    /// an old value read after the listing shows that nothing changed
    /// since, during the listing included.
    pub fn entry(
        l: &Listed,
        target: &str,
        after: &BTreeMap<String, Facts>,
        holds: bool,
    ) -> Option<Entry> {
        let s = l.send;
        let common = s.common.as_deref()?;
        let (src_txg, src_changed) = l.source;
        let src_changed = src_changed?;
        let t = after.get(target)?;
        let tgt_changed = t.changed?;
        let c = after.get(&format!("{target}@{common}"))?;
        let held = |r: Option<u64>| r.is_some_and(|r| r > 0);
        let ok = worth_reading(l, target, holds)
            && t.token.is_none()
            && (!holds || held(c.userrefs))
            && mature(tgt_changed, l.target_listed_at);
        ok.then(|| Entry {
            source_createtxg: src_txg,
            source_changed: src_changed,
            target: target.to_string(),
            target_createtxg: t.createtxg,
            target_changed: tgt_changed,
            send: s.clone(),
        })
    }

    /// Whether `changed` is at least [`super::MATURITY_SECS`] older than `at`.
    fn mature(changed: u64, at: i64) -> bool {
        i64::try_from(changed).is_ok_and(|c| c + super::MATURITY_SECS <= at)
    }

    /// What [`entry`] asks of the listing run alone: whether the target's
    /// facts are worth reading after it (so that a run that cannot keep
    /// an entry costs no `zfs get`).
    pub fn worth_reading(l: &Listed, target: &str, holds: bool) -> bool {
        let s = l.send;
        let Some(common) = s.common.as_deref() else {
            return false;
        };
        let up_to_date = s.status == SendStatus::UpToDate
            && s.target == target
            && s.transfers.is_empty()
            && s.skipped.is_empty()
            && s.incompatible.is_empty()
            && s.notes.is_empty();
        let Some((newest, others)) = l.target_snaps.split_last() else {
            return false;
        };
        let held = |r: Option<u64>| r.is_some_and(|r| r > 0);
        let holds_ok = !holds || (held(newest.1) && !others.iter().any(|(_, r)| held(*r)));
        up_to_date
            && l.source_newest == Some(common)
            && newest.0 == common
            && holds_ok
            && l.source.1.is_some_and(|c| mature(c, l.source_listed_at))
    }

    /// The key of zab-send's cache: the backup, the source host, the
    /// target host and path, and `options` (what else a plan depends on).
    pub fn key(
        backup: &str,
        source: Option<&str>,
        target: Option<&str>,
        path: &str,
        options: &str,
    ) -> String {
        format!(
            "{backup}\n{}\n{}\n{path}\n{options}",
            source.unwrap_or(""),
            target.unwrap_or("")
        )
    }

    /// Its file name: `quiet-send-`, then the backup, hosts and path
    /// escaped as in [`super::file_name`].
    pub fn file_name(
        backup: &str,
        source: Option<&str>,
        target: Option<&str>,
        path: &str,
    ) -> String {
        super::escaped(
            "quiet-send-",
            &format!(
                "{backup}@{}>{}:{path}",
                source.unwrap_or(""),
                target.unwrap_or("")
            ),
        )
    }

    /// Reads the cache of `key` at `path` (as [`super::load`]).
    pub fn load(path: &Path, key: &str) -> (Cache, Option<String>) {
        super::read(path, Cache::new(key), |c: &Cache| {
            (c.version, c.key.as_str())
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn up_to_date() -> SendOutcome {
            SendOutcome {
                target: "t/b/a".into(),
                status: SendStatus::UpToDate,
                common: Some("b-2".into()),
                transfers: vec![],
                skipped: vec![],
                incompatible: vec![],
                notes: vec![],
                target_createtxg: None,
                target_snapshots_changed: None,
            }
        }

        fn facts(changed: Option<u64>, txg: u64, userrefs: Option<u64>) -> Facts {
            Facts {
                changed,
                createtxg: txg,
                token: None,
                userrefs,
            }
        }

        /// The target's facts after a run: the dataset and its common snapshot.
        fn after() -> BTreeMap<String, Facts> {
            BTreeMap::from([
                ("t/b/a".to_string(), facts(Some(1000), 40, None)),
                ("t/b/a@b-2".to_string(), facts(None, 50, Some(1))),
            ])
        }

        const SNAPS: &[(&str, Option<u64>)] = &[("b-1", Some(0)), ("b-2", Some(1))];

        fn listed(send: &SendOutcome) -> Listed<'_> {
            Listed {
                source: (7, Some(900)),
                source_listed_at: 2000,
                source_newest: Some("b-2"),
                target_snaps: SNAPS,
                target_listed_at: 2000,
                send,
            }
        }

        #[test]
        fn an_entry_only_where_nothing_was_to_be_done() {
            let send = up_to_date();
            let e = entry(&listed(&send), "t/b/a", &after(), true).unwrap();
            assert_eq!(
                (
                    e.source_createtxg,
                    e.source_changed,
                    e.target_createtxg,
                    e.target_changed
                ),
                (7, 900, 40, 1000)
            );
            assert_eq!(e.send, send);
            assert_eq!(e.common().as_deref(), Some("t/b/a@b-2"));
            let none = |l: &Listed, after: &BTreeMap<String, Facts>, holds: bool| {
                assert_eq!(entry(l, "t/b/a", after, holds), None, "{l:?} {after:?}")
            };
            // Something sent, planned, failed, noted, incompatible.
            for change in [
                |s: &mut SendOutcome| s.status = SendStatus::Sent,
                |s: &mut SendOutcome| s.status = SendStatus::Planned,
                |s: &mut SendOutcome| s.status = SendStatus::Failed,
                |s: &mut SendOutcome| s.notes.push("created".into()),
                |s: &mut SendOutcome| s.incompatible.push("x".into()),
                |s: &mut SendOutcome| s.common = None,
                |s: &mut SendOutcome| s.target = "t/b/other".into(),
            ] {
                let mut s = up_to_date();
                change(&mut s);
                none(&listed(&s), &after(), true);
            }
            // The source's newest of ours is not the common snapshot.
            none(
                &Listed {
                    source_newest: Some("b-3"),
                    ..listed(&send)
                },
                &after(),
                true,
            );
            // The target has a newer snapshot than the common one.
            let newer: &[(&str, Option<u64>)] = &[("b-2", Some(1)), ("x", Some(0))];
            none(
                &Listed {
                    target_snaps: newer,
                    ..listed(&send)
                },
                &after(),
                true,
            );
            // Another snapshot held (a listing run releases ours there).
            let stale: &[(&str, Option<u64>)] = &[("b-1", Some(1)), ("b-2", Some(1))];
            none(
                &Listed {
                    target_snaps: stale,
                    ..listed(&send)
                },
                &after(),
                true,
            );
            assert!(entry(
                &Listed {
                    target_snaps: stale,
                    ..listed(&send)
                },
                "t/b/a",
                &after(),
                false
            )
            .is_some());
            // The common snapshot not held: a listing run holds it.
            let mut a = after();
            a.get_mut("t/b/a@b-2").unwrap().userrefs = Some(0);
            none(&listed(&send), &a, true);
            assert!(entry(&listed(&send), "t/b/a", &a, false).is_some());
            // A resume token on the target.
            let mut a = after();
            a.get_mut("t/b/a").unwrap().token = Some("1-abc".into());
            none(&listed(&send), &a, true);
            // No snapshots_changed (older than OpenZFS 2.2) on either side.
            let mut a = after();
            a.get_mut("t/b/a").unwrap().changed = None;
            none(&listed(&send), &a, true);
            none(
                &Listed {
                    source: (7, None),
                    ..listed(&send)
                },
                &after(),
                true,
            );
            // Too recent a change on either side, by the maturity rule.
            let at = 1000 + super::super::MATURITY_SECS;
            assert!(entry(
                &Listed {
                    target_listed_at: at,
                    ..listed(&send)
                },
                "t/b/a",
                &after(),
                true
            )
            .is_some());
            none(
                &Listed {
                    target_listed_at: at - 1,
                    ..listed(&send)
                },
                &after(),
                true,
            );
            none(
                &Listed {
                    source_listed_at: 900 + super::super::MATURITY_SECS - 1,
                    ..listed(&send)
                },
                &after(),
                true,
            );
            // The target's facts not read.
            none(&listed(&send), &BTreeMap::new(), true);
        }

        #[test]
        fn quiet_only_when_every_fact_is_the_entrys() {
            let send = up_to_date();
            let mut c = Cache::new("k");
            c.datasets.insert(
                "s/a".into(),
                entry(&listed(&send), "t/b/a", &after(), true).unwrap(),
            );
            assert_eq!(c.names(), vec!["t/b/a", "t/b/a@b-2"]);
            let src = (7, Some(900), false);
            assert_eq!(c.quiet("s/a", "t/b/a", src, &after(), true), Some(&send));
            assert_eq!(c.quiet("s/b", "t/b/b", src, &after(), true), None);
            // Another target name (another mapping): list.
            assert_eq!(c.quiet("s/a", "t/b/x", src, &after(), true), None);
            // The source: snapshotted by this run, changed, made again.
            for s in [
                (7, Some(900), true),
                (7, Some(901), false),
                (8, Some(900), false),
                (7, None, false),
            ] {
                assert_eq!(c.quiet("s/a", "t/b/a", s, &after(), true), None, "{s:?}");
            }
            // The target: a snapshot made or destroyed, the dataset made
            // again, a resume token, the hold released, not read.
            let changes: [fn(&mut BTreeMap<String, Facts>); 6] = [
                |a| a.get_mut("t/b/a").unwrap().changed = Some(1001),
                |a| a.get_mut("t/b/a").unwrap().createtxg = 41,
                |a| a.get_mut("t/b/a").unwrap().token = Some("1-x".into()),
                |a| a.get_mut("t/b/a@b-2").unwrap().userrefs = Some(0),
                |a| {
                    a.remove("t/b/a@b-2");
                },
                |a| {
                    a.remove("t/b/a");
                },
            ];
            for change in changes {
                let mut a = after();
                change(&mut a);
                assert_eq!(c.quiet("s/a", "t/b/a", src, &a, true), None, "{a:?}");
            }
            // Without holds, a released hold is no change.
            let mut a = after();
            a.get_mut("t/b/a@b-2").unwrap().userrefs = Some(0);
            assert_eq!(c.quiet("s/a", "t/b/a", src, &a, false), Some(&send));
        }

        #[test]
        fn keys_and_file_names_tell_hosts_and_paths_apart() {
            let k = |s, t, p, o| key("b", s, t, p, o);
            let keys = [
                k(None, None, "t/b", "o"),
                k(Some("h"), None, "t/b", "o"),
                k(None, Some("h"), "t/b", "o"),
                k(None, None, "t/c", "o"),
                k(None, None, "t/b", "o2"),
            ];
            let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
            assert_eq!(distinct.len(), keys.len());
            assert_eq!(
                file_name("b", None, Some("root@h"), "t/b"),
                "quiet-send-b%40%3Eroot%40h%3At%2Fb.json"
            );
            assert_ne!(
                file_name("b", Some("h"), None, "t/b"),
                file_name("b", None, Some("h"), "t/b")
            );
        }
    }
}

/// zab-thin's cache (docs/architecture.md, "Quiet runs"): per selected
/// source dataset, both sides' facts and snapshots as a listing run that
/// destroyed nothing there found them, and the target tree's datasets. A
/// later run whose facts are all the entries' plans from the cached
/// snapshots at its own time, and lists only when that plan would destroy
/// anything: the cache never decides a destroy.
pub mod thin {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde::{Deserialize, Serialize};

    use crate::zfs::Snapshot;

    /// The file format's version.
    const VERSION: u32 = 1;

    /// One snapshot as listed: name (after `@`), createtxg, guid.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Snap(pub String, pub u64, pub u64);

    /// One side of a dataset: its facts and its snapshots, oldest first.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Side {
        pub createtxg: u64,
        /// `snapshots_changed`, read before the listing.
        pub changed: u64,
        pub snapshots: Vec<Snap>,
    }

    impl Side {
        /// The side of a dataset listed at `listed_at` (this machine's
        /// clock, seconds): None without `snapshots_changed` (older than
        /// OpenZFS 2.2) or when it is less than [`super::MATURITY_SECS`]
        /// older than the listing.
        pub fn new(
            createtxg: u64,
            changed: Option<u64>,
            listed_at: i64,
            snaps: &[Snapshot],
        ) -> Option<Side> {
            let changed = changed?;
            let mature =
                i64::try_from(changed).is_ok_and(|c| c + super::MATURITY_SECS <= listed_at);
            mature.then(|| Side {
                createtxg,
                changed,
                snapshots: snaps
                    .iter()
                    .map(|s| Snap(s.name.clone(), s.createtxg, s.guid))
                    .collect(),
            })
        }

        /// Whether facts read now (createtxg, `snapshots_changed`) are this
        /// side's: the same dataset, no snapshot made, destroyed or renamed.
        pub fn same(&self, createtxg: u64, changed: Option<u64>) -> bool {
            self.createtxg == createtxg && changed == Some(self.changed)
        }

        /// The snapshots, as a listing gives them (no holds counted).
        pub fn listing(&self) -> Vec<Snapshot> {
            self.snapshots
                .iter()
                .map(|Snap(name, createtxg, guid)| Snapshot {
                    name: name.clone(),
                    createtxg: *createtxg,
                    guid: *guid,
                    userrefs: None,
                })
                .collect()
        }
    }

    /// One selected source dataset's entry.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Entry {
        pub source: Side,
        /// With a TARGET-PATH: the target dataset (full name) and its side.
        pub target: Option<(String, Side)>,
    }

    /// One backup's cache for one source host and target.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Cache {
        version: u32,
        key: String,
        /// By source dataset name.
        pub datasets: BTreeMap<String, Entry>,
        /// With a TARGET-PATH: every dataset of the target tree as listed.
        pub tree: Vec<String>,
    }

    impl Cache {
        pub fn new(key: &str) -> Cache {
            Cache {
                version: VERSION,
                key: key.to_string(),
                datasets: BTreeMap::new(),
                tree: Vec::new(),
            }
        }
    }

    /// The key: the backup, the source host, the target host and path
    /// (none in snapshot-only mode), and `options` (what else the plan
    /// depends on: the schedules, the snapshot format, ...).
    pub fn key(
        backup: &str,
        source: Option<&str>,
        target: Option<&str>,
        path: Option<&str>,
        options: &str,
    ) -> String {
        format!(
            "{backup}\n{}\n{}\n{}\n{options}",
            source.unwrap_or(""),
            target.unwrap_or(""),
            path.unwrap_or("")
        )
    }

    /// Its file name: `quiet-thin-`, then the backup, hosts and path
    /// escaped as in [`super::file_name`].
    pub fn file_name(
        backup: &str,
        source: Option<&str>,
        target: Option<&str>,
        path: Option<&str>,
    ) -> String {
        super::escaped(
            "quiet-thin-",
            &format!(
                "{backup}@{}>{}:{}",
                source.unwrap_or(""),
                target.unwrap_or(""),
                path.unwrap_or("")
            ),
        )
    }

    /// Reads the cache of `key` at `path` (as [`super::load`]).
    pub fn load(path: &Path, key: &str) -> (Cache, Option<String>) {
        super::read(path, Cache::new(key), |c: &Cache| {
            (c.version, c.key.as_str())
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn snap(name: &str) -> Snapshot {
            Snapshot {
                name: name.into(),
                createtxg: 5,
                guid: 9,
                userrefs: Some(1),
            }
        }

        #[test]
        fn a_side_needs_snapshots_changed_old_enough() {
            let at = 1000 + super::super::MATURITY_SECS;
            let s = Side::new(7, Some(1000), at, &[snap("a")]).unwrap();
            assert_eq!(s.snapshots, vec![Snap("a".into(), 5, 9)]);
            // The listing as it was, holds not counted.
            assert_eq!(
                s.listing(),
                vec![Snapshot {
                    userrefs: None,
                    ..snap("a")
                }]
            );
            assert_eq!(Side::new(7, Some(1000), at - 1, &[]), None);
            assert_eq!(Side::new(7, None, at, &[]), None);
            assert!(s.same(7, Some(1000)));
            for (txg, changed) in [(8, Some(1000)), (7, Some(1001)), (7, None)] {
                assert!(!s.same(txg, changed), "{txg} {changed:?}");
            }
        }

        #[test]
        fn keys_and_file_names_tell_hosts_and_paths_apart() {
            let k = |s, t, p, o| key("b", s, t, p, o);
            let keys = [
                k(None, None, Some("t/b"), "o"),
                k(Some("h"), None, Some("t/b"), "o"),
                k(None, Some("h"), Some("t/b"), "o"),
                k(None, None, Some("t/c"), "o"),
                k(None, None, None, "o"),
                k(None, None, Some("t/b"), "o2"),
            ];
            let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
            assert_eq!(distinct.len(), keys.len());
            assert_eq!(
                file_name("b", None, Some("root@h"), Some("t/b")),
                "quiet-thin-b%40%3Eroot%40h%3At%2Fb.json"
            );
            assert_ne!(
                file_name("b", None, None, Some("t/b")),
                super::super::send::file_name("b", None, None, "t/b")
            );
        }
    }
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
