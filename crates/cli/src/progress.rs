//! Progress on stderr: a bar when the total is known, a spinner with the running count and
//! rate otherwise. Drawn only when stderr is a terminal, so pipes and logs stay clean.
//!
//! Counters and bars end with a note: the client's current rate-limit wait or retry pause
//! (from [`Waits`]) while one lasts, else what the command itself noted.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::waits::Waits;

/// A progress indicator on stderr.
pub struct Progress {
    bar: ProgressBar,
    note: Arc<Mutex<String>>,
}

impl Progress {
    /// An indicator that draws nothing, e.g. while stdout shares the terminal.
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
            note: Arc::default(),
        }
    }

    /// A spinner showing `what` is being done and for how long, for a step with no count.
    pub fn spinner(what: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, target());
        bar.set_style(
            ProgressStyle::with_template(&format!("{{spinner}} {what} ({{elapsed}})"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self::ticking(bar, Arc::default())
    }

    /// A spinner counting `what` (e.g. "leads") with the rate per second and the waits of
    /// the client that `waits` observes.
    pub fn counter(what: &str, waits: &Waits) -> Self {
        let template = format!("{{spinner}} {{human_pos}} {what} ({{rate}}, {{elapsed}}) {{note}}");
        Self::noted(None, &template, waits)
    }

    /// A bar of `total` steps of `what`, with the rate, the time left and the waits of the
    /// client that `waits` observes.
    pub fn bar(total: u64, what: &str, waits: &Waits) -> Self {
        let template = format!(
            "{{bar:40}} {{human_pos}}/{{human_len}} {what} ({{rate}}, {{eta}} left) {{note}}"
        );
        Self::noted(Some(total), &template, waits)
    }

    fn noted(total: Option<u64>, template: &str, waits: &Waits) -> Self {
        let bar = ProgressBar::with_draw_target(total, target());
        let note: Arc<Mutex<String>> = Arc::default();
        let fallback = match total {
            Some(_) => ProgressStyle::default_bar(),
            None => ProgressStyle::default_spinner(),
        };
        let style = ProgressStyle::with_template(template)
            .map(with_rate)
            .map(|style| with_note(style, waits.clone(), note.clone()))
            .unwrap_or(fallback);
        bar.set_style(style);
        Self::ticking(bar, note)
    }

    fn ticking(bar: ProgressBar, note: Arc<Mutex<String>>) -> Self {
        // Ticking on its own keeps the spinner, the rate and a wait's countdown moving while
        // a request waits on the rate budget or the server, which is when people wonder
        // whether it hangs.
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar, note }
    }

    /// Counts `n` more.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Shows `note` after the counts while the client is not waiting; an empty note clears
    /// it.
    pub fn note(&self, note: &str) {
        *self.note.lock().unwrap_or_else(|p| p.into_inner()) = note.to_string();
        self.bar.tick();
    }

    /// Removes the indicator from the terminal.
    pub fn done(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error path must not leave a half-drawn bar above the error message.
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// `{rate}`: whole items per second (indicatif's own `{per_sec}` shows four decimals).
fn with_rate(style: ProgressStyle) -> ProgressStyle {
    style.with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        },
    )
}

/// `{note}`: the client's wait while one lasts, else the command's own note.
fn with_note(style: ProgressStyle, waits: Waits, note: Arc<Mutex<String>>) -> ProgressStyle {
    style.with_key(
        "note",
        move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = match waits.note(Instant::now()) {
                Some(wait) => w.write_str(&wait),
                None => w.write_str(&note.lock().unwrap_or_else(|p| p.into_inner())),
            };
        },
    )
}

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
