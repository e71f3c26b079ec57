//! Syscall entry: the `syscalls:sys_enter_*` tracepoints and the raw `sys_enter`
//! program judge a watched call by its rule and arguments; calls judged by their path
//! are left to the exit.
//!
//! Minimum kernel: 5.14, for the profile lookup (`bpf_get_current_ancestor_cgroup_id` in
//! tracing programs); then 5.12 (repeat totals, through `report.rs`) and 5.5 (the
//! arguments' `bpf_probe_read_kernel`). Tracepoint 4.7, raw tracepoint 4.17.

use super::*;

/// `syscalls:sys_enter_*`: `__syscall_nr`, then the arguments (`layout`).
#[inline(always)]
pub fn tracepoint(ctx: &TracePointContext) -> u32 {
    let Some(m) = profile::current() else {
        return 0;
    };
    // SAFETY: `__syscall_nr` is in every syscall record, where the loader says. The
    // argument slots are copied with one probe read: a record is only as long as its
    // syscall's arguments, and a program that reads past the shortest one directly
    // cannot be attached to it. Slots past the syscall's arity hold whatever follows
    // the record and are cleared by `judge`.
    let nr = unsafe { ctx.read_at::<i32>(crate::layout::syscall_nr()) }.unwrap_or(-1);
    // SAFETY: as above.
    let mut args = unsafe {
        bpf_probe_read_kernel(
            ctx.as_ptr()
                .cast::<u8>()
                .add(crate::layout::syscall_args())
                .cast::<[u64; 6]>(),
        )
    }
    .unwrap_or([0; 6]);
    if nr < 0 {
        return 0;
    }
    judge(&m, nr as u32, &mut args);
    0
}

/// Raw `sys_enter(regs, id)`: only for syscall numbers marked `RAW` (watched) or `OWN`
/// (`socket` and `listen`, whose own checks [`raw_own`] runs, tail-called, instead of
/// their tracepoints).
#[inline(always)]
pub fn raw(ctx: &RawTracePointContext) -> i32 {
    let id: u64 = ctx.arg(1);
    if CONFIG
        .get(0)
        .is_some_and(|c| c.flags & config_flags::LEARN_SYSCALLS != 0)
    {
        learn_syscall(id);
    }
    if id >= u64::from(RAW_SYSCALL_SLOTS) {
        return 0;
    }
    let watch = SYSCALL_WATCH.get(id as u32).copied().unwrap_or(0);
    if watch & syscall_watch::RAW != 0 {
        if let Some(m) = profile::current() {
            let regs: *const pt_regs = ctx.arg(0);
            judge(&m, id as u32, &mut args_in(regs));
        }
    }
    if watch & syscall_watch::OWN != 0 {
        // SAFETY: a tail call into the program the loader put in slot 0; it does not
        // return (nothing is left to do here when it fails: an empty slot).
        unsafe {
            let _ = crate::maps::OWN_CHECKS.tail_call(ctx, 0);
        }
    }
    0
}

/// `raw_sys_enter_own`: the checks `socket` and `listen` have besides any rule, for a
/// call the raw `sys_enter` passed on (the profile's flags decide whether they apply).
#[inline(always)]
pub fn raw_own(ctx: &RawTracePointContext) -> i32 {
    let id: u64 = ctx.arg(1);
    let regs: *const pt_regs = ctx.arg(0);
    let args = args_in(regs);
    match id {
        SOCKET_NR => crate::sockets::socket(args[0], args[1], args[2]),
        LISTEN_NR => crate::sockaddr::listen(args[0]),
        _ => {}
    }
    0
}

/// Applies the profile's rule for syscall `nr` at entry, if it has one. Calls judged by
/// their path are left to the exit, which alone judges them.
#[inline(always)]
pub(super) fn judge(m: &profile::Match, nr: u32, args: &mut [u64; 6]) {
    let Some((rule, proc_info)) = rule_for(m, nr) else {
        return;
    };
    if rule.action == 0 || rule.path_filter != 0 {
        return;
    }
    clear_unknown_args(nr, args);
    let args = &*args;
    let Some(flags) = of_concern(rule, args) else {
        return;
    };
    // The exit must know this call was entered, or it would judge it again as refused
    // if it fails: a mark on this CPU (a call rarely moves CPUs between its entry and
    // its exit; one that does and then fails is reported once more, as refused). Only
    // calls acted on are marked: the others cost no map write.
    if watched_at_exit(nr) {
        mark_entered(nr);
    }
    act_by_rule(m, rule, nr, args, flags, proc_info, AT_ENTRY);
}

/// Marks, on this CPU, that the calling thread entered syscall `nr` and it was judged.
#[inline(always)]
pub(super) fn mark_entered(nr: u32) {
    if let Some(mark) = crate::maps::ENTERED.get_ptr_mut(0) {
        // SAFETY: this CPU's value.
        unsafe {
            (*mark).id = bpf_get_current_pid_tgid();
            (*mark).nr = u64::from(nr);
        }
    }
}

/// Whether syscall `nr`'s exit tracepoint is attached.
#[inline(always)]
pub(super) fn watched_at_exit(nr: u32) -> bool {
    nr < RAW_SYSCALL_SLOTS
        && SYSCALL_WATCH
            .get(nr)
            .is_some_and(|w| w & syscall_watch::EXIT != 0)
}
