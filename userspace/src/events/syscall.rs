//! A watched syscall as users see it: what was called, with which arguments, by which
//! process chain, how it ended and what it reached.

use cgwarden_common::{SyscallEvent, reached, syscall_action};
use serde::Serialize;

use super::{
    Context,
    header::{Header, c_string, verdict_name},
};

/// A watched syscall as users see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyscallRecord {
    #[serde(flatten)]
    pub header: Header,
    /// `deny` (the process was killed), `audit` (kill was due, the profile audits) or
    /// `allow` (reported only).
    pub verdict: &'static str,
    /// The rule's action: `kill`, `kill-container` or `report`.
    pub action: &'static str,
    pub syscall: String,
    pub nr: u32,
    pub args: serde_json::Map<String, serde_json::Value>,
    /// The path argument, when the syscall has one.
    pub path: Option<String>,
    /// The path argument could not be read (an unknown path, not a harmless one).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_unreadable: bool,
    /// The parent process, as the process table knows it (0 when unknown).
    pub ppid: u32,
    /// The program the process executed.
    pub exe: String,
    /// The processes behind it, parent first: pid and executable, as far as the
    /// process table reaches (up to 8 generations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<Ancestor>,
    pub rule: String,
    /// Identical calls (same process, syscall and arguments) this record stands for:
    /// the kernel counts repeats and sends at most one record per second for them.
    pub count: u64,
    /// The container cgroup whose every process the agent killed (`kill-container`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed_cgroup: Option<String>,
    /// How the call ended, when it was judged at its exit: every call refused before it
    /// ran (by seccomp) and every call judged by its path. Calls judged at entry were
    /// judged before they had a result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<CallResult>,
    /// What a write-open reached when that, not its path as written, made it an escape
    /// attempt; or what the agent found when the kernel could not decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached: Option<Reached>,
}

impl Eq for SyscallRecord {}

/// The file an open reached, whatever path it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Reached {
    /// `kernel`: read from the file the open returned; `agent`: the open failed and the
    /// agent resolved its path in the caller's root.
    pub by: String,
    /// The file system (`cgroup`, `proc`, `sysfs`, `binfmt_misc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<String>,
    /// The file's own name (`release_agent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is, as the agent resolved it (agent only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// It could not be known, and why: an unknown target is reported, never taken as
    /// harmless.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
    /// A block device (a disk), by its numbers (`8:0`), whatever its node is called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_device: Option<String>,
}

impl Reached {
    /// A file known by its file system's magic number and its name.
    pub fn file(by: &str, magic: u64, name: String, path: Option<String>) -> Self {
        Self {
            by: by.to_owned(),
            fs: Some(
                crate::policy::syscalls::fs_magic::name(magic)
                    .map_or_else(|| format!("{magic:#x}"), str::to_owned),
            ),
            name: Some(name),
            path,
            unknown: None,
            block_device: None,
        }
    }

    /// A block device the open returned: its node's name and its device number as the
    /// kernel encodes it (major << 20 | minor).
    pub fn block_device(dev: u64, name: String) -> Self {
        Self {
            by: "kernel".to_owned(),
            fs: None,
            name: (!name.is_empty()).then_some(name),
            path: None,
            unknown: None,
            block_device: Some(format!("{}:{}", dev >> 20, dev & 0xf_ffff)),
        }
    }
}

/// How a watched call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CallResult {
    /// The return value: a negative errno when it failed.
    pub ret: i64,
    /// The errno's name (`EPERM`), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The call never ran: a seccomp filter (or a tracer) refused it before the kernel
    /// entered it. The attempt is the signal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub seccomp: bool,
}

impl CallResult {
    /// The result a kernel record carries, if it was judged at exit.
    pub fn of(e: &SyscallEvent) -> Option<Self> {
        use cgwarden_common::judged;
        if e.judged == judged::ENTRY {
            return None;
        }
        let errno = (e.ret < 0)
            .then(|| i32::try_from(-e.ret).ok())
            .flatten()
            .map(|n| {
                syscalls::Errno::new(n)
                    .name()
                    .map_or_else(|| format!("errno {n}"), str::to_owned)
            });
        Some(Self {
            ret: e.ret,
            errno,
            seccomp: e.judged == judged::REFUSED_BEFORE_ENTRY,
        })
    }
}

/// One process in a [`SyscallRecord`]'s ancestry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Ancestor {
    pub pid: u32,
    pub exe: String,
}

/// Turns a decoded syscall record, standing for `count` identical calls, into what
/// users read.
pub fn enrich_syscall(e: &SyscallEvent, count: u64, ctx: &dyn Context) -> SyscallRecord {
    let h = &e.header;
    let sysno = syscalls::Sysno::new(e.nr as usize);
    let path = (e.path_len > 0).then(|| {
        let end = (e.path_len as usize).saturating_sub(1).min(e.path.len());
        String::from_utf8_lossy(&e.path[..end]).into_owned()
    });
    SyscallRecord {
        header: Header::of(h, "syscall", ctx),
        verdict: verdict_name(e.verdict),
        action: match e.action {
            syscall_action::KILL => "kill",
            syscall_action::KILL_CONTAINER => "kill-container",
            _ => "report",
        },
        syscall: sysno.map_or_else(|| format!("syscall_{}", e.nr), |s| s.name().to_owned()),
        nr: e.nr,
        args: {
            let mut args = sysno
                .map(|s| {
                    // The kernel has cleared the slots past the syscall's arity; only
                    // the syscall's own arguments are shown.
                    crate::policy::syscalls::decode(s, &e.args, ctx.syscall_arity(e.nr).min(6))
                })
                .unwrap_or_default();
            if e.fd_ino != 0 {
                args.insert(
                    "target_ns".into(),
                    crate::policy::syscalls::namespace_of(e.fd_ino, e.args[1]),
                );
            }
            if e.str_len > 0 && !matches!(e.reached, reached::FILE | reached::BLOCK_DEVICE) {
                let end = (e.str_len as usize - 1).min(e.str_val.len());
                let text = String::from_utf8_lossy(&e.str_val[..end]).into_owned();
                // mount's third argument: the file system type.
                args.insert("fstype".into(), serde_json::Value::String(text));
            }
            args
        },
        path,
        path_unreadable: e.path_unreadable != 0,
        ppid: e.ppid,
        exe: c_string(&e.exe),
        ancestry: Vec::new(),
        rule: ctx
            .syscall_rule(h.profile, e.rule)
            .unwrap_or_else(|| format!("syscalls[{}]", e.rule)),
        count,
        killed_cgroup: None,
        result: CallResult::of(e),
        reached: match e.reached {
            reached::FILE | reached::BLOCK_DEVICE => {
                let end = (e.str_len as usize).saturating_sub(1).min(e.str_val.len());
                let name = String::from_utf8_lossy(&e.str_val[..end]).into_owned();
                Some(if e.reached == reached::FILE {
                    Reached::file("kernel", e.reached_magic, name, None)
                } else {
                    Reached::block_device(e.reached_magic, name)
                })
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use cgwarden_common::{judged, reached, syscall_action, verdict};

    use super::*;
    use crate::events::testing::{Ctx, zeroed};

    #[test]
    fn a_call_seccomp_refused_says_so_with_its_errno_and_arguments() {
        let mut e: SyscallEvent = zeroed();
        e.header.profile = 3;
        e.header.cgroup_id = 99;
        e.header.comm[..2].copy_from_slice(b"sh");
        e.nr = 272; // unshare
        e.args[0] = 0x1000_0000; // CLONE_NEWUSER
        e.action = syscall_action::KILL;
        e.verdict = verdict::DENY;
        e.judged = judged::REFUSED_BEFORE_ENTRY;
        e.ret = -1;
        e.exe[..9].copy_from_slice(b"/bin/sh\0\0");
        let r = enrich_syscall(&e, 1, &Ctx);
        assert_eq!(
            (r.syscall.as_str(), r.action, r.verdict),
            ("unshare", "kill", "deny")
        );
        assert_eq!(
            r.result,
            Some(CallResult {
                ret: -1,
                errno: Some("EPERM".into()),
                seccomp: true
            })
        );
        assert_eq!(r.exe, "/bin/sh");
        assert_eq!(r.rule, "syscalls[0]");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["process"], "sh");
        assert_eq!(json["profile"], "web");
        assert!(
            json["args"].as_object().is_some_and(|a| !a.is_empty()),
            "{json}"
        );
        // Judged at entry: no result, as the call had none yet.
        e.judged = judged::ENTRY;
        assert_eq!(enrich_syscall(&e, 1, &Ctx).result, None);
    }

    #[test]
    fn what_an_open_reached_is_named_by_the_kernel() {
        let mut e: SyscallEvent = zeroed();
        e.nr = 257;
        e.reached = reached::BLOCK_DEVICE;
        e.reached_magic = (8 << 20) | 1;
        e.str_val[..6].copy_from_slice(b"notes\0");
        e.str_len = 6;
        let r = enrich_syscall(&e, 1, &Ctx);
        let reached = r.reached.unwrap();
        assert_eq!(reached.block_device.as_deref(), Some("8:1"));
        assert_eq!(reached.name.as_deref(), Some("notes"));
        assert_eq!(reached.by, "kernel");
        // The name read for a reached file is no mount fstype.
        assert!(!r.args.contains_key("fstype"), "{:?}", r.args);
    }
}
