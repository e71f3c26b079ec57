//! Cleaning up after a run that was killed before its guards ran: the ledger in which
//! the bench notes every process it starts and every audit setting it changes, and
//! undoing what the ledgers of dead runs list.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

use super::peers::getppid_rule;
use crate::bench::util::{dead_pid, dir_entries, remove_cgroup, signal, stat_fields, which};

/// What the bench started and changed, for the next run to undo if this one is killed
/// before its guards run: `child PID STARTTIME EXE`, `audit-rule ARGS`,
/// `audit-enabled V`, `audit-backlog V`. Removed when dropped.
pub(super) struct Ledger {
    path: PathBuf,
}

impl Ledger {
    pub(super) fn create(dir: &Path, pid: u32) -> anyhow::Result<Self> {
        let path = dir.join(format!("syscalls-{pid}.ledger"));
        std::fs::write(&path, "").with_context(|| format!("creating {}", path.display()))?;
        let l = Self { path };
        l.note(&format!("audit-rule {}", getppid_rule("-a").join(" ")));
        Ok(l)
    }

    pub(super) fn note(&self, line: &str) {
        let r = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = r {
            eprintln!(
                "bench syscalls: could not write {}: {e}",
                self.path.display()
            );
        }
    }

    pub(super) fn child(&self, pid: u32, exe: &Path) {
        let start = start_time(pid).unwrap_or_default();
        self.note(&format!("child {pid} {start} {}", exe.display()));
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process exists and is not a zombie (orphans may stay unreaped here).
pub(super) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_fields(&stat)?.first().map(|s| (*s).to_owned()))
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Field 22 of /proc/PID/stat: when the process started (identifies it across pid reuse).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.get(19).map(|s| (*s).to_owned())
}

/// Undoes what earlier runs killed before their guards ran left behind: processes and
/// audit settings listed in their ledgers, their cgroups and scratch directories.
pub(super) fn remove_stale(bench_dir: &Path, cgroup2: &Path) {
    for (name, path) in dir_entries(bench_dir) {
        if let Some(pid) = name.strip_prefix("tmp-syscalls-")
            && dead_pid(pid)
        {
            eprintln!("bench syscalls: removing stale {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
        if let Some(pid) = name
            .strip_prefix("syscalls-")
            .and_then(|r| r.strip_suffix(".ledger"))
            && dead_pid(pid)
        {
            eprintln!("bench syscalls: undoing what run {pid} left");
            undo_ledger(&path);
            let _ = std::fs::remove_file(&path);
            let cg = cgroup2.join(format!("cgwarden-bench-{pid}-syscalls"));
            if cg.exists() {
                remove_cgroup(&cg);
            }
        }
    }
}

fn undo_ledger(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let auditctl = which("auditctl");
    let ctl = |args: &[&str]| {
        if let Some(a) = &auditctl {
            let _ = Command::new(a)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    };
    let mut restore = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("child") => {
                let (Some(pid), Some(start), Some(exe)) =
                    (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let Ok(pid) = pid.parse::<u32>() else {
                    continue;
                };
                let same_exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|p| p == Path::new(exe));
                if same_exe && start_time(pid).as_deref() == Some(start) {
                    eprintln!("bench syscalls: stopping stale {exe} ({pid})");
                    signal("kill", pid, "KILL");
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while alive(pid) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            Some("audit-rule") => {
                let args: Vec<&str> = words.collect();
                if let Some(first) = args.first() {
                    let mut del = args.clone();
                    del[0] = if *first == "-a" || *first == "-A" {
                        "-d"
                    } else {
                        first
                    };
                    ctl(&del);
                }
            }
            Some("audit-enabled") => {
                if let Some(v) = words.next() {
                    restore.push(["-e".to_owned(), v.to_owned()]);
                }
            }
            Some("audit-backlog") => {
                if let Some(v) = words.next() {
                    restore.push(["-b".to_owned(), v.to_owned()]);
                }
            }
            _ => {}
        }
    }
    for args in restore {
        ctl(&[args[0].as_str(), args[1].as_str()]);
    }
}
