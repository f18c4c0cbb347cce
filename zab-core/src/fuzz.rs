//! What the property-based tests of zab-core share (tests only): a fixed
//! seed and a bounded count, so every run tries the same cases quickly;
//! inputs that look like real ones with random damage; and the check that
//! an error is one plain line.
//!
//! Each parser of outside input (records, `zfs` listings, schedules,
//! snapshot formats, sizes, durations, names) has properties at the bottom
//! of its own module: it never panics, and every rejection is one line that
//! says something, without serde's or Rust's words.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// `cases` cases from a fixed seed, with no file of failures written: the
/// same cases on every run, in every checkout.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(15),
        failure_persistence: None,
        ..Config::default()
    }
}

/// An error message about `input` fit for users: one line, not empty, no
/// Rust or serde jargon (unless it quotes the input that has it).
pub fn assert_plain_line(message: &str, input: &str) {
    assert!(!message.trim().is_empty(), "an empty message");
    assert!(
        !message.contains(['\n', '\r']),
        "more than one line: {message:?}"
    );
    for jargon in [
        "`",
        "u64",
        "i64",
        "usize",
        "variant",
        "expected value",
        "ParseIntError",
        "invalid digit",
    ] {
        assert!(
            !message.contains(jargon) || input.contains(jargon),
            "{jargon:?} in the message: {message:?}"
        );
    }
}

/// Characters that matter to the parsers: separators, signs, digits, the
/// units, quotes, braces, and a few that do not belong at all.
const CHARS: &[char] = &[
    '\t', '\n', ' ', '@', '#', '/', '-', '+', '.', ',', ':', '%', '{', '}', '"', '\\', '0', '1',
    '9', 'a', 'd', 'm', 's', 'y', 'Y', 'é', '\u{0}', '\u{1b}',
];

/// A short string of [`CHARS`] and any other characters.
pub fn noise() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(CHARS),
            1 => any::<char>(),
        ],
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// `text` with up to 6 random edits: a span deleted, noise inserted, a
/// line repeated, or the text cut short (as a killed producer leaves it).
pub fn damaged(text: &'static str) -> impl Strategy<Value = String> {
    let edit = (0..4u8, any::<prop::sample::Index>(), 0..20usize, noise());
    proptest::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut chars: Vec<char> = text.chars().collect();
        for (kind, at, len, insert) in edits {
            let at = at.index(chars.len() + 1);
            match kind {
                0 => {
                    let end = (at + len).min(chars.len());
                    chars.drain(at..end);
                }
                1 => {
                    chars.splice(at..at, insert.chars());
                }
                2 => {
                    let start = chars[..at]
                        .iter()
                        .rposition(|&c| c == '\n')
                        .map_or(0, |i| i + 1);
                    let end = chars[at..]
                        .iter()
                        .position(|&c| c == '\n')
                        .map_or(chars.len(), |i| at + i + 1);
                    let line: Vec<char> = chars[start..end].to_vec();
                    chars.splice(start..start, line);
                }
                _ => chars.truncate(at),
            }
        }
        chars.into_iter().collect()
    })
}
