//! cgwarden's kernel side: one object with every hook.
//!
//! Each program is a thin wrapper: it asks [`profile::current`] which profile applies to
//! the calling task (no profile: allow at once), normalises what the hook sees into a
//! flow, lets [`egress::decide`] judge it and [`event`] report it. Where a connect is
//! decided: [`egress::decide`].
#![no_std]
#![no_main]

mod egress;
mod event;
mod maps;
mod profile;
mod sockaddr;

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use cgwarden_common::kind;

/// Return value of a cgroup sock_addr program that lets the call proceed.
const PROCEED: i32 = 1;
/// Return value that makes the call fail with EPERM.
const REJECT: i32 = 0;

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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this, so it never runs.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
