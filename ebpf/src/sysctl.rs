//! The cgroup sysctl hook: writes under /proc/sys, whatever path reached the file (a
//! bind mount, /proc/self/fd/N, a second procfs). Profiles that watch escape attempts
//! report them, and refuse them (EPERM) when their action is `kill`. Only the container's
//! own processes are judged (see [`crate::procs::armed`]).
//!
//! Minimum kernel: 6.1. The program type, `bpf_sysctl_get_name` and
//! `bpf_sysctl_get_new_value` are 5.2, but the task's ancestor cgroup (`profile`), pid
//! (`procs::armed`, the event header) and command name reach cgroup_sysctl programs only
//! in 6.1.

use aya_ebpf::{
    helpers::generated::{bpf_sysctl_get_name, bpf_sysctl_get_new_value},
    programs::SysctlContext,
};
use cgwarden_common::{SYSCTL_TEXT_BYTES, SysctlEvent, kind, profile_flags};

use crate::{event, profile};

use crate::verdict::PROCEED;

/// Judges one sysctl access.
#[inline(always)]
pub fn sysctl(ctx: &SysctlContext) -> i32 {
    let Some(m) = profile::current() else {
        return PROCEED;
    };
    let flags = m.profile.flags;
    if flags & profile_flags::WATCH_SYSCTL == 0 {
        return PROCEED;
    }
    // SAFETY: reading a field of the context the kernel passed.
    if unsafe { (*ctx.sysctl).write } == 0 {
        return PROCEED;
    }
    // The runtime writes the OCI config's sysctls (Docker sets
    // `net.ipv4.ip_unprivileged_port_start` for every container) from its set-up process,
    // before the entry point runs: that is the configuration, not the container.
    if !crate::procs::armed() {
        return PROCEED;
    }
    let verdict = crate::verdict::of(&m.profile, flags & profile_flags::DENY_SYSCTL != 0);
    let cgroup_id = m.cgroup_of_task();
    event::emit::<SysctlEvent>(false, |ev| {
        // SAFETY: `ev` is the reserved event; every field is written before submit.
        unsafe {
            event::write_header(&raw mut (*ev).header, kind::SYSCTL, m.profile.id, cgroup_id);
            (*ev).verdict = verdict;
            (*ev)._pad = [0; 3];
            (*ev)._pad2 = 0;
            let name = bpf_sysctl_get_name(
                ctx.sysctl,
                (&raw mut (*ev).name).cast(),
                SYSCTL_TEXT_BYTES as u64,
                0,
            );
            (*ev).name_len = if name > 0 { name as u32 } else { 0 };
            let value = bpf_sysctl_get_new_value(
                ctx.sysctl,
                (&raw mut (*ev).value).cast(),
                SYSCTL_TEXT_BYTES as u64,
            );
            // -E2BIG: the value was cut; the buffer holds its start.
            (*ev).value_len = if value >= 0 {
                value as u32
            } else {
                SYSCTL_TEXT_BYTES as u32 - 1
            };
        }
    });
    crate::verdict::hook(verdict)
}
