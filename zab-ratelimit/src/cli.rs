//! zab-ratelimit's command line, and the checked configuration it becomes.
//!
//! The short options are pv's where they mean the same (`-L`, `-s`, `-q`,
//! `-i`, `-f`, `-n`, `-C`), and pv's display switches (`-p -t -e -r -a -b`,
//! as syncoid passes them) are accepted and ignored, so `pv` can be replaced
//! by name in existing scripts.

use std::time::Duration;

use clap::Parser;
use zab_core::cli::{after_help, parse_bytes, Quiet, Rate};

const EXAMPLES: &str = "  \
  # Limit a transfer to 50 MiB/s (upstream's --rate; mbuffer -R 50M):
  zfs send tank/data@today | zab-ratelimit -q -L 50M | ssh backup1 zfs recv -u backup/data

  # Progress with a percentage and an ETA (syncoid's pv -p -t -e -r -b -s SIZE):
  size=$(zfs send -nP tank/data@today | awk '$1 == \"size\" {print $2}')
  zfs send tank/data@today | zab-ratelimit -s \"$size\" | zfs recv -u backup/data

  # Progress for a program: one NDJSON record per second on stderr:
  zfs send tank/data@today | zab-ratelimit --json -s \"$size\" 2>progress.ndjson | ...
  tail -f progress.ndjson | jq -r '\"\\(.percent)% ETA \\(.eta) s\"'

  # A buffer first, to take zfs send's bursts while the limit holds:
  zfs send tank/data@today | zab-buffer -q | zab-ratelimit -q -L 100M \\
    | ssh backup1 zfs recv -u backup/data

Sizes and rates take K, M, G, T as powers of 1024, as pv and mbuffer read
them: -L 10M is 10 MiB/s (10,485,760 bytes per second). A fraction needs a
unit (-L 1.5M); a bare number is whole bytes.

Like zab-buffer, it fails (exit 4) with the byte count when stdout goes away
or a read or write fails: a byte stream cut short is never a success.
";

/// Pass a byte stream from stdin to stdout, at most at a given rate, with
/// progress on stderr (pv's job).
///
/// The rate limit is a token bucket that starts empty: N bytes take N / RATE
/// seconds. After a pause (a slow producer or consumer), at most a tenth of
/// a second's worth goes at full speed. On a terminal, a progress line is
/// redrawn every interval; elsewhere only the summary line is printed at
/// the end (with -f, a progress line every interval). Data moves with
/// splice(2) when stdin or stdout is a pipe, without being copied.
#[derive(Parser, Debug)]
#[command(name = "zab-ratelimit", version, after_long_help = after_help(EXAMPLES),
    mut_arg("rate", |a| a.short('L').visible_alias("rate-limit").help_heading(None)),
    mut_arg("quiet", |a| a.help("No progress and no summary: only errors")))]
pub struct Args {
    #[command(flatten)]
    pub rate: Rate,

    /// The expected size, for a percentage and an ETA (K, M, G, T).
    #[arg(short = 's', long, value_name = "BYTES", value_parser = parse_bytes)]
    pub size: Option<u64>,

    /// Seconds between progress updates (or with a unit: 2s, 1min).
    #[arg(short = 'i', long, value_name = "SECONDS", default_value = "1",
          value_parser = parse_interval)]
    pub interval: Duration,

    /// Show the progress line even when stderr is not a terminal (one line
    /// per update).
    #[arg(short = 'f', long)]
    pub force: bool,

    /// Numeric output: one line per update with the whole percentage (with
    /// -s) or the byte count, for dialog --gauge and the like.
    #[arg(short = 'n', long, conflicts_with_all = ["json", "quiet"])]
    pub numeric: bool,

    /// Progress as NDJSON on stderr: a record per update and a last one with
    /// "done":true (fields: bytes, elapsed, rate, avg_rate, size, percent,
    /// eta, done).
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    #[command(flatten)]
    pub quiet: Quiet,

    /// Never use splice(2); copy through a buffer with read(2) and write(2).
    #[arg(short = 'C', long)]
    pub no_splice: bool,

    /// pv's display switches (-p -t -e -r -a -b), accepted and ignored: the
    /// progress line always shows bytes, time, rates and, with -s, the
    /// percentage and ETA.
    #[arg(short = 'p', hide = true)]
    pub pv_progress: bool,
    #[arg(short = 't', hide = true)]
    pub pv_timer: bool,
    #[arg(short = 'e', hide = true)]
    pub pv_eta: bool,
    #[arg(short = 'r', hide = true)]
    pub pv_rate: bool,
    #[arg(short = 'a', hide = true)]
    pub pv_average_rate: bool,
    #[arg(short = 'b', hide = true)]
    pub pv_bytes: bool,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Nothing (-q).
    Nothing,
    /// Only the summary line at the end (stderr is not a terminal).
    Summary,
    /// The progress line redrawn in place, then the summary.
    Redraw,
    /// A progress line per update (-f without a terminal), then the summary.
    Lines,
    /// Whole percentages or byte counts, one per line (-n).
    Numeric,
    /// NDJSON records (--json).
    Json,
}

/// What [`Args`] becomes once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rate: Option<u64>,
    pub size: Option<u64>,
    pub interval: Duration,
    pub show: Show,
    pub splice: bool,
}

impl Args {
    /// The configuration, given whether stderr is a terminal.
    pub fn config(&self, stderr_is_terminal: bool) -> Config {
        let show = if self.quiet.quiet {
            Show::Nothing
        } else if self.json {
            Show::Json
        } else if self.numeric {
            Show::Numeric
        } else if stderr_is_terminal {
            Show::Redraw
        } else if self.force {
            Show::Lines
        } else {
            Show::Summary
        };
        Config {
            rate: self.rate.rate,
            size: self.size,
            interval: self.interval,
            show,
            splice: !self.no_splice,
        }
    }
}

/// Seconds (`0.5`) or a duration with a unit (`2s`, `1min`), as every zab
/// option reads them ([`zab_core::duration`]).
fn parse_interval(s: &str) -> Result<Duration, String> {
    let v = zab_core::duration::parse_seconds(s)?.as_secs_f64();
    if !(0.01..=3600.0).contains(&v) {
        return Err(format!("interval {s:?} must be 0.01 to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    /// docs/man/zab-ratelimit.1 is what `zab-ratelimit --man` prints (scripts/man).
    #[test]
    fn man_page_is_current() {
        zab_core::man::assert_current(
            &Args::command(),
            include_str!("../../docs/man/zab-ratelimit.1"),
        );
    }

    fn config(argv: &[&str], tty: bool) -> Result<Config, String> {
        let mut v = vec!["zab-ratelimit"];
        v.extend_from_slice(argv);
        Ok(Args::try_parse_from(v)
            .map_err(|e| e.to_string())?
            .config(tty))
    }

    #[test]
    fn pv_style_arguments() {
        // syncoid's and pyznap's spellings.
        let c = config(&["-p", "-t", "-e", "-r", "-b", "-s", "1234567"], true).unwrap();
        assert_eq!(
            (c.size, c.show, c.rate),
            (Some(1234567), Show::Redraw, None)
        );
        let c = config(&["-f", "-s", "10G"], false).unwrap();
        assert_eq!((c.size, c.show), (Some(10 << 30), Show::Lines));
        let c = config(&["-q", "-L", "50M"], true).unwrap();
        assert_eq!((c.rate, c.show), (Some(50 << 20), Show::Nothing));
        let c = config(&["--rate-limit", "1k", "-i", "0.5", "-C"], false).unwrap();
        assert_eq!(c.rate, Some(1024));
        assert_eq!(c.interval, Duration::from_millis(500));
        assert_eq!((c.show, c.splice), (Show::Summary, false));
        assert_eq!(config(&["-n"], false).unwrap().show, Show::Numeric);
        assert_eq!(config(&["--json"], true).unwrap().show, Show::Json);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(config(&["-L", "0"], false).is_err());
        assert!(config(&["-L", "fast"], false).is_err());
        assert!(config(&["-i", "0"], false).is_err());
        // The one duration grammar (zab_core::duration); `m` (a month) is
        // refused in a short interval, not read as 30 days.
        assert_eq!(
            config(&["-i", "1min"], false).unwrap().interval,
            Duration::from_secs(60)
        );
        assert_eq!(
            config(&["-i", "0.5s"], false).unwrap().interval,
            Duration::from_millis(500)
        );
        assert!(config(&["-i", "1m"], false)
            .unwrap_err()
            .contains("write min"));
        assert!(config(&["--json", "-q"], false).is_err());
        assert!(config(&["--json", "-n"], false).is_err());
    }
}
