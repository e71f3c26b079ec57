//! Learn mode: the tightest profile that would have allowed everything a workload did,
//! from the records of a learning run (or an events file), and an OCI seccomp profile
//! of every syscall it used. [`merge`] learns on top of an existing profile, [`check`]
//! says what a profile would deny, [`collapse`] decides when addresses become a CIDR,
//! [`export`] writes the learned egress as a Kubernetes NetworkPolicy or a
//! CiliumNetworkPolicy.

pub mod check;
pub mod collapse;
pub mod export;
pub mod merge;
pub mod progress;
pub mod select;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::{
    policy::caps::CapSet,
    policy::devices::{self, Device, DeviceRule, DeviceType},
};

/// What a learning run saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// What the run watched beyond flows, syscalls, uids, binds and raw sockets: only
    /// a live learning run sees every device access and every program's credentials.
    pub watched: Watched,
    /// Device accesses by device, with the accesses and programs seen.
    pub devices: BTreeMap<DeviceId, DeviceSeen>,
    /// The effective capabilities programs held after their exec, together.
    pub capabilities: CapSet,
    /// Capabilities held that have no name here (a newer kernel's), as the records
    /// name them.
    pub unnamed_capabilities: BTreeSet<String>,
    /// Programs that ran without the no-new-privileges flag.
    pub without_no_new_privileges: BTreeSet<String>,
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

/// What a run watched besides the network and syscalls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// Every device access was reported (the learning profile's empty device list).
    pub devices: bool,
    /// Every program's credentials were judged at its exec (the kernel's credential
    /// layout was known): capabilities and no-new-privileges can be learned.
    pub creds: bool,
}

/// A device node: `c` or `b`, major, minor.
pub type DeviceId = (char, u32, u32);

/// How a device was used.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceSeen {
    /// [`cgwarden_common::device_access`] bits.
    pub access: u32,
    pub count: u64,
    pub programs: BTreeSet<String>,
}

impl DeviceSeen {
    /// The profile entry allowing exactly `access` on device `id`, with a comment saying
    /// what was seen.
    pub fn entry(id: DeviceId, access: u32, seen: &Self) -> LearnedDevice {
        let (kind, major, minor) = id;
        let name = (kind == 'c')
            .then(|| devices::char_device_name(major, minor))
            .flatten()
            .map(|n| format!(" /dev/{n}"))
            .unwrap_or_default();
        LearnedDevice {
            id,
            access,
            comment: format!(
                "{kind} {major}:{minor}{name}: {} ×{} by {}",
                devices::access_text(seen.access),
                seen.count,
                seen.programs.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// One `devices:` entry of a learned profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedDevice {
    pub id: DeviceId,
    pub access: u32,
    pub comment: String,
}

impl LearnedDevice {
    /// The entry as YAML list item lines, the `- ` at `indent` spaces.
    pub fn render(&self, indent: usize) -> String {
        let pad = " ".repeat(indent);
        let (kind, major, minor) = self.id;
        format!(
            "{pad}# {}\n{pad}- {{type: {kind}, major: {major}, minor: {minor}, access: {}}}\n",
            self.comment,
            devices::access_text(self.access)
        )
    }

    /// The rule the entry parses to.
    pub fn rule(&self) -> DeviceRule {
        let (kind, major, minor) = self.id;
        DeviceRule::Device(Device {
            kind: if kind == 'b' {
                DeviceType::Block
            } else {
                DeviceType::Char
            },
            major: Some(major),
            minor: Some(minor),
            access: self.access,
        })
    }
}

/// The `devices:` entries beyond `allowed` that the devices seen need: for each device,
/// the accesses `allowed` does not grant.
pub fn device_entries(
    seen: &BTreeMap<DeviceId, DeviceSeen>,
    allowed: &[DeviceRule],
) -> Vec<LearnedDevice> {
    seen.iter()
        .filter_map(|(id, s)| {
            let (kind, major, minor) = *id;
            let missing = s.access & !devices::allowed(allowed, kind == 'b', major, minor);
            (missing != 0).then(|| DeviceSeen::entry(*id, missing, s))
        })
        .collect()
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
            "bind" | "listen" => o.wide_binds = true,
            "deviation"
                if matches!(
                    r["deviation"].as_str(),
                    Some("raw_socket" | "packet_socket" | "unjudged_socket")
                ) =>
            {
                o.raw_sockets = true
            }
            "deviation" if r["deviation"] == "uid" => {
                if let Some(uid) = r["uid"].as_u64() {
                    o.uids.insert(uid as u32);
                }
            }
            "deviation" if r["deviation"] == "device" => observe_device(&mut o, r),
            // The credential deviations (`capabilities`, `no_new_privileges`,
            // `privilege_gain`, `euid`) carry the program's credentials after its exec.
            "deviation" if r["capabilities"].is_array() && r["no_new_privileges"].is_boolean() => {
                for name in r["capabilities"].as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    match CapSet::from_names(&[name]) {
                        Ok(one) => o.capabilities.0 |= one.0,
                        Err(_) => {
                            o.unnamed_capabilities.insert(name.to_owned());
                        }
                    }
                }
                if r["no_new_privileges"] == false {
                    o.without_no_new_privileges.insert(program(r));
                }
            }
            _ => {}
        }
    }
    o
}

fn observe_device(o: &mut Observed, r: &Value) {
    let d = &r["device"];
    let kind = if d["type"] == "b" { 'b' } else { 'c' };
    let (Some(major), Some(minor)) = (d["major"].as_u64(), d["minor"].as_u64()) else {
        return;
    };
    let access = d["access"]
        .as_str()
        .unwrap_or("")
        .chars()
        .fold(0, |bits, c| {
            bits | match c {
                'r' => cgwarden_common::device_access::READ,
                'w' => cgwarden_common::device_access::WRITE,
                'm' => cgwarden_common::device_access::MKNOD,
                _ => 0,
            }
        });
    let seen = o
        .devices
        .entry((kind, major as u32, minor as u32))
        .or_default();
    seen.access |= access;
    seen.count += 1;
    seen.programs.insert(program(r));
}

/// The program a record names: its executable, else its process name.
fn program(r: &Value) -> String {
    r["exe"]
        .as_str()
        .filter(|e| !e.is_empty())
        .or_else(|| r["process"].as_str())
        .unwrap_or("?")
        .to_owned()
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

/// The resolvers a workload that resolved names asked (its UDP flows to port 53), for
/// `egress.dns.servers`: the learned names are trusted from them only.
fn dns_servers(o: &Observed) -> BTreeSet<String> {
    let names = o
        .flows
        .keys()
        .any(|(to, _)| to.parse::<ipnetwork::IpNetwork>().is_err());
    if !names {
        return BTreeSet::new();
    }
    o.flows
        .iter()
        .filter(|((to, proto), seen)| {
            proto == "udp" && seen.ports.contains(&53) && to.parse::<std::net::IpAddr>().is_ok()
        })
        .map(|((to, _), _)| to.clone())
        .collect()
}

/// The profile as YAML, every rule commented with how often and when it was seen.
pub fn profile_yaml(name: &str, origin: &str, o: &Observed) -> String {
    let mut y = String::new();
    // The origin may be a command line with a multi-line script in it: one comment line.
    let origin = origin.replace('\r', "\\r").replace('\n', "\\n");
    let _ = writeln!(y, "# Learned by cgwarden from {origin}.");
    let _ = writeln!(
        y,
        "# Review it, then roll it out in audit mode before enforcing."
    );
    let _ = writeln!(y, "name: {name}");
    y.push_str("mode: enforce\n");
    y.push_str("egress:\n  default: deny\n");
    let servers = dns_servers(o);
    if !servers.is_empty() {
        let _ = writeln!(
            y,
            "  dns:\n    # The resolvers it asked: answers from any other are not trusted.\n    servers: [{}]",
            servers
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
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
        y.push_str("  binds: loopback   # every bind and listen was on loopback\n");
    }
    if o.raw_sockets {
        y.push_str("  raw_sockets: allow   # it created raw or packet sockets\n");
    } else {
        y.push_str("  raw_sockets: deny\n");
    }
    y.push_str(&runtime_yaml(o));
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

/// The `devices`, `capabilities` and `no_new_privileges` lines of a learned profile's
/// `runtime:` section, each only when the run watched it.
fn runtime_yaml(o: &Observed) -> String {
    let mut y = String::new();
    if o.watched.devices {
        y.push_str("  # Devices: the OCI default set (null, zero, full, random, urandom, tty, ptmx,\n  # pts/*) and every other device it opened or created.\n  devices:\n    - default\n");
        for entry in device_entries(&o.devices, &[DeviceRule::Default]) {
            y.push_str(&entry.render(4));
        }
    } else {
        y.push_str(
            "  # Devices were not watched (learned from an events file): no `devices` line.\n",
        );
    }
    if !o.watched.creds {
        y.push_str("  # Credentials were not watched (learned from an events file, or the kernel's\n  # credential layout is unknown): no `capabilities` or `no_new_privileges` line.\n");
        return y;
    }
    let _ = writeln!(
        y,
        "  # The effective capabilities its programs held after exec ({}).",
        if o.capabilities.is_empty() {
            "none".to_owned()
        } else {
            o.capabilities.to_string()
        }
    );
    if !o.unnamed_capabilities.is_empty() {
        let _ = writeln!(
            y,
            "  # Also held, without a name here: {}.",
            o.unnamed_capabilities
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(y, "  capabilities: {}", o.capabilities.profile_list());
    if o.without_no_new_privileges.is_empty() {
        y.push_str("  no_new_privileges: true   # every program ran with the flag\n");
    } else {
        let _ = writeln!(
            y,
            "  # Programs ran without no-new-privileges ({}): no `no_new_privileges` line.",
            o.without_no_new_privileges
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    y
}

/// Syscalls the container runtime itself makes after it installs the seccomp filter and
/// before the entry point runs, by why it makes them. Learn mode never sees these: they
/// happen before the entry point's exec, when the process is not armed. Without
/// no-new-privileges (Podman's default) runc installs the filter before it drops to
/// the container's user, so the user and capability calls come after it. runc's init
/// is a Go program whose runtime keeps running until the exec. docs/learn.md lists
/// the same groups (a test keeps the two the same).
pub const RUNTIME_BASELINE: &[(&str, &[&str])] = &[
    (
        "executing the entry point: finding it on PATH, checking it, the exec",
        &[
            "execve",
            "execveat",
            "faccessat",
            "faccessat2",
            "access",
            "newfstatat",
            "fstat",
            "statfs",
            "fstatfs",
        ],
    ),
    (
        "the exec fifo runc waits on and the file descriptors it closes or marks close-on-exec",
        &[
            "openat",
            "read",
            "write",
            "close",
            "close_range",
            "fcntl",
            "dup3",
            "readlinkat",
            "getdents64",
            "lseek",
        ],
    ),
    (
        "dropping to the container's user, groups, capabilities and umask",
        &[
            "prctl",
            "capget",
            "capset",
            "setgroups",
            "setresuid",
            "setresgid",
            "setuid",
            "setgid",
            "getuid",
            "getgid",
            "geteuid",
            "getegid",
            "umask",
        ],
    ),
    (
        "entering the working directory",
        &["chdir", "fchdir", "getcwd"],
    ),
    (
        "the Go runtime of runc's init: scheduler, signals, memory, its threads",
        &[
            "futex",
            "rt_sigaction",
            "rt_sigprocmask",
            "rt_sigreturn",
            "sigaltstack",
            "gettid",
            "tgkill",
            "madvise",
            "mmap",
            "munmap",
            "mprotect",
            "brk",
            "nanosleep",
            "sched_yield",
            "epoll_pwait",
            "sched_getaffinity",
            "getrandom",
            "getpid",
            "getppid",
            "exit",
            "exit_group",
            "rseq",
            "set_robust_list",
            "arch_prctl",
            "set_tid_address",
            "prlimit64",
        ],
    ),
];

/// An OCI seccomp profile allowing exactly the syscalls used (plus the runtime's own
/// baseline); everything else fails with EPERM.
pub fn seccomp(nrs: &[u32]) -> Value {
    let mut names: BTreeSet<String> = nrs
        .iter()
        .filter_map(|nr| syscalls::Sysno::new(*nr as usize))
        .map(|s| s.name().to_owned())
        .collect();
    names.extend(
        RUNTIME_BASELINE
            .iter()
            .flat_map(|(_, calls)| calls.iter())
            .map(|s| (*s).to_owned()),
    );
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": names, "action": "SCMP_ACT_ALLOW" }],
    })
}

/// Where kubelet looks for the localhost seccomp profile `name`
/// (`<root>/profiles/<name>.json`, `root` being `<kubelet root-dir>/seccomp`); the
/// directory is made when missing.
pub fn kubelet_seccomp_file(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.'),
        "--seccomp-kubelet {name:?}: a profile name is letters, digits, '-', '_' and '.', as a file name under {}/profiles",
        root.display()
    );
    let dir = root.join("profiles");
    std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
    Ok(dir.join(format!("{name}.json")))
}

/// The profile a learning run applies: audit everything, report every flow and DNS
/// answer, report escape-relevant syscalls, record every syscall. A uid no program runs
/// as and an empty device list make every program's uid and every device access a
/// report; with `creds` (the kernel's credential layout is known), no allowed
/// capability and a promised no-new-privileges make every program holding a capability
/// or running without the flag one too.
pub fn learning_profile(
    name: &str,
    creds: bool,
    selector: Option<&str>,
) -> Result<crate::policy::Profile, crate::policy::PolicyError> {
    let creds = if creds {
        "  capabilities: []\n  no_new_privileges: true\n"
    } else {
        ""
    };
    let selector = selector.map_or(String::new(), |s| format!("selector: {s}\n"));
    let text = format!(
        "name: {name}\nmode: audit\n{selector}egress:\n  default: deny\n  report: all\n  dns:\n    report: true\nruntime:\n  user: 4294967294\n  binds: loopback\n  raw_sockets: deny\n  devices: []\n{creds}syscalls:\n  - set: escape\n    action: report\n"
    );
    let mut profile = crate::policy::parse_str(&text, std::path::Path::new("(learning profile)"))?;
    profile.learn = true;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_baseline_is_documented_group_by_group() {
        let docs = include_str!("../../docs/learn.md");
        for (why, calls) in RUNTIME_BASELINE {
            let line = docs
                .lines()
                .find(|l| l.contains(why))
                .unwrap_or_else(|| panic!("docs/learn.md lacks the group {why:?}"));
            for call in *calls {
                assert!(
                    line.contains(&format!("`{call}`")),
                    "{call} not in {line:?}"
                );
            }
        }
    }

    #[test]
    fn kubelet_profiles_go_under_profiles_and_names_are_file_names() {
        let root = tempfile::tempdir().unwrap();
        let file = kubelet_seccomp_file(root.path(), "shop.v1").unwrap();
        assert_eq!(file, root.path().join("profiles/shop.v1.json"));
        assert!(root.path().join("profiles").is_dir());
        for bad in ["", "../etc", "a/b", ".hidden"] {
            let e = kubelet_seccomp_file(root.path(), bad).unwrap_err();
            assert!(e.to_string().contains("a profile name is"), "{bad}: {e}");
        }
    }

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

    /// A live learning run's records of devices and credentials.
    fn runtime_records() -> Vec<Value> {
        vec![
            json!({"kind":"deviation","deviation":"device","process":"python3","device":{"type":"c","major":1,"minor":3,"access":"w"}}),
            json!({"kind":"deviation","deviation":"device","process":"python3","device":{"type":"c","major":1,"minor":11,"access":"m"}}),
            json!({"kind":"deviation","deviation":"device","process":"python3","device":{"type":"c","major":1,"minor":11,"access":"r"}}),
            json!({"kind":"deviation","deviation":"device","process":"dd","device":{"type":"b","major":7,"minor":0,"access":"rw"}}),
            json!({"kind":"deviation","deviation":"capabilities","exe":"/bin/app","capabilities":["CAP_NET_BIND_SERVICE"],"capabilities_beyond_profile":["CAP_NET_BIND_SERVICE"],"no_new_privileges":true}),
            json!({"kind":"deviation","deviation":"capabilities","exe":"/bin/helper","capabilities":["CAP_CHOWN","cap_50"],"no_new_privileges":true}),
        ]
    }

    #[test]
    fn a_live_run_learns_devices_capabilities_and_no_new_privileges() {
        let mut o = observe(&runtime_records());
        o.watched = Watched {
            devices: true,
            creds: true,
        };
        let yaml = profile_yaml("learned", "a test", &o);
        // /dev/null is in the default set; kmsg and the loop device are not.
        assert!(
            yaml.contains("  devices:\n    - default\n    # b 7:0: rw ×1 by dd\n    - {type: b, major: 7, minor: 0, access: rw}\n    # c 1:11 /dev/kmsg: rm ×2 by python3\n    - {type: c, major: 1, minor: 11, access: rm}\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("  capabilities: [CHOWN, NET_BIND_SERVICE]\n"),
            "{yaml}"
        );
        assert!(yaml.contains("without a name here: cap_50."), "{yaml}");
        assert!(yaml.contains("  no_new_privileges: true"), "{yaml}");
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("learned.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let devices = p.runtime.devices.unwrap();
        use cgwarden_common::device_access::{MKNOD, READ, WRITE};
        assert_eq!(devices::allowed(&devices, false, 1, 11), READ | MKNOD);
        assert_eq!(devices::allowed(&devices, true, 7, 0), READ | WRITE);
        assert_eq!(devices::allowed(&devices, false, 1, 1), 0);
        assert_eq!(
            p.runtime.capabilities,
            Some(CapSet::from_names(&["CHOWN", "NET_BIND_SERVICE"]).unwrap())
        );
        assert!(p.runtime.no_new_privileges);

        // One program without the flag: no `no_new_privileges` line.
        let mut records = runtime_records();
        records.push(json!({"kind":"deviation","deviation":"no_new_privileges","exe":"/bin/sh","capabilities":[],"no_new_privileges":false}));
        let mut o = observe(&records);
        o.watched = Watched {
            devices: true,
            creds: true,
        };
        let yaml = profile_yaml("learned", "a test", &o);
        assert!(!yaml.contains("no_new_privileges: true"), "{yaml}");
        assert!(
            yaml.contains("without no-new-privileges (/bin/sh)"),
            "{yaml}"
        );
        // Every capability is `ALL`; none is `[]`.
        let all = json!({"kind":"deviation","deviation":"capabilities","exe":"/bin/x","capabilities":CapSet::all().names(),"no_new_privileges":false});
        let mut o = observe(&[all]);
        o.watched.creds = true;
        assert!(profile_yaml("l", "t", &o).contains("  capabilities: [ALL]\n"));
        let mut o = observe(&[]);
        o.watched.creds = true;
        let yaml = profile_yaml("l", "t", &o);
        assert!(yaml.contains("  capabilities: []\n"), "{yaml}");
        assert!(yaml.contains("  no_new_privileges: true"), "{yaml}");
    }

    #[test]
    fn a_multi_line_command_stays_in_its_comment() {
        let yaml = profile_yaml("l", "`python3 -c import os\nos.sync()`", &observe(&[]));
        assert!(
            yaml.starts_with("# Learned by cgwarden from `python3 -c import os\\nos.sync()`.\n"),
            "{yaml}"
        );
        crate::policy::parse_str(&yaml, std::path::Path::new("l.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    }

    #[test]
    fn an_events_file_teaches_no_devices_or_credentials() {
        let yaml = profile_yaml("learned", "a test", &observe(&runtime_records()));
        assert!(!yaml.contains("devices:"), "{yaml}");
        assert!(!yaml.contains("capabilities:"), "{yaml}");
        assert!(!yaml.contains("no_new_privileges:"), "{yaml}");
        let p = crate::policy::parse_str(&yaml, std::path::Path::new("learned.yaml")).unwrap();
        assert_eq!(p.runtime.devices, None);
        assert!(!p.runtime.needs_creds());
    }

    #[test]
    fn the_learning_profile_reports_every_device_and_credential() {
        let p = learning_profile("l", true, None).unwrap();
        assert!(p.learn);
        assert_eq!(p.mode, crate::policy::Mode::Audit);
        assert_eq!(p.runtime.devices, Some(Vec::new()));
        assert_eq!(p.runtime.capabilities, Some(CapSet::default()));
        assert!(p.runtime.no_new_privileges);
        assert_eq!(p.runtime.user, Some(4_294_967_294));
        let p = learning_profile("l", false, None).unwrap();
        assert!(!p.runtime.needs_creds());
        assert_eq!(p.runtime.devices, Some(Vec::new()));
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
