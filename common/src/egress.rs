//! Egress: allowlist keys and values (prefixes with port rules), network events, and
//! the per-flow aggregation key and state.

use super::*;

/// Maximum number of port/protocol entries one address prefix can carry.
pub const MAX_PORT_RULES: usize = 16;

/// Capacity of the egress LPM trie (entries over all profiles).
pub const EGRESS_MAX_ENTRIES: u32 = 262_144;

/// Capacity of the flow aggregation map.
pub const FLOWS_MAX_ENTRIES: u32 = 65_536;

/// After a flow is reported, identical repeats within this window are only counted; the
/// next report (by the kernel on a later repeat, or by the agent's flush) carries them.
pub const AGGREGATE_WINDOW_NS: u64 = 1_000_000_000;

/// Rule index that stands for the profile's `default` egress action.
pub const RULE_DEFAULT: u32 = u32::MAX;

/// Protocol bits used in [`PortRule::protocols`].
pub mod proto {
    pub const TCP: u8 = 1;
    pub const UDP: u8 = 2;
    pub const ICMP: u8 = 4;
    /// Any other IP protocol (SCTP, DCCP, ...): matched only by `protocol: any`.
    pub const OTHER: u8 = 8;
    pub const ANY: u8 = TCP | UDP | ICMP | OTHER;
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
