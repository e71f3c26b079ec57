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
//!
//! Calls that are judged by their path (the escape set's opens and unix connects, and
//! writes under a profile's read-only paths) are judged at exit only (no entry program
//! runs for them), when the kernel has read the path (so its pages are resident) and
//! the result is known, with the arguments from the saved registers: one matcher
//! ([`match_set`]) serves both, over the pattern set of the escape set or of the
//! profile.
//!
//! Where each job is: `enter.rs` (the entry programs, the entry judgement), `exit.rs`
//! (the exit program: path-judged calls, calls refused before entry, what an open
//! reached), `report.rs` (the verdict, the kill, the record), `paths.rs` (the path
//! matcher), `exe_handles.rs` (`/proc/<pid>/exe` handles and their reopens),
//! `read_only.rs` (writes under read-only paths), `regs.rs` (arguments in saved
//! registers, per architecture), `learn.rs` (syscalls a learning profile used); here,
//! the rule lookup and argument helpers they share.
//!
//! Minimum kernel: 5.17 (`bpf_loop`); BTF for `bpf_get_current_task_btf` and the
//! credential and file offsets.
//! That is the path matcher's floor (sys_exit). Below it: `bpf_task_pt_regs` 5.15 and
//! `bpf_get_current_task_btf` 5.11 (`regs.rs`), the profile lookup in tracing programs
//! 5.14, repeat totals 5.12 (atomic fetch-add, `report.rs`), the raw tracepoint 4.17.

use aya_ebpf::{
    EbpfContext,
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
        bpf_probe_read_user, bpf_probe_read_user_str_bytes,
        generated::{bpf_ktime_get_ns, bpf_loop, bpf_send_signal},
    },
    programs::{RawTracePointContext, TracePointContext},
};
use core::ffi::c_void;

use cgwarden_common::{
    ESCAPE_FILE_NAME_BYTES, NO_ARG, OPEN_WRITE_FLAGS, PATH_PATTERNS_MAX, PATTERN_PREFIX_BYTES,
    PATTERN_SUFFIX_BYTES, PatternKey, ProcInfo, RAW_SYSCALL_SLOTS, READ_PATTERN_SET,
    SYSCALL_PATH_BYTES, SyscallEvent, SyscallKey, SyscallRule, config_flags, judged, kind,
    pattern_applies, proc_flags, profile_flags, reached, syscall_action, syscall_watch, verdict,
};

use crate::{
    event,
    maps::{
        CONFIG, EXE_HANDLES, PATH_PATTERNS, PATH_SCRATCH, PROCS, PROFILE_PATTERNS, SYSCALL_REPEATS,
        SYSCALL_RULES, SYSCALL_WATCH, SYSCALLS_USED,
    },
    profile,
};

mod enter;
mod exe_handles;
mod exit;
mod learn;
mod paths;
mod read_only;
mod regs;
mod report;

pub use enter::{raw, raw_own, tracepoint};
pub use exe_handles::ProcFd;
pub use exit::{exit, exit_refused, raw_exit, raw_exit_refused};
use {exe_handles::*, learn::*, paths::*, read_only::*, regs::*, report::*};

pub(super) const SIGKILL: u32 = 9;

/// Whether a call is of the rule's concern, and the flags it checked: its flags match
/// ([`flags_of`]) and, for the dirty-pipe rule, it splices from a file the process can
/// only read into a pipe.
#[inline(always)]
pub(super) fn of_concern(rule: &SyscallRule, args: &[u64; 6]) -> Option<u64> {
    let flags = flags_of(rule, args)?;
    if rule.dirty_pipe != 0 && !crate::creds::dirty_pipe_source(args[0], args[2]) {
        return None;
    }
    Some(flags)
}

/// The flags a rule with a flags condition checks, or `None` when they do not match
/// (the call is of no concern); 0 for rules without one.
#[inline(always)]
pub(super) fn flags_of(rule: &SyscallRule, args: &[u64; 6]) -> Option<u64> {
    if rule.flags_arg == NO_ARG {
        return Some(0);
    }
    let raw = pick(args, rule.flags_arg);
    let flags = if rule.flags_indirect != 0 {
        // SAFETY: reading the first u64 of a user struct (clone3's clone_args); a
        // failed read counts as "flags present" so a hidden struct cannot hide it.
        unsafe { bpf_probe_read_user(raw as *const u64) }.unwrap_or(u64::MAX)
    } else {
        raw
    };
    (flags & rule.flags_mask != 0).then_some(flags)
}

/// Where a call was judged, and its result when known.
#[derive(Clone, Copy)]
pub(super) struct End {
    pub(super) judged: u32,
    pub(super) ret: i64,
}

pub(super) const AT_ENTRY: End = End {
    judged: judged::ENTRY,
    ret: 0,
};

/// The profile's rule for syscall `nr` and the calling process's table entry, when the
/// rule applies to it: only armed processes are judged (a runtime's set-up process is
/// not, before it executes the container's program).
#[inline(always)]
pub(super) fn rule_for(
    m: &profile::Match,
    nr: u32,
) -> Option<(&'static SyscallRule, *const ProcInfo)> {
    let key = SyscallKey {
        profile: m.profile.id,
        nr,
    };
    // SAFETY: values are written whole by the agent and only read here (a reload
    // replaces a rule with one update, never field by field).
    let rule = unsafe { SYSCALL_RULES.get(&key) }?;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let proc_info = PROCS.get_ptr(&tgid)?;
    // SAFETY: the pointer comes from the map.
    if unsafe { (*proc_info).flags } & proc_flags::ARMED == 0 {
        return None;
    }
    Some((rule, proc_info))
}

/// The call's arguments, with the slots past the syscall's arity cleared (they hold
/// whatever followed the tracepoint record, or unused registers).
#[inline(always)]
pub(super) fn clear_unknown_args(nr: u32, args: &mut [u64; 6]) {
    let arity = match SYSCALL_WATCH.get(nr) {
        Some(w) if w & syscall_watch::KNOWN != 0 => usize::from(w & syscall_watch::ARITY_MASK),
        _ => 6,
    };
    for (i, slot) in args.iter_mut().enumerate() {
        if i >= arity {
            *slot = 0;
        }
    }
}

/// Argument `i` (a constant-offset read for each case, as the verifier needs).
#[inline(always)]
pub(super) fn pick(args: &[u64; 6], i: u8) -> u64 {
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
