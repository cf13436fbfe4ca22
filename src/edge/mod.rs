//! The HTTP edge in front of every handler: the accept loop, which gives each connection a
//! header-read timeout (a client that never finishes its request head is cut off), and the
//! request layers that bound how long a request may take and how many run at once.

mod limits;
mod server;

pub use limits::{ConcurrencyLimit, RequestTimeout, limit_concurrency, time_out_requests};
pub use server::serve_http;
