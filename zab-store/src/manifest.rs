//! One small manifest per dataset (`PREFIX/.zab/pool/fs.json`), rewritten
//! after each of its objects is complete: what a restore and a check need
//! to know of every object, so that planning reads one object per dataset
//! and never one per object. The layout is in docs/store.md.
//!
//! Also here: the health of a dataset's chain, a pure function of its
//! manifest and of the objects listed.

use serde::{Deserialize, Serialize};

/// The format of [`Manifest`].
pub const VERSION: u32 = 1;

/// A dataset's objects in the store, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub dataset: String,
    pub objects: Vec<Entry>,
}

/// A snapshot a stream carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snap {
    pub name: String,
    pub guid: u64,
    pub createtxg: u64,
}

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Full,
    Incremental,
}

/// One object: one transfer stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its key below the store's prefix (`pool/fs@snapshot`).
    pub key: String,
    pub kind: Kind,
    /// The snapshot the stream ends at (after `@`), its guid and createtxg.
    pub snapshot: String,
    pub guid: u64,
    pub createtxg: u64,
    /// The incremental base (after `@`) and its guid; none for a full stream.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent_guid: Option<u64>,
    /// Every snapshot the stream carries, oldest first (several with `-I`).
    pub snapshots: Vec<Snap>,
    /// A raw (`zfs send -w`) stream of an encrypted dataset.
    pub raw: bool,
    /// The `--compress` type, none when stored as sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub compressor: Option<String>,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Bytes of the `zfs send` stream: the stored bytes without
    /// compression, else `zfs send -P`'s estimate.
    pub stream_bytes: u64,
    /// SHA-256 of the stored object, hex.
    pub sha256: String,
    /// When the upload completed (RFC 3339).
    pub stored: String,
}

impl Manifest {
    pub fn new(dataset: &str) -> Manifest {
        Manifest {
            version: VERSION,
            dataset: dataset.to_string(),
            objects: Vec::new(),
        }
    }

    /// Parses a manifest; one line of error.
    pub fn parse(bytes: &[u8], dataset: &str) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("the manifest of {dataset} is not valid: {e}"))?;
        if m.version != VERSION {
            return Err(format!(
                "the manifest of {dataset} has version {}; this zab reads {VERSION}",
                m.version
            ));
        }
        if m.dataset != dataset {
            return Err(format!(
                "the manifest of {dataset} names another dataset, {}",
                m.dataset
            ));
        }
        Ok(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Every snapshot in the store, oldest first, with the newest object
    /// carrying each (a snapshot stored twice counts once).
    pub fn snapshots(&self) -> Vec<&Snap> {
        let mut out: Vec<&Snap> = Vec::new();
        for e in &self.objects {
            for s in &e.snapshots {
                out.retain(|o| o.guid != s.guid);
                out.push(s);
            }
        }
        out.sort_by_key(|s| s.createtxg);
        out
    }

    /// Adds `e`, replacing an entry of the same key.
    pub fn add(&mut self, e: Entry) {
        self.objects.retain(|o| o.key != e.key);
        self.objects.push(e);
    }
}

/// Whether a snapshot's guid and an incremental's `parent_guid` agree. An
/// object read from zfs3backup's metadata has neither (guid 0, no
/// `parent_guid`): then the names alone match, as zfs3backup matches them
/// (src/zfs3backup.rs).
pub fn same_guid(guid: u64, parent_guid: Option<u64>) -> bool {
    match parent_guid {
        Some(g) => guid == 0 || guid == g,
        None => true,
    }
}

/// A chain's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "why")]
pub enum Health {
    Healthy,
    Broken(String),
}

/// The health of `m`'s chain, given the objects listed under its dataset
/// (key below the prefix, size): every object must be there at its size
/// (else "incomplete" or missing), and each incremental must continue an
/// object that is there ([`crate::chain::parent`], by name and guid; else
/// "missing parent", or "guid mismatch" when an earlier object carries
/// its parent's name with another guid).
pub fn health(m: &Manifest, listed: &[(String, u64)]) -> Health {
    let mut problems = Vec::new();
    let present = |e: &Entry| listed.iter().find(|(k, _)| k == &e.key).map(|(_, s)| *s);
    for (i, e) in m.objects.iter().enumerate() {
        match present(e) {
            None => problems.push(format!("object {} is missing", e.key)),
            Some(size) if size != e.stored_bytes => problems.push(format!(
                "object {} is incomplete ({size} bytes of {})",
                e.key, e.stored_bytes
            )),
            Some(_) => {}
        }
        let Some(p) = (e.kind == Kind::Incremental).then_some(&e.parent) else {
            continue;
        };
        let Some(p) = p else {
            problems.push(format!("{}: an incremental without a parent", e.key));
            continue;
        };
        match crate::chain::parent(m, i) {
            Some(j) if present(&m.objects[j]).is_some() => {}
            Some(_) => problems.push(format!("{}: missing parent @{p}", e.key)),
            None if m.objects[..i]
                .iter()
                .any(|o| o.snapshots.iter().any(|s| &s.name == p)) =>
            {
                problems.push(format!("{}: guid mismatch with parent @{p}", e.key))
            }
            None => problems.push(format!("{}: missing parent @{p}", e.key)),
        }
    }
    if m.objects.is_empty() {
        problems.push("no objects".into());
    }
    match problems.is_empty() {
        true => Health::Healthy,
        false => Health::Broken(problems.join("; ")),
    }
}

/// Entries for tests, here and in zab-restore, zab-send and zab-thin
/// (feature `fixtures`, a dev-dependency there).
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use super::{Entry, Kind, Snap};
    use zab_core::naming::SnapshotFormat;
    use zab_core::zfs::Snapshot;

    /// The snapshot format of the time-named fixtures: backup `off`, UTC.
    pub fn fmt() -> SnapshotFormat {
        SnapshotFormat::new("{}-%Y%m%d%H%M%S", "off", true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The name of our snapshot taken at `t` (seconds).
    pub fn name(t: i64) -> String {
        let at = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        fmt().name_at(at)
    }

    /// Our snapshot taken at `t`, as zfs lists it (guid and createtxg `t`).
    pub fn snap(t: i64) -> Snapshot {
        Snapshot {
            name: name(t),
            createtxg: t as u64,
            guid: t as u64,
            userrefs: None,
        }
    }

    /// Object `p/a@NAME` carrying our snapshots taken at `times` (guid =
    /// time), full or from the snapshot taken at `parent`; 100 bytes.
    pub fn timed(times: &[i64], parent: Option<i64>) -> Entry {
        let names: Vec<(String, u64)> = times.iter().map(|&t| (name(t), t as u64)).collect();
        let carries: Vec<(&str, u64)> = names.iter().map(|(n, g)| (n.as_str(), *g)).collect();
        let Some((&(last, guid), before)) = carries.split_last() else {
            panic!("an object carries a snapshot")
        };
        let parent = parent.map(|p| (name(p), p as u64));
        entry(
            last,
            guid,
            parent.as_ref().map(|(n, g)| (n.as_str(), *g)),
            before,
        )
    }

    /// Object `p/a@SNAP` (guid and createtxg `guid`), full or from
    /// `parent` (name, guid), carrying the snapshots `carries` before
    /// its own; 100 bytes stored.
    pub fn entry(
        snap: &str,
        guid: u64,
        parent: Option<(&str, u64)>,
        carries: &[(&str, u64)],
    ) -> Entry {
        let mut snapshots: Vec<Snap> = carries
            .iter()
            .map(|&(n, g)| Snap {
                name: n.into(),
                guid: g,
                createtxg: g,
            })
            .collect();
        snapshots.push(Snap {
            name: snap.into(),
            guid,
            createtxg: guid,
        });
        Entry {
            key: format!("p/a@{snap}"),
            kind: if parent.is_some() {
                Kind::Incremental
            } else {
                Kind::Full
            },
            snapshot: snap.into(),
            guid,
            createtxg: guid,
            parent: parent.map(|p| p.0.to_string()),
            parent_guid: parent.map(|p| p.1),
            snapshots,
            raw: false,
            compressor: None,
            stored_bytes: 100,
            stream_bytes: 100,
            sha256: "00".into(),
            stored: "2026-12-03T07:00:00+00:00".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(snap: &str, guid: u64, parent: Option<(&str, u64)>) -> Entry {
        fixtures::entry(snap, guid, parent, &[])
    }

    fn chain() -> Manifest {
        let mut m = Manifest::new("p/a");
        m.add(entry("s1", 1, None));
        m.add(entry("s2", 2, Some(("s1", 1))));
        m.add(entry("s3", 3, Some(("s2", 2))));
        m
    }

    fn all(m: &Manifest) -> Vec<(String, u64)> {
        m.objects.iter().map(|e| (e.key.clone(), 100)).collect()
    }

    #[test]
    fn a_whole_chain_is_healthy_and_round_trips() {
        let m = chain();
        assert_eq!(health(&m, &all(&m)), Health::Healthy);
        let back = Manifest::parse(&m.to_bytes(), "p/a").unwrap();
        assert_eq!(back, m);
        assert!(Manifest::parse(&m.to_bytes(), "p/b").is_err());
        assert!(Manifest::parse(b"{", "p/a").is_err());
        let names: Vec<&str> = m.snapshots().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s1", "s2", "s3"]);
    }

    #[test]
    fn a_deleted_middle_object_breaks_the_chain() {
        let m = chain();
        let listed: Vec<_> = all(&m).into_iter().filter(|(k, _)| k != "p/a@s2").collect();
        let Health::Broken(why) = health(&m, &listed) else {
            panic!("healthy")
        };
        assert!(why.contains("object p/a@s2 is missing"), "{why}");
        assert!(why.contains("p/a@s3: missing parent @s2"), "{why}");
    }

    #[test]
    fn health_walks_chains_as_a_restore_does() {
        // s4 continues @s3 of the first chain, after the second's full s5:
        // zab-restore walks it back (zab_store::chain), so it is whole.
        let mut m = chain();
        m.add(entry("s5", 5, None));
        m.add(entry("s4", 4, Some(("s3", 3))));
        assert_eq!(health(&m, &all(&m)), Health::Healthy);
        // An incremental without a parent.
        m.objects[4].parent = None;
        assert!(
            matches!(health(&m, &all(&m)), Health::Broken(w) if w.contains("without a parent"))
        );
    }

    #[test]
    fn incomplete_objects_and_guid_mismatches() {
        let mut m = chain();
        let mut listed = all(&m);
        listed[0].1 = 50;
        assert!(matches!(health(&m, &listed), Health::Broken(w) if w.contains("incomplete")));
        m.objects[2].parent_guid = Some(99);
        assert!(matches!(health(&m, &all(&m)), Health::Broken(w) if w.contains("guid mismatch")));
    }
}
