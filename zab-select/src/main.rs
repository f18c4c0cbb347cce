//! zab-select: which datasets to back up, and why.
//!
//! Reads the selection property (`autobackup:NAME`) of every filesystem and
//! volume on the source host with one `zfs get`, applies zfs-autobackup's
//! selection rules (zab-core's `select`), and writes one NDJSON `dataset` record
//! per selected dataset (with `--all`, per dataset), then an `end` record.

mod cli;
mod report;
mod run;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-select");
    let args = zab_core::cli::parse::<cli::Args>();
    if args.common.check_options {
        return zab_core::cli::check_options("zab-select", args.config());
    }
    match run::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report("zab-select", &e),
    }
}
