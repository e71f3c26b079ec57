//! What the two cgroup_skb hooks share: verdicts, EtherType numbers and the first
//! reads of a packet (its network protocol and the full socket that sends or receives
//! it). Egress judging is in `skb.rs`, DNS answers in `dns.rs`.
//!
//! Minimum kernel: 5.1 (`bpf_sk_fullsock` and the `sk` field of `__sk_buff`).

use aya_ebpf::{
    bindings::{__sk_buff, bpf_sock},
    helpers::generated::bpf_sk_fullsock,
};

/// cgroup_skb verdicts: let the packet through, or drop it.
pub use crate::verdict::{PROCEED as PASS, REFUSE as DROP};
/// EtherType of IPv4, as [`eth_proto`] returns it.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6, as [`eth_proto`] returns it.
pub const ETH_P_IPV6: u16 = 0x86DD;

/// The packet's network protocol (an EtherType such as [`ETH_P_IP`]), in host order.
#[inline(always)]
pub fn eth_proto(skb: *mut __sk_buff) -> u16 {
    // SAFETY: reading a field of the context the kernel passed.
    u16::from_be(unsafe { (*skb).protocol } as u16)
}

/// The full socket of the packet, or null where the packet has no socket (forwarded, or
/// a TCP control packet of a request socket) or only a request/timewait one.
#[inline(always)]
pub fn full_socket(skb: *mut __sk_buff) -> *mut bpf_sock {
    // SAFETY: reading a field of the context the kernel passed; the helper takes the
    // socket pointer the kernel put there.
    unsafe {
        let sk = (*skb).__bindgen_anon_2.sk;
        if sk.is_null() {
            return core::ptr::null_mut();
        }
        bpf_sk_fullsock(sk)
    }
}
