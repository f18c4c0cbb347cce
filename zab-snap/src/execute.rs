//! zab-snap's execution: carries out the plan, host by host: the
//! pre-snapshot commands, one `zfs snapshot` per pool, the post-snapshot
//! commands. Decides nothing.
//!
//! One executor for both modes: with `act` false (`--test`) it says what it
//! would run and runs nothing (hooks neither), and the datasets stay
//! would-create.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use zab_core::cli::Log;
use zab_core::error::{CommandError, Error};
use zab_core::record::SnapStatus;
use zab_core::Host;

use crate::cli::Config;
use crate::plan::{Decision, HostPlan, Plan, PoolPlan};

/// What became of the plan.
#[derive(Debug)]
pub struct Outcome {
    /// The plan's decisions, with what was done: created or failed.
    pub decisions: Vec<Option<Decision>>,
    /// How many post-snapshot commands failed.
    pub hook_failures: usize,
    /// How many hosts' pre-snapshot commands failed.
    pub pre_hook_failures: usize,
}

impl Outcome {
    /// Marks `datasets` failed, saying `why`.
    fn fail(&mut self, datasets: &[usize], why: &str) {
        for &i in datasets {
            if let Some(d) = self.decisions[i].as_mut() {
                d.outcome.status = SnapStatus::Failed;
                d.error = Some(why.to_string());
            }
        }
    }
}

/// Carries out `plan` on `hosts` (the hosts it was made from), with the
/// hooks of `config`. An interrupt (SIGINT, SIGTERM) stops it after the
/// current host's post-snapshot commands: [`Error::Interrupted`].
pub fn execute(
    config: &Config,
    hosts: &[Host],
    names: &[&str],
    plan: Plan,
) -> Result<Outcome, Error> {
    let log = &config.log;
    explain(log, names, &plan.decisions);
    let mut out = Outcome {
        decisions: plan.decisions,
        hook_failures: 0,
        pre_hook_failures: 0,
    };
    if plan.hosts.is_empty() {
        log.verbose("No changes anywhere: not creating snapshots.");
        return Ok(out);
    }
    let stop = interrupt_flag(config.act);
    for h in &plan.hosts {
        let host = &hosts[h.host];
        on_host(config, host, h, &plan.name, &stop, &mut out);
        if stop.load(Ordering::SeqCst) {
            return Err(Error::Interrupted(format!(
                "snapshots taken so far are kept; post-snapshot commands were run on {}",
                host.name()
            )));
        }
    }
    Ok(out)
}

/// Says why each dataset is skipped or failed.
fn explain(log: &Log, names: &[&str], decisions: &[Option<Decision>]) {
    for (ds, dec) in names.iter().zip(decisions) {
        let Some(dec) = dec else { continue };
        match (&dec.error, &dec.outcome.reason) {
            (Some(e), _) => log.error(format!("[Source] {ds}: {e}")),
            (None, Some(r)) => log.verbose(format!("[Source] {ds}: {}", capitalise(r))),
            _ => {}
        }
    }
}

/// A flag that SIGINT and SIGTERM set, when acting: from here on they must
/// not skip the post-snapshot commands (which may undo what a pre-snapshot
/// command did).
fn interrupt_flag(act: bool) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    if act {
        let flag = stop.clone();
        // Installing fails only if a handler exists already; then the default
        // behaviour stays, which is no worse than before.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    stop
}

/// One host: pre-snapshot commands, its pools' snapshots unless one of them
/// failed or an interrupt came, then the post-snapshot commands, always.
fn on_host(
    config: &Config,
    host: &Host,
    h: &HostPlan,
    name: &str,
    stop: &AtomicBool,
    out: &mut Outcome,
) {
    let log = &config.log;
    match pre_hooks(config, host, stop) {
        Err(e) => {
            log.error(format!(
                "[Source] {e}; not snapshotting {} dataset(s)",
                h.datasets.len()
            ));
            out.fail(&h.datasets, &format!("not snapshotted: {e}"));
            out.pre_hook_failures += 1;
        }
        Ok(()) if stop.load(Ordering::SeqCst) => {}
        Ok(()) => {
            for pool in &h.pools {
                snapshot(config, host, pool, name, out);
            }
        }
    }
    out.hook_failures += post_hooks(config, host);
}

/// Runs the pre-snapshot commands in order, up to the first that fails (its
/// error) or an interrupt.
fn pre_hooks(config: &Config, host: &Host, stop: &AtomicBool) -> Result<(), String> {
    const KIND: &str = "pre-snapshot-cmd";
    for cmd in &config.pre_snapshot_cmd {
        if !config.act {
            config
                .log
                .verbose(format!("[Source] --test: not running {KIND}: {cmd}"));
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        hook(host, KIND, cmd, &config.log)?;
    }
    Ok(())
}

/// Runs every post-snapshot command; returns how many failed.
fn post_hooks(config: &Config, host: &Host) -> usize {
    const KIND: &str = "post-snapshot-cmd";
    let mut failures = 0;
    for cmd in &config.post_snapshot_cmd {
        if !config.act {
            config
                .log
                .verbose(format!("[Source] --test: not running {KIND}: {cmd}"));
        } else if let Err(e) = hook(host, KIND, cmd, &config.log) {
            config.log.error(format!("[Source] {e}"));
            failures += 1;
        }
    }
    failures
}

/// One pool's `zfs snapshot`: its datasets become created, or failed.
fn snapshot(config: &Config, host: &Host, pool: &PoolPlan, name: &str, out: &mut Outcome) {
    let log = &config.log;
    let p = &pool.pool;
    if !config.act {
        log.verbose(format!(
            "[Source] Creating snapshots {name} in pool {p} (--test: not run)"
        ));
        log.debug(format!("would run: {}", host.display(&pool.argv)));
        return;
    }
    log.verbose(format!("[Source] Creating snapshots {name} in pool {p}"));
    match host.output(&pool.argv) {
        Ok(_) => {
            for &i in &pool.datasets {
                if let Some(d) = out.decisions[i].as_mut() {
                    d.outcome.status = SnapStatus::Created;
                }
            }
        }
        Err(e) => {
            let why = snapshot_error(p, host, &e);
            log.error(format!(
                "[Source] {why} ({} dataset(s) not snapshotted)",
                pool.datasets.len()
            ));
            out.fail(&pool.datasets, &why);
        }
    }
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

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use crate::plan::Decision;
    use clap::Parser;
    use zab_core::record::SnapOutcome;

    fn config(extra: &[&str]) -> Config {
        let argv = ["zab-snap", "off"].iter().chain(extra);
        Args::try_parse_from(argv).unwrap().config().unwrap()
    }

    /// Two datasets to take on this machine, in one "pool" whose command is
    /// `argv` (plain commands here: this tests the executor, not zfs).
    fn plan(argv: &[&str]) -> Plan {
        let would = Decision {
            outcome: SnapOutcome {
                name: "off-1".into(),
                status: SnapStatus::WouldCreate,
                previous: None,
                written: None,
                reason: None,
            },
            error: None,
        };
        Plan {
            name: "off-1".into(),
            decisions: vec![Some(would.clone()), None, Some(would)],
            hosts: vec![HostPlan {
                host: 0,
                datasets: vec![0, 2],
                pools: vec![PoolPlan {
                    pool: "t".into(),
                    datasets: vec![0, 2],
                    argv: argv.iter().map(|a| a.to_string()).collect(),
                }],
            }],
        }
    }

    fn statuses(o: &Outcome) -> Vec<Option<SnapStatus>> {
        o.decisions
            .iter()
            .map(|d| d.as_ref().map(|d| d.outcome.status))
            .collect()
    }

    const NAMES: [&str; 3] = ["t/a", "t/b", "t/c"];

    #[test]
    fn test_mode_runs_nothing_and_leaves_would_create() {
        // Under --test the host refuses any command that writes; the
        // executor must not even try, hooks included.
        let c = config(&[
            "--test",
            "--pre-snapshot-cmd",
            "exit 3",
            "--post-snapshot-cmd",
            "exit 4",
        ]);
        let host = Host::local().with_read_only(c.read_only);
        let o = execute(&c, &[host], &NAMES, plan(&["false"])).unwrap();
        use SnapStatus::*;
        assert_eq!(statuses(&o), [Some(WouldCreate), None, Some(WouldCreate)]);
        assert_eq!((o.hook_failures, o.pre_hook_failures), (0, 0));
    }

    #[test]
    fn acting_runs_hooks_and_the_pool_command() {
        use SnapStatus::*;
        let c = config(&["--post-snapshot-cmd", "exit 4"]);
        let o = execute(&c, &[Host::local()], &NAMES, plan(&["true"])).unwrap();
        assert_eq!(statuses(&o), [Some(Created), None, Some(Created)]);
        assert_eq!((o.hook_failures, o.pre_hook_failures), (1, 0));

        let o = execute(&c, &[Host::local()], &NAMES, plan(&["false"])).unwrap();
        assert_eq!(statuses(&o), [Some(Failed), None, Some(Failed)]);

        // A failing pre-snapshot command: no snapshot, the post ones still run.
        let c = config(&[
            "--pre-snapshot-cmd",
            "exit 3",
            "--post-snapshot-cmd",
            "exit 4",
        ]);
        let o = execute(&c, &[Host::local()], &NAMES, plan(&["true"])).unwrap();
        assert_eq!(statuses(&o), [Some(Failed), None, Some(Failed)]);
        assert_eq!((o.hook_failures, o.pre_hook_failures), (1, 1));
        let e = o.decisions[0].as_ref().unwrap().error.as_deref().unwrap();
        assert!(
            e.starts_with("not snapshotted: pre-snapshot-cmd \"exit 3\" failed on local: exit 3"),
            "{e}"
        );
    }

    #[test]
    fn reasons_are_capitalised_as_sentences() {
        assert_eq!(capitalise("no changes since x"), "No changes since x");
        assert_eq!(capitalise(""), "");
    }
}
