//! Where a run is: the step it is in, since when, and how many rows it has written. Read by the
//! terminal's progress display and by the message of a run stopped by `--timeout`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::rows_written;

/// A step that finished (or is running): its name, how long it took and the rows it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProgress {
    pub step: String,
    pub elapsed: Duration,
    pub rows: u64,
}

#[derive(Debug)]
struct Running {
    step: String,
    started: Instant,
    rows_at_start: u64,
}

#[derive(Debug, Default)]
struct State {
    current: Option<Running>,
    finished: Vec<StepProgress>,
}

/// Shared by a run and whoever watches it; cloning gives another handle on the same run.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<State>>);

impl Progress {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters `step`, finishing the one before.
    pub(crate) fn set(&self, step: impl Into<String>) {
        let mut state = self.state();
        if let Some(done) = state.current.take() {
            state.finished.push(measure(&done));
        }
        state.current = Some(Running {
            step: step.into(),
            started: Instant::now(),
            rows_at_start: rows_written(),
        });
    }

    /// Finishes the current step, if any.
    pub(crate) fn done(&self) {
        let mut state = self.state();
        if let Some(done) = state.current.take() {
            state.finished.push(measure(&done));
        }
    }

    /// The step running now, with its figures so far.
    pub fn current(&self) -> Option<StepProgress> {
        self.state().current.as_ref().map(measure)
    }

    /// The steps finished since the last call, oldest first.
    pub fn take_finished(&self) -> Vec<StepProgress> {
        std::mem::take(&mut self.state().finished)
    }

    /// The running step's name, or "starting".
    pub(crate) fn step(&self) -> String {
        self.state()
            .current
            .as_ref()
            .map_or_else(|| "starting".to_string(), |r| r.step.clone())
    }
}

fn measure(running: &Running) -> StepProgress {
    StepProgress {
        step: running.step.clone(),
        elapsed: running.started.elapsed(),
        rows: rows_written().saturating_sub(running.rows_at_start),
    }
}
