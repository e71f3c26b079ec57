//! The fields every record from the kernel starts with (who, where, under which
//! profile), and the small formatting helpers the record kinds share.

use std::net::{IpAddr, Ipv6Addr};

use cgwarden_common::{EventHeader, kind, verdict};
use serde::Serialize;

use super::Context;

/// Who did it, where and under which profile: serialised flat into every record that
/// comes from the kernel (`time`, `kind`, `pid`, `tid`, `process`, `uid`, `gid`,
/// `cgroup`, `cgroup_id`, `profile`, and the container's `container`, `compose` and
/// `k8s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub time: String,
    pub kind: &'static str,
    pub pid: u32,
    pub tid: u32,
    pub process: String,
    pub uid: u32,
    pub gid: u32,
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    pub profile: Option<String>,
    /// The container, when known. Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: Option<crate::engines::Identity>,
}

impl Header {
    /// The header of a kernel record of `kind`, enriched with what the agent knows.
    pub fn of(h: &EventHeader, kind: &'static str, ctx: &dyn Context) -> Self {
        Self::with_profile(h, kind, ctx, ctx.profile(h.profile).map(|(name, _)| name))
    }

    /// The same, with the profile's name already looked up (one lookup per record).
    pub fn with_profile(
        h: &EventHeader,
        kind: &'static str,
        ctx: &dyn Context,
        profile: Option<&str>,
    ) -> Self {
        Self {
            time: rfc3339(ctx.wall_clock(h.ts_ns)),
            kind,
            pid: h.pid,
            tid: h.tid,
            process: c_string(&h.comm),
            uid: h.uid,
            gid: h.gid,
            cgroup: ctx.cgroup_path(h.cgroup_id),
            cgroup_id: h.cgroup_id,
            profile: profile.map(str::to_owned),
            who: ctx.container(h.cgroup_id),
        }
    }
}

pub(super) fn display_addr(a: &[u8; 16]) -> IpAddr {
    let addr = Ipv6Addr::from(*a);
    match addr.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(addr),
    }
}

pub(super) fn kind_name(k: u32) -> &'static str {
    match k {
        kind::CONNECT => "connect",
        kind::SENDMSG => "sendmsg",
        kind::PACKET => "packet",
        kind::BIND => "bind",
        kind::LISTEN => "listen",
        _ => "unknown",
    }
}

pub(super) fn verdict_name(v: u8) -> &'static str {
    match v {
        verdict::ALLOW => "allow",
        verdict::DENY => "deny",
        verdict::AUDIT => "audit",
        _ => "unknown",
    }
}

pub(super) fn protocol_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        136 => "udplite",
        1 => "icmp",
        58 => "icmpv6",
        _ => "other",
    }
}

/// A NUL-terminated byte string.
pub fn c_string(raw: &[u8]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The wall-clock time now, as [`rfc3339`] writes it (records the agent makes itself:
/// losses, deviations found in user space).
pub fn rfc3339_now() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    rfc3339(ns)
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nanoseconds.
pub fn rfc3339(ns: u128) -> String {
    let secs = (ns / 1_000_000_000) as u64;
    let nanos = (ns % 1_000_000_000) as u32;
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::testing::Ctx;

    #[test]
    fn the_header_is_flat_in_every_record_and_names_the_container() {
        struct InDocker;
        impl Context for InDocker {
            fn profile(&self, id: u32) -> Option<(&str, &[String])> {
                Ctx.profile(id)
            }
            fn cgroup_path(&self, _: u64) -> Option<String> {
                Some("/docker/3f2a9c0d1e2b".to_owned())
            }
            fn wall_clock(&self, ns: u64) -> u128 {
                u128::from(ns)
            }
        }
        let mut h = EventHeader {
            profile: 3,
            cgroup_id: 7,
            pid: 10,
            tid: 11,
            uid: 1000,
            gid: 1001,
            ..Default::default()
        };
        h.comm[..4].copy_from_slice(b"curl");
        let json = serde_json::to_value(Header::of(&h, "connect", &InDocker)).unwrap();
        for (key, value) in [
            ("kind", serde_json::json!("connect")),
            ("pid", 10.into()),
            ("tid", 11.into()),
            ("uid", 1000.into()),
            ("gid", 1001.into()),
            ("process", "curl".into()),
            ("cgroup", "/docker/3f2a9c0d1e2b".into()),
            ("cgroup_id", 7.into()),
            ("profile", "web".into()),
        ] {
            assert_eq!(json[key], value, "{key} in {json}");
        }
        assert_eq!(json["container"]["id"], "3f2a9c0d1e2b");
        assert_eq!(json["time"], "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn names_stop_at_their_first_nul() {
        assert_eq!(c_string(b"sh\0junk"), "sh");
        assert_eq!(c_string(b"full"), "full");
    }
}
