//! Warnings for a valid profile that says something it cannot do: a rule that can
//! never match, or never changes a verdict. `cgwarden check` prints them and the agent
//! logs them when it loads the profile; they do not refuse it.

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

/// The warnings for `profile`, each naming its rule.
pub fn warnings(profile: &Profile) -> Vec<String> {
    let egress = &profile.egress;
    let mut out = Vec::new();
    for (i, rule) in egress.rules.iter().enumerate() {
        if rule.protocol == Protocol::Icmp && !rule.ports.is_empty() {
            out.push(format!(
                "rule `{}` can never match: ICMP has no ports (remove `ports`)",
                rule.label
            ));
        }
        let same_as_default = matches!(
            (rule.action, egress.default),
            (RuleAction::Deny, EgressDefault::Deny) | (RuleAction::Allow, EgressDefault::Allow)
        );
        let opposite = |other: &super::types::EgressRule| other.action != rule.action;
        if same_as_default {
            let overlapped = egress
                .rules
                .iter()
                .filter(|o| opposite(o))
                .any(|o| o.to.iter().any(|d| rule.to.iter().any(|r| overlaps(d, r))));
            if !overlapped {
                out.push(format!(
                    "rule `{}` never changes a verdict: the default ({}) already decides what it names, and no {} rule overlaps it",
                    rule.label,
                    if egress.default == EgressDefault::Deny { "deny" } else { "allow" },
                    if rule.action == RuleAction::Deny { "allow" } else { "deny" },
                ));
            }
        }
        // An allow rule fully shadowed by a deny rule for the same prefixes: the most
        // specific prefix wins and deny wins a tie, so the allow never applies.
        if rule.action == RuleAction::Allow {
            let shadowed = egress.rules.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.action == RuleAction::Deny
                    && (o.protocol == Protocol::Any || o.protocol == rule.protocol)
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

/// Whether two destinations can name a common address (names: always, as their
/// addresses are not known here).
fn overlaps(a: &Destination, b: &Destination) -> bool {
    match (a, b) {
        (Destination::Net(x), Destination::Net(y)) => nets_overlap(x, y),
        _ => true,
    }
}

fn nets_overlap(x: &IpNetwork, y: &IpNetwork) -> bool {
    match (x, y) {
        (IpNetwork::V4(_), IpNetwork::V4(_)) | (IpNetwork::V6(_), IpNetwork::V6(_)) => {
            x.contains(y.ip()) || y.contains(x.ip())
        }
        _ => false,
    }
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
