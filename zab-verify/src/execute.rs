//! Hashes each common snapshot on both sides at once: zab-check on the
//! source's host and on the target's, each through zab_core::host (locally
//! or over ssh), in two threads. Decides nothing.

use zab_core::error::Error;
use zab_core::Host;

use crate::cli::Config;
use crate::plan::Job;

/// The name of the hashing tool on every host.
pub const CHECK: &str = "zab-check";

/// `job`'s snapshot hashed on both sides (`hosts`: the source hosts);
/// None when it has none to compare.
pub fn hash(cfg: &Config, hosts: &[Host], job: &Job) -> Option<Result<(String, String), Error>> {
    let snap = job.snapshot.as_deref()?;
    Some(hash_both(
        cfg,
        (&hosts[job.host], &format!("{}@{snap}", job.source)),
        (&cfg.target_host, &format!("{}@{snap}", job.target)),
    ))
}

/// zab-check's output on both sides, or the first side's error.
fn hash_both(
    cfg: &Config,
    source: (&Host, &str),
    target: (&Host, &str),
) -> Result<(String, String), Error> {
    let argv = |snapshot: &str| {
        let mut argv = vec![CHECK.to_string()];
        argv.extend(cfg.check_args.iter().cloned());
        argv.push("--".into());
        argv.push(snapshot.to_string());
        argv
    };
    let (a, b) = (argv(source.1), argv(target.1));
    std::thread::scope(|s| {
        let t = s.spawn(|| target.0.output(&b));
        let src = source.0.output(&a);
        let tgt = t
            .join()
            .unwrap_or_else(|_| Err(Error::Io("the target's hashing panicked".into())));
        Ok((src?, tgt?))
    })
}
