//! DNS: learned addresses by name, the answer parser's scratch space, outstanding
//! queries, trusted servers and DNS events.

use super::*;

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
    /// Who asked the question this answer answers (from its query).
    pub asker: Asker,
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
    /// Who sent the query: the answer arrives in softirq context, in whatever task runs
    /// then, so the answer's record names this process instead.
    pub asker: Asker,
}

/// A process as a record's header names it: pid and tid, uid and gid, command name.
/// All zero when it is not known (an answer nobody in the container asked for, or a
/// query segment sent outside the container's own context).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asker {
    /// `bpf_get_current_pid_tgid`: tgid in the high half, tid in the low.
    pub pid_tgid: u64,
    /// `bpf_get_current_uid_gid`: gid in the high half, uid in the low.
    pub uid_gid: u64,
    pub comm: [u8; 16],
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
