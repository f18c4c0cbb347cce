//! zab-check's command line, and [`Config`]: every option checked once.

use std::path::PathBuf;

use clap::Parser;
use zab_core::cli::{after_help, Chunks, Common, Log, Source};
use zab_core::error::Error;
use zab_core::Host;

use crate::hash::Algorithm;

/// The tool's name, in messages.
pub const TOOL: &str = "zab-check";

const EXAMPLES: &str = "  \
  # Hash a snapshot (a filesystem's files, or a volume's blocks):
  zab-check tank/data@offsite1-20261201000000 > data.hashes

  # Check the backup against those hashes; exit status: the mismatches:
  zab-check --check=data.hashes backup/nas/tank/data@offsite1-20261201000000

  # Both sides at once, the source over ssh (zab-check runs there too):
  zab-check --ssh-source root@nas tank/data@snap | zab-check --check backup/nas/tank/data@snap

  # Sample: hash one chunk in ten; output comparable with zfs-check:
  zab-check --skip 9 tank/vol@snap
  zab-check --hash sha1 /dev/sdb > sdb.sha1

  # Two trees, compared line by line:
  diff <(zab-check /srv/a) <(zab-check /srv/b)
";

/// Hash the content of a file, a block device, a directory tree or a ZFS
/// snapshot in chunks, or check it against such hashes (zfs-check's job).
///
/// A chunk is --count blocks of --block-size bytes (100 MiB by default).
/// The output is `CHUNK<TAB>HASH` for a file or device and
/// `PATH<TAB>CHUNK<TAB>HASH` for a tree (regular files only: symbolic
/// links, device nodes and empty files print nothing), sorted by path so
/// that two trees compare line by line. A filesystem snapshot is read
/// through its `.zfs/snapshot` directory when its filesystem is mounted,
/// else through a temporary read-only mount in the private runtime
/// directory; a volume snapshot through a temporary read-only clone
/// (VOLUME_zab-check-PID). Either is removed afterwards, also after an
/// error, Ctrl-C or SIGTERM.
///
/// With --check, the exit status is the number of mismatches (at most 255),
/// as zfs-check's; errors that stop the whole run use the codes below.
/// With --ssh-source, zab-check runs on that host, which needs zab-check in
/// its PATH; there, a status of 255 can also be ssh's own failure (its
/// message is on stderr).
#[derive(Parser, Debug)]
#[command(name = "zab-check", version, after_long_help = after_help(EXAMPLES), mut_arg("ssh_source", |a| a.help(SSH_SOURCE)))]
pub struct Args {
    /// What to hash or check: a file, a block device, a directory, or a ZFS
    /// snapshot (DATASET@SNAPSHOT).
    #[arg(value_name = "TARGET")]
    pub target: String,

    #[command(flatten)]
    pub chunks: Chunks,

    /// Compare with the hashes read from stdin, or from FILE
    /// (--check=FILE), print each mismatch, and exit with their number (at
    /// most 255).
    #[arg(short = 'c', long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub check: Option<PathBuf>,

    /// The hash: blake3 (fast) or sha1 (zfs-check's, for output comparable
    /// with it). Both sides of a check must use the same.
    #[arg(long, value_name = "HASH", value_enum, default_value_t = Algorithm::Blake3)]
    pub hash: Algorithm,

    /// Read and hash with this many threads (default: one per CPU).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,

    #[command(flatten)]
    pub source: Source,

    #[command(flatten)]
    pub common: Common,
}

/// zab-check's help for the shared `--ssh-source`.
const SSH_SOURCE: &str = "Run on this host (e.g. root@nas) through ssh, which needs \
    zab-check in its PATH: TARGET is that host's, the output and status \
    come back here (with --check=FILE, FILE is read here).";

/// What a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: String,
    pub chunks: Chunks,
    pub chunk_size: u64,
    /// `-` for stdin.
    pub check: Option<PathBuf>,
    pub hash: Algorithm,
    pub jobs: usize,
    /// Given on the command line (passed on to a remote zab-check).
    pub jobs_given: Option<usize>,
    /// Where zab-check runs: this machine or `--ssh-source`.
    pub host: Host,
    pub remote: bool,
    pub log: Log,
}

impl Args {
    pub fn config(self) -> Result<Config, Error> {
        let chunk_size = self.chunks.chunk_size()?;
        if self.jobs == Some(0) {
            return Err(Error::Usage("--jobs must be at least 1".into()));
        }
        if self.target.is_empty() {
            return Err(Error::Usage("TARGET is empty".into()));
        }
        let dest = self.source.checked()?;
        let host = self.common.host(dest.as_deref())?;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Config {
            target: self.target,
            chunks: self.chunks,
            chunk_size,
            check: self.check,
            hash: self.hash,
            jobs: self.jobs.unwrap_or(cpus),
            jobs_given: self.jobs,
            remote: dest.is_some(),
            host,
            log: self.common.log(TOOL),
        })
    }
}

impl Config {
    /// The snapshot TARGET names, when it names one: it has an `@` and is
    /// not a path (`/…`, `./…`).
    pub fn snapshot(&self) -> Option<&str> {
        let t = self.target.as_str();
        (t.contains('@') && !t.starts_with('/') && !t.starts_with('.')).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use zab_core::cli::{try_parse_from, Parsed};

    fn config(argv: &[&str]) -> Result<Config, Error> {
        let mut all = vec!["zab-check"];
        all.extend_from_slice(argv);
        match try_parse_from::<Args, _, _>(all) {
            Ok(Parsed::Args(a)) => a.config(),
            Ok(_) => panic!("not args"),
            Err(e) => Err(Error::Usage(e.to_string())),
        }
    }

    #[test]
    fn clap_definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_are_zfs_checks() {
        let c = config(&["tank/a@s"]).expect("config");
        assert_eq!(c.chunk_size, 4096 * 25600);
        assert_eq!(c.hash, Algorithm::Blake3);
        assert_eq!(c.check, None);
        assert_eq!(c.snapshot(), Some("tank/a@s"));
        assert!(!c.remote);
    }

    #[test]
    fn check_takes_a_file_only_with_equals() {
        let c = config(&["--check", "tank/a@s"]).expect("config");
        assert_eq!(c.check, Some(PathBuf::from("-")));
        assert_eq!(c.target, "tank/a@s");
        let c = config(&["--check=h.txt", "/srv/x@y"]).expect("config");
        assert_eq!(c.check, Some(PathBuf::from("h.txt")));
        assert_eq!(c.snapshot(), None, "a path with @ is a path");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["--count", "0", "x"][..],
            &["--block-size", "0", "x"],
            &["--jobs", "0", "x"],
            &["--block-size", "1T", "--count", "100000000", "x"],
            &["--ssh-source", "-oProxyCommand=x", "x"],
        ] {
            let e = config(argv).expect_err("bad");
            assert_eq!(e.exit(), zab_core::Exit::Usage, "{argv:?}: {e}");
        }
        let c = config(&["--block-size", "64K", "--count", "2", "x"]).expect("units");
        assert_eq!(c.chunk_size, 131072);
    }

    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(&Args::command(), include_str!("../../docs/man/zab-check.1"));
    }
}
