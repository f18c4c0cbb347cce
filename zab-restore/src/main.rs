//! zab-restore: restores a dataset from the backups zab-send keeps in
//! object storage or a directory: the chain planned from the dataset's
//! manifest, each object hashed as it streams into `zfs recv`.
//!
//! `cli.rs` checks every option once (`Args::config`); `run.rs` is the
//! table of contents: `gather.rs` reads the store and the target,
//! `plan.rs` decides (pure), `execute.rs` carries it out (`receive.rs`
//! streams each object into `zfs recv`, through `resume.rs` when a
//! partial receive goes on inside it, from a checkpoint of
//! `checkpoint.rs` when there is one, after `decompress.rs` for a
//! compressed object), and `report.rs` writes the records.

mod checkpoint;
mod cli;
mod decompress;
mod execute;
mod gather;
mod plan;
mod receive;
mod report;
mod resume;
mod run;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic(cli::TOOL);
    let args = zab_core::cli::parse::<cli::Args>();
    if args.common.check_options {
        return zab_core::cli::check_options(cli::TOOL, args.config());
    }
    match args.config().and_then(|c| run::run(&c)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report(cli::TOOL, &e),
    }
}
