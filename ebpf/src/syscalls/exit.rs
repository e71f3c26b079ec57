//! Syscall exit: calls judged by their path are judged here, by their path and result,
//! and watched calls whose entry never fired (a seccomp filter refused them first) are
//! judged here, with their errno.
//!
//! Minimum kernel: 5.17, for the path matcher's `bpf_loop` (`paths.rs`); the arguments
//! from saved registers need 5.15 (`bpf_task_pt_regs`, `regs.rs`), which sets
//! `exit_refused`'s floor.

use super::*;

/// `syscalls:sys_exit_*` of watched syscalls. Calls judged by their path (opens,
/// unix connects, writes under read-only paths) are judged here only: by now the
/// kernel has read the path (its pages are resident) and the result is known, and the
/// arguments are still in the task's saved registers, so no entry program runs for
/// them. Calls judged by their rule alone were judged at entry, except those a seccomp
/// filter (Docker's, Podman's, Kubernetes' RuntimeDefault) refused first: it runs
/// before `sys_enter`, which then never fires, but the exit fires with the errno. A
/// watched call that failed and left no mark of its entry is judged here as refused
/// before entry. The record holds `__syscall_nr` and the return value (`layout`).
#[inline(always)]
pub fn exit(ctx: &TracePointContext) -> u32 {
    let (nr, ret) = exit_record(ctx);
    if nr >= 0 {
        judge_at_exit(nr as u32, ret);
    }
    0
}

/// Raw `sys_exit(regs, ret)`, where syscalls are watched through the two raw
/// tracepoints instead of one tracepoint per syscall (`cgwarden exec`): it runs for
/// every syscall of every task, so a syscall not watched at exit costs one array
/// lookup.
#[inline(always)]
pub fn raw_exit(ctx: &RawTracePointContext) -> i32 {
    let Some(nr) = raw_watched_at_exit() else {
        return 0;
    };
    judge_at_exit(nr, ctx.arg::<i64>(1));
    0
}

/// Raw `sys_exit(regs, ret)` for syscalls no rule judges by their path: only the calls
/// refused before entry (as [`exit_refused`]).
#[inline(always)]
pub fn raw_exit_refused(ctx: &RawTracePointContext) -> i32 {
    let ret: i64 = ctx.arg(1);
    if ret >= 0 {
        return 0;
    }
    let Some(nr) = raw_watched_at_exit() else {
        return 0;
    };
    judge_refused_at_exit(nr, ret);
    0
}

/// The syscall number and return value of a `syscalls:sys_exit_*` record, where the
/// loader says (`-1` for a number that cannot be read).
#[inline(always)]
fn exit_record(ctx: &TracePointContext) -> (i32, i64) {
    // SAFETY: fields of the syscall exit record, where the loader says.
    let nr = unsafe { ctx.read_at::<i32>(crate::layout::syscall_nr()) }.unwrap_or(-1);
    // SAFETY: as above.
    let ret = unsafe { ctx.read_at::<i64>(crate::layout::syscall_ret()) }.unwrap_or(0);
    (nr, ret)
}

/// The current syscall's number, if its exit is watched (`syscall_watch::EXIT`; the
/// raw exit programs are attached only where no per-syscall exit tracepoint is).
#[inline(always)]
fn raw_watched_at_exit() -> Option<u32> {
    let nr = current_syscall_nr();
    if nr >= u64::from(RAW_SYSCALL_SLOTS) {
        return None;
    }
    let nr = nr as u32;
    SYSCALL_WATCH
        .get(nr)
        .is_some_and(|w| w & syscall_watch::EXIT != 0)
        .then_some(nr)
}

/// A watched call at its exit (see [`exit`]).
#[inline(always)]
fn judge_at_exit(nr: u32, ret: i64) {
    let id = bpf_get_current_pid_tgid();
    let by_path = judged_at_exit(nr);
    // The fast path of a syscall no rule judges by its path: a call that succeeded, or
    // that was judged at entry (it left a mark), is settled.
    if !by_path && (ret >= 0 || entered(id, nr)) {
        return;
    }
    let Some(m) = profile::current() else {
        return;
    };
    let Some((rule, proc_info)) = rule_for(&m, nr) else {
        return;
    };
    // A rule that acts on the call itself judged it at entry, unless a seccomp filter
    // refused it first. A call refused first is judged by that rule only (also where
    // the rule checks paths as well: one report of the attempt, with its errno).
    let refused_first =
        rule.action != 0 && rule.path_filter == 0 && ret < 0 && (!by_path || !entered(id, nr));
    // Not cleared past the syscall's arity yet: that would give the verifier one
    // state per arity to walk the path matcher with (the agent shows only the
    // syscall's own arguments, and paths are never aggregated).
    let mut args = saved_args();
    if refused_first {
        // Cleared: identical repeats are counted by their arguments.
        clear_unknown_args(nr, &mut args);
        refused(&m, rule, nr, &args, ret, proc_info);
    } else if rule.path_filter != 0 || rule.read_only != 0 {
        judge_exit(&Call {
            m: &m,
            rule,
            nr,
            args: &args,
            flags: 0,
            proc_info,
            path_from: NOT_AN_ESCAPE,
            end: End {
                judged: judged::EXIT,
                ret: forget_range(ret),
            },
        });
    }
}

/// `x`, read back through this CPU's `OPAQUE` slot: the verifier forgets what the
/// branches before learned of its range, so it walks the path judgement after them
/// once, not once for each range they left (a result known ≥ 0, known < 0, either).
#[inline(always)]
fn forget_range(x: i64) -> i64 {
    let Some(slot) = crate::maps::OPAQUE.get_ptr_mut(0) else {
        return x;
    };
    // SAFETY: this CPU's slot, written and read back here only; the volatile read is
    // a real load, not the value just stored.
    unsafe {
        *slot = x;
        core::ptr::read_volatile(slot)
    }
}

/// `syscalls:sys_exit_*` of watched syscalls no rule judges by their path: only the
/// calls refused before entry (see [`exit`]). Where some rule also judges the syscall
/// by its path, [`exit`] is attached as well and judges them all.
#[inline(always)]
pub fn exit_refused(ctx: &TracePointContext) -> u32 {
    let (nr, ret) = exit_record(ctx);
    if nr >= 0 && ret < 0 {
        judge_refused_at_exit(nr as u32, ret);
    }
    0
}

/// A watched call that failed, at its exit, where no rule judges the syscall by its
/// path (see [`exit_refused`]).
#[inline(always)]
fn judge_refused_at_exit(nr: u32, ret: i64) {
    let id = bpf_get_current_pid_tgid();
    if judged_at_exit(nr) || entered(id, nr) {
        return;
    }
    let Some(m) = profile::current() else {
        return;
    };
    let Some((rule, proc_info)) = rule_for(&m, nr) else {
        return;
    };
    if rule.action == 0 || rule.path_filter != 0 {
        return;
    }
    let mut args = saved_args();
    clear_unknown_args(nr, &mut args);
    refused(&m, rule, nr, &args, ret, proc_info);
}

/// A watched call that was refused before it was entered (see [`exit`]): reported, and
/// the caller killed when the rule says so, as at entry.
#[inline(always)]
pub(super) fn refused(
    m: &profile::Match,
    rule: &SyscallRule,
    nr: u32,
    args: &[u64; 6],
    ret: i64,
    proc_info: *const ProcInfo,
) {
    let Some(flags) = of_concern(rule, args) else {
        return;
    };
    let end = End {
        judged: judged::REFUSED_BEFORE_ENTRY,
        ret,
    };
    act_by_rule(m, rule, nr, args, flags, proc_info, end);
}

/// Whether some rule judges syscall `nr` by its path at exit (`syscall_watch::BY_PATH`).
#[inline(always)]
pub(super) fn judged_at_exit(nr: u32) -> bool {
    nr < RAW_SYSCALL_SLOTS
        && SYSCALL_WATCH
            .get(nr)
            .is_some_and(|w| w & syscall_watch::BY_PATH != 0)
}

/// Whether this CPU's mark says thread `id` entered `nr` (and takes the mark).
#[inline(always)]
pub(super) fn entered(id: u64, nr: u32) -> bool {
    let Some(mark) = crate::maps::ENTERED.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's value.
    unsafe {
        if (*mark).id == id && (*mark).nr == u64::from(nr) {
            (*mark).id = 0;
            return true;
        }
    }
    false
}

/// Applies the rule for a path-judged call at its exit: the escape patterns (the rule's
/// action), then the profile's read-only paths (a deviation report). Not inlined: the
/// verifier then checks the refused-before-entry path after it once, not once for
/// every way through the matcher.
#[inline(never)]
pub(super) fn judge_exit(call: &Call) {
    let (rule, args, ret) = (call.rule, call.args, call.end.ret);
    if rule.action != 0 && rule.path_filter != 0 {
        let path = escapes(rule, args, ret);
        if path != NOT_AN_ESCAPE {
            act(&Call {
                path_from: path,
                ..*call
            });
        }
    }
    if rule.read_only != 0 && may_write(rule, args) {
        read_only(call.m, rule, call.nr, args, ret, call.proc_info);
    }
}

/// Whether a path-judged call (at its exit, `ret` its result) is an escape attempt: its
/// path matches an escape pattern, with the executable-handle patterns resolved.
#[inline(never)]
pub(super) fn escapes(rule: &SyscallRule, args: &[u64; 6], ret: i64) -> u8 {
    // A connect that reached a container runtime's API socket, by the socket file's
    // identity: whatever name, mount path or cut-short `addrlen` got it there.
    if rule.sockaddr != 0
        && ret == 0
        && crate::creds::unix_peer_file(args[0])
            // SAFETY: a read-only lookup of a value the agent writes.
            .is_some_and(|f| unsafe { crate::maps::RUNTIME_SOCKETS.get(&f) }.is_some())
    {
        return PATH_SUN;
    }
    // What the call asks for, read once (openat2's flags are in user memory).
    let access = if rule.sockaddr != 0 {
        pattern_applies::CONNECT
    } else {
        open_access(rule, args)
    };
    let matched = path_matches(rule, args, access);
    if matched & pattern_applies::EXE_HANDLE != 0 {
        remember_exe_handle(ret);
        return NOT_AN_ESCAPE;
    }
    if matched & pattern_applies::PROC_FD != 0 {
        // A write-open under /proc or /dev/fd (a reopen through a descriptor, or a
        // process's root) that the kernel refused because the file is a running
        // executable: whatever path took the handle (a symlink to /proc/<pid>/exe
        // names no escape path when it is opened).
        if ret == -ETXTBSY || reopens_exe_handle(ret) {
            return PATH_MATCHED;
        }
    } else if matched != 0 {
        return PATH_MATCHED;
    }
    // An open that reached a block device (a host disk), whatever the node is called
    // (one made with mknod anywhere): reading or writing it is the escape.
    if rule.sockaddr == 0 && ret >= 0 && reached_block_device(ret) {
        return PATH_BLOCK_DEVICE;
    }
    if access & pattern_applies::OPEN_WRITE == 0 {
        return NOT_AN_ESCAPE;
    }
    // A write-open: what it reached, by the file itself, whatever the path said (a
    // symlink, `..`, a relative or long path, a reopen through /proc/self/fd).
    if ret >= 0 {
        return if reached_escape_file(ret) {
            PATH_REACHED
        } else {
            NOT_AN_ESCAPE
        };
    }
    // It failed, so it reached no file. The path as written names no escape file, but
    // it may lead to one (a symlink, a path longer than was read): the agent decides.
    // Only refusals count: a file that does not exist or already exists is not reached.
    if ret == -EACCES || ret == -EPERM || ret == -EROFS {
        return PATH_UNDECIDED;
    }
    NOT_AN_ESCAPE
}

/// Whether the file descriptor `fd` an open returned is an escape file by what it is
/// (`ESCAPE_FILES`); when it is, `REACHED` holds it for the event.
#[inline(always)]
pub(super) fn reached_escape_file(fd: i64) -> bool {
    let Some(key) = crate::maps::REACHED.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's value, read and written only by this program.
    let key = unsafe { &mut *key };
    // SAFETY: a read-only lookup of a value the agent writes.
    crate::creds::reached_file(fd as u64, key)
        && unsafe { crate::maps::ESCAPE_FILES.get(key) }.is_some()
}

/// Whether the descriptor `fd` an open returned is a block device; when it is,
/// `REACHED` holds its name and device number for the event.
#[inline(always)]
pub(super) fn reached_block_device(fd: i64) -> bool {
    let Some(rdev) = crate::creds::block_device_of_fd(fd as u64) else {
        return false;
    };
    let Some(key) = crate::maps::REACHED.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: this CPU's value, read and written only by this program.
    let key = unsafe { &mut *key };
    if !crate::creds::reached_file(fd as u64, key) {
        key.name = [0; cgwarden_common::ESCAPE_FILE_NAME_BYTES];
    }
    key.magic = u64::from(rdev);
    true
}

/// The accesses an open asks for: OPEN, and OPEN_WRITE when its flags write (an
/// unreadable `struct open_how` counts as writing).
#[inline(always)]
pub(super) fn open_access(rule: &SyscallRule, args: &[u64; 6]) -> u8 {
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
    access
}

/// What [`escapes`] found, and so where the event's path comes from.
pub(super) const NOT_AN_ESCAPE: u8 = 0;

pub(super) const EPERM: i64 = 1;

pub(super) const EACCES: i64 = 13;

pub(super) const ETXTBSY: i64 = 26;
