//! How large a memory buffer may be: zab-buffer's `--size` and zab-send's
//! `--buffer`, checked against the memory this machine has available.
//!
//! A buffer is allocated whole at the start. One larger than the memory
//! available either fails to allocate (Rust then aborts the process with
//! SIGABRT) or, with overcommit, is granted and gets the process killed by
//! the OOM killer once the buffer fills, in the middle of a transfer. So a
//! size above MemAvailable (`/proc/meminfo`: what can be had without
//! swapping) is refused up front as a usage error. Where there is no
//! `/proc/meminfo`, nothing is checked here and the allocation itself is
//! what can fail (zab-buffer allocates fallibly).

use crate::cli::format_bytes;

/// The memory available on this machine (MemAvailable), or None where it
/// cannot be read.
pub fn available_memory() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_available(&text))
}

/// MemAvailable in bytes, from the text of `/proc/meminfo`
/// (`MemAvailable:   23012345 kB`).
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let mut words = line.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// Checks that a buffer of `size` bytes fits in `available` bytes (None:
/// unknown, so anything goes). The error says both sizes:
/// `1.00 TiB is more than the memory available (21.4 GiB, MemAvailable)`.
pub fn check_buffer(size: u64, available: Option<u64>) -> Result<(), String> {
    match available {
        Some(avail) if size > avail => Err(format!(
            "{} is more than the memory available ({}, MemAvailable in /proc/meminfo)",
            format_bytes(size),
            format_bytes(avail)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24567204 kB\n\
                           MemFree:        14976424 kB\n\
                           MemAvailable:   23012345 kB\n\
                           Buffers:          123456 kB\n";

    #[test]
    fn mem_available_from_proc_meminfo() {
        assert_eq!(mem_available(MEMINFO), Some(23_012_345 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: many kB\n"), None);
        assert_eq!(mem_available("MemAvailable: 1 MB\n"), None);
        assert_eq!(mem_available("MemAvailable: 99999999999999999 kB\n"), None);
    }

    #[test]
    fn a_buffer_must_fit_in_the_memory_available() {
        let avail = Some(8 << 30);
        assert_eq!(check_buffer(16 << 20, avail), Ok(()));
        assert_eq!(check_buffer(8 << 30, avail), Ok(()));
        assert_eq!(
            check_buffer(1 << 40, avail),
            Err("1.00 TiB is more than the memory available \
                 (8.00 GiB, MemAvailable in /proc/meminfo)"
                .into())
        );
        // Unknown: the allocation decides.
        assert_eq!(check_buffer(1 << 40, None), Ok(()));
    }

    #[test]
    fn this_machine_has_some_memory_available() {
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(available_memory().is_some_and(|n| n > 0));
        }
    }
}
