//! zab-select's command line.

use clap::Parser;
use zab_core::cli::{after_help, parse_bytes, Common, DEFAULT_PROPERTY_FORMAT};

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
#[command(name = "zab-select", version, after_long_help = after_help(EXAMPLES))]
pub struct Args {
    /// The backup name: selects datasets with the property autobackup:NAME.
    #[arg(value_name = "BACKUP-NAME")]
    pub backup: String,

    /// The target dataset. When source and target are the same host,
    /// datasets at or under it are excluded (reason target-path).
    #[arg(value_name = "TARGET-PATH")]
    pub target_path: Option<String>,

    /// Select on this host through ssh (pull mode), e.g. root@nas.
    #[arg(long, value_name = "USER@HOST")]
    pub ssh_source: Option<String>,

    /// Where the target is (push mode). Only used to tell whether source and
    /// target are the same host.
    #[arg(long, value_name = "USER@HOST")]
    pub ssh_target: Option<String>,

    /// The selection property; {} is replaced by the backup name.
    #[arg(long, value_name = "FORMAT", default_value = DEFAULT_PROPERTY_FORMAT)]
    pub property_format: String,

    /// Exclude datasets whose property was received (set by zfs receive, or
    /// inherited from such a dataset). On by default when there is no
    /// TARGET-PATH and source and target are the same host, as in
    /// zfs-autobackup, so a backup server does not back up its backups.
    #[arg(long)]
    pub exclude_received: bool,

    /// Do not exclude received datasets automatically (see --exclude-received).
    #[arg(long, conflicts_with = "exclude_received")]
    pub include_received: bool,

    /// Exclude datasets with fewer than BYTES written since their latest
    /// snapshot (of any kind). Units K, M, G, T are accepted. 0 turns it off.
    #[arg(long, value_name = "BYTES", default_value = "0", value_parser = parse_bytes)]
    pub exclude_unchanged: u64,

    /// Also write the datasets that are not selected, with the reason.
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub common: Common,
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
        assert!(a.common.verbose);
        assert!(Args::try_parse_from(["zab-select"]).is_err());
        assert!(Args::try_parse_from([
            "zab-select",
            "x",
            "--exclude-received",
            "--include-received"
        ])
        .is_err());
    }
}
