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
}

/// Indexes into the per-CPU counter array.
pub mod counters {
    /// Events that could not be written because the ring buffer was full.
    pub const RINGBUF_DROPS: u32 = 0;
    /// Flows judged by an egress hook for a monitored cgroup.
    pub const EGRESS_CHECKED: u32 = 1;
    /// Flows denied in enforce mode.
    pub const EGRESS_DENIED: u32 = 2;
    /// Number of counters.
    pub const COUNT: u32 = 8;
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
pub const FLOWS_MAX_ENTRIES: u32 = 16_384;

/// After a flow is reported, identical repeats within this window are only counted; the
/// next report (by the kernel on a later repeat, or by the agent's flush) carries them.
pub const AGGREGATE_WINDOW_NS: u64 = 1_000_000_000;

/// Ring buffer size in bytes (a power of two, multiple of the page size).
pub const RINGBUF_BYTES: u32 = 8 * 1024 * 1024;

/// Rule index that stands for the profile's `default` egress action.
pub const RULE_DEFAULT: u32 = u32::MAX;

/// Rule index the agent uses for flows whose deciding rule it could not learn (their
/// first event was lost); never written by the kernel.
pub const RULE_UNKNOWN: u32 = u32::MAX - 1;

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
    pub _reserved: u32,
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
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::EgressKey {}
    unsafe impl aya::Pod for super::EgressValue {}
    unsafe impl aya::Pod for super::PortRule {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowState {}
}
