//! The progress lines at the bottom of a terminal: drawn, redrawn in place
//! and erased here only, so that a log line printed while they are shown
//! ([`above`], which [`crate::cli::Log`] uses) lands on its own line above
//! them instead of inside one. Each drawn line ends with a newline, so the
//! cursor rests below the block; redrawing moves up over the block, erases
//! to the end of the screen and writes the new lines.
//!
//! Only a tool that draws (zab-send) ever writes an escape sequence here:
//! while nothing is drawn, [`above`] only prints.

use std::io::Write;
use std::sync::Mutex;

/// How many lines are drawn now.
static DRAWN: Mutex<usize> = Mutex::new(0);

/// The bytes that erase `n` drawn lines: up `n` lines, then to the end of
/// the screen.
fn erase(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!("\x1b[{n}A\r\x1b[J"),
    }
}

/// The bytes that replace `drawn` lines with `lines`.
fn frame(drawn: usize, lines: &[String]) -> String {
    let mut s = erase(drawn);
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Replaces the drawn lines with `lines` (none: erases them).
pub fn draw(lines: &[String]) {
    let mut drawn = DRAWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(frame(*drawn, lines).as_bytes());
    let _ = err.flush();
    *drawn = lines.len();
}

/// Runs `print` (which writes whole lines to stderr) with the drawn lines
/// erased first; the next [`draw`] puts them back below.
pub fn above<T>(print: impl FnOnce() -> T) -> T {
    let mut drawn = DRAWN.lock().unwrap_or_else(|e| e.into_inner());
    if *drawn > 0 {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(erase(*drawn).as_bytes());
        let _ = err.flush();
        *drawn = 0;
    }
    print()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_moves_up_over_the_old_lines_and_ends_below_the_new_ones() {
        assert_eq!(frame(0, &["a".into()]), "a\n");
        assert_eq!(
            frame(2, &["a".into(), "b".into(), "total".into()]),
            "\x1b[2A\r\x1b[Ja\nb\ntotal\n"
        );
        assert_eq!(frame(3, &[]), "\x1b[3A\r\x1b[J");
        assert_eq!(erase(0), "");
    }
}
