//! Where a flow is decided: the egress allowlist lookup.
//!
//! Rules live in an LPM trie keyed by (profile id, IPv6 or v4-mapped address). The agent's
//! compiler has already merged each prefix's rules with those of every shorter prefix
//! that contains it and ordered them deny-first, so the longest match carries every rule
//! that can apply and the first rule whose port and protocol match decides.

use aya_ebpf::maps::lpm_trie::Key;
use cgwarden_common::{
    EGRESS_FULL_PREFIX, EgressKey, MAX_PORT_RULES, ProfileRef, RULE_DEFAULT, profile_flags, verdict,
};

use crate::maps::EGRESS;

/// A flow as every hook describes it to [`decide`].
pub struct Flow {
    /// IPv6 address, or IPv4 as v4-mapped IPv6, after normalisation.
    pub addr: [u8; 16],
    /// Destination port, host byte order.
    pub port: u16,
    /// `cgwarden_common::proto` bit of the flow's protocol.
    pub proto_bit: u8,
}

/// What [`decide`] concluded.
pub struct Decision {
    /// `verdict::ALLOW`, `DENY` or `AUDIT`.
    pub verdict: u8,
    /// Index of the deciding rule, or `RULE_DEFAULT`.
    pub rule: u32,
}

/// Judges a flow against a profile's egress rules.
#[inline(always)]
pub fn decide(profile: &ProfileRef, flow: &Flow) -> Decision {
    let key = Key::new(
        EGRESS_FULL_PREFIX,
        EgressKey {
            profile_be: profile.id.to_be(),
            addr: flow.addr,
        },
    );
    let mut allowed = profile.flags & profile_flags::EGRESS_DEFAULT_ALLOW != 0;
    let mut rule = RULE_DEFAULT;
    if let Some(value) = EGRESS.get(&key) {
        let len = value.len as usize;
        for i in 0..MAX_PORT_RULES {
            if i >= len {
                break;
            }
            let r = &value.rules[i];
            if r.protocols & flow.proto_bit != 0 && flow.port >= r.port_lo && flow.port <= r.port_hi
            {
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
    Decision { verdict, rule }
}
