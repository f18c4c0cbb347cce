//! zab-snap's command line, and [`Config`]: the same, checked once.

use chrono::{DateTime, Utc};
use clap::Parser;
use zab_core::cli::{after_help, heading, parse_bytes, Common, DryRun, Log, Naming, Source};
use zab_core::error::Error;
use zab_core::naming::SnapshotFormat;

pub const TOOL: &str = "zab-snap";

const EXAMPLES: &str = "  \
  # Snapshot every dataset selected for 'offsite1' that changed since its
  # last offsite1 snapshot (one zfs snapshot per pool):
  zab-select offsite1 | zab-snap offsite1

  # On another host, through ssh (the records say which host):
  zab-select --ssh-source root@nas offsite1 | zab-snap offsite1

  # What would be snapshotted, without changing anything:
  zab-select offsite1 | zab-snap --test --verbose offsite1

  # A snapshot of every selected dataset, changed or not, in UTC:
  zab-select offsite1 | zab-snap --allow-empty --utc offsite1

  # Quiesce a database around the snapshot:
  zab-select offsite1 | zab-snap offsite1 \\
      --pre-snapshot-cmd 'mysql -e \"FLUSH TABLES WITH READ LOCK\"' \\
      --post-snapshot-cmd 'mysql -e \"UNLOCK TABLES\"'

  # Which datasets were skipped, and why:
  zab-select offsite1 | zab-snap offsite1 |
      jq -r 'select(.snapshot.status == \"skipped\") | [.name, .snapshot.reason] | @tsv'
";

/// Take the backup snapshot of the datasets zab-select chose, as
/// zfs-autobackup does: one atomic `zfs snapshot` per pool, all with the same
/// name, skipping datasets that did not change since their last snapshot of
/// this backup.
///
/// Reads zab-select's NDJSON records on stdin and writes them to stdout, each
/// with a `snapshot` field: the name, and whether it was created, skipped
/// (and why) or failed. Input that does not end with zab-select's `end`
/// record is refused. Whatever the number of datasets, zab-snap runs two
/// `zfs` queries per host (none with --allow-empty), then one `zfs snapshot`
/// per pool.
#[derive(Parser, Debug)]
#[command(name = "zab-snap", version, after_long_help = after_help(EXAMPLES),
    mut_arg("test", |a| a.help(
        "Change nothing: run only read-only commands and report what would be snapshotted (status \
         would-create). Hook commands are not run")))]
pub struct Args {
    /// The backup name; every record must be for this backup.
    #[arg(value_name = "BACKUP-NAME")]
    pub backup: String,

    /// Snapshot a dataset only when at least BYTES were written since its
    /// newest snapshot of this backup (written@SNAPSHOT). A dataset without
    /// one is always snapshotted. Units K, M, G, T are accepted.
    #[arg(help_heading = heading::SNAPSHOTS, long, value_name = "BYTES", default_value = "1", value_parser = parse_bytes)]
    pub min_change: u64,

    /// Snapshot every dataset, changed or not (--min-change 0). No snapshot
    /// listing is needed then, so records say "previous": null.
    #[arg(help_heading = heading::SNAPSHOTS, long)]
    pub allow_empty: bool,

    /// Set these properties on the new snapshots (zfs snapshot -o P=V),
    /// comma separated; may be repeated.
    #[arg(help_heading = heading::SNAPSHOTS, long, value_name = "P=V,...", value_parser = parse_props)]
    pub set_snapshot_properties: Vec<Props>,

    /// Run this shell command on the source host before snapshotting; may be
    /// repeated. If one fails, the rest and the snapshot are skipped.
    #[arg(help_heading = heading::SNAPSHOTS, long, value_name = "CMD")]
    pub pre_snapshot_cmd: Vec<String>,

    /// Run this shell command on the source host after snapshotting, always,
    /// even when a pre-snapshot command or the snapshot failed; may be
    /// repeated.
    #[arg(help_heading = heading::SNAPSHOTS, long, value_name = "CMD")]
    pub post_snapshot_cmd: Vec<String>,

    #[command(flatten)]
    pub dry_run: DryRun,

    #[command(flatten)]
    pub naming: Naming,

    #[command(flatten)]
    pub source: Source,

    #[command(flatten)]
    pub common: Common,
}

impl Args {
    /// Every check of the command line, once: the snapshot format, the
    /// `--ssh-source` destination and `--now`. After this, nothing reads
    /// `Args`.
    pub fn config(&self) -> Result<Config, Error> {
        let format = self.naming.format(&self.backup)?;
        let ssh_source = self.source.checked()?;
        // `--now` is checked here; without it the clock is read when the
        // snapshot is named ([`Config::now`]).
        let now = match self.common.now {
            Some(_) => Some(self.common.now()?),
            None => None,
        };
        Ok(Config {
            backup: self.backup.clone(),
            format,
            ssh_source,
            min_change: if self.allow_empty { 0 } else { self.min_change },
            properties: self
                .set_snapshot_properties
                .iter()
                .flat_map(|p| p.0.iter().cloned())
                .collect(),
            pre_snapshot_cmd: self.pre_snapshot_cmd.clone(),
            post_snapshot_cmd: self.post_snapshot_cmd.clone(),
            act: !self.dry_run.test,
            read_only: self.dry_run.read_only(),
            now,
            common: self.common.clone(),
            log: self.common.log(TOOL),
        })
    }
}

/// What a run of zab-snap is asked to do: the command line, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The backup name every record must carry.
    pub backup: String,
    /// Which snapshots are ours, and what the new one is called.
    pub format: SnapshotFormat,
    /// When given, every record must be from this host.
    pub ssh_source: Option<String>,
    /// The threshold in effect (`--allow-empty` means 0).
    pub min_change: u64,
    /// Every `-o` property of `--set-snapshot-properties`, in the order given.
    pub properties: Vec<(String, String)>,
    pub pre_snapshot_cmd: Vec<String>,
    pub post_snapshot_cmd: Vec<String>,
    /// False under `--test`: run nothing that writes, report would-create.
    pub act: bool,
    /// The read-only mode of this run's hosts: `--test` runs only the
    /// commands that read (zab_core::host::is_read_only), any other is
    /// refused.
    pub read_only: Option<&'static str>,
    /// `--now`, when given.
    now: Option<DateTime<Utc>>,
    /// The ssh and log flags, for the hosts.
    pub common: Common,
    pub log: Log,
}

impl Config {
    /// The time the snapshot is named after: `--now`, or the clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }
}

/// One `--set-snapshot-properties` value: `(property, value)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Props(pub Vec<(String, String)>);

/// Parses `P=V,P=V`: each property name is non-empty; a value may contain `=`.
fn parse_props(s: &str) -> Result<Props, String> {
    s.split(',')
        .map(|item| {
            let (p, v) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not PROPERTY=VALUE"))?;
            if p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
            {
                return Err(format!("{p:?} is not a property name"));
            }
            Ok((p.to_string(), v.to_string()))
        })
        .collect::<Result<_, _>>()
        .map(Props)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    /// docs/man/zab-snap.1 is what `zab-snap --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(&Args::command(), include_str!("../../docs/man/zab-snap.1"));
    }

    #[test]
    fn parses_upstream_style_arguments() {
        let a = Args::try_parse_from([
            "zab-snap",
            "offsite1",
            "--min-change",
            "1M",
            "--set-snapshot-properties",
            "com.x:a=1,com.x:b=x=y",
            "--set-snapshot-properties",
            "com.x:c=",
            "--pre-snapshot-cmd",
            "echo one",
            "--pre-snapshot-cmd",
            "echo two",
            "--utc",
        ])
        .unwrap();
        let c = a.config().unwrap();
        assert_eq!(c.min_change, 1 << 20);
        assert_eq!(
            c.properties,
            vec![
                ("com.x:a".to_string(), "1".to_string()),
                ("com.x:b".to_string(), "x=y".to_string()),
                ("com.x:c".to_string(), String::new()),
            ]
        );
        assert_eq!(c.pre_snapshot_cmd, vec!["echo one", "echo two"]);
        assert!(a.naming.utc);
        assert_eq!(
            config(&["zab-snap", "x", "--allow-empty"])
                .unwrap()
                .min_change,
            0
        );
        assert_eq!(config(&["zab-snap", "x"]).unwrap().min_change, 1);
        assert!(Args::try_parse_from(["zab-snap", "x", "--set-snapshot-properties", "a"]).is_err());
        assert!(
            Args::try_parse_from(["zab-snap", "x", "--set-snapshot-properties", "=v"]).is_err()
        );
        assert!(Args::try_parse_from(["zab-snap"]).is_err());
    }

    #[test]
    fn test_is_a_read_only_mode() {
        let c = config(&["zab-snap", "x", "--test"]).unwrap();
        assert_eq!((c.read_only, c.act), (Some("--test"), false));
        let c = config(&["zab-snap", "x"]).unwrap();
        assert_eq!((c.read_only, c.act), (None, true));
    }

    #[test]
    fn now_names_the_snapshot() {
        let c = config(&["zab-snap", "off", "--utc", "--now", "4102444800"]).unwrap();
        assert_eq!(c.format.name_at(c.now()), "off-21000101000000");
        // Without it, the clock, read when asked.
        let c = config(&["zab-snap", "off"]).unwrap();
        let before = Utc::now().timestamp();
        let t = c.now().timestamp();
        assert!(before <= t && t <= Utc::now().timestamp());
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["zab-snap", "x", "--now=-1"][..],
            &["zab-snap", "x", "--ssh-source=-oProxyCommand=x"],
            &["zab-snap", "x", "--snapshot-format", "{}-%Y"],
        ] {
            let e = config(argv).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{argv:?}: {e}");
        }
    }

    fn config(argv: &[&str]) -> Result<Config, Error> {
        Args::try_parse_from(argv).unwrap().config()
    }
}
