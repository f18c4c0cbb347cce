//! zab-thin: destroys what the schedule no longer wants, never more.
//!
//! With ZFS (the default), it reads zab-select's or zab-snap's records,
//! lists the snapshots of every dataset with one `zfs list` per host, thins
//! our snapshots by `--keep-source` (and, with a TARGET-PATH, the target's by
//! `--keep-target`), and destroys with one `zfs destroy ds@a,b,c` per dataset.
//! With `--offline` it thins a list of snapshot records without touching ZFS;
//! `--describe SCHEDULE` says a schedule in words.

mod cli;
mod offline;
mod picture;
mod plan;
mod run;

fn main() -> std::process::ExitCode {
    zab_core::error::exit_on_panic("zab-thin");
    let args = zab_core::cli::parse::<cli::Args>();
    if let Some(text) = &args.describe {
        return match cli::describe(text) {
            Ok(lines) => {
                let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
                // A reader that went away is not an error (the record tools' policy).
                let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => zab_core::error::report("zab-thin", &e),
        };
    }
    let result = if args.offline {
        offline::run(&args)
    } else {
        run::run(&args)
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => zab_core::error::report("zab-thin", &e),
    }
}
