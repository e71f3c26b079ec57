//! Connects, UDP sends, packets, binds and listens: a flow as users see it.

use cgwarden_common::{NetEvent, RULE_DEFAULT};
use serde::Serialize;

use super::{
    Context,
    header::{Header, display_addr, kind_name, protocol_name, verdict_name},
};

/// A network event as users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetRecord {
    #[serde(flatten)]
    pub header: Header,
    pub verdict: &'static str,
    pub rule: String,
    pub protocol: &'static str,
    pub family: &'static str,
    pub dst: String,
    pub port: u16,
    /// How many identical flows this record stands for (repeats are aggregated).
    pub count: u64,
}

/// Turns a decoded network record, standing for `count` occurrences, into what users
/// see.
pub fn enrich_net(e: &NetEvent, count: u64, ctx: &dyn Context) -> NetRecord {
    let h = &e.header;
    let profile = ctx.profile(h.profile);
    let rule = if e.rule == RULE_DEFAULT {
        "default".to_owned()
    } else {
        profile
            .and_then(|(_, labels)| labels.get(e.rule as usize).cloned())
            .unwrap_or_else(|| format!("#{}", e.rule))
    };
    NetRecord {
        header: Header::with_profile(h, kind_name(h.kind), ctx, profile.map(|(name, _)| name)),
        verdict: verdict_name(e.verdict),
        rule,
        protocol: protocol_name(e.protocol),
        family: if e.family == libc::AF_INET6 as u16 {
            "ipv6"
        } else {
            "ipv4"
        },
        dst: display_addr(&e.addr).to_string(),
        port: e.port,
        count,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use cgwarden_common::{kind, verdict};

    use super::*;
    use crate::events::{
        Raw, decode,
        testing::{Ctx, bytes_of},
    };

    #[test]
    fn decodes_and_enriches_a_denied_v4_connect() {
        let mut e = NetEvent::default();
        e.header.kind = kind::CONNECT;
        e.header.profile = 3;
        e.header.cgroup_id = 99;
        e.header.pid = 42;
        e.header.uid = 1000;
        e.header.comm[..4].copy_from_slice(b"curl");
        e.addr = "::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets();
        e.port = 443;
        e.family = libc::AF_INET as u16;
        e.protocol = 6;
        e.verdict = verdict::DENY;
        e.rule = 0;
        e.total = 1;
        let Ok(Raw::Net(decoded)) = decode(&bytes_of(&e)) else {
            panic!("not a net event")
        };
        let r = enrich_net(&decoded, 1, &Ctx);
        assert_eq!(r.header.kind, "connect");
        assert_eq!(r.verdict, "deny");
        assert_eq!(r.dst, "10.1.2.3");
        assert_eq!(r.header.process, "curl");
        assert_eq!(r.header.cgroup.as_deref(), Some("/docker/abc"));
        assert_eq!(r.header.profile.as_deref(), Some("web"));
        assert_eq!(r.rule, "api");
        assert_eq!(r.protocol, "tcp");
        assert!(
            r.header.time.starts_with("2023-11-14T22:13:20"),
            "{}",
            r.header.time
        );
    }

    #[test]
    fn an_ipv6_sendmsg_by_a_rule_the_profile_does_not_label_says_its_index() {
        let mut e = NetEvent::default();
        e.header.kind = kind::SENDMSG;
        e.header.profile = 3;
        e.addr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        e.port = 53;
        e.family = libc::AF_INET6 as u16;
        e.protocol = 17;
        e.verdict = verdict::AUDIT;
        e.rule = 7;
        let r = enrich_net(&e, 4, &Ctx);
        assert_eq!(
            (r.header.kind, r.verdict, r.family, r.protocol),
            ("sendmsg", "audit", "ipv6", "udp")
        );
        assert_eq!(
            (r.dst.as_str(), r.rule.as_str(), r.count),
            ("2001:db8::1", "#7", 4)
        );
        // An unknown cgroup is no path, never a guess.
        assert_eq!(r.header.cgroup, None);
    }
}
