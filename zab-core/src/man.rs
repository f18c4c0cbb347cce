//! Man pages (section 1) rendered from a tool's clap command, the same
//! definition that `--help` prints, so the two never disagree.
//!
//! [`render`] turns a `clap::Command` into roff for `man`: NAME (the
//! tool's one-line [`whatis`], which `man -k` and `apropos` show; else the
//! about line), SYNOPSIS (clap's usage), DESCRIPTION (the long about), ARGUMENTS
//! and OPTIONS (each with its value names, help, default and possible
//! values), then the sections of the after-help text: `Examples:` becomes
//! EXAMPLES (comment lines as prose, commands as literal blocks) and
//! `Exit status:` becomes EXIT STATUS (one tagged paragraph per code), and
//! SEE ALSO names the other tools. It is a pure function of the command:
//! no date, so a page only changes when the command line does.
//!
//! Every tool prints its page with the hidden `--man` flag
//! ([`crate::cli::parse`]); `scripts/man` writes them to `docs/man/`, and
//! each tool has a unit test ([`assert_current`]) that fails when its
//! committed page is out of date.

use clap::{Arg, Command};

/// Every zab tool, in pipeline order: SEE ALSO lists the others.
pub const TOOLS: &[&str] = &[
    "zab-select",
    "zab-snap",
    "zab-send",
    "zab-thin",
    "zab-buffer",
    "zab-ratelimit",
    "zab-check",
    "zab-verify",
    "zab-status",
    "zab-store",
    "zab-restore",
];

/// The wrapper, scripts/zfs-autobackup, by its installed name: its page
/// is written by `scripts/man` from its `--help`, and every page names it
/// in SEE ALSO.
pub const WRAPPER: &str = "zab-autobackup";

/// What each tool is, in the few words of a man page's NAME line: it has
/// to fit on one line of `man` (see [`NAME_WIDTH`]) and in `apropos`.
/// The about line (the first line of `--help`) says more.
const WHATIS: &[(&str, &str)] = &[
    (
        "zab-select",
        "Select the datasets to back up, as NDJSON records",
    ),
    (
        "zab-snap",
        "Take the backup snapshots, one atomic snapshot per pool",
    ),
    (
        "zab-send",
        "Replicate datasets to a target: full, incremental, resumed",
    ),
    (
        "zab-thin",
        "Destroy the snapshots a thinning schedule no longer wants",
    ),
    (
        "zab-buffer",
        "Buffer a byte stream in memory (mbuffer's job)",
    ),
    (
        "zab-ratelimit",
        "Limit a byte stream's rate, with progress (pv's job)",
    ),
    (
        "zab-check",
        "Hash files, trees or snapshots in chunks (zfs-check's job)",
    ),
    (
        "zab-verify",
        "Compare backups with their sources by content hashes",
    ),
    (
        "zab-status",
        "How each backup stands; a Nagios check with --crit",
    ),
    (
        "zab-store",
        "Backups in S3 or a directory: chains, put and get",
    ),
    (
        "zab-restore",
        "Restore a dataset from S3 or a directory into zfs recv",
    ),
    (WRAPPER, "zfs-autobackup's command line, run by zab's tools"),
];

/// The longest NAME line (`TOOL - WHATIS`) that `man` shows on one line
/// of an 80-column terminal: 80, less the 7 columns of indent and a margin.
pub const NAME_WIDTH: usize = 70;

/// The NAME line's text after `TOOL - ` for a zab tool or the wrapper.
pub fn whatis(name: &str) -> Option<&'static str> {
    WHATIS.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// The man page (section 1) of `cmd`, as roff.
pub fn render(cmd: &Command) -> String {
    let mut cmd = cmd.clone();
    // Adds --help and --version, so they are listed like the other options.
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut page = Page::default();
    title(&mut page, &cmd, &name);
    name_and_synopsis(&mut page, &mut cmd, &name);
    description(&mut page, &cmd);
    arguments_and_options(&mut page, &cmd);
    after_help(&mut page, &cmd);
    see_also(&mut page, &name);
    page.0
}

/// The comment that says where the page comes from, and the title line.
fn title(page: &mut Page, cmd: &Command, name: &str) {
    page.comment(&format!(
        "{name}(1): generated from {name}'s command line by zab-core (src/man.rs); \
         do not edit, run scripts/man."
    ));
    let version = cmd.get_version().unwrap_or_default();
    let source = format!("zab {version}");
    page.raw(&format!(
        ".TH {} 1 \"\" {} \"User Commands\"",
        quoted(&name.to_uppercase()),
        quoted(source.trim())
    ));
    // Left-aligned and unhyphenated: option names stay whole, for copying.
    page.raw(".ad l");
    page.raw(".nh");
}

/// NAME (the about line) and SYNOPSIS (clap's usage).
fn name_and_synopsis(page: &mut Page, cmd: &mut Command, name: &str) {
    page.section("NAME");
    match (whatis(name), cmd.get_about()) {
        (Some(whatis), _) => page.text(&format!("{name} - {whatis}")),
        (None, Some(about)) => page.text(&format!("{name} - {}", one_line(&about.to_string()))),
        (None, None) => page.text(name),
    }
    page.section("SYNOPSIS");
    let usage = cmd.render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    page.raw(&synopsis(name, usage));
}

/// DESCRIPTION: the long about (or the about), paragraph by paragraph.
fn description(page: &mut Page, cmd: &Command) {
    let description = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string());
    if let Some(description) = description {
        page.section("DESCRIPTION");
        for paragraph in paragraphs(&description) {
            page.raw(".PP");
            page.text(&sentence(&paragraph));
        }
    }
}

/// ARGUMENTS and OPTIONS, each a tagged paragraph; hidden ones left out.
fn arguments_and_options(page: &mut Page, cmd: &Command) {
    let positionals: Vec<&Arg> = cmd.get_positionals().filter(|a| !a.is_hide_set()).collect();
    if !positionals.is_empty() {
        page.section("ARGUMENTS");
        for arg in positionals {
            page.raw(".TP");
            page.raw(&format!("\\fI{}\\fR", escape(&value_names(arg).join(" "))));
            arg_body(page, arg);
        }
    }
    // In --help's order: a tool's mut_arg (a shared flag in its own
    // words) moves the flag to the end of get_arguments().
    let mut options: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .collect();
    options.sort_by_key(|a| a.get_display_order());
    if !options.is_empty() {
        page.section("OPTIONS");
        for arg in options {
            page.raw(".TP");
            page.raw(&option_tag(arg));
            arg_body(page, arg);
        }
    }
}

/// The sections of the after-help text (EXAMPLES, EXIT STATUS, ...).
fn after_help(page: &mut Page, cmd: &Command) {
    let after = cmd
        .get_after_long_help()
        .or(cmd.get_after_help())
        .map(|s| s.to_string());
    for (heading, body) in after_help_sections(after.as_deref().unwrap_or_default()) {
        match heading {
            Some(h) => page.section(&h.to_uppercase()),
            None => page.section("NOTES"),
        }
        for block in blocks(&body) {
            block_roff(page, &block);
        }
    }
}

/// SEE ALSO: the other zab tools and the wrapper, then what this one
/// stands in for.
fn see_also(page: &mut Page, name: &str) {
    page.section("SEE ALSO");
    let mut see_also: Vec<(&str, &str)> = TOOLS
        .iter()
        .chain([&WRAPPER])
        .filter(|t| **t != name)
        .map(|t| (*t, "1"))
        .collect();
    see_also.extend_from_slice(related(name));
    let last = see_also.len().saturating_sub(1);
    for (i, (page_name, section)) in see_also.iter().enumerate() {
        let comma = if i == last { "" } else { "," };
        page.raw(&format!(".BR {} ({section}){comma}", escape(page_name)));
    }
}

/// Panics, saying how to fix it, when `committed` (a page in `docs/man/`)
/// is not what [`render`] makes of `cmd`: the test each tool runs on its own
/// page.
#[track_caller]
pub fn assert_current(cmd: &Command, committed: &str) {
    if let Err(e) = check(cmd, committed) {
        panic!("{e}");
    }
}

/// Whether `committed` is what [`render`] makes of `cmd`; if not, which
/// page, the first line that differs, and the fix.
pub fn check(cmd: &Command, committed: &str) -> Result<(), String> {
    let fresh = render(cmd);
    if fresh == committed {
        return Ok(());
    }
    let name = cmd.get_name();
    let mut old = committed.lines();
    let mut new = fresh.lines();
    let mut n = 1;
    loop {
        let (o, f) = (old.next(), new.next());
        if o.is_none() && f.is_none() {
            return Err(format!(
                "docs/man/{name}.1 differs from {name}'s page in its line endings; run scripts/man"
            ));
        }
        if o != f {
            let [o, f] =
                [o, f].map(|l| l.map_or("the end of the page".into(), |l| format!("{l:?}")));
            return Err(format!(
                "docs/man/{name}.1 is out of date with {name}'s command line; run scripts/man \
                 (line {n}: committed {o}, now {f})"
            ));
        }
        n += 1;
    }
}

/// SEE ALSO entries beyond the zab tools: what each tool stands in for.
fn related(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "zab-buffer" => &[("mbuffer", "1")],
        "zab-ratelimit" => &[("pv", "1")],
        "zab-check" => &[("zfs-check", "1"), ("zfs", "8")],
        _ => &[("zfs", "8")],
    }
}

/// Roff being written: lines, each ending in a newline.
#[derive(Debug, Default)]
struct Page(String);

impl Page {
    /// A line of roff as is (a request, or text already escaped).
    fn raw(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }

    /// Text that is filled into the current paragraph.
    fn text(&mut self, text: &str) {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            self.raw(&escape_line(line));
        }
    }

    fn section(&mut self, title: &str) {
        self.raw(&format!(".SH {}", quoted(title)));
    }

    fn comment(&mut self, text: &str) {
        self.raw(&format!(".\\\" {text}"));
    }
}

/// The tag of an option: `-m, --size BYTES`, with visible aliases, bold
/// flags and italic value names (`[=TYPE]` when the value is optional).
fn option_tag(arg: &Arg) -> String {
    let mut flags: Vec<String> = Vec::new();
    let shorts = arg
        .get_short()
        .into_iter()
        .chain(arg.get_visible_short_aliases().unwrap_or_default());
    for s in shorts {
        flags.push(format!("\\fB{}\\fR", escape(&format!("-{s}"))));
    }
    let longs = arg
        .get_long()
        .into_iter()
        .chain(arg.get_visible_aliases().unwrap_or_default());
    for l in longs {
        flags.push(format!("\\fB{}\\fR", escape(&format!("--{l}"))));
    }
    let mut tag = flags.join(", ");
    if takes_value(arg) {
        let names: Vec<String> = value_names(arg)
            .iter()
            .map(|v| format!("\\fI{}\\fR", escape(v)))
            .collect();
        let names = names.join(" ");
        let optional = arg.get_num_args().is_some_and(|r| r.min_values() == 0);
        if optional {
            tag.push_str(&format!("[={names}]"));
        } else {
            tag.push(' ');
            tag.push_str(&names);
        }
    }
    tag
}

/// The paragraphs under an argument's tag: its help, then its default and
/// possible values.
fn arg_body(page: &mut Page, arg: &Arg) {
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|s| s.to_string())
        .unwrap_or_default();
    for (i, paragraph) in paragraphs(&help).iter().enumerate() {
        if i > 0 {
            page.raw(".IP");
        }
        page.text(&sentence(paragraph));
    }
    if !takes_value(arg) {
        return;
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && !arg.is_hide_default_value_set() {
        let shown: Vec<String> = defaults
            .iter()
            .map(|d| format!("\\fB{}\\fR", escape(d)))
            .collect();
        page.raw(".br");
        page.raw(&format!("Default: {}.", shown.join(", ")));
    }
    let possible: Vec<_> = arg
        .get_possible_values()
        .into_iter()
        .filter(|p| !p.is_hide_set())
        .collect();
    if possible.is_empty() || arg.is_hide_possible_values_set() {
        return;
    }
    if possible.iter().any(|p| p.get_help().is_some()) {
        page.raw(".IP");
        page.raw("Possible values:");
        page.raw(".RS");
        for p in &possible {
            page.raw(".TP");
            page.raw(&format!("\\fB{}\\fR", escape(p.get_name())));
            let help = p.get_help().map(|h| h.to_string()).unwrap_or_default();
            page.text(&sentence(&help));
        }
        page.raw(".RE");
    } else {
        let names: Vec<String> = possible
            .iter()
            .map(|p| format!("\\fB{}\\fR", escape(p.get_name())))
            .collect();
        page.raw(".br");
        page.raw(&format!("Possible values: {}.", names.join(", ")));
    }
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// An argument's value names, or its id in capitals when it has none.
fn value_names(arg: &Arg) -> Vec<String> {
    match arg.get_value_names() {
        Some(names) if !names.is_empty() => names.iter().map(|n| n.to_string()).collect(),
        _ => vec![arg.get_id().as_str().to_uppercase()],
    }
}

/// The SYNOPSIS line from clap's usage (`zab-send [OPTIONS] <A> [B]`): the
/// name in bold, `<NAME>` placeholders in italics.
fn synopsis(name: &str, usage: &str) -> String {
    let rest = usage.strip_prefix(name).unwrap_or(usage).trim_start();
    let mut out = format!("\\fB{}\\fR", escape(name));
    if rest.is_empty() {
        return out;
    }
    out.push(' ');
    let mut word = String::new();
    let mut in_placeholder = false;
    for c in rest.chars() {
        match c {
            '<' if !in_placeholder => {
                out.push_str(&escape(&word));
                word.clear();
                in_placeholder = true;
            }
            '>' if in_placeholder => {
                out.push_str(&format!("\\fI{}\\fR", escape(&word)));
                word.clear();
                in_placeholder = false;
            }
            c => word.push(c),
        }
    }
    out.push_str(&escape(&word));
    out
}

/// Splits the after-help text into sections at headings: a line at the
/// left margin ending in `:`, after a blank line (or first), and followed
/// by an indented line. Text before the first heading has none.
fn after_help_sections(text: &str) -> Vec<(Option<String>, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut sections: Vec<(Option<String>, String)> = Vec::new();
    let mut current: (Option<String>, String) = (None, String::new());
    for (i, line) in lines.iter().enumerate() {
        let after_blank = i == 0 || lines[i - 1].trim().is_empty();
        let next_indented = lines
            .get(i + 1)
            .is_some_and(|n| n.starts_with(char::is_whitespace) && !n.trim().is_empty());
        let heading = !line.starts_with(char::is_whitespace)
            && line.ends_with(':')
            && after_blank
            && next_indented;
        if heading {
            if current.0.is_some() || !current.1.trim().is_empty() {
                sections.push(current);
            }
            current = (Some(line.trim_end_matches(':').to_string()), String::new());
        } else {
            current.1.push_str(line);
            current.1.push('\n');
        }
    }
    if current.0.is_some() || !current.1.trim().is_empty() {
        sections.push(current);
    }
    sections
}

/// Runs of non-blank lines.
fn blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks = vec![Vec::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            blocks.push(Vec::new());
        } else if let Some(b) = blocks.last_mut() {
            b.push(line);
        }
    }
    blocks.retain(|b| !b.is_empty());
    blocks
}

/// One block of after-help text as roff. At the margin: a paragraph.
/// Indented: a table of exit codes (`  3  meaning`) as tagged paragraphs,
/// or an example: its leading `#` comment as a paragraph, the commands as
/// a literal, indented block.
fn block_roff(page: &mut Page, block: &[&str]) {
    let indented = block.iter().all(|l| l.starts_with(char::is_whitespace));
    if !indented {
        page.raw(".PP");
        page.text(&block.join("\n"));
        return;
    }
    let codes: Option<Vec<(&str, &str)>> = block.iter().map(|l| exit_code_line(l)).collect();
    if let Some(codes) = codes {
        for (code, meaning) in codes {
            page.raw(".TP");
            page.raw(&format!("\\fB{}\\fR", escape(code)));
            page.text(&sentence(meaning));
        }
        return;
    }
    let comment_lines = block
        .iter()
        .take_while(|l| l.trim_start().starts_with('#'))
        .count();
    let (comment, code) = block.split_at(comment_lines);
    if !comment.is_empty() {
        let prose: Vec<&str> = comment
            .iter()
            .map(|l| l.trim_start().trim_start_matches('#').trim())
            .collect();
        page.raw(".PP");
        page.text(&prose.join("\n"));
    }
    if !code.is_empty() {
        let indent = code
            .iter()
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        page.raw(".PP");
        page.raw(".RS 4");
        page.raw(".nf");
        for line in code {
            page.raw(&escape_line(line.get(indent..).unwrap_or(line).trim_end()));
        }
        page.raw(".fi");
        page.raw(".RE");
    }
}

/// `  130  interrupted by SIGINT` as `("130", "interrupted by SIGINT")`.
fn exit_code_line(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start();
    let digits = t.find(|c: char| !c.is_ascii_digit())?;
    let (code, rest) = t.split_at(digits);
    if code.is_empty() || !rest.starts_with("  ") || rest.trim().is_empty() {
        return None;
    }
    Some((code, rest.trim()))
}

/// Blank-line separated paragraphs, each with its lines joined.
fn paragraphs(text: &str) -> Vec<String> {
    blocks(text)
        .iter()
        .map(|b| b.iter().map(|l| l.trim()).collect::<Vec<_>>().join("\n"))
        .collect()
}

/// Help text as a sentence: clap's derive drops a doc comment's final
/// period, which a man page's prose wants back.
fn sentence(text: &str) -> String {
    let t = text.trim_end();
    match t.chars().last() {
        Some(c) if c.is_alphanumeric() || ")`\"'".contains(c) => format!("{t}."),
        _ => t.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Escapes text for roff: a backslash is `\e`, a hyphen `\-` (so options
/// copy as typed), quotes and backticks the ASCII glyphs, anything beyond
/// ASCII a `\[uXXXX]` character.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '\'' => out.push_str("\\(aq"),
            '`' => out.push_str("\\(ga"),
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    out
}

/// Escapes one line of text: also a leading `.` or `'`, which roff would
/// take for a request.
fn escape_line(line: &str) -> String {
    let escaped = escape(line);
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A macro argument in double quotes.
fn quoted(text: &str) -> String {
    format!("\"{}\"", escape(text).replace('"', "\\(dq"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{ArgAction, Command};

    fn demo() -> Command {
        Command::new("zab-demo")
            .version("1.2.3")
            .about("Demonstrate the man page")
            .long_about(
                "Demonstrate the man page.\n\n\
                 .dotted lines and 'quotes' are escaped, so is C:\\path",
            )
            .arg(
                Arg::new("backup")
                    .value_name("BACKUP-NAME")
                    .required(true)
                    .help("The backup name"),
            )
            .arg(
                Arg::new("size")
                    .short('m')
                    .long("size")
                    .visible_alias("buffer-size")
                    .value_name("BYTES")
                    .default_value("128M")
                    .help("Total memory"),
            )
            .arg(
                Arg::new("compress")
                    .long("compress")
                    .value_name("TYPE")
                    .num_args(0..=1)
                    .value_parser(["zstd", "gzip"])
                    .help("Compress the stream"),
            )
            .arg(
                Arg::new("quiet")
                    .short('q')
                    .long("quiet")
                    .action(ArgAction::SetTrue)
                    .long_help("No summary.\n\nErrors are still printed."),
            )
            .arg(
                Arg::new("secret")
                    .long("secret")
                    .action(ArgAction::SetTrue)
                    .hide(true),
            )
            .after_long_help(
                "Examples:\n  # Run it, with a comment\n  # on two lines:\n  zab-demo x | jq -r '.name'\n\n  \
                 zab-demo --size 1G \\\n      y\n\n\
                 Exit status:\n    0  success\n  130  interrupted\n\nRecords: docs/records.md.\n",
            )
    }

    /// Every committed page, with its name.
    const PAGES: &[(&str, &str)] = &[
        ("zab-select", include_str!("../../docs/man/zab-select.1")),
        ("zab-snap", include_str!("../../docs/man/zab-snap.1")),
        ("zab-send", include_str!("../../docs/man/zab-send.1")),
        ("zab-thin", include_str!("../../docs/man/zab-thin.1")),
        ("zab-buffer", include_str!("../../docs/man/zab-buffer.1")),
        (
            "zab-ratelimit",
            include_str!("../../docs/man/zab-ratelimit.1"),
        ),
        ("zab-check", include_str!("../../docs/man/zab-check.1")),
        ("zab-verify", include_str!("../../docs/man/zab-verify.1")),
        ("zab-status", include_str!("../../docs/man/zab-status.1")),
        ("zab-store", include_str!("../../docs/man/zab-store.1")),
        ("zab-restore", include_str!("../../docs/man/zab-restore.1")),
        (WRAPPER, include_str!("../../docs/man/zab-autobackup.1")),
    ];

    /// Each page's NAME is one line of `man`, `TOOL - WHATIS`, and names
    /// the wrapper in SEE ALSO (the wrapper's own page names the tools).
    #[test]
    fn every_page_has_a_one_line_name() {
        assert_eq!(PAGES.len(), TOOLS.len() + 1);
        for (tool, page) in PAGES {
            let lines: Vec<&str> = page.lines().collect();
            let at = lines
                .iter()
                .position(|l| *l == ".SH \"NAME\"")
                .unwrap_or_else(|| panic!("{tool}: no NAME section"));
            let name = lines[at + 1].replace("\\-", "-").replace("\\(aq", "'");
            let whatis = whatis(tool).unwrap_or_else(|| panic!("{tool}: no whatis"));
            assert_eq!(name, format!("{tool} - {whatis}"), "{tool}");
            assert!(name.len() <= NAME_WIDTH, "{tool}: {name:?} is too long");
            assert!(
                lines[at + 2].starts_with(".SH "),
                "{tool}: NAME is one line"
            );
            let other = if *tool == WRAPPER {
                "zab-send"
            } else {
                WRAPPER
            };
            assert!(
                page.contains(&format!(".BR {} (1)", escape(other))),
                "{tool}: SEE ALSO {other}"
            );
        }
    }

    #[test]
    fn sections_in_order() {
        let page = render(&demo());
        let sections: Vec<&str> = page.lines().filter(|l| l.starts_with(".SH ")).collect();
        assert_eq!(
            sections,
            [
                ".SH \"NAME\"",
                ".SH \"SYNOPSIS\"",
                ".SH \"DESCRIPTION\"",
                ".SH \"ARGUMENTS\"",
                ".SH \"OPTIONS\"",
                ".SH \"EXAMPLES\"",
                ".SH \"EXIT STATUS\"",
                ".SH \"SEE ALSO\"",
            ]
        );
        assert!(page.starts_with(".\\\" zab-demo(1): generated"));
        assert!(page.contains("\n.TH \"ZAB\\-DEMO\" 1 \"\" \"zab 1.2.3\" \"User Commands\"\n"));
        assert!(page.contains(".SH \"NAME\"\nzab\\-demo \\- Demonstrate the man page\n"));
        assert!(
            page.contains(".SH \"SYNOPSIS\"\n\\fBzab\\-demo\\fR [OPTIONS] \\fIBACKUP\\-NAME\\fR\n")
        );
        assert!(page.contains(".SH \"SEE ALSO\"\n.BR zab\\-select (1),\n"));
        assert!(page.ends_with(
            ".BR zab\\-store (1),\n.BR zab\\-restore (1),\n.BR zab\\-autobackup (1),\n.BR zfs (8)\n"
        ));
    }

    #[test]
    fn options_with_values_defaults_and_possible_values() {
        let page = render(&demo());
        assert!(page.contains(
            ".TP\n\\fB\\-m\\fR, \\fB\\-\\-size\\fR, \\fB\\-\\-buffer\\-size\\fR \\fIBYTES\\fR\n\
             Total memory.\n.br\nDefault: \\fB128M\\fR.\n"
        ));
        assert!(page.contains(
            ".TP\n\\fB\\-\\-compress\\fR[=\\fITYPE\\fR]\nCompress the stream.\n.br\n\
             Possible values: \\fBzstd\\fR, \\fBgzip\\fR.\n"
        ));
        // A flag: no value, no "Default: false"; long help in paragraphs.
        assert!(page.contains(
            ".TP\n\\fB\\-q\\fR, \\fB\\-\\-quiet\\fR\nNo summary.\n.IP\nErrors are still printed.\n.TP\n"
        ));
        assert!(page.contains(".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\n"));
        assert!(page.contains(".TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\n"));
        assert!(!page.contains("secret"), "hidden options stay hidden");
        assert!(page.contains(".SH \"ARGUMENTS\"\n.TP\n\\fIBACKUP\\-NAME\\fR\nThe backup name.\n"));
    }

    #[test]
    fn examples_and_exit_status_from_the_after_help() {
        let page = render(&demo());
        assert!(page.contains(
            ".SH \"EXAMPLES\"\n.PP\nRun it, with a comment\non two lines:\n\
             .PP\n.RS 4\n.nf\nzab\\-demo x | jq \\-r \\(aq.name\\(aq\n.fi\n.RE\n\
             .PP\n.RS 4\n.nf\nzab\\-demo \\-\\-size 1G \\e\n    y\n.fi\n.RE\n"
        ));
        assert!(page.contains(
            ".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR\nsuccess.\n.TP\n\\fB130\\fR\ninterrupted.\n\
             .PP\nRecords: docs/records.md.\n"
        ));
    }

    #[test]
    fn roff_is_escaped() {
        let page = render(&demo());
        // A line starting with a dot would be a request.
        assert!(page
            .contains("\n\\&.dotted lines and \\(aqquotes\\(aq are escaped, so is C:\\epath.\n"));
        assert_eq!(
            escape("a-b\\c 'd' `e` …"),
            "a\\-b\\ec \\(aqd\\(aq \\(gae\\(ga \\[u2026]"
        );
        assert_eq!(escape_line(".x"), "\\&.x");
        assert_eq!(escape_line("'x"), "\\(aqx");
        assert_eq!(quoted("say \"hi\""), "\"say \\(dqhi\\(dq\"");
        // Every line of text is plain or a request we wrote.
        for line in page.lines() {
            assert!(!line.starts_with('\''), "{line}");
        }
    }

    #[test]
    fn heading_needs_blank_line_before_and_indent_after() {
        let s = after_help_sections("Examples:\n  x\n\nNot a heading:\nprose\nHeading:\n  y\n");
        assert_eq!(
            s,
            vec![(
                Some("Examples".to_string()),
                "  x\n\nNot a heading:\nprose\nHeading:\n  y\n".to_string()
            )]
        );
        assert_eq!(
            exit_code_line("  70  internal error"),
            Some(("70", "internal error"))
        );
        assert_eq!(exit_code_line("  2 dogs"), None);
        assert_eq!(exit_code_line("  zab-demo 1"), None);
    }

    #[test]
    fn sentences_get_their_period_back() {
        assert_eq!(sentence("Total memory"), "Total memory.");
        assert_eq!(sentence("Ends (like this)"), "Ends (like this).");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence("Asks?"), "Asks?");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn a_stale_page_is_named_with_the_fix() {
        let cmd = demo();
        assert_current(&cmd, &render(&cmd));
        let stale = render(&cmd).replace("Total memory.", "Total.");
        let msg = check(&cmd, &stale).unwrap_err();
        assert!(msg.contains("docs/man/zab-demo.1 is out of date"), "{msg}");
        assert!(msg.contains("run scripts/man"), "{msg}");
        assert!(
            msg.contains("committed \"Total.\", now \"Total memory.\""),
            "{msg}"
        );
    }
}
