//! Snapshot names: making them, and deciding which snapshots are ours.
//!
//! As in zfs-autobackup, a snapshot is "ours" exactly when its name parses
//! with `--snapshot-format` (default `{}-%Y%m%d%H%M%S`, `{}` being the backup
//! name), and the time in the name is the snapshot's time for thinning. zab-snap,
//! zab-send and zab-thin all decide ownership here, so they always agree.
//!
//! Unlike upstream, a format that cannot round-trip is refused up front: one
//! without `{}` (two jobs would claim each other's snapshots), one without
//! every field down to the second (two snapshots could share a name, or get
//! a time that is not theirs), a literal date (never changes), or one that
//! makes characters ZFS does not allow in a name (`%%` from crontab escaping).

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};

use crate::error::Error;

/// The default `--snapshot-format`.
pub const DEFAULT_FORMAT: &str = "{}-%Y%m%d%H%M%S";

/// A validated snapshot-name format for one backup name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFormat {
    /// The strftime pattern with `{}` already replaced.
    pattern: String,
    /// Times are UTC (`--utc`) rather than local.
    utc: bool,
}

/// Conversion specifiers allowed in a format: the fields that pin down a
/// second, and literal `%%` (which is then refused as a name character).
const ALLOWED: &[char] = &['Y', 'm', 'd', 'H', 'M', 'S', 'y', 'j', '%'];

impl SnapshotFormat {
    /// Checks `format` for `backup`. `utc` picks UTC over local time.
    /// A backup name that cannot be part of a snapshot name is blamed,
    /// not the format.
    pub fn new(format: &str, backup: &str, utc: bool) -> Result<SnapshotFormat, Error> {
        let bad_name = |why: String| Error::Usage(format!("invalid BACKUP-NAME {backup:?}: {why}"));
        if backup.is_empty() {
            return Err(bad_name("it is empty".into()));
        }
        if let Some(c) = backup.chars().find(|&c| !valid_name_char(c)) {
            return Err(bad_name(format!(
                "ZFS does not allow {c:?} in a snapshot name (letters, digits and _ - : .)"
            )));
        }
        let bad = |why: &str| Error::Usage(format!("invalid --snapshot-format {format:?}: {why}"));
        if !format.contains("{}") {
            return Err(bad(
                "it needs {} for the backup name, or jobs claim each other's snapshots",
            ));
        }
        let pattern = format.replace("{}", backup);
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some(s) if ALLOWED.contains(&s) => {}
                    Some(s) => {
                        return Err(bad(&format!(
                            "%{s} is not supported (use %Y %m %d %H %M %S, or %y, %j)"
                        )))
                    }
                    None => return Err(bad("it ends in a lone %")),
                }
            }
        }
        let fmt = SnapshotFormat { pattern, utc };
        // Round trip: distinct seconds must give distinct names that parse
        // back to the same second.
        let samples = [
            "2024-01-31T23:59:58Z",
            "2024-01-31T23:59:59Z",
            "2024-02-29T00:00:00Z",
            "2031-12-01T09:08:07Z",
            "1999-07-04T13:45:30Z",
        ];
        for s in samples {
            let t: DateTime<Utc> = s.parse().map_err(|_| bad("internal: sample time"))?;
            let name = t.naive_utc().format(&fmt.pattern).to_string();
            // The dataset's name and the @ come on top of it.
            if name.len() >= crate::name::MAX_LEN {
                return Err(bad(&format!(
                    "it makes names of {} bytes, and ZFS allows {} with the dataset name",
                    name.len(),
                    crate::name::MAX_LEN
                )));
            }
            if let Some(c) = name.chars().find(|&c| !valid_name_char(c)) {
                return Err(bad(&format!(
                    "it makes names like {name:?}, and ZFS does not allow {c:?} in a snapshot name \
                     (a %% from crontab escaping?)"
                )));
            }
            let back = NaiveDateTime::parse_from_str(&name, &fmt.pattern).ok();
            if back != Some(t.naive_utc()) {
                return Err(bad(&format!(
                    "it makes names like {name:?} that do not give back their time to the second \
                     (it needs the year, month or day of year, day, hour, minute and second)"
                )));
            }
        }
        Ok(fmt)
    }

    /// The snapshot name for time `t` (in local time, or UTC with `--utc`).
    pub fn name_at(&self, t: DateTime<Utc>) -> String {
        if self.utc {
            t.naive_utc().format(&self.pattern).to_string()
        } else {
            t.with_timezone(&chrono::Local)
                .naive_local()
                .format(&self.pattern)
                .to_string()
        }
    }

    /// The time of snapshot `name` (the part after `@`) as seconds since the
    /// epoch, or None when it is not ours. A local time that occurs twice
    /// (DST ending) takes the earlier instant, as Python's mktime does.
    pub fn parse(&self, name: &str) -> Option<i64> {
        let naive = NaiveDateTime::parse_from_str(name, &self.pattern).ok()?;
        // Only names we could have made: chrono accepts some variations
        // (such as a sign or extra digits in %Y) that zab never writes.
        if naive.format(&self.pattern).to_string() != name {
            return None;
        }
        if self.utc {
            return Some(naive.and_utc().timestamp());
        }
        match chrono::Local.from_local_datetime(&naive) {
            LocalResult::Single(t) => Some(t.timestamp()),
            LocalResult::Ambiguous(a, b) => Some(a.timestamp().min(b.timestamp())),
            LocalResult::None => None,
        }
    }

    /// The strftime pattern, `{}` replaced: what says which snapshots are ours.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// True when snapshot `name` is ours.
    pub fn is_ours(&self, name: &str) -> bool {
        self.parse(name).is_some()
    }
}

/// Characters ZFS allows in a snapshot name.
fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-:.".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn fmt(f: &str) -> Result<SnapshotFormat, Error> {
        SnapshotFormat::new(f, "offsite1", true)
    }

    #[test]
    fn default_format_names_and_parses() {
        let f = fmt(DEFAULT_FORMAT).unwrap();
        let t = utc("2024-01-31T23:59:00Z");
        assert_eq!(f.name_at(t), "offsite1-20240131235900");
        assert_eq!(f.parse("offsite1-20240131235900"), Some(t.timestamp()));
    }

    #[test]
    fn only_names_of_this_format_are_ours() {
        let f = fmt(DEFAULT_FORMAT).unwrap();
        for foreign in [
            "offsite2-20240131235900",
            "offsite1-20240131235900-extra",
            "xoffsite1-20240131235900",
            "offsite1-2024013123590",
            "offsite1-20241331235900",
            "offsite1-20240131245900",
            "offsite1-+20240131235900",
            "autosnap_2024-01-31_23:59:00_daily",
            "offsite1",
            "",
        ] {
            assert!(!f.is_ours(foreign), "{foreign} taken as ours");
        }
    }

    #[test]
    fn other_complete_formats_work() {
        let f = fmt("zab_{}_%Y-%m-%d_%H:%M:%S").unwrap();
        let t = utc("2025-06-01T01:02:03Z");
        let name = f.name_at(t);
        assert_eq!(name, "zab_offsite1_2025-06-01_01:02:03");
        assert_eq!(f.parse(&name), Some(t.timestamp()));
        // Day of year instead of month and day.
        let f = fmt("{}.%Y.%j.%H%M%S").unwrap();
        assert_eq!(f.parse(&f.name_at(t)), Some(t.timestamp()));
    }

    #[test]
    fn formats_that_cannot_round_trip_are_refused() {
        let msg = |f: &str| fmt(f).unwrap_err().to_string();
        assert!(msg("backup-%Y%m%d%H%M%S").contains("it needs {}"));
        assert!(msg("{}-%Y%m%d").contains("do not give back their time"));
        assert!(msg("{}-%Y%m%d%H%M").contains("do not give back their time"));
        assert!(msg("{}-20240101").contains("do not give back their time"));
        assert!(msg("{}-%%Y%%m%%d").contains("does not allow '%'"));
        assert!(msg("{}-%Y%m%d %H%M%S").contains("does not allow ' '"));
        assert!(msg("{}-%s").contains("%s is not supported"));
        assert!(msg("{}-%Y%m%d%H%M%S%").contains("lone %"));
        // Ambiguous without separators: %y%j%H... fine, %m%d with single digits not used.
        assert!(fmt("{}-%y%m%d%H%M%S").is_ok());
    }

    /// Found by the property tests: a format whose names are longer than
    /// ZFS allows was accepted, and every `zfs snapshot` would fail.
    #[test]
    fn a_format_with_names_too_long_is_refused() {
        let long = format!("{}{{}}-%Y%m%d%H%M%S", "x".repeat(240));
        let e = fmt(&long).unwrap_err().to_string();
        assert!(
            e.contains("it makes names of 263 bytes, and ZFS allows 255 with the dataset name"),
            "{e}"
        );
        assert!(fmt(&format!("{}{{}}-%Y%m%d%H%M%S", "x".repeat(200))).is_ok());
    }

    /// zab-snap blamed --snapshot-format for a bad backup name.
    #[test]
    fn a_bad_backup_name_is_blamed_not_the_format() {
        for (backup, why) in [
            ("b@d", "ZFS does not allow '@' in a snapshot name"),
            ("a/b", "ZFS does not allow '/' in a snapshot name"),
            ("a%Y", "ZFS does not allow '%' in a snapshot name"),
            ("", "it is empty"),
        ] {
            let e = SnapshotFormat::new(DEFAULT_FORMAT, backup, true).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{e}");
            let e = e.to_string();
            assert!(
                e.starts_with(&format!("invalid BACKUP-NAME {backup:?}: {why}")),
                "{e}"
            );
            assert!(!e.contains("--snapshot-format"), "{e}");
        }
        assert!(SnapshotFormat::new(DEFAULT_FORMAT, "off_site-1.a:b", true).is_ok());
    }

    #[test]
    fn every_second_round_trips_in_utc() {
        let f = fmt(DEFAULT_FORMAT).unwrap();
        let start = utc("2023-12-31T23:00:00Z").timestamp();
        for s in (start..start + 7200).step_by(7) {
            let t = DateTime::from_timestamp(s, 0).unwrap();
            assert_eq!(f.parse(&f.name_at(t)), Some(s));
        }
    }

    #[test]
    fn local_time_round_trips() {
        let f = SnapshotFormat::new(DEFAULT_FORMAT, "b", false).unwrap();
        let t = utc("2024-05-05T12:34:56Z");
        assert_eq!(f.parse(&f.name_at(t)), Some(t.timestamp()));
    }

    mod properties {
        use super::*;
        use crate::fuzz::{assert_plain_line, config, damaged, noise};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config(256))]

            /// `--snapshot-format` and BACKUP-NAME: a format, or one line.
            #[test]
            fn any_format_and_name_is_checked_in_one_line(
                format in prop_oneof![noise(), damaged(DEFAULT_FORMAT), damaged("zab_{}_%Y-%m-%d_%H:%M:%S"), "[{}%YmdHMSyjs_.:-]{0,16}"],
                backup in prop_oneof![Just("offsite1".to_string()), "[a-z0-9%@/ .-]{0,6}"],
                utc in any::<bool>(),
            ) {
                match SnapshotFormat::new(&format, &backup, utc) {
                    Ok(f) => {
                        // Any name ours parses back to its own second.
                        let t = DateTime::from_timestamp(1_763_800_000, 0).unwrap();
                        let name = f.name_at(t);
                        prop_assert!(crate::name::snapshot_name(&name).is_ok(), "{name}");
                        if utc {
                            prop_assert_eq!(f.parse(&name), Some(t.timestamp()));
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.exit(), crate::Exit::Usage);
                        assert_plain_line(&e.to_string(), &format!("{format}{backup}"));
                    }
                }
            }

            /// Which snapshots are ours: any name is answered, no panic.
            #[test]
            fn any_snapshot_name_is_ours_or_not(name in prop_oneof![noise(), damaged("offsite1-20240131235900"), "\\PC{0,30}"]) {
                let f = fmt(DEFAULT_FORMAT).unwrap();
                if let Some(t) = f.parse(&name) {
                    prop_assert_eq!(f.name_at(DateTime::from_timestamp(t, 0).unwrap()), name);
                }
            }

            #[test]
            fn every_time_round_trips(secs in 0i64..253_402_300_799) {
                let f = fmt(DEFAULT_FORMAT).unwrap();
                let t = DateTime::from_timestamp(secs, 0).unwrap();
                prop_assert_eq!(f.parse(&f.name_at(t)), Some(secs));
            }
        }
    }
}
