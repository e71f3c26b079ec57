//! Learn mode: which syscalls an armed process of a learning profile used.
//!
//! Minimum kernel: 5.14, for the profile lookup (`bpf_get_current_ancestor_cgroup_id` in
//! tracing programs); its map writes are older.

use super::*;

/// Learn mode: records that an armed process of a learning profile used syscall `id`.
#[inline(always)]
pub(super) fn learn_syscall(id: u64) {
    let Some(m) = profile::current() else {
        return;
    };
    if m.profile.flags & profile_flags::LEARN_SYSCALLS == 0 {
        return;
    }
    // The runtime's set-up (runc's init mounting, pivoting, unsharing before it
    // executes the entry point) is not the workload: a seccomp profile that allowed it
    // would allow `mount` and `unshare` to the container.
    if !crate::procs::armed() {
        return;
    }
    let key = cgwarden_common::SyscallUsedKey {
        cgroup_id: m.cgroup,
        profile: m.profile.id,
        nr: id as u32,
    };
    // SAFETY: a plain read of a flag byte.
    if unsafe { SYSCALLS_USED.get(&key) }.is_none() {
        let _ = SYSCALLS_USED.insert(&key, &1, 0);
    }
}
