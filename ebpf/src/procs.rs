//! The process table of monitored cgroups, from the scheduler's exec and fork
//! tracepoints: who the parent is, which program runs, and whether syscall rules apply
//! yet (see `proc_flags::ARMED`). A container's first exec below a gate is held there
//! (see [`crate::gate`]). The same judgement runs from the tracepoints' records (the
//! agent) or from their raw arguments (`cgwarden exec`'s raw tracepoints, whose
//! detach waits for no RCU grace period), with the field offsets the agent found in
//! the kernel's BTF.
//!
//! Minimum kernel: 5.14: these tracepoints find the task's profile with
//! `bpf_get_current_ancestor_cgroup_id`, which tracing programs may call since 5.14. The
//! exec path's string read needs 5.5 (`bpf_probe_read_kernel_str`), its records 5.8 (the
//! ring buffer). `armed`, called from the cgroup_sysctl program, needs 6.1 there
//! (`bpf_get_current_pid_tgid`).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes,
    },
    programs::{RawTracePointContext, TracePointContext},
};
use cgwarden_common::{DeviationEvent, EXE_BYTES, ProcInfo, deviation, kind, proc_flags};

use crate::{event, maps::PROCS, profile};

/// `sched:sched_process_exec`: the task executed a program; it is now armed.
#[inline(always)]
pub fn exec(ctx: &TracePointContext) -> u32 {
    executed(|exe| {
        // SAFETY: `filename` is a __data_loc (where the loader says): low 16 bits the
        // offset of the string in the record, high 16 bits its length.
        unsafe {
            if let Ok(loc) = ctx.read_at::<u32>(crate::layout::exec_filename()) {
                let src = ctx.as_ptr_u8().add((loc & 0xffff) as usize);
                let _ = bpf_probe_read_kernel_str_bytes(src, exe);
            }
        }
    })
}

/// Raw `sched_process_exec(p, old_pid, bprm)`: as [`exec`], the name from
/// `bprm->filename` (the string the record copies).
#[inline(always)]
pub fn raw_exec(ctx: &RawTracePointContext) -> u32 {
    executed(|exe| {
        let Some(o) = crate::creds::proc_offsets() else {
            return;
        };
        let bprm: *const u8 = ctx.arg(2);
        // SAFETY: probe reads of the kernel's `linux_binprm` (where BTF says) and of
        // the string it points to; a failed read leaves the name empty.
        unsafe {
            let at = bprm
                .wrapping_add(o.binprm_filename as usize)
                .cast::<*const u8>();
            if let Ok(src) = bpf_probe_read_kernel(at) {
                let _ = bpf_probe_read_kernel_str_bytes(src, exe);
            }
        }
    })
}

/// The current task executed a program, whose name `name` writes.
#[inline(always)]
fn executed(name: impl FnOnce(&mut [u8; EXE_BYTES])) -> u32 {
    let Some(m) = profile::entry_of_current() else {
        return 0;
    };
    if !m.is_profile() && !m.is_gate() {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let (ppid, was) = PROCS.get_ptr(&tgid).map_or((0, 0), |p| {
        // SAFETY: the pointer comes from the map.
        unsafe { ((*p).ppid, (*p).flags) }
    });
    let mut info = ProcInfo {
        ppid,
        flags: proc_flags::ARMED,
        exe: [0; EXE_BYTES],
    };
    name(&mut info.exe);
    // runc's set-up process re-executes a sealed copy of itself (`/dev/fd/N`), and may
    // already have been moved into the container's cgroup when it does: that exec does
    // not arm. An armed process stays armed whatever it executes, so a container cannot
    // shed its rules with `fexecve`.
    if was & proc_flags::ARMED == 0 && is_fd_exec(&info.exe) {
        info.flags = was;
    }
    let _ = PROCS.insert(&tgid, &info, 0);
    if m.is_gate() {
        if info.flags & proc_flags::ARMED != 0 {
            crate::gate::hold(tgid);
        }
        return 0;
    }
    // The runtime's set-up process runs as root by design; only armed programs are judged.
    if info.flags & proc_flags::ARMED != 0 {
        crate::creds::exec(&m, &info.exe);
        let expected = m.profile.expected_uid_plus_one;
        let uid = bpf_get_current_uid_gid() as u32;
        if expected != 0 && uid != expected - 1 {
            let cgroup_id = m.cgroup_of_task();
            event::emit::<DeviationEvent>(false, |e| {
                // SAFETY: `e` points to the reserved record; every field is written here.
                unsafe {
                    event::write_header(
                        &raw mut (*e).header,
                        kind::DEVIATION,
                        m.profile.id,
                        cgroup_id,
                    );
                    (*e).what = deviation::UID;
                    (*e).expected_uid = expected - 1;
                    (*e).exe = info.exe;
                }
            });
        }
    }
    0
}

/// Whether the calling process runs the container's own program: it executed one since
/// it entered a monitored cgroup, or descends from one that did. A runtime's set-up
/// process (runc's `runc:[2:INIT]`, which writes the config's sysctls and mounts the
/// container's filesystems) is not armed until it executes the entry point.
#[inline(always)]
pub fn armed() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    PROCS.get_ptr(&tgid).is_some_and(|p| {
        // SAFETY: the pointer comes from the map.
        let flags = unsafe { (*p).flags };
        flags & proc_flags::ARMED != 0
    })
}

/// Whether `exe` names an open file rather than a path (`/dev/fd/N`, `/proc/self/fd/N`,
/// `/proc/self/exe`): how runc runs its sealed copy of itself.
#[inline(always)]
fn is_fd_exec(exe: &[u8; EXE_BYTES]) -> bool {
    const DEV_FD: &[u8; 8] = b"/dev/fd/";
    const SELF_FD: &[u8; 14] = b"/proc/self/fd/";
    const SELF_EXE: &[u8; 14] = b"/proc/self/exe";
    starts_with(exe, DEV_FD) || starts_with(exe, SELF_FD) || starts_with(exe, SELF_EXE)
}

/// Whether `exe` starts with `prefix`, branch-free: the byte differences are OR-ed and
/// tested once. A comparison that can stop at each byte is compiled into one select per
/// byte, and the verifier walks every combination of them (2^N states: 194k of
/// `proc_exec`'s 215k verified instructions were these three prefixes).
#[inline(always)]
fn starts_with<const N: usize>(exe: &[u8; EXE_BYTES], prefix: &[u8; N]) -> bool {
    let mut diff = 0u8;
    let mut i = 0;
    while i < N && i < EXE_BYTES {
        diff |= exe[i] ^ prefix[i];
        i += 1;
    }
    diff == 0
}

/// `sched:sched_process_fork`: the child inherits the parent's entry.
#[inline(always)]
pub fn fork(ctx: &TracePointContext) -> u32 {
    // SAFETY: `child_pid` of the record, where the loader says.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(crate::layout::fork_child_pid()) }) else {
        return 0;
    };
    forked(child as u32)
}

/// Raw `sched_process_fork(parent, child)`: as [`fork`], the child's pid from its
/// `task_struct` (the field the record copies).
#[inline(always)]
pub fn raw_fork(ctx: &RawTracePointContext) -> u32 {
    let Some(o) = crate::creds::proc_offsets() else {
        return 0;
    };
    let child: *const u8 = ctx.arg(1);
    // SAFETY: a probe read of the child's `task_struct.pid`, where BTF says.
    let at = child.wrapping_add(o.task_pid as usize).cast::<i32>();
    let Ok(pid) = (unsafe { bpf_probe_read_kernel(at) }) else {
        return 0;
    };
    forked(pid as u32)
}

/// The current task forked `child` (its pid: a thread's own id for a thread).
#[inline(always)]
fn forked(child: u32) -> u32 {
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    let m = profile::current();
    crate::creds::fork(child, m.as_ref());
    let tracked = if m.is_some() {
        PROCS.get_ptr(&parent)
    } else {
        None
    };
    let Some(p) = tracked else {
        // A reused pid must not inherit what the table knew of a process that died:
        // a container runtime's set-up process would otherwise be judged as armed.
        if PROCS.get_ptr(&child).is_some() {
            let _ = PROCS.remove(&child);
        }
        return 0;
    };
    // SAFETY: the pointer comes from the map; copied whole before the insert.
    let mut info = unsafe { *p };
    info.ppid = parent;
    let _ = PROCS.insert(&child, &info, 0);
    0
}

trait RecordPtr {
    fn as_ptr_u8(&self) -> *const u8;
}

impl RecordPtr for TracePointContext {
    fn as_ptr_u8(&self) -> *const u8 {
        use aya_ebpf::EbpfContext;
        self.as_ptr().cast::<u8>().cast_const()
    }
}
