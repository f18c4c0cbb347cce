//! The flags of one `zfs send`, as a pure function of what decides them:
//! the target pool's features, the options, and the encryption of the
//! source and of the place the stream lands in.
//!
//! Upstream's rules (zfs-autobackup 3.3, `sync_snapshots`): an encrypted
//! source is sent raw (`-w`) unless `--decrypt`, and then without `-p`
//! (zfs cannot send the properties of a dataset it decrypts); every other
//! source keeps `-p`. `-e` is left out of a non-raw stream with
//! `--encrypt`. One rule of ours on top: `-e` is also left out of a
//! non-raw stream that lands in an encrypted dataset, which OpenZFS
//! refuses ("incompatible embedded data stream feature with encrypted
//! receive", seen on 2.3 for a stream without `-p`), whatever the other
//! flags.

use std::collections::BTreeMap;

use zab_core::zfs::parent_of;

/// What decides the flags of one dataset's full or incremental stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The target pool has `large_blocks`.
    pub large_blocks: bool,
    /// The target pool has `embedded_data`.
    pub embedded_data: bool,
    /// `--zfs-compressed`.
    pub zfs_compressed: bool,
    /// The source dataset is encrypted.
    pub source_encrypted: bool,
    /// `--decrypt`.
    pub decrypt: bool,
    /// `--encrypt`.
    pub encrypt: bool,
    /// The stream lands in an encrypted dataset: the target is encrypted,
    /// or (a first transfer) its parent is ([`lands_encrypted`]).
    pub lands_encrypted: bool,
}

/// The flags chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `-L`
    pub large_blocks: bool,
    /// `-e`
    pub embed: bool,
    /// `-c`
    pub compressed: bool,
    /// `-w`
    pub raw: bool,
    /// `-p`
    pub props: bool,
}

impl Flags {
    /// The flags in upstream's order: `-L -e -c -w -p`.
    pub fn args(&self) -> Vec<&'static str> {
        [
            (self.large_blocks, "-L"),
            (self.embed, "-e"),
            (self.compressed, "-c"),
            (self.raw, "-w"),
            (self.props, "-p"),
        ]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect()
    }
}

/// The flags for `i`.
pub fn flags(i: &Inputs) -> Flags {
    let raw = i.source_encrypted && !i.decrypt;
    Flags {
        large_blocks: i.large_blocks,
        embed: i.embedded_data && (raw || !(i.encrypt || i.lands_encrypted)),
        compressed: i.zfs_compressed,
        raw,
        props: !(i.source_encrypted && i.decrypt),
    }
}

/// Whether a stream received into `target` lands in an encrypted dataset:
/// the target itself when it exists (`existing`: every dataset listed on
/// the target, and whether it is encrypted), else its nearest ancestor that
/// exists or is received in this run (`received`: those datasets, and
/// whether their stream is raw). A parent received in this run is taken as
/// encrypted when its stream is raw or it lands in an encrypted dataset
/// itself; parents that zab-send creates inherit, so they are looked
/// through.
pub fn lands_encrypted(
    target: &str,
    existing: &BTreeMap<String, bool>,
    received: &BTreeMap<String, bool>,
) -> bool {
    if let Some(&e) = existing.get(target) {
        return e;
    }
    let mut p = parent_of(target);
    while let Some(d) = p {
        if let Some(&e) = existing.get(d) {
            return e;
        }
        if let Some(&raw) = received.get(d) {
            return raw || lands_encrypted(d, existing, received);
        }
        p = parent_of(d);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Inputs {
        Inputs {
            large_blocks: true,
            embedded_data: true,
            ..Inputs::default()
        }
    }

    #[test]
    fn a_plain_source_keeps_p_and_e() {
        assert_eq!(flags(&pool()).args(), ["-L", "-e", "-p"]);
        // --decrypt changes nothing for a source that is not encrypted:
        // upstream drops -p only for encrypted sources.
        let i = Inputs {
            decrypt: true,
            ..pool()
        };
        assert_eq!(flags(&i).args(), ["-L", "-e", "-p"]);
        let i = Inputs {
            zfs_compressed: true,
            ..pool()
        };
        assert_eq!(flags(&i).args(), ["-L", "-e", "-c", "-p"]);
    }

    #[test]
    fn an_encrypted_source_is_raw_unless_decrypted_then_without_p() {
        let i = Inputs {
            source_encrypted: true,
            ..pool()
        };
        assert_eq!(flags(&i).args(), ["-L", "-e", "-w", "-p"]);
        let i = Inputs { decrypt: true, ..i };
        assert_eq!(flags(&i).args(), ["-L", "-e"]);
    }

    #[test]
    fn no_e_in_a_non_raw_stream_that_lands_encrypted() {
        // --decrypt into an encrypted parent, the source plain or encrypted.
        for source_encrypted in [false, true] {
            let i = Inputs {
                source_encrypted,
                decrypt: true,
                lands_encrypted: true,
                ..pool()
            };
            let f = flags(&i);
            assert!(!f.embed && !f.raw, "{i:?}");
            assert_eq!(f.props, !source_encrypted);
        }
        // Without --decrypt: a plain source into an encrypted parent.
        let i = Inputs {
            lands_encrypted: true,
            ..pool()
        };
        assert_eq!(flags(&i).args(), ["-L", "-p"]);
        // --encrypt, wherever it lands.
        let i = Inputs {
            encrypt: true,
            ..pool()
        };
        assert_eq!(flags(&i).args(), ["-L", "-p"]);
        // A raw stream keeps -e: its blocks stay encrypted.
        let i = Inputs {
            source_encrypted: true,
            encrypt: true,
            lands_encrypted: true,
            ..pool()
        };
        assert_eq!(flags(&i).args(), ["-L", "-e", "-w", "-p"]);
        // No embedded_data on the target pool: never -e.
        let i = Inputs {
            embedded_data: false,
            ..pool()
        };
        assert_eq!(flags(&i).args(), ["-L", "-p"]);
    }

    #[test]
    fn where_a_stream_lands() {
        let existing: BTreeMap<String, bool> = [
            ("t", false),
            ("t/enc", true),
            ("t/enc/old", true),
            ("t/plain", false),
        ]
        .map(|(n, e)| (n.to_string(), e))
        .into_iter()
        .collect();
        let received: BTreeMap<String, bool> =
            [("t/new-raw", true), ("t/enc/p", false), ("t/p", false)]
                .map(|(n, e)| (n.to_string(), e))
                .into_iter()
                .collect();
        let at = |t: &str| lands_encrypted(t, &existing, &received);
        // An existing target: its own encryption.
        assert!(at("t/enc/old"));
        assert!(!at("t/plain"));
        // A new one: its nearest existing parent, through created parents.
        assert!(at("t/enc/x"));
        assert!(at("t/enc/made/by/us/x"));
        assert!(!at("t/plain/x"));
        // Under a parent received in this run: raw, or itself landing encrypted.
        assert!(at("t/new-raw/x"));
        assert!(at("t/enc/p/x"));
        assert!(!at("t/p/x"));
        assert!(!at("elsewhere"));
    }
}
