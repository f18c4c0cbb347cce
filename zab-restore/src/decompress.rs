//! A compressed object whose partial receive goes on is decompressed
//! here, not on the target: the resuming stream is made from the
//! decompressed stream (resume.rs), and only that goes to `zfs recv -s`.
//! The decompressor is the program the object's compressor names
//! (`zab_core::compress::decompressor`, as the target would run it),
//! started here in a process group of its own (a Ctrl-C stops zab-restore,
//! which stops the receive; it does not kill the decompressor first). What
//! is written to [`Local`] goes to its stdin; a thread of its own copies
//! its stdout into the writer given. A program that is not installed
//! here, or that fails, is [`Unsupported`]: the object is then received
//! whole, decompressed on the target as before.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;

use crate::resume::Unsupported;

/// A decompressor running here, its output copied into a `W`.
#[derive(Debug)]
pub struct Local<W> {
    program: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    copy: Option<JoinHandle<io::Result<W>>>,
    stderr: Option<JoinHandle<String>>,
    /// The bytes written to it (compressed).
    pub written: u64,
}

fn unsupported(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Unsupported(why))
}

impl<W: Write + Send + 'static> Local<W> {
    /// Starts `program` (words split on spaces, no shell), its output
    /// going into `out`.
    pub fn start(program: &'static str, mut out: W) -> io::Result<Self> {
        let mut words = program.split_whitespace();
        let name = words.next().unwrap_or_default();
        let mut child = Command::new(name)
            .args(words)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                unsupported(format!("cannot start {program:?} here to decompress: {e}"))
            })?;
        let (stdin, mut stdout, mut stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let copy = std::thread::spawn(move || {
            let Some(from) = stdout.as_mut() else {
                return Err(io::Error::other("no stdout from the decompressor"));
            };
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => return Ok(out),
                    Ok(n) => out.write_all(&buf[..n])?,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(p) = stderr.as_mut() {
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        Ok(Local {
            program,
            child,
            stdin,
            copy: Some(copy),
            stderr: Some(stderr),
            written: 0,
        })
    }

    /// Ends its input and waits for it: the writer, with all the output
    /// in it. The copy's error (a rewriter's [`Unsupported`] or
    /// `Corrupt`, a failed write to the receive) comes first; then the
    /// program's failure ([`Unsupported`]).
    pub fn finish(mut self) -> io::Result<W> {
        drop(self.stdin.take());
        let copied = match self.copy.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("the decompressor's copy thread failed")),
        };
        let (status, msgs) = self.wait();
        let out = copied?;
        match status {
            Ok(st) if st.success() => Ok(out),
            Ok(st) => Err(self.failed(&zab_core::error::Status::from_exit(st).to_string(), &msgs)),
            Err(e) => Err(self.failed(&e.to_string(), &msgs)),
        }
    }

    /// Waits for the program: its exit status and its messages.
    fn wait(&mut self) -> (io::Result<std::process::ExitStatus>, String) {
        let status = self.child.wait();
        let msgs = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (status, msgs)
    }

    fn failed(&self, status: &str, msgs: &str) -> io::Error {
        let msgs: Vec<&str> = msgs
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut why = format!("{:?} failed here ({status})", self.program);
        if !msgs.is_empty() {
            why = format!("{why}: {}", msgs.join("; "));
        }
        unsupported(why)
    }
}

impl<W: Write + Send + 'static> Write for Local<W> {
    /// A write that fails (the program or the copy ended) fails with the
    /// reason [`Local::finish`] finds.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(io::Error::other("the decompressor's input is closed"));
        };
        match stdin.write(buf) {
            Ok(n) => {
                self.written += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                drop(self.stdin.take());
                let _ = self.child.kill();
                let why = match self.copy.take().map(JoinHandle::join) {
                    Some(Ok(Err(copy))) => copy,
                    _ => match self.wait() {
                        (Ok(st), msgs) => {
                            self.failed(&zab_core::error::Status::from_exit(st).to_string(), &msgs)
                        }
                        (Err(_), _) => e,
                    },
                };
                Err(why)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.stdin.as_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

impl<W> Drop for Local<W> {
    /// A decompressor left running (an error on the way) is stopped.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.copy.is_some() || self.stderr.is_some() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::{corrupt_in, unsupported_in, Resumer, Token};

    const FULL: &[u8] = include_bytes!("../fixtures/resume/full.zs");
    const RESUMED: &[u8] = include_bytes!("../fixtures/resume/resumed.zs");
    const TOKEN: &str = include_str!("../fixtures/resume/token");

    /// A gzip stream of `data` (the gzip header, deflate, CRC-32 and size).
    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 3));
        out.extend(crc32(data).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    fn through(program: &'static str, input: &[u8], token: &str) -> io::Result<Vec<u8>> {
        let r = Resumer::new(Vec::new(), Token::decode(token).unwrap());
        let mut d = Local::start(program, r)?;
        for c in input.chunks(3000) {
            d.write_all(c)?;
        }
        assert_eq!(d.written, input.len() as u64);
        Ok(d.finish()?.into_inner())
    }

    // `zcat` (gzip) is the decompressor of zab's `gzip` type; every host
    // zab runs on has it.
    #[test]
    fn a_gzip_object_decompressed_here_makes_the_same_resuming_stream() {
        let out = through("zcat", &gzip(FULL), TOKEN).unwrap();
        assert!(
            out == RESUMED,
            "{} bytes, zfs send -t made {}",
            out.len(),
            RESUMED.len()
        );
    }

    #[test]
    fn a_missing_or_failing_decompressor_is_unsupported_and_a_bad_stream_corrupt() {
        let e = through("zab-no-such-decompressor -dc", &gzip(FULL), TOKEN).unwrap_err();
        assert!(
            unsupported_in(&e).unwrap().0.contains("cannot start"),
            "{e}"
        );
        // Not gzip at all: zcat fails.
        let e = through("zcat", FULL, TOKEN).unwrap_err();
        let why = &unsupported_in(&e).unwrap().0;
        assert!(why.starts_with("\"zcat\" failed here"), "{why}");
        // The rewriter's refusal comes back as it is.
        let e = through("zcat", &gzip(&[7u8; 100_000]), TOKEN).unwrap_err();
        assert!(unsupported_in(&e).unwrap().0.contains("BEGIN"), "{e}");
        // A byte changed inside the stream: its checksums say so.
        let mut bad = FULL.to_vec();
        let at = bad.len() - 1000;
        bad[at] ^= 1;
        let e = through("zcat", &gzip(&bad), TOKEN).unwrap_err();
        assert!(corrupt_in(&e).is_some(), "{e}");
    }
}
