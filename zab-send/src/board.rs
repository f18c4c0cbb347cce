//! The transfers' progress on a terminal: one line per running transfer
//! and, with `--jobs N`, a total line below them (as bzfs and `pv -c`
//! show), each fitted to the terminal's width. One thread redraws the
//! board about four times a second through `zab_core::screen`, so that log
//! lines printed meanwhile land above it; a transfer shows after its first
//! second, as before.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zab_core::cli::format_bytes;
use zab_core::progress::{clock, fit_line, labelled, width, Meter, Progress, SEND_WINDOW};
use zab_core::screen;

/// How often the board is redrawn.
const TICK: Duration = Duration::from_millis(250);

/// A transfer is drawn once it has run this long.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// The running transfers, and the board's thread's stop switch.
#[derive(Debug)]
pub struct Board {
    slots: Mutex<Slots>,
    /// Draw the total line (`--jobs` above 1).
    total: bool,
    t0: Instant,
    stop: AtomicBool,
}

#[derive(Debug, Default)]
struct Slots {
    next: u64,
    running: Vec<Slot>,
    /// Transfers ended, and their bytes.
    done: usize,
    done_bytes: u64,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    label: String,
    bytes: Arc<AtomicU64>,
    /// `zfs send -P`'s estimate, 0 while unknown.
    estimate: Arc<AtomicU64>,
    t0: Instant,
    meter: Meter,
}

impl Board {
    /// A board; with `total`, a total line under the transfers.
    pub fn new(total: bool) -> Board {
        Board {
            slots: Mutex::new(Slots::default()),
            total,
            t0: Instant::now(),
            stop: AtomicBool::new(false),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shows a transfer under `label` whose byte count and estimate are
    /// kept in `bytes` and `estimate`; [`Board::remove`] takes it away.
    pub fn add(&self, label: String, bytes: Arc<AtomicU64>, estimate: Arc<AtomicU64>) -> u64 {
        let mut s = self.slots();
        s.next += 1;
        let id = s.next;
        s.running.push(Slot {
            id,
            label,
            bytes,
            estimate,
            t0: Instant::now(),
            meter: Meter::new(None, SEND_WINDOW, TICK),
        });
        id
    }

    /// The transfer `id` ended.
    pub fn remove(&self, id: u64) {
        let mut s = self.slots();
        if let Some(i) = s.running.iter().position(|x| x.id == id) {
            let slot = s.running.remove(i);
            s.done += 1;
            s.done_bytes += slot.bytes.load(Ordering::Relaxed);
        }
    }

    /// The board's lines now.
    fn lines(&self, width: Option<usize>) -> Vec<String> {
        let now = Instant::now();
        let mut s = self.slots();
        let mut shown = Vec::new();
        for slot in &mut s.running {
            let elapsed = now.duration_since(slot.t0);
            slot.meter
                .set_size(Some(slot.estimate.load(Ordering::Relaxed)));
            let p = slot
                .meter
                .sample(elapsed, slot.bytes.load(Ordering::Relaxed));
            if elapsed >= SHOW_AFTER {
                shown.push((slot.label.clone(), p));
            }
        }
        let total = self.total.then(|| Total {
            running: s.running.len(),
            done: s.done,
            bytes: s.done_bytes
                + s.running
                    .iter()
                    .map(|x| x.bytes.load(Ordering::Relaxed))
                    .sum::<u64>(),
            elapsed: now.duration_since(self.t0),
        });
        board_lines(&shown, total, width)
    }

    /// Redraws the board until [`Board::stop`], then erases it.
    pub fn run(&self) {
        loop {
            std::thread::sleep(TICK);
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            screen::draw(&self.lines(width()));
        }
        screen::draw(&[]);
    }

    /// Ends [`Board::run`].
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The whole run so far, for the total line.
#[derive(Debug, Clone, Copy)]
struct Total {
    running: usize,
    done: usize,
    bytes: u64,
    elapsed: Duration,
}

/// The lines of the board: each shown transfer's, then the total (only
/// when a transfer is shown). Every line fits `width`.
fn board_lines(
    shown: &[(String, Progress)],
    total: Option<Total>,
    width: Option<usize>,
) -> Vec<String> {
    let mut lines: Vec<String> = shown
        .iter()
        .map(|(label, p)| labelled(label, p, width))
        .collect();
    let rate: f64 = shown.iter().map(|(_, p)| p.window_rate).sum();
    if let (Some(t), false) = (total, shown.is_empty()) {
        let line = format!(
            "total: {} running, {} done, {} {} [{}/s]",
            t.running,
            t.done,
            format_bytes(t.bytes),
            clock(t.elapsed),
            format_bytes(rate.round() as u64)
        );
        lines.push(fit_line(&line, width));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(bytes: u64, rate: f64) -> Progress {
        Progress {
            bytes,
            elapsed: Duration::from_secs(12),
            rate,
            window_rate: rate,
            avg_rate: rate,
            size: Some(bytes * 2),
            percent: Some(50.0),
            eta: Some(Duration::from_secs(12)),
        }
    }

    #[test]
    fn one_line_per_transfer_and_a_total_all_within_the_width() {
        let shown = vec![
            (
                "tank/a/very/long/name/indeed@zab-20241231235959".to_string(),
                progress(1 << 30, 1e8),
            ),
            (
                "tank/b@zab-20241231235959".to_string(),
                progress(1 << 20, 1e6),
            ),
        ];
        let total = Total {
            running: 3,
            done: 4,
            bytes: 5 << 30,
            elapsed: Duration::from_secs(75),
        };
        let lines = board_lines(&shown, Some(total), Some(80));
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 79), "{lines:?}");
        assert!(
            lines[0].starts_with("tank/a/very/") && lines[0].contains('…'),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("tank/b@zab-20241231235959: 1.00 MiB 0:00:12"),
            "{lines:?}"
        );
        assert_eq!(
            lines[2],
            "total: 3 running, 4 done, 5.00 GiB 0:01:15 [96.3 MiB/s]"
        );
        // 45 columns: the same lines, cut to 44.
        let narrow = board_lines(&shown, Some(total), Some(45));
        assert!(narrow.iter().all(|l| l.chars().count() <= 44), "{narrow:?}");
        // One job: no total; nothing shown yet: no lines at all.
        assert_eq!(board_lines(&shown, None, Some(80)).len(), 2);
        assert!(board_lines(&[], Some(total), Some(80)).is_empty());
    }

    #[test]
    fn a_transfer_shows_after_its_first_second_and_leaves_when_removed() {
        let board = Board::new(true);
        let bytes = Arc::new(AtomicU64::new(10));
        let id = board.add("t/a@s".into(), bytes.clone(), Arc::new(AtomicU64::new(0)));
        assert!(board.lines(None).is_empty(), "not before its first second");
        board.slots().running[0].t0 -= SHOW_AFTER;
        let lines = board.lines(None);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("t/a@s: 10 B "), "{lines:?}");
        assert!(
            lines[1].starts_with("total: 1 running, 0 done, 10 B "),
            "{lines:?}"
        );
        bytes.store(30, Ordering::Relaxed);
        board.remove(id);
        assert!(board.lines(None).is_empty());
        let s = board.slots();
        assert_eq!((s.done, s.done_bytes), (1, 30));
    }
}
