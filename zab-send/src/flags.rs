//! The flags of one `zfs send` and its `zfs recv`, and so both whole
//! command lines of a step, as a pure function of what decides them: the
//! step, the target pool's features, the options, and the encryption of
//! the source and of the place the stream lands in. Decided at plan time
//! (jobs.rs); the argv are built by `zab_core::zfs::replicate`.
//!
//! The receive side (zfs-autobackup 3.3): always `-u` (mounting is
//! mounts.rs's), `-x` for `--filter-properties`, refreservation with
//! `--clear-refreservation`, and the encryption properties with
//! `--encrypt` on a stream that is not raw; `-o` for `--set-properties`
//! and canmount=noauto with `--clear-mountpoint` (never canmount on a
//! volume); `-F` with `--force`; `-s` where the pool can resume
//! (`extensible_dataset`).
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

use zab_core::record::TransferKind;
use zab_core::zfs::{parent_of, replicate, DatasetType};

use crate::listing::Features;
use crate::plan::{Resume, Step};

/// The options that decide the flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--zfs-compressed`
    pub zfs_compressed: bool,
    /// `--decrypt`
    pub decrypt: bool,
    /// `--encrypt`
    pub encrypt: bool,
    /// `--force`: `zfs recv -F`.
    pub force: bool,
    /// `--filter-properties`
    pub filter_properties: Vec<String>,
    /// `--set-properties`
    pub set_properties: Vec<(String, String)>,
    /// `--clear-refreservation`
    pub clear_refreservation: bool,
    /// `--clear-mountpoint`
    pub clear_mountpoint: bool,
}

/// One dataset, as far as its flags go.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    pub source: &'a str,
    pub target: &'a str,
    pub kind: DatasetType,
    /// The source is encrypted (as far as it was read: see gather.rs).
    pub encrypted: bool,
    /// It lands in an encrypted dataset ([`lands_encrypted`]).
    pub lands_encrypted: bool,
}

impl Dataset<'_> {
    /// Its stream is raw: encrypted, and not `--decrypt`.
    pub fn raw(&self, o: &Options) -> bool {
        self.encrypted && !o.decrypt
    }
}

/// The `zfs send` of `step`: the resume token for a resumed step, else the
/// flags of [`flags`], `-P`, the base (`-i`, or `-I` for a stream of
/// several snapshots) and the snapshot.
pub fn send_argv(
    d: &Dataset,
    step: &Step,
    resume: &Resume,
    o: &Options,
    f: &Features,
) -> Vec<String> {
    if let (Resume::Continue(token), TransferKind::Resumed) = (resume, step.kind) {
        return replicate::send_resume_args(token);
    }
    let chosen = flags(&Inputs {
        large_blocks: f.enabled("large_blocks"),
        embedded_data: f.enabled("embedded_data"),
        zfs_compressed: o.zfs_compressed,
        source_encrypted: d.encrypted,
        decrypt: o.decrypt,
        encrypt: o.encrypt,
        lands_encrypted: d.lands_encrypted,
    });
    // From a bookmark: always `-i` (zfs send takes no `-I` from one).
    let base = match (&step.bookmark, &step.from) {
        (Some(bm), _) => Some((format!("{}#{bm}", d.source), false)),
        (None, Some(from)) => Some((format!("{}@{from}", d.source), step.snapshots > 1)),
        (None, None) => None,
    };
    replicate::send_args(
        &chosen.args(),
        base.as_ref().map(|(b, many)| (b.as_str(), *many)),
        &format!("{}@{}", d.source, step.to),
    )
}

/// The encryption properties a target that encrypts (`--encrypt`) must not
/// receive.
const ENCRYPTION_PROPS: [&str; 4] = ["keylocation", "pbkdf2iters", "keyformat", "encryption"];

/// The `zfs recv` of `d` (the same for each of its steps).
pub fn recv_argv(d: &Dataset, o: &Options, f: &Features) -> Vec<String> {
    let mut opts: Vec<String> = vec!["-u".into()];
    let mut filter: Vec<String> = o.filter_properties.clone();
    if o.clear_refreservation {
        filter.push("refreservation".into());
    }
    if o.encrypt && !d.raw(o) {
        filter.extend(ENCRYPTION_PROPS.map(String::from));
    }
    for p in filter.iter().filter(|p| !p.is_empty()) {
        opts.extend(["-x".into(), p.clone()]);
    }
    let mut set: Vec<(String, String)> = o.set_properties.clone();
    if o.clear_mountpoint {
        set.push(("canmount".into(), "noauto".into()));
    }
    for (p, v) in &set {
        if d.kind == DatasetType::Volume && p == "canmount" {
            continue;
        }
        opts.extend(["-o".into(), format!("{p}={v}")]);
    }
    if o.force {
        opts.push("-F".into());
    }
    if f.enabled("extensible_dataset") {
        opts.push("-s".into());
    }
    replicate::recv_args(&opts, d.target)
}

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

    fn features(names: &[&str]) -> Features {
        Features {
            enabled: names.iter().map(|n| n.to_string()).collect(),
            active: Default::default(),
        }
    }

    fn ds(kind: DatasetType, encrypted: bool) -> Dataset<'static> {
        Dataset {
            source: "p/a",
            target: "t/a",
            kind,
            encrypted,
            lands_encrypted: false,
        }
    }

    fn step(from: Option<&str>, to: &str, kind: TransferKind, snapshots: usize) -> Step {
        Step {
            from: from.map(String::from),
            bookmark: None,
            to: to.into(),
            kind,
            snapshots,
        }
    }

    #[test]
    fn send_argv_full_incremental_many_and_resumed() {
        let f = features(&["large_blocks", "embedded_data"]);
        let (o, d) = (Options::default(), ds(DatasetType::Filesystem, false));
        let s = |st: &Step, r: &Resume| send_argv(&d, st, r, &o, &f).join(" ");
        assert_eq!(
            s(&step(None, "1", TransferKind::Full, 1), &Resume::None),
            "zfs send -L -e -p -P p/a@1"
        );
        assert_eq!(
            s(
                &step(Some("1"), "2", TransferKind::Incremental, 1),
                &Resume::None
            ),
            "zfs send -L -e -p -P -i p/a@1 p/a@2"
        );
        assert_eq!(
            s(
                &step(Some("1"), "4", TransferKind::Incremental, 3),
                &Resume::None
            ),
            "zfs send -L -e -p -P -I p/a@1 p/a@4"
        );
        let token = Resume::Continue("1-ab".into());
        assert_eq!(
            s(&step(Some("1"), "2", TransferKind::Resumed, 1), &token),
            "zfs send -P -t 1-ab"
        );
        // A token is used by the resumed step only.
        assert_eq!(
            s(&step(Some("2"), "3", TransferKind::Incremental, 1), &token),
            "zfs send -L -e -p -P -i p/a@2 p/a@3"
        );
        // -c with --zfs-compressed; raw for an encrypted source.
        let o = Options {
            zfs_compressed: true,
            ..Options::default()
        };
        let d = ds(DatasetType::Filesystem, true);
        assert_eq!(
            send_argv(
                &d,
                &step(None, "1", TransferKind::Full, 1),
                &Resume::None,
                &o,
                &f
            )
            .join(" "),
            "zfs send -L -e -c -w -p -P p/a@1"
        );
    }

    /// The bookmark rules: `-i ds#bm` (never `-I`: zfs send refuses a
    /// bookmark there), with the flags of any incremental (raw `-w` for an
    /// encrypted source); a resumed bookmark step is the token alone.
    #[test]
    fn send_argv_from_a_bookmark() {
        let f = features(&["large_blocks", "embedded_data"]);
        let o = Options::default();
        let mut st = step(Some("1"), "2", TransferKind::Incremental, 1);
        st.bookmark = Some("1_42".into());
        let plain = ds(DatasetType::Filesystem, false);
        assert_eq!(
            send_argv(&plain, &st, &Resume::None, &o, &f).join(" "),
            "zfs send -L -e -p -P -i p/a#1_42 p/a@2"
        );
        let raw = ds(DatasetType::Filesystem, true);
        assert_eq!(
            send_argv(&raw, &st, &Resume::None, &o, &f).join(" "),
            "zfs send -L -e -w -p -P -i p/a#1_42 p/a@2"
        );
        // Even a step of several snapshots from a bookmark stays -i.
        st.snapshots = 3;
        assert!(send_argv(&plain, &st, &Resume::None, &o, &f).contains(&"-i".to_string()));
        assert!(!send_argv(&plain, &st, &Resume::None, &o, &f).contains(&"-I".to_string()));
        st.kind = TransferKind::Resumed;
        let token = Resume::Continue("1-ab".into());
        assert_eq!(
            send_argv(&raw, &st, &token, &o, &f).join(" "),
            "zfs send -P -t 1-ab"
        );
    }

    #[test]
    fn recv_argv_u_x_o_f_s() {
        let fs = ds(DatasetType::Filesystem, false);
        let r = |d: &Dataset, o: &Options, f: &Features| recv_argv(d, o, f).join(" ");
        // -u always; -s where the pool can resume.
        assert_eq!(
            r(&fs, &Options::default(), &features(&[])),
            "zfs recv -u t/a"
        );
        assert_eq!(
            r(&fs, &Options::default(), &features(&["extensible_dataset"])),
            "zfs recv -u -s t/a"
        );
        let o = Options {
            force: true,
            filter_properties: vec!["quota".into(), String::new()],
            set_properties: vec![("compression".into(), "lz4".into())],
            clear_refreservation: true,
            clear_mountpoint: true,
            ..Options::default()
        };
        assert_eq!(
            r(&fs, &o, &features(&["extensible_dataset"])),
            "zfs recv -u -x quota -x refreservation -o compression=lz4 -o canmount=noauto -F -s t/a"
        );
        // No canmount on a volume.
        let vol = ds(DatasetType::Volume, false);
        assert_eq!(
            r(&vol, &o, &features(&[])),
            "zfs recv -u -x quota -x refreservation -o compression=lz4 -F t/a"
        );
        // --encrypt: the encryption properties stay behind, unless raw.
        let o = Options {
            encrypt: true,
            ..Options::default()
        };
        assert_eq!(
            r(&fs, &o, &features(&[])),
            "zfs recv -u -x keylocation -x pbkdf2iters -x keyformat -x encryption t/a"
        );
        assert_eq!(
            r(&ds(DatasetType::Filesystem, true), &o, &features(&[])),
            "zfs recv -u t/a"
        );
        // --decrypt of an encrypted source with --encrypt: not raw, filtered.
        let o = Options {
            encrypt: true,
            decrypt: true,
            ..Options::default()
        };
        assert!(r(&ds(DatasetType::Filesystem, true), &o, &features(&[])).contains("-x encryption"));
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
