//! The one question every failure answers before delivery decides what to do with a job.

/// Whether a failure may succeed later, or never will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after backing off (or after the wait the remote side asked for).
    Later,
    /// Try again shortly, without a backoff that grows with each attempt: the remote side
    /// answers most calls, so this failure was one of a few (a storm of sporadic 500s), and
    /// waiting longer and longer would only make the job straggle.
    Soon,
    /// Park in the dead-letter list now: repeating it cannot help.
    Never,
}
