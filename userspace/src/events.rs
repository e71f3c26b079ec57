//! Events: decoding ring-buffer records and enriching them into the records users see.
//!
//! Every record says who (process, uid, cgroup), what (destination, protocol), which
//! profile and rule, and the verdict. Records are serialised as one JSON object each.

use std::{
    mem::size_of,
    net::{IpAddr, Ipv6Addr},
};

use cgwarden_common::{
    CredsEvent, DeviationEvent, DeviceEvent, DnsEvent, EventHeader, NetEvent, RULE_DEFAULT,
    SocketEvent, SyscallEvent, SysctlEvent, kind, reached, syscall_action, verdict,
};
use serde::Serialize;

/// A ring-buffer record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {got} bytes is too short for kind {kind} ({need} bytes)")]
    Short { kind: u32, got: usize, need: usize },
    #[error("record of unknown kind {0}")]
    UnknownKind(u32),
}

/// A decoded kernel record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    Net(NetEvent),
    Dns(Box<DnsEvent>),
    Syscall(Box<SyscallEvent>),
    Sysctl(Box<SysctlEvent>),
    Socket(SocketEvent),
    Deviation(Box<DeviationEvent>),
    Device(DeviceEvent),
    /// A write under a read-only path (a [`SyscallEvent`] of kind `READ_ONLY`).
    ReadOnly(Box<SyscallEvent>),
    Creds(Box<CredsEvent>),
    /// A container's first process held at the gate.
    Gate(cgwarden_common::GateEvent),
}

impl Raw {
    /// The fields every record starts with.
    pub fn header(&self) -> &EventHeader {
        match self {
            Self::Net(e) => &e.header,
            Self::Dns(e) => &e.header,
            Self::Syscall(e) => &e.header,
            Self::Sysctl(e) => &e.header,
            Self::Socket(e) => &e.header,
            Self::Deviation(e) => &e.header,
            Self::Device(e) => &e.header,
            Self::ReadOnly(e) => &e.header,
            Self::Creds(e) => &e.header,
            Self::Gate(e) => &e.header,
        }
    }
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Raw, DecodeError> {
    let kind = read::<u32>(bytes).ok_or(DecodeError::Short {
        kind: 0,
        got: bytes.len(),
        need: size_of::<EventHeader>(),
    })?;
    match kind {
        kind::CONNECT | kind::SENDMSG | kind::PACKET | kind::BIND | kind::LISTEN => {
            record(bytes, kind, Raw::Net)
        }
        kind::SYSCALL => record(bytes, kind, |e| Raw::Syscall(Box::new(e))),
        kind::SOCKET => record(bytes, kind, Raw::Socket),
        kind::DEVIATION => record(bytes, kind, |e| Raw::Deviation(Box::new(e))),
        kind::CREDS => record(bytes, kind, |e| Raw::Creds(Box::new(e))),
        kind::SYSCTL => record(bytes, kind, |e| Raw::Sysctl(Box::new(e))),
        kind::DNS => record(bytes, kind, |e| Raw::Dns(Box::new(e))),
        kind::DEVICE => record(bytes, kind, Raw::Device),
        kind::READ_ONLY => record(bytes, kind, |e| Raw::ReadOnly(Box::new(e))),
        kind::GATE => record(bytes, kind, Raw::Gate),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Reads a record of type `T` and wraps it, or says how short it was.
fn record<T: Copy>(
    bytes: &[u8],
    kind: u32,
    wrap: impl FnOnce(T) -> Raw,
) -> Result<Raw, DecodeError> {
    read::<T>(bytes).map(wrap).ok_or(DecodeError::Short {
        kind,
        got: bytes.len(),
        need: size_of::<T>(),
    })
}

fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked; `T` is plain `#[repr(C)]` data valid for any bytes
    // (only integers and byte arrays), and the read is unaligned-safe.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// What the agent knows that the kernel record does not carry.
pub trait Context {
    /// Name of a compiled profile and the labels of its egress rules.
    fn profile(&self, id: u32) -> Option<(&str, &[String])>;
    /// Path of a cgroup id relative to the cgroup2 root.
    fn cgroup_path(&self, id: u64) -> Option<String>;
    /// How many arguments syscall `nr` has (6 when unknown).
    fn syscall_arity(&self, nr: u32) -> usize {
        let _ = nr;
        6
    }
    /// The label of a profile's syscall rule.
    fn syscall_rule(&self, profile: u32, rule: u32) -> Option<String> {
        let _ = (profile, rule);
        None
    }
    /// Wall-clock nanoseconds since the Unix epoch for a `CLOCK_MONOTONIC` time.
    fn wall_clock(&self, monotonic_ns: u64) -> u128;
    /// The container a cgroup belongs to (its path, or what its runtime says).
    fn container(&self, cgroup_id: u64) -> Option<crate::engines::Identity> {
        self.cgroup_path(cgroup_id)
            .and_then(|p| crate::engines::cgroup_path::identify(&p))
    }
}

/// The version of the records' format. Every record says it (`schema_version`), and
/// docs/events.schema.json describes it; it goes up when a field changes meaning or
/// goes away (a field added is no new version).
pub const SCHEMA_VERSION: u32 = 1;

/// An event as the sinks receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Net(NetRecord),
    Dns(DnsRecord),
    Syscall(SyscallRecord),
    Sysctl(SysctlRecord),
    Deviation(DeviationRecord),
    Posture(Box<PostureRecord>),
    Lost(LostRecord),
}

impl Record {
    /// The event kind (`connect`, `sendmsg`, `packet`, `dns`, `lost`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Net(r) => r.kind,
            Self::Dns(r) => r.kind,
            Self::Syscall(r) => r.kind,
            Self::Sysctl(r) => r.kind,
            Self::Deviation(r) => r.kind,
            Self::Posture(r) => r.kind,
            Self::Lost(r) => r.kind,
        }
    }

    /// The verdict, for flow events.
    pub fn verdict(&self) -> Option<&'static str> {
        match self {
            Self::Net(r) => Some(r.verdict),
            Self::Syscall(r) => Some(r.verdict),
            Self::Sysctl(r) => Some(r.verdict),
            Self::Deviation(r) => Some(r.verdict),
            _ => None,
        }
    }

    /// The cgroup path the event happened in, when known.
    pub fn cgroup(&self) -> Option<&str> {
        match self {
            Self::Net(r) => r.cgroup.as_deref(),
            Self::Dns(r) => r.cgroup.as_deref(),
            Self::Syscall(r) => r.cgroup.as_deref(),
            Self::Sysctl(r) => r.cgroup.as_deref(),
            Self::Deviation(r) => r.cgroup.as_deref(),
            Self::Posture(r) => r.cgroup.as_deref(),
            Self::Lost(_) => None,
        }
    }

    /// The cgroup's id, when the record has one.
    pub fn cgroup_id(&self) -> Option<u64> {
        match self {
            Self::Net(r) => Some(r.cgroup_id),
            Self::Dns(r) => Some(r.cgroup_id),
            Self::Syscall(r) => Some(r.cgroup_id),
            Self::Sysctl(r) => Some(r.cgroup_id),
            Self::Deviation(r) => Some(r.cgroup_id),
            Self::Posture(_) | Self::Lost(_) => None,
        }
    }

    /// The profile rule that decided the record (flows and syscalls).
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::Net(r) => Some(&r.rule),
            Self::Syscall(r) => Some(&r.rule),
            _ => None,
        }
    }

    /// The container's name (from its OCI runtime), when known.
    pub fn container_name(&self) -> Option<&str> {
        self.who().and_then(|w| w.container.name.as_deref())
    }

    /// The container the event happened in, when known.
    pub fn who(&self) -> Option<&crate::engines::Identity> {
        match self {
            Self::Net(r) => r.who.as_ref(),
            Self::Syscall(r) => r.who.as_ref(),
            Self::Deviation(r) => r.who.as_ref(),
            Self::Sysctl(r) => r.who.as_ref(),
            Self::Dns(r) => r.who.as_ref(),
            Self::Posture(r) => Some(&r.who),
            _ => None,
        }
    }

    /// The profile that applied, when known.
    pub fn profile(&self) -> Option<&str> {
        match self {
            Self::Net(r) => r.profile.as_deref(),
            Self::Dns(r) => r.profile.as_deref(),
            Self::Syscall(r) => r.profile.as_deref(),
            Self::Sysctl(r) => r.profile.as_deref(),
            Self::Deviation(r) => r.profile.as_deref(),
            Self::Posture(r) => r.profile.as_deref(),
            Self::Lost(_) => None,
        }
    }

    /// How many occurrences the record stands for.
    pub fn count(&self) -> u64 {
        match self {
            Self::Net(r) => r.count,
            Self::Syscall(r) => r.count,
            Self::Dns(_) | Self::Sysctl(_) | Self::Deviation(_) | Self::Posture(_) => 1,
            Self::Lost(r) => r.count,
        }
    }
}

/// A container's configuration checked against the CIS Docker Benchmark, when the
/// agent discovers the container and again when its configuration changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostureRecord {
    pub time: String,
    pub kind: &'static str,
    pub cgroup: Option<String>,
    /// Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: crate::engines::Identity,
    /// The profile that selects the container, if one does.
    pub profile: Option<String>,
    /// `passed`, `failed`, `unknown`, `score` and every check with its evidence.
    #[serde(flatten)]
    pub posture: crate::posture::Posture,
}

/// Records the kernel could not deliver because the ring buffer was full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostRecord {
    pub time: String,
    pub kind: &'static str,
    pub count: u64,
    pub reason: &'static str,
}

impl LostRecord {
    pub fn ring_buffer_full(time: String, count: u64) -> Self {
        Self {
            time,
            kind: "lost",
            count,
            reason: "ring buffer full",
        }
    }

    /// Records a follower (`cgwarden events`) missed because it read too slowly.
    pub fn follower_too_slow(time: String, count: u64) -> Self {
        Self {
            time,
            kind: "lost",
            count,
            reason: "follower too slow",
        }
    }
}

/// A network event as users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetRecord {
    pub time: String,
    pub kind: &'static str,
    pub verdict: &'static str,
    pub pid: u32,
    pub tid: u32,
    pub process: String,
    pub uid: u32,
    pub gid: u32,
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    /// The container, when the cgroup path names one.
    /// Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: Option<crate::engines::Identity>,
    pub profile: Option<String>,
    pub rule: String,
    pub protocol: &'static str,
    pub family: &'static str,
    pub dst: String,
    pub port: u16,
    /// How many identical flows this record stands for (repeats are aggregated).
    pub count: u64,
}

/// Turns a decoded network record, standing for `count` occurrences, into what users
/// see.
pub fn enrich_net(e: &NetEvent, count: u64, ctx: &dyn Context) -> NetRecord {
    let h = &e.header;
    let profile = ctx.profile(h.profile);
    let rule = if e.rule == RULE_DEFAULT {
        "default".to_owned()
    } else {
        profile
            .and_then(|(_, labels)| labels.get(e.rule as usize).cloned())
            .unwrap_or_else(|| format!("#{}", e.rule))
    };
    let dst = display_addr(&e.addr);
    NetRecord {
        time: rfc3339(ctx.wall_clock(h.ts_ns)),
        kind: kind_name(h.kind),
        verdict: verdict_name(e.verdict),
        pid: h.pid,
        tid: h.tid,
        process: comm(&h.comm),
        uid: h.uid,
        gid: h.gid,
        who: ctx.container(h.cgroup_id),
        cgroup: ctx.cgroup_path(h.cgroup_id),
        cgroup_id: h.cgroup_id,
        profile: profile.map(|(name, _)| name.to_owned()),
        rule,
        protocol: protocol_name(e.protocol),
        family: if e.family == libc::AF_INET6 as u16 {
            "ipv6"
        } else {
            "ipv4"
        },
        dst: dst.to_string(),
        port: e.port,
        count,
    }
}

/// A watched syscall as users see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyscallRecord {
    pub time: String,
    pub kind: &'static str,
    /// `deny` (the process was killed), `audit` (kill was due, the profile audits) or
    /// `allow` (reported only).
    pub verdict: &'static str,
    /// The rule's action: `kill`, `kill-container` or `report`.
    pub action: &'static str,
    pub syscall: String,
    pub nr: u32,
    pub args: serde_json::Map<String, serde_json::Value>,
    /// The path argument, when the syscall has one.
    pub path: Option<String>,
    /// The path argument could not be read (an unknown path, not a harmless one).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_unreadable: bool,
    pub pid: u32,
    pub tid: u32,
    /// The parent process, as the process table knows it (0 when unknown).
    pub ppid: u32,
    pub process: String,
    /// The program the process executed.
    pub exe: String,
    /// The processes behind it, parent first: pid and executable, as far as the
    /// process table reaches (up to 8 generations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<Ancestor>,
    pub uid: u32,
    pub gid: u32,
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    pub profile: Option<String>,
    pub rule: String,
    /// Identical calls (same process, syscall and arguments) this record stands for:
    /// the kernel counts repeats and sends at most one record per second for them.
    pub count: u64,
    /// The container cgroup whose every process the agent killed (`kill-container`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed_cgroup: Option<String>,
    /// How the call ended, when it was judged at its exit: every call refused before it
    /// ran (by seccomp) and every call judged by its path. Calls judged at entry were
    /// judged before they had a result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<CallResult>,
    /// What a write-open reached when that, not its path as written, made it an escape
    /// attempt; or what the agent found when the kernel could not decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached: Option<Reached>,
    /// The container, when known.
    /// Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: Option<crate::engines::Identity>,
}

impl Eq for SyscallRecord {}

/// The file an open reached, whatever path it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Reached {
    /// `kernel`: read from the file the open returned; `agent`: the open failed and the
    /// agent resolved its path in the caller's root.
    pub by: String,
    /// The file system (`cgroup`, `proc`, `sysfs`, `binfmt_misc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<String>,
    /// The file's own name (`release_agent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is, as the agent resolved it (agent only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// It could not be known, and why: an unknown target is reported, never taken as
    /// harmless.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
    /// A block device (a disk), by its numbers (`8:0`), whatever its node is called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_device: Option<String>,
}

impl Reached {
    /// A file known by its file system's magic number and its name.
    pub fn file(by: &str, magic: u64, name: String, path: Option<String>) -> Self {
        Self {
            by: by.to_owned(),
            fs: Some(
                crate::syscalls::fs_magic::name(magic)
                    .map_or_else(|| format!("{magic:#x}"), str::to_owned),
            ),
            name: Some(name),
            path,
            unknown: None,
            block_device: None,
        }
    }

    /// A block device the open returned: its node's name and its device number as the
    /// kernel encodes it (major << 20 | minor).
    pub fn block_device(dev: u64, name: String) -> Self {
        Self {
            by: "kernel".to_owned(),
            fs: None,
            name: (!name.is_empty()).then_some(name),
            path: None,
            unknown: None,
            block_device: Some(format!("{}:{}", dev >> 20, dev & 0xf_ffff)),
        }
    }
}

/// How a watched call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CallResult {
    /// The return value: a negative errno when it failed.
    pub ret: i64,
    /// The errno's name (`EPERM`), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The call never ran: a seccomp filter (or a tracer) refused it before the kernel
    /// entered it. The attempt is the signal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub seccomp: bool,
}

impl CallResult {
    /// The result a kernel record carries, if it was judged at exit.
    pub fn of(e: &SyscallEvent) -> Option<Self> {
        use cgwarden_common::judged;
        if e.judged == judged::ENTRY {
            return None;
        }
        let errno = (e.ret < 0)
            .then(|| i32::try_from(-e.ret).ok())
            .flatten()
            .map(|n| {
                syscalls::Errno::new(n)
                    .name()
                    .map_or_else(|| format!("errno {n}"), str::to_owned)
            });
        Some(Self {
            ret: e.ret,
            errno,
            seccomp: e.judged == judged::REFUSED_BEFORE_ENTRY,
        })
    }
}

/// One process in a [`SyscallRecord`]'s ancestry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Ancestor {
    pub pid: u32,
    pub exe: String,
}

/// Turns a decoded syscall record into what users see.
/// Turns a decoded syscall record, standing for `count` identical calls, into what
/// users read.
pub fn enrich_syscall(e: &SyscallEvent, count: u64, ctx: &dyn Context) -> SyscallRecord {
    let h = &e.header;
    let sysno = syscalls::Sysno::new(e.nr as usize);
    let path = (e.path_len > 0).then(|| {
        let end = (e.path_len as usize).saturating_sub(1).min(e.path.len());
        String::from_utf8_lossy(&e.path[..end]).into_owned()
    });
    SyscallRecord {
        time: rfc3339(ctx.wall_clock(h.ts_ns)),
        kind: "syscall",
        verdict: verdict_name(e.verdict),
        action: match e.action {
            syscall_action::KILL => "kill",
            syscall_action::KILL_CONTAINER => "kill-container",
            _ => "report",
        },
        syscall: sysno.map_or_else(|| format!("syscall_{}", e.nr), |s| s.name().to_owned()),
        nr: e.nr,
        args: {
            let mut args = sysno
                .map(|s| {
                    // The kernel has cleared the slots past the syscall's arity; only
                    // the syscall's own arguments are shown.
                    crate::syscalls::decode(s, &e.args, ctx.syscall_arity(e.nr).min(6))
                })
                .unwrap_or_default();
            if e.fd_ino != 0 {
                args.insert(
                    "target_ns".into(),
                    crate::syscalls::namespace_of(e.fd_ino, e.args[1]),
                );
            }
            if e.str_len > 0 && e.reached != reached::FILE {
                let end = (e.str_len as usize - 1).min(e.str_val.len());
                let text = String::from_utf8_lossy(&e.str_val[..end]).into_owned();
                // mount's third argument: the file system type.
                args.insert("fstype".into(), serde_json::Value::String(text));
            }
            args
        },
        path,
        path_unreadable: e.path_unreadable != 0,
        pid: h.pid,
        tid: h.tid,
        ppid: e.ppid,
        process: comm(&h.comm),
        exe: c_string(&e.exe),
        ancestry: Vec::new(),
        uid: h.uid,
        gid: h.gid,
        cgroup: ctx.cgroup_path(h.cgroup_id),
        cgroup_id: h.cgroup_id,
        profile: ctx.profile(h.profile).map(|(name, _)| name.to_owned()),
        rule: ctx
            .syscall_rule(h.profile, e.rule)
            .unwrap_or_else(|| format!("syscalls[{}]", e.rule)),
        count,
        killed_cgroup: None,
        result: CallResult::of(e),
        reached: match e.reached {
            reached::FILE | reached::BLOCK_DEVICE => {
                let end = (e.str_len as usize).saturating_sub(1).min(e.str_val.len());
                let name = String::from_utf8_lossy(&e.str_val[..end]).into_owned();
                Some(if e.reached == reached::FILE {
                    Reached::file("kernel", e.reached_magic, name, None)
                } else {
                    Reached::block_device(e.reached_magic, name)
                })
            }
            _ => None,
        },
        who: ctx.container(h.cgroup_id),
    }
}

/// A deviation from the hardened runtime profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviationRecord {
    pub time: String,
    pub kind: &'static str,
    /// `deny` when the kernel refused it, `audit` when it would have (audit mode),
    /// `report` when the kernel cannot refuse it (only report it).
    pub verdict: &'static str,
    /// What deviates: `uid`, `raw_socket`, `device`, `read_only`.
    pub deviation: &'static str,
    /// In words.
    pub detail: String,
    /// The device accessed (`device` deviations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceAccess>,
    /// What was written (`read_only` deviations): the path as judged (resolved when the
    /// call gave a relative one), the syscall, and its result (`ok`, or the error, e.g.
    /// `EROFS` when the file system itself is read-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteAttempt>,
    pub pid: u32,
    pub tid: u32,
    pub process: String,
    pub exe: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    pub profile: Option<String>,
    /// The container, when known (its name from the OCI runtime).
    /// Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: Option<crate::engines::Identity>,
    /// Credentials, for deviations about them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub creds: Option<CredsDetail>,
}

impl DeviationRecord {
    /// A deviation the kernel reported: who and where from its header; no device,
    /// write or credentials (callers add the one that applies).
    fn from_kernel(
        h: &EventHeader,
        ctx: &dyn Context,
        deviation: &'static str,
        verdict: &'static str,
        detail: String,
        exe: Option<String>,
    ) -> Self {
        Self {
            time: rfc3339(ctx.wall_clock(h.ts_ns)),
            kind: "deviation",
            verdict,
            deviation,
            detail,
            device: None,
            write: None,
            pid: h.pid,
            tid: h.tid,
            process: comm(&h.comm),
            exe,
            uid: h.uid,
            gid: h.gid,
            cgroup: ctx.cgroup_path(h.cgroup_id),
            cgroup_id: h.cgroup_id,
            profile: ctx.profile(h.profile).map(|(name, _)| name.to_owned()),
            who: ctx.container(h.cgroup_id),
            creds: None,
        }
    }
}

/// The credentials a credential deviation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredsDetail {
    pub euid: u32,
    pub egid: u32,
    /// Effective capabilities, by name.
    pub capabilities: Vec<String>,
    /// Those the profile does not allow (only when it names an allowed set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities_beyond_profile: Option<Vec<String>>,
    pub no_new_privileges: bool,
    /// Effective uid and capabilities before the exec, when the process table knew them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<CredsBefore>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredsBefore {
    pub euid: u32,
    pub egid: u32,
    pub capabilities: Vec<String>,
}

/// One record per deviation a credentials record reports: `euid`, `capabilities`,
/// `no_new_privileges`, `privilege_gain`.
pub fn enrich_creds(e: &CredsEvent, ctx: &dyn Context) -> Vec<DeviationRecord> {
    use crate::caps::CapSet;
    use cgwarden_common::{cred_deviation as cd, cred_rule};
    let h = &e.header;
    let caps = CapSet(e.cap_effective);
    let allowed = CapSet(e.rule.allowed_caps);
    let beyond = caps.beyond(allowed);
    let before = (e.before_known != 0).then(|| CredsBefore {
        euid: e.before.euid,
        egid: e.before.egid,
        capabilities: CapSet(e.before.cap_effective).names(),
    });
    let detail = CredsDetail {
        euid: e.euid,
        egid: e.egid,
        capabilities: caps.names(),
        capabilities_beyond_profile: (e.rule.flags & cred_rule::CAPS != 0).then(|| beyond.names()),
        no_new_privileges: e.no_new_privs != 0,
        before,
    };
    let mut out = Vec::new();
    for (bit, name) in [
        (cd::EUID, "euid"),
        (cd::CAPS, "capabilities"),
        (cd::NO_NEW_PRIVS, "no_new_privileges"),
        (cd::GAINED, "privilege_gain"),
    ] {
        if e.what & bit == 0 {
            continue;
        }
        let text = match bit {
            cd::EUID => format!(
                "runs with effective uid {} (real uid {}) where the profile says uid {}",
                e.euid, h.uid, e.rule.expected_euid
            ),
            cd::CAPS => format!("holds {beyond} beyond what the profile allows ({allowed})"),
            cd::NO_NEW_PRIVS => {
                "runs without the no-new-privileges flag the profile promises".to_owned()
            }
            _ => {
                let gained = CapSet(e.cap_effective).beyond(CapSet(e.before.cap_effective));
                let mut parts = Vec::new();
                if e.euid != e.before.euid {
                    parts.push(format!("effective uid {} -> {}", e.before.euid, e.euid));
                }
                if e.egid != e.before.egid {
                    parts.push(format!("effective gid {} -> {}", e.before.egid, e.egid));
                }
                if !gained.is_empty() {
                    parts.push(format!("capabilities + {gained}"));
                }
                format!(
                    "the exec gained privileges ({}) where the profile promises no-new-privileges",
                    parts.join(", ")
                )
            }
        };
        out.push(DeviationRecord {
            creds: Some(detail.clone()),
            ..DeviationRecord::from_kernel(h, ctx, name, "report", text, Some(c_string(&e.exe)))
        });
    }
    out
}

/// A device access, as a [`DeviationRecord`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceAccess {
    /// `c` (character) or `b` (block).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub major: u32,
    pub minor: u32,
    /// What was asked: `r`, `w`, `m` (mknod), as in the profile.
    pub access: String,
    /// What the profile allows for this device (empty: nothing).
    pub allowed: String,
    /// The device's usual name (`mem`, `null`, ...), when well known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
}

/// A write under a read-only path, as a [`DeviationRecord`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteAttempt {
    /// The path written, as judged: absolute, resolved inside the container.
    pub path: String,
    /// The path as the call gave it, when that differs (relative, or with `..`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// The path could not be placed (unreadable, or relative and the process gone):
    /// reported, never treated as harmless.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub location_unknown: bool,
    pub syscall: String,
    /// `ok` or the error the call returned (`EROFS`, `EACCES`, ...).
    pub result: String,
}

/// Where a read-only write was judged to land.
pub struct Placed {
    pub path: String,
    pub written: Option<String>,
    pub location_unknown: bool,
}

/// The path a read-only record carries, as written (`None`: unreadable).
pub fn written_path(e: &SyscallEvent) -> Option<String> {
    if e.path_unreadable != 0 || e.path_len == 0 {
        return None;
    }
    let end = (e.path_len as usize).saturating_sub(1).min(e.path.len());
    Some(String::from_utf8_lossy(&e.path[..end]).into_owned())
}

/// A write under a read-only path, placed by the agent.
pub fn enrich_read_only(e: &SyscallEvent, placed: Placed, ctx: &dyn Context) -> DeviationRecord {
    let h = &e.header;
    let syscall = syscalls::Sysno::new(e.nr as usize)
        .map_or_else(|| format!("syscall_{}", e.nr), |s| s.name().to_owned());
    let ret = e.flags as i64;
    let result = if ret >= 0 {
        "ok".to_owned()
    } else {
        errno_name(-ret)
    };
    let detail = if placed.location_unknown {
        format!(
            "{syscall} writes `{}` at an unknown location (judged as read-only): {result}",
            placed.path
        )
    } else {
        format!(
            "{syscall} writes under a read-only path: {} ({result})",
            placed.path
        )
    };
    DeviationRecord {
        write: Some(WriteAttempt {
            path: placed.path,
            written: placed.written,
            location_unknown: placed.location_unknown,
            syscall,
            result,
        }),
        ..DeviationRecord::from_kernel(
            h,
            ctx,
            "read_only",
            "report",
            detail,
            Some(c_string(&e.exe)),
        )
    }
}

fn errno_name(errno: i64) -> String {
    match errno {
        1 => "EPERM",
        2 => "ENOENT",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        26 => "ETXTBSY",
        28 => "ENOSPC",
        30 => "EROFS",
        39 => "ENOTEMPTY",
        other => return format!("errno {other}"),
    }
    .to_owned()
}

/// A device access outside the profile's allowlist.
pub fn enrich_device(e: &DeviceEvent, ctx: &dyn Context) -> DeviationRecord {
    use crate::policy::devices::{access_text, char_device_name};
    let h = &e.header;
    let block = e.dev_type == cgwarden_common::device_type::BLOCK;
    let device = DeviceAccess {
        kind: if block { "b" } else { "c" },
        major: e.major,
        minor: e.minor,
        access: access_text(e.access),
        allowed: access_text(e.allowed),
        name: if block {
            None
        } else {
            char_device_name(e.major, e.minor)
        },
    };
    let what = if e.access & cgwarden_common::device_access::MKNOD != 0 {
        "mknod of"
    } else {
        "access to"
    };
    let detail = format!(
        "{what} device {} {}:{}{} ({}) outside the profile's devices",
        device.kind,
        e.major,
        e.minor,
        device
            .name
            .map(|n| format!(" /dev/{n}"))
            .unwrap_or_default(),
        device.access,
    );
    DeviationRecord {
        device: Some(device),
        ..DeviationRecord::from_kernel(h, ctx, "device", verdict_name(e.verdict), detail, None)
    }
}

/// A process running under another uid than the profile's.
pub fn enrich_deviation(e: &DeviationEvent, ctx: &dyn Context) -> DeviationRecord {
    let h = &e.header;
    DeviationRecord::from_kernel(
        h,
        ctx,
        "uid",
        "report",
        format!(
            "runs as uid {} where the profile says uid {}",
            h.uid, e.expected_uid
        ),
        Some(c_string(&e.exe)),
    )
}

/// A raw or packet socket the profile forbids.
pub fn enrich_socket(e: &SocketEvent, ctx: &dyn Context) -> DeviationRecord {
    let h = &e.header;
    let family = match e.family {
        2 => "AF_INET".to_owned(),
        10 => "AF_INET6".to_owned(),
        17 => "AF_PACKET".to_owned(),
        44 => "AF_XDP".to_owned(),
        f => format!("family {f}"),
    };
    let ty = match e.sock_type {
        1 => "SOCK_STREAM".to_owned(),
        2 => "SOCK_DGRAM".to_owned(),
        3 => "SOCK_RAW".to_owned(),
        5 => "SOCK_SEQPACKET".to_owned(),
        t => format!("type {t}"),
    };
    let protocol = match e.protocol {
        132 => "SCTP".to_owned(),
        p => format!("protocol {p}"),
    };
    let packet = matches!(e.family, 17 | 44);
    let (deviation, what) = if packet {
        (
            "packet_socket",
            "its frames skip every hook: the process is killed at socket() (enforce)",
        )
    } else if e.sock_type == 3 {
        ("raw_socket", "raw IP")
    } else {
        ("unjudged_socket", "no address hook judges this protocol")
    };
    DeviationRecord::from_kernel(
        h,
        ctx,
        deviation,
        verdict_name(e.verdict),
        format!("{family} {ty} socket ({protocol}): {what}"),
        None,
    )
}

/// A write under /proc/sys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlRecord {
    pub time: String,
    pub kind: &'static str,
    /// `deny` (refused with EPERM), `audit` (would have been) or `allow` (reported).
    pub verdict: &'static str,
    /// The sysctl, e.g. `kernel/core_pattern`.
    pub name: String,
    /// The value written (its start, when long).
    pub value: String,
    pub pid: u32,
    pub tid: u32,
    pub process: String,
    pub uid: u32,
    pub gid: u32,
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    pub profile: Option<String>,
    /// Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: Option<crate::engines::Identity>,
}

/// Turns a decoded sysctl record into what users see.
pub fn enrich_sysctl(e: &SysctlEvent, ctx: &dyn Context) -> SysctlRecord {
    let h = &e.header;
    let text = |bytes: &[u8], len: u32| {
        let end = (len as usize).min(bytes.len());
        let end = bytes[..end].iter().position(|b| *b == 0).unwrap_or(end);
        String::from_utf8_lossy(&bytes[..end]).trim_end().to_owned()
    };
    SysctlRecord {
        time: rfc3339(ctx.wall_clock(h.ts_ns)),
        kind: "sysctl",
        verdict: verdict_name(e.verdict),
        name: text(&e.name, e.name_len),
        value: text(&e.value, e.value_len),
        pid: h.pid,
        tid: h.tid,
        process: comm(&h.comm),
        uid: h.uid,
        gid: h.gid,
        cgroup: ctx.cgroup_path(h.cgroup_id),
        cgroup_id: h.cgroup_id,
        profile: ctx.profile(h.profile).map(|(name, _)| name.to_owned()),
        who: ctx.container(h.cgroup_id),
    }
}

/// A DNS answer a monitored container received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    pub time: String,
    pub kind: &'static str,
    pub pid: u32,
    pub tid: u32,
    pub process: String,
    pub uid: u32,
    pub gid: u32,
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    pub profile: Option<String>,
    /// The question name.
    pub name: String,
    pub answers: Vec<DnsAnswer>,
    /// Whether the answer's addresses were allowed for the container (the profile names
    /// the name).
    pub learned: bool,
    /// Addresses not allowed because the per-name cap was reached.
    pub capped: u32,
    /// Why the answer was not trusted, when it was not (nothing was learned from it):
    /// `no_query` (no query from this socket with this id to a trusted resolver),
    /// `wrong_server`, `wrong_question`, or `forged` (a monitored process sent it from
    /// port 53; dropped). Reported at most once a second per container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<&'static str>,
    /// Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: Option<crate::engines::Identity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsAnswer {
    pub addr: String,
    pub ttl: u32,
}

/// Turns a decoded DNS record into what users see.
pub fn enrich_dns(e: &DnsEvent, ctx: &dyn Context) -> DnsRecord {
    let h = &e.header;
    let qlen = (e.qname_len as usize).min(e.qname.len());
    let count = (e.count as usize).min(e.addrs.len());
    DnsRecord {
        time: rfc3339(ctx.wall_clock(h.ts_ns)),
        kind: "dns",
        pid: h.pid,
        tid: h.tid,
        process: comm(&h.comm),
        uid: h.uid,
        gid: h.gid,
        cgroup: ctx.cgroup_path(h.cgroup_id),
        cgroup_id: h.cgroup_id,
        profile: ctx.profile(h.profile).map(|(name, _)| name.to_owned()),
        name: crate::dns_wire::wire_name_to_string(&e.qname[..qlen]),
        answers: e.addrs[..count]
            .iter()
            .zip(&e.ttls)
            .map(|(a, ttl)| DnsAnswer {
                addr: display_addr(a).to_string(),
                ttl: *ttl,
            })
            .collect(),
        learned: e.learned != 0,
        capped: e.capped,
        untrusted: match e.refused {
            cgwarden_common::dns_refused::NONE => None,
            cgwarden_common::dns_refused::NO_QUERY => Some("no_query"),
            cgwarden_common::dns_refused::WRONG_SERVER => Some("wrong_server"),
            cgwarden_common::dns_refused::WRONG_QUESTION => Some("wrong_question"),
            cgwarden_common::dns_refused::FORGED => Some("forged"),
            _ => Some("unknown"),
        },
        who: ctx.container(h.cgroup_id),
    }
}

fn display_addr(a: &[u8; 16]) -> IpAddr {
    let addr = Ipv6Addr::from(*a);
    match addr.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(addr),
    }
}

fn kind_name(k: u32) -> &'static str {
    match k {
        kind::CONNECT => "connect",
        kind::SENDMSG => "sendmsg",
        kind::PACKET => "packet",
        kind::BIND => "bind",
        kind::LISTEN => "listen",
        _ => "unknown",
    }
}

fn verdict_name(v: u8) -> &'static str {
    match v {
        verdict::ALLOW => "allow",
        verdict::DENY => "deny",
        verdict::AUDIT => "audit",
        _ => "unknown",
    }
}

fn protocol_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        136 => "udplite",
        1 => "icmp",
        58 => "icmpv6",
        _ => "other",
    }
}

/// A NUL-terminated byte string.
pub fn c_string(raw: &[u8]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The wall-clock time now, as [`rfc3339`] writes it (records the agent makes itself:
/// losses, deviations found in user space).
pub fn rfc3339_now() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    rfc3339(ns)
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nanoseconds.
pub fn rfc3339(ns: u128) -> String {
    let secs = (ns / 1_000_000_000) as u64;
    let nanos = (ns % 1_000_000_000) as u32;
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx;
    impl Context for Ctx {
        fn profile(&self, id: u32) -> Option<(&str, &[String])> {
            static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
            (id == 3).then(|| {
                (
                    "web",
                    LABELS.get_or_init(|| vec!["api".to_owned()]).as_slice(),
                )
            })
        }
        fn cgroup_path(&self, id: u64) -> Option<String> {
            (id == 99).then(|| "/docker/abc".to_owned())
        }
        fn wall_clock(&self, monotonic_ns: u64) -> u128 {
            u128::from(monotonic_ns) + 1_700_000_000_000_000_000
        }
    }

    fn bytes_of(e: &NetEvent) -> Vec<u8> {
        // SAFETY: NetEvent is plain repr(C) data.
        unsafe {
            std::slice::from_raw_parts((e as *const NetEvent).cast::<u8>(), size_of::<NetEvent>())
        }
        .to_vec()
    }

    #[test]
    fn decodes_and_enriches_a_denied_v4_connect() {
        let mut e = NetEvent::default();
        e.header.kind = kind::CONNECT;
        e.header.profile = 3;
        e.header.cgroup_id = 99;
        e.header.pid = 42;
        e.header.uid = 1000;
        e.header.comm[..4].copy_from_slice(b"curl");
        e.addr = "::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets();
        e.port = 443;
        e.family = libc::AF_INET as u16;
        e.protocol = 6;
        e.verdict = verdict::DENY;
        e.rule = 0;
        e.total = 1;
        let Ok(Raw::Net(decoded)) = decode(&bytes_of(&e)) else {
            panic!("not a net event")
        };
        let r = enrich_net(&decoded, 1, &Ctx);
        assert_eq!(r.kind, "connect");
        assert_eq!(r.verdict, "deny");
        assert_eq!(r.dst, "10.1.2.3");
        assert_eq!(r.process, "curl");
        assert_eq!(r.cgroup.as_deref(), Some("/docker/abc"));
        assert_eq!(r.profile.as_deref(), Some("web"));
        assert_eq!(r.rule, "api");
        assert_eq!(r.protocol, "tcp");
        assert!(r.time.starts_with("2023-11-14T22:13:20"), "{}", r.time);
    }

    #[test]
    fn decodes_a_denied_device_access() {
        let mut e = DeviceEvent::default();
        e.header.kind = kind::DEVICE;
        e.header.profile = 3;
        e.header.cgroup_id = 99;
        e.dev_type = cgwarden_common::device_type::CHAR;
        e.major = 1;
        e.minor = 1;
        e.access = cgwarden_common::device_access::READ;
        e.verdict = verdict::DENY;
        // SAFETY: DeviceEvent is plain repr(C) data.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&e as *const DeviceEvent).cast::<u8>(),
                size_of::<DeviceEvent>(),
            )
        };
        let Ok(Raw::Device(decoded)) = decode(bytes) else {
            panic!("not a device event")
        };
        let r = enrich_device(&decoded, &Ctx);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kind"], "deviation");
        assert_eq!(json["deviation"], "device");
        assert_eq!(json["verdict"], "deny");
        assert_eq!(
            json["device"],
            serde_json::json!({"type": "c", "major": 1, "minor": 1, "access": "r", "allowed": "", "name": "mem"})
        );
        assert!(r.detail.contains("/dev/mem"), "{}", r.detail);
        assert_eq!(json["cgroup"], "/docker/abc");
        assert!(json.get("container").is_none());

        // In a container's cgroup, the deviation names the container.
        struct InDocker;
        impl Context for InDocker {
            fn profile(&self, _: u32) -> Option<(&str, &[String])> {
                None
            }
            fn cgroup_path(&self, _: u64) -> Option<String> {
                Some("/docker/3f2a9c0d1e2b".to_owned())
            }
            fn wall_clock(&self, ns: u64) -> u128 {
                u128::from(ns)
            }
        }
        let json = serde_json::to_value(enrich_device(&decoded, &InDocker)).unwrap();
        assert_eq!(json["container"]["id"], "3f2a9c0d1e2b");
        assert_eq!(json["container"]["runtime"], "docker");
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(matches!(decode(&[1, 0]), Err(DecodeError::Short { .. })));
        assert!(matches!(
            decode(&[99, 0, 0, 0]),
            Err(DecodeError::UnknownKind(99))
        ));
        assert!(matches!(
            decode(&[1, 0, 0, 0, 0]),
            Err(DecodeError::Short { kind: 1, .. })
        ));
    }
}
