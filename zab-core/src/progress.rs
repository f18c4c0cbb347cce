//! The one progress meter of the byte streams (zab-ratelimit, zab-send):
//! pure, with `now` passed in as the time since the start.
//!
//! A [`Meter`] takes the byte count at each display tick and keeps the
//! samples of the last window (zab-ratelimit: [`WINDOW`], zab-send:
//! [`SEND_WINDOW`]). From them come the current rate (since the previous
//! tick), the rate over the window, the average rate (since the start) and,
//! with an expected size, the percentage and the ETA. The ETA divides what
//! is left by the rate over the window, so it follows a transfer that speeds
//! up or slows down without jumping at every tick (pv's
//! `--average-rate-window`).
//!
//! The renderings: zab-ratelimit's [`line`], [`summary`], [`numeric`] and
//! its `--json` [`Record`]; zab-send's [`labelled`] line, one per transfer.
//!
//! zab-ratelimit's `--json` writes one [`Record`] per tick and a last one
//! with `done: true`, one per line (NDJSON), on stderr:
//!
//! ```text
//! {"kind":"progress","bytes":52428800,"elapsed":1.0,"rate":52428800,"avg_rate":52428800,"size":1073741824,"percent":4.9,"eta":19.48,"done":false}
//! ```
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `bytes` | integer | bytes passed so far |
//! | `elapsed` | number | seconds since the start |
//! | `rate` | integer | bytes per second since the previous record |
//! | `avg_rate` | integer | bytes per second since the start |
//! | `size` | integer or null | the expected size (`-s`) |
//! | `percent` | number or null | `bytes` / `size` × 100 (may pass 100 if `size` was low) |
//! | `eta` | number or null | seconds left at the rate of the last 10 s; null without `-s` or while nothing moves |
//! | `done` | bool | true on the last record, written once every byte passed |

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::cli::format_bytes;

/// How far back the ETA's rate looks in zab-ratelimit.
pub const WINDOW: Duration = Duration::from_secs(10);

/// How far back zab-send's rate and ETA look.
pub const SEND_WINDOW: Duration = Duration::from_secs(5);

/// Where the transfer stands at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Bytes per second since the previous sample.
    pub rate: f64,
    /// Bytes per second over the meter's window (what the ETA uses).
    pub window_rate: f64,
    /// Bytes per second since the start.
    pub avg_rate: f64,
    pub size: Option<u64>,
    pub percent: Option<f64>,
    pub eta: Option<Duration>,
}

/// Samples of the byte count, for rates over a window.
#[derive(Debug)]
pub struct Meter {
    size: Option<u64>,
    window: Duration,
    /// (time since the start, bytes), oldest first; the first one is at or
    /// before the start of the window.
    samples: VecDeque<(Duration, u64)>,
}

impl Meter {
    /// A meter for a transfer of `size` bytes (if known) that started at
    /// time zero with no bytes, sampled about every `interval`.
    pub fn new(size: Option<u64>, window: Duration, interval: Duration) -> Self {
        let per_window = window.as_secs_f64() / interval.as_secs_f64().max(1e-3);
        let mut samples = VecDeque::with_capacity(per_window.ceil() as usize + 2);
        samples.push_back((Duration::ZERO, 0));
        Meter {
            size,
            window,
            samples,
        }
    }

    /// The expected size, once it is known (zab-send learns it from
    /// `zfs send -P` after the transfer started); None or 0: unknown.
    pub fn set_size(&mut self, size: Option<u64>) {
        self.size = size.filter(|&s| s > 0);
    }

    /// Records `bytes` passed at `elapsed` and says where that stands.
    pub fn sample(&mut self, elapsed: Duration, bytes: u64) -> Progress {
        let &(prev_t, prev_b) = self.samples.back().unwrap_or(&(Duration::ZERO, 0));
        let rate = per_sec(bytes.saturating_sub(prev_b), elapsed.saturating_sub(prev_t));
        if elapsed > prev_t {
            self.samples.push_back((elapsed, bytes));
        }
        // Keep one sample at or before the window's start.
        let start = elapsed.saturating_sub(self.window);
        while self.samples.len() > 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
        let &(t0, b0) = self.samples.front().unwrap_or(&(Duration::ZERO, 0));
        let window_rate = per_sec(bytes.saturating_sub(b0), elapsed.saturating_sub(t0));
        let percent = self.size.map(|s| {
            if s == 0 {
                100.0
            } else {
                bytes as f64 * 100.0 / s as f64
            }
        });
        let eta = self.size.and_then(|s| {
            let left = s.saturating_sub(bytes);
            if left == 0 {
                Some(Duration::ZERO)
            } else if window_rate > 0.0 {
                Some(Duration::from_secs_f64(left as f64 / window_rate))
            } else {
                None
            }
        });
        Progress {
            bytes,
            elapsed,
            rate,
            window_rate,
            avg_rate: per_sec(bytes, elapsed),
            size: self.size,
            percent,
            eta,
        }
    }
}

fn per_sec(bytes: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        bytes as f64 / d.as_secs_f64()
    }
}

/// `H:MM:SS`, as pv shows times.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn rate(r: f64) -> String {
    format!("{}/s", format_bytes(r.round() as u64))
}

/// The progress line, redrawn in place on a terminal:
/// `1.23 GiB 0:00:12 [98.2 MiB/s] [avg 101 MiB/s] 45.0% ETA 0:00:10`.
pub fn line(p: &Progress) -> String {
    let mut s = format!(
        "{} {} [{}] [avg {}]",
        format_bytes(p.bytes),
        clock(p.elapsed),
        rate(p.rate),
        rate(p.avg_rate)
    );
    if let Some(pc) = p.percent {
        s.push_str(&format!(" {pc:.1}%"));
        match p.eta {
            Some(eta) => s.push_str(&format!(" ETA {}", clock(eta))),
            None => s.push_str(" ETA -:--:--"),
        }
    }
    s
}

/// The summary line at the end:
/// `1.00 GiB in 0:00:20 (20.48 s), 50.0 MiB/s on average`.
pub fn summary(p: &Progress) -> String {
    format!(
        "{} in {} ({:.2} s), {} on average",
        format_bytes(p.bytes),
        clock(p.elapsed),
        p.elapsed.as_secs_f64(),
        rate(p.avg_rate)
    )
}

/// `-n`: the whole percentage with `-s`, else the byte count (pv's numeric
/// mode).
pub fn numeric(p: &Progress) -> String {
    match p.percent {
        Some(pc) => format!("{}", pc.floor() as u64),
        None => p.bytes.to_string(),
    }
}

/// zab-send's line, one per transfer, under a label, fitted to `width`
/// ([`fit`]): `pool/b/data@snap: 1.23 GiB 0:00:12 [98.2 MiB/s] 45.0% ETA
/// 0:00:10`. The rate is the one over the window; the percentage stops at
/// 100 (the size is `zfs send -P`'s estimate).
pub fn labelled(label: &str, p: &Progress, width: Option<usize>) -> String {
    let mut s = format!(
        "{} {} [{}]",
        format_bytes(p.bytes),
        clock(p.elapsed),
        rate(p.window_rate)
    );
    if let Some(pc) = p.percent.filter(|_| p.size.is_some_and(|s| s > 0)) {
        s.push_str(&format!(" {:.1}%", pc.min(100.0)));
        match p.eta {
            Some(eta) => s.push_str(&format!(" ETA {}", clock(eta))),
            None => s.push_str(" ETA -:--:--"),
        }
    }
    fit(label, &s, width)
}

/// The width that progress lines must fit in: `COLUMNS` when it is a
/// positive number, else the width of the terminal on stderr; `None` when
/// stderr is no terminal (lines written to a file are not cut).
pub fn width() -> Option<usize> {
    choose_width(std::env::var("COLUMNS").ok().as_deref(), || {
        terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0))
    })
}

/// [`width`], from `COLUMNS` and the terminal's width (asked only when
/// `COLUMNS` is no positive number).
fn choose_width(columns: Option<&str>, terminal: impl FnOnce() -> Option<usize>) -> Option<usize> {
    match columns.and_then(|c| c.trim().parse::<usize>().ok()) {
        Some(c) if c > 0 => Some(c),
        _ => terminal(),
    }
}

/// The shortest a label is cut to before the rest of the line is cut.
const MIN_LABEL: usize = 12;

/// `label: rest` in at most `width - 1` columns, so that it never wraps
/// (the last column stays free): the label loses its middle first
/// (`tank/a…ta@zab-2024`), down to [`MIN_LABEL`] characters, then the line
/// loses its end.
pub fn fit(label: &str, rest: &str, width: Option<usize>) -> String {
    let full = format!("{label}: {rest}");
    let Some(room) = width.map(|w| w.saturating_sub(1)) else {
        return full;
    };
    let n = full.chars().count();
    if n <= room {
        return full;
    }
    let lc = label.chars().count();
    let keep = lc.saturating_sub(n - room + 1).max(MIN_LABEL);
    let label = match keep < lc {
        true => middle(label, keep),
        false => label.to_string(),
    };
    fit_line(&format!("{label}: {rest}"), width)
}

/// `line` in at most `width - 1` columns: its end cut.
pub fn fit_line(line: &str, width: Option<usize>) -> String {
    match width {
        Some(w) => line.chars().take(w.saturating_sub(1)).collect(),
        None => line.to_string(),
    }
}

/// The first and last of `keep` characters of `s`, with `…` between.
fn middle(s: &str, keep: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// One `--json` record: the wire format is in the module docs.
#[derive(Debug, Serialize, PartialEq)]
pub struct Record {
    pub kind: &'static str,
    pub bytes: u64,
    pub elapsed: f64,
    pub rate: u64,
    pub avg_rate: u64,
    pub size: Option<u64>,
    pub percent: Option<f64>,
    pub eta: Option<f64>,
    pub done: bool,
}

impl Record {
    pub fn new(p: &Progress, done: bool) -> Self {
        // Milliseconds and tenths of a percent are all anyone can use.
        let round = |x: f64, per_unit: f64| (x * per_unit).round() / per_unit;
        Record {
            kind: "progress",
            bytes: p.bytes,
            elapsed: round(p.elapsed.as_secs_f64(), 1e3),
            rate: p.rate.round() as u64,
            avg_rate: p.avg_rate.round() as u64,
            size: p.size,
            percent: p.percent.map(|x| round(x, 10.0)),
            eta: p.eta.map(|e| round(e.as_secs_f64(), 1e3)),
            done,
        }
    }

    /// The record as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn rates_at_a_steady_pace() {
        let mut m = Meter::new(Some(100 * MIB), WINDOW, secs(1.0));
        let mut p = m.sample(secs(1.0), 5 * MIB);
        for t in 2..=4 {
            p = m.sample(secs(t as f64), t * 5 * MIB);
        }
        assert_eq!(p.bytes, 20 * MIB);
        assert_eq!(p.rate, (5 * MIB) as f64);
        assert_eq!(p.avg_rate, (5 * MIB) as f64);
        assert_eq!(p.percent, Some(20.0));
        assert_eq!(p.eta, Some(secs(16.0)));
    }

    #[test]
    fn eta_follows_the_last_ten_seconds() {
        // 20 s at 1 MiB/s, then 10 s at 4 MiB/s: the ETA uses 4 MiB/s, the
        // average is still 2 MiB/s.
        let mut m = Meter::new(Some(200 * MIB), WINDOW, secs(1.0));
        let mut bytes = 0;
        let mut p = None;
        for t in 1..=30u64 {
            bytes += if t <= 20 { MIB } else { 4 * MIB };
            p = Some(m.sample(secs(t as f64), bytes));
        }
        let p = p.unwrap();
        assert_eq!(p.bytes, 60 * MIB);
        assert_eq!(p.avg_rate, (2 * MIB) as f64);
        assert_eq!(p.eta, Some(secs(35.0))); // 140 MiB at 4 MiB/s
                                             // The window keeps about ten seconds of samples, not all thirty.
        assert!(m.samples.len() <= 12, "{}", m.samples.len());
    }

    #[test]
    fn eta_before_the_window_is_full_uses_what_there_is() {
        let mut m = Meter::new(Some(10 * MIB), WINDOW, secs(0.5));
        let p = m.sample(secs(0.5), MIB);
        assert_eq!(p.rate, (2 * MIB) as f64);
        assert_eq!(p.eta, Some(secs(4.5)));
    }

    #[test]
    fn a_stall_shows_zero_rate_and_the_eta_grows() {
        let mut m = Meter::new(Some(100 * MIB), WINDOW, secs(1.0));
        m.sample(secs(1.0), 10 * MIB);
        let p = m.sample(secs(2.0), 10 * MIB);
        assert_eq!(p.rate, 0.0);
        assert_eq!(p.eta, Some(secs(18.0))); // 90 MiB at 5 MiB/s over 2 s
                                             // Nothing at all: no ETA.
        let mut m = Meter::new(Some(100), WINDOW, secs(1.0));
        assert_eq!(m.sample(secs(1.0), 0).eta, None);
    }

    #[test]
    fn done_and_past_the_expected_size() {
        let mut m = Meter::new(Some(10), WINDOW, secs(1.0));
        let p = m.sample(secs(1.0), 10);
        assert_eq!((p.percent, p.eta), (Some(100.0), Some(Duration::ZERO)));
        let p = m.sample(secs(2.0), 15);
        assert_eq!((p.percent, p.eta), (Some(150.0), Some(Duration::ZERO)));
        let mut m = Meter::new(Some(0), WINDOW, secs(1.0));
        assert_eq!(m.sample(secs(1.0), 0).percent, Some(100.0));
        let mut m = Meter::new(None, WINDOW, secs(1.0));
        let p = m.sample(secs(1.0), 10);
        assert_eq!((p.percent, p.eta), (None, None));
    }

    #[test]
    fn two_samples_at_the_same_time_do_not_divide_by_zero() {
        let mut m = Meter::new(Some(100), WINDOW, secs(1.0));
        let p = m.sample(Duration::ZERO, 0);
        assert_eq!((p.rate, p.avg_rate, p.eta), (0.0, 0.0, None));
        m.sample(secs(1.0), 50);
        let p = m.sample(secs(1.0), 50);
        assert_eq!(p.rate, 0.0);
        assert_eq!(p.avg_rate, 50.0);
    }

    fn progress() -> Progress {
        Progress {
            bytes: 1_320_702_444,
            elapsed: secs(12.4),
            rate: 102_970_000.0,
            window_rate: 104_000_000.0,
            avg_rate: 106_000_000.0,
            size: Some(2_934_894_320),
            percent: Some(45.0),
            eta: Some(secs(10.2)),
        }
    }

    #[test]
    fn the_line_for_people() {
        assert_eq!(
            line(&progress()),
            "1.23 GiB 0:00:12 [98.2 MiB/s] [avg 101 MiB/s] 45.0% ETA 0:00:10"
        );
        let p = Progress {
            size: None,
            percent: None,
            eta: None,
            ..progress()
        };
        assert_eq!(line(&p), "1.23 GiB 0:00:12 [98.2 MiB/s] [avg 101 MiB/s]");
        let p = Progress {
            eta: None,
            ..progress()
        };
        assert!(line(&p).ends_with(" 45.0% ETA -:--:--"));
        assert_eq!(
            summary(&progress()),
            "1.23 GiB in 0:00:12 (12.40 s), 101 MiB/s on average"
        );
        assert_eq!(clock(Duration::from_secs(3 * 3600 + 62)), "3:01:02");
    }

    #[test]
    fn numeric_mode() {
        assert_eq!(numeric(&progress()), "45");
        let p = Progress {
            percent: None,
            ..progress()
        };
        assert_eq!(numeric(&p), "1320702444");
    }

    /// The example line in the module docs (and in docs/records.md) is
    /// what a record looks like.
    #[test]
    fn json_record_matches_the_docs() {
        let mut m = Meter::new(Some(1 << 30), WINDOW, secs(1.0));
        let p = m.sample(secs(1.0), 50 * MIB);
        let line = Record::new(&p, false).to_line();
        let doc = include_str!("progress.rs");
        assert!(doc.contains(&format!("//! {line}\n")), "{line}");
        let records = include_str!("../../docs/records.md");
        assert!(records.contains(&format!("    {line}\n")), "{line}");
        let p = m.sample(secs(1.0), 50 * MIB);
        let done = Record::new(&p, true).to_line();
        assert!(done.ends_with(r#""done":true}"#), "{done}");
        let none = Record::new(
            &Meter::new(None, WINDOW, secs(1.0)).sample(secs(0.25), 1),
            false,
        );
        assert_eq!(
            none.to_line(),
            r#"{"kind":"progress","bytes":1,"elapsed":0.25,"rate":4,"avg_rate":4,"size":null,"percent":null,"eta":null,"done":false}"#
        );
    }

    /// zab-send's expected lines (its stream.rs tests), from a meter fed
    /// the way zab-send feeds it: a tick every 250 ms, the estimate once
    /// `zfs send -P` said it.
    #[test]
    fn zab_send_lines_with_and_without_an_estimate() {
        let mut m = Meter::new(None, SEND_WINDOW, secs(0.25));
        m.set_size(Some(0)); // no estimate yet
                             // Nothing for 2 s, then 64 MiB/s: 512 MiB at 10 s.
        let mut p = None;
        for tick in 1..=40u64 {
            let t = tick as f64 / 4.0;
            let bytes = ((t - 2.0).max(0.0) * (64 * MIB) as f64) as u64;
            if tick == 20 {
                m.set_size(Some(1 << 30));
            }
            p = Some(m.sample(secs(t), bytes));
        }
        let p = p.unwrap();
        assert_eq!(p.window_rate, (64 * MIB) as f64);
        assert_eq!(
            labelled("t/a@s", &p, None),
            "t/a@s: 512 MiB 0:00:10 [64.0 MiB/s] 50.0% ETA 0:00:08"
        );
        // No estimate, and nothing moved over the window.
        let mut m = Meter::new(None, SEND_WINDOW, secs(0.25));
        let mut p = None;
        for tick in 1..=40u64 {
            let t = tick as f64 / 4.0;
            p = Some(m.sample(secs(t), (512 * MIB).min(tick * 64 * MIB)));
        }
        assert_eq!(
            labelled("t/a@s", &p.unwrap(), None),
            "t/a@s: 512 MiB 0:00:10 [0 B/s]"
        );
    }

    /// zab-send's RateWindow test: the rate over the last five seconds.
    #[test]
    fn zab_send_rate_over_the_window() {
        let mut m = Meter::new(None, SEND_WINDOW, secs(1.0));
        let mut p = m.sample(Duration::ZERO, 0);
        assert_eq!(p.window_rate, 0.0);
        for t in 0..=20u64 {
            // 1 MB/s for 10 s, then 3 MB/s.
            let b = if t <= 10 {
                t * 1_000_000
            } else {
                10_000_000 + (t - 10) * 3_000_000
            };
            p = m.sample(secs(t as f64), b);
        }
        assert_eq!(p.window_rate, 3_000_000.0);
        assert_eq!(p.avg_rate, 2_000_000.0);
    }

    #[test]
    fn the_labelled_line_stops_at_100_percent() {
        let p = Progress {
            bytes: 1500,
            size: Some(1000),
            percent: Some(150.0),
            eta: Some(Duration::ZERO),
            ..progress()
        };
        assert_eq!(
            labelled("x", &p, None),
            "x: 1.46 KiB 0:00:12 [99.2 MiB/s] 100.0% ETA 0:00:00"
        );
        let p = Progress { eta: None, ..p };
        assert!(labelled("x", &p, None).ends_with(" 100.0% ETA -:--:--"));
    }

    #[test]
    fn lines_fit_the_width_by_cutting_the_label_in_the_middle() {
        let rest = "1.23 GiB 0:00:12 [98.2 MiB/s] 45.0% ETA 0:00:10";
        let label = "tank/very/long/dataset/name@zab-20241231235959";
        // Wide enough: unchanged. No width (not a terminal): unchanged.
        let whole = format!("{label}: {rest}");
        assert_eq!(fit(label, rest, Some(200)), whole);
        assert_eq!(fit(label, rest, None), whole);
        // 80 columns: 79 characters, the label's middle gone, the rest whole.
        let l = fit(label, rest, Some(80));
        assert_eq!(l.chars().count(), 79, "{l}");
        assert!(l.starts_with("tank/very/lo") && l.contains('…'), "{l}");
        assert!(l.ends_with(&format!("231235959: {rest}")), "{l}");
        // 45 columns: the label at its shortest, then the end cut.
        let l = fit(label, rest, Some(45));
        assert_eq!(l.chars().count(), 44, "{l}");
        assert!(l.starts_with("tank/v…235959: 1.23 GiB"), "{l}");
        // Tiny terminals never get a longer line than they have room for.
        for w in [0, 1, 2, 10] {
            assert!(fit(label, rest, Some(w)).chars().count() <= w.saturating_sub(1));
        }
        assert_eq!(fit_line("abcdef", Some(4)), "abc");
        assert_eq!(middle("abcdefgh", 4), "ab…gh");
        assert_eq!(middle("abcdefgh", 5), "abc…gh");
    }

    #[test]
    fn columns_sets_the_width_else_the_terminal() {
        assert_eq!(choose_width(Some("45"), || Some(100)), Some(45));
        assert_eq!(choose_width(Some(" 45 "), || None), Some(45));
        for bad in ["wide", "0", "-3", ""] {
            assert_eq!(choose_width(Some(bad), || Some(100)), Some(100), "{bad}");
        }
        assert_eq!(choose_width(None, || Some(100)), Some(100));
        assert_eq!(choose_width(None, || None), None);
    }
}
