//! zab-send's command line.

use std::io::IsTerminal;

use clap::Parser;
use regex::Regex;
use zab_core::cli::{
    after_help, heading, parse_bytes, Backups, Common, DryRun, KeepTarget, Rate, RecvForce, Source,
    Target,
};
use zab_core::error::Error;
use zab_core::naming::SnapshotFormat;
use zab_core::schedule::Schedule;

use crate::flags;
use crate::plan;
use crate::stream::{self, Buffer, Compressor};

const EXAMPLES: &str = "  \
  # A complete backup of 'offsite1' into backup/host1, on this machine:
  zab-select offsite1 | zab-snap offsite1 |
      zab-send offsite1 backup/host1 | zab-thin offsite1 backup/host1

  # Push to another host, compressed, 4 datasets at a time:
  zab-select offsite1 | zab-snap offsite1 |
      zab-send --ssh-target root@backup1 --compress zstd-fast --jobs 4 offsite1 tank/host1

  # Pull from a host (the records say where each dataset is):
  zab-select --ssh-source root@nas offsite1 | zab-send offsite1 backup/nas

  # What would be transferred, and why, without changing anything:
  zab-select offsite1 | zab-send --plan offsite1 backup/host1 |
      jq -c '{name, send: .send.transfers}'

  # To a bucket (or file:///mnt/usb/zab), compressed: one object per stream:
  AWS_PROFILE=backup zab-select offsite1 | zab-snap offsite1 |
      zab-send --compress zstd-fast offsite1 s3://my-backups/host1

  # Limit the rate to 20 MiB/s with a 256 MiB buffer on both ends:
  zab-select offsite1 | zab-send --rate 20M --buffer 256M offsite1 backup/host1

  # The source's bookmarks (made after each transfer), and which transfers
  # went on from one because the common snapshot was gone on the source:
  zfs list -t bookmark -r rpool
  zab-select offsite1 | zab-send offsite1 backup/host1 |
      jq -c '.send.transfers[]? | select(.from_bookmark)'

  # The run's numbers for Prometheus (node_exporter's textfile collector):
  zab-select offsite1 | zab-snap offsite1 | zab-send \\
      --metrics /var/lib/prometheus/node-exporter/zab-offsite1.prom offsite1 backup/host1
";

/// Replicate the datasets zab-select chose to TARGET-PATH, as zfs-autobackup
/// does: full, incremental and resumed `zfs send | zfs recv` transfers, holds
/// on the common snapshot, locally or over ssh.
///
/// Reads zab-select's or zab-snap's NDJSON records on stdin and writes them
/// to stdout, each with a `send` field: the target dataset, the common
/// snapshot, every transfer (kind, bytes, seconds) or why none, and its
/// status. Each side is listed once (datasets, snapshots, guids; the target
/// with holds and resume tokens), the plan is made as data, then carried
/// out. A failing dataset is reported in its record and the others go on.
///
/// One run per backup and target: zab-send takes the run lock of BACKUP-NAME
/// and TARGET-PATH on its target host before it reads or changes anything
/// and holds it until it exits (or checks the one ZAB_LOCK_FD names); when
/// another run holds it, it exits 75 at once. --test (--plan) takes no
/// lock.
#[derive(Parser, Debug)]
#[command(name = "zab-send", version, after_long_help = after_help(EXAMPLES), mut_arg("target_path", |a| a.required(true)),
    mut_arg("keep_target", |a| a.help_heading(heading::SELECTION).help(
        "The target's schedule: our snapshots it would destroy right after receiving them are not sent")),
    mut_arg("force", |a| a.help_heading(heading::TRANSFER).help("Receive with zfs recv -F")),
    mut_arg("rate", |a| a.value_name("RATE").help("Limit the transfer rate (bytes per second, with units: 20M)")),
    mut_arg("test", |a| a.visible_alias("plan").help(
        "Change nothing: list, plan, and write the records of what would be transferred (each with \
         its transfers and why), running only read-only commands and taking no run lock. --plan is \
         the same")))]
pub struct Args {
    /// The backup name; every record must be for this backup.
    #[arg(value_name = "BACKUP-NAME")]
    pub backup: String,

    /// Also send snapshots that are not ours (names that do not parse with
    /// --snapshot-format).
    #[arg(help_heading = heading::SELECTION, long)]
    pub other_snapshots: bool,

    /// Never send snapshots whose full name (dataset@snapshot) matches this
    /// regular expression (searched anywhere in the name). Repeatable.
    #[arg(help_heading = heading::SELECTION, long, value_name = "REGEX")]
    pub exclude_snapshot_pattern: Vec<String>,

    #[command(flatten)]
    pub keep_target: KeepTarget,

    /// Destroy target snapshots after the common one that block the
    /// receive, then roll back to the common snapshot.
    #[arg(help_heading = heading::TRANSFER, long)]
    pub destroy_incompatible: bool,

    /// Roll the target back to its latest snapshot before the first transfer.
    #[arg(help_heading = heading::TRANSFER, long)]
    pub rollback: bool,

    #[command(flatten)]
    pub force: RecvForce,

    /// Accept a failed zfs recv when the target dataset exists afterwards.
    #[arg(help_heading = heading::TRANSFER, long)]
    pub ignore_transfer_errors: bool,

    /// Do not receive these properties (zfs recv -x); comma-separated.
    #[arg(help_heading = heading::TRANSFER, long, value_name = "P,…", value_delimiter = ',')]
    pub filter_properties: Vec<String>,

    /// Set these properties on the target (zfs recv -o); comma-separated.
    #[arg(help_heading = heading::TRANSFER, long, value_name = "P=V,…", value_delimiter = ',', value_parser = parse_prop)]
    pub set_properties: Vec<(String, String)>,

    /// Do not receive refreservation (zfs recv -x refreservation).
    #[arg(help_heading = heading::TRANSFER, long)]
    pub clear_refreservation: bool,

    /// Receive with canmount=noauto, so nothing mounts over live paths.
    #[arg(help_heading = heading::TRANSFER, long)]
    pub clear_mountpoint: bool,

    /// Send encrypted datasets decrypted (not raw, and without -p).
    #[arg(help_heading = heading::TRANSFER, long)]
    pub decrypt: bool,

    /// Let the target encrypt what it receives (its encryption properties
    /// are not received).
    #[arg(help_heading = heading::TRANSFER, long)]
    pub encrypt: bool,

    /// Transfer this many datasets at once (parents before children).
    #[arg(help_heading = heading::TRANSFER, short, long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,

    /// Send compressed blocks as they are on disk (zfs send -c).
    #[arg(help_heading = heading::STREAM, long)]
    pub zfs_compressed: bool,

    /// Compress the stream between the hosts (zstd-fast when no TYPE).
    #[arg(help_heading = heading::STREAM, long, value_name = "TYPE", num_args = 0..=1, default_missing_value = "zstd-fast",
          value_parser = clap::builder::PossibleValuesParser::new(
              crate::stream::COMPRESSORS.iter().map(|c| c.name)))]
    pub compress: Option<String>,

    /// A command the stream passes through after zfs send (a shell command
    /// line, quoted as in sh). Repeatable.
    #[arg(help_heading = heading::STREAM, long, value_name = "COMMAND")]
    pub send_pipe: Vec<String>,

    /// A command the stream passes through before zfs recv. Repeatable.
    #[arg(help_heading = heading::STREAM, long, value_name = "COMMAND")]
    pub recv_pipe: Vec<String>,

    /// Buffer the stream in memory (zab-buffer) on the sending side, and on
    /// the receiving side when it is remote or the stream is piped. At most
    /// the memory available on this machine (MemAvailable); each host's
    /// zab-buffer checks its own.
    #[arg(help_heading = heading::STREAM, long, value_name = "SIZE", value_parser = parse_buffer)]
    pub buffer: Option<u64>,

    /// The buffer's block size.
    #[arg(help_heading = heading::STREAM, long, value_name = "SIZE", value_parser = parse_bytes)]
    pub buffer_chunk_size: Option<u64>,

    #[command(flatten)]
    pub rate: Rate,

    /// Do not hold the common snapshot on source and target.
    #[arg(help_heading = heading::HOLDS, long)]
    pub no_holds: bool,

    /// Do not bookmark the newest snapshot received on the source (made
    /// by default, never to s3:// or file://). Existing bookmarks are
    /// still used to go on incrementally when the source's common
    /// snapshot is gone.
    #[arg(help_heading = heading::HOLDS, long)]
    pub no_bookmarks: bool,

    /// Show each transfer's progress on stderr (the default on a terminal).
    #[arg(help_heading = heading::OUTPUT, long, overrides_with = "no_progress")]
    pub progress: bool,

    /// No progress, even on a terminal.
    #[arg(help_heading = heading::OUTPUT, long)]
    pub no_progress: bool,

    #[command(flatten)]
    pub dry_run: DryRun,

    /// At the end of the run, write its numbers for Prometheus to FILE
    /// (node_exporter's textfile collector, replaced atomically): duration,
    /// datasets selected, sent and failed, transfers, bytes, and the time
    /// of the last run without a failure. Not with --test.
    #[arg(help_heading = heading::OUTPUT, long, value_name = "FILE")]
    pub metrics: Option<std::path::PathBuf>,

    /// To an object store: start a new chain with a full stream when the
    /// current chain's full is WHEN old (a duration: 1w, 30d) or has WHEN
    /// incrementals (a bare number: 30), so zab-thin can drop old chains
    /// whole. Only with an object store as TARGET-PATH.
    #[arg(long, value_name = "WHEN", value_parser = crate::chain::parse, help_heading = "Object store (s3://, file://)")]
    pub full_every: Option<crate::chain::FullEvery>,

    /// To an object store (TARGET-PATH s3://BUCKET/PREFIX or file:///DIR).
    #[command(flatten, next_help_heading = "Object store (s3://, file://)")]
    pub store: zab_store::Settings,

    #[command(flatten)]
    pub backups: Backups,

    #[command(flatten)]
    pub source: Source,

    #[command(flatten)]
    pub common: Common,
}

/// Parses `--buffer`: a byte count no larger than the memory available
/// here, so a size no host could allocate fails before anything runs.
fn parse_buffer(s: &str) -> Result<u64, String> {
    let n = parse_bytes(s)?;
    zab_core::size::check_buffer(n, zab_core::size::available_memory())?;
    Ok(n)
}

/// Why a regular expression does not compile, on one line: the regex
/// crate draws the pattern with a caret under the problem on lines of
/// their own, then `error: WHY` on the last one.
fn regex_why(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

/// Parses `P=V` (the value may contain `=`).
fn parse_prop(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((p, v)) if !p.is_empty() => Ok((p.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not PROPERTY=VALUE")),
    }
}

/// The command line, checked once: every value typed and validated. After
/// [`Args::config`] nothing reads [`Args`].
#[derive(Debug)]
pub struct Config {
    pub backup: String,
    pub common: Common,
    /// The target group; its TARGET-PATH is checked.
    pub target: Target,
    pub target_path: String,
    pub ssh_source: Option<String>,
    pub format: SnapshotFormat,
    /// Our hold tag.
    pub tag: String,
    /// "Now" (`--now`, else the clock), in seconds: the target schedule's.
    pub now: i64,
    /// `--test` or `--plan`: only read-only commands run, nothing changes.
    pub read_only: Option<&'static str>,
    pub other_snapshots: bool,
    pub exclude: Vec<Regex>,
    pub keep_target: Schedule,
    pub destroy_incompatible: bool,
    pub rollback: bool,
    /// What decides the send and receive flags.
    pub flags: flags::Options,
    pub send_pipe: Vec<String>,
    pub recv_pipe: Vec<String>,
    pub compress: Option<&'static Compressor>,
    pub buffer: Option<Buffer>,
    pub rate: Option<u64>,
    pub jobs: usize,
    /// Draw progress on stderr.
    pub progress: bool,
    pub holds: bool,
    /// Bookmark the newest snapshot received on the source (bookmarks.rs).
    pub bookmarks: bool,
    pub ignore_transfer_errors: bool,
    /// TARGET-PATH is an object store (s3:// or file://), not a dataset.
    pub store: Option<zab_store::Location>,
    pub store_settings: zab_store::Settings,
    /// `--full-every` (a store only).
    pub full_every: Option<crate::chain::FullEvery>,
    /// `--metrics FILE`, its directory checked.
    pub metrics: Option<std::path::PathBuf>,
}

impl Config {
    /// Where each of `sources` goes: below TARGET-PATH, or, for a store,
    /// its name in the store (after `--strip-path`).
    pub fn map<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::BTreeMap<String, String>, Error> {
        if self.store.is_none() {
            return self.target.map(sources);
        }
        // The one mapping rule, below a root that is then taken off.
        const ROOT: &str = "store";
        let map = zab_core::name::target_map(sources, ROOT, self.target.strip_path)?;
        Ok(map
            .into_iter()
            .map(|(s, t)| {
                let t = t.strip_prefix("store/").unwrap_or(&t).to_string();
                (s, t)
            })
            .collect())
    }

    /// A dry run (`--test`, `--plan`): plans, and changes nothing.
    pub fn dry(&self) -> bool {
        self.read_only.is_some()
    }

    /// The options one dataset's plan depends on.
    pub fn plan_options(&self) -> plan::Options<'_> {
        plan::Options {
            format: &self.format,
            other_snapshots: self.other_snapshots,
            exclude: &self.exclude,
            keep_target: &self.keep_target,
            now: self.now,
            guid_check: !self.target.no_guid_check,
            destroy_incompatible: self.destroy_incompatible,
            rollback: self.rollback,
        }
    }
}

impl Args {
    /// Checks the command line once and gives the [`Config`] the run reads.
    pub fn config(&self) -> Result<Config, Error> {
        let format = self.backups.naming.format(&self.backup)?;
        let (target_path, store) = self.target()?;
        let exclude = self.exclude()?;
        let now = self.common.now()?.timestamp();
        Ok(Config {
            backup: self.backup.clone(),
            common: self.common.clone(),
            target: self.backups.target.clone(),
            target_path,
            ssh_source: self.source.checked()?,
            format,
            tag: self.backups.holds.tag(&self.backup),
            now,
            read_only: self.read_only(),
            other_snapshots: self.other_snapshots,
            exclude,
            keep_target: self.keep_target.keep_target.clone(),
            destroy_incompatible: self.destroy_incompatible,
            rollback: self.rollback,
            flags: flags::Options {
                zfs_compressed: self.zfs_compressed,
                decrypt: self.decrypt,
                encrypt: self.encrypt,
                force: self.force.force,
                filter_properties: self.filter_properties.clone(),
                set_properties: self.set_properties.clone(),
                clear_refreservation: self.clear_refreservation,
                clear_mountpoint: self.clear_mountpoint,
            },
            send_pipe: self.send_pipe.clone(),
            recv_pipe: self.recv_pipe.clone(),
            compress: self.compress.as_deref().and_then(stream::compressor),
            buffer: Buffer::from_options(self.buffer, self.buffer_chunk_size),
            rate: self.rate.rate,
            jobs: usize::from(self.jobs),
            progress: (self.progress || std::io::stderr().is_terminal()) && !self.no_progress,
            holds: !self.no_holds && store.is_none(),
            bookmarks: !self.no_bookmarks && store.is_none(),
            ignore_transfer_errors: self.ignore_transfer_errors,
            store,
            store_settings: self.store.clone(),
            full_every: self.full_every,
            metrics: crate::monitor::checked(self.metrics.as_deref())?,
        })
    }

    /// TARGET-PATH, and the object store it names (s3://, file://), with
    /// the options only one kind of target takes refused for the other.
    fn target(&self) -> Result<(String, Option<zab_store::Location>), Error> {
        let raw_target = self.backups.target.target_path.as_deref().unwrap_or("");
        let store = match zab_store::location::is_url(raw_target) {
            true => Some(zab_store::Location::parse(raw_target).map_err(Error::Usage)?),
            false => None,
        };
        let target_path = match &store {
            Some(_) => raw_target.to_string(),
            None => self.backups.target.required_path()?.to_string(),
        };
        if store.is_some() {
            let refused = [
                (self.destroy_incompatible, "--destroy-incompatible"),
                (self.rollback, "--rollback"),
                (self.force.force, "--force"),
                (
                    self.backups.target.host.ssh_target.is_some(),
                    "--ssh-target",
                ),
            ];
            if let Some((_, opt)) = refused.iter().find(|(on, _)| *on) {
                return Err(Error::Usage(format!(
                    "{opt} is for a ZFS target, not an object store ({raw_target})"
                )));
            }
        } else if self.full_every.is_some() {
            // A ZFS target keeps every snapshot it received: a new full
            // stream there would need the dataset destroyed first.
            return Err(Error::Usage(format!(
                "--full-every is for an object store (s3://, file://), not a ZFS target ({raw_target})"
            )));
        }
        Ok((target_path, store))
    }

    /// --exclude-snapshot-pattern, compiled.
    fn exclude(&self) -> Result<Vec<Regex>, Error> {
        self.exclude_snapshot_pattern
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| {
                    Error::Usage(format!(
                        "--exclude-snapshot-pattern {p:?}: {}",
                        regex_why(&e)
                    ))
                })
            })
            .collect()
    }

    /// The read-only mode of this run's hosts: `--test` and `--plan` run
    /// only the commands that read (zab_core::host::is_read_only), any
    /// other is refused.
    pub fn read_only(&self) -> Option<&'static str> {
        self.dry_run.read_only()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn test_and_plan_are_read_only_modes() {
        let a = |argv: &[&str]| Args::try_parse_from(argv).unwrap().read_only();
        assert_eq!(a(&["zab-send", "b", "t", "--test"]), Some("--test"));
        // One mode under two names: --plan is --test.
        assert_eq!(a(&["zab-send", "b", "t", "--plan"]), Some("--test"));
        assert_eq!(a(&["zab-send", "b", "t"]), None);
    }

    /// docs/man/zab-send.1 is what `zab-send --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(&Args::command(), include_str!("../../docs/man/zab-send.1"));
    }

    #[test]
    fn options_parse_as_upstream() {
        let a = Args::try_parse_from([
            "zab-send",
            "b",
            "t/p",
            "--set-properties",
            "a=1,b=x=y",
            "--filter-properties",
            "quota,refquota",
            "--compress",
        ])
        .unwrap();
        assert_eq!(
            a.set_properties,
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert_eq!(a.filter_properties, vec!["quota", "refquota"]);
        assert_eq!(a.compress.as_deref(), Some("zstd-fast"));
        assert_eq!(a.jobs, 1);
        assert!(Args::try_parse_from(["zab-send", "b", "t", "--compress", "zip"]).is_err());
        assert!(Args::try_parse_from(["zab-send", "b", "t", "--jobs", "0"]).is_err());
        assert!(Args::try_parse_from(["zab-send", "b"]).is_err());
        assert!(Args::try_parse_from(["zab-send", "b", "t", "--set-properties", "x"]).is_err());
    }

    /// A bad pattern is said on one line (the regex crate's message has
    /// several).
    #[test]
    fn a_bad_exclude_pattern_is_one_line() {
        let a = Args::try_parse_from(["zab-send", "b", "t", "--exclude-snapshot-pattern", "a("])
            .unwrap();
        let err = a.config().unwrap_err().to_string();
        assert_eq!(err, r#"--exclude-snapshot-pattern "a(": unclosed group"#);
    }

    #[test]
    fn a_buffer_larger_than_memory_is_refused_when_parsed() {
        let err = Args::try_parse_from(["zab-send", "b", "t", "--buffer", "100T"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(
            err.to_string().contains("more than the memory available"),
            "{err}"
        );
        let a = Args::try_parse_from(["zab-send", "b", "t", "--buffer", "16M"]).unwrap();
        assert_eq!(a.buffer, Some(16 << 20));
    }

    #[test]
    fn config_checks_once_and_takes_now() {
        let c = |argv: &[&str]| Args::try_parse_from(argv).unwrap().config();
        let cfg = c(&[
            "zab-send",
            "b",
            "t/p",
            "--now",
            "1000",
            "--no-holds",
            "--test",
        ])
        .unwrap();
        assert!(cfg.bookmarks);
        assert!(
            !c(&["zab-send", "b", "t/p", "--no-bookmarks"])
                .unwrap()
                .bookmarks
        );
        assert!(!c(&["zab-send", "b", "file:///srv/zab"]).unwrap().bookmarks);
        assert_eq!(cfg.now, 1000);
        assert!(!cfg.holds && cfg.dry());
        assert_eq!(cfg.target_path, "t/p");
        assert_eq!(cfg.tag, "zfs_autobackup:b");
        let err = c(&["zab-send", "b", "t", "--exclude-snapshot-pattern", "("]).unwrap_err();
        assert!(
            err.to_string().contains("--exclude-snapshot-pattern"),
            "{err}"
        );
        assert!(c(&["zab-send", "b", "t", "--now=-1"]).is_err());
    }

    #[test]
    fn full_every_is_for_stores_only() {
        let c = |argv: &[&str]| Args::try_parse_from(argv).map(|a| a.config());
        let cfg = c(&["zab-send", "b", "s3://bkt/p", "--full-every", "1w"])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.full_every, Some(crate::chain::FullEvery::Age(604800)));
        let cfg = c(&["zab-send", "b", "file:///srv/b", "--full-every", "30"])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.full_every, Some(crate::chain::FullEvery::Count(30)));
        let e = c(&["zab-send", "b", "tank/b", "--full-every", "1w"])
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("--full-every is for an object store"),
            "{e}"
        );
        let e =
            Args::try_parse_from(["zab-send", "b", "s3://b/p", "--full-every", "1q"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn a_rate_of_zero_is_refused_when_parsed() {
        let err = Args::try_parse_from(["zab-send", "b", "t", "--rate", "0"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("must be above 0"), "{err}");
        let a = Args::try_parse_from(["zab-send", "b", "t", "--rate", "20M"]).unwrap();
        assert_eq!(a.rate.rate, Some(20 << 20));
    }
}
