//! zab-verify: what zfs-autoverify was meant to be. For each dataset of
//! zab-select's records, the newest snapshot common to source and target
//! is hashed on both sides at once (zab-check) and compared; one record per
//! dataset says verified, mismatch (which files or chunks) or
//! no-common-snapshot.
//!
//! Where each decision is made: `cli.rs` checks every option once
//! (`Args::config`); `run.rs` then goes through `input.rs` (the records,
//! the target map), `gather.rs` (one listing per host), `plan.rs` (the
//! common snapshot; pure), `execute.rs` (zab-check on both hosts),
//! `compare.rs` (the hashes compared, the verdict; pure) and `report.rs`
//! (the records).

mod cli;
mod compare;
mod execute;
mod gather;
mod input;
mod plan;
mod report;
mod run;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic(cli::TOOL);
    let args = zab_core::cli::parse::<cli::Args>();
    match args.config().and_then(|c| run::run(&c)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report(cli::TOOL, &e),
    }
}
