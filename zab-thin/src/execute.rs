//! Carries the plan out, deciding nothing: releases our holds (one `zfs
//! release` per host), then destroys each job's snapshots with one `zfs
//! destroy ds@a,b,c`, and its dataset when the plan says so. A failure
//! marks that job and leaves the others going. With the act switch off
//! (`--test`, `--no-thinning`) it only says what it would do.

use zab_core::cli::Log;
use zab_core::zfs;

use crate::gather::Hosts;
use crate::plan::Job;

/// Says each job's decisions (`--verbose`), then, when `act`, carries them
/// out, setting each job's `done` and `error`.
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
    for j in jobs.iter_mut() {
        if j.error.is_none() && (!j.destroy.is_empty() || j.destroy_dataset) {
            destroy(j, hosts, log);
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

/// One job's snapshots, then its dataset when asked.
fn destroy(j: &mut Job, hosts: &Hosts, log: &Log) {
    let host = hosts.get(j.host);
    if !j.destroy.is_empty() {
        let names: Vec<&str> = j.destroy.iter().map(String::as_str).collect();
        if let Err(e) = host.output(&zfs::destroy_snapshots_args(&j.dataset, &names)) {
            let why = format!("destroying {} snapshot(s): {e}", names.len());
            log.error(format!("{} {}: {why}", j.side, j.dataset));
            j.error = Some(why);
            return;
        }
    }
    j.done = true;
    if j.destroy_dataset {
        if let Err(e) = host.output(&zfs::destroy::dataset_args(&j.dataset)) {
            let why = format!("destroying the dataset: {e}");
            log.error(format!("{} {}: {why}", j.side, j.dataset));
            j.error = Some(why);
        }
    }
}
