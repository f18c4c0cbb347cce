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
//! the plan would destroy. So gathering and planning take turns, in this
//! order, each step named here.

use zab_core::error::Error;

use crate::cli::Zfs;
use crate::gather::{self, Hosts};
use crate::{execute, input, plan, report, show};

pub fn run(config: &Zfs) -> Result<(), Error> {
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

    // The listings, then the schedules' plan.
    let mut hosts = Hosts::default();
    let listed = gather::listings(config, &input, &mut hosts)?;
    let mut draft = plan::thin(config, &input.datasets, &listed);
    for (dataset, common) in &draft.commons {
        log.debug(format!("{dataset}: common snapshot {common}"));
    }

    // Target datasets without a record: the selection asked again first.
    let needed = !plan::candidates(config, &input, &listed).is_empty();
    let selections = gather::selections(config, &input, &mut hosts, needed)?;
    plan::add_missing(&mut draft, config, &input, &listed, &selections);

    // The holds of what would be destroyed decide the rest.
    let holds = gather::holds(&hosts, &plan::hold_queries(&draft))?;
    let mut jobs = plan::decide(draft, &holds, &config.tag);

    show::show(config, &jobs)?;
    execute::execute(&mut jobs, &hosts, &config.tag, config.act(), &log);
    report::write(input.datasets, &jobs, config.act(), config.target.is_some())
}
