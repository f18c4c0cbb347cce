//! Carries the plan out, deciding nothing: releases our holds (one `zfs
//! release` per host), then destroys the snapshots, then the datasets the
//! plan says to (`--destroy-missing`). A failure marks that job and leaves
//! the others going. With the act switch off (`--test`, `--no-thinning`) it
//! only says what it would do, and runs nothing.
//!
//! Snapshots go by a ZFS channel program where the host runs them (root,
//! OpenZFS 0.8+; one read-only `zfs program -n` per host asks): one `zfs
//! program` per pool for all its datasets, cut into batches that keep the
//! program's limits ([`zfs::destroy::batches`]). Each snapshot is destroyed
//! on its own there, so a held or busy one fails alone: its dataset's
//! record gets the error (with each snapshot that failed and why), the
//! others are destroyed. Elsewhere (a user with `zfs allow`, an older
//! OpenZFS) it is one `zfs destroy ds@a,b,c` per dataset, which destroys all
//! of a dataset's snapshots or none.

use std::collections::BTreeMap;

use zab_core::cli::Log;
use zab_core::host::Host;
use zab_core::zfs;
use zab_core::zfs::destroy::{batches, parse_program, program_args, PROGRAM};

use crate::gather::Hosts;
use crate::plan::Job;

/// For the lab tests only: when set (to anything), zab-thin never runs a
/// channel program and destroys one dataset at a time, as on a host that
/// cannot run one, so that both ways are tested on the same OpenZFS.
pub const NO_PROGRAM_ENV: &str = "ZAB_THIN_NO_PROGRAM";

/// Says each job's decisions (`--verbose`), then, when `act`, carries them
/// out, setting each job's `done`, `destroyed` and `error`.
pub fn execute(jobs: &mut [Job], hosts: &Hosts, our_tag: &str, act: bool, log: &Log) {
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
    release(jobs, hosts, our_tag, log);
    let programs = std::env::var_os(NO_PROGRAM_ENV).is_none();
    for (h, host) in hosts.iter() {
        let todo: Vec<usize> = (0..jobs.len())
            .filter(|&i| {
                jobs[i].host == h && jobs[i].error.is_none() && !jobs[i].destroy.is_empty()
            })
            .collect();
        let Some(&first) = todo.first() else { continue };
        if programs && programs_run(host, pool(&jobs[first].dataset), log) {
            by_program(jobs, &todo, host, log);
        } else {
            for &i in &todo {
                by_dataset(&mut jobs[i], host, log);
            }
        }
    }
    for j in jobs
        .iter_mut()
        .filter(|j| j.destroy_dataset && j.error.is_none())
    {
        j.done |= j.destroy.is_empty();
        if j.done {
            destroy_dataset(j, hosts.get(j.host), log);
        }
    }
}

/// Our holds, one `zfs release` per host; a failure there fails each job
/// of that host that had any to release.
fn release(jobs: &mut [Job], hosts: &Hosts, our_tag: &str, log: &Log) {
    for (h, host) in hosts.iter() {
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
}

/// The pool a dataset is in.
fn pool(dataset: &str) -> &str {
    dataset.split('/').next().unwrap_or(dataset)
}

/// Whether `host` runs channel programs: a read-only `zfs program -n` of
/// [`PROGRAM`] without arguments, which changes nothing.
fn programs_run(host: &Host, pool: &str, log: &Log) -> bool {
    let out = host.output_fed(&program_args(pool, &[], true), PROGRAM);
    match out
        .map_err(|e| e.to_string())
        .and_then(|o| parse_program(&o))
    {
        Ok(_) => true,
        Err(e) => {
            log.debug(format!(
                "no channel program on {}: {e}; one zfs destroy per dataset",
                host.name()
            ));
            false
        }
    }
}

/// The snapshots of jobs `todo` (all of `host`), one channel program per
/// pool and batch. A snapshot the program could not destroy fails its job,
/// the others are destroyed. A program that failed as a whole fails every
/// job in its batch: what it did before it stopped is not known, and it is
/// not tried again another way.
fn by_program(jobs: &mut [Job], todo: &[usize], host: &Host, log: &Log) {
    let mut by_pool: BTreeMap<&str, Vec<(usize, String)>> = BTreeMap::new();
    for &i in todo {
        let j = &jobs[i];
        let snaps = by_pool.entry(pool(&j.dataset)).or_default();
        snaps.extend(j.destroy.iter().map(|s| (i, format!("{}@{s}", j.dataset))));
    }
    let mut failed: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut whole: BTreeMap<usize, String> = BTreeMap::new();
    let mut destroyed: BTreeMap<usize, usize> = BTreeMap::new();
    for (pool, snaps) in &by_pool {
        let names: Vec<&str> = snaps.iter().map(|(_, n)| n.as_str()).collect();
        for r in batches(&names) {
            let argv = program_args(pool, &names[r.clone()], false);
            let out = host.output_fed(&argv, PROGRAM).map_err(|e| e.to_string());
            match out.and_then(|o| parse_program(&o)) {
                Ok(f) => {
                    for (i, name) in &snaps[r] {
                        match f.get(name) {
                            Some(&errno) => failed.entry(*i).or_default().push(format!(
                                "{name}: {}",
                                std::io::Error::from_raw_os_error(errno)
                            )),
                            None => *destroyed.entry(*i).or_default() += 1,
                        }
                    }
                }
                Err(e) => {
                    let why = format!("a channel program on {pool} failed, and what it destroyed before is not known: {e}");
                    log.error(&why);
                    for (i, _) in &snaps[r] {
                        whole.entry(*i).or_insert_with(|| why.clone());
                    }
                }
            }
        }
    }
    for &i in todo {
        let j = &mut jobs[i];
        j.destroyed = destroyed.get(&i).copied().unwrap_or(0);
        let why = match (whole.remove(&i), failed.remove(&i)) {
            (Some(why), _) => format!("destroying {} snapshot(s): {why}", j.destroy.len()),
            (None, Some(f)) => format!(
                "destroying {} of {} snapshot(s) failed ({} destroyed): {}",
                f.len(),
                j.destroy.len(),
                j.destroyed,
                f.join("; ")
            ),
            (None, None) => {
                j.done = true;
                continue;
            }
        };
        log.error(format!("{} {}: {why}", j.side, j.dataset));
        j.error = Some(why);
    }
}

/// One job's snapshots in one `zfs destroy ds@a,b,c`: all or none.
fn by_dataset(j: &mut Job, host: &Host, log: &Log) {
    let names: Vec<&str> = j.destroy.iter().map(String::as_str).collect();
    match host.output(&zfs::destroy_snapshots_args(&j.dataset, &names)) {
        Ok(_) => {
            j.done = true;
            j.destroyed = names.len();
        }
        Err(e) => {
            let why = format!("destroying {} snapshot(s): {e}", names.len());
            log.error(format!("{} {}: {why}", j.side, j.dataset));
            j.error = Some(why);
        }
    }
}

/// The dataset itself (`--destroy-missing`), once its snapshots are gone.
fn destroy_dataset(j: &mut Job, host: &Host, log: &Log) {
    if let Err(e) = host.output(&zfs::destroy::dataset_args(&j.dataset)) {
        let why = format!("destroying the dataset: {e}");
        log.error(format!("{} {}: {why}", j.side, j.dataset));
        j.error = Some(why);
    }
}
