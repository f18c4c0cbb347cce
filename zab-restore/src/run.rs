//! zab-restore's run, as a table of contents: the store opened and every
//! read done before anything changes (gather.rs: with --all the store's
//! datasets and one `zfs list` below TARGET-PATH; then for each dataset
//! its manifest, one listing of its objects and its target), every
//! decision (plan.rs: the parents to create, each dataset's chain, what
//! the target still needs, a partial receive to abort), then --all's
//! parents created and, parents first, each dataset restored (execute.rs:
//! each object downloaded ahead and streamed into `zfs recv`,
//! receive.rs) and its record written (report.rs); the end record last.
//!
//! A problem of the store as a whole (a missing bucket or directory,
//! refused credentials) is exit 4 before anything runs; a problem of a
//! dataset (no backup of it, no whole chain, a corrupt object, a failed
//! receive) is its record's `error`, one line on stderr, and exit 1.
//!
//! A partial receive left on a target (`zfs recv -s` cut short, with a
//! `receive_resume_token`) goes on inside its object with the resuming
//! stream made from the stored one (resume.rs), or, where that cannot be
//! made, is aborted (`zfs recv -A`) and its object received again from
//! its start: docs/store.md, "Going on inside an object".

use std::sync::Arc;

use zab_core::error::Error;

use crate::cli::{Config, What, TOOL};
use crate::receive::Running;
use crate::{execute, gather, plan, report};

pub fn run(cfg: &Config) -> Result<(), Error> {
    let log = cfg.common.log(TOOL);
    let store = gather::open(cfg)?;
    // SIGINT and SIGTERM stop the receive running, and the run (receive.rs).
    let running = Arc::new(Running::default());
    let r = Arc::clone(&running);
    let _ = ctrlc::set_handler(move || r.interrupt());
    let world = gather::gather(cfg, &store)?;
    let target_path = match &cfg.what {
        What::All { target_path, .. } => Some(target_path.as_str()),
        What::One { .. } => None,
    };
    let plans = plan::decide(&world, target_path, &cfg.recv_options, cfg.host.name());
    execute::parents(cfg, &plans.parents, &log);
    let mut report = report::Report::new(cfg);
    for (job, r) in world.jobs.iter().zip(&plans.datasets) {
        if running.is_stopped() {
            break;
        }
        let done = execute::restore(cfg, &store, job, r, &running, &log);
        report.add(&store, job, r, done, &log)?;
    }
    report.finish(&running)
}
