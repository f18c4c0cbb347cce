//! zab-store's subcommands: ls (one listing of the store, one of its
//! unfinished uploads, one read per manifest and one HEAD per object no
//! manifest lists), check (ls's reads, then each object read back), put,
//! get and clean.

use std::io::Write;
use std::time::Instant;

use serde::Serialize;
use zab_core::error::Error;
use zab_store::check::{self as checking, Begin};
use zab_store::manifest::{self, Health, Kind, Manifest};
use zab_store::store::Upload;
use zab_store::uploads::{self, Unfinished};
use zab_store::zfs3backup::{self, described};
use zab_store::{Location, Store};

use crate::cli::{Args, Cmd};

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

pub fn run(args: &Args) -> Result<(), Error> {
    let Some(command) = &args.command else {
        return Err(Error::Usage(
            "a command is required: ls, check, put, get or clean (zab-store --help)".into(),
        ));
    };
    match command {
        Cmd::Ls { url, human } => {
            let loc = Location::parse(url).map_err(Error::Usage)?;
            let store = Store::open(&loc, &args.settings).map_err(store_err)?;
            ls(&store, *human)
        }
        Cmd::Check {
            url,
            dataset,
            sample,
        } => {
            let loc = Location::parse(url).map_err(Error::Usage)?;
            let store = Store::open(&loc, &args.settings).map_err(store_err)?;
            check(&store, dataset.as_deref(), *sample)
        }
        Cmd::Clean {
            url,
            older_than,
            test,
        } => {
            let loc = Location::parse(url).map_err(Error::Usage)?;
            let store = Store::open(&loc, &args.settings).map_err(store_err)?;
            store.check(false).map_err(store_err)?;
            clean(&store, *older_than, *test)
        }
        Cmd::Put { url, size } => {
            let (loc, key) = Location::parse_object(url).map_err(Error::Usage)?;
            let store = Store::open(&loc, &args.settings).map_err(store_err)?;
            put(&store, &key, *size)
        }
        Cmd::Get { url } => {
            let (loc, key) = Location::parse_object(url).map_err(Error::Usage)?;
            let store = Store::open(&loc, &args.settings).map_err(store_err)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            store.get(&key, &mut out).map_err(store_err)?;
            Ok(())
        }
    }
}

/// One object of a chain, as `ls` shows it.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    key: &'a str,
    kind: manifest::Kind,
    snapshot: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    stored_bytes: u64,
    stored: &'a str,
    /// False for an object that no manifest lists, read from its metadata
    /// (a zfs3backup object); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    no_manifest: bool,
}

/// `ls`'s record of one dataset.
#[derive(Debug, Serialize)]
struct Chain<'a> {
    #[serde(rename = "kind")]
    kind: &'static str,
    dataset: &'a str,
    #[serde(flatten)]
    health: Health,
    objects: Vec<Shown<'a>>,
    stored_bytes: u64,
}

/// `ls`'s record of an upload never completed, and (as `clean`) of one
/// removed.
#[derive(Debug, Serialize)]
struct Incomplete<'a> {
    #[serde(rename = "kind")]
    kind: &'static str,
    key: &'a str,
    /// S3's upload id, or the staging file below the directory.
    upload: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    modified: String,
    /// `clean` only: whether it was removed (false with --test).
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<bool>,
}

impl<'a> Incomplete<'a> {
    fn of(u: &'a Unfinished, kind: &'static str, done: Option<bool>) -> Self {
        Incomplete {
            kind,
            key: &u.key,
            upload: &u.id,
            bytes: u.bytes,
            modified: u.modified.to_rfc3339(),
            done,
        }
    }
}

/// `ls`: one line (or record) per dataset's chain, then per unfinished
/// upload.
fn ls(store: &Store, human: bool) -> Result<(), Error> {
    store.check(false).map_err(store_err)?;
    let listed = store.list("").map_err(store_err)?;
    let unfinished = store.unfinished().map_err(store_err)?;
    let sizes: Vec<(String, u64)> = listed.iter().map(|l| (l.key.clone(), l.size)).collect();
    let manifests = zfs3backup::views(store, &listed, None).map_err(store_err)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if human {
        writeln!(
            out,
            "{:<40} {:>8} {:>12}  STATUS",
            "DATASET", "OBJECTS", "BYTES"
        )?;
    }
    for m in manifests.values() {
        let c = chain(m, &sizes);
        match human {
            true => chain_lines(&mut out, &c)?,
            false => record(&mut out, &c)?,
        }
    }
    for u in &unfinished {
        match human {
            true => {
                let bytes = u
                    .bytes
                    .map(|b| format!("{}, ", zab_core::cli::format_bytes(b)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "incomplete upload {} ({bytes}started {}; zab-store clean)",
                    u.key,
                    u.modified.to_rfc3339()
                )?;
            }
            false => record(&mut out, &Incomplete::of(u, "incomplete", None))?,
        }
    }
    out.flush()?;
    Ok(())
}

/// `ls`'s record of a dataset's chain, given the sizes of the objects
/// listed.
fn chain<'a>(m: &'a Manifest, sizes: &[(String, u64)]) -> Chain<'a> {
    Chain {
        kind: "chain",
        dataset: &m.dataset,
        health: manifest::health(m, sizes),
        objects: m
            .objects
            .iter()
            .map(|e| Shown {
                key: &e.key,
                kind: e.kind,
                snapshot: &e.snapshot,
                parent: e.parent.as_deref(),
                stored_bytes: e.stored_bytes,
                stored: &e.stored,
                no_manifest: described(e),
            })
            .collect(),
        stored_bytes: m.objects.iter().map(|e| e.stored_bytes).sum(),
    }
}

/// `ls -h`'s lines of a chain: the dataset's, then one per object.
fn chain_lines(out: &mut dyn Write, c: &Chain) -> Result<(), Error> {
    let status = match &c.health {
        Health::Healthy => "healthy".to_string(),
        Health::Broken(why) => format!("broken: {why}"),
    };
    writeln!(
        out,
        "{:<40} {:>8} {:>12}  {status}",
        c.dataset,
        c.objects.len(),
        zab_core::cli::format_bytes(c.stored_bytes)
    )?;
    for o in &c.objects {
        writeln!(
            out,
            "  {:<38} {:>8} {:>12}  {}",
            o.key,
            format!("{:?}", o.kind).to_lowercase(),
            zab_core::cli::format_bytes(o.stored_bytes),
            o.stored
        )?;
    }
    Ok(())
}

/// One record, one line.
fn record(out: &mut dyn Write, r: &impl Serialize) -> Result<(), Error> {
    serde_json::to_writer(&mut *out, r).map_err(|e| Error::Io(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

/// `check`'s record of one dataset.
#[derive(Debug, Serialize)]
struct Checked<'a> {
    #[serde(rename = "kind")]
    kind: &'static str,
    dataset: &'a str,
    /// healthy, broken (the chain: an object missing, a parent missing or
    /// of another guid) or corrupt (an object read back is not what the
    /// manifest or its stream says).
    status: &'static str,
    /// The dataset's objects, and those read back.
    objects: usize,
    read: usize,
    read_bytes: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

/// The end record's own fields of `check`.
#[derive(Debug, Serialize)]
struct CheckEnd {
    healthy: usize,
    objects: usize,
    read: usize,
    read_bytes: u64,
}

/// What reading object `i` of `m` back says: problems found, and what its
/// stream tells of its guids (filled into `filled`, the copy of `m` whose
/// chain is checked then).
fn read_back(
    store: &Store,
    m: &Manifest,
    i: usize,
    filled: &mut Manifest,
    problems: &mut Vec<String>,
) -> Option<u64> {
    let e = &m.objects[i];
    let url = store.url_of(&e.key);
    let mut r = checking::Reader::default();
    if let Err(err) = store.get(&e.key, &mut r) {
        problems.push(format!("object {url} cannot be read: {err}"));
        return None;
    }
    if r.bytes != e.stored_bytes {
        problems.push(format!(
            "object {url} has {} bytes, the manifest says {}",
            r.bytes, e.stored_bytes
        ));
    }
    if !described(e) && r.sha256() != e.sha256 {
        problems.push(format!(
            "object {url} is corrupt: its SHA-256 is {}, the manifest says {}",
            r.sha256(),
            e.sha256
        ));
    }
    if e.compressor.is_some() {
        return Some(r.bytes);
    }
    match checking::begin(&r.head) {
        Begin::NotAStream => problems.push(format!("object {url} is not a zfs send stream")),
        Begin::Compound => {}
        // A guid-less object (zfs3backup's) that is compound (`-R`) is not
        // read further: its first substream may be another snapshot.
        Begin::Single { compound: true, .. } if e.guid == 0 => {}
        Begin::Single {
            toguid, fromguid, ..
        } => {
            let f = &mut filled.objects[i];
            // The first snapshot the stream carries (its only one but for -I).
            let first = e.snapshots.first().map_or(e.guid, |s| s.guid);
            if e.guid == 0 {
                f.guid = toguid;
                if let Some(s) = f.snapshots.last_mut() {
                    s.guid = toguid;
                }
            } else if toguid != first {
                problems.push(format!(
                    "object {url} holds snapshot guid {toguid}, the manifest says {first}"
                ));
            }
            match (e.kind, fromguid, e.parent_guid) {
                (Kind::Full, 0, _) => {}
                (Kind::Full, _, _) => problems.push(format!(
                    "object {url} is marked full, its stream is incremental"
                )),
                (Kind::Incremental, 0, _) => problems.push(format!(
                    "object {url} is marked incremental, its stream is full"
                )),
                (Kind::Incremental, g, None) => f.parent_guid = Some(g),
                (Kind::Incremental, g, Some(p)) if g != p => problems.push(format!(
                    "object {url} is an incremental from guid {g}, the manifest says {p}"
                )),
                (Kind::Incremental, _, _) => {}
            }
        }
    }
    if !matches!(checking::begin(&r.head), Begin::NotAStream) && !checking::ends(&r.head, r.tail())
    {
        problems.push(format!(
            "object {url} does not end with its stream's END record (cut short)"
        ));
    }
    Some(r.bytes)
}

/// Checks every dataset of the store (or `only`), one record each, then
/// the end record; exit 1 when one is broken or corrupt.
fn check(store: &Store, only: Option<&str>, sample: Option<f64>) -> Result<(), Error> {
    store.check(false).map_err(store_err)?;
    let listed = store.list("").map_err(store_err)?;
    let sizes: Vec<(String, u64)> = listed.iter().map(|l| (l.key.clone(), l.size)).collect();
    let present: std::collections::HashSet<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    let mut views = zfs3backup::views(store, &listed, only).map_err(store_err)?;
    if let Some(ds) = only {
        views
            .entry(ds.to_string())
            .or_insert_with(|| Manifest::new(ds));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let log = zab_core::cli::Log {
        tool: "zab-store",
        verbose: false,
        debug: false,
    };
    let mut out = zab_core::ndjson::Writer::new(std::io::stdout().lock());
    let mut end = CheckEnd {
        healthy: 0,
        objects: 0,
        read: 0,
        read_bytes: 0,
    };
    let mut failed = 0;
    for (n, (ds, m)) in views.iter().enumerate() {
        let chosen = match sample {
            Some(p) => checking::sample(m.objects.len(), p, seed.wrapping_add(n as u64)),
            None => vec![true; m.objects.len()],
        };
        let mut filled = m.clone();
        let mut problems = Vec::new();
        let (mut read, mut read_bytes) = (0, 0);
        for (i, e) in m.objects.iter().enumerate() {
            if !chosen[i] || !present.contains(e.key.as_str()) {
                continue;
            }
            if let Some(b) = read_back(store, m, i, &mut filled, &mut problems) {
                read += 1;
                read_bytes += b;
            }
        }
        let corrupt = !problems.is_empty();
        if let Health::Broken(why) = manifest::health(&filled, &sizes) {
            problems.push(why);
        }
        let status = match (corrupt, problems.is_empty()) {
            (true, _) => "corrupt",
            (false, false) => "broken",
            (false, true) => "healthy",
        };
        if problems.is_empty() {
            end.healthy += 1;
        } else {
            failed += 1;
            log.error(format!("{ds}: {status}: {}", problems.join("; ")));
        }
        end.objects += m.objects.len();
        end.read += read;
        end.read_bytes += read_bytes;
        out.write(&Checked {
            kind: "check",
            dataset: ds,
            status,
            objects: m.objects.len(),
            read,
            read_bytes,
            problems,
        })?;
    }
    out.finish("zab-store", views.len(), failed, &end)
}

/// Removes the uploads never completed that are at least `older_than`
/// old (with `test`, only lists them); one record each, written as each
/// is done. Stops at the first that fails.
fn clean(store: &Store, older_than: std::time::Duration, test: bool) -> Result<(), Error> {
    let all = store.unfinished().map_err(store_err)?;
    let due = uploads::due(all, chrono::Utc::now(), older_than);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for u in &due {
        if !test {
            store.abandon(u).map_err(store_err)?;
        }
        serde_json::to_writer(&mut out, &Incomplete::of(u, "cleaned", Some(!test)))
            .map_err(|e| Error::Io(e.to_string()))?;
        writeln!(out)?;
        out.flush()?;
    }
    Ok(())
}

/// `put`'s record.
#[derive(Debug, Serialize)]
struct Put<'a> {
    #[serde(rename = "kind")]
    kind: &'static str,
    url: &'a str,
    bytes: u64,
    sha256: &'a str,
    parts: u64,
    part_size: u64,
    seconds: f64,
}

fn put(store: &Store, key: &str, size: u64) -> Result<(), Error> {
    let t0 = Instant::now();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let estimate = move || size;
    let up = Upload {
        estimate: &estimate,
        metadata: Vec::new(),
        jobs: store.upload_jobs,
    };
    let stored = store
        .put(key, &mut input, &up, &mut || Ok(()))
        .map_err(store_err)?;
    let url = store.url_of(key);
    let rec = Put {
        kind: "put",
        url: &url,
        bytes: stored.bytes,
        sha256: &stored.sha256,
        parts: stored.parts,
        part_size: stored.part_size,
        seconds: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer(&mut out, &rec).map_err(|e| Error::Io(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}
