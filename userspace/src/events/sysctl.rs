//! Writes under /proc/sys, as the cgroup sysctl hook judged them.

use cgwarden_common::SysctlEvent;
use serde::Serialize;

use super::{
    Context,
    header::{Header, verdict_name},
};

/// A write under /proc/sys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlRecord {
    #[serde(flatten)]
    pub header: Header,
    /// `deny` (refused with EPERM), `audit` (would have been) or `allow` (reported).
    pub verdict: &'static str,
    /// The sysctl, e.g. `kernel/core_pattern`.
    pub name: String,
    /// The value written (its start, when long).
    pub value: String,
}

/// Turns a decoded sysctl record into what users see.
pub fn enrich_sysctl(e: &SysctlEvent, ctx: &dyn Context) -> SysctlRecord {
    let h = &e.header;
    let text = |bytes: &[u8], len: u32| {
        let end = (len as usize).min(bytes.len());
        let end = bytes[..end].iter().position(|b| *b == 0).unwrap_or(end);
        String::from_utf8_lossy(&bytes[..end]).trim_end().to_owned()
    };
    SysctlRecord {
        header: Header::of(h, "sysctl", ctx),
        verdict: verdict_name(e.verdict),
        name: text(&e.name, e.name_len),
        value: text(&e.value, e.value_len),
    }
}

#[cfg(test)]
mod tests {
    use cgwarden_common::verdict;

    use super::*;
    use crate::events::testing::{Ctx, zeroed};

    #[test]
    fn a_sysctl_write_is_named_and_its_value_trimmed() {
        let mut e: SysctlEvent = zeroed();
        e.header.profile = 3;
        e.verdict = verdict::DENY;
        let name = b"kernel/core_pattern";
        e.name[..name.len()].copy_from_slice(name);
        e.name_len = name.len() as u32;
        let value = b"|/tmp/x %p\n\0garbage";
        e.value[..value.len()].copy_from_slice(value);
        e.value_len = value.len() as u32;
        let r = enrich_sysctl(&e, &Ctx);
        assert_eq!((r.header.kind, r.verdict), ("sysctl", "deny"));
        assert_eq!(r.name, "kernel/core_pattern");
        assert_eq!(
            r.value, "|/tmp/x %p",
            "up to the NUL, trailing space trimmed"
        );
    }
}
