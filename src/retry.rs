//! The one question every failure answers before delivery decides what to do with a job.

/// Whether a failure may succeed later, or never will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after backing off (or after the wait the remote side asked for).
    Later,
    /// Park in the dead-letter list now: repeating it cannot help.
    Never,
}
