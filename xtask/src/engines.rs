//! The container engines the integration tests run containers in: Docker Engine is
//! started here when it is not running, with no default bridge and no NAT
//! (`--bridge=none --iptables=false --ip6tables=false`), so nothing a test container
//! does can leave this machine; it is left running for later runs. Podman and
//! containerd (the one dockerd starts) need no daemon of their own.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// Docker's client of this machine's engine (another version may come first in PATH).
pub const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const LOG: &str = "/var/log/cgwarden-dockerd.log";

fn answers() -> bool {
    Command::new(DOCKER)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure dockerd answers; starts it when it does not.
pub fn dockerd() -> anyhow::Result<()> {
    if answers() {
        return Ok(());
    }
    eprintln!("xtask: starting dockerd (no default bridge, no NAT; log in {LOG})");
    let log = std::fs::File::create(LOG).with_context(|| format!("creating {LOG}"))?;
    // A session of its own: it outlives this command.
    let status = Command::new("setsid")
        .arg("--fork")
        .arg(DOCKERD)
        .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("could not start dockerd (is docker.io installed? `cargo xtask setup`)")?;
    if !status.success() {
        bail!("setsid --fork dockerd failed ({status})");
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if answers() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "dockerd did not answer within 60 s:\n{}",
        std::fs::read_to_string(LOG).unwrap_or_default()
    )
}
