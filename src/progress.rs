//! Progress of long commands (`gateway recover`, `repair`, `node drain`) on stderr.
//!
//! Contract: on a terminal, one line redrawn in place (at most ten times a second) with a bar
//! when the total is known; anywhere else (a log file, journald, a pipe) a plain line at most
//! every [`PLAIN_EVERY`], so logs stay readable and never fill with carriage returns.
//! [`Progress::finish`] prints the last state once more (plain) or ends the redrawn line.
//! Disabled, it prints nothing.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a plain (non-terminal) progress line is written.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
const REDRAW_EVERY: Duration = Duration::from_millis(100);
const BAR_WIDTH: usize = 30;

#[derive(Debug)]
pub struct Progress {
    tty: bool,
    enabled: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    /// The newest line, drawn or not.
    line: String,
    /// Whether `line` is on the screen already.
    shown: bool,
}

impl Progress {
    /// Progress on stderr, redrawn when stderr is a terminal.
    pub fn stderr(enabled: bool) -> Progress {
        Progress::new(enabled, std::io::stderr().is_terminal())
    }

    fn new(enabled: bool, tty: bool) -> Progress {
        Progress {
            tty,
            enabled,
            state: Mutex::new(State::default()),
        }
    }

    /// Reports `done` of `total` (when known) in `phase`, with `detail` after the counts.
    pub fn update(&self, phase: &str, done: u64, total: Option<u64>, detail: &str) {
        if !self.enabled {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.line = line(phase, done, total, detail, self.tty);
        s.shown = false;
        let every = if self.tty { REDRAW_EVERY } else { PLAIN_EVERY };
        if s.last.is_some_and(|l| l.elapsed() < every) {
            return;
        }
        s.last = Some(Instant::now());
        self.show(&mut s);
    }

    /// Shows the last state if it is not on the screen yet, and ends a redrawn line.
    pub fn finish(&self) {
        if !self.enabled {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.last.is_none() {
            return;
        }
        if !s.shown {
            self.show(&mut s);
        }
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }

    fn show(&self, s: &mut State) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", s.line);
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{}", s.line);
        }
        s.shown = true;
    }
}

/// One progress line: `phase [####----] done/total detail` (a bar only on a terminal).
fn line(phase: &str, done: u64, total: Option<u64>, detail: &str, bar: bool) -> String {
    let mut out = format!("{phase}: ");
    match total {
        Some(t) if t > 0 => {
            if bar {
                let filled = (done.min(t) as u128 * BAR_WIDTH as u128 / t as u128) as usize;
                out.push_str(&format!(
                    "[{}{}] ",
                    "#".repeat(filled),
                    "-".repeat(BAR_WIDTH - filled)
                ));
            }
            out.push_str(&format!(
                "{done}/{t} ({}%)",
                (done.min(t) as u128 * 100 / t as u128)
            ));
        }
        _ => out.push_str(&done.to_string()),
    }
    if !detail.is_empty() {
        out.push_str(", ");
        out.push_str(detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_a_bar_only_on_a_terminal() {
        assert_eq!(
            line("repair", 15, Some(60), "3.0 MiB written", true),
            format!(
                "repair: [{}{}] 15/60 (25%), 3.0 MiB written",
                "#".repeat(7),
                "-".repeat(23)
            )
        );
        assert_eq!(
            line("repair", 15, Some(60), "3.0 MiB written", false),
            "repair: 15/60 (25%), 3.0 MiB written"
        );
        assert_eq!(line("log batches", 7, None, "", false), "log batches: 7");
        assert_eq!(line("x", 5, Some(0), "", true), "x: 5");
        // More done than planned (work found on the way) stays within the bar.
        assert!(line("x", 9, Some(3), "", true).starts_with(&format!("x: [{}]", "#".repeat(30))));
    }

    #[test]
    fn plain_lines_are_rate_limited_and_the_last_state_is_kept() {
        let p = Progress::new(true, false);
        p.update("x", 1, Some(3), "");
        p.update("x", 2, Some(3), "");
        let s = p.state.lock().unwrap();
        // The first was shown at once; the second waits for PLAIN_EVERY (or finish).
        assert_eq!(s.line, "x: 2/3 (66%)");
        assert!(!s.shown);
        drop(s);
        p.finish();
        assert!(p.state.lock().unwrap().shown);
        // Disabled: nothing is kept or shown.
        let off = Progress::new(false, false);
        off.update("x", 1, None, "");
        assert!(off.state.lock().unwrap().last.is_none());
    }
}
