//! The validated profile model. Every type here is valid by construction: the
//! `TryFrom<String>` impls are the only way serde builds them.

use std::{fmt, net::IpAddr, path::PathBuf, str::FromStr};

use crate::engines::Engine;
use ipnetwork::IpNetwork;
use serde::Deserialize;

/// A parsed, valid profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: ProfileName,
    pub mode: Mode,
    pub selector: Selector,
    pub egress: Egress,
    pub syscalls: Vec<SyscallRule>,
    pub runtime: Runtime,
    /// Learn mode (`cgwarden exec --learn`): record every syscall the processes use.
    /// Never set from a file.
    pub learn: bool,
    /// File the profile came from, for messages.
    pub source: PathBuf,
}

impl Profile {
    /// Whether sockets no address hook judges may be created: as `runtime.raw_sockets`
    /// says, else denied when the egress is an allowlist (nothing may leave unjudged)
    /// and allowed under a denylist.
    pub fn raw_sockets(&self) -> RawSockets {
        self.runtime
            .raw_sockets
            .unwrap_or(match self.egress.default {
                EgressDefault::Deny => RawSockets::Deny,
                EgressDefault::Allow => RawSockets::Allow,
            })
    }
}

/// `enforce` denies what the profile does not allow; `audit` lets it through and reports
/// it with verdict `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Audit,
}

/// Which cgroups a profile applies to. Empty: only through `cgwarden exec`.
///
/// A cgroup is selected when a `cgroup` glob matches its path, or when it is a
/// container's own cgroup and the container matches every container key given (`container`
/// id, `runtime`, `name`, `image`, `compose`, `k8s`), each a list of globs of which one
/// must match.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub cgroup: Vec<CgroupGlob>,
    /// Container id globs.
    pub container: Vec<Glob>,
    /// Engines.
    pub runtime: Vec<Engine>,
    /// Container name globs (names from the engine, the annotations or the hostname).
    pub name: Vec<Glob>,
    /// Image globs, as the engine names the image.
    pub image: Vec<Glob>,
    /// Compose project and service globs.
    pub compose: Option<ComposeSelector>,
    /// Kubernetes namespace, pod and container globs.
    pub k8s: Option<K8sSelector>,
}

/// `selector.compose`: a Compose service's containers.
#[derive(Debug, Clone, Default)]
pub struct ComposeSelector {
    pub project: Vec<Glob>,
    pub service: Vec<Glob>,
}

/// `selector.k8s`: a Kubernetes workload's containers.
#[derive(Debug, Clone, Default)]
pub struct K8sSelector {
    pub namespace: Vec<Glob>,
    pub pod: Vec<Glob>,
    pub container: Vec<Glob>,
}

impl Selector {
    /// Whether a cgroup path (relative to the cgroup2 root, starting with `/`) matches,
    /// knowing of the container only what the path says.
    pub fn matches(&self, cgroup_path: &str) -> bool {
        let who = crate::engines::cgroup_path::identify(cgroup_path);
        self.matches_container(cgroup_path, who.as_ref())
    }

    /// Whether the cgroup at `cgroup_path` matches, where `who` is the container it
    /// belongs to as far as it is known.
    pub fn matches_container(
        &self,
        cgroup_path: &str,
        who: Option<&crate::engines::Identity>,
    ) -> bool {
        if self.cgroup.iter().any(|g| g.matches(cgroup_path)) {
            return true;
        }
        if !self.selects_by_container() {
            return false;
        }
        let Some(who) = who else {
            return false;
        };
        // Only the container's own cgroup, not cgroups nested in it.
        if !crate::engines::cgroup_path::is_own(cgroup_path, who) {
            return false;
        }
        let c = &who.container;
        let any = |globs: &[Glob], value: Option<&str>| {
            globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
        };
        let compose_ok = self.compose.as_ref().is_none_or(|sel| {
            who.compose.as_ref().is_some_and(|c| {
                any(&sel.project, Some(&c.project)) && any(&sel.service, Some(&c.service))
            })
        });
        let k8s_ok = self.k8s.as_ref().is_none_or(|sel| {
            who.k8s.as_ref().is_some_and(|k| {
                any(&sel.namespace, Some(&k.namespace))
                    && any(&sel.pod, Some(&k.pod))
                    && any(&sel.container, k.container.as_deref())
            })
        });
        any(&self.container, Some(&c.id))
            && (self.runtime.is_empty() || self.runtime.contains(&c.runtime))
            && any(&self.name, c.name.as_deref())
            && any(&self.image, c.image.as_deref())
            && compose_ok
            && k8s_ok
    }

    /// Whether the selector names containers by anything beyond a cgroup glob: then a
    /// new container's profile depends on what its engine says about it, and the agent
    /// holds its first process at the gate until it knows (see `profile_flags::GATE`).
    pub fn selects_by_container(&self) -> bool {
        !(self.container.is_empty()
            && self.runtime.is_empty()
            && self.name.is_empty()
            && self.image.is_empty()
            && self.compose.is_none()
            && self.k8s.is_none())
    }

    /// Whether a glob selects every child of `cgroup_path` (a glob `<cgroup_path>/*`).
    pub fn children_of(&self, cgroup_path: &str) -> bool {
        self.cgroup.iter().any(|g| {
            g.as_str()
                .strip_suffix("/*")
                .is_some_and(|parent| parent == cgroup_path && !parent.contains(['*', '?', '[']))
        })
    }
}

/// A glob on a name, id or image (`*`, `?`, `[...]`), checked when the profile is read:
/// an invalid glob is an error at its own line, never dropped (which would widen the
/// selection).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Glob {
    text: String,
    pattern: glob::Pattern,
}

impl Glob {
    pub fn matches(&self, value: &str) -> bool {
        self.pattern.matches(value)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty glob selects nothing; remove the key instead".to_owned());
        }
        let pattern =
            glob::Pattern::new(&text).map_err(|e| format!("invalid glob `{text}`: {}", e.msg))?;
        Ok(Self { text, pattern })
    }
}

/// A selector's `runtime:` value: one of the engines cgwarden knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EngineName(pub Engine);

impl TryFrom<String> for EngineName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Engine::parse(&text).map(Self).ok_or_else(|| {
            let known: Vec<&str> = Engine::ALL.iter().map(|e| e.as_str()).collect();
            format!(
                "unknown runtime `{text}`; expected one of {}",
                known.join(", ")
            )
        })
    }
}

/// A glob on a cgroup v2 path: `*` stays within one path component, `**` crosses them.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct CgroupGlob {
    text: String,
    pattern: glob::Pattern,
}

impl CgroupGlob {
    pub fn matches(&self, cgroup_path: &str) -> bool {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.pattern.matches_with(cgroup_path, options)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for CgroupGlob {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl FromStr for CgroupGlob {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "cgroup selector `{text}` must be an absolute cgroup path starting with `/`"
            ));
        }
        let pattern = glob::Pattern::new(text)
            .map_err(|e| format!("invalid cgroup glob `{text}`: {}", e.msg))?;
        Ok(Self {
            text: text.to_owned(),
            pattern,
        })
    }
}

/// The egress section.
#[derive(Debug, Clone)]
pub struct Egress {
    pub default: EgressDefault,
    pub report: ReportLevel,
    /// Allow rules then deny rules, in file order; a rule's index is its id in events.
    pub rules: Vec<EgressRule>,
    pub dns: DnsSettings,
}

/// How DNS names in rules are handled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// Most addresses one container may learn for one name from the DNS answers it
    /// receives; answers beyond it are reported, never silently dropped.
    #[serde(default = "DnsSettings::default_cap")]
    pub max_addresses_per_name: u32,
    /// Report every DNS answer a monitored container receives.
    #[serde(default)]
    pub report: bool,
    /// The resolvers whose answers a container may learn from. Empty: the agent's
    /// resolvers and the nameservers of the container's own resolv.conf.
    #[serde(default)]
    pub servers: Vec<IpAddr>,
    /// Longest a learned address stays allowed, in seconds, whatever TTL the answer
    /// gives.
    #[serde(default = "DnsSettings::default_max_ttl")]
    pub max_ttl: MaxTtl,
}

/// `egress.dns.max_ttl`: 1 second to a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct MaxTtl(pub u32);

impl TryFrom<u64> for MaxTtl {
    type Error = String;
    fn try_from(secs: u64) -> Result<Self, String> {
        if secs == 0 || secs > 86_400 {
            return Err(format!(
                "max_ttl {secs}: give seconds from 1 to 86400 (a day)"
            ));
        }
        Ok(Self(secs as u32))
    }
}

impl DnsSettings {
    /// NPEP-133 (the Kubernetes FQDN egress proposal) asks for at least 100.
    fn default_cap() -> u32 {
        128
    }

    fn default_max_ttl() -> MaxTtl {
        MaxTtl(3600)
    }
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            max_addresses_per_name: Self::default_cap(),
            report: false,
            servers: Vec::new(),
            max_ttl: Self::default_max_ttl(),
        }
    }
}

impl Egress {
    /// Whether any rule names a DNS name.
    pub fn has_names(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.to.iter().any(|d| matches!(d, Destination::Name(_))))
    }
}

impl Default for Egress {
    /// No egress section: nothing is restricted.
    fn default() -> Self {
        Self {
            default: EgressDefault::Allow,
            report: ReportLevel::Denied,
            rules: Vec::new(),
            dns: DnsSettings::default(),
        }
    }
}

/// What happens to a flow no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressDefault {
    Allow,
    Deny,
}

/// Which flows produce events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportLevel {
    /// Denied and audited flows only.
    #[default]
    Denied,
    /// Every flow, allowed ones included.
    All,
}

/// One egress rule.
#[derive(Debug, Clone)]
pub struct EgressRule {
    /// The rule's name, or `allow[i]`/`deny[i]` after its place in the file.
    pub label: String,
    pub action: RuleAction,
    pub to: Vec<Destination>,
    /// Empty means every port.
    pub ports: Vec<PortRange>,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// Where a rule points: an address or network, or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Destination {
    Net(IpNetwork),
    Name(DnsName),
}

impl TryFrom<String> for Destination {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Ok(Self::Net(IpNetwork::from(addr)));
        }
        if text.contains('/') {
            let net = text
                .parse::<IpNetwork>()
                .map_err(|e| format!("invalid CIDR `{text}`: {e}"))?;
            if net.network() != net.ip() {
                return Err(format!(
                    "CIDR `{text}` has host bits set; did you mean `{}/{}`?",
                    net.network(),
                    net.prefix()
                ));
            }
            return Ok(Self::Net(net));
        }
        if text.chars().all(|c| c.is_ascii_digit() || c == '.') || text.contains(':') {
            return Err(format!("invalid IP address `{text}`"));
        }
        DnsName::try_from(text).map(Self::Name)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(net) if net.prefix() == max_prefix(net) => write!(f, "{}", net.ip()),
            Self::Net(net) => write!(f, "{net}"),
            Self::Name(name) => write!(f, "{name}"),
        }
    }
}

fn max_prefix(net: &IpNetwork) -> u8 {
    match net {
        IpNetwork::V4(_) => 32,
        IpNetwork::V6(_) => 128,
    }
}

/// A DNS name, lower-cased, optionally with a leading `*.` wildcard label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name starts with `*.` and so only matches answers learned at run time.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The key the kernel matches DNS answers by: (wildcard, hash of the labels after
    /// `*.` or of the whole name). Must equal the kernel's computation in `ebpf/src/dns.rs`.
    pub fn kernel_hash(&self) -> (u32, u64) {
        use cgwarden_common::{FNV_OFFSET, FNV_PRIME};
        let (wildcard, body) = match self.0.strip_prefix("*.") {
            Some(rest) => (1, rest),
            None => (0, self.0.as_str()),
        };
        let hash = body.split('.').fold(FNV_OFFSET, |acc, label| {
            let label_hash = label.bytes().fold(FNV_OFFSET, |h, b| {
                (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME)
            });
            (acc ^ label_hash).wrapping_mul(FNV_PRIME)
        });
        (wildcard, hash)
    }

    /// The name as the kernel compares it byte by byte after the hash matched: the
    /// labels after `*.` (or the whole name), lower-case, in DNS wire format.
    pub fn kernel_text(&self) -> cgwarden_common::NameText {
        let body = self.0.strip_prefix("*.").unwrap_or(&self.0);
        let mut text = cgwarden_common::NameText {
            len: 0,
            _pad: 0,
            wire: [0; 256],
        };
        let mut at = 0;
        for label in body.split('.') {
            text.wire[at] = label.len() as u8;
            text.wire[at + 1..at + 1 + label.len()].copy_from_slice(label.as_bytes());
            at += 1 + label.len();
        }
        // The root label; names are at most 253 characters, so this fits.
        text.wire[at] = 0;
        text.len = at as u32 + 1;
        text
    }
}

impl TryFrom<String> for DnsName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        let body = name.strip_prefix("*.").unwrap_or(&name);
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if body.is_empty() || name.len() > 253 || !body.split('.').all(valid_label) {
            return Err(format!(
                "`{text}` is neither an IP address, a CIDR nor a valid DNS name"
            ));
        }
        Ok(Self(name))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An inclusive port range; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "PortText")]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ALL: Self = Self {
        lo: 0,
        hi: u16::MAX,
    };
}

/// A port as written: a number or a `"lo-hi"` string.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortText {
    Number(u64),
    Text(String),
}

impl TryFrom<PortText> for PortRange {
    type Error = String;
    fn try_from(text: PortText) -> Result<Self, String> {
        let port = |n: u64| -> Result<u16, String> {
            u16::try_from(n)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port {n} is out of range 1-65535"))
        };
        let parse = |s: &str| -> Result<u16, String> {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{s}` is not a port number"))
                .and_then(port)
        };
        match text {
            PortText::Number(n) => port(n).map(|p| Self { lo: p, hi: p }),
            PortText::Text(s) => match s.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse(lo)?, parse(hi)?);
                    if lo > hi {
                        return Err(format!("port range `{s}` is empty (start above end)"));
                    }
                    Ok(Self { lo, hi })
                }
                None => parse(&s).map(|p| Self { lo: p, hi: p }),
            },
        }
    }
}

/// Transport protocol a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    #[default]
    Any,
}

impl Protocol {
    /// The kernel's protocol bits for this protocol.
    pub fn bits(self) -> u8 {
        use cgwarden_common::proto;
        match self {
            Self::Tcp => proto::TCP,
            Self::Udp => proto::UDP,
            Self::Icmp => proto::ICMP,
            Self::Any => proto::ANY,
        }
    }
}

/// A profile's name: non-empty, letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ProfileName(String);

impl ProfileName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProfileName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Self(text))
        } else {
            Err(format!(
                "profile name `{text}` must be 1-64 letters, digits, `-`, `_` or `.`"
            ))
        }
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to do when a selected syscall is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyscallAction {
    Report,
    Kill,
    /// Kill the caller, then every process of its container (`cgroup.kill`).
    #[serde(rename = "kill-container")]
    KillContainer,
}

impl SyscallAction {
    /// Whether the action kills (the caller, at least).
    pub fn kills(self) -> bool {
        matches!(self, Self::Kill | Self::KillContainer)
    }
}

/// A syscall name as written in a profile: lower-case letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct SyscallName(String);

impl SyscallName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SyscallName {
    /// The syscall on this architecture (validated when parsed).
    pub fn sysno(&self) -> Option<syscalls::Sysno> {
        crate::policy::syscalls::lookup(&self.0)
    }
}

impl TryFrom<String> for SyscallName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if crate::policy::syscalls::lookup(&text).is_some() {
            Ok(Self(text))
        } else {
            Err(format!("`{text}` is not a syscall of this architecture"))
        }
    }
}

/// A group of syscalls with the action to take.
#[derive(Debug, Clone)]
pub struct SyscallRule {
    pub names: Vec<SyscallName>,
    /// A named built-in set, if the rule selects one.
    pub set: Option<SyscallSet>,
    /// Syscalls of the set left out.
    pub except: Vec<SyscallName>,
    pub action: SyscallAction,
}

/// Built-in syscall sets a rule can select by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyscallSet {
    /// Syscalls used to escape a container or attack the host.
    Escape,
}

/// The hardened runtime profile a container is meant to run with; deviations are
/// reported, and enforced where the kernel can refuse them.
/// Built from [`super::raw::RawRuntime`] once its paths and devices are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    /// The uid processes run as; a program executed under another uid (root, above
    /// all) is reported.
    pub user: Option<u32>,
    /// Which addresses the container may bind: `loopback` (and port 0) or `any`.
    pub binds: Binds,
    /// Sockets no address hook judges: raw IP, packet (`AF_PACKET`, `AF_XDP`), SCTP
    /// and other IP protocols. `deny`: refused (enforce) or reported (audit). Unset: it
    /// follows the egress default (see [`Profile::raw_sockets`]).
    pub raw_sockets: Option<RawSockets>,
    /// The effective capabilities a program may hold after its exec (`[]`: none);
    /// others are reported, by name. Absent: not checked.
    pub capabilities: Option<crate::policy::caps::CapSet>,
    /// `true`: every program runs with the no-new-privileges flag, and no exec raises
    /// the effective uid or capabilities (a set-uid program); either is reported.
    pub no_new_privileges: bool,
    /// The devices the container may open or create (`None`: no restriction); other
    /// accesses are refused (enforce) or reported (audit).
    pub devices: Option<Vec<super::devices::DeviceRule>>,
    /// Paths under which every write is reported (the longest listed path decides).
    /// Listing `/` promises a read-only root filesystem: a container whose OCI config
    /// leaves it writable is reported when it is discovered ([`Runtime::read_only_root`]).
    pub read_only: Vec<super::paths::ProfilePath>,
    /// Exceptions to `read_only`: writes under them are expected.
    pub writable: Vec<super::paths::ProfilePath>,
    /// Posture checks the container's configuration must pass (`[5.4, 5.31]`): one it
    /// fails, or that cannot be decided, is reported as a deviation at discovery, and
    /// named in `status` under an enforcing profile.
    pub posture: Vec<crate::posture::Check>,
}

impl Runtime {
    /// Whether the kernel must read task credentials (and so needs their offsets).
    pub fn needs_creds(&self) -> bool {
        self.capabilities.is_some() || self.no_new_privileges
    }

    /// Whether the profile promises a read-only root filesystem: `read_only` lists `/`
    /// (a `writable` path cannot also be `/`, so nothing takes the root back).
    pub fn read_only_root(&self) -> bool {
        super::paths::is_read_only(&self.read_only, &self.writable, "/")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binds {
    #[default]
    Any,
    Loopback,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawSockets {
    #[default]
    Allow,
    Deny,
}
