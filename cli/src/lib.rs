//! The library behind the `eventlite` command: its progress bars.
//!
//! The work itself is the facade's ([`eventlite::export`], [`eventlite::import`],
//! [`eventlite::convert`]), which reports [`Progress`] to a callback; [`Bars`] turns those
//! reports into indicatif bars on standard error, one per step, with rate and time left.
//!
//! ```
//! use eventlite::NewEvent;
//! use eventlite_cli::Bars;
//!
//! let dir = tempfile::tempdir()?;
//! let store = eventlite::open(dir.path().join("events.db"))?;
//! store.store(NewEvent::new("order_placed"))?;
//! // Drawn on a terminal, hidden otherwise (as under `cargo test`).
//! let mut bars = Bars::stderr();
//! let out = std::io::sink();
//! let written = eventlite::export::write_with(
//!     &store,
//!     eventlite::Filter::default(),
//!     eventlite::export::Format::Jsonl,
//!     out,
//!     |p| bars.report(p),
//! )?;
//! bars.finish();
//! assert_eq!(written, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use eventlite::progress::{Progress, Step, Unit};
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Progress bars for the steps of a long command, drawn where its target says.
pub struct Bars {
    target: Box<dyn Fn() -> ProgressDrawTarget + Send>,
    current: Option<(Step, ProgressBar)>,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars")
            .field("step", &self.current.as_ref().map(|(s, _)| *s))
            .finish_non_exhaustive()
    }
}

impl Bars {
    /// Bars on standard error when it is a terminal (at most 20 redraws a second); nothing is
    /// drawn when it is not.
    pub fn stderr() -> Self {
        Bars::to(ProgressDrawTarget::stderr)
    }

    /// No bars at all.
    pub fn hidden() -> Self {
        Bars::to(ProgressDrawTarget::hidden)
    }

    /// Bars drawn to the targets `target` makes, one for each step.
    pub fn to(target: impl Fn() -> ProgressDrawTarget + Send + 'static) -> Self {
        Bars {
            target: Box::new(target),
            current: None,
        }
    }

    /// Shows `progress`: the current step's bar moves; a new step finishes the bar before it
    /// (left drawn, full) and starts its own.
    pub fn report(&mut self, progress: Progress) {
        if self
            .current
            .as_ref()
            .is_none_or(|(step, _)| *step != progress.step)
        {
            self.finish();
            self.current = Some((progress.step, self.start(progress)));
        }
        let Some((_, bar)) = &self.current else {
            return;
        };
        if let Some(total) = progress.total
            && bar.length() != Some(total)
        {
            bar.set_length(total);
        }
        bar.set_position(progress.done);
    }

    /// Finishes the current step's bar, left drawn with its final count, rate and time.
    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish();
        }
    }

    fn start(&self, progress: Progress) -> ProgressBar {
        let counts = match progress.step.unit() {
            Unit::Bytes => "{bytes}/{total_bytes} ({binary_bytes_per_sec}",
            _ => "{human_pos}/{human_len} events ({rate}",
        };
        let template = match progress.total {
            Some(_) => format!("{{prefix:>10}} [{{bar:30}}] {counts}, {{eta}} left)"),
            None => match progress.step.unit() {
                Unit::Bytes => "{prefix:>10} {spinner} {bytes} ({binary_bytes_per_sec})".to_owned(),
                _ => "{prefix:>10} {spinner} {human_pos} events ({rate})".to_owned(),
            },
        };
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
            // Whole events a second (indicatif's `per_sec` shows four decimals).
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}/s", HumanCount(state.per_sec().max(0.0) as u64));
                },
            );
        let bar = match progress.total {
            Some(total) => ProgressBar::with_draw_target(Some(total), (self.target)()),
            None => ProgressBar::with_draw_target(None, (self.target)()),
        };
        bar.set_style(style);
        bar.set_prefix(progress.step.label());
        bar
    }
}

impl Drop for Bars {
    /// A command that fails part way leaves its bar where it stopped.
    fn drop(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use indicatif::TermLike;

    /// A terminal that keeps what is drawn on it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.write_str("\r")
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_step_gets_a_bar_that_ends_full() {
        let screen = Screen::default();
        let target = screen.clone();
        let mut bars = Bars::to(move || ProgressDrawTarget::term_like(Box::new(target.clone())));
        bars.report(Progress::new(Step::Copying, 500, Some(2_000)));
        bars.report(Progress::new(Step::Copying, 2_000, Some(2_000)));
        bars.report(Progress::new(Step::Comparing, 2_000, Some(2_000)));
        bars.finish();
        bars.report(Progress::new(Step::Exporting, 7, None));
        drop(bars);
        let drawn = screen.0.lock().map(|s| s.clone()).unwrap_or_default();
        for text in [
            "copying",
            "500/2,000 events (",
            "2,000/2,000 events (",
            "comparing",
        ] {
            assert!(drawn.contains(text), "{text:?} not in {drawn:?}");
        }
        // Rates in whole events a second.
        assert!(!drawn.contains('.'), "{drawn:?}");
        // Without a total: a count, no bar.
        assert!(
            drawn.contains("exporting") && drawn.contains("7 events"),
            "{drawn:?}"
        );
    }

    #[test]
    fn hidden_bars_draw_nothing_and_take_any_report() {
        let mut bars = Bars::hidden();
        bars.report(Progress::new(Step::Checking, 10, Some(5)));
        bars.report(Progress::new(Step::Importing, 0, None));
        assert_eq!(format!("{bars:?}"), "Bars { step: Some(Importing), .. }");
    }
}
