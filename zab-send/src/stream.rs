//! The byte stream of one transfer, as two POSIX shell lines: the source
//! side (`zfs send | send pipes | compress | buffer`) and the target side
//! (`decompress | recv pipes | buffer | zfs recv`). zab-send relays the
//! bytes between them (through zab-ratelimit with `--rate`), so the same
//! lines serve a local, pushed, pulled or relayed transfer.
//!
//! A side with several stages fails when any stage fails, not only the last
//! (POSIX sh has no `pipefail`): each stage reports its failure on a
//! descriptor that the side collects, and prints
//! `zab-send: STAGE: exit status N` on stderr.
//!
//! Also here: reading `zfs send -P`'s stderr, whose byte counts feed the
//! progress line (drawn by transfer.rs with `zab_core::progress`).

use zab_core::host::{quote, quote_argv};

pub use zab_core::compress::{compressor, Compressor, COMPRESSORS};

/// The buffer program on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferTool {
    /// zab-buffer, at this path (or name on the PATH).
    ZabBuffer(String),
    /// mbuffer, where zab-buffer is not installed.
    Mbuffer,
    /// Neither is installed: the side goes without a buffer.
    None,
}

/// `--buffer` and `--buffer-chunk-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    pub size: u64,
    pub chunk: u64,
}

impl Buffer {
    /// Upstream's defaults, 16M and 128k, for whichever is not given; None
    /// when neither is.
    pub fn from_options(size: Option<u64>, chunk: Option<u64>) -> Option<Buffer> {
        (size.is_some() || chunk.is_some()).then(|| Buffer {
            size: size.unwrap_or(16 << 20),
            chunk: chunk.unwrap_or(128 << 10),
        })
    }
}

/// A zab tool next to this binary, else by name from PATH.
pub fn sibling(name: &str) -> String {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

/// Everything that shapes the two lines.
#[derive(Debug)]
pub struct StreamSpec<'a> {
    pub send_argv: &'a [String],
    pub recv_argv: &'a [String],
    pub send_pipes: &'a [String],
    pub recv_pipes: &'a [String],
    pub compress: Option<&'a Compressor>,
    pub buffer: Option<Buffer>,
    pub source_buffer: BufferTool,
    pub target_buffer: BufferTool,
    /// The source runs over ssh (upstream then buffers the target too).
    pub source_remote: bool,
    /// The target runs over ssh.
    pub target_remote: bool,
}

fn buffer_stage(tool: &BufferTool, b: Buffer) -> Option<(String, String)> {
    match tool {
        BufferTool::ZabBuffer(prog) => Some((
            "zab-buffer".into(),
            format!("{} -q -m {} -s {}", quote(prog), b.size, b.chunk),
        )),
        // mbuffer reads sizes in k without rounding surprises.
        BufferTool::Mbuffer => Some((
            "mbuffer".into(),
            format!(
                "mbuffer -q -m {}k -s {}k",
                b.size.div_ceil(1024),
                b.chunk.div_ceil(1024)
            ),
        )),
        BufferTool::None => None,
    }
}

/// Joins (label, command) stages into one POSIX sh line that exits 1 when
/// any stage fails.
fn join(stages: Vec<(String, String)>) -> String {
    if stages.len() == 1 {
        return stages.into_iter().next().map(|s| s.1).unwrap_or_default();
    }
    let wrapped: Vec<String> = stages
        .iter()
        .map(|(label, cmd)| {
            let msg = quote(&format!("zab-send: {label}: exit status")).into_owned();
            format!("{{ ( {cmd} ) || {{ s=$?; echo {msg} $s >&2; echo x >&4; }}; }}")
        })
        .collect();
    // fd 3 keeps the side's stdout for the last stage; fd 4 carries the
    // failures to the command substitution.
    format!(
        "exec 3>&1; f=$({{ {}; }} 4>&1 >&3 3>&-); exec 3>&-; [ -z \"$f\" ]",
        wrapped.join(" | ")
    )
}

fn first_word(cmd: &str) -> String {
    cmd.split_whitespace().next().unwrap_or(cmd).to_string()
}

/// The line run on the source host; its stdout is the stream.
pub fn source_command(spec: &StreamSpec) -> String {
    join(source_stages(spec))
}

/// The line run on the target host; its stdin is the stream.
pub fn target_command(spec: &StreamSpec) -> String {
    join(target_stages(spec))
}

/// The whole stream as one readable pipeline, for messages:
/// `zfs send -P p/a@s | lz4 | lz4 -dc | zfs recv -u t/a`.
pub fn display(spec: &StreamSpec) -> String {
    source_stages(spec)
        .into_iter()
        .chain(target_stages(spec))
        .map(|s| s.1)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn source_stages(spec: &StreamSpec) -> Vec<(String, String)> {
    let mut s = vec![("zfs send".to_string(), quote_argv(spec.send_argv))];
    for (i, p) in spec.send_pipes.iter().enumerate() {
        s.push((
            format!("send pipe {} ({})", i + 1, first_word(p)),
            p.clone(),
        ));
    }
    if let Some(c) = spec.compress {
        s.push((first_word(c.compress), c.compress.into()));
    }
    if let Some(b) = spec
        .buffer
        .and_then(|b| buffer_stage(&spec.source_buffer, b))
    {
        s.push(b);
    }
    s
}

fn target_stages(spec: &StreamSpec) -> Vec<(String, String)> {
    let mut s = Vec::new();
    if let Some(c) = spec.compress {
        s.push((first_word(c.decompress), c.decompress.to_string()));
    }
    for (i, p) in spec.recv_pipes.iter().enumerate() {
        s.push((
            format!("recv pipe {} ({})", i + 1, first_word(p)),
            p.clone(),
        ));
    }
    let piped = spec.source_remote
        || spec.target_remote
        || !spec.recv_pipes.is_empty()
        || !spec.send_pipes.is_empty()
        || spec.compress.is_some();
    if piped {
        if let Some(b) = spec
            .buffer
            .and_then(|b| buffer_stage(&spec.target_buffer, b))
        {
            s.push(b);
        }
    }
    s.push(("zfs recv".into(), quote_argv(spec.recv_argv)));
    s
}

/// One line of `zfs send -P`'s stderr.
#[derive(Debug, PartialEq)]
pub enum SendLine {
    /// `size\tN`: the estimated size of the stream.
    Estimate(u64),
    /// `HH:MM:SS\tBYTES\tSNAP` (only with `-v`).
    Progress(u64),
    /// The plan lines and resume token dumps.
    Noise,
    /// Anything else: an error or warning worth keeping.
    Other(String),
}

pub fn parse_send_line(line: &str) -> SendLine {
    let cols: Vec<&str> = line.split('\t').collect();
    match cols[..] {
        ["size", n] => n.trim().parse().map_or(SendLine::Noise, SendLine::Estimate),
        ["full", _, _] | ["incremental", _, _, _] => SendLine::Noise,
        [t, n, _] if t.contains(':') && n.parse::<u64>().is_ok() => {
            SendLine::Progress(n.parse().unwrap_or(0))
        }
        _ if line.starts_with('\t')
            || line.starts_with("resume token contents")
            || line.starts_with("nvlist version")
            || line.starts_with("skipping ")
            || line.contains("estimated size is") =>
        {
            SendLine::Noise
        }
        _ if line.trim().is_empty() => SendLine::Noise,
        _ => SendLine::Other(line.to_string()),
    }
}

/// The snapshot a resume token leads to, from `zfs send -nv -t TOKEN`.
pub fn resume_toname(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        l.trim()
            .strip_prefix("toname = ")
            .map(|s| s.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn spec<'a>(
        send: &'a [String],
        recv: &'a [String],
        sp: &'a [String],
        rp: &'a [String],
    ) -> StreamSpec<'a> {
        StreamSpec {
            send_argv: send,
            recv_argv: recv,
            send_pipes: sp,
            recv_pipes: rp,
            compress: None,
            buffer: None,
            source_buffer: BufferTool::Mbuffer,
            target_buffer: BufferTool::ZabBuffer("zab-buffer".into()),
            source_remote: false,
            target_remote: false,
        }
    }

    /// Runs a line in the system's sh, returning (status, stdout, stderr).
    fn sh(line: &str, input: &[u8]) -> (i32, Vec<u8>, String) {
        use std::io::Write;
        let mut c = Command::new("sh")
            .args(["-c", line])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        let input = input.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = c.wait_with_output().unwrap();
        w.join().unwrap();
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn a_single_stage_is_the_command_itself() {
        let send = strings(&["zfs", "send", "-P", "p/a@s 1"]);
        let recv = strings(&["zfs", "recv", "-u", "t/a"]);
        let s = spec(&send, &recv, &[], &[]);
        assert_eq!(source_command(&s), "zfs send -P 'p/a@s 1'");
        assert_eq!(target_command(&s), "zfs recv -u t/a");
    }

    #[test]
    fn stages_in_upstream_order_with_buffers() {
        let send = strings(&["zfs", "send", "p/a@s"]);
        let recv = strings(&["zfs", "recv", "t/a"]);
        let sp = strings(&["tee /dev/null"]);
        let rp = strings(&["cat -u", "cat"]);
        let mut s = spec(&send, &recv, &sp, &rp);
        s.compress = compressor("lz4");
        s.buffer = Buffer::from_options(Some(1 << 20), None);
        let src = source_command(&s);
        let tgt = target_command(&s);
        let order = |line: &str, parts: &[&str]| {
            let pos: Vec<usize> = parts.iter().map(|p| line.find(p).unwrap()).collect();
            assert!(pos.windows(2).all(|w| w[0] < w[1]), "{line}");
        };
        order(
            &src,
            &[
                "zfs send",
                "tee /dev/null",
                "lz4",
                "mbuffer -q -m 1024k -s 128k",
            ],
        );
        order(
            &tgt,
            &[
                "lz4 -dc",
                "cat -u",
                "zab-buffer -q -m 1048576 -s 131072",
                "zfs recv",
            ],
        );
    }

    #[test]
    fn the_target_buffer_only_where_upstream_puts_one() {
        let send = strings(&["zfs", "send", "p/a@s"]);
        let recv = strings(&["zfs", "recv", "t/a"]);
        let mut s = spec(&send, &recv, &[], &[]);
        s.buffer = Buffer::from_options(None, Some(64 << 10));
        assert!(source_command(&s).contains("mbuffer -q -m 16384k -s 64k"));
        assert_eq!(target_command(&s), "zfs recv t/a");
        s.target_remote = true;
        assert!(target_command(&s).contains("zab-buffer"));
        s.target_buffer = BufferTool::None;
        assert_eq!(target_command(&s), "zfs recv t/a");
    }

    #[test]
    fn every_upstream_compression_type() {
        let names: Vec<&str> = COMPRESSORS.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "gzip",
                "pigz-fast",
                "pigz-slow",
                "zstd-fast",
                "zstd-slow",
                "zstd-adapt",
                "xz",
                "lzo",
                "lz4"
            ]
        );
        assert!(compressor("bzip2").is_none());
    }

    #[test]
    fn a_joined_side_passes_the_bytes_and_succeeds() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let line = join(vec![
            ("a".into(), "cat".into()),
            ("b".into(), "cat -u".into()),
            ("c".into(), "cat".into()),
        ]);
        let (code, out, err) = sh(&line, &data);
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, data);
    }

    #[test]
    fn a_joined_side_fails_when_a_middle_stage_fails() {
        let line = join(vec![
            ("first".into(), "cat".into()),
            ("the middle".into(), "cat >/dev/null; exit 3".into()),
            ("last".into(), "cat".into()),
        ]);
        let (code, out, err) = sh(&line, b"some bytes");
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert_eq!(err.trim(), "zab-send: the middle: exit status 3");
        // Also the first stage.
        let line = join(vec![
            ("zfs send".into(), "exit 2".into()),
            ("last".into(), "cat".into()),
        ]);
        let (code, _, err) = sh(&line, b"");
        assert_eq!(code, 1);
        assert!(err.contains("zab-send: zfs send: exit status 2"), "{err}");
    }

    #[test]
    fn reading_zfs_send_stderr() {
        // Recorded from `zfs send -P` on OpenZFS 2.3.2.
        assert_eq!(parse_send_line("full\tzab-a/exp@s1\t1234"), SendLine::Noise);
        assert_eq!(
            parse_send_line("incremental\ts1\tzab-a/exp@s2\t99"),
            SendLine::Noise
        );
        assert_eq!(parse_send_line("size\t1234"), SendLine::Estimate(1234));
        assert_eq!(
            parse_send_line("10:20:30\t4096\tzab-a/exp@s2"),
            SendLine::Progress(4096)
        );
        assert_eq!(
            parse_send_line("cannot open 'p/x@y': dataset does not exist"),
            SendLine::Other("cannot open 'p/x@y': dataset does not exist".into())
        );
        assert_eq!(
            parse_send_line("zab-send: gzip: exit status 1"),
            SendLine::Other("zab-send: gzip: exit status 1".into())
        );
        assert_eq!(
            resume_toname("resume token contents:\nnvlist version: 0\n\ttoname = zab-a/exp@s2\n"),
            Some("zab-a/exp@s2".into())
        );
    }
}
