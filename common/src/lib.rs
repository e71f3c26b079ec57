//! Layouts shared by the kernel side (`ebpf/`) and the agent (`userspace/`).
//!
//! Everything here is `#[repr(C)]` plain data plus the constants that give it meaning:
//! map names, event kinds, verdicts and bit flags. No logic lives here beyond layout, so
//! both sides read the same bytes the same way. The `user` feature adds `aya::Pod`
//! impls so the agent can store these types in maps.
#![no_std]

/// Map names, shared so the agent opens exactly the maps the kernel side defines.
pub mod maps {
    /// `HashMap<u64 cgroup id, ProfileRef>`: which profile applies to a cgroup.
    pub const CGROUP_PROFILES: &str = "CGROUP_PROFILES";
    /// `Array<Config>` with one entry: global settings the agent updates at run time.
    pub const CONFIG: &str = "CONFIG";
    /// `LpmTrie<EgressKey, EgressValue>`: egress rules by (profile, address prefix).
    pub const EGRESS: &str = "EGRESS";
    /// `RingBuf` of events.
    pub const EVENTS: &str = "EVENTS";
    /// `PerCpuArray<u64>` of counters, indexed by [`crate::counters`].
    pub const COUNTERS: &str = "COUNTERS";
    /// `LruHashMap<FlowKey, FlowState>`: repeat counts of reported flows.
    pub const FLOWS: &str = "FLOWS";
    /// `HashMap<NameKey, EgressValue>`: port rules of the DNS names a profile allows.
    pub const NAMES: &str = "NAMES";
    /// `HashMap<LearnedKey, LearnedValue>`: addresses a container learned from DNS
    /// answers it received, for names its profile names.
    pub const LEARNED: &str = "LEARNED";
    /// `HashMap<NameCountKey, u32>`: learned addresses per container and name.
    pub const NAME_COUNTS: &str = "NAME_COUNTS";
    /// `PerCpuArray<[u8; DNS_BUF_BYTES]>`: a copy of the DNS answer being parsed.
    pub const DNS_BUF: &str = "DNS_BUF";
    /// `PerCpuArray<DnsScratch>`: the DNS parser's working state.
    pub const DNS_SCRATCH: &str = "DNS_SCRATCH";

    /// `HashMap<SyscallKey, SyscallRule>`: the syscalls each profile watches.
    pub const SYSCALL_RULES: &str = "SYSCALL_RULES";
    /// `Array<u8>` indexed by syscall number: how each watched syscall is watched
    /// ([`syscall_watch`] bits).
    pub const SYSCALL_WATCH: &str = "SYSCALL_WATCH";
    /// `LruHashMap<SyscallRepeatKey, FlowState>`: repeat counts of reported syscalls.
    pub const SYSCALL_REPEATS: &str = "SYSCALL_REPEATS";

    /// `LruHashMap<u32 tgid, ProcInfo>`: processes of monitored cgroups.
    pub const PROCS: &str = "PROCS";
    /// `Array<PathPattern>`: the escape set's path patterns (pattern set 0), in an
    /// array because every watched open walks them.
    pub const PATH_PATTERNS: &str = "PATH_PATTERNS";
    /// `Array<PathPattern>`: the escape patterns that apply to read-only opens, in the
    /// same order (most opens read: they walk these few, not all).
    pub const READ_PATTERNS: &str = "READ_PATTERNS";
    /// `HashMap<PatternKey, PathPattern>`: the read-only and writable paths of each
    /// profile (pattern set = the profile id), judged only for writes.
    pub const PROFILE_PATTERNS: &str = "PROFILE_PATTERNS";
    /// `LruHashMap<u64, u8>`: executable handles a process got by opening some
    /// `/proc/<pid>/exe`, so that reopening one for writing is caught. Two kinds of key
    /// that cannot collide: the inode's kernel address (at or above 0xffff800000000000)
    /// and `tgid << 32 | fd` (below 2^54), for reopens the kernel refuses.
    pub const EXE_HANDLES: &str = "EXE_HANDLES";
    /// `PerCpuArray<[u8; SYSCALL_PATH_BYTES]>`: a path read before it is matched.
    pub const PATH_SCRATCH: &str = "PATH_SCRATCH";
    /// `LruHashMap<u64 pid_tgid, PendingCall>`: path-filtered calls between their
    /// entry and exit.
    pub const PENDING: &str = "PENDING";
    /// `HashMap<SyscallUsedKey, u8>`: syscalls used under learning profiles, by the
    /// monitored cgroup that used them.
    pub const SYSCALLS_USED: &str = "SYSCALLS_USED";

    /// `HashMap<DeviceKey, u32 access bits>`: the devices each profile allows.
    pub const DEVICE_RULES: &str = "DEVICE_RULES";

    /// `Array<CredOffsets>` with one entry: where the credentials are in this kernel's
    /// `task_struct` and `cred` (from its BTF).
    pub const CRED_OFFSETS: &str = "CRED_OFFSETS";
    /// `HashMap<u32 profile id, CredRule>`: the effective ids and capabilities a profile
    /// allows.
    pub const CRED_RULES: &str = "CRED_RULES";
    /// `LruHashMap<u32 tgid, CredState>`: credentials of monitored processes before
    /// their next exec, to tell an exec that gained privileges.
    pub const CREDS: &str = "CREDS";

    /// `HashMap<u32 tgid, GatedProc>`: container processes stopped at their first exec
    /// until the agent has decided their container's profile (see
    /// [`crate::profile_flags::GATE`]). Pinned, so a restarted agent releases them.
    pub const GATED: &str = "GATED";

    /// `HashMap<NameKey, NameText>`: the names a profile allows, to match byte by byte.
    pub const NAME_TEXT: &str = "NAME_TEXT";
    /// `LruHashMap<DnsQueryKey, DnsQuery>`: queries waiting for their answer.
    pub const DNS_QUERIES: &str = "DNS_QUERIES";
    /// `HashMap<DnsServerKey, u8>`: trusted resolvers.
    pub const DNS_SERVERS: &str = "DNS_SERVERS";
    /// `LruHashMap<u64 cgroup, u64 time>`: when an untrusted answer was last reported.
    pub const DNS_REFUSALS: &str = "DNS_REFUSALS";
    /// `PerCpuArray<EnteredMark>`: the last watched call judged at entry, per CPU.
    pub const ENTERED: &str = "ENTERED";
    /// `PerCpuArray<EscapeFileKey>`: the file system and name of the file an open
    /// reached, read at its exit.
    pub const REACHED: &str = "REACHED";
    /// `HashMap<EscapeFileKey, u8 (unused)>`: escape files by what they are
    /// (their file system's magic and their name), whatever path reaches them.
    pub const ESCAPE_FILES: &str = "ESCAPE_FILES";
    /// `PerCpuArray`s for parsing queries at egress (apart from the answer parser's,
    /// which an ingress packet may use on the same CPU meanwhile).
    pub const DNS_QBUF: &str = "DNS_QBUF";
    pub const DNS_QSCRATCH: &str = "DNS_QSCRATCH";

    /// `HashMap<SocketFile, u8>`: the host's container runtime API sockets, by identity.
    pub const RUNTIME_SOCKETS: &str = "RUNTIME_SOCKETS";

    /// Every map, for pinning.
    pub const ALL: [&str; 37] = [
        READ_PATTERNS,
        ENTERED,
        REACHED,
        ESCAPE_FILES,
        RUNTIME_SOCKETS,
        DNS_QBUF,
        DNS_QSCRATCH,
        NAME_TEXT,
        DNS_QUERIES,
        DNS_SERVERS,
        DNS_REFUSALS,
        GATED,
        EXE_HANDLES,
        DEVICE_RULES,
        CRED_OFFSETS,
        CRED_RULES,
        CREDS,
        SYSCALLS_USED,
        SYSCALL_REPEATS,
        PENDING,
        PROCS,
        PATH_PATTERNS,
        PROFILE_PATTERNS,
        PATH_SCRATCH,
        SYSCALL_RULES,
        SYSCALL_WATCH,
        CGROUP_PROFILES,
        CONFIG,
        EGRESS,
        EVENTS,
        COUNTERS,
        FLOWS,
        NAMES,
        LEARNED,
        NAME_COUNTS,
        DNS_BUF,
        DNS_SCRATCH,
    ];
}

/// Indexes into the per-CPU counter array.
pub mod counters {
    /// Events that could not be written because the ring buffer was full.
    pub const RINGBUF_DROPS: u32 = 0;
    /// Flows judged by an egress hook for a monitored cgroup.
    pub const EGRESS_CHECKED: u32 = 1;
    /// Flows denied in enforce mode.
    pub const EGRESS_DENIED: u32 = 2;
    /// Addresses learned from DNS answers.
    pub const DNS_LEARNED: u32 = 3;
    /// Answer addresses not learned because the per-name cap was reached.
    pub const DNS_CAPPED: u32 = 4;
    /// Repeats of a reported flow counted without an event (aggregation).
    pub const AGGREGATED: u32 = 5;
    /// Processes held at the gate that did not fit in `GATED` (the agent finds them by
    /// their stopped state instead).
    pub const GATE_FULL: u32 = 6;
    /// DNS answers not trusted (no matching query from that socket to a trusted
    /// resolver, another source, another question): nothing learned from them.
    pub const DNS_UNTRUSTED: u32 = 7;
    /// DNS answers a monitored process sent (UDP from port 53), dropped: a container
    /// that learns names cannot answer itself.
    pub const DNS_FORGED: u32 = 8;
    /// Number of counters.
    pub const COUNT: u32 = 12;
}

/// Deepest cgroup level the kernel side looks at when it searches for a profile.
pub const MAX_CGROUP_LEVELS: u32 = 32;

/// Maximum number of port/protocol entries one address prefix can carry.
pub const MAX_PORT_RULES: usize = 16;

/// Capacity of the egress LPM trie (entries over all profiles).
pub const EGRESS_MAX_ENTRIES: u32 = 262_144;

/// Capacity of the cgroup → profile map.
pub const CGROUP_MAX_ENTRIES: u32 = 16_384;

/// Capacity of the flow aggregation map.
pub const FLOWS_MAX_ENTRIES: u32 = 65_536;

/// After a flow is reported, identical repeats within this window are only counted; the
/// next report (by the kernel on a later repeat, or by the agent's flush) carries them.
pub const AGGREGATE_WINDOW_NS: u64 = 1_000_000_000;

/// Ring buffer size in bytes (a power of two, multiple of the page size).
pub const RINGBUF_BYTES: u32 = 8 * 1024 * 1024;

/// Rule index that stands for the profile's `default` egress action.
pub const RULE_DEFAULT: u32 = u32::MAX;

/// What the kernel did with a flow or syscall.
pub mod verdict {
    /// Allowed by the profile.
    pub const ALLOW: u8 = 0;
    /// Denied (enforce mode): the caller got EPERM.
    pub const DENY: u8 = 1;
    /// Would have been denied, let through because the profile is in audit mode.
    pub const AUDIT: u8 = 2;
}

/// Event kinds: the first field of every record in the ring buffer.
pub mod kind {
    /// `connect()` (TCP, connected UDP, ICMP ping socket, TCP Fast Open, io_uring).
    pub const CONNECT: u32 = 1;
    /// `sendmsg()`/`sendto()` with a destination address on a UDP socket.
    pub const SENDMSG: u32 = 2;
    /// A packet seen by the cgroup_skb egress backstop (ICMP, raw sockets).
    pub const PACKET: u32 = 3;
    /// A DNS answer a monitored container received ([`crate::DnsEvent`]).
    pub const DNS: u32 = 4;
    /// A watched syscall ([`crate::SyscallEvent`]).
    pub const SYSCALL: u32 = 5;
    /// A write under /proc/sys ([`crate::SysctlEvent`]).
    pub const SYSCTL: u32 = 6;
    /// A `bind()` judged by the profile's bind restriction ([`crate::NetEvent`]).
    pub const BIND: u32 = 7;
    /// A socket creation refused or reported ([`crate::SocketEvent`]).
    pub const SOCKET: u32 = 8;
    /// A process running other than the profile says ([`crate::DeviationEvent`]).
    pub const DEVIATION: u32 = 9;
    /// Credentials after an exec beyond what the profile allows ([`crate::CredsEvent`]).
    pub const CREDS: u32 = 10;
    /// A write under a read-only path ([`crate::SyscallEvent`], judged at syscall exit:
    /// `flags` holds the syscall's return value, `rule` the index of the path argument
    /// judged, `path` that path as the call gave it).
    pub const READ_ONLY: u32 = 11;
    /// A device access outside the profile's allowlist ([`crate::DeviceEvent`]).
    pub const DEVICE: u32 = 12;
    /// A container's first process stopped at the gate ([`crate::GateEvent`]): the agent
    /// decides its profile and lets it go on.
    pub const GATE: u32 = 13;
    /// `listen()` on a socket that is not bound to loopback (an unbound one listens on
    /// the wildcard address), under `binds: loopback` ([`crate::NetEvent`]: the
    /// address it is bound to, `::` and port 0 when unbound).
    pub const LISTEN: u32 = 14;
}

/// Protocol bits used in [`PortRule::protocols`].
pub mod proto {
    pub const TCP: u8 = 1;
    pub const UDP: u8 = 2;
    pub const ICMP: u8 = 4;
    /// Any other IP protocol (SCTP, DCCP, ...): matched only by `protocol: any`.
    pub const OTHER: u8 = 8;
    pub const ANY: u8 = TCP | UDP | ICMP | OTHER;
}

/// Bits of [`ProfileRef::flags`].
pub mod profile_flags {
    /// Enforce mode: denied flows fail. Without it the profile is in audit mode.
    pub const ENFORCE: u32 = 1;
    /// The egress default is allow (denylist); without it the default is deny.
    pub const EGRESS_DEFAULT_ALLOW: u32 = 2;
    /// Report allowed flows too, not only denied and audited ones.
    pub const REPORT_ALLOWED: u32 = 4;
    /// The profile names DNS names: parse DNS answers and learn their addresses.
    pub const LEARN_DNS: u32 = 8;
    /// Report every DNS answer the cgroup receives (learn mode, audit trails).
    pub const REPORT_DNS: u32 = 16;
    /// Report writes under /proc/sys (whatever path reached them).
    pub const WATCH_SYSCTL: u32 = 32;
    /// Refuse those writes (enforce mode) with EPERM.
    pub const DENY_SYSCTL: u32 = 64;
    /// Binds only to loopback addresses (or port 0); others are denied in enforce mode.
    pub const BIND_LOOPBACK_ONLY: u32 = 128;
    /// No raw or packet sockets; their creation is denied in enforce mode.
    pub const DENY_RAW_SOCKETS: u32 = 256;
    /// Set on an entry for a parent cgroup whose children the profile selects: it
    /// applies to tasks in cgroups below, not in the parent itself. Such an entry covers
    /// a new container from its first process, before the agent has seen its cgroup.
    pub const DESCENDANTS_ONLY: u32 = 512;
    /// Learn mode: record every syscall number the profile's processes use.
    pub const LEARN_SYSCALLS: u32 = 1024;
    /// Device access is restricted to the profile's `DEVICE_RULES` (cgroup_device hook).
    pub const RESTRICT_DEVICES: u32 = 2048;
    /// The gate: set (with `DESCENDANTS_ONLY`) on a parent cgroup whose children are
    /// containers of an engine, while some profile selects containers by what their
    /// engine says (name, image, compose service, Kubernetes pod), which the kernel
    /// cannot see. A child cgroup with no entry of its own is a container the agent has
    /// not identified yet: no hook judges it, and its first process is stopped
    /// (SIGSTOP) right after it executes the entry point, before it runs any of it, until
    /// the agent has given the cgroup its profile (or [`UNMONITORED`]) and continues it.
    pub const GATE: u32 = 4096;
    /// An entry that says "no profile here": a container below a gate that no profile
    /// selects. Every hook treats it as an unmonitored cgroup.
    pub const UNMONITORED: u32 = 8192;
}

/// The compiled-profile id of gate entries (never given to a profile).
pub const GATE_PROFILE_ID: u32 = u32::MAX;
/// The compiled-profile id of [`profile_flags::UNMONITORED`] entries.
pub const UNMONITORED_PROFILE_ID: u32 = u32::MAX - 1;

/// Value of `GATED`: a process stopped at the gate.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatedProc {
    /// The container's cgroup (the task's own cgroup when it was stopped).
    pub cgroup_id: u64,
    /// `CLOCK_MONOTONIC` time it was stopped.
    pub since_ns: u64,
}

/// Most processes held at the gate at once.
pub const GATED_MAX_ENTRIES: u32 = 4_096;

/// A process stopped at the gate (`kind::GATE`): only the header; the `GATED` map
/// holds the truth, this record wakes the agent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateEvent {
    pub header: EventHeader,
}

/// Value of `CGROUP_PROFILES`: the compiled profile that applies to a cgroup and its
/// descendants. Replacing this one value is how a reload switches a cgroup atomically
/// from one compiled generation to the next.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProfileRef {
    /// Compiled profile id; egress keys are prefixed with it.
    pub id: u32,
    /// [`profile_flags`] bits.
    pub flags: u32,
    /// Most addresses a container may learn for one name from DNS answers.
    pub dns_cap: u32,
    /// The uid the profile expects processes to run as, plus one (0: no expectation).
    pub expected_uid_plus_one: u32,
    /// Longest a learned DNS address stays allowed, in seconds (`egress.dns.max_ttl`).
    pub dns_max_ttl: u32,
    pub _pad: u32,
}

/// Global settings, entry 0 of the `CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Bit `n` is set when some cgroup at level `n` has a profile. The kernel side only
    /// looks up ancestors at these levels, deepest first, so nested cgroups inherit the
    /// profile of the closest matched ancestor and an unmatched process pays one lookup
    /// per populated level (usually one).
    pub levels: u32,
    /// The next compiled-profile id the agent will use. Only the agent reads it: kept
    /// here so an agent that adopts pinned maps never reuses an id still in them.
    pub next_profile_id: u32,
    /// [`config_flags`] bits.
    pub flags: u32,
    pub _reserved: u32,
}

/// Bits of [`Config::flags`].
pub mod config_flags {
    /// Some installed profile reads DNS answers: without it the ingress hook returns at
    /// once.
    pub const DNS: u32 = 1;
    /// Some installed profile learns every syscall its processes make (learn mode): the
    /// raw `sys_enter` program records them.
    pub const LEARN_SYSCALLS: u32 = 2;
}

/// Data part of an `EGRESS` LPM key: profile id (big endian, so it forms the first 32
/// bits of the prefix) followed by the IPv6 address. IPv4 addresses are stored
/// v4-mapped (`::ffff:a.b.c.d`) so the two families share one rule space.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressKey {
    pub profile_be: u32,
    pub addr: [u8; 16],
}

/// Prefix length of an `EGRESS` key covering a whole address (profile + 128 bits).
pub const EGRESS_FULL_PREFIX: u32 = 32 + 128;

/// One port range and protocol set with the verdict it gives.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRule {
    /// Lowest port (host byte order), inclusive.
    pub port_lo: u16,
    /// Highest port (host byte order), inclusive.
    pub port_hi: u16,
    /// [`proto`] bits.
    pub protocols: u8,
    /// [`verdict::ALLOW`] or [`verdict::DENY`].
    pub verdict: u8,
    pub _pad: u16,
    /// Index of the rule in the profile, for events.
    pub rule: u32,
}

/// Value of an `EGRESS` entry: the rules that apply to addresses under the prefix,
/// already merged with those of every shorter prefix that contains it, in the order
/// they are to be tried (deny rules first). The first entry that matches decides.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressValue {
    pub len: u32,
    pub rules: [PortRule; MAX_PORT_RULES],
}

/// Fields every event starts with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// One of [`kind`].
    pub kind: u32,
    /// Compiled profile id.
    pub profile: u32,
    /// `CLOCK_MONOTONIC` time in nanoseconds.
    pub ts_ns: u64,
    /// Cgroup v2 id (the cgroup directory's inode number) of the task.
    pub cgroup_id: u64,
    /// Thread group id (the process id seen by user space).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Task name (`comm`), NUL padded.
    pub comm: [u8; 16],
}

/// A network flow decision.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetEvent {
    pub header: EventHeader,
    /// Destination as the kernel judged it: IPv6, or IPv4 v4-mapped.
    pub addr: [u8; 16],
    /// Destination port, host byte order.
    pub port: u16,
    /// Address family the caller used (`AF_INET` or `AF_INET6`).
    pub family: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub protocol: u8,
    /// One of [`verdict`].
    pub verdict: u8,
    pub _pad: u16,
    /// Index of the rule that decided, or [`RULE_DEFAULT`].
    pub rule: u32,
    pub _pad2: u32,
    /// How many times this flow (same [`FlowKey`]) has happened so far, this one
    /// included. The agent reports the difference to the previous total.
    pub total: u64,
}

/// Identity of a reported flow for aggregation: identical repeats share a key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub cgroup_id: u64,
    pub profile: u32,
    pub pid: u32,
    pub addr: [u8; 16],
    pub port: u16,
    pub protocol: u8,
    pub verdict: u8,
    pub kind: u32,
    /// The rule that decided it (an index, `RULE_DEFAULT`), so that repeats flushed from
    /// the key alone still name it.
    pub rule: u32,
    pub _pad: u32,
}

/// Aggregation state of a flow. `total` only grows (atomically), so the agent can read
/// it at any time and report the difference without racing the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    pub total: u64,
    /// When the kernel last sent an event for this flow.
    pub last_emit_ns: u64,
    /// When the flow last happened.
    pub last_ns: u64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are `#[repr(C)]` plain data with no padding holes that
    // matter for map keys (keys are fully initialised by `Default` before use).
    unsafe impl aya::Pod for super::ProfileRef {}
    unsafe impl aya::Pod for super::GatedProc {}
    unsafe impl aya::Pod for super::SocketFile {}
    unsafe impl aya::Pod for super::NameText {}
    unsafe impl aya::Pod for super::DnsQueryKey {}
    unsafe impl aya::Pod for super::DnsQuery {}
    unsafe impl aya::Pod for super::DnsServerKey {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::EgressKey {}
    unsafe impl aya::Pod for super::EgressValue {}
    unsafe impl aya::Pod for super::PortRule {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowState {}
    unsafe impl aya::Pod for super::NameKey {}
    unsafe impl aya::Pod for super::LearnedKey {}
    unsafe impl aya::Pod for super::SyscallUsedKey {}
    unsafe impl aya::Pod for super::EscapeFileKey {}
    unsafe impl aya::Pod for super::LearnedValue {}
    unsafe impl aya::Pod for super::NameCountKey {}
    unsafe impl aya::Pod for super::SyscallKey {}
    unsafe impl aya::Pod for super::SyscallRule {}
    unsafe impl aya::Pod for super::SyscallRepeatKey {}
    unsafe impl aya::Pod for super::ProcInfo {}
    unsafe impl aya::Pod for super::PathPattern {}
    unsafe impl aya::Pod for super::CredOffsets {}
    unsafe impl aya::Pod for super::CredRule {}
    unsafe impl aya::Pod for super::CredState {}
    unsafe impl aya::Pod for super::DeviceKey {}
    unsafe impl aya::Pod for super::PatternKey {}
}

/// Bytes of a DNS message the kernel copies and parses (longer answers are cut).
pub const DNS_BUF_BYTES: usize = 4096 + 64;
/// Mask that keeps parse offsets inside the first 4096 bytes of [`DNS_BUF_BYTES`].
pub const DNS_MASK: usize = 4095;
/// Most labels of a question name the kernel hashes.
pub const DNS_MAX_LABELS: usize = 16;
/// Most answer records the kernel reads from one message.
pub const DNS_MAX_ANSWERS: usize = 128;
/// Addresses carried by one [`DnsEvent`].
pub const DNS_EVENT_ADDRS: usize = 8;
/// Shortest lifetime given to a learned address, whatever the answer's TTL.
pub const DNS_MIN_TTL_SECS: u32 = 5;
/// Capacity of the learned-address map.
pub const LEARNED_MAX_ENTRIES: u32 = 65_536;

/// FNV-1a offset basis and prime, for DNS name hashes (both sides compute them).
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// Identifies a DNS name rule: `hash` folds the FNV-1a hashes of the name's lowercase
/// labels (see `dns_name_hash` in the agent); wildcard rules (`*.example.com`) are
/// stored under the hash of the part after `*.` with `wildcard` = 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub profile: u32,
    pub wildcard: u32,
    pub hash: u64,
}

/// Bytes of a file name in an [`EscapeFileKey`] (with its NUL): the longest escape
/// file's name (`notify_on_release`) fits.
pub const ESCAPE_FILE_NAME_BYTES: usize = 24;

/// An escape file by what it is: the magic number of its file system
/// (`super_block.s_magic`: cgroup v1, procfs, sysfs, binfmt_misc) and its name,
/// NUL-padded. A symlink, a bind mount, a long or relative path, or a reopen through
/// `/proc/self/fd` all reach the same file and so the same key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EscapeFileKey {
    pub magic: u64,
    pub name: [u8; ESCAPE_FILE_NAME_BYTES],
}

/// Key of a syscall a learning profile saw used: the monitored cgroup (a container's
/// nested cgroups count as the container), the profile and the syscall number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallUsedKey {
    pub cgroup_id: u64,
    pub profile: u32,
    pub nr: u32,
}

/// Key of a learned address: the monitored cgroup (the one the profile is attached to,
/// so a container's nested cgroups share what it learned) and the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LearnedKey {
    pub cgroup_id: u64,
    pub addr: [u8; 16],
}

/// A learned address: which name rule allows it and until when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedValue {
    /// `CLOCK_MONOTONIC` nanoseconds after which the address is no longer allowed.
    pub expires_ns: u64,
    pub wildcard: u32,
    pub _pad: u32,
    pub hash: u64,
}

/// Key of the per-name learned-address counter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameCountKey {
    pub cgroup_id: u64,
    pub wildcard: u32,
    pub _pad: u32,
    pub hash: u64,
}

/// Per-CPU working state of the kernel's DNS parser (too large for the BPF stack).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsScratch {
    /// Hash of each label of the question name.
    pub labels: [u64; DNS_MAX_LABELS],
    pub addrs: [[u8; 16]; DNS_EVENT_ADDRS],
    pub ttls: [u32; DNS_EVENT_ADDRS],
    /// Bytes of the message copied.
    pub len: u64,
    /// Question name parsing: bytes left in the current label, labels seen, the current
    /// label's hash, the offset after the name, and whether it was malformed.
    pub remaining: u64,
    pub nlabels: u64,
    pub hash: u64,
    pub end: u64,
    pub failed: u64,
    /// Answer parsing: records announced, current offset, addresses found and capped.
    pub answers: u64,
    pub pos: u64,
    pub found: u64,
    pub capped: u64,
    pub now: u64,
    /// The matching name rule: found (1) or not, wildcard, hash, and the label it
    /// starts at.
    pub rule: u32,
    pub wildcard: u32,
    pub rule_hash: u64,
    pub rule_from: u64,
    pub profile: ProfileRef,
    pub cgroup: u64,
    /// Offset of each label's length byte in the question name.
    pub label_pos: [u64; DNS_MAX_LABELS],
    /// The name the answer's records may be for: the offset of the question name, then
    /// of each CNAME's target in the same answer.
    pub target: u64,
    /// The name compare: bytes that differed.
    pub differ: u64,
}

/// Value of `NAME_TEXT`: a name a profile allows, lower-case, in DNS wire format
/// (length-prefixed labels and the final 0): the whole name for exact rules, the part
/// after `*.` for wildcard rules. Names are matched by hash first, then byte by byte
/// against this, so a name whose hash collides with an allowed one does not count.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameText {
    pub len: u32,
    pub _pad: u32,
    pub wire: [u8; 256],
}

/// Key of `DNS_QUERIES`: a query a monitored socket sent to a trusted resolver.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsQueryKey {
    /// The socket's cookie (`bpf_get_socket_cookie`): the answer must reach this socket.
    pub cookie: u64,
    pub txid: u32,
    pub _pad: u32,
}

/// Value of `DNS_QUERIES`: what the answer must match.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsQuery {
    /// The resolver it was sent to (IPv6, or IPv4 v4-mapped): the answer's source.
    pub server: [u8; 16],
    /// Hash of the question name (folded label hashes, as for rules), type and class.
    pub qhash: u64,
    pub qtype: u16,
    pub qclass: u16,
    pub _pad: u32,
    pub expires_ns: u64,
}

/// How long a query waits for its answer.
pub const DNS_QUERY_TTL_NS: u64 = 30_000_000_000;

/// Key of `DNS_SERVERS`: a trusted resolver for a profile ([`DNS_SCOPE_PROFILE`] | id)
/// or for one monitored cgroup (its id: the container's own resolv.conf).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsServerKey {
    pub scope: u64,
    pub addr: [u8; 16],
}

/// Marks a [`DnsServerKey::scope`] that is a profile id.
pub const DNS_SCOPE_PROFILE: u64 = 1 << 63;

/// Why a DNS answer was not trusted ([`DnsEvent::refused`]).
pub mod dns_refused {
    /// Trusted (or nothing to say).
    pub const NONE: u32 = 0;
    /// No query from this socket with this id to a trusted resolver is waiting.
    pub const NO_QUERY: u32 = 1;
    /// It came from another address than the query went to.
    pub const WRONG_SERVER: u32 = 2;
    /// Its question is not the query's.
    pub const WRONG_QUESTION: u32 = 3;
    /// The container sent it (UDP from port 53): dropped at egress.
    pub const FORGED: u32 = 4;
}

/// A DNS answer received by a monitored cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsEvent {
    pub header: EventHeader,
    /// The monitored cgroup the answer was learned for.
    pub learned_for: u64,
    /// Answer addresses (IPv6, or IPv4 v4-mapped) and their TTLs, `count` of them.
    pub addrs: [[u8; 16]; DNS_EVENT_ADDRS],
    pub ttls: [u32; DNS_EVENT_ADDRS],
    pub count: u32,
    /// Addresses learned (1) or not (0: no rule names it, or the cap was reached).
    pub learned: u32,
    /// Addresses skipped because the per-name cap was reached.
    pub capped: u32,
    /// Length of `qname`.
    pub qname_len: u32,
    /// The question name in DNS wire format (length-prefixed labels).
    pub qname: [u8; 256],
    /// [`dns_refused`]: why the answer was not trusted (nothing learned from it).
    pub refused: u32,
    pub _pad: u32,
}

/// Number of syscall slots in `SYSCALL_WATCH` (a power of two above every x86_64 and
/// aarch64 syscall number).
pub const RAW_SYSCALL_SLOTS: u32 = 1024;

/// Values of `SYSCALL_WATCH`: how a syscall is watched.
pub mod syscall_watch {
    /// The raw `sys_enter` program watches it (no tracepoint of its own here).
    pub const RAW: u8 = 0x80;
    /// The arity in the low bits is known (without it, all six slots are kept).
    pub const KNOWN: u8 = 0x40;
    /// Its exit tracepoint is attached: calls refused before entry are seen there.
    pub const EXIT: u8 = 0x20;
    /// The low bits: the syscall's number of arguments; the slots after them hold
    /// whatever followed the record and are cleared before they are reported.
    pub const ARITY_MASK: u8 = 0x07;
}

/// Capacity of `SYSCALL_REPEATS`.
pub const SYSCALL_REPEATS_MAX_ENTRIES: u32 = 16_384;

/// Identity of a reported syscall for aggregation: identical repeats (same process,
/// syscall, arguments and verdict) share a key. Calls with a path argument are never
/// aggregated (the same pointer can name another path).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallRepeatKey {
    pub cgroup_id: u64,
    pub profile: u32,
    pub pid: u32,
    pub nr: u32,
    pub rule: u32,
    pub verdict: u8,
    pub action: u8,
    pub _pad: [u8; 6],
    pub args: [u64; 6],
}

/// What to do when a watched syscall is made.
pub mod syscall_action {
    /// Report it.
    pub const REPORT: u8 = 1;
    /// Report it and kill the process with SIGKILL before it returns to user space.
    pub const KILL: u8 = 2;
    /// As `KILL`; then the agent kills every process of the container's cgroup
    /// (`cgroup.kill`), so no process sharing what the caller opened goes on with it.
    pub const KILL_CONTAINER: u8 = 3;
}

/// Marks "no such argument" in [`SyscallRule`].
pub const NO_ARG: u8 = 0xff;

/// Key of `SYSCALL_RULES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    pub profile: u32,
    pub nr: u32,
}

/// How a profile watches one syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRule {
    /// [`syscall_action`].
    pub action: u8,
    /// Index of the argument that is a path to read, or [`NO_ARG`].
    pub path_arg: u8,
    /// Index of the flags argument that must intersect `flags_mask`, or [`NO_ARG`]
    /// (then every call counts).
    pub flags_arg: u8,
    /// The flags are the first u64 of the struct the argument points to (clone3).
    pub flags_indirect: u8,
    /// Index of the rule in the profile, for events.
    pub rule: u32,
    pub flags_mask: u64,
    /// Nonzero: count the call only when its path matches a `PATH_PATTERNS` entry for
    /// this kind of access ([`pattern_applies`] bits: OPEN for opens, CONNECT for
    /// connects).
    pub path_filter: u8,
    /// The path argument is a `struct sockaddr` (connect): only AF_UNIX paths count.
    pub sockaddr: u8,
    /// Index of the open flags argument (to tell opens for writing), or [`NO_ARG`].
    pub open_flags_arg: u8,
    /// The open flags are the first u64 of the struct the argument points to (openat2).
    pub open_flags_indirect: u8,
    /// Nonzero: the call writes (an open only with [`OPEN_WRITE_FLAGS`]) and is judged
    /// at exit against the profile's read-only and writable paths (pattern set = the
    /// profile id).
    pub read_only: u8,
    /// The path argument(s) the write lands on, or [`NO_ARG`] (rename: both paths).
    pub write_path_arg: u8,
    pub write_path_arg2: u8,
    /// Index of a second string argument to copy into the event (mount's file system
    /// type), or [`NO_ARG`].
    pub str_arg: u8,
    /// Nonzero: count the call only when it is the dirty-pipe pattern (`splice` from a
    /// regular file opened read-only that is set-uid/set-gid or another user's, into a
    /// pipe).
    pub dirty_pipe: u8,
    /// Index of a descriptor argument whose file's inode number goes into the event
    /// (`SyscallEvent::fd_ino`: setns's target namespace), or [`NO_ARG`].
    pub fd_ino_arg: u8,
    pub _pad: [u8; 6],
}

/// Open flags that make an open a write: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC.
pub const OPEN_WRITE_FLAGS: u64 = 0o1 | 0o2 | 0o100 | 0o1000;

/// A path pattern: matches when the path starts with `prefix` and ends with `suffix`
/// (either may be empty), for the accesses in `applies`. The first pattern of a set that
/// matches decides, so a set lists longer prefixes first.
///
/// The prefix is compared a word at a time: `prefix_mask[k]` keeps the bytes of word `k`
/// that belong to the prefix (all of them, some, or none), so the kernel compares
/// without a branch per byte (the verifier would explore each).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathPattern {
    pub prefix: [u8; PATTERN_PREFIX_BYTES],
    pub prefix_mask: [u64; PATTERN_PREFIX_BYTES / 8],
    pub suffix: [u8; PATTERN_SUFFIX_BYTES],
    /// [`pattern_applies`] bits; 0 marks an unused slot.
    pub applies: u8,
    pub prefix_len: u8,
    pub suffix_len: u8,
    /// Nonzero: the prefix is a whole directory: the path must end right after it or
    /// continue with `/` (`/etc` matches `/etc` and `/etc/x`, not `/etcd`).
    pub dir: u8,
}

impl Default for PathPattern {
    fn default() -> Self {
        Self {
            applies: 0,
            prefix_len: 0,
            suffix_len: 0,
            dir: 0,
            prefix: [0; PATTERN_PREFIX_BYTES],
            prefix_mask: [0; PATTERN_PREFIX_BYTES / 8],
            suffix: [0; PATTERN_SUFFIX_BYTES],
        }
    }
}

/// Key of `PROFILE_PATTERNS`: the pattern set (a profile id; set 0, the escape set, is
/// the `PATH_PATTERNS` array) and the pattern's place in it (0, 1, ... up to the first
/// missing index).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PatternKey {
    pub set: u32,
    pub index: u32,
}

pub const PATTERN_PREFIX_BYTES: usize = 64;
pub const PATTERN_SUFFIX_BYTES: usize = 20;
/// Most patterns in one set.
pub const PATH_PATTERNS_MAX: u32 = 32;

/// The pattern set of [`names::READ_PATTERNS`] (set 0 is every escape pattern, other
/// sets are profiles' read-only paths, numbered by profile id).
pub const READ_PATTERN_SET: u32 = u32::MAX;

/// Which accesses a [`PathPattern`] applies to.
pub mod pattern_applies {
    /// Any open of the path.
    pub const OPEN: u8 = 1;
    /// An open for writing (O_WRONLY or O_RDWR).
    pub const OPEN_WRITE: u8 = 2;
    /// A connect to a unix socket at the path.
    pub const CONNECT: u8 = 4;
    /// A write under the path is a deviation (`runtime.read_only`).
    pub const READ_ONLY: u8 = 8;
    /// Writes under the path are expected (`runtime.writable`).
    pub const WRITABLE: u8 = 16;
    /// An open of the path yields a handle on a process's executable: the descriptor is
    /// remembered in `EXE_HANDLES` instead of being reported.
    pub const EXE_HANDLE: u8 = 32;
    /// A write-open of the path counts only when it reopens a remembered executable
    /// handle through `/proc/<pid|self|thread-self>/fd/<fd>`.
    pub const PROC_FD: u8 = 64;
}

/// Bytes of an executable path kept per process.
pub const EXE_BYTES: usize = 128;

/// Capacity of the process table.
pub const PROCS_MAX_ENTRIES: u32 = 32_768;

/// Bits of [`ProcInfo::flags`].
pub mod proc_flags {
    /// The process executed a program inside a monitored cgroup (or descends from one
    /// that did, or was there when the agent applied the profile): syscall rules apply
    /// to it. A container runtime's own set-up process, which joins the cgroup and then
    /// executes the container's entry point, is not armed until that exec.
    pub const ARMED: u32 = 1;
}

/// What the kernel knows of a process of a monitored cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Parent process id (tgid).
    pub ppid: u32,
    /// [`proc_flags`].
    pub flags: u32,
    /// The program it executed, NUL terminated (cut at [`EXE_BYTES`]).
    pub exe: [u8; EXE_BYTES],
}

/// Bytes of a path argument copied into a [`SyscallEvent`].
pub const SYSCALL_PATH_BYTES: usize = 256;

/// A watched syscall made by a monitored process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub nr: u32,
    /// [`syscall_action`] taken: KILL only in enforce mode.
    pub action: u8,
    /// [`verdict`]: DENY when killed, AUDIT when kill was due but the profile audits,
    /// ALLOW when only reported.
    pub verdict: u8,
    /// 1 when the path argument could not be read (an unknown path, never harmless).
    pub path_unreadable: u8,
    /// [`READ_ONLY`](kind::READ_ONLY) records: 1 when the kernel could not place the
    /// path (relative to a directory it does not know, or with `.`, `..` or `//`
    /// components); the agent resolves and judges it.
    pub unresolved: u8,
    pub rule: u32,
    /// Bytes of `path` (including the NUL), 0 when there is no path argument.
    pub path_len: u32,
    /// The raw arguments.
    pub args: [u64; 6],
    /// For rules with a flags condition: the flags that were checked.
    pub flags: u64,
    pub path: [u8; SYSCALL_PATH_BYTES],
    /// The process: parent and executable, from the process table.
    pub ppid: u32,
    /// [`judged`]: where the call was judged, and so whether `ret` is known.
    pub judged: u32,
    pub exe: [u8; EXE_BYTES],
    /// How many times this call (same [`SyscallRepeatKey`]) has been made so far, this
    /// one included; 0 for calls that are never aggregated (kills, path arguments).
    pub total: u64,
    /// The call's return value (a negative errno when it failed), when judged at exit.
    pub ret: i64,
    /// The rule's second string argument ([`SyscallRule::str_arg`]), NUL-terminated;
    /// `str_len` bytes with the NUL, 0 when none.
    pub str_len: u32,
    /// [`reached`]: whether the call was judged by the file it reached.
    pub reached: u8,
    pub _pad3: [u8; 3],
    /// With `reached` = FILE, the reached file's name (NUL-terminated, `str_len` bytes);
    /// otherwise the rule's second string argument.
    pub str_val: [u8; 32],
    /// The inode number of the file behind the rule's descriptor argument
    /// ([`SyscallRule::fd_ino_arg`]): for setns, the target namespace's id (as
    /// `/proc/<pid>/ns/*` links show it); 0 when none.
    pub fd_ino: u64,
    /// With `reached` = FILE, the magic number of the reached file's file system.
    pub reached_magic: u64,
}

/// Values of [`SyscallEvent::reached`].
pub mod reached {
    /// Judged by the path as the call wrote it (or not a path-judged call).
    pub const PATH: u8 = 0;
    /// Judged by the file the open reached (an [`EscapeFileKey`](super::EscapeFileKey)
    /// in `str_val` and `reached_magic`), whatever path the call wrote.
    pub const FILE: u8 = 1;
    /// The kernel could not decide: a write-open that failed (so reached no file) and
    /// whose path as written names no escape file. Reported, never killed; the agent
    /// resolves the path in the caller's root and decides.
    pub const UNDECIDED: u8 = 2;
}

/// Values of [`SyscallEvent::judged`].
pub mod judged {
    /// At entry, before the call ran: its result is not known.
    pub const ENTRY: u32 = 0;
    /// At exit (calls judged by their path): `ret` is its result.
    pub const EXIT: u32 = 1;
    /// At exit, and it was never entered: refused before it ran, by a seccomp filter
    /// (or a tracer). `ret` is the errno the filter gave.
    pub const REFUSED_BEFORE_ENTRY: u32 = 2;
}

/// Bytes of a sysctl name and value kept in a [`SysctlEvent`].
pub const SYSCTL_TEXT_BYTES: usize = 64;

/// A write under /proc/sys by a monitored process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysctlEvent {
    pub header: EventHeader,
    /// [`verdict`]: DENY (refused), AUDIT (would have been), ALLOW (reported).
    pub verdict: u8,
    pub _pad: [u8; 3],
    /// Bytes of `name` and `value` (without NUL; the value may be cut).
    pub name_len: u32,
    pub value_len: u32,
    pub _pad2: u32,
    /// The sysctl, e.g. `kernel/core_pattern`.
    pub name: [u8; SYSCTL_TEXT_BYTES],
    /// The value being written.
    pub value: [u8; SYSCTL_TEXT_BYTES],
}

/// A path-filtered call seen at entry, judged at exit: by then the kernel has read the
/// path, so its pages are resident and the program can read it too.
/// Value of `ENTERED` (per CPU): the last watched call judged at entry on this CPU, so
/// its exit does not judge it again as refused before entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnteredMark {
    pub id: u64,
    pub nr: u64,
}

/// Bits of [`PendingCall::writes`].
pub mod pending {
    /// The call may write: judge it against the profile's read-only paths at exit.
    pub const WRITES: u32 = 1;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingCall {
    pub nr: u32,
    /// [`pending`] bits: the call may write (judged at entry, see `OPEN_WRITE_FLAGS`),
    /// so it is judged against read-only paths at exit.
    pub writes: u32,
    pub args: [u64; 6],
    /// The profile found at entry and the monitored cgroup it is attached to: the exit
    /// does not look them up again.
    pub profile: ProfileRef,
    pub cgroup: u64,
}

/// A socket whose creation the profile forbids (raw or packet sockets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketEvent {
    pub header: EventHeader,
    pub family: u32,
    pub sock_type: u32,
    pub protocol: u32,
    /// [`verdict`].
    pub verdict: u8,
    pub _pad: [u8; 3],
}

/// What a [`DeviationEvent`] is about.
pub mod deviation {
    /// A process runs as another uid than the profile's (root, above all).
    pub const UID: u32 = 1;
}

/// A process that deviates from the hardened profile.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviationEvent {
    pub header: EventHeader,
    /// [`deviation`].
    pub what: u32,
    pub expected_uid: u32,
    /// The program just executed.
    pub exe: [u8; EXE_BYTES],
}

/// Byte offsets of the credential fields in this kernel, found by the agent in its BTF
/// (aya's eBPF side has no CO-RE relocations). Entry 0 of `CRED_OFFSETS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredOffsets {
    /// 1 once the agent has written the offsets; the kernel reads nothing before.
    pub valid: u32,
    /// `task_struct.cred` (a pointer to the subjective credentials).
    pub task_cred: u32,
    /// `task_struct.atomic_flags` (bit [`PFA_NO_NEW_PRIVS`]).
    pub task_atomic_flags: u32,
    /// `cred.euid`, `cred.egid` (each a 32-bit `kuid_t`/`kgid_t`).
    pub cred_euid: u32,
    pub cred_egid: u32,
    /// `cred.cap_effective` (a 64-bit `kernel_cap_t`).
    pub cred_cap_effective: u32,
    /// `task_struct.files`, `files_struct.fdt`, `fdtable.fd`, `file.f_inode`: from a
    /// descriptor to its inode (which file an executable handle or a reopen names).
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub file_inode: u32,
    /// 1 when the socket offsets below were found: from a descriptor to the address a
    /// socket is bound to (`listen()` under `binds: loopback`).
    pub sock_valid: u32,
    /// `inode.i_mode` (16 bits: `S_IFSOCK` tells a socket), `file.private_data` (the
    /// `struct socket`), `socket.sk`, and in `struct sock` (its `__sk_common` first):
    /// `skc_family`, `skc_num` (the local port, host order), `skc_rcv_saddr`,
    /// `skc_v6_rcv_saddr`.
    pub inode_mode: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_num: u32,
    pub sk_rcv_saddr: u32,
    pub sk_v6_rcv_saddr: u32,
    /// 1 when the unix socket offsets below were found: from a connected unix socket
    /// to the socket file its peer listens on (runtime sockets by identity).
    pub unix_valid: u32,
    /// `unix_sock.peer`, `unix_sock.path` (its `dentry` pointer: `path.dentry`),
    /// `dentry.d_inode`, `inode.i_ino`, `inode.i_sb`, `super_block.s_dev`.
    pub unix_peer: u32,
    pub unix_path_dentry: u32,
    pub dentry_inode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    /// 1 when `file.f_path.dentry`, `dentry.d_name.name`, `dentry.d_sb` and
    /// `super_block.s_magic` were found: what file an open reached (its file system
    /// and name), whatever path the caller wrote.
    pub name_valid: u32,
    pub file_dentry: u32,
    pub dentry_name: u32,
    pub dentry_sb: u32,
    pub sb_magic: u32,
    /// 1 when `file.f_mode` and `inode.i_uid` were found (the dirty-pipe pattern).
    pub pipe_valid: u32,
    pub file_mode: u32,
    pub inode_uid: u32,
}

/// Key of `RUNTIME_SOCKETS`: a container runtime's API socket file, by identity (its
/// inode and the kernel's device number of its file system).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketFile {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

/// Bit of `task_struct.atomic_flags` set by `prctl(PR_SET_NO_NEW_PRIVS)`.
pub const PFA_NO_NEW_PRIVS: u64 = 1;

/// Bits of [`CredRule::flags`].
pub mod cred_rule {
    /// Report effective capabilities outside [`crate::CredRule::allowed_caps`].
    pub const CAPS: u32 = 1;
    /// The profile promises no-new-privileges: report a program executed without the
    /// flag, and an exec that gained privileges (see [`crate::cred_deviation::GAINED`]).
    pub const NO_NEW_PRIVS: u32 = 2;
    /// Report an effective uid other than [`crate::CredRule::expected_euid`] while the
    /// real uid is the expected one (a set-uid program).
    pub const EUID: u32 = 4;
}

/// Value of `CRED_RULES`: what a profile allows after an exec.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredRule {
    /// [`cred_rule`] bits.
    pub flags: u32,
    pub expected_euid: u32,
    /// Allowed effective capabilities, bit `n` = capability `n`.
    pub allowed_caps: u64,
}

/// Value of `CREDS`: a process's effective credentials when last seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredState {
    pub euid: u32,
    pub egid: u32,
    pub cap_effective: u64,
}

/// What a [`CredsEvent`] reports (bits, several may be set).
pub mod cred_deviation {
    /// The effective uid is not the profile's user (the real uid is).
    pub const EUID: u32 = 1;
    /// Effective capabilities outside the allowed set.
    pub const CAPS: u32 = 2;
    /// The no-new-privileges flag is not set.
    pub const NO_NEW_PRIVS: u32 = 4;
    /// The exec switched the effective uid or gid to ones other than the real ones
    /// (a set-uid or set-gid program) or added effective capabilities.
    pub const GAINED: u32 = 8;
}

/// Credentials after the exec of an armed process beyond what its profile allows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredsEvent {
    pub header: EventHeader,
    /// [`cred_deviation`] bits.
    pub what: u32,
    pub euid: u32,
    pub egid: u32,
    /// 1 when the no-new-privileges flag is set.
    pub no_new_privs: u32,
    pub cap_effective: u64,
    /// The profile's rule.
    pub rule: CredRule,
    /// The credentials before the exec, when known (`before_known` = 1).
    pub before: CredState,
    pub before_known: u32,
    pub _pad: u32,
    /// The program just executed.
    pub exe: [u8; EXE_BYTES],
}

/// Device types as the cgroup_device hook reports them (`BPF_DEVCG_DEV_*`).
pub mod device_type {
    pub const BLOCK: u32 = 1;
    pub const CHAR: u32 = 2;
}

/// Device accesses as the cgroup_device hook reports them (`BPF_DEVCG_ACC_*`), also the
/// bits of a `DEVICE_RULES` value.
pub mod device_access {
    pub const MKNOD: u32 = 1;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
}

/// A major or minor number of [`DeviceKey`] that stands for every number (`*`).
pub const DEVICE_ANY: u32 = u32::MAX;

/// Key of `DEVICE_RULES`: a profile's rule for one device, or for every major or minor
/// number ([`DEVICE_ANY`]). The kernel tries the exact device and the three wildcard
/// forms; the accesses of every entry found are allowed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    pub profile: u32,
    /// [`device_type`].
    pub dev_type: u32,
    pub major: u32,
    pub minor: u32,
}

/// A device access outside the profile's allowlist.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceEvent {
    pub header: EventHeader,
    /// [`device_type`].
    pub dev_type: u32,
    pub major: u32,
    pub minor: u32,
    /// [`device_access`] bits requested.
    pub access: u32,
    /// [`device_access`] bits the profile allows for this device.
    pub allowed: u32,
    /// [`verdict`]: DENY (refused with EPERM) or AUDIT (would have been).
    pub verdict: u8,
    pub _pad: [u8; 3],
}

/// The records and keys both sides read, by size, and every record's header first (the
/// agent tells a record's kind by its header): the kernel's build (bpfel) and the
/// agent's must lay them out alike. A change here is a change to the format both sides
/// share (and so to the build id the pins are checked against). Checked when either
/// side compiles.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<EventHeader>() == 56);
    assert!(size_of::<GateEvent>() == 56);
    assert!(size_of::<NetEvent>() == 96);
    assert!(size_of::<DnsEvent>() == 504);
    assert!(size_of::<SyscallEvent>() == 592);
    assert!(size_of::<SysctlEvent>() == 200);
    assert!(size_of::<SocketEvent>() == 72);
    assert!(size_of::<DeviationEvent>() == 192);
    assert!(size_of::<CredsEvent>() == 248);
    assert!(size_of::<DeviceEvent>() == 80);
    assert!(size_of::<FlowKey>() == 48);
    assert!(size_of::<SyscallRepeatKey>() == 80);
    assert!(size_of::<ProfileRef>() == 24);
    assert!(size_of::<PendingCall>() == 88);
    assert!(size_of::<ProcInfo>() == 136);
    assert!(size_of::<SyscallRule>() == 32);
    assert!(size_of::<EgressKey>() == 20);
    assert!(size_of::<EgressValue>() == 196);
    assert!(offset_of!(GateEvent, header) == 0);
    assert!(offset_of!(NetEvent, header) == 0);
    assert!(offset_of!(DnsEvent, header) == 0);
    assert!(offset_of!(SyscallEvent, header) == 0);
    assert!(offset_of!(SysctlEvent, header) == 0);
    assert!(offset_of!(SocketEvent, header) == 0);
    assert!(offset_of!(DeviationEvent, header) == 0);
    assert!(offset_of!(CredsEvent, header) == 0);
    assert!(offset_of!(DeviceEvent, header) == 0);
};
