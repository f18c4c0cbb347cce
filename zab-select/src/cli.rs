//! zab-select's command line, and [`Config`]: the same, checked once, with
//! zfs-autobackup's automatic exclusions decided.

use clap::Parser;
use zab_core::cli::{after_help, heading, parse_bytes, Common, Log, Selection, Source, SshTarget};
use zab_core::error::Error;
use zab_core::select::Options;
use zab_core::Host;

pub const TOOL: &str = "zab-select";

const EXAMPLES: &str = "  \
  # What would be backed up as 'offsite1' on this host?
  zab-select offsite1

  # Mark datasets first (the same property zfs-autobackup uses):
  zfs set autobackup:offsite1=true rpool/data
  zfs set autobackup:offsite1=false rpool/data/scratch

  # Every dataset, with the reason it is or is not selected:
  zab-select --all offsite1 | jq -r '[.name, .reason] | @tsv'

  # Pull mode: select on another host through ssh (honours ~/.ssh/config):
  zab-select --ssh-source root@nas offsite1

  # Backup into a dataset on the same host: it and below are never selected:
  zab-select offsite1 backup/nas
";

/// Select the datasets to back up, with zfs-autobackup's rules, as NDJSON.
///
/// A dataset is selected by the ZFS user property autobackup:NAME (see
/// --property-format): true selects it and its descendants, child only its
/// descendants, parent only itself, false excludes it and its descendants.
/// Filesystems and volumes are both selected. One `zfs get` is run on the
/// source host, however many datasets it has.
#[derive(Parser, Debug)]
#[command(name = "zab-select", version, after_long_help = after_help(EXAMPLES),
    mut_arg("ssh_target", |a| a.help(
        "Where the target is (push mode). Only used to tell whether source and target are the same \
         host")))]
pub struct Args {
    /// The backup name: selects datasets with the property autobackup:NAME.
    #[arg(value_name = "BACKUP-NAME")]
    pub backup: String,

    /// Exclude datasets whose property was received (set by zfs receive, or
    /// inherited from such a dataset). On by default when there is no
    /// TARGET-PATH and source and target are the same host, as in
    /// zfs-autobackup, so a backup server does not back up its backups.
    #[arg(help_heading = heading::SELECTION, long)]
    pub exclude_received: bool,

    /// Do not exclude received datasets automatically (see --exclude-received).
    #[arg(help_heading = heading::SELECTION, long, conflicts_with = "exclude_received")]
    pub include_received: bool,

    /// Exclude datasets with fewer than BYTES written since their latest
    /// snapshot (of any kind). Units K, M, G, T are accepted. 0 turns it off.
    #[arg(help_heading = heading::SELECTION, long, value_name = "BYTES", default_value = "0", value_parser = parse_bytes)]
    pub exclude_unchanged: u64,

    /// Also write the datasets that are not selected, with the reason.
    #[arg(help_heading = heading::OUTPUT, long)]
    pub all: bool,

    #[command(flatten)]
    pub selection: Selection,

    /// The target dataset. When source and target are the same host,
    /// datasets at or under it are excluded (reason target-path).
    #[arg(value_name = "TARGET-PATH")]
    pub target_path: Option<String>,

    #[command(flatten)]
    pub ssh_target: SshTarget,

    #[command(flatten)]
    pub source: Source,

    #[command(flatten)]
    pub common: Common,
}

impl Args {
    /// Every check of the command line, once: the backup name, the property,
    /// TARGET-PATH and the source host; and the selection options they give.
    /// After this, nothing reads `Args`.
    pub fn config(&self) -> Result<Config, Error> {
        check_backup_name(&self.backup)?;
        let property = self.selection.property(&self.backup)?;
        if let Some(t) = &self.target_path {
            zab_core::name::target_path(t)?;
        }
        // zab-select only reads: its host refuses anything else.
        let host = self
            .common
            .host(self.source.ssh_source.as_deref())?
            .with_read_only(Some("zab-select only reads"));
        let mut options = Options {
            backup: self.backup.clone(),
            property,
            host: host.dest().map(str::to_string),
            exclude_paths: Vec::new(),
            exclude_received: self.exclude_received,
            exclude_unchanged: self.exclude_unchanged,
        };
        // zfs-autobackup's automatic rules, when source and target are one
        // host: never back up into the source selection, and in snapshot-only
        // mode do not select received datasets (a backup server's backups).
        if self.source.ssh_source == self.ssh_target.ssh_target {
            match &self.target_path {
                Some(t) => options.exclude_paths.push(t.clone()),
                None if !self.include_received => options.exclude_received = true,
                None => {}
            }
        }
        Ok(Config {
            options,
            all: self.all,
            host,
            log: self.common.log(TOOL),
        })
    }
}

/// What a run of zab-select is asked to do: the command line, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// What decides the selection, besides the listing.
    pub options: Options,
    /// Write the datasets that are not selected too.
    pub all: bool,
    /// The source host, read-only.
    pub host: Host,
    pub log: Log,
}

/// A backup name may only hold characters that are valid in a snapshot name.
fn check_backup_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
    {
        return Err(Error::Usage(format!(
            "invalid backup name {name:?}: use letters, digits, '_', '-', '.' and ':'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    /// docs/man/zab-select.1 is what `zab-select --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(
            &Args::command(),
            include_str!("../../docs/man/zab-select.1"),
        );
    }

    #[test]
    fn parses_upstream_style_arguments() {
        let a = Args::try_parse_from([
            "zab-select",
            "offsite1",
            "backup/host1",
            "--ssh-source",
            "root@nas",
            "--exclude-unchanged",
            "1M",
            "-v",
        ])
        .unwrap();
        assert_eq!(a.backup, "offsite1");
        assert_eq!(a.target_path.as_deref(), Some("backup/host1"));
        assert_eq!(a.exclude_unchanged, 1 << 20);
        assert!(a.common.verbose.verbose);
        assert!(Args::try_parse_from(["zab-select"]).is_err());
        assert!(Args::try_parse_from([
            "zab-select",
            "x",
            "--exclude-received",
            "--include-received"
        ])
        .is_err());
    }

    #[test]
    fn backup_names() {
        assert!(check_backup_name("offsite1").is_ok());
        assert!(check_backup_name("").is_err());
        assert!(check_backup_name("a/b").is_err());
        assert!(check_backup_name("a b").is_err());
        assert!(check_backup_name("a@b").is_err());
    }

    fn config(argv: &[&str]) -> Result<Config, Error> {
        Args::try_parse_from(std::iter::once("zab-select").chain(argv.iter().copied()))
            .unwrap()
            .config()
    }

    #[test]
    fn one_host_excludes_the_target_or_received_datasets() {
        // TARGET-PATH on the source's host: it and below are excluded.
        let o = config(&["b", "backup/x"]).unwrap().options;
        assert_eq!(
            (o.exclude_paths, o.exclude_received),
            (vec!["backup/x".into()], false)
        );
        let o = config(&["b", "backup/x", "--ssh-source", "h", "--ssh-target", "h"])
            .unwrap()
            .options;
        assert_eq!(o.exclude_paths, vec!["backup/x".to_string()]);
        assert_eq!(o.host.as_deref(), Some("h"));
        // Snapshot-only on one host: received datasets are excluded, unless
        // --include-received.
        let o = config(&["b"]).unwrap().options;
        assert!(o.exclude_paths.is_empty() && o.exclude_received);
        assert!(
            !config(&["b", "--include-received"])
                .unwrap()
                .options
                .exclude_received
        );
        // Two hosts: neither rule.
        for argv in [
            &["b", "backup/x", "--ssh-target", "t"][..],
            &["b", "--ssh-source", "s"],
        ] {
            let o = config(argv).unwrap().options;
            assert!(
                o.exclude_paths.is_empty() && !o.exclude_received,
                "{argv:?}"
            );
        }
        assert!(
            config(&["b", "--ssh-source", "s", "--exclude-received"])
                .unwrap()
                .options
                .exclude_received
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["a/b"][..],
            &["b", "--property-format", "nocolon{}"],
            &["b", "/abs"],
            &["b", "--ssh-source=-oProxyCommand=x"],
        ] {
            let e = config(argv).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{argv:?}: {e}");
        }
        let c = config(&["b", "--property-format", "com.x:{}"]).unwrap();
        assert_eq!(c.options.property, "com.x:b");
        assert_eq!(c.host.read_only(), Some("zab-select only reads"));
    }
}
