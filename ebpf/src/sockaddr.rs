//! The cgroup sock_addr hooks (connect4/6, sendmsg4/6): read the destination the caller
//! gave, normalise it to the address it really reaches, and let [`egress::judge`] decide.
//!
//! Normalisation closes the address-form bypasses: IPv4 is judged as v4-mapped IPv6 (so
//! `::ffff:a.b.c.d` and `a.b.c.d` hit the same rules), and the unspecified addresses
//! `0.0.0.0`, `::` and `::ffff:0.0.0.0`, which reach the local host, are judged as the
//! loopback address of their family. Scope ids do not change the address and are ignored.
//!
//! Minimum kernel: 5.14, for [`listen`], a tracepoint whose profile lookup calls
//! `bpf_get_current_ancestor_cgroup_id` (in tracing programs since 5.14); it also needs
//! 5.5 (`bpf_probe_read_kernel`, through `creds`) and 5.3 (`bpf_send_signal`). The
//! sock_addr hooks (connect4/6 and bind4/6 4.17, sendmsg4/6 4.18) need 5.12, for the
//! totals their reports keep (an atomic fetch-add, in `event`); the task's cgroup, pid
//! and command name reach them in 5.7.

use aya_ebpf::{helpers::generated::bpf_get_current_cgroup_id, programs::SockAddrContext};

use crate::{
    egress, profile,
    verdict::{PROCEED, REFUSE},
};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_MPTCP: u32 = 262;

/// Which family of hook called.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Judges the destination of a connect or sendmsg and returns the hook's verdict.
#[inline(always)]
pub fn judge(ctx: &SockAddrContext, family: Family, kind: u32) -> i32 {
    let Some(m) = profile::current() else {
        return PROCEED;
    };
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the context pointer the kernel passed; every field read below is a
    // 4-byte context access the verifier allows for this program type.
    let flow = unsafe {
        let port = u16::from_be(core::ptr::read_volatile(&(*sa).user_port) as u16);
        let protocol = core::ptr::read_volatile(&(*sa).protocol);
        let addr = match family {
            Family::V4 => v4_mapped(core::ptr::read_volatile(&(*sa).user_ip4)),
            Family::V6 => {
                let mut a = [0u8; 16];
                for i in 0..4 {
                    let w = core::ptr::read_volatile(&(*sa).user_ip6[i]).to_ne_bytes();
                    a[i * 4] = w[0];
                    a[i * 4 + 1] = w[1];
                    a[i * 4 + 2] = w[2];
                    a[i * 4 + 3] = w[3];
                }
                a
            }
        };
        egress::Flow {
            addr: if kind == cgwarden_common::kind::BIND {
                addr
            } else {
                normalise(addr)
            },
            port,
            family: match family {
                Family::V4 => AF_INET,
                Family::V6 => AF_INET6,
            },
            // MPTCP is TCP to the rules.
            protocol: if protocol == IPPROTO_MPTCP {
                IPPROTO_TCP as u8
            } else {
                protocol as u8
            },
        }
    };
    // SAFETY: plain helper call without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if kind == cgwarden_common::kind::BIND {
        return if judge_bind(&m, &flow, cgroup_id) {
            PROCEED
        } else {
            REFUSE
        };
    }
    if egress::judge(&m, &flow, kind, cgroup_id) {
        PROCEED
    } else {
        REFUSE
    }
}

/// IPv4 address as the kernel hands it (network byte order in memory) → v4-mapped IPv6.
#[inline(always)]
pub fn v4_mapped(ip4: u32) -> [u8; 16] {
    let b = ip4.to_ne_bytes();
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3],
    ]
}

/// Maps the unspecified addresses to the loopback address they reach.
#[inline(always)]
pub fn normalise(mut a: [u8; 16]) -> [u8; 16] {
    let mut head_zero = true;
    for b in &a[..10] {
        if *b != 0 {
            head_zero = false;
        }
    }
    if !head_zero {
        return a;
    }
    let tail_zero = a[12] | a[13] | a[14] | a[15] == 0;
    if a[10] == 0xff && a[11] == 0xff && tail_zero {
        // ::ffff:0.0.0.0 → ::ffff:127.0.0.1
        a[12] = 127;
        a[15] = 1;
    } else if a[10] == 0 && a[11] == 0 && tail_zero {
        // :: → ::1
        a[15] = 1;
    }
    a
}

/// Whether an address (v4-mapped or IPv6) is a loopback address.
#[inline(always)]
fn loopback(a: &[u8; 16]) -> bool {
    let v4_loopback = a[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] && a[12] == 127;
    let v6_loopback = a[..15] == [0u8; 15] && a[15] == 1;
    v4_loopback || v6_loopback
}

/// The profile's bind restriction: loopback addresses only, whatever the port (a
/// wildcard bind to port 0 followed by `listen()` listens on every address; a UDP
/// socket bound to the wildcard receives from anyone). The flow here is the address
/// the caller binds; `normalise` has not turned 0.0.0.0 into loopback for binds.
#[inline(always)]
fn judge_bind(m: &crate::profile::Match, flow: &egress::Flow, cgroup_id: u64) -> bool {
    use cgwarden_common::{profile_flags, verdict};
    let flags = m.profile.flags;
    if flags & profile_flags::BIND_LOOPBACK_ONLY == 0 {
        return true;
    }
    if loopback(&flow.addr) {
        return true;
    }
    let verdict = crate::verdict::of(&m.profile, true);
    egress::report(
        m,
        flow,
        cgwarden_common::kind::BIND,
        cgroup_id,
        verdict,
        cgwarden_common::RULE_DEFAULT,
    );
    verdict != verdict::DENY
}

/// `syscalls:sys_enter_listen` under `binds: loopback`: `listen()` on a socket that is
/// unbound (the kernel autobinds it to the wildcard address, with no bind hook) or
/// bound beyond loopback (before its profile applied, or received from another
/// process). No hook can refuse a listen: the caller is killed before it returns
/// (enforce), and the attempt reported as a `listen` event. Record: `__syscall_nr` at
/// 8, `fd` at 16.
#[inline(always)]
pub fn listen_call(ctx: &aya_ebpf::programs::TracePointContext) -> u32 {
    // SAFETY: the `fd` argument of the listen record, where the loader says.
    if let Ok(fd) = unsafe { ctx.read_at::<u64>(crate::layout::syscall_args()) } {
        listen(fd);
    }
    0
}

/// `listen(fd, …)` at its entry (from the tracepoint above, or from the raw
/// `sys_enter` program where the syscalls are watched through it).
#[inline(always)]
pub fn listen(fd: u64) {
    use cgwarden_common::{RULE_DEFAULT, kind, profile_flags, verdict};
    let Some(m) = profile::current() else {
        return;
    };
    let flags = m.profile.flags;
    if flags & profile_flags::BIND_LOOPBACK_ONLY == 0 {
        return;
    }
    // Not a socket (or no offsets): listen fails or cannot be judged here; the agent
    // says at start when the kernel's BTF lacks the socket layout.
    let Some((family, port, addr)) = crate::creds::bound_address_of_fd(fd) else {
        return;
    };
    if family != AF_INET && family != AF_INET6 {
        return;
    }
    if port != 0 && loopback(&addr) {
        return;
    }
    let flow = egress::Flow {
        addr,
        port,
        family,
        protocol: IPPROTO_TCP as u8,
    };
    // SAFETY: plain helper call without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let verdict = crate::verdict::of(&m.profile, true);
    egress::report(&m, &flow, kind::LISTEN, cgroup_id, verdict, RULE_DEFAULT);
    if verdict == verdict::DENY {
        // SAFETY: signals the current task; it dies before `listen()` returns.
        unsafe { aya_ebpf::helpers::generated::bpf_send_signal(9) };
    }
}
