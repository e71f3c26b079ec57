//! The peers cgwarden is compared with, bpftrace and auditd: installing them, their
//! versions, starting and stopping them, the audit rules of configuration (g) and the
//! `never,task` rule that keeps every other configuration off the audit slow path, and
//! reading what they recorded.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{
    AUDIT_KEY, GETPPID_NR,
    cleanup::{Ledger, alive},
};
use crate::bench::util::{forward_lines, run_quiet, signal, stop_child, wait_for, which};

/// Installs Debian packages; failures become notes (their configurations are skipped).
pub(super) fn install(packages: &[&str], notes: &mut Vec<String>) {
    eprintln!("bench syscalls: installing {}", packages.join(" "));
    let Some(apt) = which("apt-get") else {
        notes.push(format!("{} missing and no apt-get", packages.join(", ")));
        return;
    };
    let mut cmd = Command::new(&apt);
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q"])
        .args(packages);
    if run_quiet(&mut cmd, "apt-get install").is_err() {
        let _ = run_quiet(Command::new(&apt).args(["update", "-q"]), "apt-get update");
        if let Err(e) = run_quiet(&mut cmd, "apt-get install") {
            notes.push(format!("could not install {}: {e:#}", packages.join(", ")));
        }
    }
}

pub(super) fn peer_versions(bpftrace: Option<&Path>) -> String {
    let mut parts = Vec::new();
    if let Some(bt) = bpftrace
        && let Ok(out) = Command::new(bt).arg("--version").output()
    {
        parts.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    if let Ok(out) = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "auditd"])
        .output()
        && out.status.success()
    {
        parts.push(format!(
            "auditd {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    if parts.is_empty() {
        "no peers".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The count bpftrace printed for `@[<cgroup id>]`.
pub(super) fn bpftrace_count(printed: &str, cgroup_id: u64) -> u64 {
    let key = format!("@[{cgroup_id}]:");
    printed
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&key))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// A bpftrace process of the bench: stopped (SIGINT, then SIGKILL) when dropped.
pub(super) struct Bpftrace {
    child: Child,
    lines: mpsc::Receiver<String>,
    printed: String,
}

impl Bpftrace {
    pub(super) fn start(path: &Path, script: &str, ledger: &Ledger) -> anyhow::Result<Self> {
        let mut child = Command::new(path)
            .args(["-e", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting bpftrace")?;
        ledger.child(child.id(), path);
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            forward_lines(out, tx.clone(), |l| l);
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, tx, |l| l);
        }
        let mut bt = Self {
            child,
            lines,
            printed: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match bt.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let attached = l.starts_with("Attaching ");
                    bt.printed.push_str(&l);
                    bt.printed.push('\n');
                    if attached {
                        return Ok(bt);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = bt.child.try_wait() {
                        bail!(
                            "bpftrace exited ({status}) before attaching:\n{}",
                            bt.printed
                        );
                    }
                    if Instant::now() > deadline {
                        bail!("bpftrace did not attach within 60 s:\n{}", bt.printed);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = bt.child.wait().context("waiting for bpftrace")?;
                    bail!(
                        "bpftrace exited ({status}) before attaching:\n{}",
                        bt.printed
                    );
                }
            }
        }
    }

    /// SIGINT (bpftrace prints its maps and exits); everything it printed.
    pub(super) fn stop(mut self) -> anyhow::Result<String> {
        signal("kill", self.child.id(), "INT");
        if wait_for(
            &mut self.child,
            Duration::from_secs(15),
            Duration::from_millis(20),
        )?
        .is_none()
        {
            bail!("bpftrace did not stop within 15 s of SIGINT");
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.printed.push_str(&l);
            self.printed.push('\n');
        }
        Ok(std::mem::take(&mut self.printed))
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The audit side: the `never,task` rule, the auditd daemon of the bench, and its log.
pub(super) struct Audit {
    auditctl: Option<PathBuf>,
    /// The bench added `never,task` (and so removes it again).
    never_task: bool,
    pub(super) daemon: Option<Child>,
    log: Option<PathBuf>,
    previous_enabled: Option<String>,
    previous_backlog: Option<String>,
    pub(super) note: String,
}

impl Audit {
    pub(super) fn none(note: &str) -> Self {
        Self {
            auditctl: None,
            never_task: false,
            daemon: None,
            log: None,
            previous_enabled: None,
            previous_backlog: None,
            note: note.to_owned(),
        }
    }

    /// Prepends `never,task`, then starts auditd (unless one runs already). Never
    /// fails: what did not work is in `note`, and (g) is skipped when unusable.
    pub(super) fn start(scratch: &Path, ledger: &Ledger) -> Self {
        let (Some(auditctl), Some(auditd)) = (which("auditctl"), which("auditd")) else {
            return Self::none("auditd not installed: (g) skipped");
        };
        let mut a = Self::none("");
        a.auditctl = Some(auditctl.clone());
        a.previous_enabled = a.status("enabled");
        a.previous_backlog = a.status("backlog_limit");
        if let Some(e) = &a.previous_enabled {
            ledger.note(&format!("audit-enabled {e}"));
        }
        if let Some(b) = &a.previous_backlog {
            ledger.note(&format!("audit-backlog {b}"));
        }
        match run_quiet(
            Command::new(&auditctl).args(["-A", "never,task"]),
            "auditctl -A never,task",
        ) {
            Ok(()) => {
                a.never_task = true;
                ledger.note("audit-rule -A never,task");
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if !msg.contains("exists") {
                    a.note = format!(
                        "`auditctl -A never,task` failed ({msg}): auditd not started, (g) skipped"
                    );
                    a.auditctl = None;
                    return a;
                }
                // Someone else's `never,task` is in place: keep it, never remove it.
            }
        }
        let running = a
            .status("pid")
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p != 0 && alive(p));
        if running {
            a.note = "an auditd of the machine was already running: used as it is, its log \
                      not checked; `auditctl -a never,task` in force except in (g)"
                .to_owned();
            return a;
        }
        match start_auditd(&auditd, scratch, ledger) {
            Ok((child, log)) => {
                a.daemon = Some(child);
                a.log = Some(log);
                let _ = run_quiet(Command::new(&auditctl).args(["-b", "8192"]), "auditctl -b");
                a.note = "auditd (Debian's auditd.conf, log in the scratch directory, backlog \
                          limit 8192) ran during the whole bench; `auditctl -a never,task` was \
                          prepended before it started and kept in force except in (g); all \
                          restored afterwards"
                    .to_owned();
            }
            Err(e) => {
                a.note = format!("could not start auditd ({e:#}): (g) skipped");
                a.auditctl = None;
            }
        }
        a
    }

    pub(super) fn usable(&self) -> bool {
        self.auditctl.is_some()
    }

    /// A field of `auditctl -s`.
    pub(super) fn status(&self, field: &str) -> Option<String> {
        let out = Command::new(self.auditctl.as_ref()?)
            .arg("-s")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == field).then(|| v.trim().to_owned())
        })
    }

    /// Puts (g)'s rule in place and lifts `never,task` until dropped.
    pub(super) fn watch(&self) -> anyhow::Result<Watch<'_>> {
        let auditctl = self.auditctl.as_ref().context("auditctl missing")?;
        let w = Watch { audit: self };
        if self.never_task {
            run_quiet(
                Command::new(auditctl).args(["-d", "never,task"]),
                "auditctl -d never,task",
            )?;
        }
        run_quiet(
            Command::new(auditctl).args(getppid_rule("-a")),
            "auditctl -a (getppid)",
        )?;
        Ok(w)
    }

    /// getppid records of `pid` in the bench's audit log, once it stops growing or
    /// reaches `expected` (None when the log is not the bench's).
    pub(super) fn records(&self, pid: u32, expected: u64) -> Option<u64> {
        let log = self.log.as_ref()?;
        let needle = format!(" pid={pid} ");
        let syscall = format!(" syscall={GETPPID_NR} ");
        let count = || -> u64 {
            let Ok(f) = std::fs::File::open(log) else {
                return 0;
            };
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| {
                    l.starts_with("type=SYSCALL") && l.contains(&syscall) && l.contains(&needle)
                })
                .count() as u64
        };
        // auditd queues and writes asynchronously: wait until the count reaches what
        // was made or has not grown for a second (at most 10 s).
        let mut last = count();
        let mut still = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while last < expected && still < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            let now = count();
            if now == last {
                still += 1;
            } else {
                still = 0;
                last = now;
            }
        }
        Some(last)
    }
}

pub(super) fn getppid_rule(op: &str) -> Vec<String> {
    [
        op,
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "getppid",
        "-k",
        AUDIT_KEY,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// auditd in the foreground (`-n`), with Debian's auditd.conf but its log in `scratch`.
fn start_auditd(
    auditd: &Path,
    scratch: &Path,
    ledger: &Ledger,
) -> anyhow::Result<(Child, PathBuf)> {
    let dir = scratch.join("auditd");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))?;
    let log = dir.join("audit.log");
    let base = std::fs::read_to_string("/etc/audit/auditd.conf").unwrap_or_else(|_| {
        "log_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 8\n\
         max_log_file_action = ROTATE\npriority_boost = 4\n"
            .to_owned()
    });
    // The log lives in the scratch directory and goes with it: never rotated, so every
    // record of a run can be counted.
    let mut conf = String::new();
    for line in base.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if !matches!(key, "log_file" | "max_log_file_action") {
            conf.push_str(line);
            conf.push('\n');
        }
    }
    let _ = writeln!(conf, "log_file = {}", log.display());
    let _ = writeln!(conf, "max_log_file_action = IGNORE");
    let conf_path = dir.join("auditd.conf");
    std::fs::write(&conf_path, conf).with_context(|| format!("writing {}", conf_path.display()))?;
    std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o640))?;
    let out = std::fs::File::create(dir.join("auditd.out")).context("creating auditd.out")?;
    let err = out.try_clone().context("auditd.out")?;
    let mut child = Command::new(auditd)
        .arg("-n")
        .arg("-c")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("starting auditd")?;
    ledger.child(child.id(), auditd);
    let deadline = Instant::now() + Duration::from_secs(10);
    let me = child.id().to_string();
    loop {
        let out = Command::new("auditctl").arg("-s").output();
        if let Ok(out) = out
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == format!("pid {me}"))
        {
            return Ok((child, log));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(dir.join("auditd.out")).unwrap_or_default();
            bail!("auditd exited ({status}): {said}");
        }
        if Instant::now() > deadline {
            stop(&mut child, "TERM");
            bail!("auditd did not register within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Signals a child of ours (when it still runs) and waits up to 5 s; then SIGKILL.
fn stop(child: &mut Child, sig: &str) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let _ = stop_child(
        "kill",
        child,
        sig,
        Duration::from_secs(5),
        Duration::from_millis(20),
    );
}

impl Drop for Audit {
    fn drop(&mut self) {
        let Some(auditctl) = self.auditctl.clone() else {
            return;
        };
        let quiet = |args: &[String]| {
            let _ = Command::new(&auditctl)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&getppid_rule("-d"));
        if self.never_task {
            quiet(&["-d".to_owned(), "never,task".to_owned()]);
        }
        if let Some(mut child) = self.daemon.take() {
            stop(&mut child, "TERM");
        }
        if let Some(b) = &self.previous_backlog {
            quiet(&["-b".to_owned(), b.clone()]);
        }
        // auditd leaves `enabled 1` behind when it stops.
        if let Some(e) = &self.previous_enabled
            && (e == "0" || e == "1")
        {
            quiet(&["-e".to_owned(), e.clone()]);
        }
    }
}

/// (g)'s rule in place and `never,task` lifted; undone when dropped.
pub(super) struct Watch<'a> {
    audit: &'a Audit,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let Some(auditctl) = &self.audit.auditctl else {
            return;
        };
        let _ = Command::new(auditctl)
            .args(getppid_rule("-d"))
            .stderr(Stdio::null())
            .status();
        if self.audit.never_task {
            let _ = Command::new(auditctl)
                .args(["-A", "never,task"])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bpftrace_maps() {
        let printed = "Attaching 1 probe...\n\n\n@[1]: 12\n@[4242]: 100500\n";
        assert_eq!(bpftrace_count(printed, 4242), 100_500);
        assert_eq!(bpftrace_count(printed, 7), 0);
    }
}
