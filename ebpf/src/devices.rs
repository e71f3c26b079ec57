//! The cgroup_device hook: opens and mknods of device nodes, judged against the
//! profile's device allowlist (`runtime.devices`). Access outside it is reported, and
//! refused with EPERM in enforce mode. A profile without `devices:` restricts nothing.
//!
//! This program is one of the cgroup's effective device programs: a container runtime's
//! own device filter (runc's on cgroup v2) runs too, and an access must pass both.
//!
//! Minimum kernel: 6.1. The program type is 4.15, but the profile lookup
//! (`bpf_get_current_ancestor_cgroup_id`) and the event header
//! (`bpf_get_current_pid_tgid`, `bpf_get_current_comm`) call helpers that cgroup_device
//! programs may call only since 6.1.

use aya_ebpf::programs::DeviceContext;
use cgwarden_common::{DEVICE_ANY, DeviceEvent, DeviceKey, kind, profile_flags};

use crate::{event, maps::DEVICE_RULES, profile};

use crate::verdict::PROCEED;

/// Judges one device access.
#[inline(always)]
pub fn check(ctx: &DeviceContext) -> i32 {
    let Some(m) = profile::current() else {
        return PROCEED;
    };
    let flags = m.profile.flags;
    if flags & profile_flags::RESTRICT_DEVICES == 0 {
        return PROCEED;
    }
    // SAFETY: reading fields of the context the kernel passed.
    let (access_type, major, minor) = unsafe {
        (
            (*ctx.device).access_type,
            (*ctx.device).major,
            (*ctx.device).minor,
        )
    };
    let dev_type = access_type & 0xffff;
    let access = access_type >> 16;
    let id = m.profile.id;
    // The exact entry first (the common case: /dev/null and friends), then the
    // wildcard forms only while the request is not covered yet.
    let mut allowed = 0;
    for (maj, min) in [
        (major, minor),
        (major, DEVICE_ANY),
        (DEVICE_ANY, minor),
        (DEVICE_ANY, DEVICE_ANY),
    ] {
        allowed |= rule(id, dev_type, maj, min);
        if access & !allowed == 0 {
            return PROCEED;
        }
    }
    let verdict = crate::verdict::of(&m.profile, true);
    let cgroup_id = m.cgroup_of_task();
    event::emit::<DeviceEvent>(false, |e| {
        // SAFETY: `e` is the reserved record; every field is written here.
        unsafe {
            event::write_header(&raw mut (*e).header, kind::DEVICE, id, cgroup_id);
            (*e).dev_type = dev_type;
            (*e).major = major;
            (*e).minor = minor;
            (*e).access = access;
            (*e).allowed = allowed;
            (*e).verdict = verdict;
            (*e)._pad = [0; 3];
        }
    });
    crate::verdict::hook(verdict)
}

/// The accesses one `DEVICE_RULES` entry allows (0 when there is none).
#[inline(always)]
fn rule(profile: u32, dev_type: u32, major: u32, minor: u32) -> u32 {
    let key = DeviceKey {
        profile,
        dev_type,
        major,
        minor,
    };
    // SAFETY: values are written whole by the agent and only read here.
    unsafe { DEVICE_RULES.get(&key) }.copied().unwrap_or(0)
}
