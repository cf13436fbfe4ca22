//! Whether the process should receive traffic, shared by the HTTP edge and readiness.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the process should receive traffic: false once a shutdown has begun.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
