//! `--ssh-source`: zab-check runs on that host (which needs it in its
//! PATH), with the same options; its output, errors and exit status are
//! ours. `--check=FILE` reads FILE here and feeds it to the remote's stdin.

use std::process::Stdio;

use zab_core::error::{CommandError, Error, Status};
use zab_core::host::quote_argv;

use crate::cli::{Config, TOOL};

/// The remote command line: the options that change what is hashed, and
/// TARGET.
pub fn argv(config: &Config) -> Vec<String> {
    let mut argv = vec![TOOL.to_string()];
    argv.extend(config.chunks.args());
    argv.extend(["--hash".into(), config.hash.name().into()]);
    if let Some(jobs) = config.jobs_given {
        argv.push("--jobs".into());
        argv.push(jobs.to_string());
    }
    if config.check.is_some() {
        argv.push("--check".into());
    }
    if config.log.debug {
        argv.push("--debug".into());
    } else if config.log.verbose {
        argv.push("--verbose".into());
    }
    argv.push("--".into());
    argv.push(config.target.clone());
    argv
}

/// Runs zab-check on the remote host; returns its exit status.
pub fn run(config: &Config) -> Result<u8, Error> {
    let argv = argv(config);
    let mut cmd = config.host.command(&argv)?;
    match &config.check {
        None => {}
        Some(f) if f.as_os_str() == "-" => {
            cmd.stdin(Stdio::inherit());
        }
        Some(f) => {
            let file = std::fs::File::open(f)
                .map_err(|e| Error::Io(format!("cannot read {}: {e}", f.display())))?;
            cmd.stdin(file);
        }
    }
    let fail = |status: Status| -> Error {
        CommandError {
            host: config.host.name().to_string(),
            via_ssh: true,
            program: TOOL.into(),
            command: quote_argv(&argv),
            status,
            stderr: String::new(),
        }
        .into()
    };
    let status = cmd
        .status()
        .map_err(|e| fail(Status::Spawn(e.to_string())))?;
    match Status::from_exit(status) {
        Status::Code(127) => Err(fail(Status::Code(127))),
        Status::Code(c) => Ok(u8::try_from(c).unwrap_or(255)),
        s => Err(fail(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::Parser;

    #[test]
    fn the_remote_gets_what_changes_the_hashes() {
        let args = Args::parse_from([
            "zab-check",
            "--ssh-source",
            "root@nas",
            "--skip",
            "3",
            "--hash",
            "sha1",
            "--check",
            "-v",
            "--",
            "-odd name@s",
        ]);
        let config = args.config().expect("config");
        assert!(config.remote);
        assert_eq!(
            quote_argv(&argv(&config)),
            "zab-check --block-size 4096 --count 25600 --skip 3 --hash sha1 --check --verbose -- '-odd name@s'"
        );
    }
}
