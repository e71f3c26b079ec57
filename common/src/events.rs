//! What every record shares: the header, event kinds and verdicts, and the ring
//! buffer's size.

/// Ring buffer size in bytes (a power of two, multiple of the page size).
pub const RINGBUF_BYTES: u32 = 8 * 1024 * 1024;

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
