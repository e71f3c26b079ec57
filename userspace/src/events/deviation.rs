//! Deviations from the hardened runtime profile: credentials, devices, writes under
//! read-only paths, the runtime's user, raw and unjudged sockets.

use cgwarden_common::{
    CredsEvent, DeviationEvent, DeviceEvent, EventHeader, SocketEvent, SyscallEvent,
};
use serde::Serialize;

use super::{
    Context,
    header::{Header, c_string, verdict_name},
};

/// A deviation from the hardened runtime profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviationRecord {
    #[serde(flatten)]
    pub header: Header,
    /// `deny` when the kernel refused it, `audit` when it would have (audit mode),
    /// `report` when the kernel cannot refuse it (only report it).
    pub verdict: &'static str,
    /// What deviates: `uid`, `raw_socket`, `device`, `read_only`.
    pub deviation: &'static str,
    /// In words.
    pub detail: String,
    /// The device accessed (`device` deviations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceAccess>,
    /// What was written (`read_only` deviations): the path as judged (resolved when the
    /// call gave a relative one), the syscall, and its result (`ok`, or the error, e.g.
    /// `EROFS` when the file system itself is read-only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteAttempt>,
    pub exe: Option<String>,
    /// Credentials, for deviations about them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub creds: Option<CredsDetail>,
}

impl DeviationRecord {
    /// A deviation the kernel reported: who and where from its header; no device,
    /// write or credentials (callers add the one that applies).
    fn from_kernel(
        h: &EventHeader,
        ctx: &dyn Context,
        deviation: &'static str,
        verdict: &'static str,
        detail: String,
        exe: Option<String>,
    ) -> Self {
        Self {
            header: Header::of(h, "deviation", ctx),
            verdict,
            deviation,
            detail,
            device: None,
            write: None,
            exe,
            creds: None,
        }
    }
}

/// The credentials a credential deviation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredsDetail {
    pub euid: u32,
    pub egid: u32,
    /// Effective capabilities, by name.
    pub capabilities: Vec<String>,
    /// Those the profile does not allow (only when it names an allowed set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities_beyond_profile: Option<Vec<String>>,
    pub no_new_privileges: bool,
    /// Effective uid and capabilities before the exec, when the process table knew them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<CredsBefore>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredsBefore {
    pub euid: u32,
    pub egid: u32,
    pub capabilities: Vec<String>,
}

/// One record per deviation a credentials record reports: `euid`, `capabilities`,
/// `no_new_privileges`, `privilege_gain`.
pub fn enrich_creds(e: &CredsEvent, ctx: &dyn Context) -> Vec<DeviationRecord> {
    use crate::policy::caps::CapSet;
    use cgwarden_common::{cred_deviation as cd, cred_rule};
    let h = &e.header;
    let caps = CapSet(e.cap_effective);
    let allowed = CapSet(e.rule.allowed_caps);
    let beyond = caps.beyond(allowed);
    let before = (e.before_known != 0).then(|| CredsBefore {
        euid: e.before.euid,
        egid: e.before.egid,
        capabilities: CapSet(e.before.cap_effective).names(),
    });
    let detail = CredsDetail {
        euid: e.euid,
        egid: e.egid,
        capabilities: caps.names(),
        capabilities_beyond_profile: (e.rule.flags & cred_rule::CAPS != 0).then(|| beyond.names()),
        no_new_privileges: e.no_new_privs != 0,
        before,
    };
    let mut out = Vec::new();
    for (bit, name) in [
        (cd::EUID, "euid"),
        (cd::CAPS, "capabilities"),
        (cd::NO_NEW_PRIVS, "no_new_privileges"),
        (cd::GAINED, "privilege_gain"),
    ] {
        if e.what & bit == 0 {
            continue;
        }
        let text = match bit {
            cd::EUID => format!(
                "runs with effective uid {} (real uid {}) where the profile says uid {}",
                e.euid, h.uid, e.rule.expected_euid
            ),
            cd::CAPS => format!("holds {beyond} beyond what the profile allows ({allowed})"),
            cd::NO_NEW_PRIVS => {
                "runs without the no-new-privileges flag the profile promises".to_owned()
            }
            _ => {
                let gained = CapSet(e.cap_effective).beyond(CapSet(e.before.cap_effective));
                let mut parts = Vec::new();
                if e.euid != e.before.euid {
                    parts.push(format!("effective uid {} -> {}", e.before.euid, e.euid));
                }
                if e.egid != e.before.egid {
                    parts.push(format!("effective gid {} -> {}", e.before.egid, e.egid));
                }
                if !gained.is_empty() {
                    parts.push(format!("capabilities + {gained}"));
                }
                format!(
                    "the exec gained privileges ({}) where the profile promises no-new-privileges",
                    parts.join(", ")
                )
            }
        };
        out.push(DeviationRecord {
            creds: Some(detail.clone()),
            ..DeviationRecord::from_kernel(h, ctx, name, "report", text, Some(c_string(&e.exe)))
        });
    }
    out
}

/// A device access, as a [`DeviationRecord`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceAccess {
    /// `c` (character) or `b` (block).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub major: u32,
    pub minor: u32,
    /// What was asked: `r`, `w`, `m` (mknod), as in the profile.
    pub access: String,
    /// What the profile allows for this device (empty: nothing).
    pub allowed: String,
    /// The device's usual name (`mem`, `null`, ...), when well known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
}

/// A write under a read-only path, as a [`DeviationRecord`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteAttempt {
    /// The path written, as judged: absolute, resolved inside the container.
    pub path: String,
    /// The path as the call gave it, when that differs (relative, or with `..`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// The path could not be placed (unreadable, or relative and the process gone):
    /// reported, never treated as harmless.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub location_unknown: bool,
    pub syscall: String,
    /// `ok` or the error the call returned (`EROFS`, `EACCES`, ...).
    pub result: String,
}

/// Where a read-only write was judged to land.
pub struct Placed {
    pub path: String,
    pub written: Option<String>,
    pub location_unknown: bool,
}

/// The path a read-only record carries, as written (`None`: unreadable).
pub fn written_path(e: &SyscallEvent) -> Option<String> {
    if e.path_unreadable != 0 || e.path_len == 0 {
        return None;
    }
    let end = (e.path_len as usize).saturating_sub(1).min(e.path.len());
    Some(String::from_utf8_lossy(&e.path[..end]).into_owned())
}

/// A write under a read-only path, placed by the agent.
pub fn enrich_read_only(e: &SyscallEvent, placed: Placed, ctx: &dyn Context) -> DeviationRecord {
    let h = &e.header;
    let syscall = syscalls::Sysno::new(e.nr as usize)
        .map_or_else(|| format!("syscall_{}", e.nr), |s| s.name().to_owned());
    let ret = e.flags as i64;
    let result = if ret >= 0 {
        "ok".to_owned()
    } else {
        errno_name(-ret)
    };
    let detail = if placed.location_unknown {
        format!(
            "{syscall} writes `{}` at an unknown location (judged as read-only): {result}",
            placed.path
        )
    } else {
        format!(
            "{syscall} writes under a read-only path: {} ({result})",
            placed.path
        )
    };
    DeviationRecord {
        write: Some(WriteAttempt {
            path: placed.path,
            written: placed.written,
            location_unknown: placed.location_unknown,
            syscall,
            result,
        }),
        ..DeviationRecord::from_kernel(
            h,
            ctx,
            "read_only",
            "report",
            detail,
            Some(c_string(&e.exe)),
        )
    }
}

fn errno_name(errno: i64) -> String {
    match errno {
        1 => "EPERM",
        2 => "ENOENT",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        26 => "ETXTBSY",
        28 => "ENOSPC",
        30 => "EROFS",
        39 => "ENOTEMPTY",
        other => return format!("errno {other}"),
    }
    .to_owned()
}

/// A device access outside the profile's allowlist.
pub fn enrich_device(e: &DeviceEvent, ctx: &dyn Context) -> DeviationRecord {
    use crate::policy::devices::{access_text, char_device_name};
    let h = &e.header;
    let block = e.dev_type == cgwarden_common::device_type::BLOCK;
    let device = DeviceAccess {
        kind: if block { "b" } else { "c" },
        major: e.major,
        minor: e.minor,
        access: access_text(e.access),
        allowed: access_text(e.allowed),
        name: if block {
            None
        } else {
            char_device_name(e.major, e.minor)
        },
    };
    let what = if e.access & cgwarden_common::device_access::MKNOD != 0 {
        "mknod of"
    } else {
        "access to"
    };
    let detail = format!(
        "{what} device {} {}:{}{} ({}) outside the profile's devices",
        device.kind,
        e.major,
        e.minor,
        device
            .name
            .map(|n| format!(" /dev/{n}"))
            .unwrap_or_default(),
        device.access,
    );
    DeviationRecord {
        device: Some(device),
        ..DeviationRecord::from_kernel(h, ctx, "device", verdict_name(e.verdict), detail, None)
    }
}

/// A process running under another uid than the profile's.
pub fn enrich_deviation(e: &DeviationEvent, ctx: &dyn Context) -> DeviationRecord {
    let h = &e.header;
    DeviationRecord::from_kernel(
        h,
        ctx,
        "uid",
        "report",
        format!(
            "runs as uid {} where the profile says uid {}",
            h.uid, e.expected_uid
        ),
        Some(c_string(&e.exe)),
    )
}

/// A raw or packet socket the profile forbids.
pub fn enrich_socket(e: &SocketEvent, ctx: &dyn Context) -> DeviationRecord {
    let h = &e.header;
    let family = match e.family {
        2 => "AF_INET".to_owned(),
        10 => "AF_INET6".to_owned(),
        17 => "AF_PACKET".to_owned(),
        44 => "AF_XDP".to_owned(),
        f => format!("family {f}"),
    };
    let ty = match e.sock_type {
        1 => "SOCK_STREAM".to_owned(),
        2 => "SOCK_DGRAM".to_owned(),
        3 => "SOCK_RAW".to_owned(),
        5 => "SOCK_SEQPACKET".to_owned(),
        t => format!("type {t}"),
    };
    let protocol = match e.protocol {
        132 => "SCTP".to_owned(),
        p => format!("protocol {p}"),
    };
    let packet = matches!(e.family, 17 | 44);
    let (deviation, what) = if packet {
        (
            "packet_socket",
            "its frames skip every hook: the process is killed at socket() (enforce)",
        )
    } else if e.sock_type == 3 {
        ("raw_socket", "raw IP")
    } else {
        ("unjudged_socket", "no address hook judges this protocol")
    };
    DeviationRecord::from_kernel(
        h,
        ctx,
        deviation,
        verdict_name(e.verdict),
        format!("{family} {ty} socket ({protocol}): {what}"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use cgwarden_common::{kind, verdict};

    use super::*;
    use crate::events::{
        Raw, decode,
        testing::{Ctx, bytes_of, zeroed},
    };

    #[test]
    fn decodes_a_denied_device_access() {
        let mut e = DeviceEvent::default();
        e.header.kind = kind::DEVICE;
        e.header.profile = 3;
        e.header.cgroup_id = 99;
        e.dev_type = cgwarden_common::device_type::CHAR;
        e.major = 1;
        e.minor = 1;
        e.access = cgwarden_common::device_access::READ;
        e.verdict = verdict::DENY;
        // SAFETY: DeviceEvent is plain repr(C) data.
        let bytes = bytes_of(&e);
        let Ok(Raw::Device(decoded)) = decode(&bytes) else {
            panic!("not a device event")
        };
        let r = enrich_device(&decoded, &Ctx);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kind"], "deviation");
        assert_eq!(json["deviation"], "device");
        assert_eq!(json["verdict"], "deny");
        assert_eq!(
            json["device"],
            serde_json::json!({"type": "c", "major": 1, "minor": 1, "access": "r", "allowed": "", "name": "mem"})
        );
        assert!(r.detail.contains("/dev/mem"), "{}", r.detail);
        assert_eq!(json["cgroup"], "/docker/abc");
        assert!(json.get("container").is_none());

        // In a container's cgroup, the deviation names the container.
        struct InDocker;
        impl Context for InDocker {
            fn profile(&self, _: u32) -> Option<(&str, &[String])> {
                None
            }
            fn cgroup_path(&self, _: u64) -> Option<String> {
                Some("/docker/3f2a9c0d1e2b".to_owned())
            }
            fn wall_clock(&self, ns: u64) -> u128 {
                u128::from(ns)
            }
        }
        let json = serde_json::to_value(enrich_device(&decoded, &InDocker)).unwrap();
        assert_eq!(json["container"]["id"], "3f2a9c0d1e2b");
        assert_eq!(json["container"]["runtime"], "docker");
    }

    #[test]
    fn a_write_under_a_read_only_path_names_path_syscall_and_errno() {
        let mut e: SyscallEvent = zeroed();
        e.header.profile = 3;
        e.header.cgroup_id = 99;
        e.nr = 257; // openat
        e.flags = (-30i64) as u64; // EROFS
        let r = enrich_read_only(
            &e,
            Placed {
                path: "/etc/passwd".into(),
                written: Some("../etc/passwd".into()),
                location_unknown: false,
            },
            &Ctx,
        );
        assert_eq!((r.deviation, r.verdict), ("read_only", "report"));
        let w = r.write.as_ref().unwrap();
        assert_eq!((w.syscall.as_str(), w.result.as_str()), ("openat", "EROFS"));
        assert_eq!(w.written.as_deref(), Some("../etc/passwd"));
        assert!(r.detail.contains("/etc/passwd (EROFS)"), "{}", r.detail);
    }
}
