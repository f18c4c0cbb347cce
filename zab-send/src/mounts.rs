//! What to mount after a run, and in which order, as a pure function of
//! one `zfs get` of the received subtrees.
//!
//! zfs-autobackup 3.3 mounts each filesystem received for the first time
//! (canmount=on, a mountpoint path, its key loaded). A first receive with
//! `-F` onto a dataset that exists (a pool root with `--force`) unmounts
//! its whole subtree and `-u` leaves it so; and mounting by name in the
//! order of the records can mount a parent over its children, hiding them
//! (and the pool then cannot be exported). So the mounts follow the tree:
//! every mountable filesystem of the received subtrees that is not mounted
//! is mounted, shallowest mountpoint first; a mounted filesystem below a
//! mountpoint to be used is unmounted first (deepest first) and mounted
//! again after it; a mountpoint already in use is left alone. [`plan`]
//! decides, purely; [`apply`] reads the subtrees and carries it out.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::record::TransferKind;
use zab_core::zfs::{self, is_under, replicate, DatasetType, PropRow};
use zab_core::Host;

use crate::execute::Done;
use crate::holds;
use crate::jobs::Job;

/// The columns read: `zfs get -t filesystem -r PROPS ROOTS`.
pub const PROPS: &[&str] = &["mounted", "mountpoint", "canmount", "keystatus"];

/// A filesystem as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fs {
    pub name: String,
    pub mounted: bool,
    pub mountpoint: String,
    pub canmount: String,
    /// Its key is not loaded (keystatus=unavailable).
    pub locked: bool,
}

/// Groups the rows of `zfs get -H -p -o name,property,value,source` by
/// filesystem, in the order zfs listed them.
pub fn filesystems(rows: &[PropRow]) -> Vec<Fs> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Fs> = BTreeMap::new();
    for r in rows {
        let fs = by.entry(r.name.clone()).or_insert_with(|| {
            order.push(r.name.clone());
            Fs {
                name: r.name.clone(),
                mounted: false,
                mountpoint: String::new(),
                canmount: String::new(),
                locked: false,
            }
        });
        match r.property.as_str() {
            "mounted" => fs.mounted = r.value == "yes",
            "mountpoint" => fs.mountpoint = r.value.clone(),
            "canmount" => fs.canmount = r.value.clone(),
            "keystatus" => fs.locked = r.value == "unavailable",
            _ => {}
        }
    }
    order.into_iter().filter_map(|n| by.remove(&n)).collect()
}

/// One step, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `zfs unmount NAME`: mounted below a mountpoint about to be used.
    Unmount(String),
    /// `zfs mount NAME`.
    Mount(String),
    /// `zfs mount -R NAME`: it and every filesystem below it, all to be
    /// mounted (the names), with their mountpoints under its own.
    MountRecursive(String, Vec<String>),
}

/// The steps, and the filesystems left unmounted with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub skipped: Vec<(String, String)>,
}

/// `path` is strictly below `dir`.
pub fn path_below(path: &str, dir: &str) -> bool {
    path != dir
        && (dir == "/"
            || path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/')))
}

fn is_path(mp: &str) -> bool {
    mp.starts_with('/')
}

/// Plans the mounts of `all` (the filesystems of the received subtrees,
/// as read after the transfers) for the subtrees of `fresh` (the
/// filesystems received for the first time).
pub fn plan(all: &[Fs], fresh: &[String]) -> Plan {
    let in_scope = |f: &Fs| fresh.iter().any(|r| is_under(&f.name, r));
    let mut out = Plan::default();
    // To mount: not mounted, mountable, in a received subtree.
    let mut want: Vec<&Fs> = all
        .iter()
        .filter(|f| {
            in_scope(f) && !f.mounted && f.canmount == "on" && is_path(&f.mountpoint) && !f.locked
        })
        .collect();
    // A mountpoint in use stays with its filesystem.
    let in_use: BTreeMap<&str, &str> = all
        .iter()
        .filter(|f| f.mounted && is_path(&f.mountpoint))
        .map(|f| (f.mountpoint.as_str(), f.name.as_str()))
        .collect();
    want.retain(|f| match in_use.get(f.mountpoint.as_str()) {
        Some(other) => {
            out.skipped.push((
                f.name.clone(),
                format!("its mountpoint {} is in use by {other}", f.mountpoint),
            ));
            false
        }
        None => true,
    });
    // Mounted below a mountpoint to be used: unmounted first, then again.
    let covered: Vec<&Fs> = all
        .iter()
        .filter(|f| {
            f.mounted
                && is_path(&f.mountpoint)
                && want
                    .iter()
                    .any(|w| path_below(&f.mountpoint, &w.mountpoint))
        })
        .collect();
    let key = |f: &&Fs| {
        let parts: Vec<String> = f
            .mountpoint
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        (parts, f.name.clone())
    };
    let mut unmount = covered.clone();
    unmount.sort_by_key(key);
    out.steps
        .extend(unmount.iter().rev().map(|f| Step::Unmount(f.name.clone())));
    let mut mount: Vec<&Fs> = want.into_iter().chain(covered).collect();
    mount.sort_by_key(key);
    // Two to mount on one mountpoint: the first only.
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    mount.retain(|f| {
        if taken.insert(f.mountpoint.as_str()) {
            return true;
        }
        out.skipped.push((
            f.name.clone(),
            format!("its mountpoint {} is taken by another", f.mountpoint),
        ));
        false
    });
    out.steps.extend(mount_steps(all, &mount));
    out
}

/// The mount steps of `mount` (in order): `zfs mount -R` where it mounts
/// exactly these and in this order (every filesystem below the root is to
/// be mounted, under the root's mountpoint, and nothing else to mount goes
/// under that mountpoint), `zfs mount` for the others.
fn mount_steps(all: &[Fs], mount: &[&Fs]) -> Vec<Step> {
    let mut steps = Vec::new();
    let names: Vec<String> = mount.iter().map(|f| f.name.clone()).collect();
    let affected: BTreeSet<String> = all.iter().map(|f| f.name.clone()).collect();
    let (roots, _) = holds::dataset_roots(&names, &affected);
    let fits = |root: &str| {
        let Some(r) = mount.iter().find(|f| f.name == root) else {
            return false;
        };
        mount.iter().all(|f| {
            let below_name = is_under(&f.name, root);
            let below_path =
                f.mountpoint == r.mountpoint || path_below(&f.mountpoint, &r.mountpoint);
            below_name == below_path
        })
    };
    let roots: Vec<&String> = roots.iter().filter(|r| fits(r)).collect();
    for f in mount {
        match roots.iter().find(|r| is_under(&f.name, r)) {
            Some(r) if **r == f.name => {
                let below = names.iter().filter(|n| is_under(n, r)).cloned().collect();
                steps.push(Step::MountRecursive(f.name.clone(), below));
            }
            Some(_) => {}
            None => steps.push(Step::Mount(f.name.clone())),
        }
    }
    steps
}

/// The filesystems received for the first time (a full or resumed
/// transfer done, no common snapshot before): the subtrees to mount.
pub fn fresh(jobs: &[Job], done: &[Done]) -> Vec<String> {
    jobs.iter()
        .zip(done)
        .filter(|(job, d)| {
            job.kind == DatasetType::Filesystem
                && d.received(job).any(|s| s.kind != TransferKind::Incremental)
                && job.plan.common.is_none()
        })
        .map(|(job, _)| job.target.clone())
        .collect()
}

/// The roots of `fresh` (none under another): what `zfs get -r` reads.
pub fn roots(fresh: &[String]) -> Vec<&str> {
    fresh
        .iter()
        .filter(|f| !fresh.iter().any(|o| o != *f && is_under(f, o)))
        .map(String::as_str)
        .collect()
}

/// Mounts what [`plan`] says, after one `zfs get` of the received
/// subtrees, as zfs-autobackup 3.3 does: a `zfs mount -R` per subtree
/// mounted whole, a `zfs mount` per other one, an unmount first of what a
/// parent would hide. Every failure is a warning; each job mounted gets a
/// note.
pub fn apply(target: &Host, log: &Log, jobs: &[Job], done: &mut [Done]) {
    let fresh = fresh(jobs, done);
    if fresh.is_empty() {
        return;
    }
    let argv = zfs::get_args(&["filesystem"], PROPS, &roots(&fresh));
    let all = match zfs::query(target, &argv, zfs::parse_get) {
        Ok(rows) => filesystems(&rows),
        Err(e @ Error::Parse { .. }) => {
            log.warn(format!("[Target] reading mount properties: {e}"));
            return;
        }
        Err(e) => {
            log.warn(format!("[Target] reading mount properties failed: {e}"));
            return;
        }
    };
    let plan = plan(&all, &fresh);
    for (name, why) in &plan.skipped {
        log.warn(format!("[Target] {name}: not mounted: {why}"));
    }
    let m = Mounter {
        target,
        log,
        all: &all,
    };
    let mounted = m.run(&plan.steps);
    for (job, d) in jobs.iter().zip(done.iter_mut()) {
        if mounted.contains(&job.target) {
            d.notes
                .push(format!("mounted on {}", m.mountpoint(&job.target)));
        }
    }
}

/// Carries out mount steps on the target.
struct Mounter<'a> {
    target: &'a Host,
    log: &'a Log,
    all: &'a [Fs],
}

impl Mounter<'_> {
    fn mountpoint(&self, name: &str) -> String {
        self.all
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.mountpoint.clone())
            .unwrap_or_default()
    }

    /// The steps in order; the filesystems mounted.
    fn run(&self, steps: &[Step]) -> BTreeSet<String> {
        // Mountpoints still in use below which nothing may be mounted now.
        let mut stuck: Vec<String> = Vec::new();
        let mut mounted: BTreeSet<String> = BTreeSet::new();
        for step in steps {
            match step {
                Step::Unmount(name) => {
                    if let Err(e) = self.target.output(&replicate::unmount_args(name)) {
                        self.log.warn(format!(
                            "[Target] {name}: unmounting (to mount its parent first) failed: {e}"
                        ));
                        stuck.push(self.mountpoint(name));
                    }
                }
                Step::Mount(name) => {
                    if self.mount_one(name, &stuck) {
                        mounted.insert(name.clone());
                    }
                }
                Step::MountRecursive(root, below) => {
                    if self.mount_tree(root, &stuck) {
                        mounted.extend(below.iter().cloned());
                    } else {
                        for name in below {
                            if self.mount_one(name, &stuck) {
                                mounted.insert(name.clone());
                            }
                        }
                    }
                }
            }
        }
        mounted
    }

    /// `zfs mount -R ROOT`, unless something below it is stuck; false when
    /// not done (then by name).
    fn mount_tree(&self, root: &str, stuck: &[String]) -> bool {
        let mp = self.mountpoint(root);
        if stuck.iter().any(|s| path_below(s, &mp)) {
            return false;
        }
        match self.target.output(&replicate::mount_recursive_args(root)) {
            Ok(_) => true,
            Err(e) => {
                self.log
                    .debug(format!("zfs mount -R {root} failed ({e}): by name instead"));
                false
            }
        }
    }

    fn mount_one(&self, name: &str, stuck: &[String]) -> bool {
        let mp = self.mountpoint(name);
        if let Some(s) = stuck.iter().find(|s| path_below(s, &mp)) {
            self.log.warn(format!(
                "[Target] {name}: not mounted: {s} below it could not be unmounted"
            ));
            return false;
        }
        match self.target.output(&replicate::mount_args(name)) {
            Ok(_) => true,
            // Mounted by a `zfs mount -R` that failed further on.
            Err(Error::Command(c)) if c.stderr.contains("already mounted") => true,
            Err(e) => {
                self.log
                    .warn(format!("[Target] {name}: mounting failed: {e}"));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_are_the_first_receives_of_filesystems() {
        use crate::jobs::testing::{done, job};
        use zab_core::record::TransferKind::{Full, Incremental, Resumed};
        let mut vol = job("p/v", "t/v", None, &[(None, "1", Full)]);
        vol.kind = DatasetType::Volume;
        let jobs = [
            job("p/a", "t/a", None, &[(None, "1", Full)]),
            job("p/a/b", "t/a/b", None, &[(None, "1", Resumed)]),
            job("p/c", "t/c", Some("1"), &[(Some("1"), "2", Incremental)]),
            job("p/d", "t/d", None, &[(None, "1", Full)]),
            vol,
        ];
        let done = [
            done(1, false),
            done(1, false),
            done(1, false),
            done(0, true),
            done(1, false),
        ];
        let f = fresh(&jobs, &done);
        assert_eq!(f, vec!["t/a", "t/a/b"]);
        assert_eq!(roots(&f), vec!["t/a"]);
    }

    fn fs(name: &str, mounted: bool, mp: &str, canmount: &str) -> Fs {
        Fs {
            name: name.into(),
            mounted,
            mountpoint: mp.into(),
            canmount: canmount.into(),
            locked: false,
        }
    }

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn mounts(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::Unmount(n) => format!("umount {n}"),
                Step::Mount(n) => format!("mount {n}"),
                Step::MountRecursive(n, b) => format!("mount -R {n} ({})", b.len()),
            })
            .collect()
    }

    #[test]
    fn reading_the_rows() {
        let out = "t\tmounted\tno\t-\nt\tmountpoint\t/t\tdefault\nt\tcanmount\ton\tdefault\n\
                   t\tkeystatus\t-\t-\nt/e\tmounted\tno\t-\nt/e\tmountpoint\t/t/e\tdefault\n\
                   t/e\tcanmount\ton\tdefault\nt/e\tkeystatus\tunavailable\t-\n";
        let rows = zab_core::zfs::parse_get(out).unwrap();
        assert_eq!(
            filesystems(&rows),
            vec![
                fs("t", false, "/t", "on"),
                Fs {
                    locked: true,
                    ..fs("t/e", false, "/t/e", "on")
                }
            ]
        );
    }

    #[test]
    fn a_pool_root_received_over_its_mounted_children() {
        // t received full with -F (unmounted, and so is t/c, from before);
        // t/x/b first received under t/x (created, canmount=off), listed
        // before t; t/d mounted still (not touched by the receive). No
        // parent is mounted over a mounted child.
        let all = vec![
            fs("t", false, "/t", "on"),
            fs("t/a", false, "/t/a", "on"),
            fs("t/c", false, "/t/c", "on"),
            fs("t/d", true, "/t/d", "on"),
            fs("t/x", false, "/t/x", "off"),
            fs("t/x/b", false, "/t/x/b", "on"),
        ];
        let p = plan(&all, &v(&["t/x/b", "t", "t/a"]));
        assert_eq!(
            mounts(&p),
            v(&[
                "umount t/d",
                "mount t",
                "mount t/a",
                "mount t/c",
                "mount t/d",
                "mount t/x/b"
            ])
        );
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn one_recursive_mount_where_the_whole_subtree_is_to_mount() {
        let all = vec![
            fs("t", true, "/t", "on"),
            fs("t/n", false, "/t/n", "on"),
            fs("t/n/a", false, "/t/n/a", "on"),
            fs("t/n/a/b", false, "/t/n/a/b", "on"),
            fs("t/m", false, "/t/m", "on"),
            fs("t/m/off", false, "/t/m/off", "noauto"),
            fs("t/m/a", false, "/t/m/a", "on"),
        ];
        let p = plan(&all, &v(&["t/n", "t/m"]));
        assert_eq!(
            mounts(&p),
            v(&["mount t/m", "mount t/m/a", "mount -R t/n (3)"])
        );
        // A mountpoint elsewhere breaks the tree order: by name.
        let mut all = all;
        all[2].mountpoint = "/elsewhere".into();
        let p = plan(&all, &v(&["t/n"]));
        assert_eq!(
            mounts(&p),
            v(&["mount t/n/a", "mount t/n", "mount t/n/a/b"])
        );
    }

    #[test]
    fn what_is_left_alone() {
        let all = vec![
            fs("t/a", false, "none", "on"),
            fs("t/b", false, "legacy", "on"),
            fs("t/c", false, "/t/c", "noauto"),
            fs("t/d", false, "/t/d", "off"),
            Fs {
                locked: true,
                ..fs("t/e", false, "/t/e", "on")
            },
            fs("t/f", false, "/t/used", "on"),
            fs("t/g", true, "/t/used", "on"),
            fs("t/h", false, "/t/twice", "on"),
            fs("t/i", false, "/t/twice", "on"),
            // Not received in this run.
            fs("u", false, "/u", "on"),
        ];
        let fresh = v(&["t/a", "t/b", "t/c", "t/d", "t/e", "t/f", "t/h", "t/i"]);
        let p = plan(&all, &fresh);
        assert_eq!(mounts(&p), v(&["mount t/h"]));
        let skipped: Vec<&str> = p.skipped.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(skipped, ["t/f", "t/i"]);
        assert!(p.skipped[0].1.contains("in use by t/g"), "{:?}", p.skipped);
    }

    #[test]
    fn paths_below() {
        assert!(path_below("/t/a", "/t"));
        assert!(path_below("/t", "/"));
        assert!(!path_below("/t", "/t"));
        assert!(!path_below("/tt", "/t"));
    }
}
