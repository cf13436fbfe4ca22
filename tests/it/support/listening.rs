//! Where a started `sfrelay` listens. The harness passes port 0 and reads the bound address
//! from the process's JSON log (`sfrelay listening`, `metrics listening`), so no port is picked
//! by the test and then raced for by the child.

use std::path::Path;

/// The `addr` field of the first JSON log line in `log` whose message is `message`.
pub fn logged_addr(log: &Path, message: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        // Fields sit at the top level of a line (flattened), or under "fields".
        let fields = entry.get("fields").unwrap_or(&entry);
        (fields.get("message")?.as_str()? == message)
            .then(|| fields.get("addr")?.as_str().map(str::to_string))?
    })
}
