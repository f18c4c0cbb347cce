//! Command-line pieces every tool shares: the parsing every `main` calls
//! (clap's, plus the hidden `--man`, `--completions` and `--end-record`),
//! the common flags
//! (flattened into each tool's clap struct), the log that `--verbose` and
//! `--debug` switch on, and the `--help` trailer with the exit codes.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, Args, Parser};
use clap_complete::Shell;

use chrono::{DateTime, Utc};

use crate::error::{escape, exit_codes_help, Error};
use crate::host::Host;
use crate::man;
use crate::naming::{SnapshotFormat, DEFAULT_FORMAT};

/// zfs-autobackup's default thinning schedule, for source and target.
pub const DEFAULT_SCHEDULE: &str = "10,1d1w,1w1m,1m1y";

/// zfs-autobackup's hold tag; `{}` is the backup name.
pub const DEFAULT_HOLD_FORMAT: &str = "zfs_autobackup:{}";

/// zfs-autobackup's selection property; `{}` is the backup name.
pub const DEFAULT_PROPERTY_FORMAT: &str = "autobackup:{}";

/// What a tool's command line asks for.
#[derive(Debug)]
pub enum Parsed<A> {
    /// Its arguments, to run with.
    Args(A),
    /// Its man page (`--man`), to print.
    Man(String),
    /// Its completion script for a shell (`--completions SHELL`), to print.
    Completions(String),
    /// A stage's output file whose end record to print (`--end-record FILE`,
    /// see [`end_record_fields`]).
    EndRecord(PathBuf),
    /// A metrics file to write from a run's numbers on stdin
    /// (`--write-metrics FILE`, see [`crate::metrics::write_from_stdin`]).
    WriteMetrics(PathBuf),
}

/// Parses the command line as `A::parse()` does, with three more options,
/// hidden from `--help`: `--man` prints the tool's man page (roff, from the
/// same clap definition as `--help`) and exits 0; `--completions SHELL`
/// prints its completion script for bash, zsh, fish (and clap_complete's
/// other shells, elvish and powershell; from the same definition;
/// `scripts/package` installs them) and exits 0; `--end-record FILE`
/// prints the end record of a stage's output ([`print_end_record`]).
/// `--help` and `--version` print and exit 0 as clap makes them; a usage
/// error is one line on stderr ([`usage_line`]) and exit 2.
pub fn parse<A: Parser>() -> A {
    match try_parse_from::<A, _, _>(std::env::args_os()) {
        Ok(Parsed::Args(args)) => args,
        Ok(Parsed::Man(page) | Parsed::Completions(page)) => {
            // A reader that went away (`| head`) is not an error here.
            let _ = std::io::stdout().lock().write_all(page.as_bytes());
            std::process::exit(0);
        }
        Ok(Parsed::EndRecord(file)) => {
            std::process::exit(print_end_record(A::command().get_name(), &file).into())
        }
        Ok(Parsed::WriteMetrics(file)) => std::process::exit(
            crate::metrics::write_from_stdin(A::command().get_name(), &file).into(),
        ),
        Err(e)
            if e.use_stderr()
                && e.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            eprintln!("{}", usage_line(A::command().get_name(), &e));
            std::process::exit(e.exit_code());
        }
        Err(e) => e.exit(),
    }
}

/// A clap usage error as one line, prefixed with the tool's name, as every
/// other error of zab: `zab-send: unexpected argument '--foo' found (see
/// zab-send --help)`. clap's own text is several lines (the error, tips,
/// the usage, a pointer to `--help`); this keeps the error, its list of
/// values and a suggestion of a similar name, on one line.
pub fn usage_line(tool: &str, error: &clap::Error) -> String {
    let text = error.to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        match line.strip_prefix("tip:").map(str::trim) {
            // "a similar argument exists: '--verbose'" helps; "to pass
            // '--foo' as a value, use '-- --foo'" is noise on one line.
            Some(tip) if tip.contains("similar") => parts.push(format!("({tip})")),
            Some(_) => {}
            None => parts.push(
                line.strip_prefix("error:")
                    .unwrap_or(line)
                    .trim()
                    .to_string(),
            ),
        }
    }
    if parts.is_empty() {
        parts.push("invalid command line".into());
    }
    let line = parts.join(" ").replace(":  ", ": ");
    format!("{tool}: {} (see {tool} --help)", escape(&line))
}

/// [`parse`] without exiting: the arguments or the man page, or clap's
/// error (which `--help` and `--version` also are).
pub fn try_parse_from<A, I, T>(argv: I) -> Result<Parsed<A>, clap::Error>
where
    A: Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // Exclusive: alone on the line, and then no other argument is required.
    let man_flag = Arg::new(MAN_ID)
        .long("man")
        .action(ArgAction::SetTrue)
        .exclusive(true)
        .hide(true)
        .help("Print the man page (roff) and exit");
    let mut matches = A::command()
        .arg(man_flag)
        .arg(completions_flag())
        .arg(end_record_flag())
        .arg(write_metrics_flag())
        .try_get_matches_from(argv)?;
    if matches.get_flag(MAN_ID) {
        return Ok(Parsed::Man(man::render(&A::command())));
    }
    if let Some(shell) = matches.get_one::<Shell>(COMPLETIONS_ID) {
        return Ok(Parsed::Completions(completions(*shell, A::command())));
    }
    if let Some(file) = matches.get_one::<PathBuf>(END_RECORD_ID) {
        return Ok(Parsed::EndRecord(file.clone()));
    }
    if let Some(file) = matches.get_one::<PathBuf>(WRITE_METRICS_ID) {
        return Ok(Parsed::WriteMetrics(file.clone()));
    }
    A::from_arg_matches_mut(&mut matches)
        .map(Parsed::Args)
        .map_err(|e| e.format(&mut A::command()))
}

/// The id of `--man`, chosen to clash with no field of a tool's arguments.
const MAN_ID: &str = "zab-core-man";

/// The id of `--completions`, chosen to clash with no field of a tool's arguments.
const COMPLETIONS_ID: &str = "zab-core-completions";

/// `--completions SHELL`, hidden: alone on the line, as `--man`.
fn completions_flag() -> Arg {
    Arg::new(COMPLETIONS_ID)
        .long("completions")
        .value_name("SHELL")
        .value_parser(clap::value_parser!(Shell))
        .exclusive(true)
        .hide(true)
        .help(
            "Print the completion script for SHELL (bash, zsh, fish, elvish, powershell) and exit",
        )
}

/// The completion script of `cmd` for `shell`, as clap_complete writes it.
/// The hidden options are not in `cmd`, so they are never offered.
fn completions(shell: Shell, mut cmd: clap::Command) -> String {
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

// --- --end-record: a stage's outcome, for scripts/zfs-autobackup ----------

/// The id of `--end-record`, chosen to clash with no field of a tool's arguments.
const END_RECORD_ID: &str = "zab-core-end-record";

/// A hidden `--LONG FILE` with the id `id`, alone on the line, as `--man`:
/// `--end-record` and `--write-metrics`, for scripts/zfs-autobackup.
fn hidden_file_flag(id: &'static str, long: &'static str, help: &'static str) -> Arg {
    Arg::new(id)
        .long(long)
        .value_name("FILE")
        .value_parser(clap::value_parser!(PathBuf))
        .exclusive(true)
        .hide(true)
        .help(help)
}

/// `--end-record FILE`.
fn end_record_flag() -> Arg {
    hidden_file_flag(
        END_RECORD_ID,
        "end-record",
        "Print the end record's counts of a stage's output FILE and exit",
    )
}

/// The id of `--write-metrics`, chosen to clash with no field of a tool's arguments.
const WRITE_METRICS_ID: &str = "zab-core-write-metrics";

/// `--write-metrics FILE`, for the wrapper's `--metrics`.
fn write_metrics_flag() -> Arg {
    hidden_file_flag(
        WRITE_METRICS_ID,
        "write-metrics",
        "Write a run's numbers (NAME VALUE lines on stdin) as a Prometheus metrics file",
    )
}

/// The counts of an end record that [`end_record_fields`] prints when the
/// record has them: zab-snap's hook failures and `created`, zab-send's
/// `sent`, `transfers` and `bytes`, zab-thin's `destroyed` (every end
/// record has `datasets` and `failed`).
const END_RECORD_COUNTS: [&str; 7] = [
    "hook_failures",
    "pre_hook_failures",
    "created",
    "sent",
    "transfers",
    "bytes",
    "destroyed",
];

/// Reads a whole stage's output ([`crate::ndjson::read_stream`]: every
/// record checked, the `end` record last) and returns the counts of its end
/// record as `NAME VALUE` lines, a shell reads them with `read -r name
/// value` and no `eval`: `datasets N`, `failed N`, then each of
/// [`END_RECORD_COUNTS`] the record has (`hook_failures N`, `bytes N`, …),
/// in that order. Only these names,
/// whatever else the record carries, and only whole numbers: nothing from
/// the input reaches the output but digits.
pub fn end_record_fields<R: std::io::BufRead>(input: R) -> Result<String, Error> {
    let end = crate::ndjson::read_stream(input)?.end;
    let mut out = format!("datasets {}\nfailed {}\n", end.datasets, end.failed);
    for name in END_RECORD_COUNTS {
        if let Some(value) = end.extra.get(name) {
            let n = value.as_u64().ok_or_else(|| Error::Input {
                line: 0,
                message: format!("the end record's {name} is not a count: {value}"),
            })?;
            out.push_str(&format!("{name} {n}\n"));
        }
    }
    Ok(out)
}

/// `TOOL --end-record FILE`: prints [`end_record_fields`] of FILE on
/// stdout and returns 0, or says why not on one line (`TOOL: FILE: end of
/// input: no end record: …`) and returns the error's exit code (3 for bad
/// or incomplete input, 4 for a file that cannot be read).
pub fn print_end_record(tool: &str, file: &std::path::Path) -> u8 {
    let fields = std::fs::File::open(file)
        .map_err(|e| Error::Io(format!("cannot open: {e}")))
        .and_then(|f| end_record_fields(std::io::BufReader::new(f)));
    match fields {
        Ok(text) => {
            // A reader that went away is not an error (the record tools' policy).
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            0
        }
        Err(e) => {
            eprintln!("{tool}: {}: {e}", escape(&file.display().to_string()));
            e.exit().code()
        }
    }
}

/// `--now SECONDS`: a whole number of seconds since 1970 (the range is
/// checked by [`Common::now`]).
fn parse_now(s: &str) -> Result<i64, String> {
    s.trim().parse().map_err(|_| {
        "expected a Unix time: whole seconds since 1970-01-01 UTC, such as 1704888000 \
         (date +%s prints one)"
            .to_string()
    })
}

/// The headings that `--help` groups options under, shared by every tool
/// so that one kind of option is found under one name everywhere.
pub mod heading {
    pub const SELECTION: &str = "Selection";
    pub const SNAPSHOTS: &str = "Snapshots";
    pub const NAMING: &str = "Naming";
    pub const TARGET: &str = "Target";
    pub const TRANSFER: &str = "Transfer";
    pub const STREAM: &str = "Stream";
    pub const HOLDS: &str = "Holds";
    pub const THINNING: &str = "Thinning";
    pub const OFFLINE: &str = "Offline (no ZFS)";
    pub const SSH: &str = "ssh";
    pub const OUTPUT: &str = "Output";
}

/// Flags common to every zab tool that talks to ZFS.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    #[command(flatten)]
    pub verbose: Verbose,

    /// Print every command before it runs, as a line you can paste into a
    /// shell, on stderr.
    #[arg(help_heading = heading::OUTPUT, short, long)]
    pub debug: bool,

    /// Use this ssh config file for every ssh connection (ssh -F FILE).
    /// Without it, ssh reads ~/.ssh/config as usual. Connections to one host
    /// are shared (zab sets ControlMaster=auto, ControlPersist=60, and a
    /// ControlPath in /run/zab for root, else $XDG_RUNTIME_DIR/zab or
    /// ~/.cache/zab, a directory only you can write). Where the config sets
    /// none, zab adds ConnectTimeout=10 and ServerAliveInterval=15.
    #[arg(help_heading = heading::SSH, long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,

    /// Do not share ssh connections: pass no ControlMaster, ControlPath or
    /// ControlPersist option, so the ssh config's settings apply.
    #[arg(help_heading = heading::SSH, long)]
    pub ssh_no_share: bool,

    /// "Now", in seconds since the epoch, instead of the clock: the time a
    /// snapshot is named after and schedules are applied at. For tests.
    #[arg(long, value_name = "SECONDS", hide = true, value_parser = parse_now)]
    pub now: Option<i64>,

    /// Check every option and exit (see [`check_options`]): 0 when all are
    /// valid, else 2 with the problem on one line. Reads no input and runs
    /// nothing. scripts/zfs-autobackup checks every stage with it before
    /// the first one starts.
    #[arg(long, hide = true)]
    pub check_options: bool,
}

impl Common {
    /// The host `dest` names (None = local), with these flags applied.
    pub fn host(&self, dest: Option<&str>) -> Result<Host, Error> {
        Ok(Host::from_option(dest)?
            .with_ssh_config(self.ssh_config.as_deref())
            .with_ssh_share(!self.ssh_no_share)
            .with_debug(self.debug))
    }

    /// "Now": `--now`, or the clock.
    pub fn now(&self) -> Result<DateTime<Utc>, Error> {
        // Up to the last second of 9999: snapshot names have four-digit years.
        const MAX: i64 = 253_402_300_799;
        match self.now {
            None => Ok(Utc::now()),
            Some(secs) => (0..=MAX)
                .contains(&secs)
                .then(|| DateTime::from_timestamp(secs, 0))
                .flatten()
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--now {secs} is out of range (seconds since 1970, up to the year 9999)"
                    ))
                }),
        }
    }

    /// The log these flags ask for.
    pub fn log(&self, tool: &'static str) -> Log {
        Log {
            tool,
            verbose: self.verbose.verbose || self.debug,
            debug: self.debug,
        }
    }
}

/// What `--check-options` ends with: exit 0 when `checked` (a tool's
/// `Args::config()`) is Ok, else the error on one line and its exit code
/// (2 for a bad option). Every check of a tool's options is in its
/// `Args::config()`, which reads no input and runs no command, so nothing
/// has run either way.
pub fn check_options<C>(tool: &str, checked: Result<C, Error>) -> std::process::ExitCode {
    match checked {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => crate::error::report(tool, &e),
    }
}

/// The source host (zab-select, zab-snap, zab-send, zab-thin).
#[derive(Args, Debug, Clone, Default)]
pub struct Source {
    /// The source host (pull mode), e.g. root@nas; this machine when
    /// absent. zab-select selects there; the other tools take each
    /// dataset's host from its record, and when this is given, every record
    /// must be from this host.
    #[arg(help_heading = heading::SSH, long, value_name = "USER@HOST")]
    pub ssh_source: Option<String>,
}

impl Source {
    /// `--ssh-source`, checked as an ssh destination.
    pub fn checked(&self) -> Result<Option<String>, Error> {
        if let Some(s) = &self.ssh_source {
            Host::ssh(s)?;
        }
        Ok(self.ssh_source.clone())
    }
}

/// `--test` (zab-snap, zab-send, zab-thin, zab-restore). Each tool says
/// what its --test shows in its own words, and adds its aliases, with
/// `#[command(mut_arg("test", |a| a.help(...)))]`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct DryRun {
    /// Change nothing: run only the commands that read, and say what would
    /// be done.
    #[arg(help_heading = heading::OUTPUT, long)]
    pub test: bool,
}

impl DryRun {
    /// The read-only mode of the run's hosts (zab_core::host::is_read_only).
    pub fn read_only(&self) -> Option<&'static str> {
        self.test.then_some("--test")
    }
}

/// The target host (zab-select, zab-restore; the [`Target`] group of the
/// tools that send to it or thin it).
#[derive(Args, Debug, Clone, Default)]
pub struct SshTarget {
    /// The target host (push); local when absent.
    #[arg(help_heading = heading::SSH, long, value_name = "USER@HOST")]
    pub ssh_target: Option<String>,
}

/// `--keep-target`, the target's schedule (zab-send, zab-thin).
#[derive(Args, Debug, Clone)]
pub struct KeepTarget {
    /// The schedule of our snapshots on the target.
    #[arg(help_heading = heading::THINNING, long, value_name = "SCHEDULE",
          default_value = DEFAULT_SCHEDULE, value_parser = crate::schedule::Schedule::parse)]
    pub keep_target: crate::schedule::Schedule,
}

/// `-F`/`--force`: receive with `zfs recv -F` (zab-send, zab-restore).
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct RecvForce {
    /// Receive with zfs recv -F: roll the target back to its newest
    /// snapshot first.
    #[arg(help_heading = heading::TARGET, short = 'F', long)]
    pub force: bool,
}

/// `--rate`: bytes per second (zab-send, zab-ratelimit).
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Rate {
    /// Limit the rate to BYTES per second (K, M, G: powers of 1024).
    #[arg(help_heading = heading::STREAM, long, value_name = "BYTES", value_parser = parse_rate)]
    pub rate: Option<u64>,
}

/// Parses `--rate`: bytes per second, above 0 (a 0 accepted by zab-send
/// would fail every transfer in zab-ratelimit instead of the command line).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    match parse_bytes(s)? {
        0 => Err(format!("rate {s:?} must be above 0")),
        n => Ok(n),
    }
}

/// `-v`/`--verbose`: every ZFS tool's (in [`Common`]), and zab-buffer's,
/// which says with `mut_arg` what it adds.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Verbose {
    /// Print what is done, in the words zfs-autobackup uses, on stderr.
    #[arg(help_heading = heading::OUTPUT, short, long)]
    pub verbose: bool,
}

/// `-q`/`--quiet` of the byte-stream tools (zab-buffer, zab-ratelimit),
/// each saying with `mut_arg` what it leaves out.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Quiet {
    /// Print less on stderr: errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The selection property (zab-select, and zab-thin's check before it
/// treats a target dataset as missing).
#[derive(Args, Debug, Clone)]
pub struct Selection {
    /// The selection property, as zab-select reads it; {} is the backup
    /// name.
    #[arg(help_heading = heading::SELECTION, long, value_name = "FORMAT", default_value = DEFAULT_PROPERTY_FORMAT)]
    pub property_format: String,
}

impl Selection {
    /// The property that selects `backup`'s datasets, checked.
    pub fn property(&self, backup: &str) -> Result<String, Error> {
        crate::select::property_name(&self.property_format, backup)
    }
}

/// Which snapshots are ours, and what a new one is called (zab-snap,
/// zab-send, zab-thin).
#[derive(Args, Debug, Clone)]
pub struct Naming {
    /// Our snapshot names: {} is the backup name, then strftime fields. A
    /// snapshot is "ours" exactly when its name parses with this format. A
    /// format that cannot give back its time to the second is refused.
    #[arg(help_heading = heading::NAMING, long, value_name = "FORMAT", default_value = DEFAULT_FORMAT)]
    pub snapshot_format: String,

    /// Snapshot names are in UTC rather than local time.
    #[arg(help_heading = heading::NAMING, long)]
    pub utc: bool,
}

impl Naming {
    /// The checked format of `backup`'s snapshot names.
    pub fn format(&self, backup: &str) -> Result<SnapshotFormat, Error> {
        SnapshotFormat::new(&self.snapshot_format, backup, self.utc)
    }
}

/// Our hold tag (zab-send, zab-thin).
#[derive(Args, Debug, Clone)]
pub struct Holds {
    /// Our hold tag; {} is the backup name.
    #[arg(help_heading = heading::HOLDS, long, value_name = "FORMAT", default_value = DEFAULT_HOLD_FORMAT)]
    pub hold_format: String,
}

impl Holds {
    /// `backup`'s hold tag.
    pub fn tag(&self, backup: &str) -> String {
        self.hold_format.replace("{}", backup)
    }
}

/// Where the backups are: TARGET-PATH on the target host, and how source
/// names map below it (zab-send, zab-thin). Flatten it right after the
/// BACKUP-NAME argument; a tool that needs TARGET-PATH makes it required
/// with `#[command(mut_arg("target_path", |a| a.required(true)))]`.
#[derive(Args, Debug, Clone, Default)]
pub struct Target {
    /// The target dataset, which must exist; each source dataset goes below
    /// it. On the sources' host it may not be a selected source, nor above
    /// or below one.
    #[arg(value_name = "TARGET-PATH")]
    pub target_path: Option<String>,

    #[command(flatten)]
    pub host: SshTarget,

    /// Strip this many leading components from source names on the target.
    #[arg(help_heading = heading::TARGET, long, value_name = "N", default_value_t = 0)]
    pub strip_path: usize,

    /// Compare only names, not guids, to find the common snapshot.
    #[arg(help_heading = heading::TARGET, long)]
    pub no_guid_check: bool,
}

impl Target {
    /// TARGET-PATH, checked with the one rule ([`crate::name::target_path`]);
    /// None when not given.
    pub fn path(&self) -> Result<Option<&str>, Error> {
        match &self.target_path {
            None => Ok(None),
            Some(p) => crate::name::target_path(p).map(|()| Some(p.as_str())),
        }
    }

    /// TARGET-PATH, checked, for a tool that requires it.
    pub fn required_path(&self) -> Result<&str, Error> {
        self.path()?
            .ok_or_else(|| Error::Usage("TARGET-PATH is required".into()))
    }

    /// Where each of `sources` goes below TARGET-PATH
    /// ([`crate::name::target_map`]); empty without a TARGET-PATH.
    pub fn map<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::BTreeMap<String, String>, Error> {
        match self.path()? {
            None => Ok(Default::default()),
            Some(p) => crate::name::target_map(sources, p, self.strip_path),
        }
    }
}

/// The groups of the tools that write and thin backups (zab-send,
/// zab-thin), flattened as one: TARGET-PATH and its mapping, our snapshot
/// names, our hold tag.
#[derive(Args, Debug, Clone)]
pub struct Backups {
    #[command(flatten)]
    pub target: Target,

    #[command(flatten)]
    pub naming: Naming,

    #[command(flatten)]
    pub holds: Holds,
}

/// How content is hashed: chunks of --count blocks of --block-size bytes,
/// one in every --skip + 1 (zab-check, and zab-verify, which passes them
/// on to zab-check on both sides).
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct Chunks {
    /// Read blocks of this many bytes (a number, or with a unit: 64K).
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = parse_bytes)]
    pub block_size: u64,

    /// Hash chunks of COUNT blocks (a chunk is BYTES × COUNT bytes).
    #[arg(long, value_name = "COUNT", default_value_t = 25600)]
    pub count: u64,

    /// Sample: hash one chunk, skip N, and so on across files (a check
    /// takes one input line and skips N, as zfs-check does).
    #[arg(short, long, value_name = "N", default_value_t = 0)]
    pub skip: u64,
}

impl Chunks {
    /// The chunk size in bytes, checked: --block-size and --count at least
    /// 1, their product within range.
    pub fn chunk_size(&self) -> Result<u64, Error> {
        if self.block_size == 0 || self.count == 0 {
            return Err(Error::Usage(
                "--block-size and --count must be at least 1".into(),
            ));
        }
        self.block_size
            .checked_mul(self.count)
            .ok_or_else(|| Error::Usage("--block-size × --count is too large".into()))
    }

    /// The same options on zab-check's command line.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--block-size".into(),
            self.block_size.to_string(),
            "--count".into(),
            self.count.to_string(),
            "--skip".into(),
            self.skip.to_string(),
        ]
    }
}

/// Human messages on stderr. Records go to stdout; this never does.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub tool: &'static str,
    pub verbose: bool,
    pub debug: bool,
}

/// Every line is one line: control characters in it are escaped
/// ([`crate::error::escape`]).
impl Log {
    /// A line shown with `--verbose`.
    pub fn verbose(&self, msg: impl AsRef<str>) {
        if self.verbose {
            crate::screen::above(|| eprintln!("{}", escape(msg.as_ref())));
        }
    }

    /// A line shown with `--debug`.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.debug {
            crate::screen::above(|| eprintln!("# {}", escape(msg.as_ref())));
        }
    }

    /// An error line, always shown: `tool: message`.
    pub fn error(&self, msg: impl AsRef<str>) {
        crate::screen::above(|| eprintln!("{}: {}", self.tool, escape(msg.as_ref())));
    }

    /// A warning line, always shown: `tool: warning: message`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        crate::screen::above(|| eprintln!("{}: warning: {}", self.tool, escape(msg.as_ref())));
    }
}

/// The text after a tool's `--help`: its examples, the exit codes, and
/// where the rest is on an installed system (the man pages; the docs that
/// the Debian package puts in /usr/share/doc/zab, `docs/` of the source).
pub fn after_help(examples: &str) -> String {
    format!(
        "Examples:\n{examples}\n{}\nManual: man {}, {}. The record format and exit codes: \
         records.md and exit-codes.md in /usr/share/doc/zab (docs/ in the source).",
        exit_codes_help(),
        crate::man::TOOLS.join(", "),
        crate::man::WRAPPER
    )
}

/// Parses a byte count: a whole number of bytes, or a number with a unit
/// (`64K`, `1.5M`, `2GiB`; K, M, G, T are powers of 1024 as in zfs,
/// mbuffer and pv; a fraction with a unit is rounded to the nearest byte).
/// A fraction without a unit (`1.5`, `1.5B`) is refused: there is no half
/// byte. The one byte-count parser of every tool.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("invalid byte count {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid byte count {s:?} (units: K, M, G, T)")),
    };
    if mult == 1 && num.fract() != 0.0 {
        return Err(format!(
            "byte count {s:?} is not a whole number of bytes (a fraction needs a unit: 1.5K)"
        ));
    }
    let v = num * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("byte count {s:?} out of range"));
    }
    Ok(v.round() as u64)
}

/// Formats a byte count for people, in the powers of 1024 that
/// [`parse_bytes`] reads: `512 B`, `1.50 KiB`, `12.3 MiB`, `100 GiB` (three
/// significant digits from 1 KiB up).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1023.5 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let decimals = if v < 9.995 {
        2
    } else if v < 99.95 {
        1
    } else {
        0
    };
    format!("{v:.decimals$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A tool with a required argument, as most are.
    #[derive(Parser, Debug)]
    #[command(name = "zab-demo", version)]
    struct Demo {
        /// The backup name.
        backup: String,
        #[command(flatten)]
        common: Common,
    }

    fn parsed(argv: &[&str]) -> Result<Parsed<Demo>, clap::Error> {
        try_parse_from::<Demo, _, _>(std::iter::once("zab-demo").chain(argv.iter().copied()))
    }

    fn usage(argv: &[&str]) -> String {
        usage_line("zab-demo", &parsed(argv).unwrap_err())
    }

    /// clap's usage errors are 3 to 5 lines without the tool's name; ours
    /// are one, named, with a pointer to --help.
    #[test]
    fn usage_errors_are_one_line_with_the_tools_name() {
        for (argv, want) in [
            (
                &["b", "--foo"][..],
                "zab-demo: unexpected argument '--foo' found (see zab-demo --help)",
            ),
            (
                &[],
                "zab-demo: the following required arguments were not provided: <BACKUP> \
                 (see zab-demo --help)",
            ),
            (
                &["b", "--verbos"],
                "zab-demo: unexpected argument '--verbos' found \
                 (a similar argument exists: '--verbose') (see zab-demo --help)",
            ),
            (
                &["b", "--now", "2024-01-10"],
                "zab-demo: invalid value '2024-01-10' for '--now <SECONDS>': expected a Unix \
                 time: whole seconds since 1970-01-01 UTC, such as 1704888000 (date +%s prints \
                 one) (see zab-demo --help)",
            ),
            (
                &["b", "c"],
                "zab-demo: unexpected argument 'c' found (see zab-demo --help)",
            ),
            (
                &["--man", "b"],
                "zab-demo: the argument '--man' cannot be used with one or more of the other \
                 specified arguments (see zab-demo --help)",
            ),
        ] {
            assert_eq!(usage(argv), want, "{argv:?}");
        }
        // An argument with a newline or an escape stays on the line.
        let line = usage(&["b", "--x\n\x1b[2J"]);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(!line.contains('\x1b'), "{line}");
    }

    #[test]
    fn man_needs_no_other_argument_and_prints_the_page() {
        match parsed(&["--man"]) {
            Ok(Parsed::Man(page)) => assert_eq!(page, man::render(&Demo::command())),
            other => panic!("{other:?}"),
        }
        // With other arguments it is a usage error, as --help is not.
        assert_eq!(
            parsed(&["--man", "x"]).unwrap_err().kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn without_man_it_parses_as_clap_does() {
        match parsed(&["offsite1", "-v"]) {
            Ok(Parsed::Args(a)) => assert!(a.backup == "offsite1" && a.common.verbose.verbose),
            other => panic!("{other:?}"),
        }
        let missing = parsed(&[]).unwrap_err();
        assert_eq!(
            missing.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let help = parsed(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(!help.to_string().contains("--man"), "--man is hidden");
        assert!(!man::render(&Demo::command()).contains("\\-\\-man"));
    }

    /// `--end-record FILE` needs no other argument, is hidden, and is
    /// alone on the line.
    #[test]
    fn end_record_is_a_hidden_option_alone() {
        match parsed(&["--end-record", "out.ndjson"]) {
            Ok(Parsed::EndRecord(f)) => assert_eq!(f, PathBuf::from("out.ndjson")),
            other => panic!("{other:?}"),
        }
        match parsed(&["--end-record=x y"]) {
            Ok(Parsed::EndRecord(f)) => assert_eq!(f, PathBuf::from("x y")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parsed(&["--end-record", "f", "offsite1"])
                .unwrap_err()
                .kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
        assert_eq!(
            parsed(&["--end-record"]).unwrap_err().kind(),
            clap::error::ErrorKind::InvalidValue
        );
        let help = parsed(&["--help"]).unwrap_err().to_string();
        assert!(!help.contains("--end-record"), "{help}");
        assert!(!man::render(&Demo::command()).contains("end\\-record"));
    }

    #[test]
    fn completions_is_a_hidden_option_alone() {
        for (shell, marker) in [
            ("bash", "complete -F _zab__demo"),
            ("zsh", "#compdef zab-demo"),
            ("fish", "complete -c zab-demo"),
        ] {
            match parsed(&["--completions", shell]) {
                Ok(Parsed::Completions(script)) => {
                    assert!(script.contains(marker), "{shell}: {script}");
                    assert!(script.contains("verbose"), "{shell}: {script}");
                    for hidden in ["--man", "-l man ", "completions", "end-record"] {
                        assert!(!script.contains(hidden), "{shell} offers {hidden}");
                    }
                }
                other => panic!("{shell}: {other:?}"),
            }
        }
        assert_eq!(
            parsed(&["--completions", "bash", "offsite1"])
                .unwrap_err()
                .kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
        assert_eq!(
            parsed(&["--completions", "tcsh"]).unwrap_err().kind(),
            clap::error::ErrorKind::InvalidValue
        );
        let help = parsed(&["--help"]).unwrap_err().to_string();
        assert!(!help.contains("--completions"), "{help}");
        assert!(!man::render(&Demo::command()).contains("completions"));
    }

    /// The end of --help names what an installed system has: the man
    /// pages, and the docs in /usr/share/doc/zab; no bare `docs/` path.
    #[test]
    fn help_ends_with_the_manual() {
        let text = after_help("  zab-demo x\n");
        assert!(text.contains("man zab-select"), "{text}");
        assert!(text.contains("/usr/share/doc/zab"), "{text}");
        assert!(!text.contains("docs/records.md"), "{text}");
        for tool in crate::man::TOOLS {
            assert!(text.contains(&format!(" {tool},")), "{tool}: {text}");
        }
        assert!(text.contains(" zab-autobackup."), "{text}");
    }

    const DS: &str = r#"{"kind":"dataset","backup":"b","host":null,"name":"tank/a","type":"filesystem","selected":true,"reason":"selected","value":"true","source":"local","inherited_from":null,"createtxg":7,"written":0}"#;

    fn fields(text: &str) -> Result<String, Error> {
        end_record_fields(text.as_bytes())
    }

    #[test]
    fn end_record_fields_are_counts_on_lines() {
        let end = r#"{"kind":"end","tool":"zab-send","version":"0.1.0","datasets":1,"failed":1}"#;
        assert_eq!(
            fields(&format!("{DS}\n{end}\n")).unwrap(),
            "datasets 1\nfailed 1\n"
        );
        // Any field order, spaces, other fields: a JSON reader, not a grep.
        let end = r#"{ "failed" : 3, "note": "\"failed\":0", "kind": "end", "tool": "zab-snap", "version": "0.1.0", "datasets": 4, "pre_hook_failures": 2, "hook_failures": 1 }"#;
        assert_eq!(
            fields(&format!("{end}\n")).unwrap(),
            "datasets 4\nfailed 3\nhook_failures 1\npre_hook_failures 2\n"
        );
        // zab-send's and zab-thin's counts, for the wrapper's --metrics;
        // created_parents (a list) is not `created`.
        let end = r#"{"kind":"end","tool":"zab-send","version":"0.1.0","datasets":2,"failed":0,"target":"t","sent":1,"transfers":3,"bytes":4096,"created_parents":["t/a"],"destroyed":2}"#;
        assert_eq!(
            fields(&format!("{end}\n")).unwrap(),
            "datasets 2\nfailed 0\nsent 1\ntransfers 3\nbytes 4096\ndestroyed 2\n"
        );
        // A name that is not ours, even one with a newline, is never printed.
        let end =
            r#"{"kind":"end","tool":"t","version":"v","datasets":0,"failed":0,"x\nfailed 9":1}"#;
        assert_eq!(
            fields(&format!("{end}\n")).unwrap(),
            "datasets 0\nfailed 0\n"
        );
    }

    #[test]
    fn end_record_fields_refuse_incomplete_or_bad_output() {
        let end = r#"{"kind":"end","tool":"t","version":"v","datasets":1,"failed":0}"#;
        for (text, want) in [
            (String::new(), "end of input: no records at all"),
            (format!("{DS}\n"), "end of input: no end record"),
            (
                format!("{DS}\n{end}"),
                "line 2: the last line has no newline",
            ),
            (
                format!("{end}\n{DS}\n"),
                "line 2: record after the end record",
            ),
            (
                format!("{DS}\nnot json\n{end}\n"),
                "line 2: not a JSON record",
            ),
            (
                end.replace(r#""failed":0"#, r#""failed":"0""#) + "\n",
                "line 1: invalid type",
            ),
            (
                end.replace(r#""failed":0"#, r#""failed":0,"hook_failures":-1"#) + "\n",
                "end of input: the end record's hook_failures is not a count: -1",
            ),
            (
                end.replace(r#""failed":0"#, r#""failed":0,"pre_hook_failures":"1; rm""#) + "\n",
                "the end record's pre_hook_failures is not a count",
            ),
        ] {
            let err = fields(&text).unwrap_err();
            assert!(
                err.to_string().starts_with(want) || err.to_string().contains(want),
                "{text:?}: {err}"
            );
            assert_eq!(err.exit(), crate::Exit::Input, "{text:?}");
        }
    }

    #[test]
    fn print_end_record_says_why_on_one_line() {
        // Under the build's own target dir, as the other tests' scratch
        // directories: never a shared temporary directory.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/zab-core-tests/end-record");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("out");
        std::fs::write(&file, format!("{DS}\n")).unwrap();
        assert_eq!(print_end_record("zab-demo", &file), 3);
        assert_eq!(print_end_record("zab-demo", &dir.join("missing")), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn now_is_the_clock_or_the_hidden_flag() {
        let common = |now| Common {
            now,
            ..Common::default()
        };
        assert_eq!(common(Some(5)).now().unwrap().timestamp(), 5);
        let before = Utc::now().timestamp();
        assert!(common(None).now().unwrap().timestamp() >= before);
        for bad in [-1, 253_402_300_800] {
            let e = common(Some(bad)).now().unwrap_err();
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        match parsed(&["b", "--now", "7"]) {
            Ok(Parsed::Args(a)) => assert_eq!(a.common.now, Some(7)),
            other => panic!("{other:?}"),
        }
        assert!(!parsed(&["--help"])
            .unwrap_err()
            .to_string()
            .contains("--now"));
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("1.5M"), Ok(1572864));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("12Q").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("M").is_err());
    }

    #[test]
    fn a_fraction_of_a_byte_needs_a_unit() {
        // "1.5M" is 1.5 MiB; "1.5" bytes (or "1.5B") is no byte count.
        for s in ["1.5", "1.5B", "0.5"] {
            let err = parse_bytes(s).unwrap_err();
            assert!(err.contains("whole number of bytes"), "{s}: {err}");
        }
        assert_eq!(parse_bytes("1.0"), Ok(1));
        assert_eq!(parse_bytes("1.5K"), Ok(1536));
        assert_eq!(parse_bytes("0.5K"), Ok(512));
        assert_eq!(parse_bytes("2B"), Ok(2));
        assert_eq!(
            parse_bytes("1e3").unwrap_err(),
            "invalid byte count \"1e3\" (units: K, M, G, T)"
        );
    }

    #[test]
    fn byte_counts_for_people() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.00 KiB");
        assert_eq!(format_bytes(1536), "1.50 KiB");
        assert_eq!(format_bytes(12_900_000), "12.3 MiB");
        assert_eq!(format_bytes(100 << 30), "100 GiB");
        // Rounding never shows 1024 of a unit.
        assert_eq!(format_bytes((1 << 20) - 1), "1.00 MiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
        // What parse_bytes reads back.
        assert_eq!(parse_bytes(&format_bytes(8 << 30)), Ok(8 << 30));
    }

    mod properties {
        use super::*;
        use crate::fuzz::{assert_plain_line, config, noise};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config(256))]

            /// `--rate`, `--buffer`, `--size`, `-m`, `--min-change`,
            /// `--exclude-unchanged`: a byte count, or one line.
            #[test]
            fn any_text_is_a_byte_count_or_one_line(
                s in prop_oneof![noise(), "[0-9. ]{0,25}[kKmMgGtTiIbB]{0,4}", "\\PC{0,12}"],
            ) {
                if let Err(e) = parse_bytes(&s) {
                    assert_plain_line(&e, &s);
                }
                if let Err(e) = parse_now(&s) {
                    assert_plain_line(&e, &s);
                }
            }

            #[test]
            fn a_byte_count_reads_back(n in any::<u64>(), unit in 0usize..5) {
                prop_assert_eq!(parse_bytes(&n.to_string()), Ok(n));
                let (suffix, mult) = [("", 1u64), ("K", 1 << 10), ("MiB", 1 << 20), ("g", 1 << 30), ("TB", 1 << 40)][unit];
                let small = n % 100_000;
                prop_assert_eq!(parse_bytes(&format!("{small}{suffix}")), Ok(small * mult));
            }

            /// Any command line gives the arguments, or one usage line.
            #[test]
            fn any_command_line_is_one_usage_line(
                argv in proptest::collection::vec(
                    prop_oneof![
                        proptest::sample::select(vec![
                            "-v", "--verbose", "--debug", "--now", "--ssh-config", "--man",
                            "--end-record", "--help", "--", "-", "b",
                        ]).prop_map(String::from),
                        noise(),
                    ],
                    0..5,
                ),
            ) {
                match parsed(&argv.iter().map(String::as_str).collect::<Vec<_>>()) {
                    Ok(_) => {}
                    Err(e) if !e.use_stderr() => {}
                    Err(e) => {
                        let line = usage_line("zab-demo", &e);
                        prop_assert!(!line.contains(['\n', '\r']), "{:?}", line);
                        prop_assert!(line.starts_with("zab-demo: ") && line.ends_with("(see zab-demo --help)"));
                    }
                }
            }
        }
    }
}
