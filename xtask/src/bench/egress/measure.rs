//! What a run says and the checks that it measured what it meant to: connbench's result
//! line (its cgroup, and the probe refused or let through as the configuration wants)
//! and the agent's `installed …` line with its load time; and the load-time runs of
//! the 100,000-rule profile against a 1-rule one.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;

use super::{Config, PROBE};
use crate::bench::util::{cgwarden_exec, check_cgroup, output, result_line};

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

/// What the load-time runs measured (see [`load_times`]).
pub(super) struct LoadTimes {
    /// The agent's own `compiled and loaded in` of the big profile, per run.
    pub(super) agent_load_ms: Vec<f64>,
    /// The entries the big profile compiled to, as the last run logged them.
    pub(super) big_entries: Option<u64>,
    /// Wall time of `exec -- true` with the 1-rule profile, per run, in seconds.
    pub(super) wall_small: Vec<f64>,
    /// The same with the big profile.
    pub(super) wall_big: Vec<f64>,
    /// `cgwarden check` wall time, big profile minus 1-rule profile, per repetition.
    pub(super) check_diff: Vec<f64>,
}

/// The load-time runs, `reps` repetitions: `cgwarden exec -- true` with `big_profile`
/// and with `small_profile` (the big one first in even repetitions), then `cgwarden
/// check` of each.
pub(super) fn load_times(
    bin: &Path,
    true_bin: &Path,
    big_profile: &Path,
    small_profile: &Path,
    reps: usize,
) -> anyhow::Result<LoadTimes> {
    let mut wall_small = Vec::new();
    let mut wall_big = Vec::new();
    let mut check_diff = Vec::new();
    let mut agent_load_ms = Vec::new();
    let mut big_entries = None;
    for rep in 0..reps {
        for big in [rep % 2 == 0, rep % 2 != 0] {
            let policy = if big { big_profile } else { small_profile };
            std::thread::sleep(Duration::from_millis(100));
            let mut cmd = cgwarden_exec(bin, policy, None);
            cmd.env("RUST_LOG", "info").arg(true_bin);
            let t0 = Instant::now();
            let out = output(&mut cmd, "cgwarden exec -- true")?;
            let wall = t0.elapsed().as_secs_f64();
            if big {
                wall_big.push(wall);
                if let Some(inst) = installed_line(&out.stderr) {
                    agent_load_ms.push(inst.load_ms);
                    big_entries = Some(inst.entries);
                }
            } else {
                wall_small.push(wall);
            }
        }
        // What parsing and validating alone take: `cgwarden check`, same pair.
        let mut check = [0.0; 2];
        for (slot, policy) in [big_profile, small_profile].into_iter().enumerate() {
            let t0 = Instant::now();
            output(Command::new(bin).arg("check").arg(policy), "cgwarden check")?;
            check[slot] = t0.elapsed().as_secs_f64();
        }
        check_diff.push(check[0] - check[1]);
    }
    Ok(LoadTimes {
        agent_load_ms,
        big_entries,
        wall_small,
        wall_big,
        check_diff,
    })
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
