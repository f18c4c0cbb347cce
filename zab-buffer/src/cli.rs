//! zab-buffer's command line, and the checked configuration it becomes.
//!
//! The short options are mbuffer's where they mean the same (`-m`, `-s`,
//! `-P`, `-p`, `-q`, `-W`), so `mbuffer -q -s128k -m16M` (zfs-autobackup) and
//! `mbuffer -q -s 128k -m 16M` (syncoid) work with the name changed.

use std::time::Duration;

use clap::Parser;
use zab_core::cli::{after_help, parse_bytes, Quiet, Verbose};
use zab_core::error::Error;
use zab_core::size::check_buffer;

const EXAMPLES: &str = "  \
  # Smooth a local transfer (zfs-autobackup runs mbuffer -q -s128k -m16M):
  zfs send tank/data@today | zab-buffer -q -m 16M | zfs recv -u backup/data

  # A buffer on both ends of an ssh link, 256 MiB on the receiving side:
  zfs send tank/data@today | zab-buffer -q \\
    | ssh backup1 'zab-buffer -q -m 256M | zfs recv -u backup/data'

  # Verify the stream end to end: both ends print the same xxh64 line on
  # stderr when every byte arrived, in order (`xxhsum -H1 FILE` agrees):
  zfs send tank/data@today | zab-buffer -q --hash \\
    | ssh backup1 'zab-buffer -q --hash | zfs recv -u backup/data'

  # Fail (exit 4) when no byte moves for 10 minutes, e.g. a hung ssh:
  zfs send tank/data@today | zab-buffer -q -W 600 \\
    | ssh backup1 zfs recv -u backup/data

  # Feed a tape drive in long runs: start writing once 90 % full; once the
  # buffer is full, read again only when it has drained to 20 %:
  tar -c /data | zab-buffer -m 1G -P 90 -p 20 > /dev/nst0

  # Limit the rate: put zab-ratelimit after the buffer (mbuffer's -R):
  zfs send tank/data@today | zab-buffer -q | zab-ratelimit -q -L 50M \\
    | ssh backup1 zfs recv -u backup/data

A failed read or write, a reader that went away, the watchdog and SIGINT or
SIGTERM end the transfer with an error line that says how many bytes were read,
how many were written and how many were lost. zab-buffer never ends with
status 0 on a stream it did not pass on whole.
";

/// Buffer a byte stream in memory between stdin and stdout (mbuffer's job).
///
/// A reader thread fills preallocated blocks from stdin while a writer thread
/// writes full blocks to stdout, so a bursty producer and a bursty consumer
/// each run at their own pace. Every byte read is written, in order. Without
/// -q, a summary line goes to stderr at the end.
#[derive(Parser, Debug)]
#[command(name = "zab-buffer", version, after_long_help = after_help(EXAMPLES),
    mut_arg("quiet", |a| a.conflicts_with("verbose")
        .help("No summary line at the end (errors and --hash are still printed)")),
    mut_arg("verbose", |a| a.help_heading(None).help(
        "A line on stderr each time the buffer ran full or empty and the waiting side resumed, \
         with the byte counts at that moment: to see which side is slow, and the watermarks at \
         work")))]
pub struct Args {
    /// Total buffer memory. Units K, M, G, T (powers of 1024; a fraction
    /// needs a unit: 1.5G). At most the memory available (MemAvailable in
    /// /proc/meminfo): a larger buffer is a usage error. Allocated at start;
    /// pages are touched only as the buffer fills.
    #[arg(short = 'm', long = "memory", value_name = "BYTES", default_value = "128M", value_parser = parse_bytes)]
    pub size: u64,

    /// Block size: the unit of reads and writes. MEMORY / BLOCK blocks make
    /// the buffer (at least 2).
    #[arg(short = 's', long, value_name = "BYTES", default_value = "128K", value_parser = parse_bytes)]
    pub block: u64,

    /// High watermark: once the buffer has run empty, start writing again
    /// only when it is PERCENT full (or the input ended). 0 writes as soon as
    /// a block is full.
    #[arg(short = 'P', long, value_name = "PERCENT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub high_watermark: u8,

    /// Low watermark: once the buffer is full, read again only when it has
    /// drained to PERCENT full. 100 reads as soon as a block is free.
    #[arg(short = 'p', long, value_name = "PERCENT", default_value_t = 100,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub low_watermark: u8,

    /// Watchdog: fail when no byte was read or written for this long
    /// (seconds, or with a unit: 90s, 10min, 1h; `10m` is refused, since m
    /// is a month in zab's schedules). Make it longer than a block takes at the slowest
    /// expected rate.
    #[arg(short = 'W', long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub watchdog: Option<Duration>,

    /// Print a 64-bit hash of the stream on stderr at the end:
    /// `zab-buffer: xxh64 HASH, BYTES bytes`. It is XXH64 with seed 0, as
    /// `xxhsum -H1` prints it, so both ends of a transfer can be compared.
    /// Printed also with -q.
    #[arg(long)]
    pub hash: bool,

    #[command(flatten)]
    pub quiet: Quiet,

    #[command(flatten)]
    pub verbose: Verbose,
}

/// What [`Args`] becomes once checked: the buffer in blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Bytes per block.
    pub block: usize,
    /// Number of blocks.
    pub blocks: usize,
    /// After running empty, the writer waits for this many full blocks.
    pub start_writing: usize,
    /// After running full, the reader waits for this many free blocks.
    pub resume_reading: usize,
    pub watchdog: Option<Duration>,
    pub hash: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Config {
    /// The buffer's size in bytes (whole blocks; [`Args::config`] checked
    /// that it fits a `usize`).
    pub fn bytes(&self) -> usize {
        self.block.saturating_mul(self.blocks)
    }

    /// Refuses a buffer larger than the memory `available` (None: unknown),
    /// as a usage error before anything is allocated.
    pub fn check_memory(&self, available: Option<u64>) -> Result<(), Error> {
        check_buffer(self.bytes() as u64, available)
            .map_err(|e| Error::Usage(format!("--memory {e}")))
    }
}

impl Args {
    /// Checks the sizes and turns percentages into block counts.
    pub fn config(&self) -> Result<Config, Error> {
        if self.block == 0 {
            return Err(Error::Usage("--block must be at least 1 byte".into()));
        }
        let blocks = self.size / self.block;
        if blocks < 2 {
            return Err(Error::Usage(format!(
                "--memory ({}) must hold at least 2 blocks of --block ({})",
                self.size, self.block
            )));
        }
        let block = usize::try_from(self.block)
            .map_err(|_| Error::Usage("--block is too large for this machine".into()))?;
        let blocks = usize::try_from(blocks)
            .map_err(|_| Error::Usage("--memory is too large for this machine".into()))?;
        if block.checked_mul(blocks).is_none() {
            return Err(Error::Usage(
                "--memory is too large for this machine".into(),
            ));
        }
        Ok(Config {
            block,
            blocks,
            start_writing: full_blocks_at(blocks, self.high_watermark),
            resume_reading: free_blocks_below(blocks, self.low_watermark),
            watchdog: self.watchdog,
            hash: self.hash,
            quiet: self.quiet.quiet,
            verbose: self.verbose.verbose,
        })
    }
}

/// The number of full blocks that makes the buffer at least `percent` full.
pub fn full_blocks_at(blocks: usize, percent: u8) -> usize {
    (blocks * usize::from(percent)).div_ceil(100)
}

/// The number of free blocks that leaves the buffer at most `percent` full;
/// at least one, or the reader would have nowhere to read into.
pub fn free_blocks_below(blocks: usize, percent: u8) -> usize {
    let max_full = blocks * usize::from(percent) / 100;
    (blocks - max_full).max(1)
}

/// Parses a duration: plain seconds (`30`, `1.5`) or with a unit (`90s`,
/// `10min`, `1h`), as every zab option does ([`zab_core::duration`]).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let d = zab_core::duration::parse_seconds(s)?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be above 0"));
    }
    if d.as_secs_f64() > 1e9 {
        return Err(format!(
            "duration {s:?} is too large (at most 1000000000 seconds, about 31 years)"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    /// docs/man/zab-buffer.1 is what `zab-buffer --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(
            &Args::command(),
            include_str!("../../docs/man/zab-buffer.1"),
        );
    }

    fn config(argv: &[&str]) -> Result<Config, String> {
        let mut v = vec!["zab-buffer"];
        v.extend_from_slice(argv);
        Args::try_parse_from(v)
            .map_err(|e| e.to_string())?
            .config()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn mbuffer_style_arguments() {
        // zfs-autobackup's and syncoid's spellings.
        let c = config(&["-q", "-s128k", "-m16M"]).unwrap();
        assert_eq!((c.block, c.blocks, c.quiet), (128 << 10, 128, true));
        let c = config(&["-q", "-s", "128k", "-m", "16M", "-W", "30"]).unwrap();
        assert_eq!(c.blocks, 128);
        assert_eq!(c.watchdog, Some(Duration::from_secs(30)));
        let c = config(&["-m", "1M", "-s", "64K", "-P", "50", "-p", "25"]).unwrap();
        assert_eq!((c.blocks, c.start_writing, c.resume_reading), (16, 8, 12));
    }

    #[test]
    fn defaults_are_128_mib_in_128_kib_blocks_with_no_watermarks() {
        let c = config(&[]).unwrap();
        assert_eq!((c.block, c.blocks), (128 << 10, 1024));
        assert_eq!((c.start_writing, c.resume_reading), (0, 1));
        assert_eq!(c.watchdog, None);
        assert!(!c.hash && !c.quiet && !c.verbose);
    }

    #[test]
    fn bad_sizes_are_usage_errors() {
        assert!(config(&["-m", "128K", "-s", "128K"])
            .unwrap_err()
            .contains("at least 2 blocks"));
        assert!(config(&["-s", "0"])
            .unwrap_err()
            .contains("at least 1 byte"));
        assert!(config(&["-P", "101"]).is_err());
        assert!(config(&["-W", "0"]).is_err());
        assert!(config(&["-W", "soon"]).is_err());
    }

    #[test]
    fn watermarks_in_blocks() {
        assert_eq!(full_blocks_at(16, 0), 0);
        assert_eq!(full_blocks_at(16, 1), 1); // at least 1 %: one block
        assert_eq!(full_blocks_at(16, 50), 8);
        assert_eq!(full_blocks_at(16, 100), 16);
        assert_eq!(full_blocks_at(3, 50), 2);
        assert_eq!(free_blocks_below(16, 100), 1);
        assert_eq!(free_blocks_below(16, 99), 1);
        assert_eq!(free_blocks_below(16, 25), 12);
        assert_eq!(free_blocks_below(16, 0), 16);
        assert_eq!(free_blocks_below(3, 50), 2);
    }

    /// -W reads durations as every zab option does (zab_core::duration):
    /// `m` is zfs-autobackup's month, so here, where mbuffer's users mean
    /// minutes, it is refused rather than read as 30 days.
    #[test]
    fn durations() {
        assert_eq!(parse_seconds("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_seconds("10min"), Ok(Duration::from_secs(600)));
        assert!(parse_seconds("1m").unwrap_err().contains("write min"));
        assert_eq!(parse_seconds("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_seconds("1d"), Ok(Duration::from_secs(86400)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("0").unwrap_err().contains("above 0"));
        assert!(parse_seconds("").is_err());
        // Not "must be above 0" for what is not a number or too large.
        for bad in ["1e10", "inf", "NaN"] {
            let err = parse_seconds(bad).unwrap_err();
            assert!(err.starts_with("invalid duration"), "{err}");
        }
        assert!(parse_seconds("99999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_seconds("32y").unwrap_err().contains("too large"));
    }

    #[test]
    fn the_buffer_must_fit_in_the_memory_available() {
        let c = config(&["-m", "1T"]).unwrap();
        let err = c.check_memory(Some(8 << 30)).unwrap_err().to_string();
        assert!(
            err.starts_with("--memory 1.00 TiB is more than the memory available (8.00 GiB"),
            "{err}"
        );
        assert!(c.check_memory(Some(2 << 40)).is_ok());
        assert!(c.check_memory(None).is_ok());
        // Whole blocks count: 1M in 300K blocks is 900K.
        let c = config(&["-m", "1M", "-s", "300K"]).unwrap();
        assert!(c.check_memory(Some(900 << 10)).is_ok());
    }
}
