//! The sink of an object store (TARGET-PATH `s3://bucket/prefix` or
//! `file:///dir`): each step's stream, `zfs send` on the source host (then
//! the send pipes and `--compress`, through zab-ratelimit with `--rate`),
//! is uploaded as one object `pool/fs@snapshot` by zab-store's multipart
//! put. The upload completes only when the source side succeeded: a
//! `zfs send` that failed or was stopped aborts it, so no truncated object
//! ever appears. Then the dataset's manifest is rewritten with the new
//! object (docs/store.md).
//!
//! The target listing of a store is its manifests, one read per dataset
//! ([`target_tree`]); a dataset without one may go on from a chain that
//! zfs3backup left in the store ([`zfs3backup_tree`]).

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use zab_core::error::Error;
use zab_core::record::StoredObject;
use zab_core::zfs::{DatasetType, Snapshot};
use zab_core::Host;
use zab_store::location::{manifest_key, object_key};
use zab_store::manifest::{Entry, Kind, Manifest, Snap};
use zab_store::store::{Stored, Upload};
use zab_store::Store;

use crate::board::Board;
use crate::listing::TargetDs;
use crate::plan::Target;
use crate::sink::{Receive, Sink};
use crate::stream::{self, StreamSpec};
use crate::transfer::{self, Outcome, Running, SourceSide};

/// The planner's target tree.
type Tree = BTreeMap<String, TargetDs>;
/// The manifests, by dataset in the store.
type Manifests = BTreeMap<String, Manifest>;

/// Checks the store (a missing bucket or directory, refused credentials, an
/// unwritable directory: exit 4 before anything is sent), then reads the
/// manifests of `datasets` (names in the store): one request each. Returns
/// the tree the planner reads (each dataset in the store with its
/// snapshots, none with a resume token) and the manifests. A dry run
/// (`--test`, `--plan`) writes nothing, not even the directory's probe.
pub fn target_tree(
    store: &Store,
    datasets: &[&str],
    dry: bool,
) -> Result<(Tree, Manifests), Error> {
    store.check(!dry).map_err(|e| Error::Store(e.to_string()))?;
    let mut tree = BTreeMap::new();
    let mut manifests = BTreeMap::new();
    for ds in datasets {
        let key = manifest_key(ds);
        let Some(bytes) = store
            .get_bytes(&key)
            .map_err(|e| Error::Store(e.to_string()))?
        else {
            continue;
        };
        let m = Manifest::parse(&bytes, ds).map_err(Error::Store)?;
        let snapshots = m
            .snapshots()
            .into_iter()
            .map(|s| {
                (
                    Snapshot {
                        name: s.name.clone(),
                        createtxg: s.createtxg,
                        guid: s.guid,
                        userrefs: None,
                    },
                    0,
                )
            })
            .collect();
        tree.insert(
            ds.to_string(),
            TargetDs {
                kind: DatasetType::Filesystem,
                target: Target {
                    snapshots,
                    token: None,
                },
                guid: None,
            },
        );
        manifests.insert(ds.to_string(), m);
    }
    Ok((tree, manifests))
}

/// The snapshots of a zfs3backup chain in the store that the source has,
/// matched by name: oldest first, with the source's guid and createtxg.
/// Only snapshots whose objects lead back to a full stream count (a chain
/// broken by a missing object is not gone on from).
///
/// By name, because zfs3backup records no guid. What guards it: before
/// going on, [`zfs3backup_tree`] reads the newest one's stream guid from
/// the stored object's first bytes ([`other_snapshot`]); zab-send's
/// incremental records the base's guid as `parent_guid`; `zfs recv`
/// refuses an incremental whose base guid is not the one received; and
/// `zab-store check` compares the stored streams' guids with
/// `parent_guid`.
pub fn zfs3backup_chain(m: &Manifest, source: &[Snapshot]) -> Vec<Snapshot> {
    let mut whole: Vec<&str> = Vec::new();
    for e in &m.objects {
        let ok = match (&e.kind, &e.parent) {
            (Kind::Full, _) => true,
            (Kind::Incremental, Some(p)) => whole.contains(&p.as_str()),
            (Kind::Incremental, None) => false,
        };
        if ok {
            whole.push(&e.snapshot);
        }
    }
    source
        .iter()
        .filter(|s| whole.contains(&s.name.as_str()))
        .cloned()
        .collect()
}

/// The guid of the snapshot that the stored object of `last` (matched by
/// name) carries, when it is not `last`'s: its stream's guid, read from its
/// first bytes (one ranged GET). None when it is `last`'s, or when it
/// cannot be read (a warning; going on by name, as before it was read).
fn other_snapshot(
    store: &Store,
    m: &Manifest,
    last: &Snapshot,
    log: &zab_core::cli::Log,
) -> Result<Option<u64>, Error> {
    let Some(e) = m.objects.iter().rev().find(|e| e.snapshot == last.name) else {
        return Ok(None);
    };
    let url = store.url_of(&e.key);
    let read = zab_store::zfs3backup::stream_guid(store, e)
        .map_err(|err| Error::Store(format!("reading the start of {url}: {err}")))?;
    match read {
        Some(g) if g != last.guid => {
            log.verbose(format!(
                "{}: {url} is a stream of another snapshot (guid {g}) than the source's @{} \
                 (guid {})",
                m.dataset, last.name, last.guid
            ));
            return Ok(Some(g));
        }
        Some(_) => {}
        None => log.warn(format!(
            "{}: cannot read which snapshot {url} carries: going on from zfs3backup's chain \
             by name",
            m.dataset
        )),
    }
    Ok(None)
}

/// For each of `datasets` (name in the store, the source's snapshots) that
/// has no manifest: a chain that zfs3backup left in the store under its
/// name (one listing of its folder, one HEAD per object), whose snapshots
/// the source has too. The planner then goes on from the newest with an
/// incremental, as zfs3backup would. Returns the views of the datasets
/// gone on from (zab_store::zfs3backup::view: `--full-every` walks them).
pub fn zfs3backup_tree(
    store: &Store,
    tree: &mut Tree,
    datasets: &[(&str, &[Snapshot])],
    log: &zab_core::cli::Log,
) -> Result<Manifests, Error> {
    let mut gone_on = BTreeMap::new();
    if let zab_store::Location::Dir { .. } = store.location() {
        // zfs3backup writes to S3 only; a directory has no metadata.
        return Ok(gone_on);
    }
    for (ds, source) in datasets {
        if tree.contains_key(*ds) {
            continue;
        }
        let Some(m) =
            zab_store::zfs3backup::view(store, ds).map_err(|e| Error::Store(e.to_string()))?
        else {
            continue;
        };
        let common = zfs3backup_chain(&m, source);
        let Some(last) = common.last() else {
            log.verbose(format!(
                "{ds}: the store has {} object(s) of it without a manifest, none of a whole chain \
                 whose snapshot the source has: a full stream",
                m.objects.len()
            ));
            continue;
        };
        let foreign = other_snapshot(store, &m, last, log)?;
        let mut snapshots = common.clone();
        match foreign {
            None => log.verbose(format!(
                "{ds}: going on from the chain zfs3backup left in the store, at @{} (matched by \
                 name, its stream's guid checked)",
                last.name
            )),
            // Another dataset's chain under this name: with no guid in
            // common the plan fails, as for a ZFS target of another
            // dataset (--no-guid-check goes on by name), and nothing is
            // written over its objects.
            Some(g) => {
                snapshots.iter_mut().for_each(|s| s.guid = 0);
                if let Some(s) = snapshots.last_mut() {
                    s.guid = g;
                }
            }
        }
        tree.insert(
            ds.to_string(),
            TargetDs {
                kind: DatasetType::Filesystem,
                target: Target {
                    snapshots: snapshots.into_iter().map(|s| (s, 0)).collect(),
                    token: None,
                },
                guid: None,
            },
        );
        gone_on.insert(ds.to_string(), m);
    }
    Ok(gone_on)
}

/// Uploads each stream to a store.
pub struct StoreSink<'a> {
    pub store: &'a Store,
    /// Each dataset's manifest, as read and as grown by this run.
    pub manifests: Mutex<BTreeMap<String, Manifest>>,
    /// Each source dataset's snapshots (guids, createtxg).
    pub sources: &'a BTreeMap<String, Vec<Snapshot>>,
    /// `--compress`'s type.
    pub compressor: Option<&'static str>,
    /// `--rate`: the local zab-ratelimit and the rate.
    pub rate: Option<(String, u64)>,
    /// Show each upload's progress on this board.
    pub progress: Option<&'a Board>,
    /// "Now", RFC 3339, for the manifest.
    pub now: String,
}

impl std::fmt::Debug for StoreSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreSink({:?})", self.store)
    }
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

/// How the source side (and zab-ratelimit) ended: None when well, else
/// the problems, on one line.
fn source_end(src: &mut Child, limiter: &mut Option<Child>, running: &Running) -> Option<String> {
    let mut problems: Vec<String> = ended(src, "the sending side").into_iter().collect();
    problems.extend(limiter.as_mut().and_then(|l| ended(l, "zab-ratelimit")));
    if running.stopped() {
        problems.insert(0, "interrupted".into());
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// How `child` (`what`, in the message) ended: None when well.
fn ended(child: &mut Child, what: &str) -> Option<String> {
    match child.wait() {
        Ok(st) if st.success() => None,
        Ok(st) => Some(format!(
            "{what} failed ({})",
            zab_core::error::Status::from_exit(st)
        )),
        Err(e) => Some(e.to_string()),
    }
}

/// The source side stopped (after a failed upload it may still be
/// writing) and forgotten.
fn stop_source(src: &mut Child, limiter: &mut Option<Child>, running: &Running) {
    let _ = src.kill();
    let _ = src.wait();
    if let Some(l) = limiter.as_mut() {
        let _ = l.kill();
        let _ = l.wait();
    }
    running.remove(src.id());
    if let Some(l) = limiter {
        running.remove(l.id());
    }
}

/// `e` with what the sending side said on stderr.
fn with_messages(e: String, msgs: &[String]) -> String {
    let kept: Vec<String> = msgs
        .iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    match kept.is_empty() {
        true => e,
        false => format!("{e}: {}", kept.join("; ")),
    }
}

impl StoreSink<'_> {
    /// The snapshots a stream from `from` to `to` carries (`-I`: every
    /// snapshot after `from` up to `to`).
    fn carried(&self, r: &Receive) -> Vec<Snap> {
        let all = self.sources.get(r.source).map_or(&[][..], Vec::as_slice);
        let start = r
            .from
            .and_then(|f| all.iter().position(|s| s.name == f))
            .map_or(0, |i| i + 1);
        let end = all.iter().position(|s| s.name == r.snapshot);
        let slice = match end {
            Some(e) if e >= start => &all[start..=e],
            _ => &[],
        };
        let slice = if r.from.is_none() {
            // A full stream carries only its snapshot.
            slice.last().map(std::slice::from_ref).unwrap_or(&[])
        } else {
            slice
        };
        slice
            .iter()
            .map(|s| Snap {
                name: s.name.clone(),
                guid: s.guid,
                createtxg: s.createtxg,
            })
            .collect()
    }

    /// Whether `key` may be written (one HEAD request on S3): no object is
    /// there, or only zab's own stream of the same snapshot (its `guid`
    /// metadata: an upload whose manifest was never written). Anything
    /// else there, zfs3backup's object of a snapshot of this name (it may
    /// still be running beside zab) or another snapshot's, fails the
    /// transfer rather than be lost. A directory is zab's alone: not asked.
    fn free(&self, key: &str, to: Option<&Snapshot>) -> Result<(), String> {
        if let zab_store::Location::Dir { .. } = self.store.location() {
            return Ok(());
        }
        let Some(meta) = self.store.head(key).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let guid = meta
            .iter()
            .find(|(k, _)| k == "guid")
            .map(|(_, v)| v.as_str());
        match (guid, to) {
            (Some(g), Some(s)) if g == s.guid.to_string() => Ok(()),
            _ => Err(format!(
                "{} exists already and is not zab's stream of this snapshot (zfs3backup's?): \
                 not written over; move it away, or back up to another prefix",
                self.store.url_of(key)
            )),
        }
    }

    fn snapshot_of(&self, source: &str, name: &str) -> Option<&Snapshot> {
        self.sources.get(source)?.iter().find(|s| s.name == name)
    }

    /// Streams step `r` from `source` (the shell line of `spec`) into one
    /// object; the record's object and the manifest's entry.
    fn upload(
        &self,
        source: &Host,
        spec: &StreamSpec,
        r: &Receive,
        running: &Running,
    ) -> Result<(StoredObject, Entry), String> {
        let key = object_key(r.dataset, r.snapshot);
        self.free(&key, self.snapshot_of(r.source, r.snapshot))?;
        let line = stream::source_command(spec);
        let cmd = source
            .command(&["sh", "-c", &line])
            .map_err(|e| e.to_string())?;
        let SourceSide {
            mut src,
            mut limiter,
            reader,
        } = transfer::start_source(source, cmd, &self.rate, running)?;
        let estimate = Arc::new(AtomicU64::new(0));
        let src_err = transfer::read_source_stderr(src.stderr.take(), estimate.clone());
        let bytes = Arc::new(AtomicU64::new(0));
        let shown = self.progress.map(|board| {
            let label = format!("{}@{}", r.dataset, r.snapshot);
            (board, board.add(label, bytes.clone(), estimate.clone()))
        });
        let mut input = Counting {
            inner: reader,
            n: bytes.clone(),
        };
        let to = self.snapshot_of(r.source, r.snapshot);
        let est = estimate.clone();
        let estimate_now = move || est.load(Ordering::Relaxed);
        let up = Upload {
            estimate: &estimate_now,
            metadata: self.metadata(r, to),
            jobs: self.store.upload_jobs,
        };
        let mut source_failed = None;
        // The upload completes only when the source side succeeded.
        let mut finish = || match source_end(&mut src, &mut limiter, running) {
            None => Ok(()),
            Some(problems) => {
                let e = format!("{problems}; the upload was aborted");
                source_failed = Some(problems);
                Err(e)
            }
        };
        let stored = self.store.put(&key, &mut input, &up, &mut finish);
        drop(input);
        stop_source(&mut src, &mut limiter, running);
        if let Some((board, id)) = shown {
            board.remove(id);
        }
        let msgs = src_err.join().unwrap_or_default();
        let stored = stored.map_err(|e| match source_failed {
            Some(_) => with_messages(e.to_string(), &msgs),
            None => e.to_string(),
        })?;
        let stream_bytes = match self.compressor {
            None if spec.send_pipes.is_empty() => stored.bytes,
            _ => estimate.load(Ordering::Relaxed),
        };
        let entry = self.entry(r, key.clone(), &stored, stream_bytes);
        let object = StoredObject {
            key: self.store.url_of(&key),
            stored_bytes: stored.bytes,
            stream_bytes,
            sha256: stored.sha256,
        };
        Ok((object, entry))
    }

    /// The object's metadata, in zfs3backup's names (its `size` is left
    /// out: the estimate is not known yet when the upload starts; the
    /// manifest has the sizes).
    fn metadata(&self, r: &Receive, to: Option<&Snapshot>) -> Vec<(String, String)> {
        let mut metadata = Vec::new();
        match r.from {
            None => metadata.push(("isfull".to_string(), "true".to_string())),
            Some(f) => metadata.push(("parent".into(), format!("{}@{f}", r.dataset))),
        }
        if let Some(c) = self.compressor {
            metadata.push(("compressor".into(), c.to_string()));
        }
        if let Some(s) = to {
            metadata.push(("guid".into(), s.guid.to_string()));
        }
        metadata
    }

    /// The manifest's entry of step `r`, stored as `stored` under `key`.
    fn entry(&self, r: &Receive, key: String, stored: &Stored, stream_bytes: u64) -> Entry {
        let to = self.snapshot_of(r.source, r.snapshot);
        let parent = r.from.and_then(|f| self.snapshot_of(r.source, f));
        Entry {
            key,
            kind: if r.from.is_some() {
                Kind::Incremental
            } else {
                Kind::Full
            },
            snapshot: r.snapshot.to_string(),
            guid: to.map_or(0, |s| s.guid),
            createtxg: to.map_or(0, |s| s.createtxg),
            parent: r.from.map(str::to_string),
            parent_guid: parent.map(|s| s.guid),
            snapshots: self.carried(r),
            raw: r.raw,
            compressor: self.compressor.map(str::to_string),
            stored_bytes: stored.bytes,
            stream_bytes,
            sha256: stored.sha256.clone(),
            stored: self.now.clone(),
        }
    }

    /// Adds `e` to `dataset`'s manifest and writes it.
    fn record(&self, dataset: &str, e: Entry) -> Result<(), String> {
        let bytes = {
            let mut all = self
                .manifests
                .lock()
                .map_err(|_| "manifest lock poisoned")?;
            let m = all
                .entry(dataset.to_string())
                .or_insert_with(|| Manifest::new(dataset));
            m.add(e);
            m.to_bytes()
        };
        self.store
            .put_bytes(&manifest_key(dataset), bytes)
            .map_err(|e| format!("writing the manifest: {e}"))
    }
}

impl Sink for StoreSink<'_> {
    fn receive(&self, source: &Host, spec: &StreamSpec, r: Receive, running: &Running) -> Outcome {
        let t0 = Instant::now();
        let result = self
            .upload(source, spec, &r, running)
            .and_then(|(object, entry)| self.record(r.dataset, entry).map(|()| object));
        match result {
            Ok(object) => Outcome {
                bytes: object.stored_bytes,
                seconds: t0.elapsed().as_secs_f64(),
                error: None,
                object: Some(object),
            },
            Err(e) => Outcome {
                bytes: 0,
                seconds: t0.elapsed().as_secs_f64(),
                error: Some(e),
                object: None,
            },
        }
    }

    /// A failed upload is never there: it was aborted.
    fn has(&self, _r: Receive) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, guid: u64) -> Snapshot {
        Snapshot {
            name: name.into(),
            createtxg: guid,
            guid,
            userrefs: None,
        }
    }

    fn described(key: &str, meta: &[(&str, &str)]) -> zab_store::zfs3backup::Described {
        zab_store::zfs3backup::Described {
            key: key.into(),
            size: 10,
            modified: key.into(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_zfs3backup_chain_is_matched_by_name_up_to_a_missing_object() {
        let objs = [
            described("p/a@d1", &[("isfull", "true")]),
            described("p/a@d2", &[("parent", "p/a@d1")]),
            described("p/a@d4", &[("parent", "p/a@d3")]),
        ];
        let m =
            zab_store::zfs3backup::merge("p/a", None, zab_store::zfs3backup::entries("p/a", &objs));
        let source = [
            snap("d0", 1),
            snap("d1", 2),
            snap("d2", 3),
            snap("d3", 4),
            snap("d4", 5),
        ];
        let names: Vec<String> = zfs3backup_chain(&m, &source)
            .into_iter()
            .map(|s| s.name)
            .collect();
        // @d4's parent @d3 is not in the store: the chain ends at @d2.
        assert_eq!(names, ["d1", "d2"]);
        // A source that has none of them: a full stream.
        assert!(zfs3backup_chain(&m, &[snap("x", 9)]).is_empty());
    }
}
