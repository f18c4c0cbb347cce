//! Every selected dataset's job, as data, from what gather.rs read: its
//! plan (plan.rs), the send and receive command lines of each step
//! (flags.rs), the job it waits for (its nearest ancestor received in this
//! run: parents first), and the parents to create first (parents.rs).
//! Pure: nothing runs here.

use zab_core::cli::Log;
use zab_core::record::TransferKind;
use zab_core::zfs::{self, DatasetType};

use crate::cli::Config;
use crate::flags;
use crate::gather::World;
use crate::input::Input;
use crate::parents;
use crate::plan::{self, Plan, Resume, Step};

/// One selected dataset's work.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index into the records.
    pub record: usize,
    /// Index into the source hosts.
    pub host: usize,
    pub source: String,
    pub target: String,
    pub kind: DatasetType,
    /// The target existed before this run (with at least a partial receive).
    pub existed: bool,
    pub plan: Plan,
    /// The `zfs send` and `zfs recv` of each step of the plan.
    pub argv: Vec<(Vec<String>, Vec<String>)>,
    /// The job that must finish first (the nearest ancestor in this run).
    pub after: Option<usize>,
    /// Why its first stream starts a new chain (`--full-every`), if it does.
    pub new_chain: Option<String>,
}

/// The whole run's work.
#[derive(Debug, Clone)]
pub struct Jobs {
    pub jobs: Vec<Job>,
    /// Parents to create first, shallowest first.
    pub parents: Vec<String>,
}

/// Plans every selected dataset.
pub fn plan(cfg: &Config, input: &Input, w: &World) -> Jobs {
    let options = cfg.plan_options();
    let mut jobs: Vec<Job> = input
        .picked
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let d = flags::Dataset {
                source: input.name(p),
                target: &p.target,
                kind: input.datasets[p.record].kind,
                encrypted: w.encrypted[k],
                lands_encrypted: w.lands_encrypted[k],
            };
            let tgt = w.tree.get(&p.target);
            let mut plan = plan::plan(
                d.source,
                &w.snapshots[k],
                w.bookmarks_of(d.source),
                tgt.map(|t| &t.target),
                d.raw(&cfg.flags),
                w.tokens[k].as_deref(),
                &options,
            );
            let new_chain = new_chain(cfg, w, k, &p.target, &mut plan);
            let recv = flags::recv_argv(&d, &cfg.flags, &w.features);
            let argv = plan
                .steps
                .iter()
                .map(|s| {
                    let send = flags::send_argv(&d, s, &plan.resume, &cfg.flags, &w.features);
                    (send, recv.clone())
                })
                .collect();
            Job {
                record: p.record,
                host: p.host,
                source: d.source.to_string(),
                target: p.target.clone(),
                kind: d.kind,
                existed: tgt.is_some(),
                plan,
                argv,
                after: None,
                new_chain,
            }
        })
        .collect();
    for j in 0..jobs.len() {
        jobs[j].after = after(&jobs, j);
    }
    let parents = parents::missing(&jobs, &w.tree, &cfg.target_path);
    Jobs { jobs, parents }
}

/// `--full-every` (a store): a full stream first when the current chain
/// is due (crate::chain, on the dataset's view where one was read: its
/// chain goes on from zfs3backup's objects); why, when it does.
fn new_chain(cfg: &Config, w: &World, k: usize, target: &str, plan: &mut Plan) -> Option<String> {
    let m = w.views.get(target).or_else(|| w.manifests.get(target));
    let (Some(every), Some(m)) = (cfg.full_every, m) else {
        return None;
    };
    let source = &w.snapshots[k];
    let common = crate::chain::common(plan, source)?;
    let why = crate::chain::due(m, common, &cfg.format, every, cfg.now)?;
    crate::chain::restart(plan, source).then_some(why)
}

/// The nearest ancestor of job `j`'s target among the other jobs.
fn after(jobs: &[Job], j: usize) -> Option<usize> {
    (0..jobs.len())
        .filter(|&i| i != j && zfs::is_under(&jobs[j].target, &jobs[i].target))
        .max_by_key(|&i| jobs[i].target.len())
}

/// Says what each plan will do (`--verbose`, `--debug`).
pub fn log(jobs: &[Job], log: &Log) {
    for job in jobs {
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
        if let Some(why) = &job.new_chain {
            log.verbose(format!("[Target] {t}: starting a new chain ({why})"));
        }
        for s in &p.steps {
            log.verbose(format!("[Target] {t}@{}: {}", s.to, describe(s)));
        }
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
        (TransferKind::Incremental, Some(f)) => match &s.bookmark {
            Some(b) => format!("receiving incremental from @{f}, from the source's bookmark #{b}"),
            None => format!("receiving incremental from @{f}"),
        },
        (TransferKind::Incremental, None) => "receiving".into(),
    }
}

/// Jobs and outcomes for the unit tests of the modules that take them.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::execute::Done;
    use crate::transfer::Outcome;

    /// A job of `source` into `target` with `common` and steps `(from, to,
    /// kind)`, one snapshot each.
    pub fn job(
        source: &str,
        target: &str,
        common: Option<&str>,
        steps: &[(Option<&str>, &str, TransferKind)],
    ) -> Job {
        Job {
            record: 0,
            host: 0,
            source: source.into(),
            target: target.into(),
            kind: DatasetType::Filesystem,
            existed: common.is_some(),
            plan: Plan {
                common: common.map(String::from),
                incompatible: vec![],
                destroy: vec![],
                rollback: None,
                resume: Resume::None,
                steps: steps
                    .iter()
                    .map(|(from, to, kind)| Step {
                        from: from.map(String::from),
                        bookmark: None,
                        to: to.to_string(),
                        kind: *kind,
                        snapshots: 1,
                    })
                    .collect(),
                skipped: vec![],
                error: None,
            },
            argv: vec![],
            after: None,
            new_chain: None,
        }
    }

    /// The first `ok` steps received, then one failed when `failed`.
    pub fn done(ok: usize, failed: bool) -> Done {
        let outcome = |error: Option<String>| Outcome {
            bytes: 1,
            seconds: 0.5,
            error,
            object: None,
        };
        let mut outcomes: Vec<Outcome> = (0..ok).map(|_| outcome(None)).collect();
        if failed {
            outcomes.push(outcome(Some("no".into())));
        }
        Done {
            outcomes,
            error: failed.then(|| "no".into()),
            ..Done::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(target: &str) -> Job {
        testing::job("", target, None, &[])
    }

    #[test]
    fn each_job_waits_for_its_nearest_ancestor() {
        let jobs = [
            job("t/a/b/c"),
            job("t/a"),
            job("t/a/b"),
            job("t/ab"),
            job("t"),
        ];
        let a: Vec<Option<usize>> = (0..jobs.len()).map(|j| after(&jobs, j)).collect();
        assert_eq!(a, vec![Some(2), Some(4), Some(1), Some(4), None]);
    }

    #[test]
    fn resume_words_as_upstream() {
        let mut p = job("t").plan;
        assert_eq!(abort_words(&p), "Aborting resume, its obsolete.");
        p.steps.push(Step {
            from: Some("a".into()),
            bookmark: None,
            to: "c".into(),
            kind: TransferKind::Incremental,
            snapshots: 2,
        });
        assert_eq!(abort_words(&p), "Aborting resume, its no longer valid.");
        assert_eq!(
            describe(&p.steps[0]),
            "receiving incremental from @a (2 snapshots, -I)"
        );
    }
}
