//! zab-check, phase by phase: [`crate::target`] makes TARGET readable;
//! [`crate::walk`] lists a tree's files; [`crate::plan`] decides the
//! chunks; [`crate::engine`] hashes them; here the lines are written, or
//! (`--check`) compared with [`crate::expect`]'s. Returns the number of
//! mismatches.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use zab_core::error::Error;
use zab_core::Exit;

use crate::cli::{Config, TOOL};
use crate::engine::{self, Sink};
use crate::expect::{self, Expected};
use crate::plan::{self, Chunk};
use crate::{target, walk};

/// Set by SIGINT, SIGTERM and SIGHUP: stop reading, clean up, exit 130.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// How long the run has to stop by itself after a signal, before the
/// handler cleans up and exits in its place.
const GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The signal handler: asks the run to stop (the threads notice within one
/// read); a run stuck in a write that never ends is cleaned up here.
fn on_signal() {
    STOP.store(true, Ordering::Relaxed);
    std::thread::sleep(GRACE);
    if let (true, result) = target::cleanup_pending() {
        if let Err(e) = result {
            eprintln!("{TOOL}: {e}");
        }
        eprintln!("{TOOL}: interrupted: stopped by a signal");
        std::process::exit(Exit::Interrupted.code().into());
    }
}

pub fn run(config: &Config) -> Result<u64, Error> {
    let _ = ctrlc::set_handler(on_signal);
    // Read --check's input before anything is mounted or cloned.
    let input = match &config.check {
        None => None,
        Some(file) => Some(read_input(file)?),
    };
    let mut prepared = target::prepare(
        &config.target,
        config.snapshot(),
        &config.host,
        config.log,
        &STOP,
    )?;
    let top = prepared.path.clone();
    let tree = std::fs::metadata(&top)
        .map_err(|e| Error::Io(format!("{}: {e}", top.display())))?
        .is_dir();
    let mut out = Output::stdout();
    let result = match &input {
        None => generate(config, &top, tree, &mut out).map(|()| 0),
        Some(input) => check(config, &top, tree, input, &mut out),
    };
    // Clean up now (not only on drop), so that its failure is ours.
    let cleaned = prepared.cleanup();
    let mismatches = result?;
    cleaned?;
    Ok(mismatches)
}

/// The whole input of `--check`: stdin (`-`) or a file.
fn read_input(file: &Path) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| Error::Io(format!("cannot read stdin: {e}")))?;
    } else {
        std::fs::File::open(file)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", file.display())))?;
    }
    Ok(buf)
}

/// The size of a file or block device (its end, as zfs-check seeks it).
fn size_of(path: &Path) -> Result<u64, String> {
    std::fs::File::open(path)
        .and_then(|mut f| f.seek(SeekFrom::End(0)))
        .map_err(|e| format!("cannot open: {e}"))
}

/// Writes the hashes of TARGET.
fn generate(config: &Config, top: &Path, tree: bool, out: &mut Output) -> Result<(), Error> {
    let (paths, rels, sizes) = if tree {
        let files = walk::walk(top)?;
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path(top)).collect();
        let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
        let rels: Vec<Vec<u8>> = files.into_iter().map(|f| f.rel).collect();
        (paths, Some(rels), sizes)
    } else {
        let size = size_of(top).map_err(|e| Error::Io(format!("{}: {e}", top.display())))?;
        (vec![top.to_path_buf()], None, vec![size])
    };
    let chunks = plan::chunks(&sizes, config.chunk_size, config.chunks.skip);
    let mut sink = Lines {
        out,
        chunks: &chunks,
        paths: &paths,
        rels: rels.as_deref(),
        count: 0,
    };
    engine::run(&paths, &chunks, config.hash, config.jobs, &STOP, &mut sink)?;
    config
        .log
        .verbose(format!("Generated {} hashes.", sink.count));
    Ok(())
}

/// Stdout, buffered, flushed whenever the hashing waits.
struct Output(std::io::BufWriter<Box<dyn Write>>);

impl Output {
    fn stdout() -> Output {
        Output::to(Box::new(std::io::stdout()))
    }
    fn to(w: Box<dyn Write>) -> Output {
        Output(std::io::BufWriter::with_capacity(1 << 16, w))
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        Ok(self.0.write_all(bytes)?)
    }
    fn flush(&mut self) -> Result<(), Error> {
        Ok(self.0.flush()?)
    }
}

/// The sink of generating: one line per chunk.
struct Lines<'a> {
    out: &'a mut Output,
    chunks: &'a [Chunk],
    paths: &'a [PathBuf],
    rels: Option<&'a [Vec<u8>]>,
    count: u64,
}

impl Sink for Lines<'_> {
    fn result(&mut self, index: usize, hash: Result<String, String>) -> Result<(), Error> {
        let chunk = &self.chunks[index];
        let hash =
            hash.map_err(|e| Error::Io(format!("{}: {e}", self.paths[chunk.file].display())))?;
        let rel = self.rels.map(|r| r[chunk.file].as_slice());
        self.count += 1;
        self.out.write(&plan::line(rel, chunk.number, &hash))
    }
    fn idle(&mut self) -> Result<(), Error> {
        self.out.flush()
    }
}

/// Compares TARGET with the expected hashes; prints each mismatch.
fn check(
    config: &Config,
    top: &Path,
    tree: bool,
    input: &[u8],
    out: &mut Output,
) -> Result<u64, Error> {
    let expected = expect::parse(input, tree, config.chunks.skip, config.hash)?;
    if expected.is_empty() {
        // Legitimate for a tree of empty files, but also what a failed
        // first half of a pipeline looks like: say it.
        config.log.warn("no hashes in the input: nothing checked");
    }
    // Each file once: its path and size (or why it cannot be read).
    let mut index: HashMap<Option<&[u8]>, usize> = HashMap::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut sizes: Vec<Result<u64, String>> = Vec::new();
    let mut inside = Inside::default();
    // Per expected line: the chunk to hash, or the mismatch's ACTUAL now.
    let mut work: Vec<Result<Chunk, String>> = Vec::new();
    for e in &expected {
        let key = e.path.as_deref();
        let file = *index.entry(key).or_insert_with(|| {
            let path = match key {
                Some(rel) => top.join(std::ffi::OsStr::from_bytes(rel)),
                None => top.to_path_buf(),
            };
            let size = match key {
                Some(rel) => inside.file_size(top, rel),
                None => size_of(&path),
            };
            paths.push(path);
            sizes.push(size);
            paths.len() - 1
        });
        work.push(match &sizes[file] {
            Err(why) => Err(format!("ERROR: {why}")),
            Ok(size) => plan::chunk_at(file, e.number, *size, config.chunk_size)
                .ok_or_else(|| "EOF".to_string()),
        });
    }
    let chunks: Vec<Chunk> = work
        .iter()
        .filter_map(|w| w.as_ref().ok().copied())
        .collect();
    let mut sink = Compare {
        out,
        expected: &expected,
        work: &work,
        next: 0,
        mismatches: 0,
    };
    engine::run(&paths, &chunks, config.hash, config.jobs, &STOP, &mut sink)?;
    sink.settle_until(expected.len(), None)?;
    sink.out.flush()?;
    let mismatches = sink.mismatches;
    config.log.verbose(format!(
        "Checked {} hashes, {mismatches} failed.",
        expected.len()
    ));
    if mismatches > 0 {
        config
            .log
            .error(format!("{mismatches} of {} chunks differ", expected.len()));
    }
    Ok(mismatches)
}

/// The sink of checking: results come for the hashed chunks only, in
/// order; the lines in between (EOF, ERROR) are settled on the way.
struct Compare<'a> {
    out: &'a mut Output,
    expected: &'a [Expected],
    work: &'a [Result<Chunk, String>],
    /// The next expected line to settle.
    next: usize,
    mismatches: u64,
}

impl Compare<'_> {
    /// Settles the lines before `until`, then line `until` with `hash`.
    fn settle_until(
        &mut self,
        until: usize,
        hash: Option<Result<String, String>>,
    ) -> Result<(), Error> {
        while self.next < until {
            if let Err(actual) = &self.work[self.next] {
                let actual = actual.clone();
                self.fail(self.next, &actual)?;
            }
            self.next += 1;
        }
        if let Some(hash) = hash {
            let actual = match hash {
                Ok(h) => h,
                Err(e) => format!("ERROR: {e}"),
            };
            if actual != self.expected[until].hash {
                self.fail(until, &actual)?;
            }
            self.next = until + 1;
        }
        Ok(())
    }

    fn fail(&mut self, line: usize, actual: &str) -> Result<(), Error> {
        let e = &self.expected[line];
        self.mismatches += 1;
        self.out.write(&plan::mismatch(
            e.path.as_deref(),
            e.number,
            &e.hash,
            actual,
        ))
    }
}

impl Sink for Compare<'_> {
    fn result(&mut self, _index: usize, hash: Result<String, String>) -> Result<(), Error> {
        // The next line that has a chunk is the one this result is for.
        let mut line = self.next;
        while self.work.get(line).is_some_and(|w| w.is_err()) {
            line += 1;
        }
        self.settle_until(line, Some(hash))
    }
    fn idle(&mut self) -> Result<(), Error> {
        self.out.flush()
    }
}

/// Which directories of the tree are real directories (not links out of
/// it): a path from the input is read only when each of its parents is.
#[derive(Default)]
struct Inside {
    dirs: HashMap<Vec<u8>, bool>,
}

impl Inside {
    /// The size of the regular file `rel` below `top`, or why it is not one.
    fn file_size(&mut self, top: &Path, rel: &[u8]) -> Result<u64, String> {
        let mut end = 0;
        while let Some(slash) = rel[end..].iter().position(|&b| b == b'/') {
            end += slash;
            let dir = &rel[..end];
            let ok = *self.dirs.entry(dir.to_vec()).or_insert_with(|| {
                std::fs::symlink_metadata(top.join(std::ffi::OsStr::from_bytes(dir)))
                    .is_ok_and(|m| m.is_dir())
            });
            if !ok {
                return Err(format!(
                    "{} is not a directory",
                    String::from_utf8_lossy(dir)
                ));
            }
            end += 1;
        }
        let meta = std::fs::symlink_metadata(top.join(std::ffi::OsStr::from_bytes(rel)))
            .map_err(|e| format!("cannot open: {e}"))?;
        match meta.is_file() {
            true => Ok(meta.len()),
            false => Err("not a regular file".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::Parser;
    use std::sync::{Arc, Mutex};

    /// What an [`Output`] wrote, readable after.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
        }
    }

    fn config(top: &Path) -> Config {
        let top = top.to_string_lossy().into_owned();
        Args::parse_from([
            "zab-check",
            "--block-size",
            "10",
            "--count",
            "1",
            "--hash",
            "sha1",
            "--jobs",
            "3",
            &top,
        ])
        .config()
        .expect("config")
    }

    fn hashes(config: &Config, top: &Path) -> String {
        let shared = Shared::default();
        let mut out = Output::to(Box::new(shared.clone()));
        generate(config, top, true, &mut out).expect("generate");
        out.flush().expect("flush");
        shared.text()
    }

    #[test]
    fn check_reports_each_mismatch_in_input_order() {
        let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/zab-check-tests/run-check");
        let _ = std::fs::remove_dir_all(&top);
        std::fs::create_dir_all(top.join("sub")).expect("mkdir");
        std::fs::write(top.join("a"), [b'a'; 30]).expect("write");
        std::fs::write(top.join("b"), b"bbbbb").expect("write");
        std::fs::write(top.join("sub/c"), b"c").expect("write");
        std::os::unix::fs::symlink("a", top.join("l")).expect("symlink");
        std::os::unix::fs::symlink("sub", top.join("lsub")).expect("symlink");
        let config = config(&top);
        let before = hashes(&config, &top);
        assert_eq!(before.lines().count(), 5, "{before}");
        assert!(before.starts_with("a\t0\t"), "{before}");

        // Chunk 1 of a changes, b goes; the input also asks for a chunk past
        // a's end, for a link, and for a file below the link.
        let mut a = vec![b'a'; 30];
        a[15] = b'X';
        std::fs::write(top.join("a"), a).expect("write");
        std::fs::remove_file(top.join("b")).expect("rm");
        let h = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let input = format!("{before}a\t3\t{h}\nl\t0\t{h}\nsub/c\t0\t{h}\nlsub/c\t0\t{h}\n");
        let shared = Shared::default();
        let mut out = Output::to(Box::new(shared.clone()));
        let n = check(&config, &top, true, input.as_bytes(), &mut out).expect("check");
        let got = shared.text();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(n, 6, "{got}");
        assert_eq!(lines.len(), 6, "{got}");
        assert!(lines[0].starts_with("a: Chunk 1 failed: "), "{got}");
        assert!(lines[1].starts_with("b: Chunk 0 failed: "), "{got}");
        assert!(
            lines[1].ends_with(" ERROR: cannot open: No such file or directory (os error 2)"),
            "{got}"
        );
        assert_eq!(lines[2], format!("a: Chunk 3 failed: {h} EOF"));
        assert_eq!(
            lines[3],
            format!("l: Chunk 0 failed: {h} ERROR: not a regular file")
        );
        assert!(lines[4].starts_with("sub/c: Chunk 0 failed: "), "{got}");
        // Never read through a link out of the tree.
        assert_eq!(
            lines[5],
            format!("lsub/c: Chunk 0 failed: {h} ERROR: lsub is not a directory")
        );

        // Unchanged content checks clean.
        let after = hashes(&config, &top);
        let shared = Shared::default();
        let mut out = Output::to(Box::new(shared.clone()));
        let n = check(&config, &top, true, after.as_bytes(), &mut out).expect("check");
        assert_eq!((n, shared.text()), (0, String::new()));
    }
}
