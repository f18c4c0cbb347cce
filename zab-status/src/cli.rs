//! zab-status's command line, and [`Config`]: every option checked once.

use clap::Parser;
use zab_core::cli::{after_help, heading, Common, Naming, Source, Target};
use zab_core::error::Error;
use zab_core::naming::SnapshotFormat;
use zab_core::Host;

/// The tool's name, in messages and records.
pub const TOOL: &str = "zab-status";

const EXAMPLES: &str = "  \
  # How every dataset of 'offsite1' stands below backup/host1, as records:
  zab-select offsite1 | zab-status offsite1 backup/host1

  # The same as a table:
  zab-select offsite1 | zab-status --human offsite1 backup/host1

  # A Nagios/Icinga check (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN):
  sh -c 'zab-select offsite1 | zab-status --warn 1d --crit 2d offsite1 backup/host1'

  # Pushed to root@backup1; the datasets that are not ok:
  zab-select offsite1 | zab-status --ssh-target root@backup1 offsite1 tank/host1 |
      jq -c 'select(.status.health? != \"ok\" and .kind == \"dataset\") | {name, status}'
";

/// How each backed-up dataset stands: the age of the newest of our
/// snapshots on the source and on the target, the age of the last
/// successful transfer and the bytes of zab-send's last run, and whether
/// an interrupted receive (a resume token) is pending.
///
/// Reads zab-select's records (or any later stage's) and writes each with
/// a `status` object, then the `end` record with the count of each
/// health (/usr/share/doc/zab/records.md). Lists the sources' snapshots
/// (one `zfs list` per source host) and the target tree with its resume
/// tokens (one `zfs list`); the last success and bytes are those zab-send
/// keeps in its state file (/var/lib/zab for root). A snapshot's age is
/// the time in its name. Changes nothing.
///
/// With --warn or --crit, it is a Nagios/Icinga check instead: one line on
/// stdout (`ZAB OK - 12 datasets, newest target snapshot 1h ago | …`) and
/// the exit status 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN: the
/// input or a listing failed, or a bad option). A dataset is critical when
/// the newest of our snapshots on the target is older than --crit, or it
/// has none (or no target dataset); a warning when it is older than
/// --warn, a resume token is pending, or zab-send's last run failed it.
#[derive(Parser, Debug)]
#[command(name = "zab-status", version, after_long_help = after_help(EXAMPLES), mut_arg("target_path", |a| a.required(true)))]
pub struct Args {
    /// The backup name.
    #[arg(value_name = "BACKUP-NAME")]
    pub backup: String,

    #[command(flatten)]
    pub target: Target,

    #[command(flatten)]
    pub naming: Naming,

    #[command(flatten)]
    pub source: Source,

    /// A Nagios check: WARNING when a dataset's newest snapshot on the
    /// target is older than AGE (30min, 12h, 1d, 1w).
    #[arg(help_heading = heading::OUTPUT, long, value_name = "AGE", value_parser = age)]
    pub warn: Option<i64>,

    /// A Nagios check: CRITICAL when a dataset's newest snapshot on the
    /// target is older than AGE, or when there is none.
    #[arg(help_heading = heading::OUTPUT, long, value_name = "AGE", value_parser = age)]
    pub crit: Option<i64>,

    /// A table for people instead of the records (not with --warn, --crit).
    #[arg(help_heading = heading::OUTPUT, long, conflicts_with_all = ["warn", "crit"])]
    pub human: bool,

    #[command(flatten)]
    pub common: Common,
}

/// `--warn`, `--crit`: a duration (zab's units), in whole seconds.
fn age(s: &str) -> Result<i64, String> {
    let d = zab_core::duration::parse(s)?;
    i64::try_from(d.as_secs()).map_err(|_| format!("{s}: too long"))
}

/// How the result is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Records,
    Human,
    /// --warn and --crit (either may be absent).
    Nagios {
        warn: Option<i64>,
        crit: Option<i64>,
    },
}

/// What a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub backup: String,
    pub target_path: String,
    pub target: Target,
    pub ssh_source: Option<String>,
    pub target_host: Host,
    pub format: SnapshotFormat,
    pub output: Output,
    /// "Now", seconds since 1970.
    pub now: i64,
    pub common: Common,
}

impl Args {
    /// Whether these arguments ask for a Nagios check (errors are then
    /// UNKNOWN, 3).
    pub fn nagios(&self) -> bool {
        self.warn.is_some() || self.crit.is_some()
    }

    pub fn config(self) -> Result<Config, Error> {
        let target_path = self.target.required_path()?.to_string();
        if let (Some(w), Some(c)) = (self.warn, self.crit) {
            if w > c {
                return Err(Error::Usage("--warn must not be longer than --crit".into()));
            }
        }
        let output = match (self.nagios(), self.human) {
            (true, _) => Output::Nagios {
                warn: self.warn,
                crit: self.crit,
            },
            (false, true) => Output::Human,
            (false, false) => Output::Records,
        };
        Ok(Config {
            format: self.naming.format(&self.backup)?,
            ssh_source: self.source.checked()?,
            target_host: self.common.host(self.target.host.ssh_target.as_deref())?,
            now: self.common.now()?.timestamp(),
            backup: self.backup,
            target_path,
            target: self.target,
            output,
            common: self.common,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn config(argv: &[&str]) -> Result<Config, Error> {
        let mut all = vec!["zab-status"];
        all.extend_from_slice(argv);
        Args::try_parse_from(all)
            .map_err(|e| Error::Usage(e.to_string()))?
            .config()
    }

    #[test]
    fn clap_definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn the_output_follows_the_options() {
        let c = config(&["b", "t/h", "--now", "100"]).expect("config");
        assert_eq!((c.output, c.now), (Output::Records, 100));
        let c = config(&["b", "t/h", "--human"]).expect("config");
        assert_eq!(c.output, Output::Human);
        let c = config(&["b", "t/h", "--warn", "1d", "--crit", "1w"]).expect("config");
        assert_eq!(
            c.output,
            Output::Nagios {
                warn: Some(86400),
                crit: Some(604800)
            }
        );
        let c = config(&["b", "t/h", "--crit", "90min"]).expect("config");
        assert_eq!(
            c.output,
            Output::Nagios {
                warn: None,
                crit: Some(5400)
            }
        );
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for bad in [
            &["b"][..],
            &["b", "/t"],
            &["b", "t", "--warn", "2d", "--crit", "1d"],
            &["b", "t", "--warn", "1x"],
            &["b", "t", "--human", "--crit", "1d"],
        ] {
            let e = config(bad).expect_err("bad");
            assert_eq!(e.exit(), zab_core::Exit::Usage, "{bad:?}: {e}");
        }
    }

    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(
            &Args::command(),
            include_str!("../../docs/man/zab-status.1"),
        );
    }
}
