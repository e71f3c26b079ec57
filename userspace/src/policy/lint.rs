//! Warnings for a valid profile that says something it cannot do: a rule that can
//! never match, or never changes a verdict. `cgwarden check` prints them and the agent
//! logs them when it loads the profile; they do not refuse it.

use std::collections::HashMap;

use ipnetwork::IpNetwork;

use super::types::{Destination, EgressDefault, Profile, Protocol, RuleAction};

/// Logs the warnings of each profile (when the agent loads or reloads them).
pub fn log_warnings(profiles: &[Profile]) {
    for p in profiles {
        for w in warnings(p) {
            log::warn!("profile `{}` ({}): {w}", p.name, p.source.display());
        }
    }
}

/// The warnings for `profile`, each naming its rule. Linear in the number of rules
/// (up to a sort): a 100,000-rule profile is linted in milliseconds.
pub fn warnings(profile: &Profile) -> Vec<String> {
    let egress = &profile.egress;
    let allows = Ranges::of(egress, RuleAction::Allow);
    let denies = Ranges::of(egress, RuleAction::Deny);
    // Deny rules by their destinations, for shadowed allow rules.
    let mut deny_rules: HashMap<&Destination, Vec<usize>> = HashMap::new();
    for (j, o) in egress.rules.iter().enumerate() {
        if o.action == RuleAction::Deny {
            for d in &o.to {
                deny_rules.entry(d).or_default().push(j);
            }
        }
    }
    let mut out = Vec::new();
    for rule in &egress.rules {
        if rule.protocol == Protocol::Icmp && !rule.ports.is_empty() {
            out.push(format!(
                "rule `{}` can never match: ICMP has no ports (remove `ports`)",
                rule.label
            ));
        }
        let (same_as_default, opposite) = match (rule.action, egress.default) {
            (RuleAction::Deny, EgressDefault::Deny) => (true, &allows),
            (RuleAction::Allow, EgressDefault::Allow) => (true, &denies),
            (RuleAction::Deny, _) => (false, &allows),
            (RuleAction::Allow, _) => (false, &denies),
        };
        if same_as_default && !rule.to.iter().any(|d| opposite.overlaps(d)) {
            out.push(format!(
                "rule `{}` never changes a verdict: the default ({}) already decides what it names, and no {} rule overlaps it",
                rule.label,
                if egress.default == EgressDefault::Deny { "deny" } else { "allow" },
                if rule.action == RuleAction::Deny { "allow" } else { "deny" },
            ));
        }
        // An allow rule fully shadowed by a deny rule for the same destinations: the
        // most specific prefix wins and deny wins a tie, so the allow never applies.
        if rule.action == RuleAction::Allow
            && let Some(first) = rule.to.first()
        {
            let shadowed = deny_rules.get(first).into_iter().flatten().any(|&j| {
                let o = &egress.rules[j];
                (o.protocol == Protocol::Any || o.protocol == rule.protocol)
                    && (o.ports.is_empty()
                        || (!rule.ports.is_empty()
                            && rule
                                .ports
                                .iter()
                                .all(|p| o.ports.iter().any(|q| q.lo <= p.lo && p.hi <= q.hi))))
                    && rule.to.iter().all(|d| o.to.contains(d))
            });
            if shadowed {
                out.push(format!(
                    "rule `{}` can never match: a deny rule names the same destinations, ports and protocol, and deny wins a tie",
                    rule.label
                ));
            }
        }
    }
    out
}

/// The address ranges the rules of one action name, sorted by start with the running
/// maximum of their ends: "does any overlap [a, b]" in one binary search.
struct Ranges {
    /// (start, end) in the unified IPv6 space (IPv4 v4-mapped), sorted by start.
    spans: Vec<(u128, u128)>,
    /// `max_end[i]`: the largest end among `spans[..=i]`.
    max_end: Vec<u128>,
    /// Some rule names a DNS name: its addresses may be anything.
    names: bool,
}

impl Ranges {
    fn of(egress: &super::types::Egress, action: RuleAction) -> Self {
        let mut spans = Vec::new();
        let mut names = false;
        for rule in egress.rules.iter().filter(|r| r.action == action) {
            for d in &rule.to {
                match d {
                    Destination::Net(net) => spans.push(span(net)),
                    Destination::Name(_) => names = true,
                }
            }
        }
        spans.sort_unstable();
        let mut max_end = Vec::with_capacity(spans.len());
        let mut m = 0;
        for (_, end) in &spans {
            m = m.max(*end);
            max_end.push(m);
        }
        Self {
            spans,
            max_end,
            names,
        }
    }

    /// Whether some range can share an address with `d`.
    fn overlaps(&self, d: &Destination) -> bool {
        let Destination::Net(net) = d else {
            return !self.spans.is_empty() || self.names;
        };
        if self.names {
            return true;
        }
        let (start, end) = span(net);
        // The ranges that start at or before `end`; one of them must reach `start`.
        let n = self.spans.partition_point(|(s, _)| *s <= end);
        n > 0 && self.max_end[n - 1] >= start
    }
}

/// A network as a range of the unified IPv6 space (IPv4 v4-mapped).
fn span(net: &IpNetwork) -> (u128, u128) {
    let (base, bits, len) = match net {
        IpNetwork::V4(v4) => (
            u128::from(u32::from(v4.network())) | (0xffff_u128 << 32),
            32,
            u32::from(v4.prefix()),
        ),
        IpNetwork::V6(v6) => (u128::from(v6.network()), 128, u32::from(v6.prefix())),
    };
    let host = bits - len;
    let size = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    (base, base.saturating_add(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(body: &str) -> Vec<String> {
        let p = crate::policy::parse_str(
            &format!("name: p\nmode: enforce\negress:\n{body}"),
            std::path::Path::new("p.yaml"),
        )
        .unwrap();
        warnings(&p)
    }

    #[test]
    fn rules_that_cannot_match_or_decide_are_named() {
        let w = lint(
            "  default: deny\n  allow:\n    - to: 10.0.0.0/8\n      protocol: icmp\n      ports: [80]\n",
        );
        assert!(w.iter().any(|w| w.contains("ICMP has no ports")), "{w:?}");
        let w = lint("  default: deny\n  deny:\n    - name: pointless\n      to: 192.0.2.0/24\n");
        assert!(
            w.iter()
                .any(|w| w.contains("`pointless` never changes a verdict")),
            "{w:?}"
        );
        let w = lint(
            "  default: deny\n  allow:\n    - name: shadowed\n      to: 192.0.2.1\n      ports: [443]\n  deny:\n    - to: 192.0.2.1\n",
        );
        assert!(
            w.iter().any(|w| w.contains("`shadowed` can never match")),
            "{w:?}"
        );
        // A deny carving a hole in an allow is the point of deny rules: no warning.
        let w = lint(
            "  default: deny\n  allow:\n    - to: 10.0.0.0/8\n  deny:\n    - to: 10.9.0.0/16\n",
        );
        assert!(w.is_empty(), "{w:?}");
    }
}
