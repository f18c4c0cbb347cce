//! zab-store's subcommands: ls (one listing of the store and one read per
//! manifest), put and get.

use std::io::Write;
use std::time::Instant;

use serde::Serialize;
use zab_core::error::Error;
use zab_store::manifest::{self, Health, Manifest};
use zab_store::store::Upload;
use zab_store::{location, Location, Store};

use crate::cli::{Args, Cmd};

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

pub fn run(args: &Args) -> Result<(), Error> {
    let Some(command) = &args.command else {
        return Err(Error::Usage(
            "a command is required: ls, put or get (zab-store --help)".into(),
        ));
    };
    match command {
        Cmd::Ls { url, human } => {
            let loc = Location::parse(url).map_err(Error::Usage)?;
            let store = Store::open(&loc, &args.settings).map_err(store_err)?;
            ls(&store, *human)
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

/// `ls`'s record of an upload never completed.
#[derive(Debug, Serialize)]
struct Incomplete<'a> {
    #[serde(rename = "kind")]
    kind: &'static str,
    key: &'a str,
    bytes: u64,
    modified: &'a str,
}

fn ls(store: &Store, human: bool) -> Result<(), Error> {
    store.check(false).map_err(store_err)?;
    let listed = store.list("").map_err(store_err)?;
    let sizes: Vec<(String, u64)> = listed.iter().map(|l| (l.key.clone(), l.size)).collect();
    let mut manifests = Vec::new();
    for l in &listed {
        if let Some(ds) = location::manifest_dataset(&l.key) {
            let bytes = store
                .get_bytes(&l.key)
                .map_err(store_err)?
                .ok_or_else(|| Error::Store(format!("{}: vanished", store.url_of(&l.key))))?;
            manifests.push(Manifest::parse(&bytes, ds).map_err(Error::Store)?);
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if human {
        writeln!(
            out,
            "{:<40} {:>8} {:>12}  STATUS",
            "DATASET", "OBJECTS", "BYTES"
        )?;
    }
    for m in &manifests {
        let c = Chain {
            kind: "chain",
            dataset: &m.dataset,
            health: manifest::health(m, &sizes),
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
                })
                .collect(),
            stored_bytes: m.objects.iter().map(|e| e.stored_bytes).sum(),
        };
        if human {
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
        } else {
            serde_json::to_writer(&mut out, &c).map_err(|e| Error::Io(e.to_string()))?;
            writeln!(out)?;
        }
    }
    for (key, bytes, modified) in incomplete(store) {
        if human {
            writeln!(out, "incomplete upload {key} ({bytes} bytes, {modified})")?;
        } else {
            let i = Incomplete {
                kind: "incomplete",
                key: &key,
                bytes,
                modified: &modified,
            };
            serde_json::to_writer(&mut out, &i).map_err(|e| Error::Io(e.to_string()))?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The uploads never completed: in a directory, the staging files
/// (`NAME#N`) that an upload killed outright leaves. S3's are not listed
/// yet (object_store has no call for ListMultipartUploads).
fn incomplete(store: &Store) -> Vec<(String, u64, String)> {
    let Location::Dir { root } = store.location() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                dirs.push(p);
            } else if e.file_name().to_string_lossy().contains('#') {
                let key = p
                    .strip_prefix(root)
                    .map(|k| k.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let modified = md
                    .modified()
                    .ok()
                    .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
                    .unwrap_or_default();
                out.push((key, md.len(), modified));
            }
        }
    }
    out.sort();
    out
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
