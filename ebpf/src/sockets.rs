//! The cgroup sock_create hook: raw and packet sockets, which bypass every address
//! hook, are refused (enforce mode) or reported when the profile forbids them.

use aya_ebpf::programs::SockContext;
use cgwarden_common::{SocketEvent, counters, kind, profile_flags, verdict};

use crate::{
    event,
    maps::{EVENTS, count},
    profile,
};

const PROCEED: i32 = 1;
const REFUSE: i32 = 0;
const AF_PACKET: u32 = 17;
const SOCK_RAW: u32 = 3;

/// Judges one socket creation.
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
    if sock_type != SOCK_RAW && family != AF_PACKET {
        return PROCEED;
    }
    let enforce = flags & profile_flags::ENFORCE != 0;
    let verdict = if enforce {
        verdict::DENY
    } else {
        verdict::AUDIT
    };
    match EVENTS.reserve::<SocketEvent>(0) {
        Some(mut slot) => {
            slot.write(SocketEvent {
                header: event::header(kind::SOCKET, m.profile.id, m.cgroup_of_task()),
                family,
                sock_type,
                protocol,
                verdict,
                _pad: [0; 3],
            });
            slot.submit(crate::event::wakeup::<SocketEvent>());
        }
        None => count(counters::RINGBUF_DROPS),
    }
    if enforce { REFUSE } else { PROCEED }
}
