//! The plan of a restore, a pure function of the dataset's manifest, the
//! objects listed in the store and the target's snapshots: which chain of
//! objects ends at the snapshot asked for (or at the newest one whose
//! chain is whole), and which of its objects the target still needs.
//!
//! A chain is walked back as zfs3backup walks its `parent` links: from an
//! incremental to the newest earlier object that carries its parent (same
//! name and guid), down to a full stream. An object read from zfs3backup's
//! metadata has no guid (0): it is matched by name, as zfs3backup matches
//! it, and `zfs recv` refuses an incremental whose base is not the
//! target's snapshot.
//!
//! Also here, for the whole run ([`decide`]): the parents --all creates,
//! whether a partial receive on a target goes on inside its object
//! ([`resumable`]) or is aborted first, and each object's receiving
//! command line (`zfs recv OPTIONS -s TARGET`: a receive cut short leaves
//! its partial state, and the next run goes on from there).

use zab_store::manifest::{Entry, Manifest};

use crate::gather::World;
use crate::resume::Token;

/// A snapshot the target has: its name (after `@`) and guid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Have {
    pub name: String,
    pub guid: u64,
}

/// What to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The snapshot restored to (after `@`).
    pub snapshot: String,
    /// The whole chain, full stream first.
    pub chain: Vec<&'a Entry>,
    /// The objects still to receive, in order (the end of `chain`).
    pub todo: Vec<&'a Entry>,
    /// The target's snapshot the first of `todo` goes on from, when the
    /// target has one of the chain.
    pub from: Option<String>,
}

/// The target as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// It exists: its snapshots, and a partial receive's resume token.
    Exists {
        snapshots: Vec<Have>,
        token: Option<String>,
    },
    /// It does not exist; whether its parent does.
    Missing { parent_exists: bool },
}

/// One dataset's restore, decided.
#[derive(Debug)]
pub struct Restore<'a> {
    /// The resume token of a partial receive on the target: aborted first
    /// (`zfs recv -A`), unless it goes on (`resume`), and then only if the
    /// resuming stream cannot be made after all; the object cut short is
    /// then received again from its start.
    pub abort: Option<String>,
    /// The partial receive goes on inside the first object of `plan.todo`
    /// (docs/store.md, "Going on inside an object").
    pub resume: Option<Token>,
    /// Why a partial receive does not go on (--verbose says it).
    pub no_resume: Option<String>,
    pub plan: Plan<'a>,
    /// The shell line that receives each object of `plan.todo`.
    pub lines: Vec<String>,
    /// The line that receives the resuming stream (`resume`): `zfs recv`
    /// alone, as a compressed object is decompressed here for it.
    pub resume_line: String,
}

/// The whole run, decided.
#[derive(Debug)]
pub struct Plans<'a> {
    /// --all: the parents to create, parents first.
    pub parents: Vec<String>,
    /// Each job's restore, or why there is none.
    pub datasets: Vec<Result<Restore<'a>, String>>,
}

/// Every dataset's restore from what was read; `recv_options` are `zfs
/// recv`'s, `host` names the receiving host in messages.
pub fn decide<'a>(
    world: &'a World,
    target_path: Option<&str>,
    recv_options: &[String],
    host: &str,
) -> Plans<'a> {
    let targets: Vec<String> = world.jobs.iter().map(|j| j.target.clone()).collect();
    let parents = match (target_path, &world.tree) {
        (Some(path), Some(tree)) => {
            let existing: Vec<String> = tree.datasets.iter().map(|(d, _)| d.clone()).collect();
            parents_to_create(&targets, path, &existing)
        }
        _ => Vec::new(),
    };
    let datasets = world
        .jobs
        .iter()
        .zip(&world.datasets)
        .map(|(job, read)| {
            let read = read.as_ref().map_err(Clone::clone)?;
            let created = |p: &str| parents.iter().chain(&targets).any(|t| t == p);
            let have = target_snapshots(&read.target, &job.target, &created, host)?;
            let plan = plan(&read.manifest, &read.listed, job.snapshot.as_deref(), have)?;
            let mut options = recv_options.to_vec();
            options.push("-s".into());
            let recv = zab_core::zfs::replicate::recv_args(&options, &job.target);
            let lines = plan
                .todo
                .iter()
                .map(|e| target_line(e, &recv))
                .collect::<Result<Vec<_>, _>>()?;
            let (abort, resume, no_resume) = match &read.target {
                Target::Exists {
                    token: Some(token), ..
                } => match resumable(token, plan.todo.first().copied()) {
                    Ok(t) => (Some(token.clone()), Some(t), None),
                    Err(why) => (Some(token.clone()), None, Some(why)),
                },
                _ => (None, None, None),
            };
            Ok(Restore {
                abort,
                resume,
                no_resume,
                plan,
                lines,
                resume_line: zab_core::host::quote_argv(&recv),
            })
        })
        .collect();
    Plans { parents, datasets }
}

/// The partial receive of `token` goes on with `first`, the first object
/// still to receive, when it is that object's stream cut short, and the
/// resuming stream can be made from it here: a stream of one snapshot
/// (raw or not); a compressed one is decompressed here for it (receive.rs).
/// resume.rs refuses the rest of what it does not know while it streams,
/// and checks a zfs3backup object's guids (it has none in its metadata)
/// against its stream's BEGIN record. Else why not.
pub fn resumable(token: &str, first: Option<&Entry>) -> Result<Token, String> {
    let t = Token::decode(token)?;
    let Some(e) = first else {
        return Err("no object is left to receive".into());
    };
    let by_name = zab_store::zfs3backup::described(e) && e.guid == 0;
    if !by_name && (t.toguid != e.guid || t.fromguid != e.parent_guid.unwrap_or(0)) {
        return Err(format!(
            "it is of another stream than {}'s (guids {} to {})",
            e.key, t.fromguid, t.toguid
        ));
    }
    if e.snapshots.len() > 1 {
        return Err(format!("{} carries several snapshots (zfs send -I)", e.key));
    }
    if let Some(c) = &e.compressor {
        if zab_core::compress::decompressor(c).is_none() {
            return Err(format!(
                "{} is compressed with {c:?}, which zab does not know",
                e.key
            ));
        }
    }
    Ok(t)
}

/// The target's snapshots to plan with: None when it does not exist (its
/// parent must, or be `created` first), or when it is only a new
/// dataset's partial receive, which goes with `zfs recv -A`.
fn target_snapshots<'t>(
    target: &'t Target,
    name: &str,
    created: &dyn Fn(&str) -> bool,
    host: &str,
) -> Result<Option<&'t [Have]>, String> {
    match target {
        Target::Exists { snapshots, token } if token.is_some() && snapshots.is_empty() => Ok(None),
        Target::Exists { snapshots, .. } => Ok(Some(snapshots)),
        Target::Missing { parent_exists } => match zab_core::zfs::parent_of(name) {
            Some(parent) if !parent_exists && !created(parent) => Err(format!(
                "{parent}, the parent of {name}, does not exist on {host} (create it first)"
            )),
            _ => Ok(None),
        },
    }
}

/// The shell line that receives `e` with `recv_argv`: `zfs recv`, after
/// the decompressor of its compressor.
pub fn target_line(e: &Entry, recv_argv: &[String]) -> Result<String, String> {
    let recv = zab_core::host::quote_argv(recv_argv);
    match &e.compressor {
        None => Ok(recv),
        Some(name) => match zab_core::compress::decompressor(name) {
            Some(d) => Ok(format!("{d} | {recv}")),
            None => Err(format!(
                "{}: compressed with {name:?}, which this zab does not know",
                e.key
            )),
        },
    }
}

/// The chain that ends with object `idx`, full stream first
/// ([`zab_store::chain::walk`]); an error when a parent is in no earlier
/// object.
fn chain_to(m: &Manifest, idx: usize) -> Result<Vec<usize>, String> {
    let w = zab_store::chain::walk(m, idx);
    if w.complete {
        return Ok(w.entries);
    }
    let e = &m.objects[w.entries[0]];
    Err(match &e.parent {
        None => format!("{}: an incremental without a parent", e.key),
        Some(p) => format!("{}: its parent @{p} is in no earlier object", e.key),
    })
}

/// Whether every object of `chain` is in the store at its size.
fn whole(m: &Manifest, chain: &[usize], listed: &[(String, u64)]) -> Result<(), String> {
    for &i in chain {
        let e = &m.objects[i];
        match listed.iter().find(|(k, _)| k == &e.key) {
            None => return Err(format!("object {} is missing", e.key)),
            Some((_, size)) if *size != e.stored_bytes => {
                return Err(format!(
                    "object {} is incomplete ({size} bytes of {})",
                    e.key, e.stored_bytes
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The chain to restore: to `wanted`, or to the newest snapshot whose
/// chain is whole. One line of error naming the object when there is none.
fn choose(
    m: &Manifest,
    listed: &[(String, u64)],
    wanted: Option<&str>,
) -> Result<Vec<usize>, String> {
    match wanted {
        Some(s) => {
            let Some(idx) = m.objects.iter().rposition(|e| e.snapshot == s) else {
                return Err(match m
                    .objects
                    .iter()
                    .find(|e| e.snapshots.iter().any(|c| c.name == s))
                {
                    Some(e) => format!(
                        "@{s} is inside the stream of {} (zfs send -I): restore @{}, which brings @{s} with it",
                        e.key, e.snapshot
                    ),
                    None => format!("no object in the store carries @{s}"),
                });
            };
            let chain = chain_to(m, idx)?;
            whole(m, &chain, listed)?;
            Ok(chain)
        }
        None => {
            let mut first_problem = None;
            for idx in (0..m.objects.len()).rev() {
                match chain_to(m, idx).and_then(|c| whole(m, &c, listed).map(|()| c)) {
                    Ok(c) => return Ok(c),
                    Err(e) => {
                        first_problem.get_or_insert(e);
                    }
                }
            }
            Err(match first_problem {
                Some(p) => format!("no snapshot has a whole chain: {p}"),
                None => "the manifest lists no objects".into(),
            })
        }
    }
}

/// The plan: the chain, and what of it the target (its snapshots, None
/// when it does not exist) still needs. A target that exists must have a
/// snapshot of the chain: zab-restore never overwrites a dataset it does
/// not continue.
pub fn plan<'a>(
    m: &'a Manifest,
    listed: &[(String, u64)],
    wanted: Option<&str>,
    target: Option<&[Have]>,
) -> Result<Plan<'a>, String> {
    let idx = choose(m, listed, wanted)?;
    let chain: Vec<&Entry> = idx.iter().map(|&i| &m.objects[i]).collect();
    let last = chain.last().ok_or("an empty chain")?;
    let snapshot = last.snapshot.clone();
    let Some(have) = target else {
        return Ok(Plan {
            snapshot,
            todo: chain.clone(),
            chain,
            from: None,
        });
    };
    // By guid; by name for an object without one (zfs3backup's).
    let on_target = |e: &Entry| {
        have.iter()
            .find(|h| h.guid == e.guid || (e.guid == 0 && h.name == e.snapshot))
    };
    let done = chain.iter().rposition(|e| on_target(e).is_some());
    let Some(done) = done else {
        return Err(
            "the target exists and has no snapshot of the chain (no guid in common); \
             restore into a new dataset, or destroy it first"
                .into(),
        );
    };
    let from = on_target(chain[done]).map(|h| h.name.clone());
    Ok(Plan {
        snapshot,
        todo: chain[done + 1..].to_vec(),
        chain,
        from,
    })
}

/// --all: the datasets between TARGET-PATH and the targets that neither
/// exist nor are restored, parents first: zab-restore creates them
/// (canmount=off), as zab-send creates a target's missing parents.
pub fn parents_to_create(
    targets: &[String],
    target_path: &str,
    existing: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        let mut p = zab_core::zfs::parent_of(t);
        while let Some(d) = p {
            if d.len() <= target_path.len() {
                break;
            }
            let known = targets.iter().any(|x| x == d)
                || existing.iter().any(|x| x == d)
                || out.iter().any(|x| x == d);
            if !known {
                out.push(d.to_string());
            }
            p = zab_core::zfs::parent_of(d);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_store::manifest::fixtures::entry;

    /// s1 full; s3 from s1 carrying s2; s4 from s3; then a new chain: s5
    /// full, s6 from s5.
    fn manifest() -> Manifest {
        let mut m = Manifest::new("p/a");
        m.add(entry("s1", 1, None, &[]));
        m.add(entry("s3", 3, Some(("s1", 1)), &[("s2", 2)]));
        m.add(entry("s4", 4, Some(("s3", 3)), &[]));
        m.add(entry("s5", 5, None, &[]));
        m.add(entry("s6", 6, Some(("s5", 5)), &[]));
        m
    }

    fn all(m: &Manifest) -> Vec<(String, u64)> {
        m.objects.iter().map(|e| (e.key.clone(), 100)).collect()
    }

    fn keys(v: &[&Entry]) -> Vec<String> {
        v.iter().map(|e| e.snapshot.clone()).collect()
    }

    fn have(v: &[(&str, u64)]) -> Vec<Have> {
        v.iter()
            .map(|&(n, g)| Have {
                name: n.into(),
                guid: g,
            })
            .collect()
    }

    #[test]
    fn the_newest_whole_chain_by_default_and_a_snapshot_when_asked() {
        let m = manifest();
        let p = plan(&m, &all(&m), None, None).unwrap();
        assert_eq!(p.snapshot, "s6");
        assert_eq!(keys(&p.todo), ["s5", "s6"]);
        let p = plan(&m, &all(&m), Some("s4"), None).unwrap();
        assert_eq!(keys(&p.chain), ["s1", "s3", "s4"]);
        assert_eq!(p.from, None);
        let e = plan(&m, &all(&m), Some("s2"), None).unwrap_err();
        assert!(
            e.contains("inside the stream of p/a@s3") && e.contains("@s3"),
            "{e}"
        );
        let e = plan(&m, &all(&m), Some("s9"), None).unwrap_err();
        assert!(e.contains("no object"), "{e}");
    }

    #[test]
    fn a_missing_or_incomplete_object_skips_to_an_older_whole_chain() {
        let m = manifest();
        let listed: Vec<_> = all(&m).into_iter().filter(|(k, _)| k != "p/a@s5").collect();
        let p = plan(&m, &listed, None, None).unwrap();
        assert_eq!(keys(&p.chain), ["s1", "s3", "s4"]);
        let e = plan(&m, &listed, Some("s6"), None).unwrap_err();
        assert_eq!(e, "object p/a@s5 is missing");
        let mut listed = all(&m);
        listed[1].1 = 40;
        let e = plan(&m, &listed, Some("s4"), None).unwrap_err();
        assert!(e.contains("p/a@s3 is incomplete (40 bytes of 100)"), "{e}");
        let none: Vec<(String, u64)> = Vec::new();
        let e = plan(&m, &none, None, None).unwrap_err();
        assert!(e.starts_with("no snapshot has a whole chain"), "{e}");
    }

    #[test]
    fn a_parent_with_another_guid_is_no_parent() {
        let mut m = manifest();
        m.objects[2].parent_guid = Some(99);
        let e = plan(&m, &all(&m), Some("s4"), None).unwrap_err();
        assert!(
            e.contains("p/a@s4: its parent @s3 is in no earlier object"),
            "{e}"
        );
    }

    #[test]
    fn a_zfs3backup_chain_is_walked_and_continued_by_name() {
        // zfs3backup's objects (no guid, no hash), then zab's incremental
        // from its last one.
        let mut m = Manifest::new("p/a");
        for (s, p) in [("s1", None), ("s2", Some("s1")), ("s3", Some("s2"))] {
            let mut e = entry(s, 0, p.map(|p| (p, 0)), &[]);
            e.parent_guid = None;
            e.sha256 = String::new();
            m.add(e);
        }
        m.add(entry("s4", 4, Some(("s3", 3)), &[]));
        let p = plan(&m, &all(&m), None, None).unwrap();
        assert_eq!(keys(&p.todo), ["s1", "s2", "s3", "s4"]);
        // A target with zfs3backup's @s2 (its real guid) goes on by name.
        let t = have(&[("s1", 11), ("s2", 22)]);
        let p = plan(&m, &all(&m), None, Some(&t)).unwrap();
        assert_eq!(keys(&p.todo), ["s3", "s4"]);
        assert_eq!(p.from.as_deref(), Some("s2"));
        // A target with zab's @s4 by guid is up to date.
        let t = have(&[("s4", 4)]);
        assert!(plan(&m, &all(&m), None, Some(&t)).unwrap().todo.is_empty());
        // A middle object missing: no whole chain to @s4.
        let listed: Vec<_> = all(&m).into_iter().filter(|(k, _)| k != "p/a@s2").collect();
        let e = plan(&m, &listed, Some("s4"), None).unwrap_err();
        assert_eq!(e, "object p/a@s2 is missing");
    }

    #[test]
    fn a_target_goes_on_after_its_newest_snapshot_of_the_chain() {
        let m = manifest();
        let t = have(&[("s1", 1)]);
        let p = plan(&m, &all(&m), Some("s4"), Some(&t)).unwrap();
        assert_eq!(keys(&p.todo), ["s3", "s4"]);
        assert_eq!(p.from.as_deref(), Some("s1"));
        // Matched by guid, not by name.
        let t = have(&[("s1", 1), ("renamed", 3)]);
        let p = plan(&m, &all(&m), Some("s4"), Some(&t)).unwrap();
        assert_eq!(keys(&p.todo), ["s4"]);
        assert_eq!(p.from.as_deref(), Some("renamed"));
        // Up to date.
        let t = have(&[("s1", 1), ("s3", 3), ("s4", 4)]);
        let p = plan(&m, &all(&m), Some("s4"), Some(&t)).unwrap();
        assert!(p.todo.is_empty());
        // A target of another chain (or a same name with another guid).
        let t = have(&[("s4", 44)]);
        let e = plan(&m, &all(&m), Some("s4"), Some(&t)).unwrap_err();
        assert!(e.contains("no snapshot of the chain"), "{e}");
        let e = plan(&m, &all(&m), None, Some(&[])).unwrap_err();
        assert!(e.contains("no snapshot of the chain"), "{e}");
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A world of one job per target state, each of `manifest()`.
    fn world(targets: Vec<(&str, Target)>, existing: Option<&[&str]>) -> World {
        World {
            jobs: targets
                .iter()
                .map(|(t, _)| crate::gather::Job {
                    dataset: "p/a".into(),
                    snapshot: Some("s4".into()),
                    target: t.to_string(),
                })
                .collect(),
            tree: existing.map(|e| zab_core::zfs::Tree {
                datasets: e.iter().map(|d| (d.to_string(), None)).collect(),
                ..Default::default()
            }),
            datasets: targets
                .into_iter()
                .map(|(_, target)| {
                    let manifest = manifest();
                    Ok(crate::gather::Dataset {
                        listed: all(&manifest),
                        manifest,
                        target,
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn a_partial_receive_is_aborted_and_a_missing_parent_refused() {
        let token = Some("1-abc".to_string());
        let w = world(
            vec![
                // A partial receive on a dataset with snapshots: aborted,
                // and the chain goes on from its snapshot.
                (
                    "t/a",
                    Target::Exists {
                        snapshots: have(&[("s1", 1)]),
                        token: token.clone(),
                    },
                ),
                // A new dataset's partial receive: aborted, the whole chain.
                (
                    "t/b",
                    Target::Exists {
                        snapshots: Vec::new(),
                        token: token.clone(),
                    },
                ),
                (
                    "t/c",
                    Target::Missing {
                        parent_exists: true,
                    },
                ),
                (
                    "u/d",
                    Target::Missing {
                        parent_exists: false,
                    },
                ),
            ],
            None,
        );
        let p = decide(&w, None, &["-u".to_string()], "lab");
        assert!(p.parents.is_empty());
        let ok = |i: usize| p.datasets[i].as_ref().unwrap();
        assert_eq!(ok(0).abort, token);
        assert_eq!(keys(&ok(0).plan.todo), ["s3", "s4"]);
        assert_eq!(ok(0).lines, ["zfs recv -u -s t/a", "zfs recv -u -s t/a"]);
        // "1-abc" is no token this zab reads: aborted, and said why.
        assert_eq!(ok(0).resume, None);
        assert!(ok(0).no_resume.as_ref().unwrap().contains("resume token"));
        assert_eq!(ok(1).abort, token);
        assert_eq!(keys(&ok(1).plan.todo), ["s1", "s3", "s4"]);
        assert_eq!(ok(2).abort, None);
        assert_eq!(keys(&ok(2).plan.todo), ["s1", "s3", "s4"]);
        let e = p.datasets[3].as_ref().unwrap_err();
        assert_eq!(
            e,
            "u, the parent of u/d, does not exist on lab (create it first)"
        );
    }

    #[test]
    fn a_partial_receive_goes_on_only_inside_its_own_object() {
        // A token recorded in the lab: a full stream of guid 0x72bb…, cut
        // short in object 2 at offset 0x4000.
        let token = include_str!("../fixtures/resume/token3");
        let guid = 0x72bb_6c91_3319_7a5d;
        let e = entry("s1", guid, None, &[]);
        let t = resumable(token, Some(&e)).unwrap();
        assert_eq!((t.object, t.offset), (2, 0x4000));
        let why = |e: &Entry| resumable(token, Some(e)).unwrap_err();
        assert!(why(&entry("s1", 7, None, &[])).contains("another stream than p/a@s1"));
        assert!(why(&entry("s1", guid, Some(("s0", 3)), &[])).contains("another stream"));
        assert!(why(&entry("s1", guid, None, &[("s0", 3)])).contains("zfs send -I"));
        // Raw: the same (resume.rs checks the partial receive was raw too).
        let mut raw = e.clone();
        raw.raw = true;
        assert_eq!(resumable(token, Some(&raw)).unwrap(), t);
        // Compressed: decompressed here for it, when zab knows how.
        let mut zst = e.clone();
        zst.compressor = Some("zstd-fast".into());
        assert_eq!(resumable(token, Some(&zst)).unwrap(), t);
        zst.compressor = Some("zstd3".into());
        assert!(why(&zst).contains("\"zstd3\", which zab does not know"));
        // A zfs3backup object (no hash, no guids) goes on: resume.rs
        // checks its stream's guids against the token.
        let mut z3b = entry("s1", 0, None, &[]);
        z3b.sha256.clear();
        z3b.compressor = Some("pigz4".into());
        assert_eq!(resumable(token, Some(&z3b)).unwrap(), t);
        z3b.sha256 = "ab".into();
        assert!(why(&z3b).contains("another stream"));
        assert!(resumable(token, None).unwrap_err().contains("no object"));
        assert!(resumable("1-abc", Some(&e)).is_err());
    }

    #[test]
    fn all_creates_parents_and_a_created_parent_is_no_error() {
        let w = world(
            vec![
                (
                    "r/p/a",
                    Target::Missing {
                        parent_exists: false,
                    },
                ),
                (
                    "r/p/a/b",
                    Target::Missing {
                        parent_exists: false,
                    },
                ),
            ],
            Some(&["r"]),
        );
        let p = decide(&w, Some("r"), &[], "lab");
        assert_eq!(p.parents, ["r/p"]);
        assert!(p.datasets.iter().all(Result::is_ok), "{:?}", p.datasets);
    }

    #[test]
    fn all_creates_only_the_parents_nobody_brings() {
        let targets = strings(&["pool/r/zab-a/x", "pool/r/zab-a/x/y", "pool/r/zab-b/v/w"]);
        let existing = strings(&["pool", "pool/r", "pool/r/zab-b"]);
        assert_eq!(
            parents_to_create(&targets, "pool/r", &existing),
            ["pool/r/zab-a", "pool/r/zab-b/v"]
        );
        assert!(parents_to_create(&strings(&["pool/a"]), "pool", &[]).is_empty());
    }
}
