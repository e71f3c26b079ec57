//! Events: the pipeline from a ring-buffer record to what users read.
//!
//! 1. [`decode`]: the bytes of a kernel record into its `#[repr(C)]` type ([`Raw`]).
//! 2. enrich: each kind's module (`net`, `syscall`, `deviation`, `sysctl`, `dns`) turns
//!    its record into what users see, with the [`Context`] the agent supplies (profile
//!    names, cgroup paths, containers; the agent keeps the cache of known cgroups and a
//!    negative cache of unknown ones, `agent::unknown`). Every record from the kernel
//!    starts with the same flattened [`Header`]: who, where, which profile.
//! 3. [`aggregate`]: repeats the kernel counted become per-record counts.
//! 4. outputs: the agent hands each [`Record`] to the sinks (`sinks`), the metrics
//!    (`metrics`) and the followers of the control socket.
//!
//! [`reach`] is the agent's own judgement of a path the kernel could not decide.
//! Records are serialised as one JSON object each (docs/events.schema.json).

pub mod aggregate;
mod decode;
mod deviation;
mod dns;
mod header;
mod net;
pub mod reach;
mod syscall;
mod sysctl;

pub use decode::{DecodeError, Raw, decode};
pub use deviation::{
    CredsBefore, CredsDetail, DeviationRecord, DeviceAccess, Placed, WriteAttempt, enrich_creds,
    enrich_deviation, enrich_device, enrich_read_only, enrich_socket, written_path,
};
pub use dns::{DnsAnswer, DnsRecord, enrich_dns};
pub use header::{Header, c_string, rfc3339, rfc3339_now};
pub use net::{NetRecord, enrich_net};
pub use syscall::{Ancestor, CallResult, Reached, SyscallRecord, enrich_syscall};
pub use sysctl::{SysctlRecord, enrich_sysctl};

use serde::Serialize;

/// What the agent knows that the kernel record does not carry.
pub trait Context {
    /// Name of a compiled profile and the labels of its egress rules.
    fn profile(&self, id: u32) -> Option<(&str, &[String])>;
    /// Path of a cgroup id relative to the cgroup2 root.
    fn cgroup_path(&self, id: u64) -> Option<String>;
    /// How many arguments syscall `nr` has (6 when unknown).
    fn syscall_arity(&self, nr: u32) -> usize {
        let _ = nr;
        6
    }
    /// The label of a profile's syscall rule.
    fn syscall_rule(&self, profile: u32, rule: u32) -> Option<String> {
        let _ = (profile, rule);
        None
    }
    /// Wall-clock nanoseconds since the Unix epoch for a `CLOCK_MONOTONIC` time.
    fn wall_clock(&self, monotonic_ns: u64) -> u128;
    /// The container a cgroup belongs to (its path, or what its runtime says).
    fn container(&self, cgroup_id: u64) -> Option<crate::engines::Identity> {
        self.cgroup_path(cgroup_id)
            .and_then(|p| crate::engines::cgroup_path::identify(&p))
    }
}

/// The version of the records' format. Every record says it (`schema_version`), and
/// docs/events.schema.json describes it; it goes up when a field changes meaning or
/// goes away (a field added is no new version).
pub const SCHEMA_VERSION: u32 = 1;

/// An event as the sinks receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Net(NetRecord),
    Dns(DnsRecord),
    Syscall(SyscallRecord),
    Sysctl(SysctlRecord),
    Deviation(DeviationRecord),
    Posture(Box<PostureRecord>),
    Lost(LostRecord),
}

impl Record {
    /// Who, where and which profile, for records from the kernel.
    pub fn header(&self) -> Option<&Header> {
        match self {
            Self::Net(r) => Some(&r.header),
            Self::Dns(r) => Some(&r.header),
            Self::Syscall(r) => Some(&r.header),
            Self::Sysctl(r) => Some(&r.header),
            Self::Deviation(r) => Some(&r.header),
            Self::Posture(_) | Self::Lost(_) => None,
        }
    }

    /// When it happened (RFC 3339, UTC).
    pub fn time(&self) -> &str {
        match self {
            Self::Posture(r) => &r.time,
            Self::Lost(r) => &r.time,
            other => other.header().map_or("", |h| h.time.as_str()),
        }
    }

    /// The event kind (`connect`, `sendmsg`, `packet`, `dns`, `lost`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Posture(r) => r.kind,
            Self::Lost(r) => r.kind,
            other => other.header().map_or("unknown", |h| h.kind),
        }
    }

    /// The verdict, for flow events.
    pub fn verdict(&self) -> Option<&'static str> {
        match self {
            Self::Net(r) => Some(r.verdict),
            Self::Syscall(r) => Some(r.verdict),
            Self::Sysctl(r) => Some(r.verdict),
            Self::Deviation(r) => Some(r.verdict),
            _ => None,
        }
    }

    /// The cgroup path the event happened in, when known.
    pub fn cgroup(&self) -> Option<&str> {
        match self {
            Self::Posture(r) => r.cgroup.as_deref(),
            other => other.header().and_then(|h| h.cgroup.as_deref()),
        }
    }

    /// The cgroup's id, when the record has one.
    pub fn cgroup_id(&self) -> Option<u64> {
        self.header().map(|h| h.cgroup_id)
    }

    /// The profile rule that decided the record (flows and syscalls).
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::Net(r) => Some(&r.rule),
            Self::Syscall(r) => Some(&r.rule),
            _ => None,
        }
    }

    /// The container's name (from its OCI runtime), when known.
    pub fn container_name(&self) -> Option<&str> {
        self.who().and_then(|w| w.container.name.as_deref())
    }

    /// The container the event happened in, when known.
    pub fn who(&self) -> Option<&crate::engines::Identity> {
        match self {
            Self::Posture(r) => Some(&r.who),
            other => other.header().and_then(|h| h.who.as_ref()),
        }
    }

    /// The profile that applied, when known.
    pub fn profile(&self) -> Option<&str> {
        match self {
            Self::Posture(r) => r.profile.as_deref(),
            other => other.header().and_then(|h| h.profile.as_deref()),
        }
    }

    /// How many occurrences the record stands for.
    pub fn count(&self) -> u64 {
        match self {
            Self::Net(r) => r.count,
            Self::Syscall(r) => r.count,
            Self::Dns(_) | Self::Sysctl(_) | Self::Deviation(_) | Self::Posture(_) => 1,
            Self::Lost(r) => r.count,
        }
    }
}

/// A container's configuration checked against the CIS Docker Benchmark, when the
/// agent discovers the container and again when its configuration changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostureRecord {
    pub time: String,
    pub kind: &'static str,
    pub cgroup: Option<String>,
    /// Flattened: `container`, `compose` and `k8s`.
    #[serde(flatten)]
    pub who: crate::engines::Identity,
    /// The profile that selects the container, if one does.
    pub profile: Option<String>,
    /// `passed`, `failed`, `unknown`, `score` and every check with its evidence.
    #[serde(flatten)]
    pub posture: crate::posture::Posture,
}

/// Records the kernel could not deliver because the ring buffer was full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostRecord {
    pub time: String,
    pub kind: &'static str,
    pub count: u64,
    pub reason: &'static str,
}

impl LostRecord {
    pub fn ring_buffer_full(time: String, count: u64) -> Self {
        Self {
            time,
            kind: "lost",
            count,
            reason: "ring buffer full",
        }
    }

    /// Records a follower (`cgwarden events`) missed because it read too slowly.
    pub fn follower_too_slow(time: String, count: u64) -> Self {
        Self {
            time,
            kind: "lost",
            count,
            reason: "follower too slow",
        }
    }
}

/// What the enrichment tests of every record kind share: a context that knows one
/// profile (id 3, `web`, whose rule 0 is `api`) and one cgroup (99, `/docker/abc`).
#[cfg(test)]
mod testing {
    use super::Context;

    pub struct Ctx;

    impl Context for Ctx {
        fn profile(&self, id: u32) -> Option<(&str, &[String])> {
            static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
            (id == 3).then(|| {
                (
                    "web",
                    LABELS.get_or_init(|| vec!["api".to_owned()]).as_slice(),
                )
            })
        }
        fn cgroup_path(&self, id: u64) -> Option<String> {
            (id == 99).then(|| "/docker/abc".to_owned())
        }
        fn wall_clock(&self, monotonic_ns: u64) -> u128 {
            u128::from(monotonic_ns) + 1_700_000_000_000_000_000
        }
    }

    /// The bytes of a plain `#[repr(C)]` record, as the ring buffer hands them over.
    pub fn bytes_of<T: Copy>(e: &T) -> Vec<u8> {
        // SAFETY: the records are plain repr(C) integers and byte arrays.
        unsafe { std::slice::from_raw_parts((e as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    /// A record of zeros: every field of the kernel's records may be zero.
    pub fn zeroed<T: Copy>() -> T {
        // SAFETY: as above; all-zero bytes are a valid value of each.
        unsafe { std::mem::zeroed() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(matches!(decode(&[1, 0]), Err(DecodeError::Short { .. })));
        assert!(matches!(
            decode(&[99, 0, 0, 0]),
            Err(DecodeError::UnknownKind(99))
        ));
        assert!(matches!(
            decode(&[1, 0, 0, 0, 0]),
            Err(DecodeError::Short { kind: 1, .. })
        ));
    }
}
