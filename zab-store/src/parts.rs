//! The part size of a multipart upload: S3 wants parts of at least 5 MiB
//! (all but the last) and at most 10,000 of them. The size comes from
//! `zfs send -P`'s estimate, and grows along the upload when the estimate
//! was low (or unknown), so that 10,000 parts always reach far.

/// S3's smallest part (all but the last).
pub const MIN_PART: u64 = 5 << 20;

/// Our smallest part: 8 MiB (fewer requests than 5 MiB, little memory).
pub const FLOOR: u64 = 8 << 20;
const _: () = assert!(FLOOR >= MIN_PART);

/// S3's largest part.
pub const MAX_PART: u64 = 5 << 30;

/// S3's most parts.
pub const MAX_PARTS: u64 = 10_000;

/// The parts planned for the estimate; the rest is the margin for growth.
const PLANNED_PARTS: u64 = 8_000;

/// The size of part `n` (0-based) of a stream estimated at `estimate`
/// bytes (0: unknown): the estimate spread over 8,000 parts (rounded up to
/// a MiB, at least [`FLOOR`]); after part 8,000 it doubles every 250 parts,
/// up to S3's largest part.
pub fn part_size(estimate: u64, n: u64) -> u64 {
    let base = estimate.div_ceil(PLANNED_PARTS).div_ceil(1 << 20) * (1 << 20);
    let base = base.max(FLOOR);
    let doublings = n.saturating_sub(PLANNED_PARTS).div_ceil(250).min(20);
    (base << doublings).min(MAX_PART)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(estimate: u64) -> u64 {
        (0..MAX_PARTS).map(|n| part_size(estimate, n)).sum()
    }

    #[test]
    fn at_least_the_floor_and_enough_parts_for_the_estimate() {
        assert_eq!(part_size(0, 0), FLOOR);
        assert_eq!(part_size(1 << 30, 0), FLOOR);
        // 1 TiB: 8,000 parts of 132 MiB hold it.
        let tib = 1u64 << 40;
        assert!(part_size(tib, 0) * 8_000 >= tib);
        assert_eq!(part_size(tib, 0) % (1 << 20), 0);
        assert!(capacity(tib) > 4 * tib);
    }

    #[test]
    fn parts_grow_when_the_estimate_was_low() {
        // Estimated at nothing, 10,000 parts still hold almost 1 TiB.
        assert!(capacity(0) > 900 << 30);
        assert!(part_size(1 << 40, 9_999) <= MAX_PART);
        let sizes: Vec<u64> = (0..MAX_PARTS).map(|n| part_size(0, n)).collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(sizes[7_999], FLOOR);
        assert_eq!(sizes[8_001], 2 * FLOOR);
    }
}
