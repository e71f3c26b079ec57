//! Credentials of processes already running when a cgroup gets its profile: the kernel
//! judges credentials at exec, so a process that started before the agent is read from
//! `/proc/<pid>/status` instead (the root is a parameter, for tests).

use std::path::Path;

use cgwarden_common::{CredRule, CredState, CredsEvent, EXE_BYTES, EventHeader, kind};

/// What `/proc/<pid>/status` says of a process's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    pub cap_effective: u64,
    pub no_new_privs: bool,
}

/// Reads `<proc>/<pid>/status`; `None` when the process is gone or the file is not as
/// expected.
pub fn status(proc_root: &Path, pid: u32) -> Option<Status> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    parse_status(&text)
}

fn parse_status(text: &str) -> Option<Status> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let ids = |name: &str| -> Option<(u32, u32)> {
        let mut it = field(name)?.split_whitespace();
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    let (uid, euid) = ids("Uid")?;
    let (gid, egid) = ids("Gid")?;
    Some(Status {
        uid,
        euid,
        gid,
        egid,
        cap_effective: u64::from_str_radix(field("CapEff")?, 16).ok()?,
        no_new_privs: field("NoNewPrivs")? == "1",
    })
}

/// The deviations of a running process against a profile's rule, as the kernel would
/// have reported them at its exec (without the comparison with before its exec, which
/// only the exec can make). `None` when it deviates in nothing.
pub fn judge(
    s: &Status,
    rule: &CredRule,
    header: EventHeader,
    exe: &str,
) -> Option<Box<CredsEvent>> {
    use cgwarden_common::{cred_deviation as cd, cred_rule};
    let mut what = 0;
    if rule.flags & cred_rule::EUID != 0 && s.uid == rule.expected_euid && s.euid != s.uid {
        what |= cd::EUID;
    }
    if rule.flags & cred_rule::CAPS != 0 && s.cap_effective & !rule.allowed_caps != 0 {
        what |= cd::CAPS;
    }
    if rule.flags & cred_rule::NO_NEW_PRIVS != 0 && !s.no_new_privs {
        what |= cd::NO_NEW_PRIVS;
    }
    if what == 0 {
        return None;
    }
    let mut exe_bytes = [0u8; EXE_BYTES];
    let n = exe.len().min(EXE_BYTES - 1);
    exe_bytes[..n].copy_from_slice(&exe.as_bytes()[..n]);
    Some(Box::new(CredsEvent {
        header: EventHeader {
            kind: kind::CREDS,
            ..header
        },
        what,
        euid: s.euid,
        egid: s.egid,
        no_new_privs: u32::from(s.no_new_privs),
        cap_effective: s.cap_effective,
        rule: *rule,
        before: CredState::default(),
        before_known: 0,
        _pad: 0,
        exe: exe_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use cgwarden_common::{cred_deviation, cred_rule};

    use super::*;

    const STATUS: &str = "Name:\tsleep\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nNoNewPrivs:\t0\n";

    #[test]
    fn reads_ids_capabilities_and_the_flag() {
        let s = parse_status(STATUS).unwrap();
        assert_eq!((s.uid, s.euid, s.gid, s.egid), (1000, 0, 1000, 1000));
        assert_eq!(s.cap_effective, 0x1ff_ffff_ffff);
        assert!(!s.no_new_privs);
        let rule = CredRule {
            flags: cred_rule::CAPS | cred_rule::NO_NEW_PRIVS | cred_rule::EUID,
            expected_euid: 1000,
            allowed_caps: 1 << 10,
        };
        let e = judge(&s, &rule, EventHeader::default(), "/bin/sleep").unwrap();
        assert_eq!(
            e.what,
            cred_deviation::EUID | cred_deviation::CAPS | cred_deviation::NO_NEW_PRIVS
        );
        assert_eq!(e.header.kind, kind::CREDS);
        let fine = Status {
            uid: 1000,
            euid: 1000,
            gid: 1000,
            egid: 1000,
            cap_effective: 1 << 10,
            no_new_privs: true,
        };
        assert!(judge(&fine, &rule, EventHeader::default(), "/bin/sleep").is_none());
    }
}
