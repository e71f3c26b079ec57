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
