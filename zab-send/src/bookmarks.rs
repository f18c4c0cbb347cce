//! Bookmarks on the source (issue 20): a bookmark (`zfs bookmark ds@s
//! ds#b`) keeps what an incremental stream needs of a snapshot, costs no
//! space and cannot be rolled back to, so a source whose common snapshot
//! is gone (thinned, or destroyed by hand) goes on incrementally.
//!
//! Using them (pure, called by plan.rs): when the newest target snapshot
//! that a source bookmark has the guid of is newer than the common
//! snapshot (or there is none), the plan goes on from it: `zfs send -i
//! ds#bm ds@next` to the first snapshot after it (a bookmark cannot start
//! a `-I` stream), then the rest as usual. The bookmark is found by guid,
//! whatever its name, as zfs-autobackup 4.0 finds it.
//!
//! Making them (the short executor at the end): after the transfers, one
//! bookmark per dataset that received something, of the newest snapshot
//! it received, named as zfs-autobackup 4.0 names it
//! (`zab_core::zfs::bookmark_name`: the snapshot's name, `_`, the guid of
//! the TARGET-PATH dataset, read once). They are made by one ZFS channel
//! program per source host and pool (`zab_core::zfs::bookmark`,
//! `zfs.sync.bookmark`, batches of at most 1,000), not one `zfs bookmark`
//! each (OpenZFS's takes one pair per call): on a first or `--allow-empty`
//! run, nothing but the transfers runs per dataset. The program makes each
//! on its own, so one that fails (a bookmark of that name made since the
//! listing, `EEXIST`, as `zfs bookmark` would) is noted on its dataset and
//! the others are made. Where a program fails as a whole (a user with `zfs
//! allow` instead of root, an OpenZFS before 2.0), that batch and the rest
//! of that host's go one `zfs bookmark` each, as before, so each record
//! says which failed: the first program is the probe, no `zfs program -n`
//! runs before it. Such a failure comes before the program starts; one
//! stopped half-way by its limits (which the batches keep well clear of)
//! would leave the bookmarks it made reported as existing, a warning and
//! nothing worse. `--test` sends nothing, so it makes none and runs no
//! program. Never to an object store (s3://, file://): nothing there is
//! received incrementally from a source bookmark of ours (each key is made
//! from the source's snapshots), so they would only pile up.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::record::TransferKind;
use zab_core::zfs::bookmark::{batches, errno_text, parse_program, program_args, Pair, PROGRAM};
use zab_core::zfs::{self, Snapshot};

use crate::execute::{Ctx, Done};
use crate::jobs::Job;
use crate::plan::Step;

/// The newest of the target's snapshots (`target`, oldest first) that one
/// of the source's `bookmarks` has the guid of: its index, and the
/// bookmark.
pub fn base<'a>(bookmarks: &'a [Snapshot], target: &[Snapshot]) -> Option<(usize, &'a Snapshot)> {
    target.iter().enumerate().rev().find_map(|(i, t)| {
        bookmarks
            .iter()
            .rev()
            .find(|b| b.guid == t.guid)
            .map(|b| (i, b))
    })
}

/// The index of the first of `source` (oldest first) taken after the
/// bookmark `bm`.
pub fn after(source: &[Snapshot], bm: &Snapshot) -> usize {
    source
        .iter()
        .position(|s| s.createtxg > bm.createtxg)
        .unwrap_or(source.len())
}

/// The steps that send `wanted` after the target's `common`, which the
/// source keeps only as bookmark `bm`: `-i` from the bookmark to the first
/// (one snapshot: `zfs send` takes a bookmark only as `-i`'s base), then
/// from it as usual.
pub fn steps(
    source: &[Snapshot],
    common: Option<String>,
    bm: &Snapshot,
    wanted: &[&Snapshot],
) -> Vec<Step> {
    let Some((first, rest)) = wanted.split_first() else {
        return Vec::new();
    };
    let mut steps = vec![Step {
        from: common,
        bookmark: Some(bm.name.clone()),
        to: first.name.clone(),
        kind: TransferKind::Incremental,
        snapshots: 1,
    }];
    steps.extend(crate::plan::steps(source, Some(first.name.clone()), rest));
    steps
}

/// One bookmark to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Make {
    /// Index into the jobs.
    pub job: usize,
    /// The snapshot (after `@`) of the job's source.
    pub snapshot: String,
    /// The new bookmark's name (after `#`).
    pub name: String,
}

/// The bookmarks to make after the transfers: per job, of the newest
/// snapshot it received, unless the source has a bookmark of that name
/// already (`existing`, by source dataset).
pub fn to_make(
    jobs: &[Job],
    done: &[Done],
    existing: &BTreeMap<String, Vec<Snapshot>>,
    target_guid: u64,
) -> Vec<Make> {
    jobs.iter()
        .zip(done)
        .enumerate()
        .filter_map(|(j, (job, d))| {
            let newest = d.received(job).last()?;
            let name = zfs::bookmark_name(&newest.to, target_guid);
            let has = existing
                .get(&job.source)
                .is_some_and(|l| l.iter().any(|b| b.name == name));
            (!has).then(|| Make {
                job: j,
                snapshot: newest.to.clone(),
                name,
            })
        })
        .collect()
}

/// Whether any job received something: only then is the target's guid read.
fn any_received(jobs: &[Job], done: &[Done]) -> bool {
    jobs.iter()
        .zip(done)
        .any(|(j, d)| d.received(j).next().is_some())
}

/// For the lab tests only: when set (to anything), zab-send never runs a
/// channel program and makes one bookmark per `zfs bookmark`, as on a host
/// that cannot run one, so that both ways are tested on the same OpenZFS.
pub const NO_PROGRAM_ENV: &str = "ZAB_SEND_NO_PROGRAM";

/// Makes the bookmarks, each noted in its record: one channel program per
/// source host and pool (and batch), or one `zfs bookmark` per dataset
/// where the host runs none. A bookmark that cannot be made (one of that
/// name made since the listing, a source pool without the `bookmarks`
/// feature) is a warning and a note: what was sent is whole, and the next
/// run goes on from the common snapshot as without bookmarks.
pub fn make(ctx: &Ctx, jobs: &[Job], done: &mut [Done]) {
    if !any_received(jobs, done) {
        return;
    }
    let target_path = &ctx.cfg.target_path;
    // Its guid came with the target tree's listing: no call of its own.
    let Some(guid) = ctx.world.tree.get(target_path).and_then(|t| t.guid) else {
        ctx.log.warn(format!(
            "[Target] the listing of {target_path} has no guid, no bookmarks made"
        ));
        return;
    };
    let makes = to_make(jobs, done, &ctx.world.bookmarks, guid);
    let one_by_one = match std::env::var_os(NO_PROGRAM_ENV) {
        Some(_) => (0..makes.len()).collect(),
        None => by_program(ctx, jobs, &makes, done),
    };
    for i in one_by_one {
        let m = &makes[i];
        let job = &jobs[m.job];
        let argv = zfs::bookmark_args(&job.source, &m.snapshot, &m.name);
        let made = ctx.hosts[job.host]
            .output(&argv)
            .map(|_| ())
            .map_err(|e| e.to_string());
        note(ctx, job, m, &mut done[m.job], made);
    }
}

/// Makes `makes` by one channel program per source host and pool (and
/// batch); returns those left to make one by one: every one of a host
/// where a program failed as a whole (not root, say), so that each record
/// says exactly which bookmark failed. The first program on a host is its
/// probe: nothing else is run to ask whether it takes them.
fn by_program(ctx: &Ctx, jobs: &[Job], makes: &[Make], done: &mut [Done]) -> Vec<usize> {
    let mut left = Vec::new();
    let mut no_program: BTreeSet<usize> = BTreeSet::new();
    for ((h, pool), idx) in by_pool(jobs, makes) {
        let host = &ctx.hosts[h];
        let pairs: Vec<Pair> = idx.iter().map(|&i| pair(jobs, &makes[i])).collect();
        for r in batches(&pairs) {
            if no_program.contains(&h) {
                left.extend_from_slice(&idx[r]);
                continue;
            }
            let out = host
                .output_fed(&program_args(pool, &pairs[r.clone()]), PROGRAM)
                .map_err(|e| e.to_string());
            match out.and_then(|o| parse_program(&o)) {
                Ok(failed) => {
                    for (&i, made) in idx[r.clone()]
                        .iter()
                        .zip(outcomes(pool, &pairs[r], &failed))
                    {
                        let m = &makes[i];
                        note(ctx, &jobs[m.job], m, &mut done[m.job], made);
                    }
                }
                Err(e) => {
                    ctx.log.debug(format!(
                        "a channel program on {} failed: {e}; one zfs bookmark per dataset",
                        host.name()
                    ));
                    no_program.insert(h);
                    left.extend_from_slice(&idx[r]);
                }
            }
        }
    }
    left
}

/// `makes` (their indices) by source host and pool: one program each.
fn by_pool<'a>(jobs: &'a [Job], makes: &[Make]) -> BTreeMap<(usize, &'a str), Vec<usize>> {
    let mut out: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
    for (i, m) in makes.iter().enumerate() {
        let job = &jobs[m.job];
        let pool = job.source.split('/').next().unwrap_or(&job.source);
        out.entry((job.host, pool)).or_default().push(i);
    }
    out
}

/// The full names of bookmark `m`.
fn pair(jobs: &[Job], m: &Make) -> Pair {
    Pair::new(&jobs[m.job].source, &m.snapshot, &m.name)
}

/// What became of each of `pairs` by the program on `pool` that could not
/// make `failed` (bookmark to errno).
fn outcomes(pool: &str, pairs: &[Pair], failed: &BTreeMap<String, i32>) -> Vec<Result<(), String>> {
    pairs
        .iter()
        .map(|p| match failed.get(&p.bookmark) {
            None => Ok(()),
            Some(&errno) => Err(format!(
                "a channel program on {pool}: {}: {}",
                p.bookmark,
                errno_text(errno)
            )),
        })
        .collect()
}

/// Notes in `job`'s record (`d`) that bookmark `m` was made, or why not.
fn note(ctx: &Ctx, job: &Job, m: &Make, d: &mut Done, made: Result<(), String>) {
    match made {
        Ok(()) => {
            ctx.log
                .verbose(format!("[Source] {}#{}: bookmarked", job.source, m.name));
            d.notes.push(format!("bookmarked as #{}", m.name));
        }
        Err(e) => {
            let why = format!("bookmarking @{} failed: {e}", m.snapshot);
            ctx.log.warn(format!("[Source] {}: {why}", job.source));
            d.notes.push(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::testing::{done, job};
    use crate::plan::tests::{fmt, opts, target};
    use crate::plan::{plan, Resume, Target};
    use zab_core::schedule::Schedule;

    fn snap(name: &str, txg: u64, guid: u64) -> Snapshot {
        Snapshot::new(name, txg, guid)
    }

    /// Our snapshot of 2026-11-2D 00:00 UTC, txg 100 + D, guid 1000 + D.
    fn ours(d: u64) -> Snapshot {
        snap(&format!("bk-202611{d:02}000000"), 100 + d, 1000 + d)
    }

    /// The plan of p/a from `src` and its bookmarks `bms` into `t`, the
    /// target keeping 10.
    fn plan_of(
        src: &[Snapshot],
        bms: &[Snapshot],
        t: &Target,
        raw: bool,
        token_to: Option<&str>,
    ) -> crate::plan::Plan {
        let (f, keep) = (fmt(), Schedule::parse("10").unwrap());
        plan("p/a", src, bms, Some(t), raw, token_to, &opts(&f, &keep))
    }

    /// (from, bookmark, to, snapshots) of each step.
    fn shape(p: &crate::plan::Plan) -> Vec<(Option<&str>, Option<&str>, &str, usize)> {
        p.steps
            .iter()
            .map(|s| {
                (
                    s.from.as_deref(),
                    s.bookmark.as_deref(),
                    s.to.as_str(),
                    s.snapshots,
                )
            })
            .collect()
    }

    #[test]
    fn the_common_snapshot_gone_the_bookmark_goes_on_with_i_then_as_usual() {
        // The target has 1 and 2; the source lost both, and keeps 2 as a bookmark.
        let src = [ours(3), ours(4), ours(5)];
        let bms = [
            snap("bk-20261102000000_77", 102, 1002),
            snap("other", 90, 9),
        ];
        let t = target(&[ours(1), ours(2)]);
        let p = plan_of(&src, &bms, &t, false, None);
        assert_eq!(p.error, None);
        assert_eq!(p.common.as_deref(), Some("bk-20261102000000"));
        assert_eq!(
            shape(&p),
            vec![
                (
                    Some("bk-20261102000000"),
                    Some("bk-20261102000000_77"),
                    "bk-20261103000000",
                    1
                ),
                (Some("bk-20261103000000"), None, "bk-20261105000000", 2),
            ]
        );
        assert!(p.steps.iter().all(|s| s.kind == TransferKind::Incremental));
    }

    #[test]
    fn a_bookmark_is_found_by_guid_whatever_its_name() {
        let src = [ours(3)];
        let t = target(&[ours(2)]);
        let p = plan_of(&src, &[snap("random", 102, 1002)], &t, false, None);
        assert_eq!(
            shape(&p),
            vec![(
                Some("bk-20261102000000"),
                Some("random"),
                "bk-20261103000000",
                1
            )]
        );
    }

    #[test]
    fn a_bookmark_of_another_guid_is_no_base_and_the_error_stays() {
        let src = [ours(3)];
        // The target rolled back to, or received, another snapshot of that name.
        let mut other = ours(2);
        other.guid = 5;
        let bms = [snap("bk-20261102000000_77", 102, 1002)];
        let p = plan_of(&src, &bms, &target(&[other]), false, None);
        assert!(
            p.error.as_deref().unwrap().contains("no common snapshot"),
            "{p:?}"
        );
        assert!(p.steps.is_empty() && p.destroy.is_empty() && p.rollback.is_none());
    }

    #[test]
    fn a_common_snapshot_newer_than_the_bookmark_wins() {
        let src = [ours(2), ours(3)];
        let bms = [snap("bk-20261101000000_77", 101, 1001)];
        let p = plan_of(&src, &bms, &target(&[ours(1), ours(2)]), false, None);
        assert_eq!(
            shape(&p),
            vec![(Some("bk-20261102000000"), None, "bk-20261103000000", 1)]
        );
        // Up to date from a bookmark: nothing to send, no error.
        let p = plan_of(&[ours(0)], &bms, &target(&[ours(1)]), false, None);
        assert!(p.steps.is_empty());
        assert_eq!(p.common.as_deref(), Some("bk-20261101000000"));
    }

    #[test]
    fn target_snapshots_after_the_bookmarked_one_block_as_after_a_common_one() {
        let src = [ours(3)];
        let bms = [snap("bk-20261101000000_77", 101, 1001)];
        let mut t = target(&[ours(1)]);
        t.snapshots.push((snap("manual", 150, 7), 4096));
        let p = plan_of(&src, &bms, &t, false, None);
        assert_eq!(p.incompatible, vec!["manual"]);
        assert!(p.error.is_some());
        // Raw: every one after it blocks.
        t.snapshots[1].1 = 0;
        let p = plan_of(&src, &bms, &t, true, None);
        assert_eq!(p.incompatible, vec!["manual"]);
    }

    #[test]
    fn a_resume_token_to_the_first_snapshot_resumes_the_bookmark_step() {
        let src = [ours(3), ours(4)];
        let bms = [snap("b", 102, 1002)];
        let mut t = target(&[ours(2)]);
        t.token = Some("1-ab".into());
        let p = plan_of(&src, &bms, &t, false, Some("bk-20261103000000"));
        assert_eq!(p.resume, Resume::Continue("1-ab".into()));
        assert_eq!(p.steps[0].kind, TransferKind::Resumed);
        assert_eq!(p.steps.len(), 2);
    }

    #[test]
    fn the_newest_received_snapshot_is_bookmarked_once() {
        let two = [
            (Some("1"), "2", TransferKind::Incremental),
            (Some("2"), "3", TransferKind::Incremental),
        ];
        let jobs = [
            job("p/a", "t/a", Some("1"), &two),
            job(
                "p/b",
                "t/b",
                Some("1"),
                &[(Some("1"), "2", TransferKind::Incremental)],
            ),
            job("p/c", "t/c", Some("1"), &two),
            job("p/d", "t/d", Some("1"), &[]),
        ];
        // a: both received; b: received, already bookmarked; c: the second failed; d: up to date.
        let dones = [
            done(2, false),
            done(1, false),
            done(1, true),
            done(0, false),
        ];
        let existing: BTreeMap<String, Vec<Snapshot>> =
            [("p/b".to_string(), vec![snap("2_9", 1, 1)])]
                .into_iter()
                .collect();
        let m = to_make(&jobs, &dones, &existing, 9);
        assert_eq!(
            m,
            vec![
                Make {
                    job: 0,
                    snapshot: "3".into(),
                    name: "3_9".into()
                },
                Make {
                    job: 2,
                    snapshot: "2".into(),
                    name: "2_9".into()
                },
            ]
        );
        assert!(any_received(&jobs, &dones));
        assert!(!any_received(&jobs[3..], &dones[3..]));
    }

    #[test]
    fn one_program_per_source_host_and_pool() {
        let mut jobs = vec![
            job("p/a", "t/a", None, &[]),
            job("q/b", "t/b", None, &[]),
            job("p/a/c", "t/a/c", None, &[]),
            job("p/d", "t/d", None, &[]),
        ];
        // p/d is on another source host.
        jobs[3].host = 1;
        let makes: Vec<Make> = (0..4)
            .map(|j| Make {
                job: j,
                snapshot: "s".into(),
                name: "s_9".into(),
            })
            .collect();
        let groups: Vec<((usize, &str), Vec<usize>)> = by_pool(&jobs, &makes).into_iter().collect();
        assert_eq!(
            groups,
            vec![
                ((0, "p"), vec![0, 2]),
                ((0, "q"), vec![1]),
                ((1, "p"), vec![3])
            ]
        );
        assert_eq!(
            pair(&jobs, &makes[2]),
            Pair {
                snapshot: "p/a/c@s".into(),
                bookmark: "p/a/c#s_9".into()
            }
        );
    }

    #[test]
    fn a_bookmark_the_program_could_not_make_fails_alone() {
        let pairs = [Pair::new("p/a", "s", "s_9"), Pair::new("p/b", "s", "s_9")];
        let failed: BTreeMap<String, i32> = [("p/b#s_9".to_string(), 17)].into_iter().collect();
        let o = outcomes("p", &pairs, &failed);
        assert_eq!(o[0], Ok(()));
        let e = o[1].clone().unwrap_err();
        assert!(
            e.starts_with("a channel program on p: p/b#s_9: File exists"),
            "{e}"
        );
        assert!(outcomes("p", &pairs, &BTreeMap::new())
            .iter()
            .all(Result::is_ok));
    }
}
