//! The files of a tree that zab-check hashes: regular files only (as
//! zfs-check: symbolic links, device nodes, FIFOs and sockets are left out,
//! and so are directories, empty or not; a link to a directory is not
//! followed), with their paths relative to the top, sorted bytewise so that
//! two trees' outputs compare line by line.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use zab_core::error::Error;

/// A regular file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its path relative to the top, as bytes (`dir/name`).
    pub rel: Vec<u8>,
    pub size: u64,
}

impl File {
    /// Its path below `top`.
    pub fn path(&self, top: &Path) -> PathBuf {
        top.join(OsString::from_vec(self.rel.clone()))
    }
}

/// Every regular file below `top`, sorted by path. A directory that
/// cannot be read is an error, as in zfs-check: a partial list would check
/// only part of the tree.
pub fn walk(top: &Path) -> Result<Vec<File>, Error> {
    let mut files = Vec::new();
    let mut dirs = vec![Vec::new()];
    while let Some(rel) = dirs.pop() {
        let dir = top.join(OsString::from_vec(rel.clone()));
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::Io(format!("cannot read directory {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| Error::Io(format!("cannot read directory {}: {e}", dir.display())))?;
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(entry.file_name().as_bytes());
            // file_type() and metadata() of an entry do not follow links.
            let kind = entry
                .file_type()
                .map_err(|e| Error::Io(format!("cannot stat {}: {e}", entry.path().display())))?;
            if kind.is_dir() {
                dirs.push(child);
            } else if kind.is_file() {
                let size = entry
                    .metadata()
                    .map_err(|e| Error::Io(format!("cannot stat {}: {e}", entry.path().display())))?
                    .len();
                files.push(File { rel: child, size });
            }
        }
    }
    sort(&mut files);
    Ok(files)
}

/// Sorts files by path, bytewise (as `LC_ALL=C sort` does).
pub fn sort(files: &mut [File]) {
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the build's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/zab-check-tests")
            .join(format!("walk-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn regular_files_only_sorted_bytewise() {
        let top = scratch("kinds");
        std::fs::create_dir_all(top.join("a/b")).expect("mkdir");
        std::fs::create_dir_all(top.join("empty-dir")).expect("mkdir");
        std::fs::write(top.join("a/b/f"), b"123").expect("write");
        std::fs::write(top.join("a.b"), b"x").expect("write");
        std::fs::write(top.join("a b"), b"").expect("write");
        std::fs::write(top.join("Z"), b"zz").expect("write");
        std::os::unix::fs::symlink("a.b", top.join("link-to-file")).expect("symlink");
        std::os::unix::fs::symlink("a", top.join("link-to-dir")).expect("symlink");
        let fifo = std::process::Command::new("mkfifo")
            .arg(top.join("fifo"))
            .status()
            .expect("mkfifo");
        assert!(fifo.success());
        let files = walk(&top).expect("walk");
        let names: Vec<(String, u64)> = files
            .iter()
            .map(|f| (String::from_utf8_lossy(&f.rel).into_owned(), f.size))
            .collect();
        assert_eq!(
            names,
            [
                ("Z".to_string(), 2),
                ("a b".to_string(), 0),
                ("a.b".to_string(), 1),
                ("a/b/f".to_string(), 3),
            ]
        );
        assert_eq!(files[3].path(&top), top.join("a/b/f"));
    }

    #[test]
    fn an_unreadable_top_is_an_error() {
        let top = scratch("missing").join("nothing-here");
        let e = walk(&top).expect_err("missing top");
        assert!(e.to_string().starts_with("cannot read directory"), "{e}");
    }
}
