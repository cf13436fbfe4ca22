//! Rendering is pure: (template, event) → Block Kit JSON within Slack's limits, with every
//! interpolated value escaped for mrkdwn so record data can never ping or link.

pub mod blockkit;
pub mod limits;
pub mod mrkdwn;

pub use blockkit as template;
