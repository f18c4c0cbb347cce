//! zab-send's reads, all of them before anything changes: each source
//! host's snapshots (while the target tree is listed, early.rs), where each resume token leads (a dry run on the
//! source), the encryption of the sources where a raw stream plans
//! differently, the target pool's features and the target's encryption
//! where they decide a flag, which buffer tool each host has, and, for
//! `--full-every` to a store, the view of a dataset whose manifest's chain
//! goes on from zfs3backup's objects (crate::chain::needs_view). What
//! to read is decided by plan.rs's pure functions on what was read
//! before (no process where it changes nothing); what is read decides
//! nothing here: jobs.rs plans from it.

use std::collections::{BTreeMap, BTreeSet};

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::zfs::{self, replicate, Snapshot};
use zab_core::Host;

use crate::cli::Config;
use crate::early::Early;
use crate::flags;
use crate::input::Input;
use crate::listing::{self, Features, TargetDs};
use crate::plan::{self, Plan};
use crate::stream::{self, BufferTool};

/// Everything read.
#[derive(Debug)]
pub struct World {
    /// Each source dataset's snapshots as listed.
    pub sources: BTreeMap<String, Vec<Snapshot>>,
    /// Each source dataset's bookmarks as listed (none to a store).
    pub bookmarks: BTreeMap<String, Vec<Snapshot>>,
    /// The target tree.
    pub tree: BTreeMap<String, TargetDs>,
    /// Per selected dataset: the snapshots its plan starts from.
    pub snapshots: Vec<Vec<Snapshot>>,
    /// Per selected dataset: the snapshot its target's resume token leads to.
    pub tokens: Vec<Option<String>>,
    /// Per selected dataset: its source is encrypted (read where it matters).
    pub encrypted: Vec<bool>,
    /// The target pool's features (read when something is to be sent).
    pub features: Features,
    /// Per selected dataset: what it receives lands in an encrypted dataset
    /// (read where it decides `-e`).
    pub lands_encrypted: Vec<bool>,
    /// Each host's buffer tool, by host name (probed with `--buffer` only).
    pub tools: BTreeMap<String, BufferTool>,
    /// An object store's manifests, by dataset in the store.
    pub manifests: Manifests,
    /// `--full-every`: the view of a dataset in the store (its manifest
    /// and zfs3backup's objects, zab_store::zfs3backup::view) where its
    /// chain goes on from zfs3backup's: read going on from it, or where the
    /// manifest's chain stops short (crate::chain::needs_view).
    pub views: Manifests,
    /// When the sources' and the target's listings started (seconds since
    /// the epoch, this machine's clock; for the quiet-run cache).
    pub listed_at: (i64, i64),
}

impl World {
    /// The bookmarks of source dataset `name`.
    pub fn bookmarks_of(&self, name: &str) -> &[Snapshot] {
        self.bookmarks.get(name).map_or(&[][..], Vec::as_slice)
    }

    /// The buffer tool of `host`.
    pub fn tool(&self, host: &Host) -> BufferTool {
        self.tools
            .get(host.name())
            .cloned()
            .unwrap_or(BufferTool::None)
    }
}

/// Reads everything the plans need, phase by phase: the sources'
/// snapshots, the target (a tree or a store's manifests), then what the
/// first plans say matters (resume tokens, encryption, pool features,
/// buffer tools).
pub fn gather(
    cfg: &Config,
    input: &Input,
    target: &Host,
    early: Early,
    store: Option<&zab_store::Store>,
    log: &Log,
) -> Result<World, Error> {
    let sources_at = crate::early::now();
    let (sources, mut bookmarks) = list_sources(input)?;
    if store.is_some() {
        // A store's chains go on from the source's snapshots only.
        bookmarks.clear();
    }
    let ((tree, manifests, views), tree_at) = match store {
        Some(store) => {
            let at = crate::early::now();
            (store_tree(cfg, input, store, &sources, log)?, at)
        }
        None => {
            let (tree, at) = early.tree()?;
            ((tree, BTreeMap::new(), BTreeMap::new()), at)
        }
    };
    let mut world = World {
        snapshots: snapshots(cfg, input, &sources),
        sources,
        bookmarks,
        tree,
        tokens: Vec::new(),
        encrypted: vec![false; input.picked.len()],
        features: Features::default(),
        lands_encrypted: vec![false; input.picked.len()],
        tools: BTreeMap::new(),
        manifests,
        views,
        listed_at: (sources_at, tree_at),
    };
    world.tokens = tokens(input, &world.tree, log);
    world.encrypted = source_encryption(cfg, input, &world)?;
    let plans = plans(cfg, input, &world);
    if let Some(store) = store {
        let more = read_views(store, &want_views(cfg, input, &world, &plans))?;
        world.views.extend(more);
    }
    if store.is_none() && plans.iter().any(sends) {
        world.features = zfs::query(
            target,
            &listing::features_args(zfs::pool_of(&cfg.target_path)),
            listing::parse_features,
        )?;
    }
    world.lands_encrypted = lands_encrypted(cfg, input, target, &world, &plans)?;
    world.tools = probe(cfg, input, target, &plans);
    Ok(world)
}

/// Each picked source dataset's snapshots and bookmarks: one listing per
/// host.
fn list_sources(input: &Input) -> Result<(Listed, Listed), Error> {
    let (mut sources, mut bookmarks) = (BTreeMap::new(), BTreeMap::new());
    for (h, host) in input.hosts.iter().enumerate() {
        let names: Vec<&str> = input
            .picked
            .iter()
            .filter(|p| p.host == h)
            .map(|p| input.name(p))
            .collect();
        let listed = zfs::list_snapshots_and_bookmarks(host, &names)?;
        sources.extend(listed.snapshots);
        bookmarks.extend(listed.bookmarks);
    }
    Ok((sources, bookmarks))
}

type Listed = BTreeMap<String, Vec<Snapshot>>;

type Manifests = BTreeMap<String, zab_store::manifest::Manifest>;

/// A store's target tree, manifests and views.
type StoreSide = (BTreeMap<String, TargetDs>, Manifests, Manifests);

/// An object store's side: its manifests as a target tree, zfs3backup's
/// streams found in it (the views of the datasets that go on from them),
/// and those of encrypted sources left out (sent raw, they could not go
/// on from zfs3backup's plain streams).
fn store_tree(
    cfg: &Config,
    input: &Input,
    store: &zab_store::Store,
    sources: &BTreeMap<String, Vec<Snapshot>>,
    log: &Log,
) -> Result<StoreSide, Error> {
    let names: Vec<&str> = input.picked.iter().map(|p| p.target.as_str()).collect();
    let (mut tree, manifests) = crate::upload::target_tree(store, &names, cfg.dry())?;
    let with_source: Vec<(&str, &[Snapshot])> = input
        .picked
        .iter()
        .map(|p| {
            let listed = sources.get(input.name(p)).map_or(&[][..], Vec::as_slice);
            (p.target.as_str(), listed)
        })
        .collect();
    let mut views = crate::upload::zfs3backup_tree(store, &mut tree, &with_source, log)?;
    if cfg.flags.decrypt || views.is_empty() {
        return Ok((tree, manifests, views));
    }
    // zfs3backup's streams are not raw: a raw stream of an encrypted
    // source could not be received after them.
    for (h, host) in input.hosts.iter().enumerate() {
        let names: Vec<&str> = input
            .picked
            .iter()
            .filter(|p| p.host == h && views.contains_key(&p.target))
            .map(|p| input.name(p))
            .collect();
        if names.is_empty() {
            continue;
        }
        let encrypted = list_encryption(host, &names)?;
        for p in input.picked.iter().filter(|p| p.host == h) {
            if encrypted.contains(input.name(p)) && tree.remove(&p.target).is_some() {
                views.remove(&p.target);
                log.warn(format!(
                    "{}: encrypted, sent raw: not going on from zfs3backup's plain \
                     streams in the store; a full stream starts a new chain (--decrypt \
                     would go on)",
                    p.target
                ));
            }
        }
    }
    Ok((tree, manifests, views))
}

/// `--full-every` to a store: the datasets whose view [`read_views`] reads,
/// not read yet: those whose manifest's chain of the common snapshot
/// stops short (crate::chain::needs_view; a directory has no zfs3backup
/// objects).
fn want_views(cfg: &Config, input: &Input, w: &World, plans: &[Plan]) -> Vec<String> {
    if cfg.full_every.is_none() || matches!(cfg.store, Some(zab_store::Location::Dir { .. })) {
        return Vec::new();
    }
    let mut want: Vec<String> = input
        .picked
        .iter()
        .enumerate()
        .filter(|(k, p)| {
            let m = w.manifests.get(&p.target);
            let common = crate::chain::common(&plans[*k], &w.snapshots[*k]);
            !w.views.contains_key(&p.target)
                && m.zip(common)
                    .is_some_and(|(m, c)| crate::chain::needs_view(m, c))
        })
        .map(|(_, p)| p.target.clone())
        .collect();
    want.sort();
    want.dedup();
    want
}

/// The views of `datasets` in the store: one listing of each one's
/// folder, one HEAD per object its manifest does not list.
fn read_views(store: &zab_store::Store, datasets: &[String]) -> Result<Manifests, Error> {
    let mut out = BTreeMap::new();
    for ds in datasets {
        let view = zab_store::zfs3backup::view(store, ds)
            .map_err(|e| Error::Store(format!("{ds}: {e}")))?;
        if let Some(v) = view {
            out.insert(ds.clone(), v);
        }
    }
    Ok(out)
}

/// A plan that sends something.
fn sends(p: &Plan) -> bool {
    p.error.is_none() && !p.steps.is_empty()
}

/// Per selected dataset, the snapshots its plan starts from.
fn snapshots(
    cfg: &Config,
    input: &Input,
    sources: &BTreeMap<String, Vec<Snapshot>>,
) -> Vec<Vec<Snapshot>> {
    input
        .picked
        .iter()
        .map(|p| {
            let would_create = input.datasets[p.record]
                .snapshot
                .as_ref()
                .filter(|s| s.status == zab_core::record::SnapStatus::WouldCreate)
                .map(|s| s.name.as_str());
            let listed = sources.get(input.name(p)).map_or(&[][..], Vec::as_slice);
            plan::source_snapshots(listed, would_create, cfg.dry())
        })
        .collect()
}

/// Where each target's resume token leads (asked once per token).
fn tokens(input: &Input, tree: &BTreeMap<String, TargetDs>, log: &Log) -> Vec<Option<String>> {
    input
        .picked
        .iter()
        .map(|p| {
            let token = tree.get(&p.target)?.target.token.as_deref()?;
            token_target(&input.hosts[p.host], token, input.name(p), log)
        })
        .collect()
}

/// The snapshot name (after `@`) a resume token leads to, from a dry run
/// on the source; None (and a warning) when it cannot be read or is for
/// another dataset.
fn token_target(host: &Host, token: &str, dataset: &str, log: &Log) -> Option<String> {
    let out = match host.capture(&replicate::send_resume_dry_args(token)) {
        Ok(c) => format!("{}\n{}", c.stdout, c.stderr),
        Err(e) => {
            log.warn(format!(
                "[Source] {dataset}: reading the resume token failed: {e}"
            ));
            return None;
        }
    };
    let to = stream::resume_toname(&out)?;
    let (ds, snap) = to.split_once('@')?;
    (ds == dataset).then(|| snap.to_string())
}

/// The plan of selected dataset `k` with its stream raw or not.
fn plan_of(cfg: &Config, input: &Input, w: &World, k: usize, raw: bool) -> Plan {
    let p = &input.picked[k];
    plan::plan(
        input.name(p),
        &w.snapshots[k],
        w.bookmarks_of(input.name(p)),
        w.tree.get(&p.target).map(|t| &t.target),
        raw,
        w.tokens[k].as_deref(),
        &cfg.plan_options(),
    )
}

/// The plans as they will be made, the encryption of the sources known.
fn plans(cfg: &Config, input: &Input, w: &World) -> Vec<Plan> {
    (0..input.picked.len())
        .map(|k| plan_of(cfg, input, w, k, w.encrypted[k] && !cfg.flags.decrypt))
        .collect()
}

/// Encrypted sources are sent raw (unless `--decrypt`, then without
/// `-p`), which changes a plan or the flags only where it sends or the
/// target has snapshots after the common one: only those datasets'
/// encryption is read, one call per host.
fn source_encryption(cfg: &Config, input: &Input, w: &World) -> Result<Vec<bool>, Error> {
    let ask: Vec<usize> = (0..input.picked.len())
        .filter(|&k| {
            let target = w.tree.get(&input.picked[k].target).map(|t| &t.target);
            plan_of(cfg, input, w, k, false).raw_matters(target)
        })
        .collect();
    let mut encrypted = vec![false; input.picked.len()];
    for (h, host) in input.hosts.iter().enumerate() {
        let names: Vec<&str> = ask
            .iter()
            .filter(|&&k| input.picked[k].host == h)
            .map(|&k| input.name(&input.picked[k]))
            .collect();
        if names.is_empty() {
            continue;
        }
        let found = list_encryption(host, &names)?;
        for &k in ask.iter().filter(|&&k| input.picked[k].host == h) {
            encrypted[k] = found.contains(input.name(&input.picked[k]));
        }
    }
    Ok(encrypted)
}

/// The encrypted ones of `names` on `host`: one `zfs list -o name,encryption`.
fn list_encryption(host: &Host, names: &[&str]) -> Result<BTreeSet<String>, Error> {
    zfs::query(host, &listing::encryption_args(names), |out| {
        listing::parse_encryption(out, names)
    })
}

/// Where each stream lands encrypted, read where it decides `-e`: a
/// non-raw stream, with `embedded_data` on the target pool and without
/// `--encrypt` (which leaves `-e` out anyway). The target's datasets can
/// be encrypted only when its pool's `encryption` feature is active; then
/// the encryption of the targets and their existing ancestors is read,
/// one call. Without it, only a parent received raw in this run encrypts.
fn lands_encrypted(
    cfg: &Config,
    input: &Input,
    target: &Host,
    w: &World,
    plans: &[Plan],
) -> Result<Vec<bool>, Error> {
    let raw = |k: usize| w.encrypted[k] && !cfg.flags.decrypt;
    let asks = |k: usize| sends(&plans[k]) && !raw(k);
    let n = input.picked.len();
    if !w.features.enabled("embedded_data") || cfg.flags.encrypt || !(0..n).any(asks) {
        return Ok(vec![false; n]);
    }
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for k in (0..n).filter(|&k| asks(k)) {
        let mut d = Some(input.picked[k].target.as_str());
        while let Some(name) = d {
            if w.tree.contains_key(name) {
                names.insert(name);
            }
            d = zfs::parent_of(name);
        }
    }
    let names: Vec<&str> = names.into_iter().collect();
    let encrypted = if w.features.active("encryption") && !names.is_empty() {
        list_encryption(target, &names)?
    } else {
        BTreeSet::new()
    };
    let existing: BTreeMap<String, bool> = names
        .iter()
        .map(|n| (n.to_string(), encrypted.contains(*n)))
        .collect();
    let received: BTreeMap<String, bool> = (0..n)
        .filter(|&k| plans[k].error.is_none() && !w.tree.contains_key(&input.picked[k].target))
        .map(|k| (input.picked[k].target.clone(), raw(k)))
        .collect();
    Ok((0..n)
        .map(|k| asks(k) && flags::lands_encrypted(&input.picked[k].target, &existing, &received))
        .collect())
}

/// The buffer tool of each host that sends or receives something, probed
/// once, with `--buffer` and not in a dry run.
fn probe(
    cfg: &Config,
    input: &Input,
    target: &Host,
    plans: &[Plan],
) -> BTreeMap<String, BufferTool> {
    let mut tools = BTreeMap::new();
    if cfg.buffer.is_none() || cfg.dry() {
        return tools;
    }
    let mut hosts: Vec<&Host> = (0..plans.len())
        .filter(|&k| sends(&plans[k]))
        .map(|k| &input.hosts[input.picked[k].host])
        .collect();
    if !hosts.is_empty() {
        hosts.push(target);
    }
    for host in hosts {
        if !tools.contains_key(host.name()) {
            tools.insert(host.name().to_string(), buffer_tool(host));
        }
    }
    tools
}

/// zab-buffer where it is installed, else mbuffer, else nothing.
fn buffer_tool(host: &Host) -> BufferTool {
    if host.dest().is_none() {
        let next_to_us = stream::sibling("zab-buffer");
        if std::path::Path::new(&next_to_us).is_file() {
            BufferTool::ZabBuffer(next_to_us)
        } else if which("zab-buffer") {
            BufferTool::ZabBuffer("zab-buffer".into())
        } else if which("mbuffer") {
            BufferTool::Mbuffer
        } else {
            BufferTool::None
        }
    } else {
        match host.output(&[
            "sh",
            "-c",
            "command -v zab-buffer || command -v mbuffer || true",
        ]) {
            Ok(o) if o.contains("zab-buffer") => BufferTool::ZabBuffer("zab-buffer".into()),
            Ok(o) if o.contains("mbuffer") => BufferTool::Mbuffer,
            _ => BufferTool::None,
        }
    }
}

fn which(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}
