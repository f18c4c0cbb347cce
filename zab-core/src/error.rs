//! One error type for every zab tool, and the one exit-code scheme they share.
//!
//! Each variant knows its exit code ([`Error::exit`]) and carries enough
//! context to be printed as one line, GNU style: `zab-select: <message>`.
//! The table [`EXIT_CODES`] is the single definition of the exit codes; it is
//! printed in every tool's `--help` and copied into `docs/exit-codes.md`
//! (a unit test keeps the two identical).

use std::borrow::Cow;
use std::fmt;
use std::process::ExitStatus;

/// The exit status of a zab tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything asked for was done (or there was nothing to do).
    Ok = 0,
    /// Some datasets failed; their records carry the error and the others were done.
    Failed = 1,
    /// The command line is invalid (clap's usage errors use this code too).
    Usage = 2,
    /// The input is bad or incomplete: unparsable NDJSON, a stream that ended
    /// before the previous stage's end record, or failures reported upstream
    /// that make acting unsafe.
    Input = 3,
    /// An external command failed as a whole: a host is unreachable, `zfs` is
    /// missing, or a listing failed. Nothing was changed after the failure.
    External = 4,
    /// Nothing is selected: no dataset carries the selection property.
    Nothing = 5,
    /// A bug in zab. Please report it.
    Internal = 70,
    /// Another run of this backup (name and target) holds its run lock
    /// (zab_core::lock); nothing was done.
    Locked = 75,
    /// Interrupted by a signal (SIGINT or SIGTERM).
    Interrupted = 130,
}

/// Every exit code with its meaning: the one place they are written down.
pub const EXIT_CODES: &[(Exit, &str)] = &[
    (Exit::Ok, "success, or nothing to do"),
    (
        Exit::Failed,
        "some datasets failed (their records say why); the others were done",
    ),
    (Exit::Usage, "invalid command line"),
    (
        Exit::Input,
        "bad or incomplete input (bad NDJSON, truncated stream, upstream failures)",
    ),
    (
        Exit::External,
        "an external command failed as a whole (host unreachable, zfs missing, listing failed)",
    ),
    (
        Exit::Nothing,
        "nothing selected: no dataset carries the selection property",
    ),
    (Exit::Internal, "internal error (a bug in zab)"),
    (Exit::Locked, "another run of this backup holds its lock"),
    (Exit::Interrupted, "interrupted by SIGINT or SIGTERM"),
];

impl Exit {
    /// The numeric code handed to the operating system.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit-code table as text, for `--help`.
pub fn exit_codes_help() -> String {
    let mut s = String::from("Exit status:\n");
    for (exit, meaning) in EXIT_CODES {
        s.push_str(&format!("  {:>3}  {}\n", exit.code(), meaning));
    }
    s
}

/// Why an external command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// It could not be started at all (the text says why).
    Spawn(String),
}

impl Status {
    /// Converts a finished process's status.
    pub fn from_exit(status: ExitStatus) -> Status {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                return Status::Signal(sig);
            }
        }
        Status::Code(status.code().unwrap_or(-1))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Code(c) => write!(f, "exit {c}"),
            Status::Signal(s) => write!(f, "killed by signal {s}"),
            Status::Spawn(e) => write!(f, "cannot start: {e}"),
        }
    }
}

/// An external command that failed: where, what, how, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The host it ran on (`local` or the ssh destination).
    pub host: String,
    /// Whether it went through ssh (exit 255 then means ssh itself failed).
    pub via_ssh: bool,
    /// The program that was run on the host (`zfs`, ...).
    pub program: String,
    /// The command line, quoted so it can be pasted into a shell.
    pub command: String,
    /// How it ended.
    pub status: Status,
    /// Its standard error, trimmed.
    pub stderr: String,
}

impl CommandError {
    /// Standard error on one line: lines joined with "; ".
    pub fn stderr_line(&self) -> String {
        self.stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// True when ssh could not reach the host (ssh exits 255 for its own errors).
    pub fn unreachable(&self) -> bool {
        self.via_ssh && self.status == Status::Code(255)
    }

    /// True when `zfs` said the dataset it was given does not exist
    /// (`cannot open 'NAME': dataset does not exist`): the one place that
    /// reads zfs's words for it.
    pub fn no_such_dataset(&self) -> bool {
        self.program == "zfs" && self.stderr.contains("dataset does not exist")
    }

    /// True when the program itself is missing on the host.
    pub fn not_found(&self) -> bool {
        match &self.status {
            Status::Spawn(e) => e.contains("No such file") || e.contains("not found"),
            Status::Code(127) => true,
            _ => false,
        }
    }
}

/// One line, whatever the command and its stderr hold: long ones are cut
/// ([`clip`]), control characters escaped ([`escape`]).
impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stderr = self.stderr_line();
        let mut line = if self.unreachable() {
            format!("cannot reach {} over ssh", self.host)
        } else if self.not_found() {
            format!(
                "{} not found on {} (is it installed and in PATH?)",
                self.program, self.host
            )
        } else {
            format!(
                "{} on {}: {}",
                clip(&self.command, MAX_QUOTED),
                self.host,
                self.status
            )
        };
        if !stderr.is_empty() {
            line.push_str(": ");
            line.push_str(&clip(&stderr, MAX_QUOTED));
        }
        f.write_str(&escape(&line))
    }
}

/// Outside text (a name, a command's stderr) with its control characters
/// written out: `\n`, `\r`, `\t`, `\x1b`, `\u{85}`. An error or verbose line
/// stays one line, and no escape sequence reaches the terminal.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The most of a command line or of a command's stderr an error quotes.
pub const MAX_QUOTED: usize = 1000;

/// `s` cut to about `max` bytes when longer: its start and its end, and
/// how many bytes were left out between them (`zfs destroy tank/a@s1,… [88000
/// bytes cut] …,s5000`).
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut head = max / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - max / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    Cow::Owned(format!(
        "{} [{} bytes cut] {}",
        &s[..head],
        tail - head,
        &s[tail..]
    ))
}

/// Every error a zab tool can end with.
#[derive(Debug)]
pub enum Error {
    /// Invalid option values found after parsing (bad format string, ...).
    Usage(String),
    /// Bad input on a given line (1-based), or a truncated stream (line 0 means
    /// "at the end").
    Input { line: usize, message: String },
    /// An external command failed as a whole.
    Command(Box<CommandError>),
    /// The output of an external command could not be understood.
    Parse { command: String, message: String },
    /// This many datasets failed; each was already reported.
    Failed(usize),
    /// Nothing selected.
    Nothing(String),
    /// Reading or writing our own streams failed.
    Io(String),
    /// An object store (S3, a directory) refused or failed as a whole: a
    /// missing bucket or directory, refused credentials (zab-store).
    Store(String),
    /// Our reader went away (EPIPE on stdout). Record tools exit quietly.
    BrokenPipe,
    /// SIGINT or SIGTERM arrived; the text says what was still done.
    Interrupted(String),
    /// Another run holds the run lock (the text names it).
    Locked(String),
    /// A read-only host (`--test`) refused a command that may change
    /// something; it did not run. A bug in zab: read-only modes never ask.
    ReadOnly {
        host: String,
        command: String,
        /// The option that asked for read-only mode (`--test`).
        mode: String,
    },
}

impl Error {
    /// The exit code this error ends a tool with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Input { .. } => Exit::Input,
            Error::Command(_) | Error::Parse { .. } => Exit::External,
            Error::Failed(_) => Exit::Failed,
            Error::Nothing(_) => Exit::Nothing,
            Error::Io(_) | Error::Store(_) => Exit::External,
            Error::BrokenPipe => Exit::Ok,
            Error::Interrupted(_) => Exit::Interrupted,
            Error::Locked(_) => Exit::Locked,
            Error::ReadOnly { .. } => Exit::Internal,
        }
    }
}

/// One line: control characters in the text are escaped ([`escape`]).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = match self {
            Error::Usage(m)
            | Error::Nothing(m)
            | Error::Io(m)
            | Error::Locked(m)
            | Error::Store(m) => m.clone(),
            Error::Interrupted(m) => format!("interrupted: {m}"),
            Error::Input { line: 0, message } => {
                format!("end of input: {}", clip(message, MAX_QUOTED))
            }
            Error::Input { line, message } => format!("line {line}: {}", clip(message, MAX_QUOTED)),
            Error::Command(c) => c.to_string(),
            Error::Parse { command, message } => format!(
                "cannot understand the output of {}: {}",
                clip(command, MAX_QUOTED),
                clip(message, MAX_QUOTED)
            ),
            Error::Failed(n) => format!("{n} dataset(s) failed"),
            Error::BrokenPipe => "broken pipe".into(),
            Error::ReadOnly {
                host,
                command,
                mode,
            } => format!(
                "refusing to run \"{}\" on {host} in read-only mode ({mode})",
                clip(command, MAX_QUOTED)
            ),
        };
        f.write_str(&escape(&line))
    }
}

impl std::error::Error for Error {}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        Error::Command(Box::new(e))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::BrokenPipe
        } else {
            Error::Io(e.to_string())
        }
    }
}

/// Prints `error` as one line prefixed with the tool's name and returns its
/// exit code. A broken pipe prints nothing. This is what every `main` calls.
pub fn report(tool: &str, error: &Error) -> std::process::ExitCode {
    match error {
        Error::BrokenPipe => {}
        // Each failed dataset was already reported on its own line.
        Error::Failed(_) => {}
        e => eprintln!("{tool}: {e}"),
    }
    std::process::ExitCode::from(error.exit().code())
}

/// Makes a panic (a bug in zab) print one line and exit with
/// [`Exit::Internal`] instead of Rust's 101. Every `main` calls this first.
pub fn exit_on_panic(tool: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("{tool}: internal error (a bug in zab, please report it): {msg}{at}");
        std::process::exit(Exit::Internal.code().into());
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd_err(via_ssh: bool, status: Status, stderr: &str) -> CommandError {
        CommandError {
            host: "backup1".into(),
            via_ssh,
            program: "zfs".into(),
            command: "zfs destroy tank/a@x".into(),
            status,
            stderr: stderr.into(),
        }
    }

    #[test]
    fn command_error_is_one_line_with_host_command_status_and_stderr() {
        let e = cmd_err(true, Status::Code(1), "cannot destroy:\n dataset is busy\n");
        assert_eq!(
            e.to_string(),
            "zfs destroy tank/a@x on backup1: exit 1: cannot destroy:; dataset is busy"
        );
    }

    #[test]
    fn ssh_255_reads_as_unreachable() {
        let e = cmd_err(
            true,
            Status::Code(255),
            "ssh: connect to host x port 22: Connection refused",
        );
        assert_eq!(
            e.to_string(),
            "cannot reach backup1 over ssh: ssh: connect to host x port 22: Connection refused"
        );
        // Locally, 255 is just an exit code.
        assert!(!cmd_err(false, Status::Code(255), "").unreachable());
    }

    #[test]
    fn missing_program_is_named() {
        let e = cmd_err(true, Status::Code(127), "sh: 1: zfs: not found");
        assert_eq!(
            e.to_string(),
            "zfs not found on backup1 (is it installed and in PATH?): sh: 1: zfs: not found"
        );
        let e = cmd_err(
            false,
            Status::Spawn("No such file or directory (os error 2)".into()),
            "",
        );
        assert!(e.not_found());
    }

    /// A name or a command's stderr with a newline or an escape sequence
    /// must not break the error line or reach the terminal raw.
    #[test]
    fn control_characters_are_escaped() {
        let mut e = cmd_err(
            false,
            Status::Code(1),
            "bad \x1b[31mred\x1b[0m\rover\u{85}x",
        );
        e.command = "zfs destroy 'tank/a\nb@x'".into();
        let line = e.to_string();
        assert_eq!(
            line,
            "zfs destroy 'tank/a\\nb@x' on backup1: exit 1: bad \\x1b[31mred\\x1b[0m\\rover\\u{85}x"
        );
        let e = Error::Input {
            line: 2,
            message: "tank/a\n\tb\x07".into(),
        };
        assert_eq!(e.to_string(), "line 2: tank/a\\n\\tb\\x07");
        for e in [
            Error::Usage("a\nb".into()),
            Error::Io("a\x1bb".into()),
            Error::Parse {
                command: "zfs list\n".into(),
                message: "x\ry".into(),
            },
        ] {
            assert!(!e.to_string().contains(char::is_control), "{e}");
        }
        assert_eq!(escape("plain é text"), "plain é text");
    }

    /// A `zfs destroy` of 5,000 snapshots is one argument of 90 KB: the
    /// error line keeps its start and its end, and says how much was cut.
    #[test]
    fn long_command_lines_are_cut() {
        let names: Vec<String> = (0..5000).map(|i| format!("offsite1-{i:08}")).collect();
        let mut e = cmd_err(false, Status::Code(1), &"x".repeat(50_000));
        e.command = format!("zfs destroy tank/a@{}", names.join(","));
        let line = e.to_string();
        assert!(line.len() < 3000, "{} bytes", line.len());
        assert!(
            line.starts_with("zfs destroy tank/a@offsite1-00000000,"),
            "{line}"
        );
        assert!(
            line.contains("offsite1-00004999 on backup1: exit 1: xxx"),
            "{line}"
        );
        assert!(line.contains(" bytes cut]"), "{line}");
        let long = "é".repeat(10_000);
        let cut = clip(&long, 100);
        assert!(cut.len() < 200 && cut.contains("bytes cut"), "{cut}");
        assert_eq!(clip("short", 100), "short");
    }

    #[test]
    fn exit_codes_are_distinct_and_match_the_enum() {
        let mut codes: Vec<u8> = EXIT_CODES.iter().map(|(e, _)| e.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), EXIT_CODES.len());
        assert_eq!(
            Error::Input {
                line: 3,
                message: "x".into()
            }
            .exit(),
            Exit::Input
        );
        assert_eq!(Error::BrokenPipe.exit(), Exit::Ok);
    }

    /// docs/exit-codes.md carries the same table as [`EXIT_CODES`].
    #[test]
    fn docs_exit_codes_match() {
        let doc = include_str!("../../docs/exit-codes.md");
        for (exit, meaning) in EXIT_CODES {
            let row = format!("| {} | {} |", exit.code(), meaning);
            assert!(
                doc.contains(&row),
                "docs/exit-codes.md lacks the row: {row}"
            );
        }
        let rows = doc
            .lines()
            .filter(|l| l.starts_with("| ") && l.as_bytes()[2].is_ascii_digit());
        assert_eq!(
            rows.count(),
            EXIT_CODES.len(),
            "docs/exit-codes.md has extra rows"
        );
    }
}
