//! Sockets no address hook can judge, refused or reported when the profile forbids
//! them (`profile_flags::DENY_RAW_SOCKETS`):
//! - the cgroup sock_create hook sees every IP socket: raw sockets, and any protocol
//!   but TCP, MPTCP, UDP, UDP-Lite and ICMP ping sockets (SCTP above all, whose
//!   multi-homed sends no sock_addr hook sees), are refused with EPERM;
//! - packet sockets (`AF_PACKET`, and `AF_XDP`) never reach that hook, and their frames
//!   skip cgroup_skb egress: `socket()` of those families is caught at its tracepoint
//!   (or at the raw `sys_enter`, where the syscalls are watched through it)
//!   and the caller killed before it returns to user space (no program can make that
//!   call fail without BPF-LSM).
//!
//! Minimum kernel: 5.14, for the tracepoint's profile lookup
//! (`bpf_get_current_ancestor_cgroup_id` in tracing programs); it also needs 5.5
//! (`bpf_probe_read_kernel`) and 5.3 (`bpf_send_signal`). The sock_create hook (4.10)
//! needs 5.8 (its record goes to the ring buffer, through `event`); the task's cgroup,
//! pid and command name reach it in 5.7.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_probe_read_kernel, generated::bpf_send_signal},
    programs::{SockContext, TracePointContext},
};
use cgwarden_common::{SocketEvent, kind, profile_flags, verdict};

use crate::{event, profile};

use crate::verdict::PROCEED;
const AF_PACKET: u32 = 17;
const AF_XDP: u32 = 44;
const SOCK_RAW: u32 = 3;
const SOCK_DGRAM: u32 = 2;
const IPPROTO_ICMP: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMPV6: u32 = 58;
const IPPROTO_UDPLITE: u32 = 136;
const IPPROTO_MPTCP: u32 = 262;
const SIGKILL: u32 = 9;

/// Whether an IP socket is one the address hooks (and the packet backstop) judge.
#[inline(always)]
fn judged(sock_type: u32, protocol: u32) -> bool {
    if sock_type == SOCK_RAW {
        return false;
    }
    match protocol {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_MPTCP => true,
        // ICMP ping sockets: connect is judged, and the backstop sees their packets.
        IPPROTO_ICMP | IPPROTO_ICMPV6 => sock_type == SOCK_DGRAM,
        _ => false,
    }
}

/// Judges one IP socket creation.
#[inline(always)]
pub fn create(ctx: &SockContext) -> i32 {
    let Some(m) = profile::current() else {
        return PROCEED;
    };
    let flags = m.profile.flags;
    if flags & profile_flags::DENY_RAW_SOCKETS == 0 {
        return PROCEED;
    }
    // SAFETY: reading fields of the context the kernel passed.
    let (family, sock_type, protocol) =
        unsafe { ((*ctx.sock).family, (*ctx.sock).type_, (*ctx.sock).protocol) };
    if family != AF_PACKET && judged(sock_type, protocol) {
        return PROCEED;
    }
    let verdict = crate::verdict::of(&m.profile, true);
    report(&m, family, sock_type, protocol, verdict);
    crate::verdict::hook(verdict)
}

/// `syscalls:sys_enter_socket`: a packet socket is killed at birth (enforce) or
/// reported (audit). Record: `__syscall_nr`, then `family`, `type`, `protocol`.
#[inline(always)]
pub fn socket_call(ctx: &TracePointContext) -> u32 {
    let record = ctx.as_ptr().cast::<u8>();
    // SAFETY: the record has the three arguments, where the loader says; copied with
    // one probe read.
    let args = unsafe {
        bpf_probe_read_kernel(record.add(crate::layout::syscall_args()).cast::<[u64; 3]>())
    }
    .unwrap_or([0; 3]);
    socket(args[0], args[1], args[2]);
    0
}

/// `socket(family, type, protocol)` at its entry (from the tracepoint above, or from
/// the raw `sys_enter` program where the syscalls are watched through it).
#[inline(always)]
pub fn socket(family: u64, sock_type: u64, protocol: u64) {
    let family = family as u32;
    if family != AF_PACKET && family != AF_XDP {
        return;
    }
    let Some(m) = profile::current() else {
        return;
    };
    if m.profile.flags & profile_flags::DENY_RAW_SOCKETS == 0 {
        return;
    }
    let verdict = crate::verdict::of(&m.profile, true);
    // SOCK_NONBLOCK and SOCK_CLOEXEC ride in the type argument.
    report(&m, family, sock_type as u32 & 0xf, protocol as u32, verdict);
    if verdict == verdict::DENY {
        // SAFETY: signals the current task; it dies before it returns to user space,
        // so it never holds the socket.
        unsafe { bpf_send_signal(SIGKILL) };
    }
}

/// Sends the socket record.
#[inline(always)]
fn report(m: &profile::Match, family: u32, sock_type: u32, protocol: u32, verdict: u8) {
    let cgroup_id = m.cgroup_of_task();
    event::emit::<SocketEvent>(false, |e| {
        // SAFETY: `e` is the reserved record; every field is written here.
        unsafe {
            event::write_header(&raw mut (*e).header, kind::SOCKET, m.profile.id, cgroup_id);
            (*e).family = family;
            (*e).sock_type = sock_type;
            (*e).protocol = protocol;
            (*e).verdict = verdict;
            (*e)._pad = [0; 3];
        }
    });
}
