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
    let rule = if e.rule == RULE_DEFAULT {
        "default".to_owned()
    } else {
        ctx.profile(h.profile)
            .and_then(|(_, labels)| labels.get(e.rule as usize).cloned())
            .unwrap_or_else(|| format!("#{}", e.rule))
    };
    NetRecord {
        header: Header::of(h, kind_name(h.kind), ctx),
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
