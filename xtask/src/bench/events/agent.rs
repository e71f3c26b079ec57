//! The agent under test: `cgwarden run` started by the bench with its own control
//! socket, bpffs state directory and metrics port, waited for until it is enforcing,
//! scraped, stopped, and its pins removed (also when the bench fails).

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{Env, measure::Start};
use crate::bench::util::{forward_lines, stop_child};

/// A `cgwarden run` started by the bench. Dropping it kills it (if it still runs) and
/// removes its pins with `cgwarden uninstall`.
pub(super) struct Agent<'a> {
    env: &'a Env<'a>,
    child: Child,
    pub(super) start: Start,
    pub(super) metrics: Option<String>,
    log: mpsc::Receiver<(Instant, String)>,
    stopped: bool,
}

impl<'a> Agent<'a> {
    /// Starts the agent and waits until it says it is enforcing.
    pub(super) fn start(env: &'a Env<'a>, events: &Path) -> anyhow::Result<Self> {
        let _ = std::fs::remove_file(&env.control);
        let spawned = Instant::now();
        let mut child = Command::new(env.bin)
            .env("RUST_LOG", "info")
            .arg("run")
            .arg("--policy")
            .arg(&env.policy)
            .arg("--events")
            .arg(events)
            .arg("--control")
            .arg(&env.control)
            .arg("--state-dir")
            .arg(&env.state_dir)
            .arg("--metrics")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting cgwarden run")?;
        let (tx, log) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            forward_lines(stderr, tx, |line| (Instant::now(), line));
        }
        // The guard exists from here on: any error below kills and uninstalls.
        let mut agent = Self {
            env,
            child,
            start: Start {
                log_ms: f64::NAN,
                wall_ms: f64::NAN,
            },
            metrics: None,
            log,
            stopped: false,
        };
        let mut seen = String::new();
        loop {
            match agent.log.recv_timeout(Duration::from_secs(30)) {
                Ok((at, line)) => {
                    if line.contains("cgwarden is enforcing (") {
                        agent.start = Start {
                            log_ms: enforcing_ms(&line).with_context(|| {
                                format!("no `in N ms` in the agent's line: {line}")
                            })?,
                            wall_ms: at.duration_since(spawned).as_secs_f64() * 1e3,
                        };
                        agent.metrics = line
                            .split("metrics on http://")
                            .nth(1)
                            .and_then(|r| r.split('/').next())
                            .map(str::to_owned);
                        if !seen.contains("gets profile `storm`") {
                            bail!(
                                "the agent did not apply the profile to {} before enforcing:\n{seen}",
                                env.cgroup.relative()
                            );
                        }
                        return Ok(agent);
                    }
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => bail!("cgwarden run did not start enforcing:\n{seen}"),
            }
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Scrapes one value from the agent's metrics endpoint (loopback).
    pub(super) fn metric(&self, name: &str) -> Option<u64> {
        scrape(self.metrics.as_deref()?, name)
    }
}

/// One value from an agent's metrics endpoint at `addr` (loopback).
pub(super) fn scrape(addr: &str, name: &str) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    })
}

impl Agent<'_> {
    /// SIGTERM, wait (SIGKILL after 10 s), then remove the pins.
    pub(super) fn stop(&mut self) -> anyhow::Result<()> {
        self.stopped = true;
        // Our own child, not yet reaped: the pid cannot have been reused.
        let status = stop_child(
            &self.env.kill,
            &mut self.child,
            "TERM",
            Duration::from_secs(10),
            Duration::from_millis(10),
        )
        .context("waiting for the agent")?;
        self.uninstall()?;
        match status {
            // Killed by the SIGTERM itself: it came before the agent's handler was in
            // place (it installs it only after logging that it is enforcing).
            Some(s) if s.success() || s.signal() == Some(15) => Ok(()),
            Some(s) => {
                let log: Vec<String> = self.log.try_iter().map(|(_, l)| l).collect();
                bail!("the agent exited with {s}:\n{}", log.join("\n"))
            }
            None => bail!("the agent did not stop within 10 s of SIGTERM"),
        }
    }

    fn uninstall(&self) -> anyhow::Result<()> {
        let out = Command::new(self.env.bin)
            .arg("uninstall")
            .arg("--state-dir")
            .arg(&self.env.state_dir)
            .output()
            .context("running cgwarden uninstall")?;
        if !out.status.success() {
            bail!(
                "cgwarden uninstall --state-dir {} failed: {}",
                self.env.state_dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if let Err(e) = self.uninstall() {
                eprintln!("bench events: {e:#}");
            }
        }
    }
}

/// `cgwarden is enforcing (pinned in DIR in 94 ms); …` → 94.
fn enforcing_ms(line: &str) -> Option<f64> {
    let head = line.split("cgwarden is enforcing (").nth(1)?;
    head.split(" ms)").next()?.rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_enforcing_line() {
        let l = "[2026-11-24T20:25:30.986Z INFO  cgwarden::cli::agent] cgwarden is enforcing \
                 (pinned in /sys/fs/bpf/x in 94 ms); cgroup2 at /sys/fs/cgroup/unified; metrics \
                 on http://127.0.0.1:34171/metrics";
        assert_eq!(enforcing_ms(l), Some(94.0));
    }
}
