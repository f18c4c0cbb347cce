//! Objects that no manifest lists, read from their S3 metadata: a bucket
//! written by zfs3backup (keys `PREFIX/pool/fs@snap`, user metadata
//! `isfull` or `is_full`, `parent`, `compressor`, `size`), or an object of
//! zab whose manifest was never written. They become manifest [`Entry`]s,
//! so that `zab-store ls`, `zab-store check`, `zab-restore` and `zab-send`
//! read one view of a dataset's chain, whoever wrote it.
//!
//! What such an entry lacks, and how it is marked: no guid (`guid` 0: zfs
//! never gives a snapshot guid 0; zab's own `guid` metadata fills it when
//! present), no `parent_guid` (its parent is matched by name, as
//! zfs3backup matches it), no createtxg (0), no SHA-256 (`sha256` empty).
//! The order of its objects comes from their `parent` links, not from
//! createtxg.
//!
//! Where a manifest and described objects are both there for a dataset,
//! the manifest wins for every key it lists (it has guids and hashes); the
//! objects it does not list are added from their metadata (docs/store.md).
//!
//! Cost: one listing of the dataset's folder, and one HEAD request per
//! object that no manifest lists (none for a store that zab alone wrote).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::location::{self, Location};
use crate::manifest::{Entry, Kind, Manifest, Snap};
use crate::store::{Listed, Store, StoreError};

/// An object no manifest lists, with its metadata (HEAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// Its key below the store's prefix (`pool/fs@snap`).
    pub key: String,
    pub size: u64,
    /// RFC 3339 (S3's LastModified).
    pub modified: String,
    /// User metadata, names in lower case.
    pub meta: Vec<(String, String)>,
}

/// Whether `e` was read from metadata (no manifest has it): it has no
/// SHA-256.
pub fn described(e: &Entry) -> bool {
    e.sha256.is_empty()
}

fn meta<'a>(d: &'a Described, name: &str) -> Option<&'a str> {
    d.meta
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The entry of object `d` of `dataset`: full when `isfull` (or the legacy
/// `is_full`) is `true`, else incremental from `parent` (`fs@snap`; the
/// part after `@` when `fs` is this dataset, else the whole name, which
/// then matches no object: a missing parent).
pub fn entry(dataset: &str, d: &Described) -> Entry {
    let snapshot = d
        .key
        .strip_prefix(dataset)
        .and_then(|r| r.strip_prefix('@'))
        .unwrap_or(&d.key)
        .to_string();
    let full = meta(d, "isfull") == Some("true") || meta(d, "is_full") == Some("true");
    let mine = format!("{dataset}@");
    let parent = match full {
        true => None,
        false => meta(d, "parent").map(|p| p.strip_prefix(&mine).unwrap_or(p).to_string()),
    };
    let guid = meta(d, "guid").and_then(|g| g.parse().ok()).unwrap_or(0);
    Entry {
        key: d.key.clone(),
        kind: if full { Kind::Full } else { Kind::Incremental },
        snapshots: vec![Snap {
            name: snapshot.clone(),
            guid,
            createtxg: 0,
        }],
        snapshot,
        guid,
        createtxg: 0,
        parent,
        parent_guid: None,
        raw: false,
        compressor: meta(d, "compressor").map(str::to_string),
        stored_bytes: d.size,
        stream_bytes: meta(d, "size").and_then(|s| s.parse().ok()).unwrap_or(0),
        sha256: String::new(),
        stored: d.modified.clone(),
    }
}

/// `dataset`'s described objects as entries, each after its parent: the
/// roots (fulls, and incrementals whose parent is not there) by date,
/// then each one's children by date, depth first. Objects in a `parent`
/// cycle (never reached from a root) come last.
pub fn entries(dataset: &str, objects: &[Described]) -> Vec<Entry> {
    let all: Vec<Entry> = objects.iter().map(|d| entry(dataset, d)).collect();
    let by_name: HashMap<&str, usize> = all
        .iter()
        .enumerate()
        .map(|(i, e)| (e.snapshot.as_str(), i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, e) in all.iter().enumerate() {
        match e.parent.as_deref().and_then(|p| by_name.get(p)) {
            Some(&j) if e.kind == Kind::Incremental && j != i => {
                children.entry(j).or_default().push(i)
            }
            _ => roots.push(i),
        }
    }
    let date = |&i: &usize| (all[i].stored.clone(), all[i].key.clone());
    roots.sort_by_key(date);
    for v in children.values_mut() {
        v.sort_by_key(date);
    }
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        order.push(i);
        if let Some(c) = children.get(&i) {
            stack.extend(c.iter().rev());
        }
    }
    let mut rest: Vec<usize> = (0..all.len()).filter(|i| !seen.contains(i)).collect();
    rest.sort_by_key(date);
    order.extend(rest);
    order.into_iter().map(|i| all[i].clone()).collect()
}

/// One view of `dataset`'s chain: the manifest's objects (it wins for the
/// keys it lists) and the described ones. Described objects go first (zab
/// went on from a zfs3backup chain), except those that go on from a
/// snapshot of the manifest (zfs3backup went on from zab's), which go
/// after it.
pub fn merge(dataset: &str, m: Option<&Manifest>, described: Vec<Entry>) -> Manifest {
    let mut out = m.cloned().unwrap_or_else(|| Manifest::new(dataset));
    let listed: HashSet<&str> = out.objects.iter().map(|e| e.key.as_str()).collect();
    let zab: HashSet<&str> = out
        .objects
        .iter()
        .flat_map(|e| e.snapshots.iter().map(|s| s.name.as_str()))
        .collect();
    let mut before = Vec::new();
    let mut after: Vec<Entry> = Vec::new();
    let mut carried_before: HashSet<String> = HashSet::new();
    for e in described {
        if listed.contains(e.key.as_str()) {
            continue;
        }
        let goes_after = match (&e.kind, &e.parent) {
            (Kind::Incremental, Some(p)) => {
                after.iter().any(|a| &a.snapshot == p)
                    || (zab.contains(p.as_str()) && !carried_before.contains(p))
            }
            _ => false,
        };
        if goes_after {
            after.push(e);
        } else {
            carried_before.insert(e.snapshot.clone());
            before.push(e);
        }
    }
    before.append(&mut out.objects);
    before.append(&mut after);
    out.objects = before;
    out
}

/// The dataset of object `key` (`pool/fs@snap`, below the prefix); None for
/// a manifest or any other key.
pub fn dataset_of(key: &str) -> Option<&str> {
    if key.starts_with(location::MANIFESTS) {
        return None;
    }
    let (ds, snap) = key.split_once('@')?;
    match ds.is_empty() || snap.is_empty() || snap.contains('/') {
        true => None,
        false => Some(ds),
    }
}

/// The objects of `listed` that `manifests` do not list, by dataset (S3
/// only: a directory has no metadata, and zfs3backup writes only to S3).
pub fn unlisted<'a>(
    location: &Location,
    listed: &'a [Listed],
    manifests: &[Manifest],
) -> BTreeMap<String, Vec<&'a Listed>> {
    let mut out: BTreeMap<String, Vec<&Listed>> = BTreeMap::new();
    if let Location::Dir { .. } = location {
        return out;
    }
    let known: HashSet<&str> = manifests
        .iter()
        .flat_map(|m| m.objects.iter().map(|e| e.key.as_str()))
        .collect();
    for l in listed {
        if known.contains(l.key.as_str()) {
            continue;
        }
        if let Some(ds) = dataset_of(&l.key) {
            out.entry(ds.to_string()).or_default().push(l);
        }
    }
    out
}

/// HEADs each of `objects` (one request each).
pub fn describe(store: &Store, objects: &[&Listed]) -> Result<Vec<Described>, StoreError> {
    objects
        .iter()
        .map(|l| {
            Ok(Described {
                key: l.key.clone(),
                size: l.size,
                modified: l.modified.clone(),
                meta: store.metadata(&l.key)?,
            })
        })
        .collect()
}

/// Every dataset's view of the store, by name: one read per manifest
/// listed in `listed` (the store's one listing), one HEAD per object that
/// none lists. `only`: that dataset alone.
pub fn views(
    store: &Store,
    listed: &[Listed],
    only: Option<&str>,
) -> Result<BTreeMap<String, Manifest>, StoreError> {
    let mut manifests = Vec::new();
    for l in listed {
        let Some(ds) = location::manifest_dataset(&l.key) else {
            continue;
        };
        if only.is_some_and(|o| o != ds) {
            continue;
        }
        let bytes = store
            .get_bytes(&l.key)?
            .ok_or_else(|| StoreError(format!("{}: vanished", store.url_of(&l.key))))?;
        manifests.push(Manifest::parse(&bytes, ds).map_err(StoreError)?);
    }
    let mut extra = unlisted(store.location(), listed, &manifests);
    let mut out = BTreeMap::new();
    for m in manifests {
        let d = match extra.remove(&m.dataset) {
            Some(objs) => entries(&m.dataset, &describe(store, &objs)?),
            None => Vec::new(),
        };
        out.insert(m.dataset.clone(), merge(&m.dataset, Some(&m), d));
    }
    for (ds, objs) in extra {
        if only.is_some_and(|o| o != ds) {
            continue;
        }
        let d = entries(&ds, &describe(store, &objs)?);
        out.insert(ds.clone(), merge(&ds, None, d));
    }
    Ok(out)
}

/// One dataset's view, as zab-restore reads it: its manifest (one read),
/// one listing of its folder, a HEAD per object the manifest does not
/// list. None when the store has nothing of it.
pub fn view(store: &Store, dataset: &str) -> Result<Option<Manifest>, StoreError> {
    let m = match store.get_bytes(&location::manifest_key(dataset))? {
        Some(bytes) => Some(Manifest::parse(&bytes, dataset).map_err(StoreError)?),
        None => None,
    };
    let dir = dataset.rsplit_once('/').map_or("", |(d, _)| d);
    let listed: Vec<Listed> = store
        .list(dir)?
        .into_iter()
        .filter(|l| dataset_of(&l.key) == Some(dataset))
        .collect();
    let manifests: Vec<Manifest> = m.iter().cloned().collect();
    let extra = unlisted(store.location(), &listed, &manifests);
    let d = match extra.get(dataset) {
        Some(objs) => entries(dataset, &describe(store, objs)?),
        None => Vec::new(),
    };
    if m.is_none() && d.is_empty() {
        return Ok(None);
    }
    Ok(Some(merge(dataset, m.as_ref(), d)))
}

/// How much of an object [`stream_guid`] reads: the stream's BEGIN record
/// (312 bytes as sent), compressed, with room to spare.
const HEAD_READ: u64 = 64 << 10;

/// The guid of the snapshot that object `e`'s stream carries, read from
/// its first bytes (one ranged GET; zfs3backup's `pigz1`/`pigz4` objects
/// inflated here): what zfs3backup never recorded. None when those bytes
/// are no stream this reads (another compressor, a compound stream whose
/// first substream lies further on).
pub fn stream_guid(store: &Store, e: &Entry) -> Result<Option<u64>, StoreError> {
    let head = store.get_head(&e.key, HEAD_READ.min(e.stored_bytes))?;
    Ok(guid_of_head(&head, e.compressor.as_deref()))
}

/// The snapshot guid in a stream's first bytes `head`, stored through
/// `compressor` (none, or zfs3backup's gzip ones).
pub fn guid_of_head(head: &[u8], compressor: Option<&str>) -> Option<u64> {
    let inflated;
    let stream = match compressor {
        None => head,
        Some("pigz1" | "pigz4") => {
            inflated = gunzip_head(head)?;
            &inflated
        }
        Some(_) => return None,
    };
    match crate::check::begin(stream) {
        crate::check::Begin::Single { toguid, .. } => Some(toguid),
        _ => None,
    }
}

/// What the start of gzip member `data` (cut short anywhere) inflates to,
/// at most [`crate::check::HEAD`] bytes; None when it is no gzip member.
fn gunzip_head(data: &[u8]) -> Option<Vec<u8>> {
    // RFC 1952: ID1 ID2 CM FLG MTIME(4) XFL OS, then the fields FLG names.
    if data.len() < 10 || data[..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let flg = data[3];
    let mut at = 10usize;
    if flg & 4 != 0 {
        // FEXTRA: its length, then that many bytes.
        let n = u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]);
        at += 2 + usize::from(n);
    }
    for bit in [8u8, 16] {
        // FNAME, FCOMMENT: zero-terminated.
        if flg & bit != 0 {
            at += data.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flg & 2 != 0 {
        at += 2; // FHCRC
    }
    let body = data.get(at..)?;
    // Cut short, the inflater stops with what it has made so far.
    Some(
        miniz_oxide::inflate::decompress_to_vec_with_limit(body, crate::check::HEAD)
            .unwrap_or_else(|e| e.output),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{health, Health};

    fn obj(key: &str, modified: &str, meta: &[(&str, &str)]) -> Described {
        Described {
            key: key.into(),
            size: 100,
            modified: modified.into(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A bucket as zfs3backup writes it: a full, two incrementals, listed
    /// in key order (not chain order), one compressed.
    fn bucket() -> Vec<Described> {
        vec![
            obj(
                "tank/fs@daily-3",
                "2026-01-03T00:00:00+00:00",
                &[("size", "1000"), ("parent", "tank/fs@daily-2")],
            ),
            obj(
                "tank/fs@daily-1",
                "2026-01-01T00:00:00+00:00",
                &[
                    ("size", "5000"),
                    ("isfull", "true"),
                    ("compressor", "pigz1"),
                ],
            ),
            obj(
                "tank/fs@daily-2",
                "2026-01-02T00:00:00+00:00",
                &[("size", "900"), ("parent", "tank/fs@daily-1")],
            ),
        ]
    }

    fn names(m: &[Entry]) -> Vec<&str> {
        m.iter().map(|e| e.snapshot.as_str()).collect()
    }

    fn sizes(m: &Manifest) -> Vec<(String, u64)> {
        m.objects.iter().map(|e| (e.key.clone(), 100)).collect()
    }

    #[test]
    fn zfs3backup_metadata_become_entries_in_chain_order() {
        let e = entries("tank/fs", &bucket());
        assert_eq!(names(&e), ["daily-1", "daily-2", "daily-3"]);
        assert_eq!(e[0].kind, Kind::Full);
        assert_eq!(e[0].compressor.as_deref(), Some("pigz1"));
        assert_eq!(e[0].stream_bytes, 5000);
        assert_eq!(e[0].stored_bytes, 100);
        assert_eq!(e[1].kind, Kind::Incremental);
        assert_eq!(e[1].parent.as_deref(), Some("daily-1"));
        assert_eq!((e[1].guid, e[1].parent_guid), (0, None));
        assert!(e.iter().all(described));
        let m = merge("tank/fs", None, e);
        assert_eq!(health(&m, &sizes(&m)), Health::Healthy);
    }

    #[test]
    fn legacy_is_full_and_anything_else_is_incremental() {
        let d = obj("p/a@s", "t", &[("is_full", "true")]);
        assert_eq!(entry("p/a", &d).kind, Kind::Full);
        let d = obj("p/a@s", "t", &[("isfull", "false"), ("parent", "p/a@r")]);
        assert_eq!(entry("p/a", &d).kind, Kind::Incremental);
        // A parent of another dataset keeps its whole name: no object has it.
        let d = obj("p/a@s", "t", &[("parent", "p/b@r")]);
        assert_eq!(entry("p/a", &d).parent.as_deref(), Some("p/b@r"));
        // zab's own metadata give the guid.
        let d = obj("p/a@s", "t", &[("isfull", "true"), ("guid", "42")]);
        assert_eq!(entry("p/a", &d).guid, 42);
    }

    #[test]
    fn a_missing_parent_or_a_cycle_is_broken() {
        let mut b = bucket();
        b.remove(2); // daily-2
        let m = merge("tank/fs", None, entries("tank/fs", &b));
        let Health::Broken(why) = health(&m, &sizes(&m)) else {
            panic!("healthy")
        };
        assert!(
            why.contains("tank/fs@daily-3: missing parent @daily-2"),
            "{why}"
        );
        let cycle = vec![
            obj("p/a@x", "1", &[("parent", "p/a@y")]),
            obj("p/a@y", "2", &[("parent", "p/a@x")]),
        ];
        let m = merge("p/a", None, entries("p/a", &cycle));
        assert_eq!(m.objects.len(), 2);
        assert!(matches!(health(&m, &sizes(&m)), Health::Broken(_)));
    }

    fn zab_entry(snap: &str, guid: u64, parent: Option<(&str, u64)>) -> Entry {
        Entry {
            key: format!("tank/fs@{snap}"),
            kind: match parent {
                Some(_) => Kind::Incremental,
                None => Kind::Full,
            },
            snapshot: snap.into(),
            guid,
            createtxg: guid,
            parent: parent.map(|p| p.0.to_string()),
            parent_guid: parent.map(|p| p.1),
            snapshots: vec![Snap {
                name: snap.into(),
                guid,
                createtxg: guid,
            }],
            raw: false,
            compressor: None,
            stored_bytes: 100,
            stream_bytes: 100,
            sha256: "ab".into(),
            stored: "2026-01-05T00:00:00+00:00".into(),
        }
    }

    #[test]
    fn zab_going_on_from_zfs3backup_is_one_chain_and_the_manifest_wins() {
        let mut m = Manifest::new("tank/fs");
        m.add(zab_entry("daily-4", 4, Some(("daily-3", 3))));
        m.add(zab_entry("daily-5", 5, Some(("daily-4", 4))));
        // zab's own object carries zfs3backup's names too: the manifest wins.
        let mut b = bucket();
        b.push(obj(
            "tank/fs@daily-4",
            "2026-01-04T00:00:00+00:00",
            &[("parent", "tank/fs@daily-3"), ("guid", "4")],
        ));
        let d = entries("tank/fs", &b);
        let v = merge("tank/fs", Some(&m), d);
        assert_eq!(
            names(&v.objects),
            ["daily-1", "daily-2", "daily-3", "daily-4", "daily-5"]
        );
        assert!(!described(&v.objects[3]), "the manifest's entry");
        assert_eq!(health(&v, &sizes(&v)), Health::Healthy);
        // Without the zfs3backup objects, zab's first incremental has no parent.
        assert!(matches!(health(&m, &sizes(&m)), Health::Broken(_)));
    }

    #[test]
    fn zfs3backup_going_on_from_zab_comes_after_the_manifest() {
        let mut m = Manifest::new("tank/fs");
        m.add(zab_entry("daily-1", 1, None));
        let d = entries(
            "tank/fs",
            &[
                obj("tank/fs@daily-3", "3", &[("parent", "tank/fs@daily-2")]),
                obj("tank/fs@daily-2", "2", &[("parent", "tank/fs@daily-1")]),
            ],
        );
        let v = merge("tank/fs", Some(&m), d);
        assert_eq!(names(&v.objects), ["daily-1", "daily-2", "daily-3"]);
        assert_eq!(health(&v, &sizes(&v)), Health::Healthy);
    }

    #[test]
    fn keys_of_objects_and_their_datasets() {
        assert_eq!(dataset_of("tank/fs@s1"), Some("tank/fs"));
        assert_eq!(dataset_of(".zab/tank/fs.json"), None);
        assert_eq!(dataset_of("tank/fs"), None);
        assert_eq!(dataset_of("@s"), None);
        assert_eq!(dataset_of("a@b/c"), None);
    }

    /// A full `zfs send` stream recorded in the lab (zab-restore's
    /// fixture) and its snapshot's guid, read from its BEGIN record.
    const STREAM: &[u8] = include_bytes!("../../zab-restore/fixtures/resume/full.zs");
    fn stream_toguid() -> u64 {
        u64::from_le_bytes(STREAM[40..48].try_into().unwrap())
    }

    /// `data` as one gzip member with the optional fields pigz or gzip may
    /// write (a name, an extra field, a header CRC) and no trailer needed.
    fn gzip(data: &[u8], flg: u8) -> Vec<u8> {
        let mut g = vec![0x1f, 0x8b, 8, flg, 1, 2, 3, 4, 0, 3];
        if flg & 4 != 0 {
            g.extend([3, 0, b'x', b'y', b'z']);
        }
        if flg & 8 != 0 {
            g.extend(b"fs@snap\0");
        }
        if flg & 16 != 0 {
            g.extend(b"a comment\0");
        }
        if flg & 2 != 0 {
            g.extend([0xaa, 0xbb]);
        }
        g.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        g
    }

    #[test]
    fn the_guid_of_a_plain_or_gzipped_stream_cut_short() {
        let guid = stream_toguid();
        assert_ne!(guid, 0);
        assert_eq!(guid_of_head(&STREAM[..1000], None), Some(guid));
        for flg in [0, 2 | 4 | 8 | 16, 8] {
            let z = gzip(STREAM, flg);
            // The first bytes only, as the ranged GET reads them.
            for cut in [z.len(), 2000, 600] {
                assert_eq!(
                    guid_of_head(&z[..cut], Some("pigz4")),
                    Some(guid),
                    "flags {flg}, {cut} bytes"
                );
            }
            assert_eq!(guid_of_head(&z[..30], Some("pigz1")), None);
        }
    }

    #[test]
    fn no_guid_from_what_is_not_such_a_stream() {
        let z = gzip(STREAM, 0);
        // Another compressor than zfs3backup's, or none where it has one.
        assert_eq!(guid_of_head(&z, Some("zstd")), None);
        assert_eq!(guid_of_head(&z, None), None);
        assert_eq!(guid_of_head(STREAM, Some("pigz1")), None);
        // No stream inside the gzip; a truncated header.
        assert_eq!(guid_of_head(&gzip(b"hello", 0), Some("pigz1")), None);
        assert_eq!(guid_of_head(&z[..12], Some("pigz1")), None);
        assert_eq!(guid_of_head(&gzip(STREAM, 8)[..14], Some("pigz1")), None);
        assert_eq!(guid_of_head(b"", None), None);
    }
}
