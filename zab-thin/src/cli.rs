//! zab-thin's command line, and [`Config`]: every option checked once.

use std::path::PathBuf;

use clap::Parser;
use zab_core::cli::{
    after_help, heading, Backups, Common, DryRun, KeepTarget, Log, Selection, Source, Target,
    DEFAULT_SCHEDULE,
};
use zab_core::error::Error;
use zab_core::naming::SnapshotFormat;
use zab_core::schedule::{parse_duration, Schedule};
use zab_core::Host;

/// The tool's name, in messages and records.
pub const TOOL: &str = "zab-thin";

const EXAMPLES: &str = "  \
  # Thin the source snapshots of the backup 'offsite1' (snapshot-only mode):
  zab-select offsite1 | zab-snap offsite1 | zab-thin offsite1

  # See what would be destroyed, and why, without destroying anything:
  zab-select offsite1 | zab-thin --no-thinning --verbose offsite1

  # With a target, the source's bookmarks of ours that no target snapshot
  # matches any more go too (the newest stays); which would:
  zab-select offsite1 | zab-thin --test offsite1 backup/host1 |
      jq -c 'select(.thin.source.bookmarks) | {name, bookmarks: .thin.source.bookmarks}'

  # Thin a list of snapshots from another script, without ZFS:
  printf '%s\\n' '{\"kind\":\"snapshot\",\"name\":\"a\",\"timestamp\":1763800000}' |
      zab-thin --offline --keep 10,1d1w --now 1763900000

  # The names in a list that the default schedule would destroy:
  zab-thin --offline < snapshots.ndjson | jq -r 'select(.action == \"destroy\") | .name'

  # Why each is kept or destroyed: a timeline per rule, or a picture:
  zab-thin --offline --keep 10,1d1w,1w1m,1m1y --explain < snapshots.ndjson
  zab-thin --offline --svg thinning.svg < snapshots.ndjson > thinned.ndjson
";

/// Destroy the snapshots that a thinning schedule no longer wants, exactly
/// as zfs-autobackup decides, and never one more.
///
/// Only our snapshots (names that parse with --snapshot-format) are ever
/// candidates. The newest of them is always kept, so is the newest snapshot
/// common to source and target, and so is any snapshot held by someone.
/// With a TARGET-PATH, the source's bookmarks of ours (zab-send's, named
/// SNAPSHOT_GUID) whose guid no target snapshot has go too, the newest
/// kept; nobody else's bookmark is touched.
/// Input that does not end with the previous stage's `end` record, or that
/// carries upstream failures, is refused before anything is destroyed.
///
/// One run per backup and target: once its input is read, zab-thin takes
/// the run lock that zab-send holds until it exits (waiting up to 10 s for
/// it), or the one ZAB_LOCK_FD names; when another run holds it, it exits
/// 75 and destroys nothing. --test and --offline take no lock.
#[derive(Parser, Debug)]
#[command(name = "zab-thin", version, after_long_help = after_help(EXAMPLES),
    mut_arg("keep_target", |a| a.help("The schedule for the target snapshots")),
    mut_arg("test", |a| a.visible_alias("no-thinning").help(
        "Change nothing: plan, and write the records of what would be destroyed and released and \
         why, running only read-only commands and taking no run lock. --no-thinning is the same")))]
pub struct Args {
    /// The backup name (not with --offline).
    #[arg(value_name = "BACKUP-NAME", required_unless_present_any = ["offline", "describe"])]
    pub backup: Option<String>,

    /// The schedule for the source snapshots.
    #[arg(help_heading = heading::THINNING, long, value_name = "SCHEDULE", default_value = DEFAULT_SCHEDULE, value_parser = Schedule::parse)]
    pub keep_source: Schedule,

    #[command(flatten)]
    pub keep_target: KeepTarget,

    /// Destroy target datasets that are gone from the source once their
    /// newest snapshot of ours is older than DURATION: a number and a unit
    /// (s, min, h, d, w, m = 30 days, y = 365.25 days), e.g. 30d. A target
    /// dataset is gone from the source when no input record maps to it and
    /// the source's selection (--property-format, asked with one `zfs get`)
    /// does not select its source either: one whose record a filter dropped
    /// is left alone, and the run says so.
    #[arg(help_heading = heading::THINNING, long, value_name = "DURATION")]
    pub destroy_missing: Option<String>,

    /// Leave the datasets that failed upstream alone (and their target
    /// datasets, which are then not "missing") and thin the others, as
    /// zfs-autobackup does. Without it such input is refused. Input without
    /// the end record, or whose end record counts failures that are not in
    /// the input (a filter dropped them), is refused either way.
    #[arg(help_heading = heading::THINNING, long)]
    pub skip_failed: bool,

    #[command(flatten)]
    pub dry_run: DryRun,

    /// Print each dataset's timeline: per rule, its blocks and the snapshot
    /// that holds each one, then every snapshot with its reason. With ZFS on
    /// stderr (the records stay on stdout); with --offline on stdout, instead
    /// of the records.
    #[arg(help_heading = heading::OUTPUT, long)]
    pub explain: bool,

    /// Draw the thinning as an SVG picture into FILE: time left to right, one
    /// lane per rule with its blocks, kept and destroyed snapshots marked
    /// (/usr/share/doc/zab/thinning.md explains it). A symbolic link at FILE is not
    /// followed: it is an error (exit 4). `-` is refused: stdout carries the
    /// records.
    #[arg(help_heading = heading::OUTPUT, long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Thin a list of snapshot records from stdin, without ZFS: each
    /// {"kind":"snapshot","name":…,"timestamp":…} comes back with its action
    /// (keep or destroy) and reason (/usr/share/doc/zab/records.md). "Now" is the clock,
    /// or --now SECONDS (since the epoch). The options of thinning with ZFS
    /// (BACKUP-NAME, TARGET-PATH, --keep-source, --test, ...) are refused
    /// with it: use --keep.
    #[arg(help_heading = heading::OFFLINE, long, conflicts_with_all = OFFLINE_CONFLICTS)]
    pub offline: bool,

    /// The schedule for --offline: the last N, then rules <interval><ttl>.
    #[arg(help_heading = heading::OFFLINE, long, value_name = "SCHEDULE", default_value = DEFAULT_SCHEDULE, value_parser = Schedule::parse, requires = "offline")]
    pub keep: Schedule,

    /// Print SCHEDULE in words, one sentence per item ("Keep the last 10
    /// snapshots.", "Keep every 1 day, delete after 1 week."), and exit. A
    /// schedule that does not parse is a usage error (exit 2), said in one
    /// line.
    #[arg(help_heading = heading::OFFLINE, long, value_name = "SCHEDULE", conflicts_with = "offline")]
    pub describe: Option<String>,

    #[command(flatten)]
    pub backups: Backups,

    /// TARGET-PATH s3://BUCKET/PREFIX or file:///DIR: thin the store's
    /// objects (docs/store.md, "Retention").
    #[command(flatten, next_help_heading = "Object store (s3://, file://)")]
    pub store: zab_store::Settings,

    #[command(flatten)]
    pub source: Source,

    // Asked only when target datasets have no record in the input.
    #[command(flatten)]
    pub selection: Selection,

    #[command(flatten)]
    pub common: Common,
}

/// The options of thinning with ZFS, refused with `--offline` rather than
/// silently ignored (`--offline --keep-source 10` looks like it thins by 10).
const OFFLINE_CONFLICTS: [&str; 15] = [
    "backup",
    "target_path",
    "ssh_target",
    "strip_path",
    "no_guid_check",
    "snapshot_format",
    "utc",
    "hold_format",
    "keep_source",
    "keep_target",
    "ssh_source",
    "destroy_missing",
    "property_format",
    "skip_failed",
    "test",
];

/// What a run does, checked: the only thing the rest of zab-thin reads.
#[derive(Debug)]
pub enum Config {
    /// `--describe`: these lines, then exit.
    Describe(Vec<String>),
    /// `--offline`: thin a list of snapshot records, without ZFS.
    Offline(Offline),
    /// Thin with ZFS.
    Zfs(Box<Zfs>),
}

/// `--offline`'s checked options.
#[derive(Debug)]
pub struct Offline {
    pub keep: Schedule,
    /// "Now" (`--now`, or the clock), in seconds since the epoch.
    pub now: i64,
    pub explain: bool,
    pub svg: Option<PathBuf>,
    pub log: Log,
}

/// Where the backups are, when a TARGET-PATH is given.
#[derive(Debug)]
pub struct TargetSide {
    /// TARGET-PATH, checked.
    pub path: String,
    /// The target host (None: local).
    pub ssh: Option<String>,
    pub strip: usize,
    pub guid_check: bool,
    /// The flags it came from, for the one target map ([`Target::map`]).
    pub group: Target,
}

/// An object store as TARGET-PATH (s3:// or file://): its objects are
/// thinned by --keep-target (crate::store), the source as without a
/// TARGET-PATH.
#[derive(Debug)]
pub struct StoreTarget {
    /// TARGET-PATH as given (the run lock is zab-send's, of this text).
    pub url: String,
    pub location: zab_store::Location,
    pub settings: zab_store::Settings,
    pub strip: usize,
}

/// zab-thin with ZFS: its checked options.
#[derive(Debug)]
pub struct Zfs {
    pub backup: String,
    /// Which snapshots are ours.
    pub format: SnapshotFormat,
    /// Our hold tag.
    pub tag: String,
    /// The selection property, for the re-check before "missing".
    pub property: String,
    /// `--destroy-missing`, in seconds.
    pub destroy_missing: Option<i64>,
    pub target: Option<TargetSide>,
    /// TARGET-PATH is an object store (then `target` is None).
    pub store: Option<StoreTarget>,
    pub ssh_source: Option<String>,
    pub keep_source: Schedule,
    pub keep_target: Schedule,
    pub skip_failed: bool,
    /// `--test`: no run lock either.
    pub test: bool,
    /// The hosts' read-only mode (`--test`, `--no-thinning`), or None.
    pub read_only: Option<&'static str>,
    /// "Now" (`--now`, or the clock), in seconds since the epoch.
    pub now: i64,
    pub explain: bool,
    pub svg: Option<PathBuf>,
    /// The host flags (ssh config, sharing, --debug).
    pub common: Common,
    pub log: Log,
}

impl Zfs {
    /// Destroys and releases (false: `--test`, `--no-thinning`).
    pub fn act(&self) -> bool {
        self.read_only.is_none()
    }

    /// The run lock's target: TARGET-PATH (a store's URL as given), on the
    /// target host; None without a TARGET-PATH.
    pub fn lock_target(&self) -> Option<(Option<&str>, &str)> {
        match (&self.store, &self.target) {
            (Some(s), _) => Some((None, s.url.as_str())),
            (None, Some(t)) => Some((t.ssh.as_deref(), t.path.as_str())),
            (None, None) => None,
        }
    }

    /// The host `dest` names, with the host flags and the read-only mode.
    pub fn host(&self, dest: Option<&str>) -> Result<Host, Error> {
        Ok(self.common.host(dest)?.with_read_only(self.read_only))
    }
}

impl Args {
    /// Every check of the command line, once: the run's [`Config`].
    pub fn config(&self) -> Result<Config, Error> {
        if let Some(text) = &self.describe {
            return describe(text).map(Config::Describe);
        }
        if self.svg.as_deref() == Some(std::path::Path::new("-")) {
            return Err(Error::Usage(
                "--svg -: stdout carries the records; give a file name (--svg thinning.svg)".into(),
            ));
        }
        if self.offline {
            return Ok(Config::Offline(Offline {
                now: self.common.now()?.timestamp(),
                keep: self.keep.clone(),
                explain: self.explain,
                svg: self.svg.clone(),
                log: self.common.log(TOOL),
            }));
        }
        self.zfs().map(|z| Config::Zfs(Box::new(z)))
    }

    fn zfs(&self) -> Result<Zfs, Error> {
        let backup = self
            .backup
            .as_deref()
            .ok_or_else(|| Error::Usage("BACKUP-NAME is required".into()))?;
        let format = self.backups.naming.format(backup)?;
        let property = self.selection.property(backup)?;
        let destroy_missing = self
            .destroy_missing
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| Error::Usage(format!("--destroy-missing: {e}")))?;
        if destroy_missing.is_some() && self.backups.target.target_path.is_none() {
            return Err(Error::Usage("--destroy-missing needs a TARGET-PATH".into()));
        }
        let store = self.store_target()?;
        let target = match store {
            Some(_) => None,
            None => self.backups.target.path()?,
        };
        let target = target.map(|path| TargetSide {
            path: path.to_string(),
            ssh: self.backups.target.host.ssh_target.clone(),
            strip: self.backups.target.strip_path,
            guid_check: !self.backups.target.no_guid_check,
            group: self.backups.target.clone(),
        });
        let ssh_source = self.source.checked()?;
        Ok(Zfs {
            backup: backup.to_string(),
            format,
            tag: self.backups.holds.tag(backup),
            property,
            destroy_missing,
            target,
            store,
            ssh_source,
            keep_source: self.keep_source.clone(),
            keep_target: self.keep_target.keep_target.clone(),
            skip_failed: self.skip_failed,
            test: self.dry_run.test,
            read_only: self.read_only(),
            now: self.common.now()?.timestamp(),
            explain: self.explain,
            svg: self.svg.clone(),
            common: self.common.clone(),
            log: self.common.log(TOOL),
        })
    }

    /// TARGET-PATH when it is an object store's URL, checked.
    fn store_target(&self) -> Result<Option<StoreTarget>, Error> {
        let t = &self.backups.target;
        let Some(url) = t
            .target_path
            .as_deref()
            .filter(|u| zab_store::location::is_url(u))
        else {
            return Ok(None);
        };
        let location = zab_store::Location::parse(url).map_err(Error::Usage)?;
        if t.host.ssh_target.is_some() {
            return Err(Error::Usage(format!(
                "--ssh-target is for a ZFS target, not an object store ({url})"
            )));
        }
        Ok(Some(StoreTarget {
            url: url.to_string(),
            location,
            settings: self.store.clone(),
            strip: t.strip_path,
        }))
    }

    /// The read-only mode of this run's hosts: `--test` (`--no-thinning`)
    /// destroys and releases nothing, so it runs only the commands that
    /// read (zab_core::host::is_read_only), any other is refused.
    pub fn read_only(&self) -> Option<&'static str> {
        self.dry_run.read_only()
    }
}

/// `--describe`: the schedule in zfs-autobackup's words, one line per
/// item; a schedule that keeps nothing says so.
pub fn describe(text: &str) -> Result<Vec<String>, Error> {
    let schedule = Schedule::parse(text).map_err(Error::Usage)?;
    let lines = schedule.describe();
    if lines.is_empty() {
        return Ok(vec!["Keep no old snapshots.".to_string()]);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    /// docs/man/zab-thin.1 is what `zab-thin --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(&Args::command(), include_str!("../../docs/man/zab-thin.1"));
    }

    #[test]
    fn schedules_are_checked_when_parsing() {
        assert!(Args::try_parse_from(["zab-thin", "x", "--keep-source", "1d1w2"]).is_err());
        assert!(Args::try_parse_from(["zab-thin", "x", "--keep-target", "-1"]).is_err());
        let a = Args::try_parse_from(["zab-thin", "x"]).unwrap();
        assert_eq!(a.keep_source.to_string(), DEFAULT_SCHEDULE);
        assert!(Args::try_parse_from(["zab-thin"]).is_err());
        assert!(Args::try_parse_from(["zab-thin", "--offline"]).is_ok());
    }

    #[test]
    fn test_and_no_thinning_are_read_only_modes() {
        let a = |argv: &[&str]| Args::try_parse_from(argv).unwrap().read_only();
        assert_eq!(a(&["zab-thin", "x", "--test"]), Some("--test"));
        // One mode under two names: --no-thinning is --test.
        assert_eq!(a(&["zab-thin", "x", "--no-thinning"]), Some("--test"));
        assert_eq!(a(&["zab-thin", "x"]), None);
    }

    #[test]
    fn describes_a_schedule_in_upstream_words() {
        let a = Args::try_parse_from(["zab-thin", "--describe", DEFAULT_SCHEDULE]).unwrap();
        assert_eq!(
            describe(a.describe.as_deref().unwrap()).unwrap(),
            vec![
                "Keep the last 10 snapshots.",
                "Keep every 1 day, delete after 1 week.",
                "Keep every 1 week, delete after 1 month.",
                "Keep every 1 month, delete after 1 year.",
            ]
        );
        assert_eq!(
            describe("1,5min1h").unwrap(),
            vec![
                "Keep the last 1 snapshot.",
                "Keep every 5 minutes, delete after 1 hour."
            ]
        );
        assert_eq!(describe("0").unwrap(), vec!["Keep no old snapshots."]);
        // A bad schedule is a usage error, in the parser's words.
        let e = describe("1d1w2").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert_eq!(
            e.to_string(),
            Schedule::parse("1d1w2").unwrap_err(),
            "one line, the parser's"
        );
        assert!(Args::try_parse_from(["zab-thin", "--describe", "10", "--offline"]).is_err());
    }

    fn config(argv: &[&str]) -> Result<Config, Error> {
        Args::try_parse_from(argv).unwrap().config()
    }

    /// `--svg -` wrote a file named `-`.
    #[test]
    fn svg_to_a_dash_is_refused() {
        for argv in [&["zab-thin", "x"][..], &["zab-thin", "--offline"]] {
            let mut argv = argv.to_vec();
            argv.extend(["--svg", "-"]);
            let e = config(&argv).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{e}");
            assert_eq!(
                e.to_string(),
                "--svg -: stdout carries the records; give a file name (--svg thinning.svg)"
            );
        }
        assert!(config(&["zab-thin", "--offline", "--svg", "./-"]).is_ok());
    }

    /// `--offline --keep-source 10` was silently ignored: the options of
    /// thinning with ZFS are refused with --offline.
    #[test]
    fn zfs_options_are_refused_with_offline() {
        for extra in [
            &["--keep-source", "10"][..],
            &["--keep-target", "10"],
            &["--destroy-missing", "30d"],
            &["--skip-failed"],
            &["--no-thinning"],
            &["--test"],
            &["--ssh-source", "root@nas"],
            &["--ssh-target", "root@nas"],
            &["--snapshot-format", "{}-%Y%m%d%H%M%S"],
            &["--utc"],
            &["--hold-format", "h"],
            &["--property-format", "p:{}"],
            &["--strip-path", "1"],
            &["--no-guid-check"],
            &["x"],
        ] {
            let mut argv = vec!["zab-thin", "--offline"];
            argv.extend(extra);
            let e = Args::try_parse_from(&argv).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{argv:?}"
            );
            let line = zab_core::cli::usage_line(TOOL, &e);
            assert!(line.contains("'--offline' cannot be used with"), "{line}");
        }
        // With ZFS they are fine.
        assert!(Args::try_parse_from(["zab-thin", "x", "--keep-source", "10"]).is_ok());
    }

    #[test]
    fn now_is_the_hidden_flag_with_zfs_too() {
        match config(&["zab-thin", "x", "--now", "1763900000"]) {
            Ok(Config::Zfs(c)) => assert_eq!(c.now, 1_763_900_000),
            other => panic!("{other:?}"),
        }
        match config(&["zab-thin", "--offline", "--now", "5"]) {
            Ok(Config::Offline(c)) => assert_eq!(c.now, 5),
            other => panic!("{other:?}"),
        }
        for argv in [&["zab-thin", "x"][..], &["zab-thin", "--offline"]] {
            let mut argv = argv.to_vec();
            argv.push("--now=-1");
            let e = config(&argv).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{e}");
            assert!(e.to_string().contains("--now -1 is out of range"), "{e}");
        }
    }

    #[test]
    fn config_checks_every_option_once() {
        let usage = |argv: &[&str], words: &str| {
            let e = config(argv).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{e}");
            assert!(e.to_string().contains(words), "{e}");
        };
        usage(
            &["zab-thin", "x", "--destroy-missing", "3q"],
            "--destroy-missing",
        );
        usage(
            &["zab-thin", "x", "--destroy-missing", "3d"],
            "needs a TARGET-PATH",
        );
        assert!(config(&["zab-thin", "x", "/bad"]).is_err());
        assert!(config(&["zab-thin", "x", "--snapshot-format", "nothing"]).is_err());
        match config(&["zab-thin", "x", "b/t", "--destroy-missing", "1d", "--test"]) {
            Ok(Config::Zfs(c)) => {
                assert_eq!(c.destroy_missing, Some(86400));
                assert_eq!(c.target.as_ref().map(|t| t.path.as_str()), Some("b/t"));
                assert_eq!((c.read_only, c.act()), (Some("--test"), false));
                assert_eq!(c.tag, "zfs_autobackup:x");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            config(&["zab-thin", "--describe", "1"]),
            Ok(Config::Describe(_))
        ));
    }

    #[test]
    fn a_store_url_is_a_store_target() {
        match config(&["zab-thin", "x", "s3://bkt/p", "--destroy-missing", "1d"]) {
            Ok(Config::Zfs(c)) => {
                assert!(c.target.is_none());
                let s = c.store.as_ref().unwrap();
                assert_eq!(s.location.url(), "s3://bkt/p");
                assert_eq!(c.lock_target(), Some((None, "s3://bkt/p")));
            }
            other => panic!("{other:?}"),
        }
        match config(&["zab-thin", "x", "file:///srv/b"]) {
            Ok(Config::Zfs(c)) => assert!(c.store.is_some() && c.target.is_none()),
            other => panic!("{other:?}"),
        }
        for (argv, words) in [
            (&["zab-thin", "x", "s3://Bad/p"][..], "invalid store URL"),
            (
                &["zab-thin", "x", "s3://b/p", "--ssh-target", "root@nas"],
                "--ssh-target is for a ZFS target",
            ),
        ] {
            let e = config(argv).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{e}");
            assert!(e.to_string().contains(words), "{e}");
        }
    }
}
