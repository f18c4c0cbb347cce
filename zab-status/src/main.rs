//! zab-status: how each backed-up dataset stands, from one listing per
//! host and zab-send's state file; as records, a table, or a Nagios/Icinga
//! check with `--warn` and `--crit` (exit 0 OK, 1 WARNING, 2 CRITICAL, 3
//! UNKNOWN).
//!
//! Where each decision is made: `cli.rs` checks every option once
//! (`Args::config`); `run.rs` reads the records, then goes through
//! `gather.rs` (the listings and the state, at once), `assess.rs` (each
//! dataset's health and the Nagios line; pure) and `report.rs` (the output).
//!
//! In a Nagios check every error, a bad option too, is UNKNOWN (3), said
//! on stdout as the check's line and on stderr as every tool says it.

mod assess;
mod cli;
mod gather;
mod report;
mod run;

use std::process::ExitCode;

use zab_core::cli::{try_parse_from, usage_line};

fn main() -> ExitCode {
    zab_core::error::exit_on_panic(cli::TOOL);
    let nagios = std::env::args().any(|a| {
        ["--warn", "--crit"]
            .iter()
            .any(|o| a == *o || a.starts_with(&format!("{o}=")))
    });
    if nagios {
        if let Err(e) = try_parse_from::<cli::Args, _, _>(std::env::args_os()) {
            if e.use_stderr() {
                let line = usage_line(cli::TOOL, &e);
                println!("{}", assess::unknown(&line));
                eprintln!("{line}");
                return ExitCode::from(3);
            }
        }
    }
    let args = zab_core::cli::parse::<cli::Args>();
    if args.common.check_options {
        return zab_core::cli::check_options(cli::TOOL, args.config());
    }
    let nagios = args.nagios();
    match args.config().and_then(|c| run::run(&c)) {
        Ok(code) => ExitCode::from(code),
        Err(e) if nagios => {
            println!("{}", assess::unknown(&format!("{}: {e}", cli::TOOL)));
            zab_core::error::report(cli::TOOL, &e);
            ExitCode::from(3)
        }
        Err(e) => zab_core::error::report(cli::TOOL, &e),
    }
}
