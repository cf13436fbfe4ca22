//! The printed table and what `results.json` records about the machine and the commit.
//!
//! Targets are shown as PASS/FAIL columns only: a benchmark reports, it never fails a build.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `None` when there is no target or no value to judge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
}

impl Row {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            name: name.into(),
            value: value.into(),
            target: None,
            pass: None,
        }
    }

    pub fn target(mut self, target: impl Into<String>, pass: Option<bool>) -> Row {
        self.target = Some(target.into());
        self.pass = pass;
        self
    }
}

/// `value ≤ limit`, or `None` when there is no value.
pub fn le(value: f64, limit: f64) -> Option<bool> {
    (!value.is_nan()).then_some(value <= limit)
}

/// `value ≥ limit`, or `None` when there is no value.
pub fn ge(value: f64, limit: f64) -> Option<bool> {
    (!value.is_nan()).then_some(value >= limit)
}

/// `1.23 ms`.
pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.2} ms")
    }
}

/// `12,345/s`.
pub fn per_sec(v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + "/s"
}

/// `p50 1.00 / p99 2.00 / p99.9 3.00 ms`.
pub fn percentiles(l: &crate::stats::Latency) -> String {
    format!(
        "p50 {:.2} / p99 {:.2} / p99.9 {:.2} ms",
        l.p50_ms, l.p99_ms, l.p999_ms
    )
}

/// Prints the table to stdout.
pub fn print(title: &str, rows: &[Row]) {
    let width =
        |f: &dyn Fn(&Row) -> String| rows.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
    let w_name = width(&|r| r.name.clone());
    let w_value = width(&|r| r.value.clone());
    let w_target = width(&|r| r.target.clone().unwrap_or_default()).max(6);
    println!("\n{title}\n");
    println!(
        "{:<w_name$}  {:<w_value$}  {:<w_target$}  result",
        "measurement", "value (median)", "target"
    );
    println!("{}", "-".repeat(w_name + w_value + w_target + 12));
    for r in rows {
        let verdict = match r.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None if r.target.is_some() => "n/a",
            None => "",
        };
        let line = format!(
            "{}  {}  {}  {verdict}",
            pad(&r.name, w_name),
            pad(&r.value, w_value),
            pad(r.target.as_deref().unwrap_or(""), w_target),
        );
        println!("{}", line.trim_end());
    }
}

/// Pads to `width` characters (the table holds `≤`, `→`, `½`: not bytes).
fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// The machine the numbers come from.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib / 1024);
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": cpu_model,
        "mem_total_mib": mem_total_mib,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        "redis_server": redis_version(),
        // Others sharing the machine skew every figure; this says how busy it was.
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
    })
}

fn redis_version() -> Option<String> {
    let out = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit checked out in `repo`, read from `.git` directly (HEAD, then the loose ref or
/// `packed-refs`). In a worktree `.git` is a file naming its own git dir (`gitdir: …`), whose
/// `commondir` holds the shared refs. Uncommitted changes are not detected.
pub fn git_commit(repo: &Path) -> Option<String> {
    let dot_git = repo.join(".git");
    let git = match std::fs::read_to_string(&dot_git) {
        Ok(file) => repo.join(file.trim().strip_prefix("gitdir:")?.trim()),
        Err(_) => dot_git,
    };
    let common = match std::fs::read_to_string(git.join("commondir")) {
        Ok(dir) => git.join(dir.trim()),
        Err(_) => git.clone(),
    };
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    for dir in [&git, &common] {
        if let Ok(commit) = std::fs::read_to_string(dir.join(reference)) {
            return Some(commit.trim().to_string());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (commit, name) = l.split_once(' ')?;
        (name == reference).then(|| commit.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_commit_follows_a_worktree_to_the_shared_refs() -> std::io::Result<()> {
        let root = tempfile::tempdir()?;
        let main_git = root.path().join("main/.git");
        let own = main_git.join("worktrees/wt");
        std::fs::create_dir_all(main_git.join("refs/heads/rel"))?;
        std::fs::create_dir_all(&own)?;
        std::fs::write(main_git.join("refs/heads/rel/x"), "abc123\n")?;
        std::fs::write(own.join("HEAD"), "ref: refs/heads/rel/x\n")?;
        std::fs::write(own.join("commondir"), "../..\n")?;
        let wt = root.path().join("wt");
        std::fs::create_dir_all(&wt)?;
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", own.display()))?;
        assert_eq!(git_commit(&wt).as_deref(), Some("abc123"));
        assert_eq!(git_commit(&root.path().join("main")), None, "no HEAD there");
        Ok(())
    }
}
