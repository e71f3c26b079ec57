//! Profiles as the kernel sees them: a profile reference on a cgroup, its flags, the
//! agent's config word, and the gate entries of engine parents.

use super::*;

/// Deepest cgroup level the kernel side looks at when it searches for a profile.
pub const MAX_CGROUP_LEVELS: u32 = 32;

/// Capacity of the cgroup → profile map.
pub const CGROUP_MAX_ENTRIES: u32 = 16_384;

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
    /// Either: the profile reads DNS, so the DNS programs must run for it.
    pub const READS_DNS: u32 = LEARN_DNS | REPORT_DNS;
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
    /// The profile's whole-address egress entries are in `EGRESS_HOSTS`, looked up
    /// before the trie: it has at least [`crate::HOSTS_HASHED_MIN`] of them. Otherwise
    /// every entry of the profile is in the trie.
    pub const HOSTS_HASHED: u32 = 16384;
}

/// How many whole-address (/32, /128) egress entries a profile needs for them to go to
/// `EGRESS_HOSTS` ([`profile_flags::HOSTS_HASHED`]). Below it, one trie lookup is
/// cheaper than a hash lookup (measured: 10 ns less per sendmsg at 10 and at 100,000
/// entries); above it, the kernel writes the hash map's entries a third faster.
pub const HOSTS_HASHED_MIN: usize = 4096;

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
