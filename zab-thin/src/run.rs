//! zab-thin with ZFS, phase by phase, each in the file named after it:
//! [`crate::cli`] checks the options once ([`Zfs`]); [`crate::input`] reads
//! the records whole and takes the run lock; [`crate::gather`] lists every
//! host's snapshots (all hosts at the same time) and asks the selection
//! again when it must; [`crate::plan`] thins them by the schedules and
//! decides `--destroy-missing` (a draft); [`crate::holds`] reads the holds
//! of what the draft would destroy and settles it; [`crate::show`] draws
//! the plan (`--explain`, `--svg`);
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
//! The holds are read last, of only the snapshots the draft plan would
//! destroy ([`crate::holds`]): `run` goes input → gather → plan → holds →
//! show → execute → report, each file once.

use zab_core::error::Error;

use crate::cli::Zfs;
use crate::gather::{self, Hosts};
use crate::holds;
use crate::{bookmarks, execute, input, plan, report, show};

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
    let listed = gather::gather(config, &input, &mut hosts)?;
    let draft = plan::draft(config, &input, &listed);
    for (dataset, common) in &draft.commons {
        log.debug(format!("{dataset}: common snapshot {common}"));
    }
    let held = holds::read(&hosts, &draft)?;
    let mut jobs = holds::decide(draft, &held, &config.tag);
    bookmarks::mark(&mut jobs, config, &listed);

    show::show(config, &jobs)?;
    execute::execute(&mut jobs, &hosts, &config.tag, config.act(), &log);
    bookmarks::destroy(&mut jobs, &hosts, config.act(), &log);
    report::write(input.datasets, &jobs, config.act(), config.target.is_some())
}
