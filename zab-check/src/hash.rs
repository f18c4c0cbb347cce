//! The hash of a chunk: BLAKE3 by default (fast, several GB/s a core), or
//! SHA-1 for output comparable with zfs-check's. Printed as lowercase hex.

use sha1::Digest;

/// Which hash zab-check prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    /// BLAKE3 (64 hex digits), the default.
    Blake3,
    /// SHA-1 (40 hex digits), what zfs-check prints.
    Sha1,
}

impl Algorithm {
    /// How many hex digits its hashes have.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Blake3 => 64,
            Algorithm::Sha1 => 40,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Blake3 => "blake3",
            Algorithm::Sha1 => "sha1",
        }
    }

    /// The algorithm whose hashes have `len` hex digits, if any.
    pub fn by_hex_len(len: usize) -> Option<Algorithm> {
        [Algorithm::Blake3, Algorithm::Sha1]
            .into_iter()
            .find(|a| a.hex_len() == len)
    }
}

/// A hash being computed.
#[derive(Debug)]
pub enum Hasher {
    Blake3(Box<blake3::Hasher>),
    Sha1(sha1::Sha1),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Sha1(h) => h.update(data),
        }
    }

    /// The hash in lowercase hex.
    pub fn hex(self) -> String {
        match self {
            Hasher::Blake3(h) => h.finalize().to_hex().to_string(),
            Hasher::Sha1(h) => h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(a: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(a);
        h.update(data);
        h.hex()
    }

    #[test]
    fn known_values() {
        // sha1sum and b3sum of the same bytes.
        assert_eq!(
            hex(Algorithm::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(Algorithm::Sha1, b""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            hex(Algorithm::Blake3, b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn pieces_hash_as_the_whole() {
        for a in [Algorithm::Blake3, Algorithm::Sha1] {
            let mut h = Hasher::new(a);
            h.update(b"ab");
            h.update(b"c");
            assert_eq!(h.hex(), hex(a, b"abc"));
            assert_eq!(hex(a, b"abc").len(), a.hex_len());
            assert_eq!(Algorithm::by_hex_len(a.hex_len()), Some(a));
        }
    }
}
