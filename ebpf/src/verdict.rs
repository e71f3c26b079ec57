//! The one enforce-or-audit decision every hook makes, and what a cgroup hook returns
//! for it.
//!
//! Something a profile refuses is refused (DENY) in enforce mode and only reported
//! (AUDIT) in audit mode; what it does not refuse is allowed. A hook never decides this
//! itself: it asks [`of`], and a cgroup hook returns [`hook`] of the answer.
//!
//! Minimum kernel: none of its own (plain arithmetic: no helper, map or program type).

use cgwarden_common::{ProfileRef, profile_flags, verdict};

/// Return value of a cgroup hook (sock_addr, sock_create, sysctl, device, skb) that
/// lets the operation proceed (the packet pass).
pub const PROCEED: i32 = 1;
/// Return value that refuses the operation (EPERM) or drops the packet.
pub const REFUSE: i32 = 0;

/// The verdict on something the profile `refuses` (or not), by its mode.
#[inline(always)]
pub fn of(profile: &ProfileRef, refuses: bool) -> u8 {
    if !refuses {
        verdict::ALLOW
    } else if enforces(profile) {
        verdict::DENY
    } else {
        verdict::AUDIT
    }
}

/// Whether the profile refuses what it forbids (enforce mode), rather than only
/// reporting it.
#[inline(always)]
pub fn enforces(profile: &ProfileRef) -> bool {
    profile.flags & profile_flags::ENFORCE != 0
}

/// What a cgroup hook returns for `verdict`: only DENY refuses.
#[inline(always)]
pub fn hook(verdict: u8) -> i32 {
    if verdict == verdict::DENY {
        REFUSE
    } else {
        PROCEED
    }
}
