//! zab-send: plans and runs the transfers of zfs-autobackup's datasets to a
//! target (full, incremental, resumed), locally or over ssh.

mod board;
mod bookmarks;
mod cache;
mod chain;
mod cli;
mod early;
mod execute;
mod flags;
mod gather;
mod holds;
mod input;
mod jobs;
mod listing;
mod monitor;
mod mounts;
mod parents;
mod plan;
mod report;
mod run;
mod sink;
mod stream;
mod transfer;
mod upload;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-send");
    let args = zab_core::cli::parse::<cli::Args>();
    if args.common.check_options {
        return zab_core::cli::check_options("zab-send", args.config());
    }
    match run::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report("zab-send", &e),
    }
}
