//! What a run says and the checks that it measured what it meant to: connbench's result
//! line (its cgroup, and the probe refused or let through as the configuration wants)
//! and the agent's `installed …` line with its load time.

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;

use super::{Config, PROBE};
use crate::bench::util::{check_cgroup, result_line};

#[derive(Clone, Copy)]
pub(super) struct Sample {
    pub(super) connect_ns: f64,
    pub(super) udp_pps: f64,
}

/// The agent's `installed …` log line, parsed.
pub(super) struct Installed {
    pub(super) entries: u64,
    pub(super) load_ms: f64,
}

/// The fields of connbench's JSON line that the bench reads.
#[derive(Deserialize)]
struct ClientLine {
    connect_ns: f64,
    udp_pps: f64,
    /// What the datagram to [`PROBE`] gave: `ok`, `EPERM`, `errno N`, `error`.
    probe: Option<String>,
    cgroup: Option<String>,
}

/// Parses connbench's JSON line and checks that it ran where, and under what, we meant.
pub(super) fn check_client(
    c: &Config,
    out: &std::process::Output,
    cgroup: Option<&str>,
) -> anyhow::Result<Sample> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: ClientLine = result_line(&stdout, "connect_ns")
        .with_context(|| format!("({}) no result line from connbench in:\n{stdout}", c.key))?
        .with_context(|| format!("({})", c.key))?;
    let sample = Sample {
        connect_ns: line.connect_ns,
        udp_pps: line.udp_pps,
    };
    let probe = line.probe.as_deref().unwrap_or("?");
    if probe != c.probe {
        bail!(
            "({}) {}: a datagram to {PROBE} gave `{probe}`, expected `{}`: the client did not \
             run under the rules this configuration is meant to measure",
            c.key,
            c.label,
            c.probe
        );
    }
    check_cgroup(line.cgroup.as_deref().unwrap_or("?"), cgroup)
        .map_err(|e| anyhow!("({}) {e}", c.key))?;
    Ok(sample)
}

/// `installed 1 profile(s): 100001 egress entries, compiled and loaded in 123.4 ms, …`
pub(super) fn installed_line(stderr: &[u8]) -> Option<Installed> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.contains("installed ") && l.contains("compiled and loaded in "))?;
    let entries = line
        .split(" egress entries")
        .next()?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()?;
    let load_ms = line
        .split("compiled and loaded in ")
        .nth(1)?
        .split(" ms")
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some(Installed { entries, load_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_installed_line() {
        let log = b"[2026 INFO  cgwarden::agent] installed 1 profile(s): 100001 egress entries, compiled and loaded in 123.4 ms, switched in 0.0 ms\n";
        let i = installed_line(log).expect("parsed");
        assert_eq!(i.entries, 100_001);
        assert!((i.load_ms - 123.4).abs() < 1e-9);
    }
}
