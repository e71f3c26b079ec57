//! DNS answers a monitored container received, and whether they were trusted.

use cgwarden_common::DnsEvent;
use serde::Serialize;

use super::{
    Context,
    header::{Header, display_addr},
};

/// A DNS answer a monitored container received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    #[serde(flatten)]
    pub header: Header,
    /// The question name.
    pub name: String,
    pub answers: Vec<DnsAnswer>,
    /// Whether the answer's addresses were allowed for the container (the profile names
    /// the name).
    pub learned: bool,
    /// Addresses not allowed because the per-name cap was reached.
    pub capped: u32,
    /// Why the answer was not trusted, when it was not (nothing was learned from it):
    /// `no_query` (no query from this socket with this id to a trusted resolver),
    /// `wrong_server`, `wrong_question`, or `forged` (a monitored process sent it from
    /// port 53; dropped). Reported at most once a second per container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsAnswer {
    pub addr: String,
    pub ttl: u32,
}

/// Turns a decoded DNS record into what users see.
pub fn enrich_dns(e: &DnsEvent, ctx: &dyn Context) -> DnsRecord {
    let h = &e.header;
    let qlen = (e.qname_len as usize).min(e.qname.len());
    let count = (e.count as usize).min(e.addrs.len());
    DnsRecord {
        header: Header::of(h, "dns", ctx),
        name: crate::dns::wire::wire_name_to_string(&e.qname[..qlen]),
        answers: e.addrs[..count]
            .iter()
            .zip(&e.ttls)
            .map(|(a, ttl)| DnsAnswer {
                addr: display_addr(a).to_string(),
                ttl: *ttl,
            })
            .collect(),
        learned: e.learned != 0,
        capped: e.capped,
        untrusted: match e.refused {
            cgwarden_common::dns_refused::NONE => None,
            cgwarden_common::dns_refused::NO_QUERY => Some("no_query"),
            cgwarden_common::dns_refused::WRONG_SERVER => Some("wrong_server"),
            cgwarden_common::dns_refused::WRONG_QUESTION => Some("wrong_question"),
            cgwarden_common::dns_refused::FORGED => Some("forged"),
            _ => Some("unknown"),
        },
    }
}

#[cfg(test)]
mod tests {
    use cgwarden_common::dns_refused;

    use super::*;
    use crate::events::testing::{Ctx, zeroed};

    #[test]
    fn an_answer_lists_only_the_addresses_it_carried_and_why_it_was_not_trusted() {
        let mut e: DnsEvent = zeroed();
        e.header.profile = 3;
        let name = b"\x03api\x04test\x00";
        e.qname[..name.len()].copy_from_slice(name);
        e.qname_len = name.len() as u32;
        e.addrs[0] = "::ffff:192.0.2.7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        e.ttls[0] = 60;
        e.addrs[1] = [0xff; 16]; // beyond `count`: not shown
        e.count = 1;
        e.learned = 1;
        let r = enrich_dns(&e, &Ctx);
        assert_eq!(r.name, "api.test");
        assert_eq!(
            r.answers,
            [DnsAnswer {
                addr: "192.0.2.7".into(),
                ttl: 60
            }]
        );
        assert!(r.learned);
        assert_eq!(r.untrusted, None);
        e.refused = dns_refused::WRONG_SERVER;
        assert_eq!(enrich_dns(&e, &Ctx).untrusted, Some("wrong_server"));
        // An answer nobody asked for names nobody (pid 0, no process name).
        e.refused = dns_refused::NO_QUERY;
        let r = enrich_dns(&e, &Ctx);
        assert_eq!(
            (r.untrusted, r.header.pid, r.header.process.as_str()),
            (Some("no_query"), 0, "")
        );
    }
}
