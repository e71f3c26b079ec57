//! Watched syscalls: report them, or kill the caller.
//!
//! One program serves every `syscalls:sys_enter_<name>` tracepoint the agent attaches
//! (only those of syscalls some profile watches, so no program runs for any other
//! syscall); a raw `sys_enter` program covers syscalls that have no tracepoint of their
//! own on the running kernel, filtered by number first. Both start with the shared
//! profile lookup, so a process in no monitored cgroup pays that and nothing else.
//!
//! `kill` sends SIGKILL with `bpf_send_signal`: the process dies before it returns to
//! user space, but the syscall itself has already been entered and runs. Without BPF-LSM
//! nothing here can make the syscall fail.

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user,
        bpf_probe_read_user_str_bytes, generated::bpf_send_signal,
    },
    programs::{RawTracePointContext, TracePointContext},
};
use cgwarden_common::{
    NO_ARG, RAW_SYSCALL_SLOTS, SyscallEvent, SyscallKey, counters, kind, proc_flags,
    profile_flags, syscall_action, verdict,
};

use crate::{
    event,
    maps::{EVENTS, PROCS, RAW_SYSCALLS, SYSCALL_RULES, count},
    profile,
};

const SIGKILL: u32 = 9;

/// `syscalls:sys_enter_*`: `__syscall_nr` at offset 8, the arguments from offset 16.
#[inline(always)]
pub fn tracepoint(ctx: &TracePointContext) -> u32 {
    let Some(m) = profile::current() else {
        return 0;
    };
    // SAFETY: offsets of the syscall tracepoint record format.
    let nr = unsafe { ctx.read_at::<i32>(8) }.unwrap_or(-1);
    if nr < 0 {
        return 0;
    }
    let mut args = [0u64; 6];
    for (i, arg) in args.iter_mut().enumerate() {
        // SAFETY: as above.
        *arg = unsafe { ctx.read_at::<u64>(16 + 8 * i) }.unwrap_or(0);
    }
    judge(&m, nr as u32, &args);
    0
}

/// Raw `sys_enter(regs, id)`: only for syscall numbers marked in `RAW_SYSCALLS`.
#[inline(always)]
pub fn raw(ctx: &RawTracePointContext) -> i32 {
    let id: u64 = ctx.arg(1);
    if id >= u64::from(RAW_SYSCALL_SLOTS) || RAW_SYSCALLS.get(id as u32).copied() != Some(1) {
        return 0;
    }
    let Some(m) = profile::current() else {
        return 0;
    };
    let regs: *const pt_regs = ctx.arg(0);
    // SAFETY: `regs` is the kernel's pt_regs of the syscall; x86_64 passes the syscall
    // arguments in rdi, rsi, rdx, r10, r8, r9.
    let args = unsafe {
        [
            bpf_probe_read_kernel(&raw const (*regs).rdi).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).rsi).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).rdx).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r10).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r8).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r9).unwrap_or(0),
        ]
    };
    judge(&m, id as u32, &args);
    0
}

/// Applies the profile's rule for syscall `nr`, if it has one.
#[inline(always)]
fn judge(m: &profile::Match, nr: u32, args: &[u64; 6]) {
    let key = SyscallKey {
        profile: m.profile.id,
        nr,
    };
    // SAFETY: values are written whole by the agent and only read here.
    let Some(rule) = (unsafe { SYSCALL_RULES.get(&key) }).copied() else {
        return;
    };
    // Only armed processes: a runtime's set-up process is not judged before it
    // executes the container's program.
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(proc_info) = PROCS.get_ptr(&tgid) else {
        return;
    };
    // SAFETY: the pointer comes from the map.
    if unsafe { (*proc_info).flags } & proc_flags::ARMED == 0 {
        return;
    }
    let mut flags = 0u64;
    if rule.flags_arg != NO_ARG {
        let raw = pick(args, rule.flags_arg);
        flags = if rule.flags_indirect != 0 {
            // SAFETY: reading the first u64 of a user struct (clone3's clone_args); a
            // failed read counts as "flags present" so a hidden struct cannot hide it.
            unsafe { bpf_probe_read_user(raw as *const u64) }.unwrap_or(u64::MAX)
        } else {
            raw
        };
        if flags & rule.flags_mask == 0 {
            return;
        }
    }
    let enforce = m.profile.flags & profile_flags::ENFORCE != 0;
    let kill = rule.action == syscall_action::KILL;
    let verdict = match (kill, enforce) {
        (true, true) => verdict::DENY,
        (true, false) => verdict::AUDIT,
        _ => verdict::ALLOW,
    };
    if kill && enforce {
        // SAFETY: signals the current task; it dies before returning to user space.
        unsafe { bpf_send_signal(SIGKILL) };
    }
    let Some(mut slot) = EVENTS.reserve::<SyscallEvent>(0) else {
        count(counters::RINGBUF_DROPS);
        return;
    };
    let ev = slot.as_mut_ptr();
    // SAFETY: `ev` points to the reserved event; every field is written before submit.
    unsafe {
        (*ev).header = event::header(kind::SYSCALL, m.profile.id, m.cgroup_of_task());
        (*ev).nr = nr;
        (*ev).action = rule.action;
        (*ev).verdict = verdict;
        (*ev).path_unreadable = 0;
        (*ev)._pad = 0;
        (*ev).rule = rule.rule;
        (*ev).args = *args;
        (*ev).flags = flags;
        (*ev).path_len = 0;
        (*ev).ppid = (*proc_info).ppid;
        (*ev)._pad2 = 0;
        (*ev).exe = (*proc_info).exe;
        if rule.path_arg != NO_ARG {
            let ptr = pick(args, rule.path_arg) as *const u8;
            match bpf_probe_read_user_str_bytes(ptr, &mut (*ev).path) {
                Ok(bytes) => (*ev).path_len = bytes.len() as u32 + 1,
                Err(_) => (*ev).path_unreadable = 1,
            }
        }
    }
    slot.submit(0);
}

/// Argument `i` (a constant-offset read for each case, as the verifier needs).
#[inline(always)]
fn pick(args: &[u64; 6], i: u8) -> u64 {
    match i {
        0 => args[0],
        1 => args[1],
        2 => args[2],
        3 => args[3],
        4 => args[4],
        5 => args[5],
        _ => 0,
    }
}
