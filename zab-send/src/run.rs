//! zab-send's run: read the records, list each side once, plan every
//! dataset as data, then carry the plans out (parents first, `--jobs` at a
//! time), hold the new common snapshots, mount what arrived for the first
//! time, and write the records.
//!
//! Commands per run, whatever the number of datasets: one snapshot listing
//! per source host, one tree listing and one `zpool get` on the target;
//! then per dataset its transfers; then at most one `zfs holds`, one
//! `zfs hold` and one `zfs release` per side. Extra commands only where
//! there is extra work: a dry run per resume token, a `zfs create` per
//! missing parent, the target's encryption when a plain stream may land in
//! an encrypted dataset (flags.rs), and after a first receive one `zfs get`
//! of the received subtrees and their mounts (mounts.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};

use regex::Regex;
use serde_json::{json, Map};
use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::host::quote_argv;
use zab_core::ndjson::{read_stream, Writer};
use zab_core::record::{End, Record, SendOutcome, SendStatus, SnapStatus, Transfer, TransferKind};
use zab_core::zfs::{self, DatasetType, Snapshot};
use zab_core::Host;

use crate::cli::Args;
use crate::flags;
use crate::holds;
use crate::listing::{self, Features, TargetDs};
use crate::mounts;
use crate::plan::{self, Plan, Resume, Step};
use crate::stream::{self, Buffer, BufferTool, StreamSpec};
use crate::transfer::{self, Running, Sides};

const TOOL: &str = "zab-send";

/// One selected dataset's work.
#[derive(Debug)]
struct Job {
    /// Index into the records.
    record: usize,
    /// Index into `hosts` (the source host).
    host: usize,
    source: String,
    target: String,
    kind: DatasetType,
    raw: bool,
    /// The source is encrypted (read only where it matters, see below).
    encrypted: bool,
    /// What it receives lands in an encrypted dataset (read only where it
    /// decides `-e`).
    lands_encrypted: bool,
    /// The target existed before this run (with at least a partial receive).
    existed: bool,
    plan: Plan,
    /// The jobs that must finish first (the nearest ancestor in this run).
    after: Option<usize>,
}

/// What carrying out a job gave.
#[derive(Debug, Default, Clone)]
struct Done {
    transfers: Vec<Transfer>,
    notes: Vec<String>,
    error: Option<String>,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let log = args.common.log(TOOL);
    let fmt = args.naming.format(&args.backup)?;
    let tag = args.holds.tag(&args.backup);
    let target_path = args.target.required_path()?;
    let exclude = args
        .exclude_snapshot_pattern
        .iter()
        .map(|p| {
            Regex::new(p)
                .map_err(|e| Error::Usage(format!("--exclude-snapshot-pattern {p:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The target tree does not depend on the records: without the options
    // that destroy or roll back on the target, it is listed from the start,
    // while the stages before this one still run and while the sources are
    // listed (a read, as that of a run started a moment later). With them,
    // it is listed after the input and the sources, as before.
    let target_host = args
        .common
        .host(args.target.ssh_target.as_deref())?
        .with_read_only(args.read_only());
    // The run lock, before anything is read or changed, held to the end. A
    // read-only run (--test, --plan) changes nothing and takes none.
    let _lock = match args.read_only() {
        Some(_) => None,
        None => Some(zab_core::lock::acquire(
            &args.backup,
            Some((args.target.ssh_target.as_deref(), target_path)),
            std::time::Duration::ZERO,
        )?),
    };
    let early = Early(
        (!(args.destroy_incompatible || args.rollback || args.force)).then(|| {
            let (host, root) = (target_host.clone(), target_path.to_string());
            std::thread::spawn(move || list_target(&host, &root))
        }),
    );
    let stdin = std::io::stdin();
    let stream = read_stream(stdin.lock())?;
    stream.check(&args.backup, args.ssh_source.as_deref())?;
    let mut datasets = stream.datasets;
    zab_core::name::target_overlap(target_path, args.target.ssh_target.as_deref(), &datasets)?;

    // Hosts and target names; collisions and over-stripping end the run
    // before anything is done.
    let by_host = {
        let mut m: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for (i, d) in datasets.iter().enumerate() {
            if d.selected && d.error.is_none() {
                m.entry(d.host.clone()).or_default().push(i);
            }
        }
        m
    };
    let map = args.target.map(
        by_host
            .values()
            .flatten()
            .map(|&i| datasets[i].name.as_str()),
    )?;
    let mut hosts: Vec<Host> = Vec::new();
    let mut picked: Vec<(usize, usize, String)> = Vec::new(); // (record, host, target)
    for (dest, idx) in &by_host {
        hosts.push(
            args.common
                .host(dest.as_deref())?
                .with_read_only(args.read_only()),
        );
        let h = hosts.len() - 1;
        for &i in idx {
            let t = map[datasets[i].name.as_str()].clone();
            picked.push((i, h, t));
        }
    }

    // The listings: each source host (while the target's goes on), then the
    // target tree.
    let mut sources: BTreeMap<String, Vec<Snapshot>> = BTreeMap::new();
    for (h, host) in hosts.iter().enumerate() {
        let names: Vec<&str> = picked
            .iter()
            .filter(|p| p.1 == h)
            .map(|p| datasets[p.0].name.as_str())
            .collect();
        sources.extend(zfs::list_snapshots(host, &names)?);
    }
    let target_tree = match early.take() {
        Some(listing) => listing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
        None => list_target(&target_host, target_path)?,
    };

    // Plans.
    let now = chrono::Utc::now().timestamp();
    let options = plan::Options {
        format: &fmt,
        other_snapshots: args.other_snapshots,
        exclude: &exclude,
        keep_target: &args.keep_target,
        now,
        guid_check: !args.target.no_guid_check,
        destroy_incompatible: args.destroy_incompatible,
        rollback: args.rollback,
    };
    // What each plan starts from: the source's snapshots and where the
    // target's resume token leads (asked once).
    let mut inputs: Vec<(Vec<Snapshot>, Option<String>)> = Vec::new();
    for (record, host, target) in &picked {
        let name = &datasets[*record].name;
        let mut snaps = sources.get(name).cloned().unwrap_or_default();
        // `zab-snap --test` upstream: plan as if its snapshot had been taken,
        // so a dry run shows what a real run would send.
        if args.test || args.plan {
            if let Some(s) = datasets[*record]
                .snapshot
                .as_ref()
                .filter(|s| s.status == SnapStatus::WouldCreate)
            {
                if !snaps.iter().any(|x| x.name == s.name) {
                    let txg = snaps.last().map_or(0, |x| x.createtxg) + 1;
                    snaps.push(Snapshot {
                        name: s.name.clone(),
                        createtxg: txg,
                        guid: 0,
                        userrefs: None,
                    });
                }
            }
        }
        let token_to = match target_tree
            .get(target)
            .and_then(|t| t.target.token.as_deref())
        {
            Some(token) => token_target(&hosts[*host], token, name, &log),
            None => None,
        };
        inputs.push((snaps, token_to));
    }
    let plan_one = |k: usize, raw: bool| -> Job {
        let (record, host, target) = &picked[k];
        let (snaps, token_to) = &inputs[k];
        let name = datasets[*record].name.clone();
        let tgt = target_tree.get(target);
        let mut p = plan::plan(
            &name,
            snaps,
            tgt.map(|t| &t.target),
            raw,
            token_to.as_deref(),
            &options,
        );
        if snaps.is_empty() && p.error.is_none() {
            p.error = Some("no snapshots to send: run zab-snap first".into());
        }
        Job {
            record: *record,
            host: *host,
            source: name,
            target: target.clone(),
            kind: datasets[*record].kind,
            raw,
            encrypted: raw,
            lands_encrypted: false,
            existed: tgt.is_some(),
            plan: p,
            after: None,
        }
    };
    let mut jobs: Vec<Job> = (0..picked.len()).map(|k| plan_one(k, false)).collect();
    // Encrypted sources are sent raw (unless --decrypt, then without -p),
    // which changes a plan or the flags only where it sends or the target
    // has snapshots after the common one: only those datasets' encryption
    // is read, one call per host.
    {
        let ask: Vec<usize> = (0..jobs.len())
            .filter(|&k| {
                jobs[k]
                    .plan
                    .raw_matters(target_tree.get(&picked[k].2).map(|t| &t.target))
            })
            .collect();
        for (h, host) in hosts.iter().enumerate() {
            let names: Vec<&str> = ask
                .iter()
                .filter(|&&k| picked[k].1 == h)
                .map(|&k| datasets[picked[k].0].name.as_str())
                .collect();
            if names.is_empty() {
                continue;
            }
            let encrypted = list_encryption(host, &names)?;
            for &k in &ask {
                let name = &datasets[picked[k].0].name;
                if picked[k].1 == h && encrypted.contains(name) {
                    if args.decrypt {
                        jobs[k].encrypted = true;
                    } else {
                        jobs[k] = plan_one(k, true);
                    }
                }
            }
        }
    }
    for j in 0..jobs.len() {
        jobs[j].after = (0..jobs.len())
            .filter(|&i| i != j && zfs::is_under(&jobs[j].target, &jobs[i].target))
            .max_by_key(|&i| jobs[i].target.len());
    }
    for job in &jobs {
        log_plan(job, &log);
    }
    // The target pool's features decide the send and receive flags: read
    // only when something is to be sent.
    let features = if jobs
        .iter()
        .any(|j| j.plan.error.is_none() && !j.plan.steps.is_empty())
    {
        listing::parse_features(
            &target_host.output(&listing::features_args(zfs::pool_of(target_path)))?,
        )
    } else {
        Features::default()
    };
    lands_encrypted(args, &target_host, &features, &target_tree, &mut jobs)?;

    // Carry out.
    let dry = args.test || args.plan;
    let mut results: Vec<Done> = vec![Done::default(); jobs.len()];
    let running = Arc::new(Running::default());
    let mut created_parents = Vec::new();
    if !dry {
        {
            let r = running.clone();
            let _ = ctrlc::set_handler(move || r.interrupt());
        }
        let parents = missing_parents(&jobs, &target_tree, target_path);
        let mut failed_parents: BTreeMap<String, String> = BTreeMap::new();
        for p in &parents {
            if failed_parents.keys().any(|f| zfs::is_under(p, f)) {
                continue;
            }
            let argv = ["zfs", "create", "-o", "canmount=off", p.as_str()];
            log.verbose(format!("[Target] {p}: creating parent (canmount=off)"));
            match target_host.output(&argv) {
                Ok(_) => created_parents.push(p.clone()),
                Err(e) => {
                    failed_parents.insert(p.clone(), e.to_string());
                }
            }
        }
        for (j, job) in jobs.iter().enumerate() {
            if let Some((p, e)) = failed_parents
                .iter()
                .find(|(p, _)| zfs::is_under(&job.target, p))
            {
                results[j].error = Some(format!("creating the parent {p} failed: {e}"));
            }
        }
        let ctx = Ctx {
            args,
            log: &log,
            hosts: &hosts,
            target: &target_host,
            features: &features,
            running: &running,
            progress: (args.progress || std::io::stderr().is_terminal()) && !args.no_progress,
        };
        execute(&ctx, &jobs, &mut results);
        if !args.no_holds && !running.stopped() {
            hold(&ctx, &jobs, &mut results, &sources, &target_tree, &tag);
        }
        if !running.stopped() {
            mount(&ctx, &jobs, &mut results);
        }
    }

    // Records.
    let mut failed = 0;
    let (mut transfers, mut bytes) = (0usize, 0u64);
    for (job, done) in jobs.iter().zip(results) {
        let d = &mut datasets[job.record];
        let error = job.plan.error.clone().or(done.error.clone());
        let mut notes = done.notes.clone();
        if created_parents
            .iter()
            .any(|p| zfs::is_under(&job.target, p))
            && !job.existed
        {
            notes.extend(
                created_parents
                    .iter()
                    .filter(|p| zfs::is_under(&job.target, p))
                    .map(|p| format!("created parent {p} with canmount=off")),
            );
        }
        let planned: Vec<Transfer> = job
            .plan
            .steps
            .iter()
            .map(|s| step_record(s, None))
            .collect();
        let mut list = done.transfers.clone();
        if list.len() < planned.len() {
            list.extend(planned[list.len()..].iter().cloned());
        }
        transfers += done.transfers.iter().filter(|t| t.done).count();
        bytes += done.transfers.iter().filter_map(|t| t.bytes).sum::<u64>();
        let status = if error.is_some() {
            SendStatus::Failed
        } else if dry {
            SendStatus::Planned
        } else if job.plan.steps.is_empty() {
            SendStatus::UpToDate
        } else {
            SendStatus::Sent
        };
        if let Some(e) = &error {
            failed += 1;
            log.error(format!("[Target] {}: {e}", job.target));
            d.error = Some(e.clone());
        }
        d.send = Some(SendOutcome {
            target: job.target.clone(),
            status,
            common: job.plan.common.clone(),
            transfers: list,
            skipped: job.plan.skipped.clone(),
            incompatible: job.plan.incompatible.clone(),
            notes,
        });
    }
    let stdout = std::io::stdout();
    let mut out = Writer::new(stdout.lock());
    for d in &datasets {
        out.write(&Record::Dataset(d.clone()))?;
    }
    let failed_total = datasets.iter().filter(|d| d.error.is_some()).count();
    let mut end = End::new(TOOL, datasets.len(), failed_total);
    let mut extra = Map::new();
    extra.insert("target".into(), json!(target_path));
    extra.insert("transfers".into(), json!(transfers));
    extra.insert("bytes".into(), json!(bytes));
    if !created_parents.is_empty() {
        extra.insert("created_parents".into(), json!(created_parents));
    }
    end.extra = extra;
    out.write(&Record::End(end))?;
    out.into_inner().flush()?;
    if running.stopped() {
        return Err(Error::Interrupted(
            "interrupted: the next run resumes the interrupted transfer".into(),
        ));
    }
    if failed > 0 {
        return Err(Error::Failed(failed));
    }
    Ok(())
}

/// The target listing started before the input is read. When the run
/// ends without using it (bad input, a collision, a failed source
/// listing), dropping it waits for it to finish, so that its process (an
/// `ssh … zfs list` for a remote target) never outlives zab-send.
struct Early(Option<Listing>);

type Listing = std::thread::JoinHandle<Result<BTreeMap<String, TargetDs>, Error>>;

impl Early {
    fn take(mut self) -> Option<Listing> {
        self.0.take()
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        if let Some(listing) = self.0.take() {
            let _ = listing.join();
        }
    }
}

/// Lists the target tree; a missing TARGET-PATH is said as such.
fn list_target(host: &Host, root: &str) -> Result<BTreeMap<String, TargetDs>, Error> {
    let argv = listing::target_args(root);
    match host.output(&argv) {
        Ok(out) => listing::parse_target(&out, root).map_err(|message| Error::Parse {
            command: quote_argv(&argv),
            message: format!("on {}: {message}", host.name()),
        }),
        Err(Error::Command(c)) if c.stderr.contains("dataset does not exist") => {
            Err(Error::Usage(format!(
                "TARGET-PATH {root} does not exist on {}: create it first (zfs create {root})",
                host.name()
            )))
        }
        Err(e) => Err(e),
    }
}

/// The snapshot name (after `@`) a resume token leads to, from a dry run
/// on the source; None (and a warning) when it cannot be read or is for
/// another dataset.
fn token_target(host: &Host, token: &str, dataset: &str, log: &Log) -> Option<String> {
    let argv = ["zfs", "send", "-nv", "-t", token];
    let out = match host.capture(&argv) {
        Ok(c) => format!("{}\n{}", c.stdout, c.stderr),
        Err(e) => {
            log.warn(format!(
                "[Source] {dataset}: reading the resume token failed: {e}"
            ));
            return None;
        }
    };
    let to = stream::resume_toname(&out)?;
    let (ds, snap) = to.split_once('@')?;
    (ds == dataset).then(|| snap.to_string())
}

fn log_plan(job: &Job, log: &Log) {
    let p = &job.plan;
    let t = &job.target;
    if let Some(c) = &p.common {
        log.debug(format!("{}: common snapshot {c}", job.source));
    }
    for s in &p.skipped {
        log.verbose(format!(
            "[Source] {}@{}: skipped ({})",
            job.source, s.name, s.why
        ));
    }
    if let Resume::Abort(why) = &p.resume {
        log.verbose(format!("[Target] {t}: {} ({why})", abort_words(p)));
    }
    for s in &p.steps {
        log.verbose(format!("[Target] {t}@{}: {}", s.to, describe(s)));
    }
}

/// zfs-autobackup's words for aborting a resume token, which admins grep
/// for: "obsolete" when nothing is to be sent, "no longer valid" when the
/// token leads elsewhere or cannot be read.
fn abort_words(p: &Plan) -> &'static str {
    if p.steps.is_empty() {
        "Aborting resume, its obsolete."
    } else {
        "Aborting resume, its no longer valid."
    }
}

fn describe(s: &Step) -> String {
    match (s.kind, &s.from) {
        (TransferKind::Full, _) => "receiving full".into(),
        (TransferKind::Resumed, _) => "resuming".into(),
        (TransferKind::Incremental, Some(f)) if s.snapshots > 1 => {
            format!(
                "receiving incremental from @{f} ({} snapshots, -I)",
                s.snapshots
            )
        }
        (TransferKind::Incremental, Some(f)) => format!("receiving incremental from @{f}"),
        (TransferKind::Incremental, None) => "receiving".into(),
    }
}

fn step_record(s: &Step, outcome: Option<&transfer::Outcome>) -> Transfer {
    Transfer {
        snapshot: s.to.clone(),
        from: s.from.clone(),
        kind: s.kind,
        snapshots: s.snapshots,
        done: outcome.is_some_and(|o| o.error.is_none()),
        bytes: outcome.map(|o| o.bytes),
        seconds: outcome.map(|o| (o.seconds * 1000.0).round() / 1000.0),
    }
}

/// Ancestors of the targets (below TARGET-PATH) that neither exist nor are
/// received in this run: created with canmount=off, shallowest first.
fn missing_parents(jobs: &[Job], tree: &BTreeMap<String, TargetDs>, root: &str) -> Vec<String> {
    let targets: BTreeSet<&str> = jobs.iter().map(|j| j.target.as_str()).collect();
    let mut out = BTreeSet::new();
    for j in jobs {
        if j.plan.error.is_some() {
            continue;
        }
        let mut p = zfs::parent_of(&j.target);
        while let Some(parent) = p {
            if !zfs::is_under(parent, root) || parent == root {
                break;
            }
            if !tree.contains_key(parent) && !targets.contains(parent) {
                out.insert(parent.to_string());
            }
            p = zfs::parent_of(parent);
        }
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_by_key(|p| (p.matches('/').count(), p.clone()));
    v
}

/// Sets each job's `lands_encrypted` where it decides `-e`: a non-raw
/// stream, with `embedded_data` on the target pool and without
/// `--encrypt` (which leaves `-e` out anyway). The target's datasets can be
/// encrypted only when its pool's `encryption` feature is active; then the
/// encryption of the targets and their existing ancestors is read, one
/// call. Without it, only a parent received raw in this run encrypts.
fn lands_encrypted(
    args: &Args,
    host: &Host,
    features: &Features,
    tree: &BTreeMap<String, TargetDs>,
    jobs: &mut [Job],
) -> Result<(), Error> {
    let asks = |j: &Job| j.plan.error.is_none() && !j.plan.steps.is_empty() && !j.raw;
    if !features.enabled("embedded_data") || args.encrypt || !jobs.iter().any(asks) {
        return Ok(());
    }
    let mut existing: BTreeMap<String, bool> = BTreeMap::new();
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for j in jobs.iter().filter(|j| asks(j)) {
        let mut d = Some(j.target.as_str());
        while let Some(n) = d {
            if tree.contains_key(n) {
                names.insert(n);
            }
            d = zfs::parent_of(n);
        }
    }
    if features.active("encryption") && !names.is_empty() {
        let names: Vec<&str> = names.into_iter().collect();
        let encrypted = list_encryption(host, &names)?;
        existing.extend(
            names
                .iter()
                .map(|n| (n.to_string(), encrypted.contains(*n))),
        );
    } else {
        existing.extend(names.iter().map(|n| (n.to_string(), false)));
    }
    let received: BTreeMap<String, bool> = jobs
        .iter()
        .filter(|j| j.plan.error.is_none() && !tree.contains_key(&j.target))
        .map(|j| (j.target.clone(), j.raw))
        .collect();
    for j in jobs.iter_mut() {
        if asks(j) {
            j.lands_encrypted = flags::lands_encrypted(&j.target, &existing, &received);
        }
    }
    Ok(())
}

/// What every job needs to run.
struct Ctx<'a> {
    args: &'a Args,
    log: &'a Log,
    hosts: &'a [Host],
    target: &'a Host,
    features: &'a Features,
    running: &'a Running,
    progress: bool,
}

/// Runs the jobs, `--jobs` at a time, each after its nearest ancestor.
fn execute(ctx: &Ctx, jobs: &[Job], results: &mut [Done]) {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Waiting,
        Running,
        Finished,
    }
    let state = Mutex::new((
        jobs.iter()
            .enumerate()
            .map(|(j, _)| {
                if results[j].error.is_some() {
                    S::Finished
                } else {
                    S::Waiting
                }
            })
            .collect::<Vec<S>>(),
        results.to_vec(),
    ));
    let cv = Condvar::new();
    let workers = usize::from(ctx.args.jobs).min(jobs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = {
                    let Ok(mut st) = state.lock() else { return };
                    loop {
                        if ctx.running.stopped() {
                            return;
                        }
                        let ready = (0..jobs.len()).find(|&j| {
                            st.0[j] == S::Waiting
                                && jobs[j].after.map_or(true, |a| st.0[a] == S::Finished)
                        });
                        if let Some(j) = ready {
                            st.0[j] = S::Running;
                            break j;
                        }
                        if !st.0.contains(&S::Waiting) {
                            return;
                        }
                        st = match cv.wait(st) {
                            Ok(s) => s,
                            Err(_) => return,
                        };
                    }
                };
                let done = run_job(ctx, &jobs[next]);
                if let Ok(mut st) = state.lock() {
                    st.0[next] = S::Finished;
                    st.1[next] = done;
                }
                cv.notify_all();
            });
        }
    });
    if let Ok(st) = state.into_inner() {
        for (r, d) in results.iter_mut().zip(st.1) {
            *r = d;
        }
    }
}

/// One dataset: abort or resume, destroy incompatibles, roll back, then
/// each transfer in order; stops at the first failure.
fn run_job(ctx: &Ctx, job: &Job) -> Done {
    let mut done = Done::default();
    if job.plan.error.is_some() {
        return done;
    }
    let t = &job.target;
    let target = ctx.target;
    let step_fail = |done: &mut Done, what: String| {
        done.error = Some(what);
    };
    if let Resume::Abort(why) = &job.plan.resume {
        match target.output(&["zfs", "recv", "-A", t]) {
            Ok(_) => done.notes.push(format!("aborted the resume token: {why}")),
            Err(e) => {
                step_fail(&mut done, format!("aborting the resume token failed: {e}"));
                return done;
            }
        }
    }
    if !job.plan.destroy.is_empty() {
        let names: Vec<&str> = job.plan.destroy.iter().map(String::as_str).collect();
        ctx.log.verbose(format!(
            "[Target] {t}: destroying incompatible snapshots {}",
            names.join(", ")
        ));
        if let Err(e) = target.output(&zfs::destroy_snapshots_args(t, &names)) {
            step_fail(
                &mut done,
                format!("destroying incompatible snapshots failed: {e}"),
            );
            return done;
        }
        done.notes.push(format!(
            "destroyed incompatible snapshots {}",
            names.join(", ")
        ));
    }
    if let Some(r) = &job.plan.rollback {
        ctx.log
            .verbose(format!("[Target] {t}: rolling back to @{r}"));
        if let Err(e) = target.output(&["zfs", "rollback", &format!("{t}@{r}")]) {
            step_fail(&mut done, format!("rolling back to @{r} failed: {e}"));
            return done;
        }
        done.notes.push(format!("rolled back to @{r}"));
    }
    for step in &job.plan.steps {
        if ctx.running.stopped() {
            done.error = Some("interrupted".into());
            return done;
        }
        let sides = sides(ctx, job, step);
        ctx.log
            .debug(format!("{} | {}", sides.source_line, sides.target_line));
        let mut out = transfer::run(&sides, ctx.running);
        if out.error.is_some() && ctx.args.ignore_transfer_errors {
            let snap = format!("{t}@{}", step.to);
            if target
                .output(&["zfs", "list", "-H", "-o", "name", &snap])
                .is_ok()
            {
                ctx.log.warn(format!(
                    "[Target] {snap}: ignoring the transfer error, the snapshot exists: {}",
                    out.error.take().unwrap_or_default()
                ));
            }
        }
        let failed = out.error.clone();
        done.transfers.push(step_record(step, Some(&out)));
        if let Some(e) = failed {
            done.error = Some(format!(
                "{} of @{} failed: {e} (command: {})",
                kind_word(step),
                step.to,
                sides.display
            ));
            return done;
        }
        ctx.log.verbose(format!(
            "[Target] {t}@{}: received ({}, {:.1} s)",
            step.to,
            zab_core::cli::format_bytes(out.bytes),
            out.seconds
        ));
    }
    done
}

fn kind_word(s: &Step) -> &'static str {
    match s.kind {
        TransferKind::Full => "the full transfer",
        TransferKind::Incremental => "the incremental transfer",
        TransferKind::Resumed => "the resumed transfer",
    }
}

/// The two command lines of one step.
fn sides<'a>(ctx: &Ctx<'a>, job: &Job, step: &Step) -> Sides<'a> {
    let a = ctx.args;
    let f = ctx.features;
    let ds = &job.source;
    let mut send: Vec<String> = vec!["zfs".into(), "send".into()];
    match (&job.plan.resume, step.kind) {
        (Resume::Continue(token), TransferKind::Resumed) => {
            send.extend(["-P".into(), "-t".into(), token.clone()]);
        }
        _ => {
            let flags = flags::flags(&flags::Inputs {
                large_blocks: f.enabled("large_blocks"),
                embedded_data: f.enabled("embedded_data"),
                zfs_compressed: a.zfs_compressed,
                source_encrypted: job.encrypted,
                decrypt: a.decrypt,
                encrypt: a.encrypt,
                lands_encrypted: job.lands_encrypted,
            });
            send.extend(flags.args().into_iter().map(String::from));
            send.push("-P".into());
            if let Some(from) = &step.from {
                send.push(if step.snapshots > 1 { "-I" } else { "-i" }.into());
                send.push(format!("{ds}@{from}"));
            }
            send.push(format!("{ds}@{}", step.to));
        }
    }
    let mut recv: Vec<String> = vec!["zfs".into(), "recv".into(), "-u".into()];
    let mut filter: Vec<String> = a.filter_properties.clone();
    if a.clear_refreservation {
        filter.push("refreservation".into());
    }
    if a.encrypt && !job.raw {
        filter.extend(["keylocation", "pbkdf2iters", "keyformat", "encryption"].map(String::from));
    }
    for p in filter.iter().filter(|p| !p.is_empty()) {
        recv.extend(["-x".into(), p.clone()]);
    }
    let mut set: Vec<(String, String)> = a.set_properties.clone();
    if a.clear_mountpoint {
        set.push(("canmount".into(), "noauto".into()));
    }
    for (p, v) in &set {
        if job.kind == DatasetType::Volume && p == "canmount" {
            continue;
        }
        recv.extend(["-o".into(), format!("{p}={v}")]);
    }
    if a.force {
        recv.push("-F".into());
    }
    if ctx.features.enabled("extensible_dataset") {
        recv.push("-s".into());
    }
    recv.push(job.target.clone());
    let source = &ctx.hosts[job.host];
    let buffer = Buffer::from_options(a.buffer, a.buffer_chunk_size);
    let spec = StreamSpec {
        send_argv: &send,
        recv_argv: &recv,
        send_pipes: &a.send_pipe,
        recv_pipes: &a.recv_pipe,
        compress: a.compress.as_deref().and_then(stream::compressor),
        buffer,
        // Probed (once per host) only when a buffer is wanted.
        source_buffer: buffer.map_or(BufferTool::None, |_| buffer_tool(source)),
        target_buffer: buffer.map_or(BufferTool::None, |_| buffer_tool(ctx.target)),
        source_remote: source.dest().is_some(),
        target_remote: ctx.target.dest().is_some(),
    };
    Sides {
        source,
        display: stream::display(&spec),
        source_line: stream::source_command(&spec),
        target: ctx.target,
        target_line: stream::target_command(&spec),
        rate: a.rate.map(|r| (sibling("zab-ratelimit"), r)),
        progress: ctx.progress.then(|| format!("{}@{}", job.target, step.to)),
    }
}

/// zab-buffer where it is installed, else mbuffer, else nothing.
fn buffer_tool(host: &Host) -> BufferTool {
    static CACHE: Mutex<BTreeMap<String, BufferTool>> = Mutex::new(BTreeMap::new());
    let key = host.name().to_string();
    if let Ok(c) = CACHE.lock() {
        if let Some(t) = c.get(&key) {
            return t.clone();
        }
    }
    let tool = if host.dest().is_none() {
        let next_to_us = sibling("zab-buffer");
        if std::path::Path::new(&next_to_us).is_file() {
            BufferTool::ZabBuffer(next_to_us)
        } else if which("zab-buffer") {
            BufferTool::ZabBuffer("zab-buffer".into())
        } else if which("mbuffer") {
            BufferTool::Mbuffer
        } else {
            BufferTool::None
        }
    } else {
        match host.output(&[
            "sh",
            "-c",
            "command -v zab-buffer || command -v mbuffer || true",
        ]) {
            Ok(o) if o.contains("zab-buffer") => BufferTool::ZabBuffer("zab-buffer".into()),
            Ok(o) if o.contains("mbuffer") => BufferTool::Mbuffer,
            _ => BufferTool::None,
        }
    };
    if let Ok(mut c) = CACHE.lock() {
        c.insert(key, tool.clone());
    }
    tool
}

fn which(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// A zab tool next to this binary, else by name from PATH.
fn sibling(name: &str) -> String {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

/// Holds the new common snapshot of every dataset on both sides and
/// releases our hold on the previous one: at most one `zfs holds`, one
/// `zfs hold` and one `zfs release` per side, and none of them where
/// nothing was sent and the common snapshot carries a hold.
fn hold(
    ctx: &Ctx,
    jobs: &[Job],
    results: &mut [Done],
    sources: &BTreeMap<String, Vec<Snapshot>>,
    tree: &BTreeMap<String, TargetDs>,
    tag: &str,
) {
    // Per side: (host, [(job, new full name, old full name, new userrefs, old userrefs)]).
    // The holds counts are the target tree's; a source's listing has none
    // (None: maybe held).
    struct Want {
        job: usize,
        new: String,
        new_refs: Option<u64>,
        old: Option<(String, Option<u64>)>,
    }
    let mut sides: Vec<(&Host, &'static str, Vec<Want>)> = Vec::new();
    for host in ctx.hosts {
        sides.push((host, "Source", Vec::new()));
    }
    sides.push((ctx.target, "Target", Vec::new()));
    let tside = sides.len() - 1;
    for (j, job) in jobs.iter().enumerate() {
        if job.plan.error.is_some() {
            continue;
        }
        let last_done = results[j]
            .transfers
            .iter()
            .rev()
            .find(|t| t.done)
            .map(|t| t.snapshot.clone());
        let Some(new) = last_done.or(job.plan.common.clone()) else {
            continue;
        };
        let old = job.plan.common.clone().filter(|o| *o != new);
        let src_refs = |name: &str| {
            sources
                .get(&job.source)
                .and_then(|s| s.iter().find(|x| x.name == name))
                .and_then(|x| x.userrefs)
        };
        let tgt_refs = |name: &str| {
            tree.get(&job.target)
                .and_then(|t| t.target.snapshots.iter().find(|(x, _)| x.name == name))
                .and_then(|(x, _)| x.userrefs)
        };
        // Nothing sent: the common snapshot is the one held by the run
        // that sent it. Only a target snapshot without any hold (that run
        // was stopped before holding, or used --no-holds) is held now, and
        // that needs no `zfs holds`: a quiet run costs no zfs process here.
        // (A source's listing does not say: its snapshot is held by the
        // next run that sends.)
        let sent = old.is_some() || results[j].transfers.iter().any(|t| t.done);
        let want = |ds: &str, refs: &dyn Fn(&str) -> Option<u64>| Want {
            job: j,
            new: format!("{ds}@{new}"),
            new_refs: refs(&new),
            old: old.as_ref().map(|o| (format!("{ds}@{o}"), refs(o))),
        };
        for (side, w) in [
            (job.host, want(&job.source, &src_refs)),
            (tside, want(&job.target, &tgt_refs)),
        ] {
            if sent || w.new_refs == Some(0) {
                sides[side].2.push(w);
            }
        }
    }
    // What `zfs hold -r`/`zfs release -r` could touch on the target, as far
    // as is known: every snapshot listed before the transfers and every
    // source snapshot of a dataset that received something (a superset of
    // what it has now), and for releasing, the listed snapshots with holds.
    let mut target_hold: BTreeSet<String> = BTreeSet::new();
    let mut target_release: BTreeSet<String> = BTreeSet::new();
    for (t, ds) in tree {
        for (s, _) in &ds.target.snapshots {
            target_hold.insert(format!("{t}@{}", s.name));
            if s.userrefs != Some(0) {
                target_release.insert(format!("{t}@{}", s.name));
            }
        }
    }
    for (j, job) in jobs.iter().enumerate() {
        if results[j].transfers.iter().any(|t| t.done) {
            if let Some(src) = sources.get(&job.source) {
                for s in src {
                    target_hold.insert(format!("{}@{}", job.target, s.name));
                }
            }
        }
    }
    for (host, side, wants) in &sides {
        if wants.is_empty() {
            continue;
        }
        // Who holds the snapshots that have any hold, or may have.
        let mut ask: Vec<&str> = Vec::new();
        for w in wants {
            if w.new_refs != Some(0) {
                ask.push(&w.new);
            }
            if let Some((o, r)) = &w.old {
                if *r != Some(0) {
                    ask.push(o);
                }
            }
        }
        let held = if ask.is_empty() {
            BTreeMap::new()
        } else {
            match zfs::holds(host, &ask) {
                Ok(h) => h,
                Err(e) => {
                    ctx.log.warn(format!("[{side}] reading holds failed: {e}"));
                    continue;
                }
            }
        };
        let ours = |name: &str| held.get(name).is_some_and(|t| t.iter().any(|x| x == tag));
        let to_hold: Vec<&Want> = wants.iter().filter(|w| !ours(&w.new)).collect();
        let hold_names: Vec<String> = to_hold.iter().map(|w| w.new.clone()).collect();
        let release: Vec<String> = wants
            .iter()
            .filter_map(|w| w.old.as_ref())
            .filter(|(o, _)| ours(o))
            .map(|(o, _)| o.clone())
            .collect();
        // `-r` where it is exact: on the target, whose whole tree was
        // listed; on a source, after listing the subtrees it could touch.
        let listed;
        let (for_hold, for_release) = if *side == "Target" {
            (Some(&target_hold), Some(&target_release))
        } else {
            listed = subtrees(ctx, host, &hold_names, &release);
            match &listed {
                Some((h, r)) => (Some(h), Some(r)),
                None => (None, None),
            }
        };
        if !hold_names.is_empty() {
            if let Some((failed, e)) = hold_cmd(ctx, host, "hold", tag, &hold_names, for_hold) {
                for w in to_hold.iter().filter(|w| failed.contains(&w.new)) {
                    results[w.job]
                        .error
                        .get_or_insert(format!("[{side}] holding {} failed: {e}", w.new));
                }
                continue;
            }
        }
        if !release.is_empty() {
            if let Some((_, e)) = hold_cmd(ctx, host, "release", tag, &release, for_release) {
                ctx.log
                    .warn(format!("[{side}] releasing old holds failed: {e}"));
            }
        }
    }
}

/// On a source, where only the selected datasets were listed: the
/// snapshots `zfs hold -r`/`zfs release -r` could touch under the roots
/// that `hold` and `release` would have if nothing else were there, from
/// one `zfs list -r` of those roots: (every snapshot, those with holds).
/// None when there is no such root or the listing fails (then everything
/// is done by name).
fn subtrees(
    ctx: &Ctx,
    host: &Host,
    hold: &[String],
    release: &[String],
) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let mut roots: BTreeSet<String> = BTreeSet::new();
    for names in [hold, release] {
        let all: BTreeSet<String> = names.iter().cloned().collect();
        for r in holds::recursive_roots(names, &all).0 {
            roots.insert(r.split_once('@').map_or(r.clone(), |(d, _)| d.to_string()));
        }
    }
    // Roots under other roots are listed with them.
    let top: Vec<&str> = roots
        .iter()
        .filter(|r| !roots.iter().any(|o| o != *r && zfs::is_under(r, o)))
        .map(String::as_str)
        .collect();
    if top.is_empty() {
        return None;
    }
    let argv = zfs::list_args("snapshot", "name,userrefs", &["-r"], &top);
    let out = match host.output(&argv) {
        Ok(o) => o,
        Err(e) => {
            ctx.log.debug(format!(
                "listing for zfs hold -r failed ({e}): by name instead"
            ));
            return None;
        }
    };
    let (mut all, mut held) = (BTreeSet::new(), BTreeSet::new());
    for line in out.lines() {
        let (name, refs) = line.split_once('\t')?;
        if refs != "0" {
            held.insert(name.to_string());
        }
        all.insert(name.to_string());
    }
    Some((all, held))
}

/// Runs `zfs VERB TAG` (hold or release) on `names`: with `-r`, one
/// command per root, where `affected` (every snapshot `-r` could touch)
/// allows it exactly (see holds.rs), falling back to the plain command for
/// that root's names when `-r` fails; plainly for the rest. Returns the
/// names of a failed plain command and its error.
fn hold_cmd(
    ctx: &Ctx,
    host: &Host,
    verb: &str,
    tag: &str,
    names: &[String],
    affected: Option<&BTreeSet<String>>,
) -> Option<(Vec<String>, Error)> {
    let (roots, mut plain) = match affected {
        Some(a) => holds::recursive_roots(names, a),
        None => (Vec::new(), names.to_vec()),
    };
    for r in &roots {
        if let Err(e) = host.output(&["zfs", verb, "-r", tag, r]) {
            ctx.log.debug(format!(
                "zfs {verb} -r {r} failed ({e}): one by one instead"
            ));
            plain.extend(holds::under(r, names).into_iter().cloned());
        }
    }
    if plain.is_empty() {
        return None;
    }
    let mut argv = vec!["zfs".to_string(), verb.to_string(), tag.to_string()];
    argv.extend(plain.iter().cloned());
    match host.output(&argv) {
        Ok(_) => None,
        Err(Error::Command(c)) if verb == "hold" => {
            let failed: Vec<String> = holds::hold_failures(&c.stderr, &plain)
                .into_iter()
                .cloned()
                .collect();
            if failed.is_empty() {
                ctx.log.debug(format!(
                    "zfs hold: our hold was there already ({})",
                    c.stderr_line()
                ));
                return None;
            }
            Some((failed, Error::Command(c)))
        }
        Err(e) => Some((plain, e)),
    }
}

/// Mounts the filesystems received for the first time, as zfs-autobackup
/// 3.3 does (when canmount=on, the mountpoint is a path and the key is
/// available), and with them whatever else of their subtrees is mountable
/// and not mounted (a `-F` receive onto an existing dataset unmounts its
/// subtree): in tree order, unmounting first what a parent would hide
/// (see mounts.rs). One `zfs get` of the received subtrees, then a
/// `zfs mount -R` per subtree mounted whole, a `zfs mount` per other one.
fn mount(ctx: &Ctx, jobs: &[Job], results: &mut [Done]) {
    let fresh: Vec<String> = (0..jobs.len())
        .filter(|&j| {
            let job = &jobs[j];
            job.kind == DatasetType::Filesystem
                && results[j]
                    .transfers
                    .iter()
                    .any(|t| t.done && t.kind != TransferKind::Incremental)
                && job.plan.common.is_none()
        })
        .map(|j| jobs[j].target.clone())
        .collect();
    if fresh.is_empty() {
        return;
    }
    let roots: Vec<&str> = fresh
        .iter()
        .filter(|f| !fresh.iter().any(|o| o != *f && zfs::is_under(f, o)))
        .map(String::as_str)
        .collect();
    let argv = zfs::get_args(&["filesystem"], mounts::PROPS, &roots);
    let all = match ctx.target.output(&argv).map(|o| zfs::parse_get(&o)) {
        Ok(Ok(rows)) => mounts::filesystems(&rows),
        Ok(Err(e)) => {
            ctx.log
                .warn(format!("[Target] reading mount properties: {e}"));
            return;
        }
        Err(e) => {
            ctx.log
                .warn(format!("[Target] reading mount properties failed: {e}"));
            return;
        }
    };
    let plan = mounts::plan(&all, &fresh);
    for (name, why) in &plan.skipped {
        ctx.log.warn(format!("[Target] {name}: not mounted: {why}"));
    }
    let mountpoint = |name: &str| {
        all.iter()
            .find(|f| f.name == name)
            .map(|f| f.mountpoint.clone())
            .unwrap_or_default()
    };
    // Mountpoints still in use below which nothing may be mounted now.
    let mut stuck: Vec<String> = Vec::new();
    let mut mounted: BTreeSet<String> = BTreeSet::new();
    let mount_one = |name: &str, stuck: &[String]| -> bool {
        let mp = mountpoint(name);
        if let Some(s) = stuck.iter().find(|s| mounts::path_below(s, &mp)) {
            ctx.log.warn(format!(
                "[Target] {name}: not mounted: {s} below it could not be unmounted"
            ));
            return false;
        }
        match ctx.target.output(&["zfs", "mount", name]) {
            Ok(_) => true,
            // Mounted by a `zfs mount -R` that failed further on.
            Err(Error::Command(c)) if c.stderr.contains("already mounted") => true,
            Err(e) => {
                ctx.log
                    .warn(format!("[Target] {name}: mounting failed: {e}"));
                false
            }
        }
    };
    for step in &plan.steps {
        match step {
            mounts::Step::Unmount(name) => {
                if let Err(e) = ctx.target.output(&["zfs", "unmount", name]) {
                    ctx.log.warn(format!(
                        "[Target] {name}: unmounting (to mount its parent first) failed: {e}"
                    ));
                    stuck.push(mountpoint(name));
                }
            }
            mounts::Step::Mount(name) => {
                if mount_one(name, &stuck) {
                    mounted.insert(name.clone());
                }
            }
            mounts::Step::MountRecursive(root, below) => {
                let mp = mountpoint(root);
                let whole = !stuck.iter().any(|s| mounts::path_below(s, &mp))
                    && match ctx.target.output(&["zfs", "mount", "-R", root]) {
                        Ok(_) => true,
                        Err(e) => {
                            ctx.log.debug(format!(
                                "zfs mount -R {root} failed ({e}): by name instead"
                            ));
                            false
                        }
                    };
                if whole {
                    mounted.extend(below.iter().cloned());
                } else {
                    for name in below {
                        if mount_one(name, &stuck) {
                            mounted.insert(name.clone());
                        }
                    }
                }
            }
        }
    }
    for (j, job) in jobs.iter().enumerate() {
        if mounted.contains(&job.target) {
            results[j]
                .notes
                .push(format!("mounted on {}", mountpoint(&job.target)));
        }
    }
}

/// The encrypted ones of `names` on `host`: one `zfs list -o name,encryption`.
fn list_encryption(host: &Host, names: &[&str]) -> Result<BTreeSet<String>, Error> {
    let argv = listing::encryption_args(names);
    let out = host.output(&argv)?;
    listing::parse_encryption(&out, names).map_err(|message| Error::Parse {
        command: quote_argv(&argv),
        message: format!("on {}: {message}", host.name()),
    })
}
