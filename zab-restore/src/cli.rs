//! zab-restore's command line, and [`Config`]: every option checked once.

use clap::Parser;
use zab_core::cli::{after_help, heading, Common};
use zab_core::error::Error;
use zab_core::Host;
use zab_store::{Location, Settings};

/// The tool's name, in messages and records.
pub const TOOL: &str = "zab-restore";

const EXAMPLES: &str = "  \
  # The newest snapshot of tank/data whose chain is whole, into a new dataset:
  zab-restore s3://backups/host1 tank/data pool/restore/data

  # A given snapshot, from a directory, on another host over ssh:
  zab-restore --ssh-target root@nas file:///mnt/usb/zab tank/data@offsite1-20261203070000 \\
      pool/restore/data

  # What would be received, and with which commands; nothing is changed:
  zab-restore --test s3://backups/host1 tank/data pool/restore/data

  # Run again after more backups (or after a restore was cut short): only
  # the objects after the newest snapshot the target has are received.
  zab-restore s3://backups/host1 tank/data pool/restore/data

  # An encrypted dataset comes back raw; load its key to mount it:
  zab-restore s3://backups/host1 tank/secret pool/restore/secret
  zfs load-key pool/restore/secret && zfs mount pool/restore/secret
";

/// Restore a dataset from the backups zab-send keeps in object storage (S3
/// or a compatible server) or in a directory.
///
/// Reads the dataset's manifest (/usr/share/doc/zab/store.md), plans the
/// chain that ends at SNAPSHOT (the full stream, then each incremental, in
/// order; by default the newest snapshot whose chain is whole), and pipes
/// each object into `zfs recv` on this host or on --ssh-target,
/// decompressed with the program zab-send compressed it for. Each object's
/// SHA-256 is checked as it streams: the last MiB is held back until the
/// hash matches, so a corrupt object stops the receive before its snapshot
/// is committed, and the error names the object.
///
/// When TARGET-DATASET exists with snapshots of the chain (the same guids),
/// only the objects after the newest of them are received: a second run
/// after more backups, or after a restore was cut short, goes on from
/// there. The target is received unmounted (zfs recv -u) unless --mount:
/// a restored dataset keeps its source's mountpoint, which may be in use
/// here. Encrypted datasets backed up raw are received raw; their keys
/// stay with you (zfs load-key). Writes one NDJSON record, then the end
/// record.
#[derive(Parser, Debug)]
#[command(name = "zab-restore", version, after_long_help = after_help(EXAMPLES),
    mut_arg("storage_class", |a| a.hide(true)), mut_arg("upload_jobs", |a| a.hide(true)))]
pub struct Args {
    /// The store: s3://BUCKET[/PREFIX] or file:///DIR, as given to zab-send.
    #[arg(value_name = "URL")]
    pub url: String,

    /// The dataset, as named in the store (after zab-send's --strip-path),
    /// and the snapshot to restore (after @); the newest snapshot whose
    /// chain is whole when absent.
    #[arg(value_name = "DATASET[@SNAPSHOT]")]
    pub dataset: String,

    /// The dataset to receive into. Its parent must exist. When it exists,
    /// it must have a snapshot of the chain, and only what comes after the
    /// newest of them is received.
    #[arg(value_name = "TARGET-DATASET")]
    pub target: String,

    /// The host that receives (zfs recv there, over ssh); this machine
    /// when absent.
    #[arg(help_heading = heading::SSH, long, value_name = "USER@HOST")]
    pub ssh_target: Option<String>,

    /// zfs recv -F: roll the target back to its newest snapshot first (and
    /// destroy its snapshots that the stream does not have). Needed when
    /// the target was changed after its newest snapshot (e.g. mounted).
    #[arg(help_heading = heading::TARGET, short = 'F', long)]
    pub force: bool,

    /// Receive without -u: the restored dataset is mounted at its
    /// mountpoint, as zfs recv does by default.
    #[arg(help_heading = heading::TARGET, long)]
    pub mount: bool,

    /// Print the plan and the commands, run only commands that read
    /// (zfs list), and change nothing.
    #[arg(help_heading = heading::OUTPUT, long)]
    pub test: bool,

    #[command(flatten)]
    pub settings: Settings,

    #[command(flatten)]
    pub common: Common,
}

/// What a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub location: Location,
    pub settings: Settings,
    /// The dataset in the store.
    pub dataset: String,
    /// The snapshot asked for (after @).
    pub snapshot: Option<String>,
    pub target: String,
    /// The receiving host, read-only with --test.
    pub host: Host,
    /// zfs recv's options.
    pub recv_options: Vec<String>,
    pub test: bool,
    pub common: Common,
}

impl Args {
    /// Every option checked; reads nothing and runs nothing.
    pub fn config(&self) -> Result<Config, Error> {
        let location = Location::parse(&self.url).map_err(Error::Usage)?;
        let (dataset, snapshot) = match self.dataset.split_once('@') {
            Some((d, s)) => (d, Some(s.to_string())),
            None => (self.dataset.as_str(), None),
        };
        zab_core::name::dataset(dataset).map_err(|e| Error::Usage(format!("DATASET: {e}")))?;
        if let Some(s) = &snapshot {
            zab_core::name::snapshot_name(s).map_err(|e| Error::Usage(format!("SNAPSHOT: {e}")))?;
        }
        zab_core::name::dataset(&self.target)
            .map_err(|e| Error::Usage(format!("TARGET-DATASET: {e}")))?;
        if !self.target.contains('/') {
            return Err(Error::Usage(format!(
                "TARGET-DATASET {} is a pool: restore into a dataset below it",
                self.target
            )));
        }
        let host = self
            .common
            .host(self.ssh_target.as_deref())?
            .with_read_only(self.test.then_some("--test"));
        let mut recv_options = Vec::new();
        if !self.mount {
            recv_options.push("-u".to_string());
        }
        if self.force {
            recv_options.push("-F".to_string());
        }
        Ok(Config {
            location,
            settings: self.settings.clone(),
            dataset: dataset.to_string(),
            snapshot,
            target: self.target.clone(),
            host,
            recv_options,
            test: self.test,
            common: self.common.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn config(argv: &[&str]) -> Result<Config, Error> {
        let mut all = vec!["zab-restore"];
        all.extend(argv);
        Args::try_parse_from(all)
            .map_err(|e| Error::Usage(e.to_string()))
            .and_then(|a| a.config())
    }

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn dataset_snapshot_and_options() {
        let c = config(&["file:///srv/zab", "tank/data@s1", "pool/r", "-F"]).unwrap();
        assert_eq!(c.dataset, "tank/data");
        assert_eq!(c.snapshot.as_deref(), Some("s1"));
        assert_eq!(c.recv_options, ["-u", "-F"]);
        assert_eq!(c.host.read_only(), None);
        let c = config(&["s3://b/p", "tank/data", "pool/r", "--mount", "--test"]).unwrap();
        assert_eq!(c.snapshot, None);
        assert!(c.recv_options.is_empty());
        assert_eq!(c.host.read_only(), Some("--test"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["http://x", "tank/a", "pool/r"][..],
            &["s3://b", "tank/a@", "pool/r"],
            &["s3://b", "tank/a", "pool"],
            &["s3://b", "tank/a", "pool/r@s"],
            &[
                "s3://b",
                "tank/a",
                "pool/r",
                "--ssh-target",
                "-oProxyCommand=x",
            ],
        ] {
            assert!(
                matches!(config(argv), Err(Error::Usage(_))),
                "{argv:?} was accepted"
            );
        }
    }

    /// docs/man/zab-restore.1 is what `zab-restore --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(
            &Args::command(),
            include_str!("../../docs/man/zab-restore.1"),
        );
    }
}
