//! zab-snap's run, in the order it happens: the checked command line, the
//! records on stdin, the quiet-run cache (cache.rs), the reads on each host
//! (gather), what to do (plan), doing it (execute), the records back out
//! (report), and, the run having succeeded, the cache.

use zab_core::error::Error;
use zab_core::ndjson::read_stdin;

use crate::cli::Args;
use crate::{cache, execute, gather, plan, report};

pub fn run(args: &Args) -> Result<(), Error> {
    let config = args.config()?;

    let stream = read_stdin(crate::cli::TOOL)?;
    stream.check(&config.backup, config.ssh_source.as_deref())?;
    // The records this run acts on, by host (None = this machine).
    let by_host = stream.selected_by_host();
    let datasets = stream.datasets;
    let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
    let facts = cache::facts(&datasets);
    let caches = cache::load(&config, by_host.keys());
    let dests: Vec<Option<String>> = by_host.keys().cloned().collect();

    // Named now, before the reads, as a snapshot of this second.
    let name = config.format.name_at(config.now());

    let (hosts, listings) = gather::gather(&config, &names, by_host, &caches, &facts)?;

    let plan = plan::plan(
        &listings,
        &names,
        &name,
        config.min_change,
        &config.properties,
    );

    let outcome = execute::execute(&config, &hosts, &names, plan)?;

    let new_caches: Vec<_> = dests
        .into_iter()
        .zip(&listings)
        .filter_map(|(dest, l)| {
            let old = caches.of(&dest)?;
            let new = cache::updated(old, l, &names, &facts, &outcome.decisions, &config.format);
            Some((dest, new))
        })
        .collect();
    report::report(datasets, outcome, &name, config.act)?;
    cache::save(&config, &caches, new_caches);
    Ok(())
}
