//! The live display of a run on a terminal: one line per finished step (name, rows written,
//! time) and a spinner on the step running now.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::report::group_digits;
use crate::run::{Progress, StepProgress};

/// Draws `progress` on stderr until [`Display::finish`]; hidden when built with `show` false.
pub(super) struct Display {
    bar: ProgressBar,
    progress: Progress,
    ticker: Option<tokio::task::JoinHandle<()>>,
    /// A run prints a line per finished step; a backfill a line per date.
    step_lines: bool,
}

fn line(step: &StepProgress) -> String {
    let rows = if step.rows == 0 {
        String::new()
    } else {
        format!("{} rows", group_digits(step.rows, ','))
    };
    format!(
        "{:<36} {:>16} {:>8.1}s",
        step.step,
        rows,
        step.elapsed.as_secs_f64()
    )
}

fn print_finished(bar: &ProgressBar, progress: &Progress, step_lines: bool) {
    for step in progress.take_finished() {
        // Taking the lock is a step only when another run held it.
        let waited = !step.step.starts_with("waiting") || step.elapsed > Duration::from_secs(1);
        if step_lines && waited {
            bar.println(format!("  ✓ {}", line(&step)));
        }
    }
}

impl Display {
    /// A run: a spinner on the running step, a line per finished one.
    pub(super) fn run(show: bool, progress: Progress, prefix: String) -> Self {
        let style = ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg}")
            .expect("valid template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        Self::start(
            show,
            ProgressBar::new_spinner(),
            style,
            progress,
            prefix,
            true,
        )
    }

    /// A backfill: a bar over the dates, the running step beside it, a line per finished date.
    pub(super) fn backfill(show: bool, progress: Progress, prefix: String, days: u64) -> Self {
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {pos}/{len} dates, {elapsed} · {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        Self::start(show, ProgressBar::new(days), style, progress, prefix, false)
    }

    fn start(
        show: bool,
        bar: ProgressBar,
        style: ProgressStyle,
        progress: Progress,
        prefix: String,
        step_lines: bool,
    ) -> Self {
        if !show {
            return Self {
                bar: ProgressBar::hidden(),
                progress,
                ticker: None,
                step_lines,
            };
        }
        let bar = bar.with_style(style).with_prefix(prefix);
        bar.enable_steady_tick(Duration::from_millis(100));
        let ticker = {
            let (bar, progress) = (bar.clone(), progress.clone());
            tokio::spawn(async move {
                loop {
                    print_finished(&bar, &progress, step_lines);
                    if let Some(step) = progress.current() {
                        bar.set_message(line(&step));
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            })
        };
        Self {
            bar,
            progress,
            ticker: Some(ticker),
            step_lines,
        }
    }

    /// A backfill finished a date (`ran` false: it was published already).
    pub(super) fn date_done(&self, date: chrono::NaiveDate, ran: bool) {
        let what = if ran {
            "published"
        } else {
            "already published"
        };
        self.bar.println(format!("  ✓ {date} {what}"));
        self.bar.inc(1);
    }

    /// Prints the lines not shown yet and removes the spinner or bar.
    pub(super) fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        print_finished(&self.bar, &self.progress, self.step_lines);
        self.bar.finish_and_clear();
    }
}
