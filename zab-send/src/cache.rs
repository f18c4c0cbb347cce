//! zab-send's quiet-run cache (zab_core::quiet::send; docs/architecture.md,
//! "Quiet runs"): one file per backup, source host, target host and
//! TARGET-PATH in the private state directory. With entries, the target's
//! facts (`zab_core::zfs::facts_args`: `snapshots_changed`, `createtxg`,
//! resume token, the common snapshot's holds) are read first, in one `zfs
//! get` (early.rs); when every selected dataset's facts on both sides are
//! its entry's, nothing is listed and each record gets the `send` field
//! the listing run wrote. Anything else lists as without the cache: the
//! cache never decides an action, it only confirms that there is none.
//!
//! After a listing run, the datasets it found nothing to do for get
//! entries, the target's facts read after the run (one `zfs get`), before
//! the records are written: each such record's `send` field, and each of
//! a quiet run, carries the target's facts read (`target_createtxg`,
//! `target_snapshots_changed`: zab-thin's cache reads them). The file is
//! written once the records are out without a failure.
//! Not used under `--test`/`--plan` (nothing read or written), to an
//! object store, with `--destroy-incompatible`, `--rollback` or `--force`
//! (they list the target late, and act on what they find), nor with more
//! than one source host. A state directory that cannot be used is a
//! warning: the run goes on, listing everything.

use std::collections::BTreeMap;
use std::path::PathBuf;

use zab_core::cli::Log;
use zab_core::quiet::save;
use zab_core::quiet::send::{self, Cache, Listed};
use zab_core::record::{Dataset, SendOutcome, SnapStatus};
use zab_core::zfs::{self, Facts};
use zab_core::Host;

use crate::cli::Config;
use crate::gather::World;
use crate::input::Input;
use crate::jobs::Job;

/// The cache this run may use, and where it lives.
#[derive(Debug)]
pub struct Loaded {
    pub cache: Cache,
    pub path: PathBuf,
}

/// Whether this run may use a cache at all.
pub fn usable(cfg: &Config) -> bool {
    !cfg.dry()
        && cfg.store.is_none()
        && !(cfg.destroy_incompatible || cfg.rollback || cfg.flags.force)
}

/// What a plan depends on besides the datasets: part of the key, so that
/// a run with other options lists.
fn options(cfg: &Config) -> String {
    let exclude: Vec<&str> = cfg.exclude.iter().map(|r| r.as_str()).collect();
    format!(
        "{:?}",
        (
            cfg.format.pattern(),
            &cfg.tag,
            cfg.other_snapshots,
            exclude,
            &cfg.keep_target,
            cfg.target.no_guid_check,
            cfg.holds,
            cfg.bookmarks,
        )
    )
}

/// Reads the cache, when this run may use one (None: it lists, and may
/// write none).
pub fn load(cfg: &Config, log: &Log) -> Option<Loaded> {
    if !usable(cfg) {
        return None;
    }
    let dir = match zab_core::private::state_dir() {
        Ok(d) => d,
        Err(e) => {
            log.warn(format!("the quiet-run cache is not used: {e}"));
            return None;
        }
    };
    let (source, target) = (
        cfg.ssh_source.as_deref(),
        cfg.target.host.ssh_target.as_deref(),
    );
    let key = send::key(&cfg.backup, source, target, &cfg.target_path, &options(cfg));
    let path = dir.join(send::file_name(
        &cfg.backup,
        source,
        target,
        &cfg.target_path,
    ));
    let (cache, why) = send::load(&path, &key);
    if let Some(why) = why {
        log.debug(format!("quiet-run cache: {why}: listing everything"));
    }
    Some(Loaded { cache, path })
}

/// Reads the target's facts of `names` (one `zfs get`); None (said with
/// `--debug`) when it fails: a target gone, say.
pub fn read_facts(host: &Host, names: &[String], log: &Log) -> Option<BTreeMap<String, Facts>> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match zfs::query(host, &zfs::facts_args(&names), |out| {
        zfs::parse_facts(out, &names)
    }) {
        Ok(f) => Some(f),
        Err(e) => {
            log.debug(format!("quiet-run cache: listing everything: {e}"));
            None
        }
    }
}

/// The source's facts in a record: createtxg, `snapshots_changed`, and
/// whether a snapshot was taken (or is to be) in this run.
fn source_facts(d: &Dataset) -> (u64, Option<u64>, bool) {
    let snapped = d
        .snapshot
        .as_ref()
        .is_some_and(|s| s.status != SnapStatus::Skipped);
    (d.createtxg, d.snapshots_changed, snapped)
}

/// Each selected record's `send` field from the cache, when every one of
/// them is quiet (by record index); None when anything is to be listed.
pub fn quiet(
    cfg: &Config,
    input: &Input,
    cache: &Cache,
    target: &BTreeMap<String, Facts>,
) -> Option<Vec<(usize, SendOutcome)>> {
    if input.hosts.len() != 1 || input.picked.is_empty() {
        return None;
    }
    input
        .picked
        .iter()
        .map(|p| {
            let d = &input.datasets[p.record];
            let send = cache.quiet(&d.name, &p.target, source_facts(d), target, cfg.holds)?;
            Some((p.record, with_facts(send.clone(), target.get(&p.target))))
        })
        .collect()
}

/// `send` with the target dataset's facts as read in this run (`t`): for
/// zab-thin's cache (docs/records.md, `target_createtxg`). Only for a
/// dataset this run changed nothing on and that has no resume token.
fn with_facts(mut send: SendOutcome, t: Option<&Facts>) -> SendOutcome {
    if let Some(t) = t.filter(|t| t.token.is_none()) {
        send.target_createtxg = Some(t.createtxg);
        send.target_snapshots_changed = t.changed;
    }
    send
}

/// Puts the target's facts of each dataset `new` has an entry for (made
/// by this run: read after the listing, nothing done there) into its
/// record's `send` field, before the records are written.
pub fn annotate(records: &mut [Dataset], new: &Cache) {
    for d in records.iter_mut() {
        let Some(e) = new.datasets.get(&d.name) else {
            continue;
        };
        let Some(s) = d.send.as_mut().filter(|s| s.target == e.target) else {
            continue;
        };
        s.target_createtxg = Some(e.target_createtxg);
        s.target_snapshots_changed = Some(e.target_changed);
    }
}

/// Writes `new` where it differs from what was read. A failure is a
/// warning: the next run lists.
pub fn save_new(loaded: &Loaded, new: &Cache, log: &Log) {
    if *new != loaded.cache {
        if let Err(e) = save(&loaded.path, new) {
            log.warn(format!("the quiet-run cache was not written: {e}"));
        }
    }
}

/// After a listing run, before its records are written: the entries of
/// the datasets it found nothing to do for (`records` with their `send`
/// field), the target's facts read now. None (said with `--debug`) when
/// they could not be read: the cache is then left as it is and the next
/// run lists.
#[allow(clippy::too_many_arguments)]
pub fn entries(
    cfg: &Config,
    loaded: &Loaded,
    host: &Host,
    jobs: &[Job],
    records: &[Dataset],
    world: &World,
    single_host: bool,
    log: &Log,
) -> Option<Cache> {
    let mut new = loaded.cache.clone();
    new.datasets.clear();
    let snaps_of = |j: &Job| -> Vec<(&str, Option<u64>)> {
        world
            .tree
            .get(&j.target)
            .map(|t| {
                t.target
                    .snapshots
                    .iter()
                    .map(|(s, _)| (s.name.as_str(), s.userrefs))
                    .collect()
            })
            .unwrap_or_default()
    };
    let target_snaps: Vec<Vec<(&str, Option<u64>)>> = jobs.iter().map(snaps_of).collect();
    let listed: Vec<(&Job, &Dataset, Listed)> = jobs
        .iter()
        .zip(&target_snaps)
        .filter_map(|(j, snaps)| {
            let d = &records[j.record];
            let send = d.send.as_ref()?;
            let source_newest = world
                .sources
                .get(&j.source)
                .and_then(|s| s.iter().rev().find(|x| cfg.format.is_ours(&x.name)))
                .map(|x| x.name.as_str());
            let l = Listed {
                source: (d.createtxg, d.snapshots_changed),
                source_listed_at: world.listed_at.0,
                source_newest,
                target_snaps: snaps,
                target_listed_at: world.listed_at.1,
                send,
            };
            let ok = single_host
                && d.error.is_none()
                && !source_facts(d).2
                && send::worth_reading(&l, &j.target, cfg.holds);
            ok.then_some((j, d, l))
        })
        .collect();
    if !listed.is_empty() {
        let names: Vec<String> = listed
            .iter()
            .flat_map(|(j, _, l)| {
                let c = l.send.common.as_deref().unwrap_or_default();
                [j.target.clone(), format!("{}@{c}", j.target)]
            })
            .collect();
        let after = read_facts(host, &names, log)?;
        for (j, d, l) in &listed {
            if let Some(e) = send::entry(l, &j.target, &after, cfg.holds) {
                new.datasets.insert(d.name.clone(), e);
            }
        }
    }
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(target: &str) -> SendOutcome {
        serde_json::from_value(serde_json::json!({
            "target": target, "status": "up-to-date", "common": "b-1", "transfers": [],
        }))
        .unwrap()
    }

    fn facts(token: Option<&str>) -> Facts {
        Facts {
            changed: Some(1000),
            createtxg: 40,
            token: token.map(str::to_string),
            userrefs: Some(1),
        }
    }

    #[test]
    fn the_targets_facts_go_into_send_only_without_a_token() {
        let s = with_facts(send("t/a"), Some(&facts(None)));
        assert_eq!(
            (s.target_createtxg, s.target_snapshots_changed),
            (Some(40), Some(1000))
        );
        let s = with_facts(send("t/a"), Some(&facts(Some("1-x"))));
        assert_eq!(
            (s.target_createtxg, s.target_snapshots_changed),
            (None, None)
        );
        assert_eq!(with_facts(send("t/a"), None), send("t/a"));
        // Only the records with an entry of this run, of the same target;
        // the others' send fields are left as they are.
        let mut c = Cache::new("k");
        let listed = Listed {
            source: (7, Some(900)),
            source_listed_at: 2000,
            source_newest: Some("b-1"),
            target_snaps: &[("b-1", Some(1))],
            target_listed_at: 2000,
            send: &send("t/a"),
        };
        let after = BTreeMap::from([
            ("t/a".to_string(), facts(None)),
            ("t/a@b-1".to_string(), facts(None)),
        ]);
        let e = send::entry(&listed, "t/a", &after, true).unwrap();
        c.datasets.insert("s/a".into(), e);
        let rec = |name: &str, target: &str| -> Dataset {
            serde_json::from_value(serde_json::json!({
                "backup": "b", "host": null, "name": name, "type": "filesystem",
                "selected": true, "reason": "selected", "value": null, "source": "local",
                "inherited_from": null, "createtxg": 1, "written": 0,
                "send": send(target),
            }))
            .unwrap()
        };
        let mut records = vec![rec("s/a", "t/a"), rec("s/b", "t/b"), rec("s/a", "t/x")];
        records[2].name = "s/a".into();
        annotate(&mut records, &c);
        let got: Vec<_> = records
            .iter()
            .map(|d| {
                d.send
                    .as_ref()
                    .map(|s| (s.target_createtxg, s.target_snapshots_changed))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                Some((Some(40), Some(1000))),
                Some((None, None)),
                Some((None, None))
            ]
        );
        // Absent fields are not written: old readers see the same record.
        let text = serde_json::to_string(&send("t/a")).unwrap();
        assert!(!text.contains("target_createtxg"), "{text}");
    }
}
