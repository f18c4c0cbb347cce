//! zab-restore's command line, and [`Config`]: every option checked once.

use clap::Parser;
use zab_core::cli::{after_help, heading, Common, DryRun, RecvForce, SshTarget};
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

  # Every dataset of the store (parents first), each below pool/restore
  # under its name in the store (tank/data into pool/restore/tank/data):
  zab-restore --all s3://backups/host1 pool/restore

  # tank/data and every dataset below it, from a directory:
  zab-restore --all file:///mnt/usb/zab tank/data pool/restore

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
/// there; every receive is zfs recv -s, and a partial receive left by a
/// run cut short goes on inside its object (the resuming stream made from
/// the stored one, hashed whole but downloaded only from the last
/// checkpoint before where the receive got to when it is uncompressed; a
/// compressed one is downloaded whole and decompressed on this host for
/// it), else it is
/// aborted (zfs recv -A) and its object received again. The target is received unmounted (zfs recv -u) unless --mount:
/// a restored dataset keeps its source's mountpoint, which may be in use
/// here. Encrypted datasets backed up raw are received raw; their keys
/// stay with you (zfs load-key).
///
/// With --all, every dataset in the store (or DATASET and those below it)
/// is restored into TARGET-PATH/NAME, NAME as in the store, parents first;
/// the datasets between TARGET-PATH and them that the store does not have
/// are created (canmount=off). TARGET-PATH may be a pool.
///
/// Objects are read ahead of the receive, in ranges of 8 MiB, with
/// --download-jobs requests at once: memory stays below about 8 MiB times
/// (jobs + 3). Writes one NDJSON record per dataset, then the end record.
#[derive(Parser, Debug)]
#[command(name = "zab-restore", version, after_long_help = after_help(EXAMPLES),
    override_usage = "zab-restore [OPTIONS] URL DATASET[@SNAPSHOT] TARGET-DATASET\n       \
                      zab-restore [OPTIONS] --all URL [DATASET] TARGET-PATH",
    mut_arg("storage_class", |a| a.hide(true)), mut_arg("upload_jobs", |a| a.hide(true)),
    mut_arg("ssh_target", |a| a.help("The host that receives (zfs recv there, over ssh); this machine when absent")),
    mut_arg("force", |a| a.help(
        "zfs recv -F: roll the target back to its newest snapshot first (and destroy its snapshots \
         that the stream does not have). Needed when the target was changed after its newest \
         snapshot (e.g. mounted)")),
    mut_arg("test", |a| a.help(
        "Print the plan and the commands, run only commands that read (zfs list), and change nothing")))]
pub struct Args {
    /// The store: s3://BUCKET[/PREFIX] or file:///DIR, as given to zab-send.
    #[arg(value_name = "URL")]
    pub url: String,

    /// The dataset, as named in the store (after zab-send's --strip-path),
    /// and the snapshot to restore (after @); the newest snapshot whose
    /// chain is whole when absent. With --all and no third argument,
    /// TARGET-PATH.
    #[arg(value_name = "DATASET[@SNAPSHOT]")]
    pub dataset: String,

    /// The dataset to receive into. Its parent must exist. When it exists,
    /// it must have a snapshot of the chain, and only what comes after the
    /// newest of them is received. With --all, TARGET-PATH.
    #[arg(value_name = "TARGET-DATASET")]
    pub target: Option<String>,

    /// Restore every dataset in the store (or DATASET and every dataset
    /// below it), parents first, each into TARGET-PATH/NAME; each goes on
    /// from its target's snapshots as a single restore does. Always to the
    /// newest snapshot whose chain is whole.
    #[arg(long)]
    pub all: bool,

    /// Ranged requests (8 MiB each) in flight at once, across the objects
    /// of a dataset: the next object downloads while the current one is
    /// received. 1: each object in one streamed GET (still ahead), for a
    /// server that serves ranges slowly.
    #[arg(long, value_name = "N", default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=64))]
    pub download_jobs: u16,

    #[command(flatten)]
    pub ssh_target: SshTarget,

    #[command(flatten)]
    pub force: RecvForce,

    /// Receive without -u: the restored dataset is mounted at its
    /// mountpoint, as zfs recv does by default.
    #[arg(help_heading = heading::TARGET, long)]
    pub mount: bool,

    #[command(flatten)]
    pub dry_run: DryRun,

    #[command(flatten)]
    pub settings: Settings,

    #[command(flatten)]
    pub common: Common,
}

/// What to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// One dataset of the store.
    One {
        dataset: String,
        /// The snapshot asked for (after @).
        snapshot: Option<String>,
        target: String,
    },
    /// --all: every dataset of the store, or `below` and those below it.
    All {
        below: Option<String>,
        target_path: String,
    },
}

/// What a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub location: Location,
    pub settings: Settings,
    pub what: What,
    /// Ranged requests in flight.
    pub download_jobs: usize,
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
        let what = self.what()?;
        let host = self
            .common
            .host(self.ssh_target.ssh_target.as_deref())?
            .with_read_only(self.dry_run.read_only());
        let mut recv_options = Vec::new();
        if !self.mount {
            recv_options.push("-u".to_string());
        }
        if self.force.force {
            recv_options.push("-F".to_string());
        }
        Ok(Config {
            location,
            settings: self.settings.clone(),
            what,
            download_jobs: usize::from(self.download_jobs),
            host,
            recv_options,
            test: self.dry_run.test,
            common: self.common.clone(),
        })
    }
}

impl Args {
    /// The positional arguments, checked: one dataset, or --all's.
    fn what(&self) -> Result<What, Error> {
        let usage = |s: String| Error::Usage(s);
        if self.all {
            let (below, target_path) = match &self.target {
                Some(t) => (Some(self.dataset.clone()), t.clone()),
                None => (None, self.dataset.clone()),
            };
            if let Some(b) = &below {
                if b.contains('@') {
                    return Err(usage(format!(
                        "DATASET {b}: --all restores each dataset to its newest whole chain, without @SNAPSHOT"
                    )));
                }
                zab_core::name::dataset(b).map_err(|e| usage(format!("DATASET: {e}")))?;
            }
            zab_core::name::dataset(&target_path)
                .map_err(|e| usage(format!("TARGET-PATH: {e}")))?;
            return Ok(What::All { below, target_path });
        }
        let Some(target) = &self.target else {
            return Err(usage(
                "TARGET-DATASET is missing: URL DATASET[@SNAPSHOT] TARGET-DATASET, or --all URL [DATASET] TARGET-PATH".into(),
            ));
        };
        let (dataset, snapshot) = match self.dataset.split_once('@') {
            Some((d, s)) => (d, Some(s.to_string())),
            None => (self.dataset.as_str(), None),
        };
        zab_core::name::dataset(dataset).map_err(|e| usage(format!("DATASET: {e}")))?;
        if let Some(s) = &snapshot {
            zab_core::name::snapshot_name(s).map_err(|e| usage(format!("SNAPSHOT: {e}")))?;
        }
        zab_core::name::dataset(target).map_err(|e| usage(format!("TARGET-DATASET: {e}")))?;
        if !target.contains('/') {
            return Err(usage(format!(
                "TARGET-DATASET {target} is a pool: restore into a dataset below it"
            )));
        }
        Ok(What::One {
            dataset: dataset.to_string(),
            snapshot,
            target: target.clone(),
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
        assert_eq!(
            c.what,
            What::One {
                dataset: "tank/data".into(),
                snapshot: Some("s1".into()),
                target: "pool/r".into()
            }
        );
        assert_eq!(c.recv_options, ["-u", "-F"]);
        assert_eq!(c.host.read_only(), None);
        assert_eq!(c.download_jobs, 4);
        let c = config(&["s3://b/p", "tank/data", "pool/r", "--mount", "--test"]).unwrap();
        assert!(matches!(c.what, What::One { snapshot: None, .. }));
        assert!(c.recv_options.is_empty());
        assert_eq!(c.host.read_only(), Some("--test"));
        let c = config(&["s3://b/p", "pool/r", "--download-jobs", "9"]).err();
        assert!(
            matches!(&c, Some(Error::Usage(m)) if m.contains("TARGET-DATASET is missing")),
            "{c:?}"
        );
    }

    #[test]
    fn all_with_and_without_a_dataset() {
        let c = config(&["--all", "s3://b/p", "pool"]).unwrap();
        assert_eq!(
            c.what,
            What::All {
                below: None,
                target_path: "pool".into()
            }
        );
        let c = config(&[
            "--all",
            "s3://b/p",
            "tank/data",
            "pool/r",
            "--download-jobs",
            "8",
        ])
        .unwrap();
        assert_eq!(
            c.what,
            What::All {
                below: Some("tank/data".into()),
                target_path: "pool/r".into()
            }
        );
        assert_eq!(c.download_jobs, 8);
        for argv in [
            &["--all", "s3://b", "tank/a@s1", "pool/r"][..],
            &["--all", "s3://b", "pool/r@s"],
            &["--all", "s3://b", "tank/a", "pool/r#x"],
            &["s3://b", "pool/r", "--download-jobs", "0"],
        ] {
            assert!(
                matches!(config(argv), Err(Error::Usage(_))),
                "{argv:?} was accepted"
            );
        }
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
