//! Where commands run: this machine, or another one through the system `ssh`.
//!
//! This is the only module that builds processes. A remote command is one
//! string for the remote shell, built by quoting every argument on its own
//! ([`quote`]), so a value with spaces, quotes, `$` or `;` arrives unchanged
//! and never runs as code. We use the system `ssh` client, never an SSH
//! library, so the admin's `~/.ssh/config` (ControlMaster, ProxyJump, keys)
//! applies; `--ssh-config FILE` becomes `ssh -F FILE`.
//!
//! With `debug` on, every command is printed to stderr before it runs, as a
//! line an admin can paste into a shell.
//!
//! `zfs` and `zpool` live in /usr/sbin (or /sbin), which cron's PATH
//! (`/usr/bin:/bin`) and a non-root ssh session's PATH lack. Locally, when
//! PATH lacks those directories, a command runs with them appended to its
//! PATH ([`with_sbin`]), and a program found only there runs by its full
//! path (what `--debug` shows: `/usr/sbin/zfs list ...`). Remotely, every
//! command is `env PATH="$PATH:/usr/sbin:/sbin" ...` ([`REMOTE_PATH`]): the
//! remote shell's PATH first, in the same ssh call.
//!
//! ssh gets a connect timeout and keepalives ([`ssh_timeouts`]) unless the
//! ssh config sets them, so an unreachable host fails in seconds and a
//! dead connection does not hang a transfer.
//!
//! In read-only mode ([`Host::with_read_only`], what `--test` switches on)
//! a host refuses every command that is not on the read-only allow-list
//! ([`is_read_only`]: `zfs list`, `zfs get`, `zfs holds`, a dry-run
//! `zfs send -n`, `zpool get`, ...): the refusal is an error
//! ([`Error::ReadOnly`]) and nothing runs. Printing a command
//! ([`Host::display`]) is never refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{CommandError, Error, Status};

/// Every ssh shares one connection per destination (a ControlMaster that
/// stays 60 s after its last use), so the many short commands of a run cost
/// one handshake. The socket lives in the private runtime directory
/// ([`crate::private::runtime_dir`]), never in a world-writable one: an ssh
/// mux client uses whatever socket sits at its ControlPath. Options given
/// on the command line win over the ssh config's; `%C` is a hash of the
/// local user, host, port and remote user. Off with `--ssh-no-share`.
pub fn ssh_sharing(dir: &Path) -> Vec<String> {
    vec![
        "-o".into(),
        "ControlMaster=auto".into(),
        "-o".into(),
        format!("ControlPath={}", dir.join("ssh-%C").display()),
        "-o".into(),
        "ControlPersist=60".into(),
    ]
}

/// Where `zfs` and `zpool` are when PATH lacks them: Debian and Ubuntu put
/// them in /usr/sbin, older systems in /sbin.
pub const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

/// What every remote command starts with: the remote shell's PATH, then
/// [`SBIN_DIRS`] (a non-root ssh session's PATH on Debian is
/// `/usr/local/bin:/usr/bin:/bin:/usr/games`). `env` works in any login
/// shell and runs the command itself: still one process, one ssh call.
pub const REMOTE_PATH: &str = r#"env PATH="$PATH:/usr/sbin:/sbin""#;

/// `path` (a PATH value) with the [`SBIN_DIRS`] it lacks appended, or None
/// when it has them all. Pure: the caller passes the environment's PATH.
pub fn with_sbin(path: Option<&OsStr>) -> Option<OsString> {
    let dirs: Vec<PathBuf> = path
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .collect();
    let missing: Vec<&str> = SBIN_DIRS
        .into_iter()
        .filter(|d| !dirs.iter().any(|p| p == Path::new(d)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut out = path.map(OsStr::to_os_string).unwrap_or_default();
    for d in missing {
        if !out.is_empty() {
            out.push(":");
        }
        out.push(d);
    }
    Some(out)
}

/// The full path of `program` when it is found in one of `added` (the
/// directories [`with_sbin`] appended) and in no directory of `path`
/// before them. None for a program given with a `/`, found earlier, or
/// found nowhere.
fn found_only_in(program: &str, path: &OsStr, added: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') || program.is_empty() {
        return None;
    }
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(program);
        if runnable(&candidate) {
            let d = dir.to_string_lossy();
            return added.contains(&d.as_ref()).then_some(candidate);
        }
    }
    None
}

/// ssh's connect timeout, in seconds, when the ssh config sets none: an
/// unreachable host fails after this long instead of the minutes of TCP's
/// own retries.
pub const SSH_CONNECT_TIMEOUT: u32 = 10;

/// ssh's keepalive interval, in seconds, when the ssh config sets none:
/// after three unanswered keepalives (ServerAliveCountMax, 3 by default) a
/// dead connection ends instead of hanging a transfer.
pub const SSH_ALIVE_INTERVAL: u32 = 15;

/// The `-o` options for the timeouts that the ssh config leaves unset,
/// given `ssh -G DEST`'s output (the effective config, one `key value` per
/// line; None when `ssh -G` failed: then both are set). ssh's defaults
/// (`connecttimeout none`, `serveraliveinterval 0`) mean unset: an explicit
/// `ServerAliveInterval 0` in the config looks the same, so it gets ours
/// too. A `-o` on ssh's command line wins over the config, so these are
/// only added where the config said nothing.
pub fn ssh_timeouts(effective: Option<&str>) -> Vec<String> {
    let value = |key: &str| {
        effective.and_then(|text| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                k.eq_ignore_ascii_case(key).then(|| v.trim().to_string())
            })
        })
    };
    let mut out = Vec::new();
    if value("connecttimeout").map_or(true, |v| v == "none") {
        out.push("-o".to_string());
        out.push(format!("ConnectTimeout={SSH_CONNECT_TIMEOUT}"));
    }
    if value("serveraliveinterval").map_or(true, |v| v == "0") {
        out.push("-o".to_string());
        out.push(format!("ServerAliveInterval={SSH_ALIVE_INTERVAL}"));
    }
    out
}

/// [`ssh_timeouts`] for one destination and ssh config, from `ssh -G`,
/// once per process (a local lookup of the config: no connection).
fn ssh_timeouts_for(dest: &str, config: Option<&Path>, debug: bool) -> Vec<String> {
    type Key = (Option<PathBuf>, String);
    static SEEN: Mutex<Option<HashMap<Key, Vec<String>>>> = Mutex::new(None);
    let key = (config.map(Path::to_path_buf), dest.to_string());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashMap::new);
    if let Some(found) = seen.get(&key) {
        return found.clone();
    }
    let mut cmd = Command::new("ssh");
    if let Some(cfg) = config {
        cmd.arg("-F").arg(cfg);
    }
    cmd.args(["-G", "--", dest])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let effective = cmd
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let found = ssh_timeouts(effective.as_deref());
    if debug {
        eprintln!(
            "# ssh -G {dest}: {}",
            match found.is_empty() {
                true => "the ssh config sets ConnectTimeout and ServerAliveInterval".to_string(),
                false => format!("adding {}", quote_argv(&found)),
            }
        );
    }
    seen.insert(key, found.clone());
    found
}

/// True for the characters an ssh destination may have: `[user@]host`, an
/// alias, an IPv6 address in brackets with a zone (`%eth0`), a port.
fn is_dest_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._@:%[]-".contains(c)
}

/// A machine that runs commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    ssh: Option<String>,
    ssh_config: Option<PathBuf>,
    debug: bool,
    /// Share one connection per destination (see [`ssh_sharing`]).
    share: bool,
    /// Read-only mode, and the option that asked for it (`--test`).
    read_only: Option<&'static str>,
}

impl Host {
    /// This machine.
    pub fn local() -> Host {
        Host {
            ssh: None,
            ssh_config: None,
            debug: false,
            share: true,
            read_only: None,
        }
    }

    /// A machine reached as `ssh DEST`, where DEST is `[user@]host` or an
    /// alias from the ssh config: letters, digits and `._@:%[]-` only, not
    /// starting with `-`.
    pub fn ssh(dest: &str) -> Result<Host, Error> {
        if dest.is_empty() || dest.starts_with('-') || !dest.chars().all(is_dest_char) {
            return Err(Error::Usage(format!("invalid ssh destination {dest:?}")));
        }
        Ok(Host {
            ssh: Some(dest.to_string()),
            ssh_config: None,
            debug: false,
            share: true,
            read_only: None,
        })
    }

    /// Local when `dest` is None, else [`Host::ssh`].
    pub fn from_option(dest: Option<&str>) -> Result<Host, Error> {
        match dest {
            None => Ok(Host::local()),
            Some(d) => Host::ssh(d),
        }
    }

    /// Uses this ssh config file (`ssh -F FILE`).
    pub fn with_ssh_config(mut self, file: Option<&Path>) -> Host {
        self.ssh_config = file.map(Path::to_path_buf);
        self
    }

    /// Shares one ssh connection per destination (the default), or leaves
    /// that to the user's ssh config (`--ssh-no-share`).
    pub fn with_ssh_share(mut self, share: bool) -> Host {
        self.share = share;
        self
    }

    /// Prints each command to stderr before running it.
    pub fn with_debug(mut self, debug: bool) -> Host {
        self.debug = debug;
        self
    }

    /// Read-only mode when `mode` is given (the option that asks for it, for
    /// messages: `--test`): from then on, every command that
    /// [`is_read_only`] does not allow is refused with [`Error::ReadOnly`]
    /// and never runs.
    pub fn with_read_only(mut self, mode: Option<&'static str>) -> Host {
        self.read_only = mode;
        self
    }

    /// The option that put this host in read-only mode, if any.
    pub fn read_only(&self) -> Option<&'static str> {
        self.read_only
    }

    /// The read-only gate: an error for `argv` when this host is read-only
    /// and `argv` may change something.
    fn gate<S: AsRef<str>>(&self, argv: &[S]) -> Result<(), Error> {
        match self.read_only {
            Some(mode) if !is_read_only(argv) => Err(Error::ReadOnly {
                host: self.name().to_string(),
                command: quote_argv(argv),
                mode: mode.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The ssh destination, or None for this machine.
    pub fn dest(&self) -> Option<&str> {
        self.ssh.as_deref()
    }

    /// The name used in messages: the ssh destination, or `local`.
    pub fn name(&self) -> &str {
        self.ssh.as_deref().unwrap_or("local")
    }

    /// The argv that runs `argv` on this host: locally `argv` itself (its
    /// program by its full path when only [`SBIN_DIRS`] have it, see
    /// [`Host::local_path`]), or `ssh [-F FILE] [SHARING] [TIMEOUTS] --
    /// DEST 'env PATH="$PATH:/usr/sbin:/sbin" quoted command'`. Sharing
    /// needs the private runtime directory, checked once per process: when
    /// it is unsafe, this fails and no ssh runs.
    pub fn wrap<S: AsRef<str>>(&self, argv: &[S]) -> Result<Vec<String>, Error> {
        let Some(dest) = &self.ssh else {
            let mut out: Vec<String> = argv.iter().map(|a| a.as_ref().to_string()).collect();
            if let (Some(path), Some(first)) = (self.local_path(), out.first_mut()) {
                if let Some(full) = found_only_in(first, &path, &SBIN_DIRS) {
                    *first = full.to_string_lossy().into_owned();
                }
            }
            return Ok(out);
        };
        let dir = match self.share {
            true => Some(crate::private::runtime_dir()?),
            false => None,
        };
        let timeouts = ssh_timeouts_for(dest, self.ssh_config.as_deref(), self.debug);
        Ok(self.wrap_in(argv, dir.as_deref(), &timeouts))
    }

    /// The PATH of a local command: ours with [`SBIN_DIRS`] appended, or
    /// None when ours has them (then it is left alone).
    fn local_path(&self) -> Option<OsString> {
        match self.ssh {
            None => with_sbin(std::env::var_os("PATH").as_deref()),
            Some(_) => None,
        }
    }

    /// [`Host::wrap`] for ssh with the control socket's directory given
    /// (None: no sharing options) and the timeout options; `argv` itself
    /// locally.
    fn wrap_in<S: AsRef<str>>(
        &self,
        argv: &[S],
        share_dir: Option<&Path>,
        timeouts: &[String],
    ) -> Vec<String> {
        let argv: Vec<String> = argv.iter().map(|a| a.as_ref().to_string()).collect();
        match &self.ssh {
            None => argv,
            Some(dest) => {
                let mut out = vec!["ssh".to_string()];
                if let Some(cfg) = &self.ssh_config {
                    out.push("-F".into());
                    out.push(cfg.to_string_lossy().into_owned());
                }
                if let Some(dir) = share_dir.filter(|_| self.share) {
                    out.extend(ssh_sharing(dir));
                }
                out.extend(timeouts.iter().cloned());
                out.push("--".into());
                out.push(dest.clone());
                out.push(format!("{REMOTE_PATH} {}", quote_argv(&argv)));
                out
            }
        }
    }

    /// The line that `--debug` prints: the wrapped command, shell-quoted
    /// (without the sharing options when the runtime directory is unsafe:
    /// then that command never runs).
    pub fn display<S: AsRef<str>>(&self, argv: &[S]) -> String {
        let full = self.wrap(argv).unwrap_or_else(|_| {
            let timeouts = match &self.ssh {
                Some(dest) => ssh_timeouts_for(dest, self.ssh_config.as_deref(), false),
                None => Vec::new(),
            };
            self.wrap_in(argv, None, &timeouts)
        });
        quote_argv(&full)
    }

    /// A process that runs `argv` on this host, stdin closed (so ssh never
    /// eats our own input). Prints the command first when debugging. In
    /// read-only mode, an error for a command that may change something.
    pub fn command<S: AsRef<str>>(&self, argv: &[S]) -> Result<Command, Error> {
        self.gate(argv)?;
        let full = self.wrap(argv)?;
        if self.debug {
            eprintln!("{}", quote_argv(&full));
        }
        let mut cmd = Command::new(&full[0]);
        cmd.args(&full[1..]).stdin(Stdio::null());
        if let Some(path) = self.local_path() {
            // For what a command starts in its turn (`sh -c 'zfs send ...'`).
            cmd.env("PATH", path);
        }
        Ok(cmd)
    }

    /// For a remote command too long for one argument of the remote shell
    /// (Linux limits one argument to 128 KiB): ssh runs `sh`, and the command
    /// line goes to it on stdin. Returns None when the command is short
    /// enough, or the host is local.
    fn long_remote<S: AsRef<str>>(&self, argv: &[S]) -> Result<Option<(Command, String)>, Error> {
        if self.ssh.is_none() {
            return Ok(None);
        }
        let line = quote_argv(argv);
        if line.len() <= LONG_REMOTE_COMMAND {
            return Ok(None);
        }
        let full = self.wrap(&["sh"])?;
        if self.debug {
            eprintln!("{}", self.display(argv));
        }
        let mut cmd = Command::new(&full[0]);
        cmd.args(&full[1..]).stdin(Stdio::piped());
        // `exec` on one line: sh has read the whole command before it runs.
        Ok(Some((cmd, format!("exec {line}\n"))))
    }

    /// Runs `argv` and returns its standard output. Any failure carries the
    /// host, the command line, the exit status and standard error.
    pub fn output<S: AsRef<str>>(&self, argv: &[S]) -> Result<String, Error> {
        self.capture(argv).map(|c| c.stdout)
    }

    /// Runs `argv` and returns its standard output and standard error. Any
    /// failure carries the host, the command line, the exit status and
    /// standard error.
    pub fn capture<S: AsRef<str>>(&self, argv: &[S]) -> Result<Captured, Error> {
        self.capture_fed(argv, None)
    }

    /// Runs `argv` with `input` on its standard input (a script that `zfs
    /// program` reads from `/dev/stdin`, so nothing of ours is written on
    /// the host) and returns its standard output, failing as
    /// [`Host::output`]. A remote command line this long would need stdin
    /// for itself ([`LONG_REMOTE_COMMAND`]): the caller keeps it shorter,
    /// and a longer one is refused before it runs.
    pub fn output_fed<S: AsRef<str>>(&self, argv: &[S], input: &str) -> Result<String, Error> {
        self.capture_fed(argv, Some(input.to_string()))
            .map(|c| c.stdout)
    }

    fn capture_fed<S: AsRef<str>>(
        &self,
        argv: &[S],
        input: Option<String>,
    ) -> Result<Captured, Error> {
        self.gate(argv)?;
        let (mut cmd, script) = match (self.long_remote(argv)?, input) {
            (Some(_), Some(_)) => {
                return Err(Error::Io(format!(
                    "{} on {}: a command line over {LONG_REMOTE_COMMAND} bytes cannot also be given its input",
                    argv.first().map(|a| a.as_ref()).unwrap_or_default(),
                    self.name()
                )))
            }
            (Some((cmd, script)), None) => (cmd, Some(script)),
            (None, input) => {
                let mut cmd = self.command(argv)?;
                if input.is_some() {
                    cmd.stdin(Stdio::piped());
                }
                (cmd, input)
            }
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let fail = |status: Status, stderr: String| -> Error {
            CommandError {
                host: self.name().to_string(),
                via_ssh: self.ssh.is_some(),
                program: argv
                    .first()
                    .map(|a| a.as_ref().to_string())
                    .unwrap_or_default(),
                command: quote_argv(argv),
                status,
                stderr: stderr.trim().to_string(),
            }
            .into()
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Err(fail(Status::Spawn(e.to_string()), String::new())),
        };
        if let (Some(script), Some(mut stdin)) = (script, child.stdin.take()) {
            // Small enough for the pipe buffer in practice, but never block:
            // a thread writes it while we read the output.
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(script.as_bytes());
            });
        }
        // Read stderr on a thread so neither pipe can fill up and block.
        let mut err_pipe = child.stderr.take();
        let err_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        });
        let mut out = Vec::new();
        if let Some(mut p) = child.stdout.take() {
            p.read_to_end(&mut out)?;
        }
        let status = child.wait()?;
        let err = err_thread.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&err).into_owned();
        if !status.success() {
            return Err(fail(Status::from_exit(status), stderr));
        }
        let stdout = String::from_utf8(out).map_err(|_| Error::Parse {
            command: quote_argv(argv),
            message: format!("output on {} is not UTF-8", self.name()),
        })?;
        Ok(Captured { stdout, stderr })
    }
}

/// True when `argv` only reads: the commands a read-only host runs
/// ([`Host::with_read_only`]). The allow-list: `zfs list`, `zfs get`,
/// `zfs holds`, `zfs version`, `zfs send` with its dry-run option (`-n` or
/// `--dryrun`, before the first operand), and `zpool get`, `zpool list`,
/// `zpool status`, `zpool version`. Everything else is refused: every other
/// verb (`zfs destroy`, `snapshot`, `recv`, `set`, `hold`, ...), a real
/// `zfs send` (which feeds a receive), any shell (`sh -c` runs anything).
pub fn is_read_only<S: AsRef<str>>(argv: &[S]) -> bool {
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    match argv.as_slice() {
        ["zfs", "list" | "get" | "holds" | "version", ..] => true,
        ["zfs", "send", rest @ ..] => send_is_dry_run(rest),
        ["zpool", "get" | "list" | "status" | "version", ..] => true,
        _ => false,
    }
}

/// `zfs send`'s options that take a value (OpenZFS 2.x, `zfs_do_send`).
const SEND_SHORT_WITH_VALUE: &str = "iItdX";
const SEND_LONG_WITH_VALUE: &[&str] = &["redact", "resume", "exclude"];
const SEND_LONG: &[&str] = &[
    "replicate",
    "skip-missing",
    "props",
    "parsable",
    "dedup",
    "proctitle",
    "verbose",
    "dryrun",
    "large-block",
    "embed",
    "compressed",
    "raw",
    "backup",
    "holds",
    "saved",
];

/// True when the options of `zfs send` (the arguments after `send`) hold
/// its dry-run option before the first operand, as getopt reads them: not
/// as the value of `-i`, `-t`, ... A long option zab does not know (or an
/// abbreviated one) makes it false: in doubt, refuse.
fn send_is_dry_run(args: &[&str]) -> bool {
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        if a == "--" || a == "-" || !a.starts_with('-') {
            return false;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if name == "dryrun" && value.is_none() {
                return true;
            }
            if SEND_LONG_WITH_VALUE.contains(&name) {
                if value.is_none() {
                    i += 1;
                }
            } else if !SEND_LONG.contains(&name) || value.is_some() {
                return false;
            }
        } else {
            let letters = &a[1..];
            for (k, c) in letters.char_indices() {
                if c == 'n' {
                    return true;
                }
                if SEND_SHORT_WITH_VALUE.contains(c) {
                    // The rest of the word is the value, or else the next word.
                    if k + c.len_utf8() == letters.len() {
                        i += 1;
                    }
                    break;
                }
            }
        }
        i += 1;
    }
    false
}

/// What a successful command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub stdout: String,
    /// Standard error (lossily decoded).
    pub stderr: String,
}

/// Remote command lines longer than this go to the remote shell on stdin
/// (see [`Host::capture`]): Linux refuses a single argument over 128 KiB, and
/// the remote command is one argument of `sh -c`. A `zfs snapshot` of a few
/// thousand datasets in one pool is that long.
pub const LONG_REMOTE_COMMAND: usize = 64 * 1024;

/// True for characters that never need quoting in a POSIX shell word.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c)
}

/// Quotes one argument for a POSIX shell: plain words stay as they are,
/// anything else is put in single quotes (a `'` becomes `'\''`).
pub fn quote(arg: &str) -> Cow<'_, str> {
    if !arg.is_empty() && arg.chars().all(is_plain) {
        Cow::Borrowed(arg)
    } else {
        Cow::Owned(format!("'{}'", arg.replace('\'', r"'\''")))
    }
}

/// Quotes every argument and joins them with spaces.
pub fn quote_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Arguments that must reach the remote side unchanged, and none of which
/// may run as code: the quoting contract, checked by this module's unit tests
/// with a real `sh` and by the lab suite through real ssh. The `touch` ones
/// leave /tmp/zab-pwned behind if they ever run.
pub const HOSTILE_ARGS: &[&str] = &[
    "plain",
    "two words",
    "it's",
    "\"double\"",
    "$HOME",
    "a;b",
    "$(touch /tmp/zab-pwned)",
    "`touch /tmp/zab-pwned`",
    "x && touch /tmp/zab-pwned",
    "back\\slash",
    "new\nline",
    "tab\there",
    "",
    "*",
    "~",
    "--opt=x y",
    "'",
    "''",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(
            quote("tank/data@offsite1-20240101000000"),
            "tank/data@offsite1-20240101000000"
        );
        assert_eq!(quote("-o"), "-o");
        assert_eq!(
            quote("name,property,value,source"),
            "name,property,value,source"
        );
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    /// The quoted line, run by a real `sh` (as a remote shell would), gives
    /// back every argument unchanged and runs none of them as code.
    #[test]
    fn sh_gets_every_argument_back_unchanged() {
        let mut argv = vec!["printf", "%s\\0"];
        argv.extend_from_slice(HOSTILE_ARGS);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(quote_argv(&argv))
            .output()
            .expect("run sh");
        assert!(out.status.success());
        let got: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(got, HOSTILE_ARGS);
    }

    #[test]
    fn ssh_wrapping_honours_config_and_ends_options() {
        let h = Host::ssh("root@backup1")
            .unwrap()
            .with_ssh_config(Some(Path::new("lab/ssh config")));
        let dir = Path::new("/run/zab");
        let timeouts = ssh_timeouts(None);
        assert_eq!(
            h.wrap_in(
                &["zfs", "get", "-H", "autobackup:a b"],
                Some(dir),
                &timeouts
            ),
            vec![
                "ssh",
                "-F",
                "lab/ssh config",
                "-o",
                "ControlMaster=auto",
                "-o",
                "ControlPath=/run/zab/ssh-%C",
                "-o",
                "ControlPersist=60",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=15",
                "--",
                "root@backup1",
                r#"env PATH="$PATH:/usr/sbin:/sbin" zfs get -H 'autobackup:a b'"#
            ]
        );
        assert_eq!(
            quote_argv(&h.wrap_in(&["zfs", "list"], Some(dir), &[])),
            r#"ssh -F 'lab/ssh config' -o ControlMaster=auto -o ControlPath=/run/zab/ssh-%C -o ControlPersist=60 -- root@backup1 'env PATH="$PATH:/usr/sbin:/sbin" zfs list'"#
        );
        assert_eq!(
            Host::local().wrap(&["zfs", "list"]).unwrap(),
            vec!["zfs", "list"]
        );
    }

    #[test]
    fn no_sharing_leaves_it_to_the_ssh_config() {
        let h = Host::ssh("backup1").unwrap().with_ssh_share(false);
        let argv = h.wrap_in(&["zfs", "list"], None, &[]);
        assert_eq!(
            argv,
            vec![
                "ssh",
                "--",
                "backup1",
                r#"env PATH="$PATH:/usr/sbin:/sbin" zfs list"#
            ]
        );
        let argv = h.wrap(&["zfs", "list"]).unwrap();
        assert!(!argv.iter().any(|a| a.contains("Control")), "{argv:?}");
    }

    /// Cron's PATH lacks /usr/sbin and /sbin, where zfs is: they are
    /// appended, after the PATH's own directories; a PATH that has them is
    /// left alone.
    #[test]
    fn sbin_is_appended_to_a_path_without_it() {
        let p = |s: &str| with_sbin(Some(OsStr::new(s))).map(|p| p.into_string().unwrap());
        assert_eq!(
            p("/usr/bin:/bin").as_deref(),
            Some("/usr/bin:/bin:/usr/sbin:/sbin")
        );
        assert_eq!(
            p("/sbin:/usr/bin").as_deref(),
            Some("/sbin:/usr/bin:/usr/sbin")
        );
        assert_eq!(
            p("/usr/sbin/:/bin").as_deref(),
            Some("/usr/sbin/:/bin:/sbin")
        );
        assert_eq!(p("/usr/sbin:/usr/bin:/sbin:/bin"), None);
        assert_eq!(p("").as_deref(), Some("/usr/sbin:/sbin"));
        assert_eq!(
            with_sbin(None).map(|p| p.into_string().unwrap()).as_deref(),
            Some("/usr/sbin:/sbin")
        );
    }

    /// A program found only in the appended directories runs by its full
    /// path (what --debug shows); one found earlier on PATH, or nowhere,
    /// keeps its name.
    #[test]
    fn a_program_found_only_in_sbin_gets_its_full_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/zab-core-tests/host-sbin");
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["bin", "sbin"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let exe = |p: &Path, mode| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        exe(&dir.join("sbin/zfs"), 0o755);
        exe(&dir.join("sbin/both"), 0o755);
        exe(&dir.join("bin/both"), 0o755);
        exe(&dir.join("sbin/notexec"), 0o644);
        let sbin = dir.join("sbin").to_string_lossy().into_owned();
        let path = OsString::from(format!("{}:{sbin}", dir.join("bin").display()));
        let added = [sbin.as_str()];
        assert_eq!(
            found_only_in("zfs", &path, &added),
            Some(dir.join("sbin/zfs"))
        );
        assert_eq!(found_only_in("both", &path, &added), None);
        assert_eq!(found_only_in("notexec", &path, &added), None);
        assert_eq!(found_only_in("missing", &path, &added), None);
        assert_eq!(found_only_in("sbin/zfs", &path, &added), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The timeouts are added only where `ssh -G` shows ssh's defaults
    /// (the config set nothing), and both when `ssh -G` failed.
    #[test]
    fn ssh_timeouts_only_where_the_config_sets_none() {
        let both = vec!["-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15"];
        assert_eq!(ssh_timeouts(None), both);
        let defaults =
            "user root\nconnecttimeout none\nserveralivecountmax 3\nserveraliveinterval 0\n";
        assert_eq!(ssh_timeouts(Some(defaults)), both);
        let set = "connecttimeout 3\nserveraliveinterval 60\n";
        assert!(ssh_timeouts(Some(set)).is_empty());
        let one = "connecttimeout 30\nserveraliveinterval 0\n";
        assert_eq!(
            ssh_timeouts(Some(one)),
            vec!["-o", "ServerAliveInterval=15"]
        );
        let other = "connecttimeout none\nserveraliveinterval 5\n";
        assert_eq!(ssh_timeouts(Some(other)), vec!["-o", "ConnectTimeout=10"]);
    }

    /// A real `ssh -G` with an empty config: ssh's defaults, so both.
    #[test]
    fn ssh_g_of_an_empty_config_gives_both_timeouts() {
        let got = ssh_timeouts_for(
            "zab-no-such-host.invalid",
            Some(Path::new("/dev/null")),
            false,
        );
        assert_eq!(got, ssh_timeouts(None));
    }

    #[test]
    fn bad_destinations_are_refused() {
        assert!(Host::ssh("-oProxyCommand=x").is_err());
        assert!(Host::ssh("").is_err());
        assert!(Host::ssh("a b").is_err());
    }

    #[test]
    fn destinations_are_plain_words() {
        for good in [
            "backup1",
            "root@backup1",
            "root@10.0.0.1",
            "u@[fe80::1%eth0]",
            "a-b.c_d:22",
        ] {
            assert!(Host::ssh(good).is_ok(), "{good}");
        }
        for bad in [
            "a;b", "a$(x)", "a`x`", "a'b", "a\"b", "a/b", "a\\b", "a\nb", "a*", "a~b", "é@h",
        ] {
            assert!(Host::ssh(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn ssh_sockets_are_never_in_tmp() {
        let h = Host::ssh("root@backup1").unwrap();
        let argv = h.wrap(&["zfs", "list"]).unwrap();
        assert!(!argv.iter().any(|a| a.contains("/tmp")), "{argv:?}");
        let dir = crate::private::runtime_dir().unwrap();
        let path = format!("ControlPath={}", dir.join("ssh-%C").display());
        assert!(argv.contains(&path), "{argv:?}");
    }

    #[test]
    fn failure_carries_host_command_status_and_stderr() {
        let err = Host::local()
            .output(&["sh", "-c", "echo oops >&2; exit 3"])
            .unwrap_err();
        match err {
            Error::Command(c) => {
                assert_eq!(c.host, "local");
                assert_eq!(c.command, "sh -c 'echo oops >&2; exit 3'");
                assert_eq!(c.status, Status::Code(3));
                assert_eq!(c.stderr, "oops");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_program_is_reported_as_not_found() {
        let err = Host::local().output(&["zab-no-such-program"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("zab-no-such-program not found on local"),
            "{err}"
        );
    }

    #[test]
    fn large_output_and_stderr_do_not_deadlock() {
        let out = Host::local()
            .output(&[
                "sh",
                "-c",
                "yes x | head -c 300000 >&2; yes y | head -c 300000",
            ])
            .unwrap();
        assert_eq!(out.len(), 300000);
    }

    fn words(line: &str) -> Vec<&str> {
        line.split(' ').collect()
    }

    /// Every command the tools run in their read-only modes is allowed.
    #[test]
    fn read_only_allows_the_queries() {
        for line in [
            "zfs list -H -p -t snapshot,bookmark -o name,createtxg,guid -s createtxg -d 1 p/a",
            "zfs get -H -p -o name,property,value,source -t filesystem,volume autobackup:b",
            "zfs holds -H -p p/a@x p/b@y",
            "zfs version",
            "zfs send -nv -t 1-abc-def",
            "zfs send -n -P p/a@x",
            "zfs send -L -e -n -i p/a@x p/a@y",
            "zfs send -Lecn p/a@y",
            "zfs send -i p/a@x -nP p/a@y",
            "zfs send --dryrun --parsable p/a@x",
            "zfs send -t 1-abc -n",
            "zpool get -H -p -o property,value feature@large_blocks p",
            "zpool list -H p",
            "zpool status p",
        ] {
            assert!(is_read_only(&words(line)), "{line}");
        }
    }

    /// Everything else is refused: every verb that changes something, a
    /// real send, a shell, other programs, look-alikes.
    #[test]
    fn read_only_refuses_everything_else() {
        for line in [
            "zfs destroy p/a@x",
            "zfs destroy -r p/a",
            "zfs snapshot p/a@x",
            "zfs set autobackup:b=true p/a",
            "zfs inherit autobackup:b p/a",
            "zfs hold zfs_autobackup:b p/a@x",
            "zfs release zfs_autobackup:b p/a@x",
            "zfs recv -u p/a",
            "zfs receive -A p/a",
            "zfs rollback p/a@x",
            "zfs mount p/a",
            "zfs mount -R p/a",
            "zfs create -o canmount=off p/a",
            "zfs rename p/a p/b",
            "zfs program -n p x.lua",
            "zfs send p/a@x",
            "zfs send -P -t 1-abc",
            "zfs send -Lec p/a@y",
            // -n after the operand, or as the value of an option.
            "zfs send p/a@x -n",
            "zfs send -i -n p/a@y",
            "zfs send -t -n",
            "zfs send --redact -n p/a@x",
            "zfs send --dry p/a@x",
            "zfs send --dryrun=yes p/a@x",
            "zfs send -- -n",
            "zfs -n send p/a@x",
            "zpool destroy p",
            "zpool export p",
            "zpool scrub p",
            "sh -c zfs list",
            "/sbin/zfs list",
            "zfs",
            "zpool",
            "true",
        ] {
            assert!(!is_read_only(&words(line)), "{line}");
        }
        let none: [&str; 0] = [];
        assert!(!is_read_only(&none));
    }

    /// A read-only host refuses a command that changes something and runs
    /// nothing; the same host without the mode runs it. The probe is a
    /// file that `sh -c` would create.
    #[test]
    fn read_only_host_refuses_and_runs_nothing() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/zab-core-tests/host-read-only");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let probe = dir.join("ran");
        let script = format!("touch {}", quote(&probe.to_string_lossy()));
        let argv = ["sh", "-c", script.as_str()];
        let host = Host::local().with_read_only(Some("--test"));
        assert_eq!(host.read_only(), Some("--test"));
        let err = host.output(&argv).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to run \"{}\" on local in read-only mode (--test)",
                quote_argv(&argv)
            )
        );
        assert_eq!(err.exit(), crate::error::Exit::Internal);
        assert!(host.capture(&argv).is_err());
        assert!(host.command(&argv).is_err());
        let err = host.output(&zfs_destroy()).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        assert!(!probe.exists(), "a refused command ran");
        // Printing is not running: the line is still there for --test.
        assert_eq!(host.display(&argv), quote_argv(&argv));
        Host::local().output(&argv).unwrap();
        assert!(probe.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn zfs_destroy() -> Vec<String> {
        crate::zfs::destroy_snapshots_args("p/a", &["x", "y"])
    }

    /// Over ssh too, the gate looks at the command, not at `ssh`, and a
    /// long command line (sent to the remote shell on stdin) is no way
    /// around it.
    #[test]
    fn read_only_gate_applies_to_remote_and_long_commands() {
        let host = Host::ssh("zab-no-such-host.invalid")
            .unwrap()
            .with_read_only(Some("--plan"));
        let long = format!("p/a@{}", "x".repeat(LONG_REMOTE_COMMAND));
        for argv in [
            vec!["zfs".to_string(), "destroy".into(), long],
            zfs_destroy(),
        ] {
            match host.output(&argv) {
                Err(Error::ReadOnly { host, mode, .. }) => {
                    assert_eq!(host, "zab-no-such-host.invalid");
                    assert_eq!(mode, "--plan");
                }
                other => panic!("not refused: {other:?}"),
            }
        }
    }
}
