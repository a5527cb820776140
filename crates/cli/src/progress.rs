//! Progress on stderr: a bar when the total is known, a spinner with the running count and
//! rate otherwise. Drawn only when stderr is a terminal, so pipes and logs stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress indicator on stderr.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// An indicator that draws nothing, e.g. while stdout shares the terminal.
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    /// A spinner showing `what` is being done and for how long, for a step with no count.
    pub fn spinner(what: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, target());
        bar.set_style(
            ProgressStyle::with_template(&format!("{{spinner}} {what} ({{elapsed}})"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self::ticking(bar)
    }

    /// A spinner counting `what` (e.g. "leads") with the rate per second.
    pub fn counter(what: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, target());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{human_pos}} {what} ({{rate}}, {{elapsed}}) {{msg}}"
            ))
            .map(with_rate)
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self::ticking(bar)
    }

    /// A bar of `total` steps of `what`, with the rate and the time left.
    pub fn bar(total: u64, what: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), target());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{bar:40}} {{human_pos}}/{{human_len}} {what} ({{rate}}, {{eta}} left) {{msg}}"
            ))
            .map(with_rate)
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self::ticking(bar)
    }

    fn ticking(bar: ProgressBar) -> Self {
        // Ticking on its own keeps the spinner and rate moving while a request waits on the
        // rate budget or the server, which is when people wonder whether it hangs.
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar }
    }

    /// Counts `n` more.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Shows `note` after the counts; an empty note clears it.
    pub fn note(&self, note: &str) {
        self.bar.set_message(note.to_string());
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

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
