//! nftables, the peer of configuration (d): the table with its 100,000-element interval
//! set, loaded before and deleted after each of its runs; and `auditctl -a never,task`,
//! which keeps the processes the bench starts off the audit slow path.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context;

use super::address;
use crate::bench::util::{Cgroup, run_quiet, which};

/// An nftables table: an interval set of `CIDR . port range` with 127.0.0.1 and the
/// big profile's CIDRs, and an output chain dropping TCP/UDP from sockets of `cgroup`
/// to anything outside the set.
pub(super) fn write_nft(
    path: &Path,
    table: &str,
    cgroup2: &Path,
    cgroup: &Cgroup,
    elements: usize,
) -> anyhow::Result<()> {
    // nft resolves the path under /sys/fs/cgroup and matches on the inode (= cgroup id);
    // the level is the depth in the cgroup v2 hierarchy.
    let nft_path = match cgroup2.strip_prefix("/sys/fs/cgroup") {
        Ok(rest) if rest.as_os_str().is_empty() => cgroup.relative()[1..].to_owned(),
        Ok(rest) => format!("{}{}", rest.display(), cgroup.relative()),
        Err(_) => format!("../../..{}{}", cgroup2.display(), cgroup.relative()),
    };
    let level = cgroup.relative().matches('/').count();
    let mut s = String::with_capacity(28 * elements + 512);
    let _ = writeln!(s, "table inet {table} {{");
    let _ = writeln!(s, "  set allow {{");
    let _ = writeln!(s, "    type ipv4_addr . inet_service");
    let _ = writeln!(s, "    flags interval");
    let _ = write!(s, "    elements = {{ 127.0.0.1 . 0-65535");
    for i in 0..elements {
        let _ = write!(s, ",\n      {}/32 . 0-65535", address(i));
    }
    let _ = writeln!(s, " }}\n  }}");
    let _ = writeln!(s, "  chain out {{");
    let _ = writeln!(
        s,
        "    type filter hook output priority filter; policy accept;"
    );
    let _ = writeln!(
        s,
        "    socket cgroupv2 level {level} \"{nft_path}\" meta l4proto {{ tcp, udp }} ip daddr . th dport != @allow drop"
    );
    let _ = writeln!(s, "  }}\n}}");
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// A loaded nftables table; deleted when dropped.
pub(super) struct NftTable<'a> {
    nft: &'a Path,
    name: &'a str,
}

impl<'a> NftTable<'a> {
    pub(super) fn load(nft: &'a Path, file: &Path, name: &'a str) -> anyhow::Result<Self> {
        // Guard first: a failed `nft -f` is one transaction and leaves nothing, but a
        // delete of a missing table is harmless.
        let table = Self { nft, name };
        run_quiet(Command::new(nft).arg("-f").arg(file), "nft -f")?;
        Ok(table)
    }
}

impl Drop for NftTable<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.nft)
            .args(["delete", "table", "inet", self.name])
            .output();
    }
}

/// Keeps the processes the bench starts off the audit slow path (DESIGN.md): once
/// auditd has run, every new task pays for syscall auditing until `auditctl -a
/// never,task`. The rule is removed again when dropped.
pub(super) struct Audit {
    state: AuditState,
}

enum AuditState {
    NoAuditctl,
    Failed(String),
    Added(PathBuf),
}

impl Audit {
    pub(super) fn quiet_new_processes() -> Self {
        let state = match which("auditctl") {
            None => AuditState::NoAuditctl,
            Some(auditctl) => {
                match run_quiet(
                    Command::new(&auditctl).args(["-a", "never,task"]),
                    "auditctl -a never,task",
                ) {
                    Ok(()) => AuditState::Added(auditctl),
                    Err(e) => AuditState::Failed(format!("{e:#}")),
                }
            }
        };
        Self { state }
    }

    pub(super) fn note(&self) -> String {
        match &self.state {
            AuditState::NoAuditctl => {
                "auditctl not installed: audit slow path not addressed (no auditd here)".to_owned()
            }
            AuditState::Failed(e) => format!(
                "`auditctl -a never,task` failed ({e}); if auditd ever ran, every number \
                 carries the audit slow path"
            ),
            AuditState::Added(_) => {
                "ran `auditctl -a never,task` before measuring (removed afterwards)".to_owned()
            }
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if let AuditState::Added(auditctl) = &self.state {
            let _ = Command::new(auditctl).args(["-d", "never,task"]).output();
        }
    }
}
