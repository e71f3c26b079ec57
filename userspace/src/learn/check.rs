//! What a profile would deny or report: from the records of a run under the profile
//! forced to audit mode (the kernel judged every flow: [`from_audit_run`]), or by
//! judging the records of an events file against the profile here ([`against`]).
//! [`egress_verdict`] is also what `--merge` uses to tell new flows from known ones.

use std::{collections::BTreeMap, fmt::Write as _, net::IpAddr};

use serde_json::Value;

use crate::policy::{
    Binds, Destination, EgressDefault, PortRange, Profile, Protocol, RawSockets, RuleAction,
};

/// Whether enforce mode would refuse it or only report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Deny,
    Report,
}

/// One thing the profile has something to say about, with how often it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// In words: `connect tcp 127.0.0.83:4000 (rule default) by netprobe`.
    pub what: String,
    pub count: u64,
}

/// Findings of a check, identical ones counted together, in a stable order.
#[derive(Debug, Default)]
pub struct Findings {
    by_what: BTreeMap<(Severity, String), u64>,
    /// Records the kernel could not deliver: the check saw less than happened.
    pub lost: u64,
}

impl Findings {
    fn add(&mut self, severity: Severity, what: String, count: u64) {
        *self.by_what.entry((severity, what)).or_default() += count;
    }

    pub fn list(&self) -> Vec<Finding> {
        self.by_what
            .iter()
            .map(|((severity, what), count)| Finding {
                severity: *severity,
                what: what.clone(),
                count: *count,
            })
            .collect()
    }

    /// How many distinct things enforce mode would have refused.
    pub fn denied(&self) -> usize {
        self.by_what
            .keys()
            .filter(|(s, _)| *s == Severity::Deny)
            .count()
    }

    pub fn reported(&self) -> usize {
        self.by_what.len() - self.denied()
    }

    /// Whether the check fails: something would be denied, or records were lost.
    pub fn failed(&self) -> bool {
        self.denied() > 0 || self.lost > 0
    }

    /// The findings as lines for people: `deny  …` / `report …`, then a summary.
    pub fn render(&self, profile: &str) -> String {
        let mut out = String::new();
        for f in self.list() {
            let word = match f.severity {
                Severity::Deny => "deny  ",
                Severity::Report => "report",
            };
            let _ = writeln!(out, "{word} {} ×{}", f.what, f.count);
        }
        if self.lost > 0 {
            let _ = writeln!(
                out,
                "lost   {} record(s) the kernel could not deliver: this check is incomplete",
                self.lost
            );
        }
        let _ = writeln!(
            out,
            "profile `{profile}` in enforce mode: {} would be denied, {} reported",
            self.denied(),
            self.reported()
        );
        out
    }
}

/// How a check's findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    Table,
    /// One JSON object (`-o json`).
    Json,
}

/// A check's findings as `format` prints them: `profile` is the profile's name, `file`
/// its file, and `how` says how the findings were found.
pub fn report(
    findings: &Findings,
    profile: &str,
    file: &std::path::Path,
    how: &str,
    format: Format,
) -> String {
    match format {
        Format::Table => format!(
            "check of {} ({how}):\n{}",
            file.display(),
            findings.render(profile)
        ),
        Format::Json => {
            let mut line = serde_json::json!({
                "profile": profile,
                "file": file,
                "how": how,
                "would_deny": findings.denied(),
                "would_report": findings.reported(),
                "lost": findings.lost,
                "failed": findings.failed(),
                "findings": findings.list().iter().map(|f| serde_json::json!({
                    "severity": match f.severity {
                        Severity::Deny => "deny",
                        Severity::Report => "report",
                    },
                    "what": f.what,
                    "count": f.count,
                })).collect::<Vec<_>>(),
            })
            .to_string();
            line.push('\n');
            line
        }
    }
}

/// The findings of a run under the profile in audit mode: the kernel's verdict `audit`
/// is what enforce would have refused; syscall reports, sysctl reports and deviations
/// are what it would have reported. Allowed flows (`report: all`) are not findings.
pub fn from_audit_run(records: &[Value]) -> Findings {
    let mut f = Findings::default();
    for r in records {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let verdict = s("verdict");
        let severity = match verdict.as_str() {
            "audit" | "deny" => Severity::Deny,
            _ => Severity::Report,
        };
        match s("kind").as_str() {
            "connect" | "sendmsg" | "packet" | "bind" | "listen" if severity == Severity::Deny => {
                f.add(Severity::Deny, flow_text(r, &s("rule")), count(r));
            }
            "syscall" => {
                let action = if s("action") == "kill" {
                    "kill"
                } else {
                    "report"
                };
                f.add(severity, syscall_text(r, &s("rule"), action), count(r));
            }
            "sysctl" => f.add(severity, sysctl_text(r), 1),
            "deviation" => f.add(severity, deviation_text(r), 1),
            "lost" => f.lost += count(r),
            _ => {}
        }
    }
    f
}

/// Judges the records of an events file (recorded with any profile; `report: all` so
/// allowed flows are in it) against `profile` as enforce mode would. Flows to
/// addresses the workload resolved itself (DNS answers in the file) are judged by name
/// as well; names the profile lists are not resolved here.
pub fn against(profile: &Profile, records: &[Value]) -> Findings {
    let names = super::resolved_names(records);
    let syscalls = crate::policy::compile::compile_syscalls(0, &profile.syscalls);
    let label = |rule: u32| {
        profile
            .syscalls
            .get(rule as usize)
            .map_or_else(String::new, |r| match r.set {
                Some(_) => format!("syscalls[{rule}] (escape)"),
                None => format!("syscalls[{rule}]"),
            })
    };
    let watches_sysctl = profile.syscalls.iter().find(|r| r.set.is_some());
    let mut f = Findings::default();
    for r in records {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        match s("kind").as_str() {
            "connect" | "sendmsg" | "packet" => {
                let Ok(addr) = s("dst").parse::<IpAddr>() else {
                    continue;
                };
                let proto = learned_protocol(&s("protocol"));
                let port = (proto != "icmp")
                    .then(|| r["port"].as_u64().and_then(|p| u16::try_from(p).ok()))
                    .flatten();
                let name = names.get(&s("dst")).map(String::as_str);
                let v = egress_verdict(profile, &[addr], name, proto, port);
                if !v.allowed {
                    f.add(Severity::Deny, flow_text(r, &v.rule), count(r));
                }
            }
            "bind" | "listen" if profile.runtime.binds == Binds::Loopback => {
                f.add(Severity::Deny, flow_text(r, "runtime.binds"), count(r));
            }
            "syscall" => {
                let nr = r["nr"].as_u64().unwrap_or(u64::MAX);
                if let Some((_, rule, _)) = syscalls.iter().find(|(k, _, _)| u64::from(k.nr) == nr)
                {
                    let (severity, action) = if rule.action == cgwarden_common::syscall_action::KILL
                        || rule.action == cgwarden_common::syscall_action::KILL_CONTAINER
                    {
                        (Severity::Deny, "kill")
                    } else {
                        (Severity::Report, "report")
                    };
                    f.add(
                        severity,
                        syscall_text(r, &label(rule.rule), action),
                        count(r),
                    );
                }
            }
            "sysctl" => {
                if let Some(rule) = watches_sysctl {
                    let severity = if rule.action.kills() {
                        Severity::Deny
                    } else {
                        Severity::Report
                    };
                    f.add(severity, sysctl_text(r), 1);
                }
            }
            "deviation" if r["deviation"] == "uid" => {
                if let (Some(want), Some(uid)) = (profile.runtime.user, r["uid"].as_u64())
                    && u64::from(want) != uid
                {
                    let mut r = r.clone();
                    r["detail"] =
                        format!("runs as uid {uid} where the profile says uid {want}").into();
                    f.add(Severity::Report, deviation_text(&r), 1);
                }
            }
            "deviation"
                if matches!(
                    r["deviation"].as_str(),
                    Some("raw_socket" | "packet_socket" | "unjudged_socket")
                ) && profile.raw_sockets() == RawSockets::Deny =>
            {
                f.add(Severity::Deny, deviation_text(r), 1);
            }
            "lost" => f.lost += count(r),
            _ => {}
        }
    }
    f
}

/// What enforce mode decides for a flow, and the rule that decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressVerdict {
    pub allowed: bool,
    /// The deciding rule's label, or `default`.
    pub rule: String,
    /// A deny rule (not the default) decided.
    pub explicit_deny: bool,
}

/// Judges a flow as the kernel would: to `name` (when the workload resolved the
/// address itself) at `addrs`, by `protocol` (`tcp`, `udp`, `icmp`, `any`) to `port`
/// (none for ICMP). A name rule matching the name decides first (deny before allow);
/// otherwise the flow is allowed when every address is: the most specific prefix
/// containing the address whose port and protocol match decides, deny first at equal
/// length; no match: the profile's default.
pub fn egress_verdict(
    profile: &Profile,
    addrs: &[IpAddr],
    name: Option<&str>,
    protocol: &str,
    port: Option<u16>,
) -> EgressVerdict {
    let rules = &profile.egress.rules;
    let fits = |r: &crate::policy::EgressRule| {
        protocol_fits(r.protocol, protocol) && port_fits(&r.ports, port)
    };
    if let Some(name) = name {
        for action in [RuleAction::Deny, RuleAction::Allow] {
            let hit = rules.iter().find(|r| {
                r.action == action
                    && fits(r)
                    && r.to.iter().any(|d| match d {
                        Destination::Name(n) => name_matches(n.as_str(), name),
                        Destination::Net(_) => false,
                    })
            });
            if let Some(r) = hit {
                return EgressVerdict {
                    allowed: action == RuleAction::Allow,
                    rule: r.label.clone(),
                    explicit_deny: action == RuleAction::Deny,
                };
            }
        }
    }
    let default = EgressVerdict {
        allowed: profile.egress.default == EgressDefault::Allow,
        rule: "default".to_owned(),
        explicit_deny: false,
    };
    if addrs.is_empty() {
        return default;
    }
    // The addresses are judged by the kernel's own tables: the compiled entries, looked
    // up as the kernel looks them up (names were judged above, from the answers seen).
    let entries = match crate::policy::compile::compile_egress(0, &profile.egress, &|_| Vec::new())
    {
        Ok(entries) => entries,
        Err(e) => {
            // The agent refuses such a profile; judged by its default here.
            log::warn!("profile `{}` does not compile: {e}", profile.name);
            Vec::new()
        }
    };
    let proto_bit = match protocol {
        "tcp" => cgwarden_common::proto::TCP,
        "udp" => cgwarden_common::proto::UDP,
        "icmp" => cgwarden_common::proto::ICMP,
        _ => cgwarden_common::proto::OTHER,
    };
    let mut last = default.clone();
    for addr in addrs {
        let found =
            crate::policy::compile::simulate(&entries, unmap(*addr), port.unwrap_or(0), proto_bit);
        let v = match found {
            Some((verdict, index)) => {
                let deny = verdict == cgwarden_common::verdict::DENY;
                EgressVerdict {
                    allowed: !deny,
                    rule: rules
                        .get(index as usize)
                        .map_or_else(|| format!("egress[{index}]"), |r| r.label.clone()),
                    explicit_deny: deny,
                }
            }
            None => default.clone(),
        };
        if !v.allowed {
            return v;
        }
        last = v;
    }
    last
}

/// The protocol word a learned profile and [`egress_verdict`] use for an event's.
pub fn learned_protocol(event_protocol: &str) -> &'static str {
    match event_protocol {
        "tcp" => "tcp",
        "udp" | "udplite" => "udp",
        "icmp" | "icmpv6" => "icmp",
        _ => "any",
    }
}

fn protocol_fits(rule: Protocol, flow: &str) -> bool {
    match rule {
        Protocol::Any => true,
        Protocol::Tcp => flow == "tcp",
        Protocol::Udp => flow == "udp",
        Protocol::Icmp => flow == "icmp",
    }
}

fn port_fits(ports: &[PortRange], port: Option<u16>) -> bool {
    ports.is_empty() || port.is_some_and(|p| ports.iter().any(|r| r.lo <= p && p <= r.hi))
}

/// `*.example.com` matches names below example.com; other names match themselves.
fn name_matches(rule: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match rule.strip_prefix("*.") {
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => rule == name,
    }
}

/// `::ffff:a.b.c.d` is judged as `a.b.c.d`, as the kernel does.
fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn count(r: &Value) -> u64 {
    r["count"].as_u64().unwrap_or(1)
}

fn flow_text(r: &Value, rule: &str) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    let dst = s("dst");
    let dst = if dst.contains(':') {
        format!("[{dst}]")
    } else {
        dst
    };
    format!(
        "{} {} {dst}:{} (rule {rule}) by {}",
        s("kind"),
        s("protocol"),
        r["port"],
        s("process")
    )
}

fn syscall_text(r: &Value, rule: &str, action: &str) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    let path = r["path"]
        .as_str()
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    let exe = match s("exe") {
        e if e.is_empty() => s("process"),
        e => e,
    };
    format!(
        "syscall {}{path} ({action}, rule {rule}) by {exe}",
        s("syscall")
    )
}

fn sysctl_text(r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    format!("sysctl write {} by {}", s("name"), s("process"))
}

fn deviation_text(r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    let exe = r["exe"].as_str().unwrap_or("");
    let by = if exe.is_empty() {
        s("process")
    } else {
        exe.to_owned()
    };
    format!("deviation {}: {} by {by}", s("deviation"), s("detail"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn profile(text: &str) -> Profile {
        crate::policy::parse_str(text, std::path::Path::new("p.yaml")).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_decides_and_deny_wins_a_tie() {
        let p = profile(
            "name: p\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 10.0.0.0/8\n      ports: [443]\n      protocol: tcp\n    - to: 10.9.9.9\n  deny:\n    - to: 10.9.0.0/16\n    - to: 10.9.9.9\n",
        );
        let v = |a: &str, port| egress_verdict(&p, &[ip(a)], None, "tcp", Some(port));
        assert!(v("10.1.1.1", 443).allowed);
        assert_eq!(v("10.1.1.1", 80).rule, "default");
        assert!(!v("10.1.1.1", 80).allowed);
        let d = v("10.9.1.1", 443);
        assert!(
            !d.allowed && d.explicit_deny && d.rule == "deny[0]",
            "{d:?}"
        );
        let tie = v("10.9.9.9", 443);
        assert_eq!(tie.rule, "deny[1]");
        // v4-mapped is judged as IPv4.
        assert!(v("::ffff:10.1.1.1", 443).allowed);
    }

    #[test]
    fn names_match_exactly_or_by_wildcard_and_fall_back_to_addresses() {
        let p = profile(
            "name: p\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: api.test\n      ports: [443]\n    - to: \"*.cdn.test\"\n    - to: 127.0.0.0/8\n      protocol: udp\n",
        );
        let v = |name, proto, port| {
            egress_verdict(&p, &[ip("192.0.2.1")], Some(name), proto, Some(port)).allowed
        };
        assert!(v("api.test", "tcp", 443));
        assert!(!v("api.test", "tcp", 80));
        assert!(v("a.b.cdn.test", "tcp", 80));
        assert!(!v("cdn.test", "tcp", 80));
        assert!(
            egress_verdict(&p, &[ip("127.0.0.9")], Some("other.test"), "udp", Some(53)).allowed
        );
    }

    #[test]
    fn an_events_file_is_judged_against_the_profile() {
        let p = profile(
            "name: p\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: svc.test\n      ports: [443]\n      protocol: tcp\nruntime:\n  user: 1000\n  raw_sockets: deny\nsyscalls:\n  - names: [getppid]\n    action: report\n  - set: escape\n    action: kill\n",
        );
        let records = vec![
            json!({"kind":"dns","name":"svc.test","answers":[{"addr":"127.0.0.21","ttl":60}]}),
            json!({"kind":"connect","verdict":"allow","dst":"127.0.0.21","port":443,"protocol":"tcp","count":3,"process":"app"}),
            json!({"kind":"connect","verdict":"allow","dst":"127.0.0.22","port":443,"protocol":"tcp","count":2,"process":"app"}),
            json!({"kind":"syscall","syscall":"unshare","nr":syscalls::Sysno::unshare.id(),"exe":"/bin/unshare"}),
            json!({"kind":"syscall","syscall":"getppid","nr":syscalls::Sysno::getppid.id(),"exe":"/bin/ps"}),
            json!({"kind":"deviation","deviation":"uid","uid":0,"exe":"/bin/sh"}),
            json!({"kind":"deviation","deviation":"uid","uid":1000,"exe":"/bin/sh"}),
        ];
        let f = against(&p, &records);
        let list = f.list();
        assert_eq!(f.denied(), 2, "{list:?}");
        assert_eq!(f.reported(), 2, "{list:?}");
        assert!(list[0].what.contains("127.0.0.22:443"), "{list:?}");
        assert_eq!(list[0].count, 2);
        assert!(list[1].what.starts_with("syscall unshare"), "{list:?}");
        assert!(f.failed());
        assert!(f.render("p").contains("2 would be denied, 2 reported"));
    }

    #[test]
    fn an_audit_run_lists_audited_flows_not_allowed_ones() {
        let records = vec![
            json!({"kind":"connect","verdict":"allow","dst":"127.0.0.1","port":80,"protocol":"tcp","rule":"allow[0]","process":"a"}),
            json!({"kind":"connect","verdict":"audit","dst":"127.0.0.2","port":80,"protocol":"tcp","rule":"default","process":"a","count":2}),
            json!({"kind":"dns","name":"x.test","answers":[]}),
            json!({"kind":"syscall","verdict":"allow","action":"report","syscall":"ptrace","rule":"syscalls[0]","exe":"/bin/gdb","count":3}),
        ];
        let f = from_audit_run(&records);
        assert_eq!(f.denied(), 1);
        assert_eq!(f.reported(), 1);
        assert_eq!(
            f.list()[1].what,
            "syscall ptrace (report, rule syscalls[0]) by /bin/gdb"
        );
        assert_eq!(f.list()[1].count, 3, "repeats the kernel counted");
        assert_eq!(
            f.list()[0].what,
            "connect tcp 127.0.0.2:80 (rule default) by a"
        );
        assert_eq!(f.list()[0].count, 2);
        assert!(!from_audit_run(&records[..1]).failed());
    }
}
