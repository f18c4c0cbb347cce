//! zab-snap's run: read the records, query each host twice, then take one
//! `zfs snapshot` per pool between the hooks, and write the records back.
//!
//! Nothing is changed until every host has been queried: a failed listing
//! ends the run (exit 4) before any hook or snapshot runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Map};
use zab_core::cli::Log;
use zab_core::error::{CommandError, Error};
use zab_core::ndjson::{read_stream, Writer};
use zab_core::record::{End, Record, SnapStatus};
use zab_core::zfs;
use zab_core::Host;

use crate::cli::Args;
use crate::plan::{by_pool, decide, latest_ours, written_query, Decision, Written};

const TOOL: &str = "zab-snap";

pub fn run(args: &Args) -> Result<(), Error> {
    let fmt = args.naming.format(&args.backup)?;
    if let Some(s) = &args.ssh_source {
        Host::ssh(s)?;
    }
    let log = args.common.log(TOOL);
    let min_change = args.min_change();

    let stream = read_stream(std::io::stdin().lock())?;
    stream.check(&args.backup, args.ssh_source.as_deref())?;
    // The records this run acts on, by host (None = this machine).
    let hosts = stream.selected_by_host();
    let mut datasets = stream.datasets;

    // Every read first, on every host: one listing, one `zfs get`.
    let name = fmt.name_at(Utc::now());
    let mut decisions: Vec<Option<Decision>> = vec![None; datasets.len()];
    for (dest, idx) in &hosts {
        let host = args
            .common
            .host(dest.as_deref())?
            .with_read_only(args.read_only());
        let names: Vec<&str> = idx.iter().map(|&i| datasets[i].name.as_str()).collect();
        // With --allow-empty every dataset is snapshotted whatever it holds,
        // so the listing is skipped, as zfs-autobackup skips it.
        let snaps = if min_change > 0 {
            zfs::list_snapshots(&host, &names)?
        } else {
            BTreeMap::new()
        };
        let latest: Vec<(String, Option<String>)> = names
            .iter()
            .map(|n| {
                let l = snaps.get(*n).and_then(|s| latest_ours(s, &fmt));
                (n.to_string(), l.map(str::to_string))
            })
            .collect();
        // written@<our newest>, for every dataset that has one: one `zfs get`.
        let (wnames, wsets) = written_query(&latest, min_change);
        let written = if wnames.is_empty() {
            Written::new()
        } else {
            zfs::written(&host, &strs(&wnames), &strs(&wsets))?
        };
        for ((&i, n), (_, prev)) in idx.iter().zip(&names).zip(&latest) {
            let s = snaps.get(*n).map(Vec::as_slice).unwrap_or_default();
            decisions[i] = Some(decide(n, &name, s, prev.as_deref(), &written, min_change));
        }
    }
    for (i, dec) in decisions.iter().enumerate() {
        let Some(dec) = dec else { continue };
        let ds = &datasets[i].name;
        match (&dec.error, &dec.outcome.reason) {
            (Some(e), _) => log.error(format!("[Source] {ds}: {e}")),
            (None, Some(r)) => log.verbose(format!("[Source] {ds}: {}", capitalise(r))),
            _ => {}
        }
    }

    let wanted = |d: &Option<Decision>| {
        d.as_ref()
            .is_some_and(|d| d.outcome.status == SnapStatus::WouldCreate)
    };
    let mut hook_failures = 0;
    let mut pre_hook_failures = 0;
    let mut interrupted = None;
    if !decisions.iter().any(wanted) {
        log.verbose("No changes anywhere: not creating snapshots.");
    } else if args.test {
        for (dest, idx) in &hosts {
            let host = args
                .common
                .host(dest.as_deref())?
                .with_read_only(args.read_only());
            for cmd in &args.pre_snapshot_cmd {
                log.verbose(format!(
                    "[Source] --test: not running pre-snapshot-cmd: {cmd}"
                ));
            }
            let take: Vec<&str> = idx
                .iter()
                .filter(|&&i| wanted(&decisions[i]))
                .map(|&i| datasets[i].name.as_str())
                .collect();
            for (pool, members) in by_pool(take) {
                let argv = zfs::snapshot_args(&args.snapshot_properties(), &members, &name);
                log.verbose(format!(
                    "[Source] Creating snapshots {name} in pool {pool} (--test: not run)"
                ));
                log.debug(format!("would run: {}", host.display(&argv)));
            }
            for cmd in &args.post_snapshot_cmd {
                log.verbose(format!(
                    "[Source] --test: not running post-snapshot-cmd: {cmd}"
                ));
            }
        }
    } else {
        // From here on, a SIGINT or SIGTERM must not skip the post-snapshot
        // commands (they may undo what a pre-snapshot command did).
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // Installing fails only if a handler exists already; then the default
        // behaviour stays, which is no worse than before.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
        for (dest, idx) in &hosts {
            let host = args
                .common
                .host(dest.as_deref())?
                .with_read_only(args.read_only());
            let take: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| wanted(&decisions[i]))
                .collect();
            if take.is_empty() {
                continue;
            }
            let fail = |decisions: &mut [Option<Decision>], members: &[usize], why: &str| {
                for &i in members {
                    if let Some(d) = decisions[i].as_mut() {
                        d.outcome.status = SnapStatus::Failed;
                        d.error = Some(why.to_string());
                    }
                }
            };
            let mut pre_ok = true;
            for cmd in &args.pre_snapshot_cmd {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Err(e) = hook(&host, "pre-snapshot-cmd", cmd, &log) {
                    log.error(format!(
                        "[Source] {e}; not snapshotting {} dataset(s)",
                        take.len()
                    ));
                    fail(&mut decisions, &take, &format!("not snapshotted: {e}"));
                    pre_hook_failures += 1;
                    pre_ok = false;
                    break;
                }
            }
            if pre_ok && !stop.load(Ordering::SeqCst) {
                let names: Vec<&str> = take.iter().map(|&i| datasets[i].name.as_str()).collect();
                let index: BTreeMap<&str, usize> =
                    names.iter().copied().zip(take.clone()).collect();
                for (pool, members) in by_pool(names.iter().copied()) {
                    let argv = zfs::snapshot_args(&args.snapshot_properties(), &members, &name);
                    log.verbose(format!("[Source] Creating snapshots {name} in pool {pool}"));
                    let member_idx: Vec<usize> = members.iter().map(|m| index[m]).collect();
                    match host.output(&argv) {
                        Ok(_) => {
                            for &i in &member_idx {
                                if let Some(d) = decisions[i].as_mut() {
                                    d.outcome.status = SnapStatus::Created;
                                }
                            }
                        }
                        Err(e) => {
                            let why = snapshot_error(pool, &host, &e);
                            log.error(format!(
                                "[Source] {why} ({} dataset(s) not snapshotted)",
                                members.len()
                            ));
                            fail(&mut decisions, &member_idx, &why);
                        }
                    }
                }
            }
            for cmd in &args.post_snapshot_cmd {
                if let Err(e) = hook(&host, "post-snapshot-cmd", cmd, &log) {
                    log.error(format!("[Source] {e}"));
                    hook_failures += 1;
                }
            }
            if stop.load(Ordering::SeqCst) {
                interrupted = Some(format!(
                    "snapshots taken so far are kept; post-snapshot commands were run on {}",
                    host.name()
                ));
                break;
            }
        }
    }
    if let Some(why) = interrupted {
        return Err(Error::Interrupted(why));
    }

    // The records, in input order, each with what became of its snapshot.
    let (mut created, mut skipped, mut would) = (0, 0, 0);
    for (d, dec) in datasets.iter_mut().zip(decisions) {
        let Some(dec) = dec else { continue };
        match dec.outcome.status {
            SnapStatus::Created => created += 1,
            SnapStatus::Skipped => skipped += 1,
            SnapStatus::WouldCreate => would += 1,
            SnapStatus::Failed => {}
        }
        if dec.error.is_some() {
            d.error = dec.error;
        }
        d.snapshot = Some(dec.outcome);
    }
    let failed = datasets.iter().filter(|d| d.error.is_some()).count();
    let stdout = std::io::stdout();
    let mut out = Writer::new(stdout.lock());
    for d in &datasets {
        out.write(&Record::Dataset(d.clone()))?;
    }
    let mut end = End::new(TOOL, datasets.len(), failed);
    let mut extra = Map::new();
    extra.insert("snapshot".into(), json!(name));
    extra.insert("created".into(), json!(created));
    extra.insert("skipped".into(), json!(skipped));
    if args.test {
        extra.insert("would_create".into(), json!(would));
    }
    if hook_failures > 0 {
        extra.insert("hook_failures".into(), json!(hook_failures));
    }
    if pre_hook_failures > 0 {
        extra.insert("pre_hook_failures".into(), json!(pre_hook_failures));
    }
    end.extra = extra;
    out.write(&Record::End(end))?;
    out.into_inner().flush()?;

    if failed > 0 {
        return Err(Error::Failed(failed));
    }
    if hook_failures > 0 {
        return Err(Error::Failed(0));
    }
    Ok(())
}

/// Runs one hook command with `sh -c` on `host`. Its standard output is shown
/// with `--debug`, its standard error always (as zfs-autobackup does).
fn hook(host: &Host, kind: &str, cmd: &str, log: &Log) -> Result<(), String> {
    log.verbose(format!("[Source] Running {kind}: {cmd}"));
    match host.capture(&["sh", "-c", cmd]) {
        Ok(c) => {
            for l in c.stdout.lines() {
                log.debug(format!("{kind} STDOUT > {l}"));
            }
            for l in c.stderr.lines().filter(|l| !l.trim().is_empty()) {
                log.error(format!("[Source] {kind} STDERR > {l}"));
            }
            Ok(())
        }
        Err(Error::Command(e)) => Err(hook_error(kind, cmd, &e)),
        Err(e) => Err(format!("{kind} {cmd:?} on {}: {e}", host.name())),
    }
}

fn hook_error(kind: &str, cmd: &str, e: &CommandError) -> String {
    if e.unreachable() {
        return e.to_string();
    }
    let mut s = format!("{kind} {cmd:?} failed on {}: {}", e.host, e.status);
    let stderr = e.stderr_line();
    if !stderr.is_empty() {
        s += &format!(": {stderr}");
    }
    s
}

/// The per-dataset error when a pool's `zfs snapshot` failed: short, without
/// the command line (which names every dataset of the pool).
fn snapshot_error(pool: &str, host: &Host, e: &Error) -> String {
    match e {
        Error::Command(c) if !c.unreachable() && !c.not_found() => {
            let mut s = format!(
                "zfs snapshot in pool {pool} failed on {}: {}",
                c.host, c.status
            );
            let stderr = c.stderr_line();
            if !stderr.is_empty() {
                s += &format!(": {stderr}");
            }
            s
        }
        e => format!("zfs snapshot in pool {pool} on {}: {e}", host.name()),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
