//! Where a flow is decided: the egress allowlist lookup, shared by every network hook.
//!
//! Rules live in an LPM trie keyed by (profile id, IPv6 or v4-mapped address). The agent's
//! compiler has already merged each prefix's rules with those of every shorter prefix
//! that contains it, most specific first and deny before allow, so the longest match
//! carries every rule that can apply and the first rule whose port and protocol match
//! decides.

use aya_ebpf::maps::lpm_trie::Key;
use cgwarden_common::{
    EGRESS_FULL_PREFIX, EgressKey, MAX_PORT_RULES, NetEvent, ProfileRef, RULE_DEFAULT, counters,
    profile_flags, proto, verdict,
};

use crate::{event, maps::EGRESS, maps::count};

/// A flow as every hook describes it.
pub struct Flow {
    /// IPv6 address, or IPv4 as v4-mapped IPv6, after normalisation.
    pub addr: [u8; 16],
    /// Destination port, host byte order (0 for ICMP and raw packets).
    pub port: u16,
    /// `AF_INET` or `AF_INET6`: the family the caller used.
    pub family: u16,
    /// IP protocol number.
    pub protocol: u8,
}

/// Decides a flow for `profile`, reports it as the profile asks, and returns whether
/// the hook should let it proceed.
#[inline(always)]
pub fn judge(profile: &ProfileRef, flow: &Flow, kind: u32, cgroup_id: u64) -> bool {
    count(counters::EGRESS_CHECKED);
    let (verdict, rule) = decide(profile, flow);
    if verdict != verdict::ALLOW || profile.flags & profile_flags::REPORT_ALLOWED != 0 {
        event::report_net(&mut NetEvent {
            header: event::header(kind, profile.id, cgroup_id),
            addr: flow.addr,
            port: flow.port,
            family: flow.family,
            protocol: flow.protocol,
            verdict,
            _pad: 0,
            rule,
            _pad2: 0,
            total: 0,
        });
    }
    if verdict == verdict::DENY {
        count(counters::EGRESS_DENIED);
        false
    } else {
        true
    }
}

/// The verdict for a flow and the index of the deciding rule.
#[inline(always)]
fn decide(profile: &ProfileRef, flow: &Flow) -> (u8, u32) {
    let key = Key::new(
        EGRESS_FULL_PREFIX,
        EgressKey {
            profile_be: profile.id.to_be(),
            addr: flow.addr,
        },
    );
    let proto_bit = proto_bit(flow.protocol);
    let mut allowed = profile.flags & profile_flags::EGRESS_DEFAULT_ALLOW != 0;
    let mut rule = RULE_DEFAULT;
    if let Some(value) = EGRESS.get(&key) {
        let len = value.len as usize;
        for i in 0..MAX_PORT_RULES {
            if i >= len {
                break;
            }
            let r = &value.rules[i];
            if r.protocols & proto_bit != 0 && flow.port >= r.port_lo && flow.port <= r.port_hi {
                allowed = r.verdict == verdict::ALLOW;
                rule = r.rule;
                break;
            }
        }
    }
    let verdict = if allowed {
        verdict::ALLOW
    } else if profile.flags & profile_flags::ENFORCE != 0 {
        verdict::DENY
    } else {
        verdict::AUDIT
    };
    (verdict, rule)
}

/// The rule bit that matches an IP protocol.
#[inline(always)]
fn proto_bit(protocol: u8) -> u8 {
    match protocol {
        6 => proto::TCP,
        17 | 136 => proto::UDP,
        1 | 58 => proto::ICMP,
        _ => proto::OTHER,
    }
}
