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
    EbpfContext,
    bindings::pt_regs,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user,
        bpf_probe_read_user_str_bytes,
        generated::{bpf_ktime_get_ns, bpf_loop, bpf_send_signal},
    },
    programs::{RawTracePointContext, TracePointContext},
};
use core::ffi::c_void;

use cgwarden_common::{
    NO_ARG, PATH_PATTERNS_MAX, PATTERN_PREFIX_BYTES, PATTERN_SUFFIX_BYTES, PendingCall,
    RAW_SYSCALL_SLOTS, SYSCALL_PATH_BYTES, SyscallEvent, SyscallKey, SyscallRepeatKey,
    config_flags, counters, kind, pattern_applies, proc_flags, profile_flags, syscall_action,
    syscall_watch, verdict,
};

use crate::{
    event,
    maps::{
        CONFIG, EVENTS, PATH_PATTERNS, PATH_SCRATCH, PENDING, PROCS, SYSCALL_REPEATS,
        SYSCALL_RULES, SYSCALL_WATCH, SYSCALLS_USED, count,
    },
    profile,
};

const SIGKILL: u32 = 9;

/// `syscalls:sys_enter_*`: `__syscall_nr` at offset 8, the arguments from offset 16.
#[inline(always)]
pub fn tracepoint(ctx: &TracePointContext) -> u32 {
    let Some(m) = profile::current() else {
        return 0;
    };
    let record = ctx.as_ptr().cast::<u64>();
    // SAFETY: `__syscall_nr` is in every syscall record, so the verifier allows this
    // direct read. The argument slots are copied with one probe read instead: a record
    // is only as long as its syscall's arguments, and a program that reads past the
    // shortest one directly cannot be attached to it. Slots past the syscall's arity
    // hold whatever follows the record and are cleared by `judge`.
    let nr = unsafe { *record.add(1).cast::<i32>() };
    // SAFETY: as above.
    let args = unsafe { bpf_probe_read_kernel(record.add(2).cast::<[u64; 6]>()) }.unwrap_or([0; 6]);
    if nr < 0 {
        return 0;
    }
    judge(&m, nr as u32, &args, false);
    0
}

/// Raw `sys_enter(regs, id)`: only for syscall numbers marked in `RAW_SYSCALLS`.
#[inline(always)]
pub fn raw(ctx: &RawTracePointContext) -> i32 {
    let id: u64 = ctx.arg(1);
    if CONFIG
        .get(0)
        .is_some_and(|c| c.flags & config_flags::LEARN_SYSCALLS != 0)
    {
        learn_syscall(id);
    }
    if id >= u64::from(RAW_SYSCALL_SLOTS)
        || SYSCALL_WATCH
            .get(id as u32)
            .is_none_or(|w| w & syscall_watch::RAW == 0)
    {
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
    judge(&m, id as u32, &args, false);
    0
}

/// `syscalls:sys_exit_*` of path-filtered syscalls: judges the call saved at entry.
#[inline(always)]
pub fn exit(_ctx: &TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING.get_ptr(&id) else {
        return 0;
    };
    // SAFETY: the pointer comes from the map; copied before the entry is removed.
    let call = unsafe { *pending };
    let _ = PENDING.remove(&id);
    let Some(m) = profile::current() else {
        return 0;
    };
    judge(&m, call.nr, &call.args, true);
    0
}

/// Applies the profile's rule for syscall `nr`, if it has one. `at_exit`: called from
/// the exit tracepoint for a path-filtered call saved at entry.
#[inline(always)]
fn judge(m: &profile::Match, nr: u32, args: &[u64; 6], at_exit: bool) {
    let args = &known_args(nr, args);
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
    // Rules that watch only some paths (the escape set's opens and unix connects) are
    // judged at exit, when the path is sure to be readable.
    let filtered = rule.path_filter != 0;
    if filtered && !at_exit {
        let pending = PendingCall {
            nr,
            _pad: 0,
            args: *args,
        };
        let _ = PENDING.insert(&bpf_get_current_pid_tgid(), &pending, 0);
        return;
    }
    if filtered && !path_matches(&rule, args) {
        return;
    }
    let enforce = m.profile.flags & profile_flags::ENFORCE != 0;
    let kill = rule.action == syscall_action::KILL;
    let verdict = match (kill, enforce) {
        (true, true) => verdict::DENY,
        (true, false) => verdict::AUDIT,
        _ => verdict::ALLOW,
    };
    let cgroup_id = m.cgroup_of_task();
    let mut total = 0;
    if kill && enforce {
        // SAFETY: signals the current task; it dies before returning to user space.
        unsafe { bpf_send_signal(SIGKILL) };
    } else if rule.path_arg == NO_ARG {
        // Reported calls repeat (a loop, a retry): identical ones are counted in the
        // kernel and sent at most once per window, like flows. Calls with a path are
        // always sent: the same pointer can name another path.
        let key = SyscallRepeatKey {
            cgroup_id,
            profile: m.profile.id,
            pid: tgid,
            nr,
            rule: rule.rule,
            verdict,
            action: rule.action,
            _pad: [0; 6],
            args: *args,
        };
        // SAFETY: plain helper call without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        match event::repeat(&SYSCALL_REPEATS, &key, now) {
            Some(t) => total = t,
            None => return,
        }
    }
    let Some(mut slot) = EVENTS.reserve::<SyscallEvent>(0) else {
        count(counters::RINGBUF_DROPS);
        return;
    };
    let ev = slot.as_mut_ptr();
    // SAFETY: `ev` points to the reserved event; every field is written before submit.
    unsafe {
        (*ev).header = event::header(kind::SYSCALL, m.profile.id, cgroup_id);
        (*ev).total = total;
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
        if filtered {
            match PATH_SCRATCH.get_ptr(0) {
                Some(scratch) => {
                    (*ev).path = *scratch;
                    let end = (*ev).path.iter().position(|b| *b == 0).unwrap_or(0);
                    (*ev).path_len = end as u32 + 1;
                }
                None => (*ev).path_unreadable = 1,
            }
        } else if rule.path_arg != NO_ARG {
            let ptr = pick(args, rule.path_arg) as *const u8;
            match bpf_probe_read_user_str_bytes(ptr, &mut (*ev).path) {
                Ok(bytes) => (*ev).path_len = bytes.len() as u32 + 1,
                Err(_) => (*ev).path_unreadable = 1,
            }
        }
    }
    slot.submit(crate::event::wakeup::<SyscallEvent>());
}

/// The call's arguments, with the slots past the syscall's arity cleared (they hold
/// whatever followed the tracepoint record, or unused registers).
#[inline(always)]
fn known_args(nr: u32, args: &[u64; 6]) -> [u64; 6] {
    let arity = match SYSCALL_WATCH.get(nr) {
        Some(w) if w & syscall_watch::KNOWN != 0 => usize::from(w & syscall_watch::ARITY_MASK),
        _ => 6,
    };
    let mut out = *args;
    for (i, slot) in out.iter_mut().enumerate() {
        if i >= arity {
            *slot = 0;
        }
    }
    out
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

/// State of the pattern matcher, shared with its `bpf_loop` callback.
#[repr(C)]
struct Matcher {
    buf: *const u8,
    len: usize,
    access: u8,
    matched: u8,
}

/// Whether the call's path matches an escape pattern. A path that cannot be read
/// counts as a match: an unknown path is never treated as harmless.
#[inline(always)]
fn path_matches(rule: &cgwarden_common::SyscallRule, args: &[u64; 6]) -> bool {
    let Some(buf) = PATH_SCRATCH.get_ptr_mut(0) else {
        return true;
    };
    let ptr = pick(args, rule.path_arg);
    let (src, access) = if rule.sockaddr != 0 {
        // SAFETY: reading sa_family from the caller's sockaddr.
        let family = unsafe { bpf_probe_read_user(ptr as *const u16) }.unwrap_or(0);
        if family != AF_UNIX {
            // Network connects are judged by the egress hooks.
            return false;
        }
        (ptr + 2, pattern_applies::CONNECT)
    } else {
        let mut access = pattern_applies::OPEN;
        if rule.open_flags_arg != NO_ARG {
            let raw = pick(args, rule.open_flags_arg);
            let flags = if rule.open_flags_indirect != 0 {
                // SAFETY: the first u64 of the caller's struct open_how.
                unsafe { bpf_probe_read_user(raw as *const u64) }.unwrap_or(1)
            } else {
                raw
            };
            if flags & 3 != 0 {
                access |= pattern_applies::OPEN_WRITE;
            }
        }
        (ptr, access)
    };
    // SAFETY: `buf` is this CPU's scratch value, SYSCALL_PATH_BYTES long.
    let len = match unsafe { bpf_probe_read_user_str_bytes(src as *const u8, &mut *buf) } {
        Ok(bytes) => bytes.len(),
        Err(_) => {
            // SAFETY: as above.
            unsafe { (*buf)[0] = 0 };
            return true;
        }
    };
    let mut m = Matcher {
        buf: buf.cast::<u8>().cast_const(),
        len,
        access,
        matched: 0,
    };
    // SAFETY: the callback only uses the pointer as the `Matcher` it is.
    unsafe {
        bpf_loop(
            PATH_PATTERNS_MAX,
            pattern_step as *mut c_void,
            (&raw mut m).cast(),
            0,
        )
    };
    m.matched != 0
}

/// Tries pattern `i`; stops at the first match or the first unused slot.
extern "C" fn pattern_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `Matcher` passed to bpf_loop.
    let m = unsafe { &mut *state.cast::<Matcher>() };
    let Some(p) = PATH_PATTERNS.get(i as u32) else {
        return 1;
    };
    if p.applies == 0 {
        return 1;
    }
    if p.applies & m.access == 0 {
        return 0;
    }
    let (pl, sl) = (usize::from(p.prefix_len), usize::from(p.suffix_len));
    if pl > m.len || sl > m.len {
        return 0;
    }
    for j in 0..PATTERN_PREFIX_BYTES {
        // SAFETY: masked into the scratch buffer.
        if j < pl && unsafe { *m.buf.add(j & PATH_MASK) } != p.prefix[j] {
            return 0;
        }
    }
    let start = m.len - sl;
    for j in 0..PATTERN_SUFFIX_BYTES {
        // SAFETY: as above.
        if j < sl && unsafe { *m.buf.add((start + j) & PATH_MASK) } != p.suffix[j] {
            return 0;
        }
    }
    m.matched = 1;
    1
}

const AF_UNIX: u16 = 1;
/// Keeps indexes inside the SYSCALL_PATH_BYTES scratch buffer.
const PATH_MASK: usize = SYSCALL_PATH_BYTES - 1;

/// Learn mode: records that a process of a learning profile used syscall `id`.
#[inline(always)]
fn learn_syscall(id: u64) {
    let Some(m) = profile::current() else {
        return;
    };
    if m.profile.flags & profile_flags::LEARN_SYSCALLS == 0 {
        return;
    }
    let key = (u64::from(m.profile.id) << 32) | (id & 0xffff_ffff);
    // SAFETY: a plain read of a flag byte.
    if unsafe { SYSCALLS_USED.get(&key) }.is_none() {
        let _ = SYSCALLS_USED.insert(&key, &1, 0);
    }
}
