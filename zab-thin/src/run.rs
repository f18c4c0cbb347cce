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
//!
//! With the quiet-run cache ([`crate::cache`]), the listings may come from
//! it instead of `gather`: when every dataset's facts are its entry's and
//! the plan from the cached snapshots destroys nothing. After a listing
//! run the cache is updated, and written once the records are.

use zab_core::error::Error;

use crate::cli::Zfs;
use crate::gather::{self, Hosts, Listed};
use crate::holds;
use crate::input::Input;
use crate::plan::Draft;
use crate::{bookmarks, cache, execute, input, plan, report, show};

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
    let loaded = cache::load(config, &input);

    let mut hosts = Hosts::default();
    let (listed, draft, listed_at) = read(config, &input, &mut hosts, loaded.as_ref())?;
    for (dataset, common) in &draft.commons {
        log.debug(format!("{dataset}: common snapshot {common}"));
    }
    let held = holds::read(&hosts, &draft)?;
    let mut jobs = holds::decide(draft, &held, &config.tag);
    bookmarks::mark(&mut jobs, config, &listed);

    show::show(config, &jobs)?;
    execute::execute(&mut jobs, &hosts, &config.tag, config.act(), &log);
    bookmarks::destroy(&mut jobs, &hosts, config.act(), &log);
    // After a listing run, the cache's entries (before the records, which
    // take the input); written once the records are.
    let new = match (&loaded, listed_at) {
        (Some(l), Some(listed_at)) => Some(cache::after(
            config,
            l,
            &hosts,
            &cache::Run {
                input: &input,
                listed: &listed,
                jobs: &jobs,
                listed_at,
            },
        )),
        _ => None,
    };
    let written = report::write(input.datasets, &jobs, config.act(), config.target.is_some());
    if let (Some(l), Some(new), Ok(())) = (&loaded, &new, &written) {
        cache::save(config, l, new);
    }
    written
}

/// The listings and the draft plan from them: from the quiet-run cache
/// when every dataset's facts are its entry's and the plan from it
/// destroys nothing (no holds to ask), else listed; with the time the
/// listings started (None: from the cache).
fn read(
    config: &Zfs,
    input: &Input,
    hosts: &mut Hosts,
    loaded: Option<&cache::Loaded>,
) -> Result<(Listed, Draft, Option<i64>), Error> {
    let log = config.log;
    if let Some(listed) = loaded.and_then(|l| cache::listed(config, input, hosts, &l.cache)) {
        let draft = plan::draft(config, input, &listed);
        if holds::queries(&draft).is_empty() {
            log.debug(
                "quiet-run cache: nothing changed on either side, nothing due: nothing listed",
            );
            return Ok((listed, draft, None));
        }
        log.debug("quiet-run cache: a snapshot is due: listing everything");
    }
    let listed_at = cache::now();
    let listed = gather::gather(config, input, hosts)?;
    let draft = plan::draft(config, input, &listed);
    Ok((listed, draft, Some(listed_at)))
}
