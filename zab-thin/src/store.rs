//! zab-thin with an object store as TARGET-PATH (`s3://bucket/prefix`,
//! `file:///dir`): the store's objects are thinned by `--keep-target`, the
//! source's snapshots by `--keep-source` as without a TARGET-PATH.
//!
//! Everything is read before anything is deleted or destroyed: the input
//! (checked whole, then the run lock that zab-send holds for this URL), the
//! store (every manifest and one listing of every object: a failed request
//! ends the run, exit 4), the source's snapshots. Then the plans: the
//! source's (crate::plan, snapshot-only, where the newest snapshot of each
//! dataset in the store is also kept: the next incremental starts there),
//! and each store dataset's (crate::retain). A store dataset that no input
//! record maps to is "missing" only when the source's selection, asked
//! again, does not select its source either (crate::plan::not_missing), as
//! on ZFS; `--destroy-missing` then deletes it whole once its newest
//! snapshot of ours is old enough.
//!
//! Each dataset's objects are deleted newest first, then its manifest is
//! rewritten without them (docs/store.md, "Retention", says why in this
//! order).

use std::collections::{BTreeMap, BTreeSet};

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::record::Spared;
use zab_core::select::{self, Options as SelectOptions};
use zab_core::zfs::Snapshot;
use zab_store::datasets::Dataset as Stored;
use zab_store::manifest::Manifest;
use zab_store::Store;

use crate::cli::{StoreTarget, Zfs};
use crate::gather::{self, Hosts, Selection};
use crate::input::Input;
use crate::plan::{self, Job, TARGET};
use crate::retain::{self, Fate, Retention};
use crate::{execute, input, report, show};

/// The root the store's names are mapped below, then taken off: the one
/// mapping rule of zab-send's.
const ROOT: &str = "store";

/// One store dataset's plan.
#[derive(Debug)]
struct Thinning {
    dataset: String,
    manifest: Manifest,
    retention: Retention,
    /// `--destroy-missing`: every object and the manifest go.
    whole: bool,
    /// Nothing is deleted (a source still selected but without a record).
    left_alone: bool,
    note: Option<String>,
    /// The input record (None: missing on the source).
    record: Option<usize>,
    /// Set when carried out: deleted entries, and the first error.
    deleted: Vec<usize>,
    error: Option<String>,
}

pub fn run(config: &Zfs) -> Result<(), Error> {
    let Some(st) = &config.store else {
        return Err(Error::Usage("no object store".into()));
    };
    let log = config.log;
    for line in config.keep_source.describe() {
        log.verbose(format!("[Source] {line}"));
    }
    for line in config.keep_target.describe() {
        log.verbose(format!("[Target] {line}"));
    }
    let input = input::read(config)?;

    // The store, whole, before anything is destroyed anywhere.
    let store = Store::open(&st.location, &st.settings).map_err(|e| Error::Store(e.0))?;
    store.check(false).map_err(|e| Error::Store(e.0))?;
    let stored = store.datasets().map_err(|e| Error::Store(e.0))?;

    // The source, as without a TARGET-PATH.
    let mut hosts = Hosts::default();
    let listed = gather::gather(config, &input, &mut hosts)?;
    let draft = plan::draft(config, &input, &listed);
    let held = crate::holds::read(&hosts, &draft)?;
    let mut jobs = crate::holds::decide(draft, &held, &config.tag);
    let names = store_names(&input, st)?;
    keep_stored_bases(&mut jobs, &names, &stored, &listed.snapshots, &log);

    // The store.
    let mut thinnings = plan_store(config, st, &input, &names, &stored)?;

    let mut shown: Vec<Job> = jobs.clone();
    shown.extend(thinnings.iter().map(|t| job_of(t, &store, false)));
    show::show(config, &shown)?;
    if config.explain {
        for t in &thinnings {
            for line in explain(t, &store) {
                eprintln!("{line}");
            }
        }
    }
    execute::execute(&mut jobs, &hosts, &config.tag, config.act(), &log);
    for t in &mut thinnings {
        say(t, &store, &log);
        if config.act() {
            carry_out(t, &store, &log);
        }
    }
    jobs.extend(thinnings.iter().map(|t| job_of(t, &store, config.act())));
    report::write(input.datasets, &jobs, config.act(), true)
}

/// Each selected record's dataset name in the store (after
/// `--strip-path`), as zab-send names it.
fn store_names(input: &Input, st: &StoreTarget) -> Result<BTreeMap<usize, String>, Error> {
    let idx: Vec<usize> = input.selected.values().flatten().copied().collect();
    let map = zab_core::name::target_map(
        idx.iter().map(|&i| input.datasets[i].name.as_str()),
        ROOT,
        st.strip,
    )?;
    Ok(idx
        .into_iter()
        .filter_map(|i| {
            let t = map.get(&input.datasets[i].name)?;
            Some((i, t.strip_prefix("store/").unwrap_or(t).to_string()))
        })
        .collect())
}

/// Keeps each source dataset's newest snapshot in the store: the next
/// incremental starts there (the store has no holds to mark it).
fn keep_stored_bases(
    jobs: &mut [Job],
    names: &BTreeMap<usize, String>,
    stored: &BTreeMap<String, Stored>,
    sources: &BTreeMap<usize, Vec<Snapshot>>,
    log: &Log,
) {
    for j in jobs.iter_mut() {
        let Some((i, false)) = j.record else { continue };
        let Some(d) = names.get(&i).and_then(|n| stored.get(n)) else {
            continue;
        };
        let Some(newest) = d
            .manifest
            .snapshots()
            .last()
            .map(|s| (s.name.clone(), s.guid))
        else {
            continue;
        };
        let same = sources
            .get(&i)
            .is_some_and(|v| v.iter().any(|s| s.name == newest.0 && s.guid == newest.1));
        if !same || !j.destroy.contains(&newest.0) {
            continue;
        }
        log.debug(format!(
            "{}: newest snapshot in the store {}",
            j.dataset, newest.0
        ));
        j.destroy.retain(|n| n != &newest.0);
        j.release.retain(|n| n != &newest.0);
        j.kept += 1;
        j.spared.push(Spared {
            name: newest.0.clone(),
            why: "the newest in the store (the next incremental starts there)".into(),
        });
        if let Some(k) = j.plan.names.iter().position(|n| n == &newest.0) {
            j.plan.verdicts[k].keep = true;
            j.plan.verdicts[k].protected = true;
        }
    }
}

/// Plans every dataset of the store: those of the input's records by the
/// schedule, the others as missing (or thinned by the schedule).
fn plan_store(
    config: &Zfs,
    st: &StoreTarget,
    input: &Input,
    names: &BTreeMap<usize, String>,
    stored: &BTreeMap<String, Stored>,
) -> Result<Vec<Thinning>, Error> {
    let by_name: BTreeMap<&str, usize> = names.iter().map(|(i, n)| (n.as_str(), *i)).collect();
    // A dataset that failed upstream (--skip-failed) is left alone, in the
    // store too, and is not missing.
    let failed: BTreeSet<String> = input
        .failed
        .iter()
        .filter_map(|&i| {
            zab_core::zfs::target_name(&input.datasets[i].name, ROOT, st.strip)
                .ok()
                .map(|t| t.strip_prefix("store/").unwrap_or(&t).to_string())
        })
        .collect();
    let unmapped: Vec<&str> = stored
        .keys()
        .map(String::as_str)
        .filter(|d| !by_name.contains_key(d) && !failed.contains(*d))
        .collect();
    let kept_notes = match unmapped.is_empty() {
        true => BTreeMap::new(),
        false => {
            let selections = selections(config, input)?;
            let rooted: Vec<String> = unmapped.iter().map(|d| format!("{ROOT}/{d}")).collect();
            let refs: Vec<&str> = rooted.iter().map(String::as_str).collect();
            plan::not_missing(
                &refs,
                &selections,
                &input.datasets,
                input.upstream,
                ROOT,
                st.strip,
            )
        }
    };
    let mut out = Vec::new();
    for (name, d) in stored {
        if failed.contains(name) {
            continue;
        }
        let retention = retain::plan(
            &d.manifest,
            &d.listed,
            &config.format,
            &config.keep_target,
            config.now,
        );
        let mut t = Thinning {
            dataset: name.clone(),
            manifest: d.manifest.clone(),
            retention,
            whole: false,
            left_alone: false,
            note: None,
            record: by_name.get(name.as_str()).copied(),
            deleted: Vec::new(),
            error: None,
        };
        if t.record.is_none() {
            if let Some(note) = kept_notes.get(&format!("{ROOT}/{name}")) {
                t.left_alone = true;
                t.note = Some(note.clone());
            } else if let Some(duration) = config.destroy_missing {
                let (whole, note) = missing(d, config, duration);
                t.whole = whole;
                t.note = Some(note);
            }
        }
        out.push(t);
    }
    Ok(out)
}

/// `--destroy-missing` on a store dataset whose source is gone: the whole
/// dataset goes once its newest snapshot of ours is `duration` old, unless
/// it carries snapshots not ours (then it is thinned by the schedule).
fn missing(d: &Stored, config: &Zfs, duration: i64) -> (bool, String) {
    let snaps: Vec<Snapshot> = d
        .manifest
        .snapshots()
        .into_iter()
        .map(|s| Snapshot {
            name: s.name.clone(),
            createtxg: s.createtxg,
            guid: s.guid,
            userrefs: None,
        })
        .collect();
    match plan::missing(&snaps, &config.format, config.now, duration, false) {
        Some(m) if m.destroy_dataset => (true, m.note),
        Some(m) => (false, m.note),
        None => (false, "has no snapshots made by us".into()),
    }
}

/// The source's selection asked again on every source host, as on ZFS
/// (crate::gather::selections); a failed read is said and then keeps every
/// dataset of the store from being missing.
fn selections(config: &Zfs, input: &Input) -> Result<Vec<Selection>, Error> {
    let mut sources: BTreeSet<Option<String>> =
        input.datasets.iter().map(|d| d.host.clone()).collect();
    if input.datasets.is_empty() || config.ssh_source.is_some() {
        sources.insert(config.ssh_source.clone());
    }
    let mut out = Vec::new();
    for dest in sources {
        let host = config.host(dest.as_deref())?;
        let opts = SelectOptions {
            backup: config.backup.clone(),
            property: config.property.clone(),
            host: dest.clone(),
            exclude_paths: Vec::new(),
            exclude_received: false,
            exclude_unchanged: 0,
        };
        let sel = select::list(&host, &opts).map_err(|e| e.to_string());
        if let Err(e) = &sel {
            config
                .log
                .error(format!("[Source] reading the selection: {e}"));
        }
        out.push((host.name().to_string(), sel));
    }
    Ok(out)
}

/// What happens to entry `i` of `t`: deleted or kept, and why.
fn fate(t: &Thinning, i: usize) -> Fate {
    match (&t.retention.fates[i], t.whole, t.left_alone) {
        (_, _, true) => Fate::Keep("left alone, not treated as missing (the note says why)".into()),
        (Fate::Missing | Fate::Drop, true, _) => Fate::Drop,
        (_, true, _) => Fate::Delete("--destroy-missing: the source is gone".into()),
        (f, false, false) => f.clone(),
    }
}

/// The entries `t` deletes, newest first.
fn deletes(t: &Thinning) -> Vec<usize> {
    (0..t.manifest.objects.len())
        .rev()
        .filter(|&i| matches!(fate(t, i), Fate::Delete(_)))
        .collect()
}

/// `--verbose`: what is deleted and why, the objects kept against the
/// schedule ("kept: parent of …"), and a broken chain (always said).
fn say(t: &Thinning, store: &Store, log: &Log) {
    if !t.retention.broken.is_empty() && !t.left_alone {
        log.warn(format!(
            "{TARGET} {}: chain broken ({}): nothing it needs is deleted",
            store.url_of(&t.dataset),
            t.retention.broken.join("; ")
        ));
    }
    if let Some(n) = &t.note {
        log.verbose(format!("{TARGET} {}: {n}", store.url_of(&t.dataset)));
    }
    for key in &t.retention.rooted {
        log.verbose(format!(
            "{TARGET} {}: {}",
            store.url_of(&t.dataset),
            rooted(key, store)
        ));
    }
    for (i, e) in t.manifest.objects.iter().enumerate() {
        match fate(t, i) {
            Fate::Delete(why) => log.verbose(format!(
                "{TARGET} {}: Deleting ({why})",
                store.url_of(&e.key)
            )),
            Fate::Keep(why) if why.starts_with("parent of") => log.verbose(format!(
                "{TARGET} {}: Keeping (kept: {why})",
                store.url_of(&e.key)
            )),
            _ => {}
        }
    }
}

/// `--explain`: every object with its fate.
fn explain(t: &Thinning, store: &Store) -> Vec<String> {
    let mut out = vec![format!("{TARGET} {}", store.url_of(&t.dataset))];
    for (i, e) in t.manifest.objects.iter().enumerate() {
        let what = match fate(t, i) {
            Fate::Keep(why) => format!("kept: {why}"),
            Fate::Delete(why) => format!("delete: {why}"),
            Fate::Missing => "missing: its chain is broken, its entry stays".into(),
            Fate::Drop => "missing, and needed by nothing: its entry is dropped".into(),
        };
        out.push(format!("  {} {}: {what}", kind(e), e.key));
    }
    for key in &t.retention.rooted {
        out.push(format!("  {}", rooted(key, store)));
    }
    out
}

/// What is said of an object no manifest lists that a chain goes on from.
fn rooted(key: &str, store: &Store) -> String {
    format!(
        "a chain goes on from {}, which no manifest lists (zfs3backup's): it and its parents are left alone",
        store.url_of(key)
    )
}

fn kind(e: &zab_store::manifest::Entry) -> &'static str {
    match e.kind {
        zab_store::manifest::Kind::Full => "full",
        zab_store::manifest::Kind::Incremental => "incr",
    }
}

/// Deletes `t`'s objects newest first, then writes its manifest without
/// them (or deletes it when nothing is left). A failed delete stops the
/// dataset; the manifest is still rewritten without what was deleted.
fn carry_out(t: &mut Thinning, store: &Store, log: &Log) {
    let doomed = deletes(t);
    let dropped: Vec<usize> = (0..t.manifest.objects.len())
        .filter(|&i| matches!(fate(t, i), Fate::Drop))
        .collect();
    if doomed.is_empty() && dropped.is_empty() {
        return;
    }
    for i in doomed {
        let key = &t.manifest.objects[i].key;
        if let Err(e) = store.delete(key) {
            log.error(format!("{TARGET} {}: deleting: {e}", store.url_of(key)));
            t.error = Some(format!("deleting {}: {e}", store.url_of(key)));
            break;
        }
        t.deleted.push(i);
    }
    let mut gone = t.deleted.clone();
    gone.extend(&dropped);
    let rest = retain::without(&t.manifest, &gone);
    let written = match rest.objects.is_empty() {
        true => store.delete_manifest(&t.dataset),
        false => store.write_manifest(&rest),
    };
    if let Err(e) = written {
        log.error(format!(
            "{TARGET} {}: writing the manifest: {e}",
            store.url_of(&t.dataset)
        ));
        t.error.get_or_insert(format!("writing the manifest: {e}"));
    }
}

/// `t` as a job of the records (and of the pictures): `destroy` names the
/// objects deleted (or to delete) by the snapshot their key ends at,
/// `spared` the objects kept against the schedule and the entries of
/// missing objects.
fn job_of(t: &Thinning, store: &Store, acted: bool) -> Job {
    let objects = &t.manifest.objects;
    let mut destroy: Vec<String> = deletes(t)
        .into_iter()
        .map(|i| objects[i].snapshot.clone())
        .collect();
    destroy.reverse();
    let mut spared = Vec::new();
    for (i, e) in objects.iter().enumerate() {
        match fate(t, i) {
            Fate::Keep(why) if why.starts_with("parent of") => spared.push(Spared {
                name: e.snapshot.clone(),
                why: format!("kept: {why}"),
            }),
            Fate::Missing => spared.push(Spared {
                name: e.snapshot.clone(),
                why: format!(
                    "missing from {}: the chain is broken, nothing it needs is deleted",
                    store.url_of(&e.key)
                ),
            }),
            _ => {}
        }
    }
    let kept = match (t.whole, t.left_alone) {
        (true, _) => 0,
        (_, true) => t.retention.plan.names.len(),
        _ => t.retention.kept,
    };
    let done = acted && t.error.is_none();
    Job {
        host: usize::MAX,
        side: TARGET,
        dataset: t.dataset.clone(),
        kept,
        release: Vec::new(),
        spared,
        destroy_dataset: t.whole,
        note: t.note.clone(),
        record: t.record.map(|i| (i, true)),
        plan: t.retention.plan.clone(),
        by_target: true,
        by_schedule: !t.whole && !t.left_alone,
        error: t.error.clone(),
        destroyed: if done { destroy.len() } else { 0 },
        destroy,
        done,
        bookmarks: Vec::new(),
    }
}
