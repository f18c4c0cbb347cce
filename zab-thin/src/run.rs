//! zab-thin with ZFS, phase by phase, each in the file named after it:
//! [`crate::cli`] checks the options once ([`Zfs`]); [`crate::input`] reads
//! the records whole and takes the run lock; [`crate::gather`] lists every
//! host's snapshots (all hosts at the same time); [`crate::plan`] thins them
//! by the schedules and decides `--destroy-missing` and the holds;
//! [`crate::show`] draws the plan (`--explain`, `--svg`);
//! [`crate::execute`] carries it out; [`crate::report`] writes the records.
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
//! Some reads depend on the plan: the selection is asked again only for
//! target datasets without a record, and the holds only of the snapshots
//! the plan would destroy. The plan asks for them through
//! [`plan::Reads`], which [`gather::Later`] answers, so that `run` visits
//! each phase once.

use zab_core::error::Error;

use crate::cli::Zfs;
use crate::gather::{self, Hosts};
use crate::{execute, input, plan, report, show};

pub fn run(config: &Zfs) -> Result<(), Error> {
    if config.store.is_some() {
        return crate::store::run(config);
    }
    let log = config.log;
    for line in config.keep_source.describe() {
        log.verbose(format!("[Source] {line}"));
    }
    if config.target.is_some() {
        for line in config.keep_target.describe() {
            log.verbose(format!("[Target] {line}"));
        }
    }
    let input = input::read(config)?;

    let mut hosts = Hosts::default();
    let listed = gather::listings(config, &input, &mut hosts)?;
    let mut later = gather::Later {
        config,
        input: &input,
        hosts: &mut hosts,
    };
    let plan::Planned { mut jobs, commons } = plan::plan(config, &input, &listed, &mut later)?;
    for (dataset, common) in &commons {
        log.debug(format!("{dataset}: common snapshot {common}"));
    }

    show::show(config, &jobs)?;
    execute::execute(&mut jobs, &hosts, &config.tag, config.act(), &log);
    report::write(input.datasets, &jobs, config.act(), config.target.is_some())
}
