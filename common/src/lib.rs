//! Layouts shared by the kernel side (`ebpf/`) and the agent (`userspace/`).
//!
//! Everything here is `#[repr(C)]` plain data plus the constants that give it meaning:
//! map names, event kinds, verdicts and bit flags. No logic lives here beyond layout, so
//! both sides read the same bytes the same way. The `user` feature adds `aya::Pod`
//! impls so the agent can store these types in maps.
//!
//! One file per concept: `events.rs` (the header, kinds, verdicts), `profile.rs`,
//! `egress.rs`, `dns.rs`, `syscalls.rs`, `procs.rs`, `sysctl.rs`, `creds.rs`,
//! `devices.rs`; here, map names, counters, the `aya::Pod` impls and the layout checks.

#![no_std]

mod creds;
mod devices;
mod dns;
mod egress;
mod events;
mod procs;
mod profile;
mod syscalls;
mod sysctl;

pub use creds::*;
pub use devices::*;
pub use dns::*;
pub use egress::*;
pub use events::*;
pub use procs::*;
pub use profile::*;
pub use syscalls::*;
pub use sysctl::*;

/// Map names, shared so the agent opens exactly the maps the kernel side defines.
pub mod maps {
    /// `HashMap<u64 cgroup id, ProfileRef>`: which profile applies to a cgroup.
    pub const CGROUP_PROFILES: &str = "CGROUP_PROFILES";
    /// `Array<Config>` with one entry: global settings the agent updates at run time.
    pub const CONFIG: &str = "CONFIG";
    /// `LpmTrie<EgressKey, EgressValue>`: egress rules by (profile, address prefix):
    /// every entry of a profile, but the whole addresses of one that has them in
    /// `EGRESS_HOSTS`.
    pub const EGRESS: &str = "EGRESS";
    /// `HashMap<EgressKey, EgressValue>`: egress rules of whole addresses (an IPv4
    /// /32, an IPv6 /128) of profiles with many of them
    /// ([`crate::profile_flags::HOSTS_HASHED`]). A whole address is the longest prefix
    /// there is, so a flow whose address is here is decided here; the trie is searched
    /// only when it is not. Large allowlists are mostly such entries, and the kernel
    /// writes a hash map's entries faster than a trie's.
    pub const EGRESS_HOSTS: &str = "EGRESS_HOSTS";
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
    /// `Array<u64>` with one entry, [`crate::read_leads`] of `READ_PATTERNS`: which
    /// second bytes a path a read pattern matches can have. A read-only open whose path
    /// has none of them matches no read pattern, and its path is not read in full.
    pub const READ_LEADS: &str = "READ_LEADS";
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

    /// `ProgramArray`: slot 0 holds `skb_egress_dns`, the DNS half of the egress
    /// program, once some profile reads DNS.
    pub const DNS_EGRESS: &str = "DNS_EGRESS";

    /// `ProgramArray`: slot 0 holds `raw_sys_enter_own`, the packet-socket and listen
    /// checks the raw `sys_enter` tail-calls (`syscall_watch::OWN`).
    pub const OWN_CHECKS: &str = "OWN_CHECKS";

    /// Every map, for pinning.
    pub const ALL: [&str; 40] = [
        READ_LEADS,
        OWN_CHECKS,
        EGRESS_HOSTS,
        DNS_EGRESS,
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
    unsafe impl aya::Pod for super::TracepointLayout {}
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
