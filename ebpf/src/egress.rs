//! Where a flow is decided: the egress allowlist lookup, shared by every network hook.
//!
//! Rules are keyed by (profile id, IPv6 or v4-mapped address), in an LPM trie (`EGRESS`);
//! a profile with thousands of whole addresses has those in a hash map (`EGRESS_HOSTS`,
//! `profile_flags::HOSTS_HASHED`), looked up first. The agent's compiler has already
//! merged each prefix's rules with those of every shorter prefix that contains it, most
//! specific first and deny before allow, so the longest match carries every rule that
//! can apply and the first rule whose port and protocol match decides.
//!
//! Minimum kernel: 5.12, for the report's total (an atomic fetch-add, in `event`); the
//! LPM trie is 4.11. Called from cgroup_skb, the report's header needs 6.16 (`event`).

use aya_ebpf::{helpers::generated::bpf_ktime_get_ns, maps::lpm_trie::Key};
use cgwarden_common::{
    EGRESS_FULL_PREFIX, EgressKey, EgressValue, LearnedKey, MAX_PORT_RULES, NameKey, NetEvent,
    RULE_DEFAULT, counters, profile_flags, proto, verdict,
};

use crate::{
    event,
    maps::{EGRESS, EGRESS_HOSTS, LEARNED, NAMES, count},
    profile::Match,
};

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

/// Decides a flow for the matched profile, reports it as the profile asks, and returns
/// whether the hook should let it proceed.
#[inline(always)]
pub fn judge(m: &Match, flow: &Flow, kind: u32, cgroup_id: u64) -> bool {
    count(counters::EGRESS_CHECKED);
    let profile = &m.profile;
    let (verdict, rule) = decide(m, flow);
    if verdict != verdict::ALLOW || profile.flags & profile_flags::REPORT_ALLOWED != 0 {
        report(m, flow, kind, cgroup_id, verdict, rule);
    }
    if verdict == verdict::DENY {
        count(counters::EGRESS_DENIED);
        false
    } else {
        true
    }
}

/// Reports a flow (aggregated with its repeats) as an event of `kind`: egress hooks
/// and the bind hook describe flows the same way.
#[inline(always)]
pub fn report(m: &Match, flow: &Flow, kind: u32, cgroup_id: u64, verdict: u8, rule: u32) {
    event::report_net(&mut NetEvent {
        header: event::header(kind, m.profile.id, cgroup_id),
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

/// The verdict for a flow and the index of the deciding rule: the static rules first,
/// then, when none matched, the addresses this container learned for the DNS names its
/// profile names.
#[inline(always)]
fn decide(m: &Match, flow: &Flow) -> (u8, u32) {
    let profile = &m.profile;
    let key = EgressKey {
        profile_be: profile.id.to_be(),
        addr: flow.addr,
    };
    let proto_bit = proto_bit(flow.protocol);
    // A whole address is the longest prefix: its entry, where there is one, decides
    // (it carries the rules of the shorter prefixes that contain it).
    let host = if profile.flags & profile_flags::HOSTS_HASHED != 0 {
        // SAFETY: values are written whole by the agent and only read here.
        unsafe { EGRESS_HOSTS.get(&key) }
    } else {
        None
    };
    let mut found = host
        .or_else(|| EGRESS.get(&Key::new(EGRESS_FULL_PREFIX, key)))
        .and_then(|value| first_match(value, flow.port, proto_bit));
    if found.is_none() && profile.flags & profile_flags::LEARN_DNS != 0 {
        found = learned(m, flow, proto_bit);
    }
    let (allowed, rule) = match found {
        Some((verdict, rule)) => (verdict == verdict::ALLOW, rule),
        None => (
            profile.flags & profile_flags::EGRESS_DEFAULT_ALLOW != 0,
            RULE_DEFAULT,
        ),
    };
    (crate::verdict::of(profile, !allowed), rule)
}

/// The first rule of an entry that matches the port and protocol.
#[inline(always)]
fn first_match(value: &EgressValue, port: u16, proto_bit: u8) -> Option<(u8, u32)> {
    let len = value.len as usize;
    for i in 0..MAX_PORT_RULES {
        if i >= len {
            break;
        }
        let r = &value.rules[i];
        if r.protocols & proto_bit != 0 && port >= r.port_lo && port <= r.port_hi {
            return Some((r.verdict, r.rule));
        }
    }
    None
}

/// The rules of the DNS name through which this container learned the address, if it
/// did and the answer has not expired.
#[inline(always)]
fn learned(m: &Match, flow: &Flow, proto_bit: u8) -> Option<(u8, u32)> {
    let key = LearnedKey {
        cgroup_id: m.cgroup,
        addr: flow.addr,
    };
    // SAFETY: values are written whole; a concurrent refresh only moves the expiry.
    let learned = unsafe { LEARNED.get(&key) }?;
    // SAFETY: plain helper call.
    if unsafe { bpf_ktime_get_ns() } > learned.expires_ns {
        return None;
    }
    let name = NameKey {
        profile: m.profile.id,
        wildcard: learned.wildcard,
        hash: learned.hash,
    };
    // SAFETY: as above.
    let value = unsafe { NAMES.get(&name) }?;
    first_match(value, flow.port, proto_bit)
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
