//! `cgwarden report`: what an events file says, per container: egress denials and
//! audited flows, syscall attempts with the chain of processes behind them, writes
//! under /proc/sys, deviations from the hardened runtime profile (uid, raw sockets,
//! devices, writes under read-only paths), DNS answers beyond the cap, and records
//! lost.

use std::{collections::BTreeMap, fmt::Write as _, io::BufRead};

use serde::Serialize;
use serde_json::Value;

/// Everything one cgroup (container) did that the profile had something to say about.
#[derive(Debug, Default, Serialize)]
pub struct ContainerReport {
    pub cgroup: String,
    pub profiles: Vec<String>,
    /// `verdict dst:port/proto` → occurrences.
    pub flows: BTreeMap<String, u64>,
    pub syscalls: Vec<SyscallLine>,
    pub sysctl_writes: Vec<String>,
    /// `verdict what by process` → occurrences.
    pub deviations: BTreeMap<String, u64>,
    pub dns_capped: Vec<String>,
}

/// One syscall attempt.
#[derive(Debug, Serialize)]
pub struct SyscallLine {
    pub time: String,
    pub verdict: String,
    pub syscall: String,
    pub path: Option<String>,
    pub args: Value,
    /// The process, then its parents: `pid exe`.
    pub chain: Vec<String>,
}

/// The whole report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub containers: Vec<ContainerReport>,
    pub lost: u64,
    /// Lines that were not events.
    pub unreadable_lines: u64,
}

/// Reads JSON-lines events and groups them by cgroup.
pub fn build(input: impl BufRead) -> std::io::Result<Report> {
    let mut by_cgroup: BTreeMap<String, ContainerReport> = BTreeMap::new();
    let mut report = Report::default();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(e) = serde_json::from_str::<Value>(&line) else {
            report.unreadable_lines += 1;
            continue;
        };
        let str_of = |k: &str| e[k].as_str().unwrap_or("").to_owned();
        let kind = str_of("kind");
        if kind == "lost" {
            report.lost += e["count"].as_u64().unwrap_or(0);
            continue;
        }
        let cgroup = e["cgroup"]
            .as_str()
            .unwrap_or("(unknown cgroup)")
            .to_owned();
        let entry = by_cgroup
            .entry(cgroup.clone())
            .or_insert_with(|| ContainerReport {
                cgroup,
                ..Default::default()
            });
        if let Some(p) = e["profile"].as_str()
            && !entry.profiles.iter().any(|x| x == p)
        {
            entry.profiles.push(p.to_owned());
        }
        match kind.as_str() {
            "connect" | "sendmsg" | "packet" => {
                let key = format!(
                    "{} {}:{}/{}",
                    str_of("verdict"),
                    str_of("dst"),
                    e["port"],
                    str_of("protocol")
                );
                *entry.flows.entry(key).or_default() += e["count"].as_u64().unwrap_or(1);
            }
            "syscall" => {
                let mut chain = vec![format!("{} {}", e["pid"], str_of("exe"))];
                if let Some(ancestors) = e["ancestry"].as_array() {
                    chain.extend(
                        ancestors
                            .iter()
                            .map(|a| format!("{} {}", a["pid"], a["exe"].as_str().unwrap_or(""))),
                    );
                }
                entry.syscalls.push(SyscallLine {
                    time: str_of("time"),
                    verdict: str_of("verdict"),
                    syscall: str_of("syscall"),
                    path: e["path"].as_str().map(str::to_owned),
                    args: e["args"].clone(),
                    chain,
                });
            }
            "sysctl" => entry.sysctl_writes.push(format!(
                "{} {} = {:?} by {} (pid {})",
                str_of("verdict"),
                str_of("name"),
                str_of("value"),
                str_of("process"),
                e["pid"]
            )),
            "deviation" => {
                let key = format!(
                    "{} {}: {} by {}",
                    str_of("verdict"),
                    str_of("deviation"),
                    str_of("detail"),
                    str_of("process")
                );
                *entry.deviations.entry(key).or_default() += 1;
            }
            "dns" if e["capped"].as_u64().unwrap_or(0) > 0 => entry.dns_capped.push(format!(
                "{}: {} addresses over the cap",
                str_of("name"),
                e["capped"]
            )),
            _ => {}
        }
    }
    report.containers = by_cgroup.into_values().collect();
    Ok(report)
}

/// The report as a person reads it.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if report.containers.is_empty() {
        out.push_str("no events\n");
    }
    for c in &report.containers {
        let _ = writeln!(out, "{} (profile {})", c.cgroup, c.profiles.join(", "));
        if !c.flows.is_empty() {
            out.push_str("  egress:\n");
            for (flow, n) in &c.flows {
                let _ = writeln!(out, "    {flow}  ×{n}");
            }
        }
        if !c.syscalls.is_empty() {
            out.push_str("  syscalls:\n");
            for s in &c.syscalls {
                let path = s
                    .path
                    .as_deref()
                    .map(|p| format!(" {p}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {} {} {}{} {}",
                    s.time, s.verdict, s.syscall, path, s.args
                );
                let _ = writeln!(out, "      by {}", s.chain.join(" ← "));
            }
        }
        for w in &c.sysctl_writes {
            let _ = writeln!(out, "  sysctl: {w}");
        }
        if !c.deviations.is_empty() {
            out.push_str("  deviations:\n");
            for (d, n) in &c.deviations {
                let _ = writeln!(out, "    {d}  ×{n}");
            }
        }
        for d in &c.dns_capped {
            let _ = writeln!(out, "  dns: {d}");
        }
    }
    if report.lost > 0 {
        let _ = writeln!(out, "{} events were lost (ring buffer full)", report.lost);
    }
    if report.unreadable_lines > 0 {
        let _ = writeln!(out, "{} lines were not events", report.unreadable_lines);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_container_with_chains() {
        let input = r#"{"kind":"connect","verdict":"deny","dst":"10.0.0.1","port":443,"protocol":"tcp","count":3,"cgroup":"/docker/a","profile":"web"}
{"kind":"connect","verdict":"deny","dst":"10.0.0.1","port":443,"protocol":"tcp","count":2,"cgroup":"/docker/a","profile":"web"}
{"kind":"syscall","verdict":"deny","syscall":"unshare","pid":9,"exe":"/usr/bin/unshare","ancestry":[{"pid":8,"exe":"/bin/sh"}],"args":{"flags":["CLONE_NEWUSER"]},"cgroup":"/docker/b","profile":"web","time":"t"}
{"kind":"deviation","deviation":"read_only","verdict":"report","detail":"openat writes under a read-only path: /etc/x (EROFS)","process":"sh","cgroup":"/docker/b","profile":"web"}
{"kind":"deviation","deviation":"read_only","verdict":"report","detail":"openat writes under a read-only path: /etc/x (EROFS)","process":"sh","cgroup":"/docker/b","profile":"web"}
{"kind":"lost","count":4}
not json
"#;
        let r = build(input.as_bytes()).unwrap();
        assert_eq!(r.containers.len(), 2);
        assert_eq!(r.containers[0].flows["deny 10.0.0.1:443/tcp"], 5);
        assert_eq!(
            r.containers[1].syscalls[0].chain,
            ["9 /usr/bin/unshare", "8 /bin/sh"]
        );
        assert_eq!((r.lost, r.unreadable_lines), (4, 1));
        let text = render(&r);
        assert!(text.contains("by 9 /usr/bin/unshare ← 8 /bin/sh"), "{text}");
        assert!(text.contains("deny 10.0.0.1:443/tcp  ×5"), "{text}");
        assert!(
            text.contains(
                "report read_only: openat writes under a read-only path: /etc/x (EROFS) by sh  ×2"
            ),
            "{text}"
        );
    }
}
