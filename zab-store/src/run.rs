//! zab-store's subcommands: ls (one listing of the store, one of its
//! unfinished uploads and one read per manifest), put, get and clean.

use std::io::Write;
use std::time::Instant;

use serde::Serialize;
use zab_core::error::Error;
use zab_store::manifest::{self, Health, Manifest};
use zab_store::store::Upload;
use zab_store::uploads::{self, Unfinished};
use zab_store::{location, Location, Store};

use crate::cli::{Args, Cmd};

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

pub fn run(args: &Args) -> Result<(), Error> {
    let Some(command) = &args.command else {
        return Err(Error::Usage(
            "a command is required: ls, put, get or clean (zab-store --help)".into(),
        ));
    };
    match command {
        Cmd::Ls { url, human } => {
            let loc = Location::parse(url).map_err(Error::Usage)?;
            let store = Store::open(&loc, &args.settings).map_err(store_err)?;
            ls(&store, *human)
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

fn ls(store: &Store, human: bool) -> Result<(), Error> {
    store.check(false).map_err(store_err)?;
    let listed = store.list("").map_err(store_err)?;
    let unfinished = store.unfinished().map_err(store_err)?;
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
    for u in &unfinished {
        if human {
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
        } else {
            serde_json::to_writer(&mut out, &Incomplete::of(u, "incomplete", None))
                .map_err(|e| Error::Io(e.to_string()))?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
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
