//! cgwarden's kernel side: one object with every hook.
//!
//! Each program is a thin wrapper: it asks [`profile`] which profile applies to the
//! calling task or packet (no profile: allow at once), normalises what the hook sees into
//! a flow and lets [`egress::judge`] decide and report it. Where a connect is decided:
//! `egress.rs`.
//!
//! Minimum kernel: 6.16, for the object as the agent loads it. Loading creates every
//! map, so the ring buffer (`EVENTS`, 5.8) is needed whatever is attached, and the agent
//! loads all the cgroup programs at start. Per program: skb_egress and skb_ingress 6.16
//! (the event header's `bpf_get_current_uid_gid` and `bpf_get_current_comm` reach
//! cgroup_skb programs in 6.16, `bpf_get_current_pid_tgid` in 6.10); sysctl and device
//! 6.1 (the task's ancestor cgroup, pid and command name reach them in 6.1); the
//! sock_addr hooks 5.12 (atomic fetch-add for repeat totals); sock_create 5.8. The
//! tracepoint programs, loaded when first attached: sys_exit 5.17 (`bpf_loop`),
//! sys_exit_refused 5.15 (`bpf_task_pt_regs`), the others 5.14
//! (`bpf_get_current_ancestor_cgroup_id` in tracing programs). The program types are
//! older: tracepoint 4.7, cgroup_skb and sock_create 4.10, cgroup_device 4.15,
//! connect4/6, bind4/6 and raw tracepoint 4.17, sendmsg4/6 4.18, cgroup_sysctl 5.2.
#![no_std]
#![no_main]
// BPF has no `core::sync::atomic` read-modify-write; the intrinsic lowers to BPF atomics.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod creds;
mod devices;
mod dns;
mod egress;
mod event;
mod gate;
mod layout;
mod maps;
mod packet;
mod procs;
mod profile;
mod skb;
mod sockaddr;
mod sockets;
mod syscalls;
mod sysctl;
mod verdict;

use aya_ebpf::{
    macros::{
        cgroup_device, cgroup_skb, cgroup_sock, cgroup_sock_addr, cgroup_sysctl, raw_tracepoint,
        tracepoint,
    },
    programs::{
        DeviceContext, RawTracePointContext, SkBuffContext, SockAddrContext, SockContext,
        SysctlContext, TracePointContext,
    },
};
use cgwarden_common::kind;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    sockaddr::judge(&ctx, sockaddr::Family::V4, kind::CONNECT)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    sockaddr::judge(&ctx, sockaddr::Family::V6, kind::CONNECT)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    sockaddr::judge(&ctx, sockaddr::Family::V4, kind::SENDMSG)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    sockaddr::judge(&ctx, sockaddr::Family::V6, kind::SENDMSG)
}

#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    sockaddr::judge(&ctx, sockaddr::Family::V4, kind::BIND)
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    sockaddr::judge(&ctx, sockaddr::Family::V6, kind::BIND)
}

/// Socket creation: raw and packet sockets, when the profile forbids them.
#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    sockets::create(&ctx)
}

#[cgroup_skb(egress)]
pub fn skb_egress(ctx: SkBuffContext) -> i32 {
    skb::egress(&ctx)
}

/// The DNS half of `skb_egress`, tail-called while some profile reads DNS.
#[cgroup_skb(egress)]
pub fn skb_egress_dns(ctx: SkBuffContext) -> i32 {
    dns::egress(&ctx)
}

#[cgroup_skb(ingress)]
pub fn skb_ingress(ctx: SkBuffContext) -> i32 {
    dns::ingress(&ctx)
}

/// Attached to `syscalls:sys_enter_<name>` for every syscall some profile watches.
#[tracepoint]
pub fn sys_enter(ctx: TracePointContext) -> u32 {
    syscalls::tracepoint(&ctx)
}

/// `syscalls:sys_enter_socket`, while some profile forbids packet sockets.
#[tracepoint]
pub fn sys_enter_socket(ctx: TracePointContext) -> u32 {
    sockets::socket_call(&ctx)
}

/// `syscalls:sys_enter_listen`, while some profile binds to loopback only.
#[tracepoint]
pub fn sys_enter_listen(ctx: TracePointContext) -> u32 {
    sockaddr::listen_call(&ctx)
}

/// Attached to `syscalls:sys_exit_<name>` of syscalls some rule judges by their path
/// (and, for them, the calls refused before entry).
#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    syscalls::exit(&ctx)
}

/// Attached to `syscalls:sys_exit_<name>` of the other watched syscalls: only the calls
/// refused before entry. A small program: a profile without path rules never pays for
/// verifying the path matcher.
#[tracepoint]
pub fn sys_exit_refused(ctx: TracePointContext) -> u32 {
    syscalls::exit_refused(&ctx)
}

/// Attached to the raw `sys_enter` tracepoint when a watched syscall has no tracepoint
/// of its own, and where all are watched through the raw tracepoints (`cgwarden exec`).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn raw_sys_enter(ctx: RawTracePointContext) -> i32 {
    syscalls::raw(&ctx)
}

/// Tail-called by `raw_sys_enter` (slot 0 of `OWN_CHECKS`) for `socket` and `listen`:
/// packet sockets and listens beyond loopback, where `sys_enter_socket` and
/// `sys_enter_listen` are not attached (`cgwarden exec`'s raw tracepoints).
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn raw_sys_enter_own(ctx: RawTracePointContext) -> i32 {
    syscalls::raw_own(&ctx)
}

/// Attached to the raw `sys_exit` tracepoint where syscalls are watched through the
/// raw tracepoints (`cgwarden exec`) and some rule judges a syscall by its path: what
/// `sys_exit` does, for every watched syscall.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn raw_sys_exit(ctx: RawTracePointContext) -> i32 {
    syscalls::raw_exit(&ctx)
}

/// The same, where no rule judges a syscall by its path: what `sys_exit_refused` does.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn raw_sys_exit_refused(ctx: RawTracePointContext) -> i32 {
    syscalls::raw_exit_refused(&ctx)
}

/// `sched:sched_process_exec`, for the process table.
#[tracepoint]
pub fn proc_exec(ctx: TracePointContext) -> u32 {
    procs::exec(&ctx)
}

/// `sched:sched_process_fork`, for the process table.
#[tracepoint]
pub fn proc_fork(ctx: TracePointContext) -> u32 {
    procs::fork(&ctx)
}

/// Raw `sched_process_exec`, for the process table where the hooks are raw tracepoints
/// (`cgwarden exec`).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn raw_proc_exec(ctx: RawTracePointContext) -> i32 {
    procs::raw_exec(&ctx) as i32
}

/// Raw `sched_process_fork`, as `raw_proc_exec`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn raw_proc_fork(ctx: RawTracePointContext) -> i32 {
    procs::raw_fork(&ctx) as i32
}

/// Writes under /proc/sys.
#[cgroup_sysctl]
pub fn sysctl(ctx: SysctlContext) -> i32 {
    sysctl::sysctl(&ctx)
}

/// Opens and mknods of device nodes, against the profile's device allowlist.
#[cgroup_device]
pub fn device(ctx: DeviceContext) -> i32 {
    devices::check(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this, so it never runs.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
