//! Reading processes from /proc (the root is a parameter so the parsing is tested on a
//! temporary directory).

use std::path::Path;

/// What the agent needs to know of a process that predates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// The executable, or empty when /proc no longer shows it.
    pub exe: String,
}

/// Reads `<proc>/<pid>/{stat,exe}`; `None` when the process is gone.
pub fn process(proc_root: &Path, pid: u32) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may contain spaces and parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let ppid = stat
        .get(close + 2..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let exe = std::fs::read_link(dir.join("exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Some(Process {
        pid,
        ppid,
        comm,
        exe,
    })
}

/// The real uid of a process, from `<proc>/<pid>/status`.
pub fn uid(proc_root: &Path, pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The cgroup v2 path of a process (relative to the cgroup2 root), from the `0::` line
/// of `<proc>/<pid>/cgroup`.
pub fn cgroup_path(proc_root: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Every process in a cgroup and the cgroups below it.
pub fn pids_below(cgroup: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![cgroup.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// A container runtime's set-up process (runc's `runc:[2:INIT]`, crun), which joins the
/// container's cgroup and namespaces before it executes the container's program.
pub fn is_runtime_init(p: &Process) -> bool {
    // runc re-executes itself (`runc init`), named `runc` until it renames itself.
    let exe = p.exe.rsplit('/').next().unwrap_or("");
    p.comm.starts_with("runc") || p.comm.starts_with("crun") || exe == "runc" || exe == "crun"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("42");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("stat"), "42 (a (b) c) S 7 42 42 0 -1").unwrap();
        let proc = process(dir.path(), 42).unwrap();
        assert_eq!((proc.comm.as_str(), proc.ppid), ("a (b) c", 7));
        assert!(process(dir.path(), 43).is_none());
        let named = |comm: &str, exe: &str| Process {
            pid: 1,
            ppid: 0,
            comm: comm.to_owned(),
            exe: exe.to_owned(),
        };
        assert!(is_runtime_init(&named("runc:[2:INIT]", "/usr/sbin/runc")));
        assert!(is_runtime_init(&named("runc", "/usr/sbin/runc")));
        assert!(!is_runtime_init(&named("nginx", "/usr/sbin/nginx")));
    }

    #[test]
    fn reads_uid_and_cgroup_v2_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("7");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(
            p.join("status"),
            "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\n",
        )
        .unwrap();
        std::fs::write(
            p.join("cgroup"),
            "12:pids:/x\n1:name=systemd:/user.slice\n0::/cgwarden-test/app\n",
        )
        .unwrap();
        assert_eq!(uid(dir.path(), 7), Some(1000));
        assert_eq!(
            cgroup_path(dir.path(), 7).as_deref(),
            Some("/cgwarden-test/app")
        );
        assert_eq!(uid(dir.path(), 8), None);
    }
}
