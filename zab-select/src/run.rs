//! zab-select's run, in the order it happens: the checked command line, the
//! one `zfs get` (gather), the selection rules (plan: zab_core::select), and
//! the records (report).

use zab_core::error::Error;
use zab_core::{select, zfs};

use crate::cli::Args;
use crate::report;

pub fn run(args: &Args) -> Result<(), Error> {
    let config = args.config()?;

    let argv = select::get_args(&config.options.property);
    let rows = zfs::query(&config.host, &argv, zfs::parse_get)?;

    let all = select::select(&rows, &config.options)
        .map_err(|message| zfs::parse_error(&config.host, &argv, message))?;

    report::report(&config, &all)
}
