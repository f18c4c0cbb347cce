//! zab-snap: one atomic snapshot per pool, skipping unchanged datasets.
//!
//! Reads zab-select's records on stdin, finds each dataset's newest snapshot
//! of ours with one listing per host, reads every `written@…` value it needs
//! with one more `zfs get`, and takes the snapshot of all changed datasets of
//! a pool with one `zfs snapshot`, between the pre- and post-snapshot
//! commands. Writes the records back out, each saying what became of its
//! snapshot, then an `end` record.

mod cache;
mod cli;
mod execute;
mod gather;
mod plan;
mod report;
mod run;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-snap");
    let args = zab_core::cli::parse::<cli::Args>();
    if args.common.check_options {
        return zab_core::cli::check_options("zab-snap", args.config());
    }
    match run::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report("zab-snap", &e),
    }
}
