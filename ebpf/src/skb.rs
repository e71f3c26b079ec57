//! The cgroup_skb egress backstop: packets that no socket-address hook judged.
//!
//! ICMP ping sockets send without running connect4/sendmsg4, and raw sockets never run
//! them; their packets are judged here by destination, with port 0. TCP and UDP packets
//! of ordinary sockets were judged when they connected or sent, and pass untouched.
//!
//! Minimum kernel: 6.16, through what it calls: a report's header (`event`) calls
//! `bpf_get_current_uid_gid` and `bpf_get_current_comm`, which cgroup_skb programs may
//! call only since 6.16, and DNS egress (`dns.rs`) calls `bpf_loop` (5.17). Its own
//! code needs 5.8 (`bpf_skb_ancestor_cgroup_id` in cgroup_skb, through `profile`).

use aya_ebpf::{
    bindings::__sk_buff, helpers::generated::bpf_skb_cgroup_id, programs::SkBuffContext,
};
use cgwarden_common::kind;

use crate::{
    egress,
    packet::{DROP, ETH_P_IP, ETH_P_IPV6, PASS, eth_proto, full_socket},
    profile,
    sockaddr::{AF_INET, AF_INET6, normalise, v4_mapped},
};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_ICMPV6: u8 = 58;
const SOCK_RAW: u32 = 3;

/// Judges one outgoing packet. The socket decides first whether the packet needs
/// judging at all, so TCP and UDP traffic pays one helper call and nothing else.
#[inline(always)]
pub fn egress(ctx: &SkBuffContext) -> i32 {
    let skb: *mut __sk_buff = ctx.skb.skb;
    let full = full_socket(skb);
    if full.is_null() {
        // No socket: not sent by a process of this cgroup (forwarded, or a TCP control
        // packet of a request socket), judged by nothing here.
        return PASS;
    }
    // SAFETY: `full` is a full socket the kernel handed out, not null.
    let raw = unsafe {
        let raw = (*full).type_ == SOCK_RAW;
        let protocol = (*full).protocol;
        if !raw && (protocol == u32::from(IPPROTO_UDP) || protocol == u32::from(IPPROTO_TCP)) {
            // DNS queries and forged answers, over UDP and TCP, while some profile
            // reads DNS.
            if !(crate::dns::on() && crate::dns::may_carry_dns(full)) {
                return PASS;
            }
            // SAFETY: a tail call into `skb_egress_dns`, which returns the verdict.
            unsafe { crate::maps::DNS_EGRESS.tail_call(ctx, 0) };
            // Some profile reads DNS but its program is not there (the agent puts it in
            // before any such profile): drop rather than let a forged answer out or a
            // query go unrecorded.
            return DROP;
        }
        if !raw && protocol != u32::from(IPPROTO_ICMP) && protocol != u32::from(IPPROTO_ICMPV6) {
            return PASS;
        }
        raw
    };
    let Some(m) = profile::of_skb(skb) else {
        return PASS;
    };
    let eth_proto = eth_proto(skb);
    let (protocol, addr, family) = if eth_proto == ETH_P_IP {
        let Ok(header) = ctx.load::<[u8; 20]>(0) else {
            return fail_closed(&m.profile);
        };
        let daddr = u32::from_ne_bytes([header[16], header[17], header[18], header[19]]);
        (header[9], v4_mapped(daddr), AF_INET)
    } else if eth_proto == ETH_P_IPV6 {
        let Ok(header) = ctx.load::<[u8; 40]>(0) else {
            return fail_closed(&m.profile);
        };
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&header[24..40]);
        (header[6], addr, AF_INET6)
    } else {
        return PASS;
    };
    if !raw && protocol != IPPROTO_ICMP && protocol != IPPROTO_ICMPV6 {
        return PASS;
    }
    let flow = egress::Flow {
        addr: normalise(addr),
        port: 0,
        family,
        protocol,
    };
    // SAFETY: `skb` is the context pointer.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(skb) };
    if egress::judge(&m, &flow, kind::PACKET, cgroup_id) {
        PASS
    } else {
        DROP
    }
}

/// A packet of a monitored cgroup that cannot be read is dropped in enforce mode rather
/// than let through unjudged.
#[inline(always)]
fn fail_closed(profile: &cgwarden_common::ProfileRef) -> i32 {
    crate::verdict::hook(crate::verdict::of(profile, true))
}
