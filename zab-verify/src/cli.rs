//! zab-verify's command line, and [`Config`]: every option checked once.

use clap::Parser;
use zab_core::cli::{after_help, Chunks, Common, Log, Source, Target};
use zab_core::error::Error;
use zab_core::Host;

/// The tool's name, in messages and records.
pub const TOOL: &str = "zab-verify";

const EXAMPLES: &str = "  \
  # Verify every dataset of the backup 'offsite1' below backup/host1:
  zab-select offsite1 | zab-verify offsite1 backup/host1

  # After a run, pull mode: the sources on root@nas, the backups here:
  zab-select --ssh-source root@nas offsite1 |
      zab-verify --ssh-source root@nas offsite1 backup/nas

  # Sample one chunk in ten; list what differs:
  zab-select offsite1 | zab-verify --skip 9 offsite1 backup/host1 |
      jq -c 'select(.verify.status == \"mismatch\") | {name, differences: .verify.differences}'
";

/// Compare each backed-up dataset's content on source and target: the
/// newest snapshot common to both (same name and guid) is hashed on both
/// sides at once by zab-check, and the hashes compared.
///
/// Reads zab-select's records (or any later stage's), and writes each with
/// a `verify` object: verified, mismatch (which files and chunks), or
/// no-common-snapshot (/usr/share/doc/zab/records.md). A mismatch, a dataset without a
/// common snapshot, and a side that could not be hashed are failed
/// datasets (exit 1). zab-check must be in the PATH of every host
/// involved: this one for local datasets, the source and target hosts over
/// ssh. A filesystem snapshot is read through its `.zfs/snapshot`
/// directory, or a temporary read-only mount; a volume snapshot through a
/// temporary read-only clone (see zab-check). Changes nothing else.
#[derive(Parser, Debug)]
#[command(name = "zab-verify", version, after_long_help = after_help(EXAMPLES), mut_arg("target_path", |a| a.required(true)))]
pub struct Args {
    /// The backup name.
    #[arg(value_name = "BACKUP-NAME")]
    pub backup: String,

    #[command(flatten)]
    pub target: Target,

    #[command(flatten)]
    pub source: Source,

    // zab-check's options, the same on both sides.
    #[command(flatten)]
    pub chunks: Chunks,

    #[command(flatten)]
    pub common: Common,
}

/// What a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub backup: String,
    pub target_path: String,
    pub target: Target,
    pub ssh_source: Option<String>,
    pub target_host: Host,
    pub guid_check: bool,
    /// zab-check's options, the same on both sides.
    pub check_args: Vec<String>,
    pub common: Common,
    pub log: Log,
}

impl Args {
    pub fn config(self) -> Result<Config, Error> {
        self.chunks.chunk_size()?;
        let target_path = self.target.required_path()?.to_string();
        let ssh_source = self.source.checked()?;
        let target_host = self.common.host(self.target.host.ssh_target.as_deref())?;
        let mut check_args = self.chunks.args();
        if self.common.debug {
            check_args.push("--debug".into());
        }
        Ok(Config {
            backup: self.backup,
            target_path,
            guid_check: !self.target.no_guid_check,
            target: self.target,
            ssh_source,
            target_host,
            check_args,
            log: self.common.log(TOOL),
            common: self.common,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn target_path_is_required_and_checked() {
        assert!(Args::try_parse_from(["zab-verify", "offsite1"]).is_err());
        let a = Args::try_parse_from(["zab-verify", "offsite1", "backup/h1", "--skip", "9"])
            .expect("args");
        let c = a.config().expect("config");
        assert_eq!(c.target_path, "backup/h1");
        assert!(c.guid_check);
        assert_eq!(
            c.check_args.join(" "),
            "--block-size 4096 --count 25600 --skip 9"
        );
        let a = Args::try_parse_from(["zab-verify", "offsite1", "/backup"]).expect("args");
        assert_eq!(
            a.config().expect_err("bad path").exit(),
            zab_core::Exit::Usage
        );
    }

    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(
            &Args::command(),
            include_str!("../../docs/man/zab-verify.1"),
        );
    }
}
