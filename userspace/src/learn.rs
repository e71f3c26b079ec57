//! Learn mode: the tightest profile that would have allowed everything a workload did,
//! from the records of a learning run (or an events file), and an OCI seccomp profile
//! of every syscall it used.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use serde_json::{Value, json};

/// What a learning run saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Flows by (destination as written in the profile, protocol) → ports, count,
    /// first and last time.
    pub flows: BTreeMap<(String, String), FlowSeen>,
    /// Escape-relevant syscalls the workload used.
    pub escape_syscalls: BTreeSet<String>,
    /// uids programs ran as.
    pub uids: BTreeSet<u32>,
    /// Binds to non-loopback addresses were seen.
    pub wide_binds: bool,
    /// Raw or packet sockets were created.
    pub raw_sockets: bool,
}

#[derive(Debug, Default, Clone)]
pub struct FlowSeen {
    pub ports: BTreeSet<u16>,
    pub count: u64,
    pub first: String,
    pub last: String,
}

/// Folds JSON records (as the sinks write them) into what the profile must allow.
/// Destinations the workload resolved itself (DNS answers it received) are written as
/// the name; others as the address.
pub fn observe(records: &[Value]) -> Observed {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for r in records.iter().filter(|r| r["kind"] == "dns") {
        if let (Some(name), Some(answers)) = (r["name"].as_str(), r["answers"].as_array()) {
            for a in answers {
                if let Some(addr) = a["addr"].as_str() {
                    names.insert(addr.to_owned(), name.to_owned());
                }
            }
        }
    }
    let mut o = Observed::default();
    for r in records {
        match r["kind"].as_str().unwrap_or("") {
            "connect" | "sendmsg" | "packet" => {
                let dst = r["dst"].as_str().unwrap_or("").to_owned();
                let to = names.get(&dst).cloned().unwrap_or(dst);
                let proto = match r["protocol"].as_str().unwrap_or("any") {
                    "tcp" => "tcp",
                    "udp" | "udplite" => "udp",
                    "icmp" | "icmpv6" => "icmp",
                    _ => "any",
                };
                let seen = o.flows.entry((to, proto.to_owned())).or_default();
                if proto != "icmp"
                    && let Some(port) = r["port"].as_u64()
                {
                    seen.ports.insert(port as u16);
                }
                seen.count += r["count"].as_u64().unwrap_or(1);
                let time = r["time"].as_str().unwrap_or("").to_owned();
                if seen.first.is_empty() {
                    seen.first = time.clone();
                }
                seen.last = time;
            }
            "syscall" => {
                if let Some(s) = r["syscall"].as_str() {
                    o.escape_syscalls.insert(s.to_owned());
                }
            }
            "bind" => o.wide_binds = true,
            "deviation" if r["deviation"] == "raw_socket" => o.raw_sockets = true,
            "deviation" if r["deviation"] == "uid" => {
                if let Some(uid) = r["uid"].as_u64() {
                    o.uids.insert(uid as u32);
                }
            }
            _ => {}
        }
    }
    o
}

/// The profile as YAML, every rule commented with how often and when it was seen.
pub fn profile_yaml(name: &str, origin: &str, o: &Observed) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "# Learned by cgwarden from {origin}.");
    let _ = writeln!(
        y,
        "# Review it, then roll it out in audit mode before enforcing."
    );
    let _ = writeln!(y, "name: {name}");
    y.push_str("mode: enforce\n");
    y.push_str("egress:\n  default: deny\n");
    if o.flows.is_empty() {
        y.push_str("  allow: []\n");
    } else {
        y.push_str("  allow:\n");
        for ((to, proto), seen) in &o.flows {
            let _ = writeln!(
                y,
                "    # {} flow(s), first {}, last {}",
                seen.count, seen.first, seen.last
            );
            let quoted = if to.contains(':') || to.starts_with('*') {
                format!("\"{to}\"")
            } else {
                to.clone()
            };
            let _ = writeln!(y, "    - to: {quoted}");
            if !seen.ports.is_empty() {
                let ports: Vec<String> = seen.ports.iter().map(u16::to_string).collect();
                let _ = writeln!(y, "      ports: [{}]", ports.join(", "));
            }
            let _ = writeln!(y, "      protocol: {proto}");
        }
    }
    y.push_str("runtime:\n");
    match (o.uids.len(), o.uids.iter().next()) {
        (1, Some(uid)) => {
            let _ = writeln!(y, "  user: {uid}   # every program ran as this uid");
        }
        _ => y.push_str("  # programs ran as several uids, or none was seen: no `user` line\n"),
    }
    if o.wide_binds {
        y.push_str("  binds: any   # it bound non-loopback addresses\n");
    } else {
        y.push_str("  binds: loopback   # every bind was to loopback (or port 0)\n");
    }
    if o.raw_sockets {
        y.push_str("  raw_sockets: allow   # it created raw or packet sockets\n");
    } else {
        y.push_str("  raw_sockets: deny\n");
    }
    y.push_str("syscalls:\n");
    if o.escape_syscalls.is_empty() {
        y.push_str("  # it used no escape-relevant syscall: the whole set is killed\n");
        y.push_str("  - set: escape\n    action: kill\n");
    } else {
        let used: Vec<&str> = o.escape_syscalls.iter().map(String::as_str).collect();
        let _ = writeln!(
            y,
            "  # escape-relevant syscalls it used: reported, not killed"
        );
        let _ = writeln!(y, "  - names: [{}]\n    action: report", used.join(", "));
        let _ = writeln!(y, "  # the rest of the escape set");
        let _ = writeln!(
            y,
            "  - set: escape\n    except: [{}]\n    action: kill",
            used.join(", ")
        );
    }
    y
}

/// Syscalls the container runtime itself makes after it installs the seccomp filter
/// (runc: exec of the entry point and the few calls around it).
const RUNTIME_BASELINE: &[&str] = &[
    "execve",
    "execveat",
    "close",
    "close_range",
    "fcntl",
    "fstat",
    "newfstatat",
    "prctl",
    "capget",
    "capset",
    "setgroups",
    "setresuid",
    "setresgid",
    "setuid",
    "setgid",
    "chdir",
    "getcwd",
    "futex",
    "write",
    "exit",
    "exit_group",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "getpid",
    "getppid",
    "nanosleep",
    "epoll_pwait",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "arch_prctl",
    "set_tid_address",
    "fstatfs",
    "statfs",
    "openat",
    "read",
    "readlinkat",
    "getdents64",
    "lseek",
    "dup3",
    "fchdir",
    "umask",
    "getuid",
    "getgid",
    "geteuid",
    "getegid",
];

/// An OCI seccomp profile allowing exactly the syscalls used (plus the runtime's own
/// baseline); everything else fails with EPERM.
pub fn seccomp(nrs: &[u32]) -> Value {
    let mut names: BTreeSet<String> = nrs
        .iter()
        .filter_map(|nr| syscalls::Sysno::new(*nr as usize))
        .map(|s| s.name().to_owned())
        .collect();
    names.extend(RUNTIME_BASELINE.iter().map(|s| (*s).to_owned()));
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": names, "action": "SCMP_ACT_ALLOW" }],
    })
}

/// The profile a learning run applies: audit everything, report every flow and DNS
/// answer, report escape-relevant syscalls, record every syscall.
pub fn learning_profile(name: &str) -> Result<crate::policy::Profile, crate::policy::PolicyError> {
    let text = format!(
        "name: {name}\nmode: audit\negress:\n  default: deny\n  report: all\n  dns:\n    report: true\nruntime:\n  user: 4294967294\n  binds: loopback\n  raw_sockets: deny\nsyscalls:\n  - set: escape\n    action: report\n"
    );
    let mut profile = crate::policy::parse_str(&text, std::path::Path::new("(learning profile)"))?;
    profile.learn = true;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_replace_the_addresses_the_workload_resolved() {
        let records = vec![
            json!({"kind":"dns","name":"api.test","answers":[{"addr":"127.0.0.21","ttl":60}]}),
            json!({"kind":"connect","dst":"127.0.0.21","port":443,"protocol":"tcp","count":2,"time":"t1"}),
            json!({"kind":"connect","dst":"127.0.0.21","port":8443,"protocol":"tcp","count":1,"time":"t2"}),
            json!({"kind":"sendmsg","dst":"127.53.0.1","port":53,"protocol":"udp","count":1,"time":"t0"}),
            json!({"kind":"syscall","syscall":"unshare"}),
            json!({"kind":"deviation","deviation":"uid","uid":1000}),
        ];
        let o = observe(&records);
        let yaml = profile_yaml("learned", "a test", &o);
        assert!(
            yaml.contains("- to: api.test\n      ports: [443, 8443]\n      protocol: tcp"),
            "{yaml}"
        );
        assert!(
            yaml.contains("- to: 127.53.0.1\n      ports: [53]\n      protocol: udp"),
            "{yaml}"
        );
        assert!(yaml.contains("user: 1000"), "{yaml}");
        assert!(
            yaml.contains("names: [unshare]\n    action: report"),
            "{yaml}"
        );
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("learned.yaml")).unwrap();
        assert_eq!(p.egress.rules.len(), 2);
        // The rest of the escape set is killed, without unshare.
        let rules = crate::policy::compile::compile_syscalls(1, &p.syscalls);
        let unshare = syscalls::Sysno::unshare.id() as u32;
        let mount = syscalls::Sysno::mount.id() as u32;
        let action = |nr: u32| {
            rules
                .iter()
                .find(|(k, _, _)| k.nr == nr)
                .map(|(_, r, _)| r.action)
        };
        assert_eq!(
            action(unshare),
            Some(cgwarden_common::syscall_action::REPORT)
        );
        assert_eq!(action(mount), Some(cgwarden_common::syscall_action::KILL));
    }

    #[test]
    fn seccomp_lists_used_syscalls_and_the_runtime_baseline() {
        let getpid = syscalls::Sysno::getpid.id() as u32;
        let v = seccomp(&[getpid, 0]);
        let names = v["syscalls"][0]["names"].as_array().unwrap();
        assert!(names.iter().any(|n| n == "read"));
        assert!(names.iter().any(|n| n == "execve"));
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    }
}
