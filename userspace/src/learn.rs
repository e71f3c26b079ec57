//! Learn mode: the tightest profile that would have allowed everything a workload did,
//! from the records of a learning run (or an events file), and an OCI seccomp profile
//! of every syscall it used. [`merge`] learns on top of an existing profile, [`check`]
//! says what a profile would deny, [`collapse`] decides when addresses become a CIDR.

pub mod check;
pub mod collapse;
pub mod merge;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::IpAddr,
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
    /// The addresses behind the destination (itself, or what its name resolved to),
    /// with how many flows went to each.
    pub addrs: BTreeMap<String, u64>,
}

impl FlowSeen {
    fn add(&mut self, other: &FlowSeen) {
        self.ports.extend(&other.ports);
        self.count += other.count;
        if self.first.is_empty() || (!other.first.is_empty() && other.first < self.first) {
            self.first.clone_from(&other.first);
        }
        if other.last > self.last {
            self.last.clone_from(&other.last);
        }
        for (a, c) in &other.addrs {
            *self.addrs.entry(a.clone()).or_default() += c;
        }
    }
}

/// One allow rule of a learned profile, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRule {
    /// As the profile writes it: a name, an address or a CIDR.
    pub to: String,
    pub ports: BTreeSet<u16>,
    pub protocol: String,
    /// Comment lines (without `#`).
    pub comments: Vec<String>,
}

impl LearnedRule {
    /// The rule as YAML list item lines, the `- ` at `indent` spaces.
    pub fn render(&self, indent: usize) -> String {
        let pad = " ".repeat(indent);
        let mut y = String::new();
        for c in &self.comments {
            let _ = writeln!(y, "{pad}# {c}");
        }
        let quoted = if self.to.contains(':') || self.to.starts_with('*') {
            format!("\"{}\"", self.to)
        } else {
            self.to.clone()
        };
        let _ = writeln!(y, "{pad}- to: {quoted}");
        if !self.ports.is_empty() {
            let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
            let _ = writeln!(y, "{pad}  ports: [{}]", ports.join(", "));
        }
        let _ = writeln!(y, "{pad}  protocol: {}", self.protocol);
        y
    }
}

/// The allow rules for `flows`: a name stays one rule however many addresses it had;
/// addresses seen without a name with the same protocol and ports collapse to a CIDR
/// where enough of them share a small prefix ([`collapse::collapse`]), otherwise each is
/// its own exact rule.
pub fn rules(flows: &BTreeMap<(String, String), FlowSeen>) -> Vec<LearnedRule> {
    let mut out = Vec::new();
    // (protocol, ports) → address → what was seen.
    let mut unnamed: BTreeMap<(String, BTreeSet<u16>), BTreeMap<IpAddr, FlowSeen>> =
        BTreeMap::new();
    for ((to, proto), seen) in flows {
        match to.parse::<IpAddr>() {
            Ok(addr) => {
                unnamed
                    .entry((proto.clone(), seen.ports.clone()))
                    .or_default()
                    .entry(addr)
                    .or_default()
                    .add(seen);
            }
            Err(_) => {
                let mut comments = vec![format!(
                    "{} flow(s), first {}, last {}",
                    seen.count, seen.first, seen.last
                )];
                if seen.addrs.len() > 1 {
                    comments.push(format!(
                        "{} addresses of this name: {}",
                        seen.addrs.len(),
                        counted(seen.addrs.iter().map(|(a, c)| (a.as_str(), *c)))
                    ));
                }
                out.push(LearnedRule {
                    to: to.clone(),
                    ports: seen.ports.clone(),
                    protocol: proto.clone(),
                    comments,
                });
            }
        }
    }
    for ((proto, ports), by_addr) in unnamed {
        let counts: Vec<(IpAddr, u64)> = by_addr.iter().map(|(a, s)| (*a, s.count)).collect();
        for c in collapse::collapse(&counts) {
            let comments = match &c {
                collapse::Collapsed::Exact(addr, _) => {
                    let s = &by_addr[addr];
                    vec![format!(
                        "{} flow(s), first {}, last {}",
                        s.count, s.first, s.last
                    )]
                }
                collapse::Collapsed::Net(net, members) => {
                    let mut all = FlowSeen::default();
                    for (a, _) in members {
                        all.add(&by_addr[a]);
                    }
                    let text: Vec<(String, u64)> =
                        members.iter().map(|(a, c)| (a.to_string(), *c)).collect();
                    vec![
                        format!(
                            "{} flow(s), first {}, last {}",
                            all.count, all.first, all.last
                        ),
                        format!(
                            "{} addresses seen without a name, collapsed to {net} (at least {} in one /{}): {}",
                            members.len(),
                            collapse::MIN_ADDRESSES,
                            if net.is_ipv4() {
                                collapse::V4_BUCKET
                            } else {
                                collapse::V6_BUCKET
                            },
                            counted(text.iter().map(|(a, c)| (a.as_str(), *c)))
                        ),
                    ]
                }
            };
            out.push(LearnedRule {
                to: c.to_text(),
                ports: ports.clone(),
                protocol: proto.clone(),
                comments,
            });
        }
    }
    out.sort_by(|a, b| (&a.to, &a.protocol).cmp(&(&b.to, &b.protocol)));
    out
}

/// `a ×3, b ×1`.
fn counted<'a>(items: impl Iterator<Item = (&'a str, u64)>) -> String {
    items
        .map(|(a, c)| format!("{a} ×{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Folds JSON records (as the sinks write them) into what the profile must allow.
/// Destinations the workload resolved itself (DNS answers it received) are written as
/// the name; others as the address.
pub fn observe(records: &[Value]) -> Observed {
    let names = resolved_names(records);
    let mut o = Observed::default();
    for r in records {
        match r["kind"].as_str().unwrap_or("") {
            "connect" | "sendmsg" | "packet" => {
                let dst = r["dst"].as_str().unwrap_or("").to_owned();
                let to = names.get(&dst).cloned().unwrap_or_else(|| dst.clone());
                let proto = check::learned_protocol(r["protocol"].as_str().unwrap_or("any"));
                let seen = o.flows.entry((to, proto.to_owned())).or_default();
                if proto != "icmp"
                    && let Some(port) = r["port"].as_u64()
                {
                    seen.ports.insert(port as u16);
                }
                let count = r["count"].as_u64().unwrap_or(1);
                seen.count += count;
                *seen.addrs.entry(dst).or_default() += count;
                let time = r["time"].as_str().unwrap_or("").to_owned();
                if seen.first.is_empty() || time < seen.first {
                    seen.first = time.clone();
                }
                if time > seen.last {
                    seen.last = time;
                }
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

/// Address → the name it answered, from the DNS answers among `records`.
pub fn resolved_names(records: &[Value]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for r in records.iter().filter(|r| r["kind"] == "dns") {
        if let (Some(name), Some(answers)) = (r["name"].as_str(), r["answers"].as_array()) {
            for a in answers {
                if let Some(addr) = a["addr"].as_str() {
                    names.insert(addr.to_owned(), name.to_owned());
                }
            }
        }
    }
    names
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
        for rule in rules(&o.flows) {
            y.push_str(&rule.render(4));
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
    fn a_name_stays_one_rule_and_unnamed_neighbours_collapse() {
        let mut records = vec![json!({"kind":"dns","name":"cdn.test","answers":[
            {"addr":"192.0.2.1","ttl":60},{"addr":"192.0.2.2","ttl":60},
            {"addr":"192.0.2.3","ttl":60},{"addr":"192.0.2.4","ttl":60}]})];
        for i in 1..=4 {
            records.push(json!({"kind":"connect","dst":format!("192.0.2.{i}"),"port":443,"protocol":"tcp","time":format!("t{i}")}));
        }
        for (i, n) in [(1, 2), (2, 1), (3, 1), (6, 1)] {
            records.push(json!({"kind":"connect","dst":format!("198.51.100.{i}"),"port":5432,"protocol":"tcp","count":n,"time":"t9"}));
        }
        // Same /24 but another port: evidence for its own port only, stays exact.
        records.push(
            json!({"kind":"connect","dst":"198.51.100.7","port":80,"protocol":"tcp","time":"t9"}),
        );
        let yaml = profile_yaml("learned", "a test", &observe(&records));
        assert!(
            yaml.contains("4 addresses of this name: 192.0.2.1 ×1, 192.0.2.2 ×1, 192.0.2.3 ×1, 192.0.2.4 ×1\n    - to: cdn.test\n"),
            "{yaml}"
        );
        assert!(!yaml.contains("- to: 192.0.2."), "{yaml}");
        assert!(
            yaml.contains("collapsed to 198.51.100.0/29 (at least 4 in one /24): 198.51.100.1 ×2, 198.51.100.2 ×1, 198.51.100.3 ×1, 198.51.100.6 ×1\n    - to: 198.51.100.0/29\n      ports: [5432]"),
            "{yaml}"
        );
        assert!(
            yaml.contains("- to: 198.51.100.7\n      ports: [80]"),
            "{yaml}"
        );
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("learned.yaml")).unwrap();
        assert_eq!(p.egress.rules.len(), 3);
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
