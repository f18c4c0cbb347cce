//! The token bucket that limits the rate: pure, with `now` passed in.
//!
//! Tokens (bytes) flow in at `rate` per second up to `burst`; a transfer
//! spends them. The bucket starts empty, so N bytes take N / rate seconds
//! from the start, exactly, however the sleeps fall: time is measured from
//! one fixed start, and a late wake-up finds the tokens it overslept waiting
//! for it (up to the cap). The cap is what keeps a stall (a producer that
//! paused, a consumer that blocked) from being followed by an unbounded
//! burst: after any pause, at most `burst` bytes go at full speed (pv caps
//! its burst the same way, `src/pv/loop.c`).
//!
//! [`TokenBucket::for_rate`] picks the two sizes from the rate: transfers of
//! about 1/100 s of data (512 B to 128 KiB, but never more than 1/10 s of
//! data, so a tiny rate such as 1 byte per second still moves a byte every
//! second rather than 512 bytes every 512 s), and a burst of 1/10 s of data,
//! which is also how late a wake-up may be before tokens are lost.

use std::time::Duration;

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Pass up to this many bytes (at least one).
    Go(u64),
    /// Sleep this long, then ask again.
    Wait(Duration),
}

/// A token bucket for bytes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    quantum: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A bucket for `rate` bytes per second (at least 1), starting empty at
    /// `now`, that grants `quantum` bytes at least and holds `burst` at
    /// most.
    pub fn new(rate: u64, quantum: u64, burst: u64, now: Duration) -> Self {
        let quantum = quantum.max(1) as f64;
        TokenBucket {
            rate: rate.max(1) as f64,
            burst: (burst as f64).max(quantum),
            quantum,
            tokens: 0.0,
            last: now,
        }
    }

    /// A bucket with the sizes chosen for `rate`: see the module docs.
    pub fn for_rate(rate: u64, now: Duration) -> Self {
        let quantum = (rate / 100).clamp(512, 128 << 10).min((rate / 10).max(1));
        let burst = (rate / 10).max(2 * quantum);
        Self::new(rate, quantum, burst, now)
    }

    /// The most bytes that can go at full speed after a pause.
    #[cfg(test)]
    pub fn burst(&self) -> u64 {
        self.burst as u64
    }

    fn refill(&mut self, now: Duration) {
        if now > self.last {
            let dt = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.last = now;
        }
    }

    /// How much may pass at `now`, at most `want` bytes: everything the
    /// bucket holds once it holds a quantum (or `want`, if smaller);
    /// otherwise how long until it does.
    pub fn grant(&mut self, now: Duration, want: u64) -> Grant {
        self.refill(now);
        let need = self.quantum.min(want.max(1) as f64);
        // A millionth of a byte short is rounding, not a reason to sleep.
        if self.tokens >= need - 1e-6 {
            Grant::Go((self.tokens.max(need) as u64).clamp(1, want.max(1)))
        } else {
            // Rounded up to whole nanoseconds: never a sleep of zero that
            // would find the bucket just as short again.
            let nanos = ((need - self.tokens) / self.rate * 1e9).ceil();
            Grant::Wait(Duration::from_nanos((nanos as u64).max(1)))
        }
    }

    /// Records that `n` bytes passed (at most what was granted).
    pub fn spend(&mut self, n: u64) {
        self.tokens -= n as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A transfer loop on a fake clock: each transfer moves what was granted
    /// (at most `chunk`, and only what the source offers) and costs
    /// `cost`; each sleep oversleeps by `late(i)`. Returns (bytes, seconds)
    /// once `total` bytes passed, checking at every step that no more than
    /// rate × time + burst went.
    fn simulate(
        rate: u64,
        total: u64,
        chunk: u64,
        cost: Duration,
        late: impl Fn(u64) -> Duration,
    ) -> (u64, f64) {
        let mut b = TokenBucket::for_rate(rate, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut passed = 0;
        let mut i = 0;
        while passed < total {
            i += 1;
            match b.grant(now, chunk.min(total - passed)) {
                Grant::Go(n) => {
                    assert!(n >= 1 && n <= chunk);
                    b.spend(n);
                    passed += n;
                    now += cost;
                }
                Grant::Wait(d) => now += d + late(i),
            }
            let allowed = rate as f64 * now.as_secs_f64() + b.burst() as f64;
            assert!(
                passed as f64 <= allowed + 1.0,
                "{passed} > {allowed} at {now:?}"
            );
        }
        (passed, now.as_secs_f64())
    }

    fn assert_close(rate: u64, (bytes, secs): (u64, f64), tolerance: f64) {
        let achieved = bytes as f64 / secs;
        let err = (achieved - rate as f64).abs() / rate as f64;
        assert!(
            err <= tolerance,
            "rate {rate}: {achieved:.0} B/s over {secs:.3} s, off by {:.4} %",
            err * 100.0
        );
    }

    #[test]
    fn the_rate_is_exact_from_an_empty_start() {
        for rate in [MIB, 10 * MIB, 100 * MIB, 500 * MIB] {
            let run = simulate(rate, rate * 6, 128 << 10, Duration::ZERO, |_| {
                Duration::ZERO
            });
            assert_close(rate, run, 1e-6);
        }
    }

    #[test]
    fn late_wakeups_and_slow_transfers_do_not_lower_the_rate() {
        // Wake-ups up to 5 ms late, transfers that take 20 µs: the rate stays
        // within 0.1 %, because the bucket keeps the tokens overslept.
        for rate in [MIB, 10 * MIB, 100 * MIB, 500 * MIB] {
            let late = |i: u64| Duration::from_micros(i * 7919 % 5000);
            let run = simulate(rate, rate * 6, 1 << 20, Duration::from_micros(20), late);
            assert_close(rate, run, 1e-3);
        }
    }

    #[test]
    fn small_reads_from_the_source_keep_the_rate() {
        // A source that offers 1 KiB at a time (below the quantum).
        let rate = 10 * MIB;
        let run = simulate(rate, rate * 5, 1 << 10, Duration::ZERO, |_| Duration::ZERO);
        assert_close(rate, run, 1e-3);
    }

    #[test]
    fn it_starts_empty() {
        let mut b = TokenBucket::new(1000, 100, 500, Duration::ZERO);
        assert_eq!(
            b.grant(Duration::ZERO, 10_000),
            Grant::Wait(Duration::from_millis(100))
        );
        assert_eq!(b.grant(Duration::from_millis(100), 10_000), Grant::Go(100));
        // A small want needs only that much.
        let mut b = TokenBucket::new(1000, 100, 500, Duration::ZERO);
        assert_eq!(b.grant(Duration::from_millis(10), 10), Grant::Go(10));
    }

    #[test]
    fn a_stall_is_followed_by_at_most_one_burst() {
        let mut b = TokenBucket::new(1000, 100, 500, Duration::ZERO);
        // Nothing moved for an hour: only the burst is available.
        let hour = Duration::from_secs(3600);
        assert_eq!(b.grant(hour, u64::MAX), Grant::Go(500));
        b.spend(500);
        // Then the rate again.
        assert_eq!(
            b.grant(hour, u64::MAX),
            Grant::Wait(Duration::from_millis(100))
        );
        assert_eq!(
            b.grant(hour + Duration::from_millis(250), u64::MAX),
            Grant::Go(250)
        );
    }

    #[test]
    fn sizes_follow_the_rate() {
        let b = TokenBucket::for_rate(MIB, Duration::ZERO);
        assert_eq!((b.quantum as u64, b.burst()), (10485, 104857));
        let b = TokenBucket::for_rate(500 * MIB, Duration::ZERO);
        assert_eq!((b.quantum as u64, b.burst()), (128 << 10, 50 * MIB));
        // Slow rates: 512-byte transfers, and a burst of two of them.
        let b = TokenBucket::for_rate(10_000, Duration::ZERO);
        assert_eq!((b.quantum as u64, b.burst()), (512, 1024));
        // Slower still: a tenth of a second's worth (at least a byte).
        let b = TokenBucket::for_rate(1000, Duration::ZERO);
        assert_eq!((b.quantum as u64, b.burst()), (100, 200));
        let b = TokenBucket::for_rate(1, Duration::ZERO);
        assert_eq!((b.quantum as u64, b.burst()), (1, 2));
    }

    #[test]
    fn tiny_rates_make_progress_at_least_every_second() {
        // -L 1 used to wait 512 s (one 512-byte quantum) for its first byte.
        for rate in [1, 2, 10, 100, 1000, 5000] {
            let mut b = TokenBucket::for_rate(rate, Duration::ZERO);
            let Grant::Wait(d) = b.grant(Duration::ZERO, 128 << 10) else {
                panic!("rate {rate}: the bucket starts empty");
            };
            assert!(d <= Duration::from_secs(1), "rate {rate}: first wait {d:?}");
            assert!(matches!(b.grant(d, 128 << 10), Grant::Go(n) if n >= 1));
            // And the rate is still exact: 5 s worth takes 5 s.
            let (bytes, secs) = simulate(rate, rate * 5, 128 << 10, Duration::ZERO, |_| {
                Duration::ZERO
            });
            assert_eq!(bytes, rate * 5);
            assert!((secs - 5.0).abs() < 1e-6, "rate {rate}: {secs} s");
        }
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(1000, 100, 500, Duration::from_secs(10));
        assert!(matches!(
            b.grant(Duration::from_secs(5), 100),
            Grant::Wait(_)
        ));
        assert_eq!(b.grant(Duration::from_millis(10_100), 100), Grant::Go(100));
    }
}
