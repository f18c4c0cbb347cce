//! zab-thin with ZFS: read the records, list every host's snapshots once
//! (all hosts at the same time), plan, look up the holds of the obsolete
//! snapshots (one `zfs holds` per host, only when there are any), then
//! destroy with one `zfs destroy ds@a,b,c` per dataset.
//!
//! Without a TARGET-PATH it thins the source (snapshot-only mode, where our
//! hold marks the common snapshot). With one, it lists the whole target tree
//! once, thins each source dataset and its target together (the common
//! snapshot is kept on both sides), thins target datasets whose source is no
//! longer selected, and applies `--destroy-missing`. A target dataset with
//! no record in the input is "missing" only when the source's selection,
//! asked again (one `zfs get` per source host, only when there are such
//! datasets), does not select its source either: a filter between the
//! stages never makes a backup look gone.
//!
//! Nothing is destroyed on incomplete information: input without the
//! previous stage's `end` record, or with a dataset that failed upstream, is
//! refused (exit 3) before any command runs, and a failed listing ends the
//! run (exit 4) before anything is destroyed. With `--skip-failed` (what
//! zfs-autobackup does, and what scripts/zfs-autobackup asks for) the failed
//! datasets are left alone instead, source and target, and the others are
//! thinned; failures counted by the end record but missing from the input
//! are still refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::Utc;
use serde_json::{json, Map, Value};
use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::ndjson::{read_stream, Stream, Writer};
use zab_core::record::{End, Record, Spared, ThinOutcome, ThinSide};
use zab_core::schedule::parse_duration;
use zab_core::select::{self, Options as SelectOptions};
use zab_core::zfs::{self, Snapshot};
use zab_core::Host;

use crate::cli::Args;
use crate::picture::{self, Timeline};
use crate::plan::{missing, not_missing, outcome, pair, Plan};

const TOOL: &str = "zab-thin";

/// How long zab-thin waits for the run lock after reading its input (the
/// stage before it may still be exiting), before it gives up (exit 75).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One dataset's destroys, on one host.
#[derive(Debug)]
struct Job {
    /// Index into `hosts`.
    host: usize,
    /// `[Source]` or `[Target]`, for messages.
    side: &'static str,
    dataset: String,
    kept: usize,
    destroy: Vec<String>,
    release: Vec<String>,
    spared: Vec<Spared>,
    /// `--destroy-missing`: then destroy the dataset itself.
    destroy_dataset: bool,
    note: Option<String>,
    /// The record it belongs to and whether it is its target side; None for
    /// a target dataset that is missing on the source.
    record: Option<(usize, bool)>,
    /// Set when a command failed.
    error: Option<String>,
    done: bool,
    /// The schedule's verdicts, for --explain and --svg.
    plan: Plan,
    /// Thinned by --keep-target (else --keep-source).
    by_target: bool,
    /// Decided by the schedule (false: by --destroy-missing), so the
    /// pictures show it.
    by_schedule: bool,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let backup = args
        .backup
        .as_deref()
        .ok_or_else(|| Error::Usage("BACKUP-NAME is required".into()))?;
    let fmt = args.naming.format(backup)?;
    let our_tag = args.holds.tag(backup);
    let property = select::property_name(&args.property_format, backup)?;
    let destroy_missing = args
        .destroy_missing
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| Error::Usage(format!("--destroy-missing: {e}")))?;
    if destroy_missing.is_some() && args.target.target_path.is_none() {
        return Err(Error::Usage("--destroy-missing needs a TARGET-PATH".into()));
    }
    args.target.path()?;
    if let Some(s) = &args.ssh_source {
        Host::ssh(s)?;
    }
    let log = args.common.log(TOOL);
    for line in args.keep_source.describe() {
        log.verbose(format!("[Source] {line}"));
    }
    if args.target.target_path.is_some() {
        for line in args.keep_target.describe() {
            log.verbose(format!("[Target] {line}"));
        }
    }

    let stream = read_stream(std::io::stdin().lock())?;
    stream.check(backup, args.ssh_source.as_deref())?;
    if let Some(t) = &args.target.target_path {
        zab_core::name::target_overlap(t, args.target.ssh_target.as_deref(), &stream.datasets)?;
    }
    // The run lock, only now that the whole input is read: in `zab-send |
    // zab-thin`, zab-send holds it until it exits, right after its end
    // record. A dry run changes nothing and takes none.
    let _lock = match args.test {
        true => None,
        false => Some(zab_core::lock::acquire(
            backup,
            args.target
                .target_path
                .as_deref()
                .map(|p| (args.target.ssh_target.as_deref(), p)),
            LOCK_WAIT,
        )?),
    };
    let failed_upstream = failed_upstream(&stream, args.skip_failed)?;
    for &i in &failed_upstream {
        log.verbose(format!(
            "[Source] {}: not thinned (failed: {})",
            stream.datasets[i].name,
            stream.datasets[i].error.as_deref().unwrap_or_default()
        ));
    }
    let selected = stream.selected_by_host();
    let upstream = stream.end.datasets;
    let mut datasets = stream.datasets;
    let now = Utc::now().timestamp();

    // The hosts: every source host in the records, then the target's.
    let mut hosts: Vec<(Option<String>, Host)> = Vec::new();
    let host_of =
        |dest: &Option<String>, hosts: &mut Vec<(Option<String>, Host)>| -> Result<usize, Error> {
            if let Some(i) = hosts.iter().position(|(d, _)| d == dest) {
                return Ok(i);
            }
            let host = args
                .common
                .host(dest.as_deref())?
                .with_read_only(args.read_only());
            hosts.push((dest.clone(), host));
            Ok(hosts.len() - 1)
        };
    let mut by_host: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (dest, idx) in selected {
        by_host.insert(host_of(&dest, &mut hosts)?, idx);
    }

    // Every read first, at the same time: one snapshot listing per source
    // host and one of the whole target tree. Any failure ends the run.
    let target_host = match &args.target.target_path {
        Some(_) => Some(host_of(&args.target.ssh_target, &mut hosts)?),
        None => None,
    };
    let (listed, tree) = std::thread::scope(|scope| {
        let sources: Vec<_> = by_host
            .iter()
            .map(|(&h, idx)| {
                let names: Vec<&str> = idx.iter().map(|&i| datasets[i].name.as_str()).collect();
                let host = &hosts[h].1;
                scope.spawn(move || zfs::list_snapshots(host, &names))
            })
            .collect();
        let tree = match (target_host, &args.target.target_path) {
            (Some(h), Some(path)) => Some(zfs::list_tree(&hosts[h].1, path)),
            _ => None,
        };
        let listed: Vec<_> = sources
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (listed, tree)
    });
    let mut src_snaps: BTreeMap<usize, Vec<Snapshot>> = BTreeMap::new();
    for (idx, listed) in by_host.values().zip(listed) {
        let mut listed = listed?;
        for &i in idx {
            src_snaps.insert(i, listed.remove(&datasets[i].name).unwrap_or_default());
        }
    }
    let target = match (&args.target.target_path, target_host, tree) {
        (Some(_), Some(h), Some(tree)) => {
            let tree = tree?;
            let names = args.target.map(
                by_host
                    .values()
                    .flatten()
                    .map(|&i| datasets[i].name.as_str()),
            )?;
            let map: BTreeMap<usize, String> = by_host
                .values()
                .flatten()
                .map(|&i| (i, names[datasets[i].name.as_str()].clone()))
                .collect();
            Some((h, tree, map))
        }
        _ => None,
    };

    // Plan.
    let mut jobs: Vec<Job> = Vec::new();
    let job = |host, side: &'static str, dataset: &str, plan: &Plan, record| Job {
        host,
        side,
        dataset: dataset.to_string(),
        kept: plan.kept(),
        plan: plan.clone(),
        by_target: side == "[Target]",
        by_schedule: true,
        destroy: Vec::new(),
        release: Vec::new(),
        spared: Vec::new(),
        destroy_dataset: false,
        note: None,
        record,
        error: None,
        done: false,
    };
    // (job index, plan, spare) awaiting holds.
    let mut pending: Vec<(usize, Plan, BTreeMap<String, String>, bool)> = Vec::new();
    for (&h, idx) in &by_host {
        for &i in idx {
            let src = &src_snaps[&i];
            let name = datasets[i].name.clone();
            match &target {
                None => {
                    let p = Plan::new(src, &fmt, &args.keep_source, now, &[]);
                    jobs.push(job(h, "[Source]", &name, &p, Some((i, false))));
                    pending.push((jobs.len() - 1, p, BTreeMap::new(), true));
                }
                Some((th, tree, map)) => {
                    let tname = &map[&i];
                    let tsnaps = tree.snapshots.get(tname).cloned().unwrap_or_default();
                    let pr = pair(
                        src,
                        &tsnaps,
                        &fmt,
                        &args.keep_source,
                        &args.keep_target,
                        now,
                        !args.target.no_guid_check,
                    );
                    if let Some(c) = &pr.common {
                        log.debug(format!("{name}: common snapshot {c}"));
                    }
                    jobs.push(job(h, "[Source]", &name, &pr.source, Some((i, false))));
                    pending.push((jobs.len() - 1, pr.source, pr.unsent, false));
                    if tree.snapshots.contains_key(tname) {
                        jobs.push(job(*th, "[Target]", tname, &pr.target, Some((i, true))));
                        pending.push((jobs.len() - 1, pr.target, BTreeMap::new(), false));
                    }
                }
            }
        }
    }
    // Target datasets whose source is not selected (any more). The targets
    // of datasets that failed upstream (--skip-failed) are not "missing".
    if let Some((th, tree, map)) = &target {
        let root = args.target.target_path.as_deref().unwrap_or_default();
        let left_alone: Vec<String> = failed_upstream
            .iter()
            .filter_map(|&i| zfs::target_name(&datasets[i].name, root, args.target.strip_path).ok())
            .collect();
        let used: BTreeSet<&String> = map.values().chain(&left_alone).collect();
        // The target path itself is where backups go, never "missing"; a
        // container with no snapshot of ours has nothing to thin or destroy.
        let candidates: Vec<&str> = tree
            .datasets
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !used.contains(t) && *t != root)
            .filter(|t| {
                tree.snapshots[*t]
                    .iter()
                    .any(|s| fmt.parse(&s.name).is_some())
                    || !tree.has_children(t)
            })
            .map(String::as_str)
            .collect();
        // Only then is the source's selection asked again, once per source
        // host: a record a filter dropped must not make a backup look gone.
        let mut kept = BTreeMap::new();
        if !candidates.is_empty() {
            let mut sources: BTreeSet<Option<String>> =
                datasets.iter().map(|d| d.host.clone()).collect();
            if datasets.is_empty() || args.ssh_source.is_some() {
                sources.insert(args.ssh_source.clone());
            }
            let mut selections = Vec::new();
            for dest in sources {
                let h = host_of(&dest, &mut hosts)?;
                let opts = SelectOptions {
                    backup: backup.to_string(),
                    property: property.clone(),
                    host: dest.clone(),
                    exclude_paths: match dest == args.target.ssh_target {
                        true => vec![root.to_string()],
                        false => Vec::new(),
                    },
                    exclude_received: false,
                    exclude_unchanged: 0,
                };
                let sel = select::list(&hosts[h].1, &opts).map_err(|e| e.to_string());
                if let Err(e) = &sel {
                    log.error(format!("[Source] reading the selection: {e}"));
                }
                selections.push((hosts[h].1.name().to_string(), sel));
            }
            kept = not_missing(
                &candidates,
                &selections,
                &datasets,
                upstream,
                root,
                args.target.strip_path,
            );
        }
        for (tname, _) in &tree.datasets {
            if used.contains(tname) || tname == root {
                continue;
            }
            let tsnaps = &tree.snapshots[tname];
            if let Some(note) = kept.get(tname) {
                let p = Plan::new(tsnaps, &fmt, &args.keep_target, now, &[]);
                let mut j = job(*th, "[Target]", tname, &p, None);
                j.kept = p.names.len();
                j.note = Some(note.clone());
                j.by_schedule = false;
                jobs.push(j);
                continue;
            }
            let decided = destroy_missing
                .and_then(|d| missing(tsnaps, &fmt, now, d, tree.has_children(tname)));
            match decided {
                Some(m) if !m.destroy.is_empty() || m.destroy_dataset => {
                    let p = Plan::new(tsnaps, &fmt, &args.keep_target, now, &[]);
                    let mut j = job(*th, "[Target]", tname, &p, None);
                    j.kept = p.names.len() - m.destroy.len();
                    j.destroy = m.destroy;
                    j.destroy_dataset = m.destroy_dataset;
                    j.note = Some(m.note);
                    j.by_schedule = false;
                    jobs.push(j);
                }
                other => {
                    let p = Plan::new(tsnaps, &fmt, &args.keep_target, now, &[]);
                    let mut j = job(*th, "[Target]", tname, &p, None);
                    j.note = other.map(|m| m.note);
                    jobs.push(j);
                    pending.push((jobs.len() - 1, p, BTreeMap::new(), false));
                }
            }
        }
    }

    // Holds: one query per host, for the obsolete snapshots (and for
    // everything --destroy-missing would destroy). The listings do not
    // count holds: it would make zfs read every property of every snapshot.
    let mut want: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (j, p, spare, _) in &pending {
        for s in p.obsolete() {
            if !spare.contains_key(s) {
                want.entry(jobs[*j].host)
                    .or_default()
                    .push(format!("{}@{s}", jobs[*j].dataset));
            }
        }
    }
    if let Some((th, tree, _)) = &target {
        for j in jobs
            .iter()
            .filter(|j| j.record.is_none() && !j.destroy.is_empty())
        {
            for s in &tree.snapshots[&j.dataset] {
                if j.destroy.contains(&s.name) {
                    want.entry(*th)
                        .or_default()
                        .push(format!("{}@{}", j.dataset, s.name));
                }
            }
        }
    }
    let mut holds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (h, snaps) in &want {
        let refs: Vec<&str> = snaps.iter().map(String::as_str).collect();
        holds.extend(zfs::holds(&hosts[*h].1, &refs)?);
    }
    for (j, p, spare, snapshot_only) in &pending {
        let o = outcome(
            &jobs[*j].dataset,
            p,
            &holds,
            &our_tag,
            *snapshot_only,
            spare,
        );
        let job = &mut jobs[*j];
        job.kept += o.spared.len();
        job.destroy = o.destroy;
        job.release = o.release;
        job.spared = o.spared;
    }
    // --destroy-missing: anyone else's hold stops it; ours is released.
    for j in jobs
        .iter_mut()
        .filter(|j| j.record.is_none() && !j.destroy.is_empty())
    {
        let mut blocked = Vec::new();
        for s in &j.destroy {
            let tags = holds
                .get(&format!("{}@{s}", j.dataset))
                .cloned()
                .unwrap_or_default();
            if tags.iter().any(|t| t != &our_tag) {
                blocked.push(s.clone());
            } else if !tags.is_empty() {
                j.release.push(s.clone());
            }
        }
        if !blocked.is_empty() {
            for s in &blocked {
                j.spared.push(Spared {
                    name: s.clone(),
                    why: "held by someone else".into(),
                });
            }
            j.destroy.retain(|s| !blocked.contains(s));
            j.release.retain(|s| !blocked.contains(s));
            j.destroy_dataset = false;
            j.note = Some("Still held by others".into());
        }
    }

    // The pictures, before anything is destroyed.
    pictures(args, &jobs, now)?;

    // Act.
    let act = !(args.test || args.no_thinning);
    execute(&mut jobs, &hosts, &our_tag, act, &log);

    // Records.
    for j in &jobs {
        let Some((i, is_target)) = j.record else {
            continue;
        };
        let side = ThinSide {
            dataset: j.dataset.clone(),
            kept: j.kept,
            destroy: j.destroy.clone(),
            destroyed: j.done,
            spared: j.spared.clone(),
        };
        let d = &mut datasets[i];
        if let Some(e) = &j.error {
            d.error = Some(e.clone());
        }
        match (&mut d.thin, is_target) {
            (Some(t), true) => t.target = Some(side),
            (_, false) => {
                d.thin = Some(ThinOutcome {
                    source: side,
                    target: None,
                })
            }
            (None, true) => {}
        }
    }
    let failed = datasets.iter().filter(|d| d.error.is_some()).count();
    let stdout = std::io::stdout();
    let mut out = Writer::new(stdout.lock());
    for d in &datasets {
        out.write(&Record::Dataset(d.clone()))?;
    }
    let destroyed: usize = jobs
        .iter()
        .filter(|j| j.done)
        .map(|j| j.destroy.len())
        .sum();
    let planned: usize = jobs.iter().map(|j| j.destroy.len()).sum();
    let mut end = End::new(TOOL, datasets.len(), failed);
    let mut extra = Map::new();
    extra.insert("destroyed".into(), json!(destroyed));
    if !act {
        extra.insert("would_destroy".into(), json!(planned));
    }
    if target.is_some() {
        let list: Vec<Value> = jobs
            .iter()
            .filter(|j| j.record.is_none())
            .map(|j| {
                let mut m = json!({
                    "dataset": j.dataset,
                    "kept": j.kept,
                    "destroy": j.destroy,
                    "destroyed": j.done,
                    "dataset_destroyed": j.done && j.destroy_dataset && j.error.is_none(),
                });
                if let Some(n) = &j.note {
                    m["note"] = json!(n);
                }
                if let Some(e) = &j.error {
                    m["error"] = json!(e);
                }
                m
            })
            .collect();
        extra.insert("missing".into(), Value::Array(list));
    }
    end.extra = extra;
    out.write(&Record::End(end))?;
    out.into_inner().flush()?;
    // As upstream, errors on target datasets missing on the source are
    // reported (stderr, the end record) but not counted as failed datasets.
    if failed > 0 {
        return Err(Error::Failed(failed));
    }
    Ok(())
}

/// The records that failed upstream, which this run leaves alone. Without
/// `--skip-failed` any failure refuses the whole input. With it, the end
/// record must not count more failures than the input carries: a filter
/// that dropped failed records would hide which datasets to leave alone.
fn failed_upstream(stream: &Stream, skip_failed: bool) -> Result<Vec<usize>, Error> {
    if !skip_failed {
        stream.refuse_failures("thinning")?;
        return Ok(Vec::new());
    }
    let failed: Vec<usize> = stream
        .datasets
        .iter()
        .enumerate()
        .filter(|(_, d)| d.error.is_some())
        .map(|(i, _)| i)
        .collect();
    if stream.end.failed > failed.len() {
        return Err(Error::Input {
            line: 0,
            message: format!(
                "{} reports {} failed dataset(s) but the input carries {}: \
                 not thinning without knowing which to leave alone",
                stream.end.tool,
                stream.end.failed,
                failed.len()
            ),
        });
    }
    Ok(failed)
}

/// `--explain` (on stderr: stdout carries the records) and `--svg FILE`,
/// one timeline per dataset thinned.
fn pictures(args: &Args, jobs: &[Job], now: i64) -> Result<(), Error> {
    if !args.explain && args.svg.is_none() {
        return Ok(());
    }
    let shown: Vec<&Job> = jobs.iter().filter(|j| j.by_schedule).collect();
    let labels: Vec<String> = shown
        .iter()
        .map(|j| format!("{} {}", j.side, j.dataset))
        .collect();
    let timelines: Vec<Timeline> = shown
        .iter()
        .zip(&labels)
        .map(|(j, label)| Timeline {
            dataset: label,
            schedule: if j.by_target {
                &args.keep_target
            } else {
                &args.keep_source
            },
            now,
            names: &j.plan.names,
            times: &j.plan.times,
            verdicts: &j.plan.verdicts,
        })
        .collect();
    if args.explain {
        for t in &timelines {
            eprintln!("{}", picture::explain(t));
        }
    }
    if let Some(path) = &args.svg {
        picture::write_svg(path, &picture::svg(&timelines))?;
    }
    Ok(())
}

/// Releases our holds (one `zfs release` per host), then destroys each
/// job's snapshots with one `zfs destroy`, and its dataset when asked. A
/// failure marks that job and leaves the others going.
fn execute(
    jobs: &mut [Job],
    hosts: &[(Option<String>, Host)],
    our_tag: &str,
    act: bool,
    log: &Log,
) {
    for j in jobs.iter() {
        for s in &j.spared {
            log.verbose(format!(
                "{} {}@{}: Keeping ({})",
                j.side, j.dataset, s.name, s.why
            ));
        }
        if let Some(n) = &j.note {
            log.verbose(format!("{} {}: {n}", j.side, j.dataset));
        }
        for s in &j.destroy {
            log.verbose(format!("{} {}@{s}: Destroying", j.side, j.dataset));
        }
    }
    if !act {
        return;
    }
    for (h, (_, host)) in hosts.iter().enumerate() {
        let snaps: Vec<String> = jobs
            .iter()
            .filter(|j| j.host == h)
            .flat_map(|j| j.release.iter().map(move |s| format!("{}@{s}", j.dataset)))
            .collect();
        if snaps.is_empty() {
            continue;
        }
        let refs: Vec<&str> = snaps.iter().map(String::as_str).collect();
        if let Err(e) = host.output(&zfs::release_args(our_tag, &refs)) {
            let why = format!("releasing our holds: {e}");
            log.error(why.clone());
            for j in jobs
                .iter_mut()
                .filter(|j| j.host == h && !j.release.is_empty())
            {
                j.error = Some(why.clone());
            }
        }
    }
    for j in jobs.iter_mut() {
        if j.error.is_some() || (j.destroy.is_empty() && !j.destroy_dataset) {
            continue;
        }
        let host = &hosts[j.host].1;
        if !j.destroy.is_empty() {
            let names: Vec<&str> = j.destroy.iter().map(String::as_str).collect();
            if let Err(e) = host.output(&zfs::destroy_snapshots_args(&j.dataset, &names)) {
                let why = format!("destroying {} snapshot(s): {e}", names.len());
                log.error(format!("{} {}: {why}", j.side, j.dataset));
                j.error = Some(why);
                continue;
            }
        }
        j.done = true;
        if j.destroy_dataset {
            if let Err(e) = host.output(&["zfs", "destroy", j.dataset.as_str()]) {
                let why = format!("destroying the dataset: {e}");
                log.error(format!("{} {}: {why}", j.side, j.dataset));
                j.error = Some(why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"kind":"dataset","backup":"b","host":null,"name":"tank/a","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":7,"written":0}"#;
    const FAILED: &str = r#"{"kind":"dataset","backup":"b","host":null,"name":"tank/b","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":8,"written":0,"error":"zfs recv failed"}"#;

    fn stream(lines: &[&str], failed: usize) -> Stream {
        let end = format!(
            r#"{{"kind":"end","tool":"zab-send","version":"0.1.0","datasets":{},"failed":{failed}}}"#,
            lines.len()
        );
        let text: String = lines
            .iter()
            .copied()
            .chain([end.as_str()])
            .map(|l| format!("{l}\n"))
            .collect();
        read_stream(text.as_bytes()).unwrap()
    }

    #[test]
    fn failures_upstream_are_refused_by_default() {
        let s = stream(&[OK, FAILED], 1);
        let e = failed_upstream(&s, false).unwrap_err();
        assert!(matches!(e, Error::Input { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("tank/b failed upstream"), "{e}");
        assert_eq!(
            failed_upstream(&stream(&[OK], 0), false).unwrap(),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn skip_failed_leaves_the_failed_alone() {
        assert_eq!(
            failed_upstream(&stream(&[OK, FAILED], 1), true).unwrap(),
            vec![1]
        );
        assert_eq!(
            failed_upstream(&stream(&[OK], 0), true).unwrap(),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn skip_failed_refuses_failures_it_cannot_see() {
        // A filter dropped the failed record: which target is not missing?
        let e = failed_upstream(&stream(&[OK], 1), true).unwrap_err();
        assert!(
            e.to_string()
                .contains("zab-send reports 1 failed dataset(s) but the input carries 0"),
            "{e}"
        );
    }
}
