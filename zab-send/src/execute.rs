//! Carries the jobs out, deciding nothing: the parents first, then the
//! jobs, `--jobs` at a time, each after its nearest ancestor (jobs.rs);
//! per job, as its plan says: abort or resume the token, destroy the
//! incompatible snapshots, roll back, then each step through the target
//! [`Sink`], stopping at the first failure. SIGINT or SIGTERM stops every
//! transfer (transfer.rs) and starts no other.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

use zab_core::cli::Log;
use zab_core::record::TransferKind;
use zab_core::zfs::{self, replicate};
use zab_core::Host;

use crate::cli::Config;
use crate::gather::World;
use crate::jobs::{Job, Jobs};
use crate::parents;
use crate::plan::{Resume, Step};
use crate::sink::{Receive, Sink};
use crate::stream::StreamSpec;
use crate::transfer::{Outcome, Running};

/// What carrying out a job gave.
#[derive(Debug, Default, Clone)]
pub struct Done {
    /// One per step tried, in order.
    pub outcomes: Vec<Outcome>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

impl Done {
    /// The steps of `job` that were received.
    pub fn received<'a>(&'a self, job: &'a Job) -> impl Iterator<Item = &'a Step> + 'a {
        job.plan
            .steps
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, o)| o.error.is_none())
            .map(|(s, _)| s)
    }
}

/// What the run did.
#[derive(Debug, Default)]
pub struct Executed {
    /// Per job.
    pub done: Vec<Done>,
    pub created_parents: Vec<String>,
}

/// What every job needs to run.
pub struct Ctx<'a> {
    pub cfg: &'a Config,
    pub log: &'a Log,
    pub hosts: &'a [Host],
    pub target: &'a Host,
    pub world: &'a World,
    pub sink: &'a dyn Sink,
    pub running: &'a std::sync::Arc<Running>,
}

/// Creates the parents, then runs the jobs.
pub fn execute(ctx: &Ctx, jobs: &Jobs) -> Executed {
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut created = Vec::new();
    for p in &jobs.parents {
        if !parents::to_try(p, &failed) {
            continue;
        }
        ctx.log
            .verbose(format!("[Target] {p}: creating parent (canmount=off)"));
        match ctx.target.output(&replicate::create_parent_args(p)) {
            Ok(_) => created.push(p.clone()),
            Err(e) => {
                failed.insert(p.clone(), e.to_string());
            }
        }
    }
    let mut done: Vec<Done> = jobs
        .jobs
        .iter()
        .map(|j| Done {
            error: parents::blocked(&j.target, &failed),
            ..Done::default()
        })
        .collect();
    schedule(ctx, &jobs.jobs, &mut done);
    Executed {
        done,
        created_parents: created,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Finished,
}

/// Runs the jobs, `--jobs` at a time, each after its nearest ancestor.
fn schedule(ctx: &Ctx, jobs: &[Job], results: &mut [Done]) {
    let states: Vec<State> = results
        .iter()
        .map(|d| match d.error {
            Some(_) => State::Finished,
            None => State::Waiting,
        })
        .collect();
    let state = Mutex::new((states, results.to_vec()));
    let cv = Condvar::new();
    let workers = ctx.cfg.jobs.min(jobs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(next) = next_job(ctx, jobs, &state, &cv) {
                    let done = run_job(ctx, &jobs[next]);
                    if let Ok(mut st) = state.lock() {
                        st.0[next] = State::Finished;
                        st.1[next] = done;
                    }
                    cv.notify_all();
                }
            });
        }
    });
    if let Ok(st) = state.into_inner() {
        for (r, d) in results.iter_mut().zip(st.1) {
            *r = d;
        }
    }
}

type Shared = Mutex<(Vec<State>, Vec<Done>)>;

/// The next job whose ancestor has finished, marked running; None when
/// none is left or the run was interrupted.
fn next_job(ctx: &Ctx, jobs: &[Job], state: &Shared, cv: &Condvar) -> Option<usize> {
    let mut st = state.lock().ok()?;
    loop {
        if ctx.running.stopped() {
            return None;
        }
        let ready = (0..jobs.len()).find(|&j| {
            st.0[j] == State::Waiting && jobs[j].after.map_or(true, |a| st.0[a] == State::Finished)
        });
        if let Some(j) = ready {
            st.0[j] = State::Running;
            return Some(j);
        }
        if !st.0.contains(&State::Waiting) {
            return None;
        }
        st = cv.wait(st).ok()?;
    }
}

/// One dataset: abort or resume, destroy incompatibles, roll back, then
/// each transfer in order; stops at the first failure.
fn run_job(ctx: &Ctx, job: &Job) -> Done {
    let mut done = Done::default();
    if job.plan.error.is_some() {
        return done;
    }
    if let Err(e) = prepare(ctx, job, &mut done.notes) {
        done.error = Some(e);
        return done;
    }
    for (step, (send, recv)) in job.plan.steps.iter().zip(&job.argv) {
        if ctx.running.stopped() {
            done.error = Some("interrupted".into());
            return done;
        }
        let (out, display) = transfer(ctx, job, step, send, recv);
        let failed = out.error.clone();
        let (bytes, seconds) = (out.bytes, out.seconds);
        done.outcomes.push(out);
        if let Some(e) = failed {
            done.error = Some(format!(
                "{} of @{} failed: {e} (command: {display})",
                kind_word(step),
                step.to
            ));
            return done;
        }
        ctx.log.verbose(format!(
            "[Target] {}@{}: received ({}, {:.1} s)",
            job.target,
            step.to,
            zab_core::cli::format_bytes(bytes),
            seconds
        ));
    }
    done
}

/// What comes before the transfers on the target: abort the resume token,
/// destroy the incompatible snapshots, roll back. Notes what was done.
fn prepare(ctx: &Ctx, job: &Job, notes: &mut Vec<String>) -> Result<(), String> {
    let t = &job.target;
    let target = ctx.target;
    if let Resume::Abort(why) = &job.plan.resume {
        target
            .output(&replicate::recv_abort_args(t))
            .map_err(|e| format!("aborting the resume token failed: {e}"))?;
        notes.push(format!("aborted the resume token: {why}"));
    }
    if !job.plan.destroy.is_empty() {
        let names: Vec<&str> = job.plan.destroy.iter().map(String::as_str).collect();
        ctx.log.verbose(format!(
            "[Target] {t}: destroying incompatible snapshots {}",
            names.join(", ")
        ));
        target
            .output(&zfs::destroy_snapshots_args(t, &names))
            .map_err(|e| format!("destroying incompatible snapshots failed: {e}"))?;
        notes.push(format!(
            "destroyed incompatible snapshots {}",
            names.join(", ")
        ));
    }
    if let Some(r) = &job.plan.rollback {
        ctx.log
            .verbose(format!("[Target] {t}: rolling back to @{r}"));
        target
            .output(&replicate::rollback_args(&format!("{t}@{r}")))
            .map_err(|e| format!("rolling back to @{r} failed: {e}"))?;
        notes.push(format!("rolled back to @{r}"));
    }
    Ok(())
}

/// One step through the sink: its outcome, and the pipeline for messages.
/// With `--ignore-transfer-errors`, a failed receive whose snapshot exists
/// is taken as done.
fn transfer(
    ctx: &Ctx,
    job: &Job,
    step: &Step,
    send: &[String],
    recv: &[String],
) -> (Outcome, String) {
    let cfg = ctx.cfg;
    let source = &ctx.hosts[job.host];
    let spec = StreamSpec {
        send_argv: send,
        recv_argv: recv,
        send_pipes: &cfg.send_pipe,
        recv_pipes: &cfg.recv_pipe,
        compress: cfg.compress,
        buffer: cfg.buffer,
        source_buffer: ctx.world.tool(source),
        target_buffer: ctx.world.tool(ctx.target),
        source_remote: source.dest().is_some(),
        target_remote: ctx.target.dest().is_some(),
    };
    ctx.log.debug(format!(
        "{} | {}",
        crate::stream::source_command(&spec),
        crate::stream::target_command(&spec)
    ));
    let r = Receive {
        dataset: &job.target,
        snapshot: &step.to,
        source: &job.source,
        from: step.from.as_deref(),
        raw: send.iter().any(|a| a == "-w"),
    };
    let mut out = ctx.sink.receive(source, &spec, r, ctx.running);
    if out.error.is_some() && cfg.ignore_transfer_errors && ctx.sink.has(r) {
        ctx.log.warn(format!(
            "[Target] {}@{}: ignoring the transfer error, the snapshot exists: {}",
            job.target,
            step.to,
            out.error.take().unwrap_or_default()
        ));
    }
    let display = match cfg.store {
        Some(_) => crate::stream::source_command(&spec),
        None => crate::stream::display(&spec),
    };
    (out, display)
}

fn kind_word(s: &Step) -> &'static str {
    match s.kind {
        TransferKind::Full => "the full transfer",
        TransferKind::Incremental => "the incremental transfer",
        TransferKind::Resumed => "the resumed transfer",
    }
}
