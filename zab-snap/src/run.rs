//! zab-snap's run, in the order it happens: the checked command line, the
//! records on stdin, the reads on each host (gather), what to do (plan), doing
//! it (execute), and the records back out (report).

use zab_core::error::Error;
use zab_core::ndjson::read_stdin;

use crate::cli::Args;
use crate::{execute, gather, plan, report};

pub fn run(args: &Args) -> Result<(), Error> {
    let config = args.config()?;

    let stream = read_stdin(crate::cli::TOOL)?;
    stream.check(&config.backup, config.ssh_source.as_deref())?;
    // The records this run acts on, by host (None = this machine).
    let by_host = stream.selected_by_host();
    let datasets = stream.datasets;
    let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();

    // Named now, before the reads, as a snapshot of this second.
    let name = config.format.name_at(config.now());

    let (hosts, listings) = gather::gather(&config, &names, by_host)?;

    let plan = plan::plan(
        &listings,
        &names,
        &name,
        config.min_change,
        &config.properties,
    );

    let outcome = execute::execute(&config, &hosts, &names, plan)?;

    report::report(datasets, outcome, &name, config.act)
}
