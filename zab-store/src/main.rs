//! zab-store: lists, checks, uploads and downloads the backups that
//! zab-send keeps in S3 or in a directory.

mod cli;
mod run;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-store");
    let args = zab_core::cli::parse::<cli::Args>();
    match run::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report("zab-store", &e),
    }
}
