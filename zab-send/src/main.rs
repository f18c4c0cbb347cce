//! zab-send: plans and runs the transfers of zfs-autobackup's datasets to a
//! target (full, incremental, resumed), locally or over ssh.

mod cli;
mod plan;
mod stream;

use clap::Parser;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-send");
    let _args = cli::Args::parse();
    std::process::ExitCode::SUCCESS
}
