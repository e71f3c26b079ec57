//! Compiling a profile's egress rules into `EGRESS` LPM trie entries (a profile with
//! thousands of whole addresses has those in the `EGRESS_HOSTS` hash map instead,
//! [`hashes_hosts`]).
//!
//! The kernel does one longest-prefix lookup per flow and then walks the port rules of
//! the entry it found. For that to be correct, each entry must carry the rules of every
//! shorter prefix that contains it: the compiler merges them in, most specific prefix
//! first and deny before allow within one prefix, so the first rule whose port and
//! protocol match is the one that decides. IPv4 lives in the v4-mapped range
//! `::ffff:0:0/96`, which IPv6 rules with shorter prefixes (such as `::/0`) do not reach:
//! an IPv6 rule never allows IPv4 traffic.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
};

use cgwarden_common::{
    EgressKey, EgressValue, MAX_PORT_RULES, NO_ARG, NameKey, PortRule, SyscallKey, SyscallRule,
    syscall_action, verdict,
};
use ipnetwork::IpNetwork;
use syscalls::Sysno;

use super::types::{Destination, DnsName, Egress, EgressRule, PortRange, RuleAction};

/// One entry for the `EGRESS` map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressEntry {
    /// LPM prefix length in bits, profile id included (32 + address prefix).
    pub prefix_len: u32,
    pub key: EgressKey,
    pub value: EgressValue,
}

/// Why a profile's egress rules cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error(
        "{prefix} is covered by {count} port/protocol rules after merging overlapping rules; at most {max} fit in one entry"
    )]
    TooManyPortRules {
        prefix: String,
        count: usize,
        max: usize,
    },
    #[error(
        "the names `{first}` and `{second}` have the same kernel hash; the profile cannot name both"
    )]
    NameCollision { first: String, second: String },
}

/// A prefix in the unified IPv6 space.
type Prefix = (u128, u8);

const V4_MAPPED: Prefix = (0xffff_u128 << 32, 96);

/// Compiles `egress` for the profile id `profile`. `resolve` gives the current
/// addresses of a DNS name (the agent's resolver; a wildcard name has none of its own).
pub fn compile_egress(
    profile: u32,
    egress: &Egress,
    resolve: &dyn Fn(&DnsName) -> Vec<IpAddr>,
) -> Result<Vec<EgressEntry>, CompileError> {
    // Every (prefix, port rule) pair in rule order, then sorted by prefix: a stable sort
    // keeps each prefix's rules in rule order, and the groups come out in key order (as
    // the kernel's batches are written), with no map of vectors to build.
    let mut pairs: Vec<(Prefix, PortRule)> =
        Vec::with_capacity(egress.rules.iter().map(|r| r.to.len()).sum());
    for (index, rule) in egress.rules.iter().enumerate() {
        let mut add = |prefix: Prefix| pairs.extend(port_rules(rule, index).map(|r| (prefix, r)));
        for dest in &rule.to {
            match dest {
                Destination::Net(net) => add(to_prefix(*net)),
                Destination::Name(name) => resolve(name)
                    .into_iter()
                    .for_each(|ip| add(to_prefix(IpNetwork::from(ip)))),
            }
        }
    }
    pairs.sort_by_key(|(prefix, _)| *prefix);
    let mut groups: Vec<(Prefix, std::ops::Range<usize>)> = Vec::new();
    for (i, (prefix, _)) in pairs.iter().enumerate() {
        match groups.last_mut() {
            Some((last, range)) if last == prefix => range.end = i + 1,
            _ => groups.push((*prefix, i..i + 1)),
        }
    }
    // An IPv6 rule that covers the v4-mapped range must not decide IPv4 flows: a
    // barrier entry at ::ffff:0:0/96 stops the longest-prefix search there.
    let v6_covers_v4 = groups
        .iter()
        .any(|&((addr, len), _)| len < V4_MAPPED.1 && mask(V4_MAPPED.0, len) == addr);
    if v6_covers_v4 && let Err(at) = groups.binary_search_by_key(&V4_MAPPED, |(p, _)| *p) {
        groups.insert(at, (V4_MAPPED, 0..0));
    }
    // A prefix's own rules (those written for it), in rule order.
    let own_rules = |prefix: &Prefix| -> Option<&[(Prefix, PortRule)]> {
        let at = groups.binary_search_by_key(prefix, |(p, _)| *p).ok()?;
        Some(&pairs[groups[at].1.clone()])
    };

    let lengths: BTreeSet<u8> = groups.iter().map(|&((_, len), _)| len).collect();
    let mut entries = Vec::with_capacity(groups.len());
    let mut rules: Vec<PortRule> = Vec::new();
    for ((addr, len), range) in groups.iter().cloned() {
        let in_v4 = len >= V4_MAPPED.1 && mask(addr, V4_MAPPED.1) == V4_MAPPED.0;
        rules.clear();
        push_ordered(&mut rules, rules_of(&pairs[range]));
        // Shorter prefixes that contain this one, longest first.
        for &l in lengths.range(..len).rev() {
            if in_v4 && l < V4_MAPPED.1 {
                break;
            }
            if let Some(outer) = own_rules(&(mask(addr, l), l)) {
                push_ordered(&mut rules, rules_of(outer));
            }
        }
        if rules.len() > MAX_PORT_RULES {
            return Err(CompileError::TooManyPortRules {
                prefix: display_prefix((addr, len)),
                count: rules.len(),
                max: MAX_PORT_RULES,
            });
        }
        let mut value = EgressValue {
            len: rules.len() as u32,
            ..Default::default()
        };
        value.rules[..rules.len()].copy_from_slice(&rules);
        entries.push(EgressEntry {
            prefix_len: 32 + u32::from(len),
            key: EgressKey {
                profile_be: profile.to_be(),
                addr: addr.to_be_bytes(),
            },
            value,
        });
    }
    Ok(entries)
}

impl EgressEntry {
    /// Whether the entry covers one whole address (an IPv4 /32, an IPv6 /128).
    pub fn is_host(&self) -> bool {
        self.prefix_len == cgwarden_common::EGRESS_FULL_PREFIX
    }
}

/// Whether a profile's whole-address entries go to `EGRESS_HOSTS`: when it has at least
/// [`cgwarden_common::HOSTS_HASHED_MIN`] of them.
pub fn hashes_hosts(entries: &[EgressEntry]) -> bool {
    entries.iter().filter(|e| e.is_host()).count() >= cgwarden_common::HOSTS_HASHED_MIN
}

/// The syscalls a profile watches, as `SYSCALL_RULES` entries with the syscall each
/// stands for. A syscall named by several rules keeps the strictest action (kill over
/// report); the rule reported is the first with that action.
pub fn compile_syscalls(
    profile: u32,
    rules: &[super::types::SyscallRule],
) -> Vec<(SyscallKey, SyscallRule, Sysno)> {
    use super::types::{SyscallAction, SyscallSet};
    let mut by_nr: std::collections::BTreeMap<u32, (SyscallRule, Sysno)> = Default::default();
    for (index, rule) in rules.iter().enumerate() {
        let action = match rule.action {
            SyscallAction::Report => syscall_action::REPORT,
            SyscallAction::Kill => syscall_action::KILL,
            SyscallAction::KillContainer => syscall_action::KILL_CONTAINER,
        };
        let named = rule
            .names
            .iter()
            .filter_map(|n| n.sysno())
            .map(|s| crate::policy::syscalls::spec(s, false));
        let from_set = rule
            .set
            .iter()
            .flat_map(|set| match set {
                SyscallSet::Escape => crate::policy::syscalls::ESCAPE
                    .iter()
                    .chain(crate::policy::syscalls::ESCAPE_PATH_SYSCALLS),
            })
            .filter(|n| rule.except.iter().all(|e| e.as_str() != **n))
            .filter_map(|n| crate::policy::syscalls::lookup(n))
            .map(|s| crate::policy::syscalls::spec(s, true));
        for spec in named.chain(from_set) {
            let compiled = SyscallRule {
                action,
                path_arg: spec.path_arg.unwrap_or(NO_ARG),
                flags_arg: spec.flags.map_or(NO_ARG, |f| f.arg),
                flags_indirect: spec.flags.map_or(0, |f| u8::from(f.indirect)),
                rule: u32::try_from(index).unwrap_or(u32::MAX - 2),
                flags_mask: spec.flags.map_or(0, |f| f.mask),
                path_filter: u8::from(spec.path_filter),
                sockaddr: u8::from(spec.sockaddr),
                open_flags_arg: spec.open_flags.map_or(NO_ARG, |(a, _)| a),
                open_flags_indirect: spec.open_flags.map_or(0, |(_, i)| u8::from(i)),
                read_only: 0,
                write_path_arg: NO_ARG,
                write_path_arg2: NO_ARG,
                str_arg: spec.str_arg.unwrap_or(NO_ARG),
                dirty_pipe: u8::from(spec.dirty_pipe),
                fd_ino_arg: if spec.sysno.name() == "setns" {
                    0
                } else {
                    NO_ARG
                },
                _pad: [0; 6],
            };
            let nr = spec.sysno.id() as u32;
            match by_nr.get_mut(&nr) {
                None => {
                    by_nr.insert(nr, (compiled, spec.sysno));
                }
                Some((existing, _)) => {
                    if compiled.action > existing.action {
                        *existing = compiled;
                    } else if compiled.action == existing.action {
                        // A rule without a condition watches every call.
                        if compiled.flags_mask == 0 {
                            existing.flags_arg = NO_ARG;
                            existing.flags_mask = 0;
                            existing.flags_indirect = 0;
                        }
                        if compiled.path_filter == 0 {
                            existing.path_filter = 0;
                        }
                    }
                }
            }
        }
    }
    by_nr
        .into_iter()
        .map(|(nr, (rule, sysno))| (SyscallKey { profile, nr }, rule, sysno))
        .collect()
}

/// One entry for the `NAMES` map: the port rules of a DNS name (or wildcard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameEntry {
    pub key: NameKey,
    pub value: EgressValue,
    /// The name itself, which the kernel compares after the hash matched.
    pub text: cgwarden_common::NameText,
}

/// Compiles the DNS names of `egress` into `NAMES` entries: the kernel allows an address
/// a container learned from an answer for one of these names with the name's rules.
pub fn compile_names(profile: u32, egress: &Egress) -> Result<Vec<NameEntry>, CompileError> {
    let mut by_name: HashMap<(u32, u64), (String, Vec<PortRule>, cgwarden_common::NameText)> =
        HashMap::new();
    for (index, rule) in egress.rules.iter().enumerate() {
        for dest in &rule.to {
            if let Destination::Name(name) = dest {
                let entry = by_name
                    .entry(name.kernel_hash())
                    .or_insert_with(|| (name.to_string(), Vec::new(), name.kernel_text()));
                // Two names of one profile with the same hash: the kernel could tell
                // only one of them by its text. Refused rather than half-enforced.
                if entry.2 != name.kernel_text() {
                    return Err(CompileError::NameCollision {
                        first: entry.0.clone(),
                        second: name.to_string(),
                    });
                }
                entry.1.extend(port_rules(rule, index));
            }
        }
    }
    let mut entries = Vec::with_capacity(by_name.len());
    for ((wildcard, hash), (name, rules, text)) in by_name {
        let mut ordered = Vec::new();
        push_ordered(&mut ordered, rules.iter().copied());
        if ordered.len() > MAX_PORT_RULES {
            return Err(CompileError::TooManyPortRules {
                prefix: name,
                count: ordered.len(),
                max: MAX_PORT_RULES,
            });
        }
        let mut value = EgressValue {
            len: ordered.len() as u32,
            ..Default::default()
        };
        value.rules[..ordered.len()].copy_from_slice(&ordered);
        entries.push(NameEntry {
            key: NameKey {
                profile,
                wildcard,
                hash,
            },
            value,
            text,
        });
    }
    Ok(entries)
}

/// The kernel port rules of one profile rule.
fn port_rules(rule: &EgressRule, index: usize) -> impl Iterator<Item = PortRule> + '_ {
    let verdict = match rule.action {
        RuleAction::Allow => verdict::ALLOW,
        RuleAction::Deny => verdict::DENY,
    };
    let ports: &[PortRange] = if rule.ports.is_empty() {
        &[PortRange::ALL]
    } else {
        &rule.ports
    };
    ports.iter().map(move |range| PortRule {
        port_lo: range.lo,
        port_hi: range.hi,
        protocols: rule.protocol.bits(),
        verdict,
        _pad: 0,
        rule: u32::try_from(index).unwrap_or(u32::MAX - 2),
    })
}

/// The port rules of (prefix, rule) pairs.
fn rules_of(pairs: &[(Prefix, PortRule)]) -> impl Iterator<Item = PortRule> + Clone + '_ {
    pairs.iter().map(|(_, r)| *r)
}

/// Appends one prefix's rules, deny before allow, skipping rules that an earlier one
/// already covers exactly.
fn push_ordered(out: &mut Vec<PortRule>, rules: impl Iterator<Item = PortRule> + Clone) {
    for wanted in [verdict::DENY, verdict::ALLOW] {
        for r in rules.clone().filter(|r| r.verdict == wanted) {
            let duplicate = out.iter().any(|o| {
                o.port_lo == r.port_lo
                    && o.port_hi == r.port_hi
                    && o.protocols & r.protocols == r.protocols
            });
            if !duplicate {
                out.push(r);
            }
        }
    }
}

fn to_prefix(net: IpNetwork) -> Prefix {
    match net {
        IpNetwork::V4(n) => (
            V4_MAPPED.0 | u128::from(u32::from(n.network())),
            96 + n.prefix(),
        ),
        IpNetwork::V6(n) => (u128::from(n.network()), n.prefix()),
    }
}

fn mask(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

fn display_prefix((addr, len): Prefix) -> String {
    let ip = std::net::Ipv6Addr::from(addr);
    match ip.to_ipv4_mapped() {
        Some(v4) if len >= 96 => format!("{v4}/{}", len - 96),
        _ => format!("{ip}/{len}"),
    }
}

/// What the kernel would decide for a flow, computed from compiled entries the way the
/// kernel does it (the longest prefix, then its first rule whose port and protocol
/// match): the rule's verdict and index. Tests check the compiler with it, and
/// `learn --check` judges recorded flows with it.
pub(crate) fn simulate(
    entries: &[EgressEntry],
    ip: IpAddr,
    port: u16,
    proto_bit: u8,
) -> Option<(u8, u32)> {
    let (addr, _) = to_prefix(IpNetwork::from(ip));
    let best = entries
        .iter()
        .filter(|e| {
            let len = (e.prefix_len - 32) as u8;
            mask(addr, len) == u128::from_be_bytes(e.key.addr)
        })
        .max_by_key(|e| e.prefix_len)?;
    best.value.rules[..best.value.len as usize]
        .iter()
        .find(|r| r.protocols & proto_bit != 0 && (r.port_lo..=r.port_hi).contains(&port))
        .map(|r| (r.verdict, r.rule))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_carry_their_text_and_colliding_names_are_refused() {
        use crate::policy::types::DnsName;
        let crafted = DnsName::try_from("7cqlefsflw3pe.api.test".to_owned()).unwrap();
        let allowed = DnsName::try_from("ntc3cjkjmbzmp.api.test".to_owned()).unwrap();
        // The pair the DNS trust test uses: one kernel hash, two names.
        assert_eq!(crafted.kernel_hash(), allowed.kernel_hash());
        assert_ne!(crafted.kernel_text(), allowed.kernel_text());
        let wild = DnsName::try_from("*.Api.Test".to_owned())
            .unwrap()
            .kernel_text();
        assert_eq!(&wild.wire[..wild.len as usize], b"\x03api\x04test\x00");
        let profile = crate::policy::parse_str(
            "name: p\nmode: audit\negress:\n  default: deny\n  allow:\n    - to: [7cqlefsflw3pe.api.test, ntc3cjkjmbzmp.api.test]\n",
            std::path::Path::new("p.yaml"),
        )
        .unwrap();
        let err = compile_names(1, &profile.egress).unwrap_err();
        assert!(err.to_string().contains("same kernel hash"), "{err}");
    }

    use std::path::Path;

    use cgwarden_common::proto;

    use super::*;
    use crate::policy::parse_str;

    fn compile(yaml: &str) -> Vec<EgressEntry> {
        let p = parse_str(yaml, Path::new("t.yaml")).unwrap();
        compile_egress(7, &p.egress, &|_| vec!["127.0.0.9".parse().unwrap()]).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_carries_outer_ports() {
        let e = compile(
            "name: t\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.0/8\n      ports: [443]\n    - to: 10.1.0.0/16\n      ports: [80]\n",
        );
        assert_eq!(
            simulate(&e, ip("10.1.2.3"), 443, proto::TCP),
            Some((verdict::ALLOW, 0))
        );
        assert_eq!(
            simulate(&e, ip("10.1.2.3"), 80, proto::TCP),
            Some((verdict::ALLOW, 1))
        );
        assert_eq!(simulate(&e, ip("10.2.2.3"), 80, proto::TCP), None);
        assert_eq!(simulate(&e, ip("11.0.0.1"), 443, proto::TCP), None);
    }

    #[test]
    fn more_specific_deny_carves_out_of_allow() {
        let e = compile(
            "name: t\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.0/8\n  deny:\n    - to: 10.9.0.0/16\n      ports: [22]\n",
        );
        assert_eq!(
            simulate(&e, ip("10.9.0.1"), 22, proto::TCP),
            Some((verdict::DENY, 1))
        );
        assert_eq!(
            simulate(&e, ip("10.9.0.1"), 23, proto::TCP),
            Some((verdict::ALLOW, 0))
        );
    }

    #[test]
    fn ipv4_and_v4_mapped_share_rules_but_ipv6_any_does_not_cover_ipv4() {
        let e = compile(
            "name: t\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: ::/0\n      ports: [53]\n    - to: 127.0.0.1\n",
        );
        assert_eq!(
            simulate(&e, ip("::ffff:127.0.0.1"), 5, proto::UDP),
            Some((verdict::ALLOW, 1))
        );
        assert_eq!(
            simulate(&e, ip("127.0.0.1"), 5, proto::UDP),
            Some((verdict::ALLOW, 1))
        );
        assert_eq!(simulate(&e, ip("127.0.0.2"), 53, proto::UDP), None);
        assert_eq!(
            simulate(&e, ip("2001:db8::1"), 53, proto::UDP),
            Some((verdict::ALLOW, 0))
        );
    }

    #[test]
    fn protocols_and_names() {
        let e = compile(
            "name: t\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: example.com\n      protocol: udp\n      ports: [\"1000-2000\"]\n",
        );
        assert_eq!(
            simulate(&e, ip("127.0.0.9"), 1500, proto::UDP),
            Some((verdict::ALLOW, 0))
        );
        assert_eq!(simulate(&e, ip("127.0.0.9"), 1500, proto::TCP), None);
        assert_eq!(simulate(&e, ip("127.0.0.9"), 2001, proto::UDP), None);
    }

    #[test]
    fn names_compile_to_hashed_keys_with_their_rules() {
        let p = parse_str(
            "name: t\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: [API.example.com, \"*.cdn.example\"]\n      ports: [443]\n    - to: api.example.com\n      ports: [80]\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let mut names = compile_names(3, &p.egress).unwrap();
        names.sort_by_key(|n| n.key.wildcard);
        assert_eq!(names.len(), 2);
        let exact = &names[0];
        assert_eq!(exact.key.wildcard, 0);
        assert_eq!(exact.value.len, 2);
        assert_eq!(
            (exact.value.rules[0].port_lo, exact.value.rules[1].port_lo),
            (443, 80)
        );
        assert_eq!(names[1].key.wildcard, 1);
        // The wildcard's hash is the hash of the name after `*.`.
        let plain = crate::policy::DnsName::try_from("cdn.example".to_owned()).unwrap();
        assert_eq!(names[1].key.hash, plain.kernel_hash().1);
    }

    #[test]
    fn kernel_hash_folds_label_hashes() {
        use cgwarden_common::{FNV_OFFSET, FNV_PRIME};
        let fnv = |bytes: &[u8]| {
            bytes.iter().fold(FNV_OFFSET, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
            })
        };
        let expected = [fnv(b"a"), fnv(b"bc")]
            .iter()
            .fold(FNV_OFFSET, |h, l| (h ^ l).wrapping_mul(FNV_PRIME));
        let name = crate::policy::DnsName::try_from("A.bc.".to_owned()).unwrap();
        assert_eq!(name.kernel_hash(), (0, expected));
    }

    #[test]
    fn syscall_rules_merge_to_the_strictest_action() {
        let p = parse_str(
            "name: t\nmode: enforce\nsyscalls:\n  - names: [mount, clone]\n    action: report\n  - set: escape\n    action: kill\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let rules = compile_syscalls(4, &p.syscalls);
        let find = |name: &str| {
            let nr = crate::policy::syscalls::lookup(name).unwrap().id() as u32;
            rules
                .iter()
                .find(|(k, _, _)| k.nr == nr)
                .map(|(_, r, _)| *r)
                .unwrap()
        };
        let mount = find("mount");
        assert_eq!(
            (mount.action, mount.rule, mount.path_arg),
            (syscall_action::KILL, 1, 1)
        );
        // clone: killed only with namespace flags (the escape set's condition).
        let clone = find("clone");
        assert_eq!(clone.action, syscall_action::KILL);
        assert_eq!(clone.flags_mask, crate::policy::syscalls::CLONE_NS_FLAGS);
        assert_eq!(
            rules.len(),
            crate::policy::syscalls::ESCAPE.len()
                + crate::policy::syscalls::ESCAPE_PATH_SYSCALLS.len()
        );
        assert!(rules.iter().all(|(k, _, _)| k.profile == 4));
    }

    #[test]
    fn unknown_syscalls_are_refused_at_their_line() {
        let e = parse_str(
            "name: t\nmode: enforce\nsyscalls:\n  - names: [mount, teleport]\n    action: kill\n",
            Path::new("t.yaml"),
        )
        .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("teleport"), "{e}");
    }

    #[test]
    fn too_many_port_rules_is_an_error() {
        let ports: Vec<String> = (1..=17).map(|p| p.to_string()).collect();
        let yaml = format!(
            "name: t\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.0/8\n      ports: [{}]\n",
            ports.join(", ")
        );
        let p = parse_str(&yaml, Path::new("t.yaml")).unwrap();
        let err = compile_egress(1, &p.egress, &|_| vec![]).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/8"), "{err}");
    }
}
