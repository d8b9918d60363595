//! How far a long piece of work has come: what [`crate::export::write_with`],
//! [`crate::import::jsonl_with`] and [`crate::convert::copy_with`] report as they go, for a
//! progress bar.

/// One report: the step the work is in, and how much of it is done.
///
/// Reports come at most once per batch (every 1,000 events or so), and each step ends with a
/// report whose `done` is its `total` (when the total is known), so a callback can be cheap
/// and a bar ends full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// What the work is doing now.
    pub step: Step,
    /// How much of the step is done, in the step's [`Unit`].
    pub done: u64,
    /// How much there is in all, when it is known beforehand.
    pub total: Option<u64>,
}

impl Progress {
    /// A report of `done` out of `total` in `step`.
    pub fn new(step: Step, done: u64, total: Option<u64>) -> Self {
        Progress { step, done, total }
    }
}

/// The steps of the work that reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// An import checks every line of its file before storing any (bytes of the file).
    Checking,
    /// An import stores the file's events (bytes of the file).
    Importing,
    /// An export writes events out (events).
    Exporting,
    /// A conversion copies events into the new store (events).
    Copying,
    /// A conversion compares the copy with its source, event by event (events).
    Comparing,
}

/// What a step counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// Bytes of a file.
    Bytes,
    /// Events.
    Events,
}

impl Step {
    /// What the step's `done` and `total` count.
    pub fn unit(self) -> Unit {
        match self {
            Step::Checking | Step::Importing => Unit::Bytes,
            Step::Exporting | Step::Copying | Step::Comparing => Unit::Events,
        }
    }

    /// The step in a word or two, for a label.
    pub fn label(self) -> &'static str {
        match self {
            Step::Checking => "checking",
            Step::Importing => "importing",
            Step::Exporting => "exporting",
            Step::Copying => "copying",
            Step::Comparing => "comparing",
        }
    }
}
