//! zab-send's run, as a table of contents: the checked command line
//! (cli.rs), the run lock, the quiet-run cache (cache.rs), the target
//! listing started early (early.rs),
//! the input (input.rs), every listing (gather.rs), every plan as data
//! (jobs.rs, from plan.rs, flags.rs and parents.rs), the transfers (execute.rs, through the target sink of
//! sink.rs), the holds (holds.rs), the mounts (mounts.rs), and the records
//! (report.rs), then what monitoring reads (monitor.rs).
//!
//! Commands per run, whatever the number of datasets: one snapshot listing
//! per source host, one tree listing and one `zpool get` on the target;
//! then per dataset its transfers; then per side at most one `zfs holds`,
//! and for holding and for releasing one `zfs hold -r`/`zfs release -r`
//! per subtree where every snapshot it reaches is ours to change, and one
//! plain `zfs hold`/`zfs release` for the rest (holds.rs; on a source,
//! after one `zfs list -r` of those subtrees). Extra commands only where
//! there is extra work: a dry run per resume token, a `zfs create` per
//! missing parent, the sources' encryption where a raw stream plans
//! differently and the target's where a plain stream may land in an
//! encrypted dataset (gather.rs), and after a first receive one `zfs get`
//! of the received subtrees and their mounts (mounts.rs).
//!
//! With the quiet-run cache (cache.rs): when nothing changed on either
//! side, one `zfs get` on the target and nothing else; a run that lists
//! and finds some dataset up to date makes one `zfs get` after it.

use std::sync::Arc;

use zab_core::cli::Log;
use zab_core::error::Error;
use zab_core::Host;

use crate::board::Board;
use crate::cache;
use crate::cli::{Args, Config};
use crate::early;
use crate::execute::{self, Ctx, Executed};
use crate::gather::{self, World};
use crate::holds;
use crate::input::{self, Input};
use crate::jobs::{self, Jobs};
use crate::mounts;
use crate::report;
use crate::sink::{Sink, ZfsRecv};
use crate::stream;
use crate::transfer::Running;
use crate::upload::StoreSink;

pub fn run(args: &Args) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let cfg = args.config()?;
    let log = cfg.common.log("zab-send");
    let target = cfg
        .common
        .host(cfg.target.host.ssh_target.as_deref())?
        .with_read_only(cfg.read_only);
    let _lock = lock(&cfg)?;
    let store = open_store(&cfg)?;
    let cache = cache::load(&cfg, &log);
    let facts_of = cache.as_ref().map(|c| c.cache.names()).unwrap_or_default();
    let mut early = early::start(&cfg, &target, facts_of, &log);
    let mut input = input::read(&cfg)?;
    let facts = early.facts();
    let quiet = cache
        .as_ref()
        .zip(facts.as_ref())
        .and_then(|(c, f)| cache::quiet(&cfg, &input, &c.cache, f));
    if let Some(sends) = quiet {
        return quiet_run(&cfg, &mut input, sends, started, &log);
    }
    early.list_now();
    let world = gather::gather(&cfg, &input, &target, early, store.as_ref(), &log)?;
    let mut plan = jobs::plan(&cfg, &input, &world);
    if store.is_some() {
        // A store has no parents to create: a key is a name.
        plan.parents.clear();
    }
    jobs::log(&plan.jobs, &log);
    let running = Arc::new(Running::default());
    let ex = execute(
        &cfg,
        &log,
        &input,
        &target,
        store.as_ref(),
        &world,
        &plan,
        &running,
    );
    let counts = report::attach(&mut input.datasets, &plan.jobs, &ex, cfg.dry(), &log);
    // The cache's entries before the records are written: the records of
    // the datasets they are made for carry the target's facts (zab-thin's).
    let new = cache.as_ref().filter(|_| !running.stopped()).and_then(|c| {
        let one_host = input.hosts.len() == 1;
        let ds = &input.datasets;
        cache::entries(&cfg, c, &target, &plan.jobs, ds, &world, one_host, &log)
    });
    if let Some(n) = &new {
        cache::annotate(&mut input.datasets, n);
    }
    let written = report::emit(
        &input.datasets,
        counts,
        &ex.created_parents,
        &cfg.target_path,
    );
    if let (Some(c), Some(n), Ok(())) = (&cache, &new, &written) {
        cache::save_new(c, n, &log);
    }
    let written = crate::monitor::finish(&cfg, &input.datasets, started, written, &log);
    if running.stopped() {
        written.or_else(|e| match e {
            Error::Failed(_) => Ok(()),
            e => Err(e),
        })?;
        return Err(match cfg.store {
            None => report::interrupted(),
            Some(_) => {
                Error::Interrupted("the upload was aborted; the next run sends it again".into())
            }
        });
    }
    written
}

/// Carries out the plan (nothing with `--test`/`--plan`), with the
/// progress board beside it.
#[allow(clippy::too_many_arguments)]
fn execute(
    cfg: &Config,
    log: &Log,
    input: &Input,
    target: &Host,
    store: Option<&zab_store::Store>,
    world: &World,
    plan: &Jobs,
    running: &Arc<Running>,
) -> Executed {
    if cfg.dry() {
        return Executed::default();
    }
    let board = Board::new(cfg.jobs > 1);
    let sink = sink(cfg, target, store, world, &board);
    let ctx = Ctx {
        cfg,
        log,
        hosts: &input.hosts,
        target,
        world,
        sink: sink.as_ref(),
        running,
    };
    std::thread::scope(|s| {
        if cfg.progress {
            s.spawn(|| board.run());
        }
        let ex = carry_out(&ctx, plan);
        board.stop();
        ex
    })
}

/// A run the quiet-run cache answered (cache.rs): each selected record
/// gets the `send` field the listing run wrote, and the records and what
/// monitoring reads are written as a listing run would write them.
fn quiet_run(
    cfg: &Config,
    input: &mut input::Input,
    sends: Vec<(usize, zab_core::record::SendOutcome)>,
    started: std::time::Instant,
    log: &zab_core::cli::Log,
) -> Result<(), Error> {
    log.debug("quiet-run cache: nothing changed on either side: nothing listed");
    for (record, send) in sends {
        input.datasets[record].send = Some(send);
    }
    let written = report::write(
        &mut input.datasets,
        &[],
        &Executed::default(),
        &cfg.target_path,
        cfg.dry(),
        log,
    );
    crate::monitor::finish(cfg, &input.datasets, started, written, log)
}

/// The object store of a TARGET-PATH s3:// or file://, opened (nothing is
/// read yet).
fn open_store(cfg: &Config) -> Result<Option<zab_store::Store>, Error> {
    cfg.store
        .as_ref()
        .map(|loc| {
            zab_store::Store::open(loc, &cfg.store_settings)
                .map_err(|e| Error::Store(e.to_string()))
        })
        .transpose()
}

/// The target sink: `zfs recv` on the target host, or the object store;
/// either through zab-ratelimit with `--rate`, on `board` with progress.
fn sink<'a>(
    cfg: &Config,
    target: &'a Host,
    store: Option<&'a zab_store::Store>,
    world: &'a World,
    board: &'a Board,
) -> Box<dyn Sink + 'a> {
    let rate = cfg.rate.map(|r| (stream::sibling("zab-ratelimit"), r));
    let progress = cfg.progress.then_some(board);
    match store {
        None => Box::new(ZfsRecv {
            host: target,
            rate,
            progress,
        }),
        Some(store) => Box::new(StoreSink {
            store,
            manifests: std::sync::Mutex::new(world.manifests.clone()),
            sources: &world.sources,
            compressor: cfg.compress.map(|c| c.name),
            rate,
            progress,
            now: now_rfc3339(cfg.now),
        }),
    }
}

/// `now` (seconds since the epoch) in RFC 3339.
fn now_rfc3339(now: i64) -> String {
    chrono::DateTime::from_timestamp(now, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

/// The run lock, before anything is read or changed, held to the end. A
/// read-only run (--test, --plan) changes nothing and takes none.
fn lock(cfg: &Config) -> Result<Option<zab_core::lock::RunLock>, Error> {
    match cfg.read_only {
        Some(_) => Ok(None),
        None => zab_core::lock::acquire(
            &cfg.backup,
            Some((
                cfg.target.host.ssh_target.as_deref(),
                cfg.target_path.as_str(),
            )),
            std::time::Duration::ZERO,
        )
        .map(Some),
    }
}

/// The transfers, then the holds, the bookmarks, the mounts; SIGINT or SIGTERM
/// stops the transfers and skips the rest.
fn carry_out(ctx: &Ctx, plan: &Jobs) -> Executed {
    let r = Arc::clone(ctx.running);
    let _ = ctrlc::set_handler(move || r.interrupt());
    let mut ex = execute::execute(ctx, plan);
    if ctx.cfg.holds && !ctx.running.stopped() {
        let on = holds::Hosts {
            sources: ctx.hosts,
            target: ctx.target,
            log: ctx.log,
        };
        let w = ctx.world;
        holds::apply(
            &on,
            &plan.jobs,
            &mut ex.done,
            &w.sources,
            &w.tree,
            &ctx.cfg.tag,
        );
    }
    if ctx.cfg.bookmarks && !ctx.running.stopped() {
        crate::bookmarks::make(ctx, &plan.jobs, &mut ex.done);
    }
    if !ctx.running.stopped() && ctx.cfg.store.is_none() {
        mounts::apply(ctx.target, ctx.log, &plan.jobs, &mut ex.done);
    }
    ex
}
