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
//! writes under a profile's read-only paths) are saved at entry and judged at exit,
//! when the kernel has read the path (so its pages are resident) and the result is
//! known: one matcher ([`match_set`]) serves both, over the pattern set of the escape
//! set or of the profile.

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
    NO_ARG, OPEN_WRITE_FLAGS, PATH_PATTERNS_MAX, PATTERN_PREFIX_BYTES, PATTERN_SUFFIX_BYTES,
    PatternKey, PendingCall, ProcInfo, RAW_SYSCALL_SLOTS, READ_PATTERN_SET, SYSCALL_PATH_BYTES,
    SyscallEvent, SyscallKey, SyscallRule, config_flags, judged, kind, pattern_applies, pending,
    proc_flags, profile_flags, reached, syscall_action, syscall_watch, verdict,
};

use crate::{
    event,
    maps::{
        CONFIG, EXE_HANDLES, PATH_PATTERNS, PATH_SCRATCH, PENDING, PROCS, PROFILE_PATTERNS,
        SYSCALL_REPEATS, SYSCALL_RULES, SYSCALL_WATCH, SYSCALLS_USED,
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
    let mut args =
        unsafe { bpf_probe_read_kernel(record.add(2).cast::<[u64; 6]>()) }.unwrap_or([0; 6]);
    if nr < 0 {
        return 0;
    }
    judge(&m, nr as u32, &mut args);
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
    judge(&m, id as u32, &mut args_in(regs));
    0
}

/// `syscalls:sys_exit_*` of watched syscalls: judges the path-judged call saved at
/// entry, and sees the calls that were never entered. A seccomp filter (Docker's,
/// Podman's, Kubernetes' RuntimeDefault) runs before `sys_enter` and refuses a call
/// without it ever firing, but its exit fires with the errno: a watched call whose exit
/// finds no mark of its entry was refused first, and is judged here, with the
/// arguments still in the task's saved registers. The record holds `__syscall_nr` at
/// offset 8 and the return value at offset 16.
#[inline(always)]
pub fn exit(ctx: &TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: offsets of the syscall exit record format.
    let nr = unsafe { ctx.read_at::<i32>(8) }.unwrap_or(-1);
    // SAFETY: as above.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if nr < 0 {
        return 0;
    }
    if let Some(pending) = PENDING.get_ptr(&id) {
        // SAFETY: the pointer comes from the map. Only this thread writes its entry,
        // which is removed after it is judged (not before: a removed element's memory
        // may be reused at once).
        let call = unsafe { &*pending };
        // Another number: saved by a call whose exit was never seen (the task was
        // killed), stale; this call is judged as never entered.
        let same = nr as u32 == call.nr;
        if same {
            let m = profile::Match {
                profile: call.profile,
                cgroup: call.cgroup,
            };
            judge_exit(&m, call, ret);
        }
        let _ = PENDING.remove(&id);
        if same {
            return 0;
        }
    }
    // Entered calls either left a mark or were of no concern at entry (their flags did
    // not match): judged again here, those stay of no concern. A call that succeeded
    // was entered.
    if ret >= 0 || entered(id, nr as u32) {
        return 0;
    }
    let Some(m) = profile::current() else {
        return 0;
    };
    refused(&m, nr as u32, ret);
    0
}

/// A watched call that was refused before it was entered (see [`exit`]): reported, and
/// the caller killed when the rule says so, as at entry. Path-judged calls are not
/// judged here (their path is matched at exit after a seen entry).
#[inline(always)]
fn refused(m: &profile::Match, nr: u32, ret: i64) {
    let Some((rule, proc_info)) = rule_for(m, nr) else {
        return;
    };
    if rule.action == 0 || rule.path_filter != 0 {
        return;
    }
    let mut args = saved_args();
    clear_unknown_args(nr, &mut args);
    let args = &args;
    let Some(flags) = flags_of(rule, args) else {
        return;
    };
    if rule.dirty_pipe != 0 && !crate::creds::dirty_pipe_source(args[0], args[2]) {
        return;
    }
    act(&Call {
        m,
        rule,
        nr,
        args,
        flags,
        proc_info,
        path_from: PATH_BY_RULE,
        end: End {
            judged: judged::REFUSED_BEFORE_ENTRY,
            ret,
        },
    });
}

/// The syscall arguments in the current task's saved user registers (x86_64: rdi,
/// rsi, rdx, r10, r8, r9), as they still are at the syscall's exit.
#[inline(always)]
fn saved_args() -> [u64; 6] {
    // SAFETY: plain helper calls; the registers are read with probe reads.
    unsafe {
        let task = aya_ebpf::helpers::generated::bpf_get_current_task_btf();
        let regs = aya_ebpf::helpers::generated::bpf_task_pt_regs(task) as *const pt_regs;
        if regs.is_null() {
            return [0; 6];
        }
        args_in(regs)
    }
}

/// The syscall arguments in saved user registers: x86_64 passes them in rdi, rsi,
/// rdx, r10, r8, r9. Each is read with a probe read (0 when it fails).
#[inline(always)]
fn args_in(regs: *const pt_regs) -> [u64; 6] {
    // SAFETY: only probe reads of fields of the kernel's pt_regs.
    unsafe {
        [
            bpf_probe_read_kernel(&raw const (*regs).rdi).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).rsi).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).rdx).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r10).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r8).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*regs).r9).unwrap_or(0),
        ]
    }
}

/// The flags a rule with a flags condition checks, or `None` when they do not match
/// (the call is of no concern); 0 for rules without one.
#[inline(always)]
fn flags_of(rule: &SyscallRule, args: &[u64; 6]) -> Option<u64> {
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
struct End {
    judged: u32,
    ret: i64,
}

const AT_ENTRY: End = End {
    judged: judged::ENTRY,
    ret: 0,
};

/// The profile's rule for syscall `nr` and the calling process's table entry, when the
/// rule applies to it: only armed processes are judged (a runtime's set-up process is
/// not, before it executes the container's program).
#[inline(always)]
fn rule_for(m: &profile::Match, nr: u32) -> Option<(&'static SyscallRule, *const ProcInfo)> {
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

/// Applies the profile's rule for syscall `nr` at entry, if it has one. Calls judged by
/// their path are saved for the exit.
#[inline(always)]
fn judge(m: &profile::Match, nr: u32, args: &mut [u64; 6]) {
    let Some((rule, proc_info)) = rule_for(m, nr) else {
        return;
    };
    // Saved for the exit as cleared here.
    clear_unknown_args(nr, args);
    let args = &*args;
    let writes = rule.read_only != 0 && may_write(rule, args);
    if rule.path_filter != 0 || writes {
        save(m, nr, if writes { pending::WRITES } else { 0 }, args);
    }
    if rule.action == 0 || rule.path_filter != 0 {
        return;
    }
    let Some(flags) = flags_of(rule, args) else {
        return;
    };
    if rule.dirty_pipe != 0 && !crate::creds::dirty_pipe_source(args[0], args[2]) {
        return;
    }
    // The exit must know this call was entered, or it would judge it again as refused
    // if it fails: a mark on this CPU (a call rarely moves CPUs between its entry and
    // its exit; one that does and then fails is reported once more, as refused).
    if !writes && watched_at_exit(nr) {
        mark_entered(nr);
    }
    act(&Call {
        m,
        rule,
        nr,
        args,
        flags,
        proc_info,
        path_from: PATH_BY_RULE,
        end: AT_ENTRY,
    });
}

/// Marks, on this CPU, that the calling thread entered syscall `nr` and it was judged.
#[inline(always)]
fn mark_entered(nr: u32) {
    if let Some(mark) = crate::maps::ENTERED.get_ptr_mut(0) {
        // SAFETY: this CPU's value.
        unsafe {
            (*mark).id = bpf_get_current_pid_tgid();
            (*mark).nr = u64::from(nr);
        }
    }
}

/// Whether this CPU's mark says thread `id` entered `nr` (and takes the mark).
#[inline(always)]
fn entered(id: u64, nr: u32) -> bool {
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

/// Saves a call at entry for its exit.
#[inline(always)]
fn save(m: &profile::Match, nr: u32, bits: u32, args: &[u64; 6]) {
    let pending = PendingCall {
        nr,
        writes: bits,
        args: *args,
        profile: m.profile,
        cgroup: m.cgroup,
    };
    let _ = PENDING.insert(&bpf_get_current_pid_tgid(), &pending, 0);
}

/// Whether syscall `nr`'s exit tracepoint is attached.
#[inline(always)]
fn watched_at_exit(nr: u32) -> bool {
    nr < RAW_SYSCALL_SLOTS
        && SYSCALL_WATCH
            .get(nr)
            .is_some_and(|w| w & syscall_watch::EXIT != 0)
}

/// Applies the rule for a path-judged call at its exit: the escape patterns (the rule's
/// action), then the profile's read-only paths (a deviation report).
#[inline(always)]
fn judge_exit(m: &profile::Match, call: &PendingCall, ret: i64) {
    let (nr, args) = (call.nr, &call.args);
    let Some((rule, proc_info)) = rule_for(m, nr) else {
        return;
    };
    if rule.action != 0 && rule.path_filter != 0 {
        let path = escapes(rule, args, ret);
        if path != NOT_AN_ESCAPE {
            let end = End {
                judged: judged::EXIT,
                ret,
            };
            act(&Call {
                m,
                rule,
                nr,
                args,
                flags: 0,
                proc_info,
                path_from: path,
                end,
            });
        }
    }
    if call.writes & pending::WRITES != 0 {
        read_only(m, rule, nr, args, ret, proc_info);
    }
}

#[derive(Clone, Copy)]
/// A watched call to act on: what [`act`] needs, in one place (a BPF subprogram takes
/// at most five arguments).
struct Call<'a> {
    m: &'a profile::Match,
    rule: &'a SyscallRule,
    nr: u32,
    args: &'a [u64; 6],
    /// The flags the rule checked (0 for none).
    flags: u64,
    proc_info: *const ProcInfo,
    /// Where the event's path comes from ([`PATH_BY_RULE`], [`PATH_MATCHED`],
    /// [`PATH_SUN`], [`PATH_REACHED`], [`PATH_UNDECIDED`]).
    path_from: u8,
    end: End,
}

/// Reports a watched call, and kills the caller when the rule says so (enforce mode).
/// Not inlined: every caller (entry, exit, refused before entry) shares one copy, and
/// its record and repeat key live in its own frame, not in each caller's (the
/// verifier's 512-byte limit counts a caller's frame and its callee's together).
#[inline(never)]
fn act(call: &Call) {
    let (m, rule, nr, args, path_from) = (call.m, call.rule, call.nr, call.args, call.path_from);
    // An undecided call is reported, never killed: the agent decides what it reached.
    let action = if path_from == PATH_UNDECIDED {
        syscall_action::REPORT
    } else {
        rule.action
    };
    let kill = action == syscall_action::KILL || action == syscall_action::KILL_CONTAINER;
    let verdict = crate::verdict::of(&m.profile, kill);
    let cgroup_id = m.cgroup_of_task();
    let mut total = 0;
    if verdict == verdict::DENY {
        // SAFETY: signals the current task; it dies before returning to user space.
        unsafe { bpf_send_signal(SIGKILL) };
    } else if rule.path_arg == NO_ARG {
        // Reported calls repeat (a loop, a retry): identical ones are counted in the
        // kernel and sent at most once per window, like flows. Calls with a path are
        // always sent: the same pointer can name another path.
        // A repeat key is 80 bytes: built in this CPU's scratch value, not on the stack
        // (the lookup cannot fail; if it did, the call would go unaggregated).
        if let Some(key) = crate::maps::REPEAT_KEY_SCRATCH.get_ptr_mut(0) {
            // SAFETY: this CPU's value, written whole here and used only by this program.
            let key = unsafe {
                (*key).cgroup_id = cgroup_id;
                (*key).profile = m.profile.id;
                (*key).pid = (bpf_get_current_pid_tgid() >> 32) as u32;
                (*key).nr = nr;
                (*key).rule = rule.rule;
                (*key).verdict = verdict;
                (*key).action = action;
                (*key)._pad = [0; 6];
                (*key).args = *args;
                &*key
            };
            // SAFETY: plain helper call without arguments.
            let now = unsafe { bpf_ktime_get_ns() };
            match event::repeat(&SYSCALL_REPEATS, key, now) {
                Some(t) => total = t,
                None => return,
            }
        }
    }
    let mut how = reached::PATH;
    let path = if path_from == PATH_MATCHED {
        PathFrom::Scratch
    } else if path_from == PATH_REACHED {
        how = reached::FILE;
        PathFrom::Scratch
    } else if path_from == PATH_UNDECIDED {
        how = reached::UNDECIDED;
        PathFrom::Scratch
    } else if path_from == PATH_SUN {
        // `sun_path`, after the family, of the sockaddr the caller passed.
        PathFrom::Arg(pick(args, rule.path_arg).wrapping_add(2))
    } else if rule.path_arg != NO_ARG {
        PathFrom::Arg(pick(args, rule.path_arg))
    } else {
        PathFrom::None
    };
    // The agent acts on a kill-container at once: woken now, not with the next batch.
    let urgent = action == syscall_action::KILL_CONTAINER;
    event::emit::<SyscallEvent>(urgent, |ev| {
        // SAFETY: `ev` is the reserved record; `begin` writes every field first.
        unsafe {
            begin(
                ev,
                &About {
                    m,
                    kind: kind::SYSCALL,
                    cgroup_id,
                    nr,
                    args,
                    proc_info: call.proc_info,
                    end: call.end,
                },
            );
            (*ev).action = action;
            (*ev).verdict = verdict;
            (*ev).rule = rule.rule;
            (*ev).flags = call.flags;
            (*ev).total = total;
            (*ev).reached = how;
            if rule.fd_ino_arg != NO_ARG {
                (*ev).fd_ino =
                    crate::creds::inode_number_of_fd(pick(args, rule.fd_ino_arg)).unwrap_or(0);
            }
            if how == reached::FILE {
                reached_file_into(ev);
            } else if rule.str_arg != NO_ARG
                && let Ok(s) = bpf_probe_read_user_str_bytes(
                    pick(args, rule.str_arg) as *const u8,
                    &mut (*ev).str_val,
                )
            {
                (*ev).str_len = s.len() as u32 + 1;
            }
            path_into(ev, path);
        }
    });
}

/// Where the path of an event comes from.
enum PathFrom {
    None,
    /// Already read into `PATH_SCRATCH` (matched calls).
    Scratch,
    /// The user pointer in this argument.
    Arg(u64),
    /// The path could not be read.
    Unreadable,
}

/// The call an event is about: the profile, the syscall and its arguments, the
/// process, and where and how the call ended.
struct About<'a> {
    m: &'a profile::Match,
    kind: u32,
    cgroup_id: u64,
    nr: u32,
    args: &'a [u64; 6],
    proc_info: *const ProcInfo,
    end: End,
}

/// Writes every field of a reserved [`SyscallEvent`]: what `about` says, the rest
/// empty (a plain report of no rule) for the caller to fill in.
///
/// # Safety
/// `ev` is a reserved record; `about.proc_info` comes from the process table.
#[inline(always)]
unsafe fn begin(ev: *mut SyscallEvent, about: &About) {
    // SAFETY: as the caller promises.
    unsafe {
        event::write_header(
            &raw mut (*ev).header,
            about.kind,
            about.m.profile.id,
            about.cgroup_id,
        );
        (*ev).nr = about.nr;
        (*ev).args = *about.args;
        (*ev).judged = about.end.judged;
        (*ev).ret = about.end.ret;
        (*ev).ppid = (*about.proc_info).ppid;
        (*ev).exe = (*about.proc_info).exe;
        (*ev).total = 0;
        (*ev).action = 0;
        (*ev).verdict = verdict::ALLOW;
        (*ev).rule = 0;
        (*ev).flags = 0;
        (*ev).path_unreadable = 0;
        (*ev).unresolved = 0;
        (*ev).path_len = 0;
        (*ev).str_len = 0;
        (*ev).reached = reached::PATH;
        (*ev)._pad3 = [0; 3];
        (*ev).reached_magic = 0;
        (*ev).fd_ino = 0;
    }
}

/// Copies the file an open reached (`REACHED`) into the event: its file system's
/// magic and its name.
///
/// # Safety
/// `ev` is a reserved record.
#[inline(always)]
unsafe fn reached_file_into(ev: *mut SyscallEvent) {
    let Some(file) = crate::maps::REACHED.get_ptr(0) else {
        return;
    };
    // SAFETY: `file` is this CPU's value; `ev` as the caller promises.
    unsafe {
        (*ev).reached_magic = (*file).magic;
        let name = &(*file).name;
        let mut len = name.len() - 1;
        for i in 0..name.len() {
            let b = name[i];
            (*ev).str_val[i] = b;
            if b == 0 && i < len {
                len = i;
            }
        }
        (*ev).str_len = len as u32 + 1;
    }
}

/// Writes the event's path from where it comes from.
///
/// # Safety
/// `ev` is a reserved record.
#[inline(always)]
unsafe fn path_into(ev: *mut SyscallEvent, path: PathFrom) {
    // SAFETY: as the caller promises.
    unsafe {
        match path {
            PathFrom::None => {}
            PathFrom::Unreadable => (*ev).path_unreadable = 1,
            PathFrom::Scratch => match PATH_SCRATCH.get_ptr(0) {
                Some(scratch) => {
                    (*ev).path = *scratch;
                    let end = (*ev).path.iter().position(|b| *b == 0).unwrap_or(0);
                    (*ev).path_len = end as u32 + 1;
                }
                None => (*ev).path_unreadable = 1,
            },
            PathFrom::Arg(ptr) => {
                match bpf_probe_read_user_str_bytes(ptr as *const u8, &mut (*ev).path) {
                    Ok(bytes) => (*ev).path_len = bytes.len() as u32 + 1,
                    Err(_) => (*ev).path_unreadable = 1,
                }
            }
        }
    }
}

/// Where a written path lies, for the profile's read-only paths.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Under a writable path, or under no read-only one.
    Fine,
    /// Under a read-only path (or the kernel refused the write with EROFS).
    ReadOnly,
    /// Relative, or with `.`, `..` or `//` components: for the agent to resolve.
    Unresolved,
    /// The path could not be read: never treated as harmless.
    Unreadable,
}

const EROFS: i64 = 30;

/// A write call under a profile with read-only paths (an open only with write flags,
/// decided at entry and carried in `PendingCall::writes`: deciding it again here would
/// multiply the paths the verifier walks through the matcher, about sevenfold):
/// reported when a path it writes lies under a read-only path, when the kernel refused
/// it as a write to a read-only file system (a symlink cannot hide that), or when its
/// place is not known here.
#[inline(always)]
fn read_only(
    m: &profile::Match,
    rule: &SyscallRule,
    nr: u32,
    args: &[u64; 6],
    ret: i64,
    proc_info: *const ProcInfo,
) {
    let call = WriteCall {
        m,
        nr,
        args,
        ret,
        proc_info,
    };
    for arg in [rule.write_path_arg, rule.write_path_arg2] {
        if arg != NO_ARG && judge_write_path(&call, arg) {
            return;
        }
    }
}

/// A write judged at its exit against the profile's read-only paths.
struct WriteCall<'a> {
    m: &'a profile::Match,
    nr: u32,
    args: &'a [u64; 6],
    ret: i64,
    proc_info: *const ProcInfo,
}

/// Judges one path argument of a write and reports it when it deviates or only the
/// agent can place it. Returns whether the call is settled (a deviation reported): a
/// path only the agent can place (relative) may turn out writable, so the call's other
/// path (rename's target) is judged as well. Not inlined: the verifier then checks one
/// copy, however many paths a call has.
#[inline(never)]
fn judge_write_path(call: &WriteCall, arg: u8) -> bool {
    let m = call.m;
    let place = place_of(m.profile.id, pick(call.args, arg));
    if place == Place::Fine && call.ret != -EROFS {
        return false;
    }
    let path = if place == Place::Unreadable {
        PathFrom::Unreadable
    } else {
        PathFrom::Scratch
    };
    let about = About {
        m,
        kind: kind::READ_ONLY,
        cgroup_id: m.cgroup_of_task(),
        nr: call.nr,
        args: call.args,
        proc_info: call.proc_info,
        end: End {
            judged: judged::EXIT,
            ret: call.ret,
        },
    };
    event::emit::<SyscallEvent>(false, |ev| {
        // SAFETY: `ev` is the reserved record; `begin` writes every field first.
        unsafe {
            begin(ev, &about);
            (*ev).rule = u32::from(arg);
            (*ev).flags = call.ret as u64;
            (*ev).unresolved = u8::from(place == Place::Unresolved);
            path_into(ev, path);
        }
    });
    place != Place::Unresolved
}

/// Whether a write call may write: an open only with write flags (an unreadable
/// `open_how` counts as a write), every other write call always.
#[inline(always)]
fn may_write(rule: &SyscallRule, args: &[u64; 6]) -> bool {
    if rule.open_flags_arg == NO_ARG {
        return true;
    }
    let raw = pick(args, rule.open_flags_arg);
    let flags = if rule.open_flags_indirect != 0 {
        // SAFETY: the first u64 of the caller's struct open_how.
        unsafe { bpf_probe_read_user(raw as *const u64) }.unwrap_or(OPEN_WRITE_FLAGS)
    } else {
        raw
    };
    flags & OPEN_WRITE_FLAGS != 0
}

/// Reads the path at `ptr` into `PATH_SCRATCH` and places it against pattern set `set`.
#[inline(always)]
fn place_of(set: u32, ptr: u64) -> Place {
    let Some(buf) = PATH_SCRATCH.get_ptr_mut(0) else {
        return Place::Unreadable;
    };
    // SAFETY: `buf` is this CPU's scratch value, SYSCALL_PATH_BYTES long.
    let len = match unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, &mut *buf) } {
        Ok(bytes) => bytes.len(),
        Err(_) => {
            // SAFETY: as above.
            unsafe { (*buf)[0] = 0 };
            return Place::Unreadable;
        }
    };
    // SAFETY: as above.
    if len == 0 || unsafe { (*buf)[0] } != b'/' {
        return Place::Unresolved;
    }
    let mut scan = Matcher {
        buf: buf.cast::<u8>().cast_const(),
        len,
        access: 0,
        matched: 0,
        set,
    };
    // SAFETY: the callback only uses the pointer as the `Matcher` it is.
    unsafe {
        bpf_loop(
            SYSCALL_PATH_BYTES as u32,
            dot_step as *mut c_void,
            (&raw mut scan).cast(),
            0,
        )
    };
    if scan.matched != 0 {
        return Place::Unresolved;
    }
    let applies = match_set(
        set,
        buf.cast::<u8>().cast_const(),
        len,
        pattern_applies::READ_ONLY | pattern_applies::WRITABLE,
    );
    if applies & pattern_applies::READ_ONLY != 0 {
        Place::ReadOnly
    } else {
        Place::Fine
    }
}

/// Looks at byte `i`: a `/` followed by `/`, `./`, `../` or `.`/`..` at the end makes
/// the path one the kernel does not place.
extern "C" fn dot_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `Matcher` passed to bpf_loop.
    let m = unsafe { &mut *state.cast::<Matcher>() };
    let i = i as usize;
    if i >= m.len {
        return 1;
    }
    let at = |j: usize| -> u8 {
        if j < m.len {
            // SAFETY: masked into the scratch buffer.
            unsafe { *m.buf.add(j & PATH_MASK) }
        } else {
            0
        }
    };
    if at(i) != b'/' {
        return 0;
    }
    let (a, b, c) = (at(i + 1), at(i + 2), at(i + 3));
    let end = |x: u8| x == b'/' || x == 0;
    if a == b'/' || (a == b'.' && (end(b) || (b == b'.' && end(c)))) {
        m.matched = 1;
        return 1;
    }
    0
}

/// The call's arguments, with the slots past the syscall's arity cleared (they hold
/// whatever followed the tracepoint record, or unused registers).
#[inline(always)]
fn clear_unknown_args(nr: u32, args: &mut [u64; 6]) {
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
    /// The `applies` bits of the first pattern that matched (0: none).
    matched: u8,
    set: u32,
}

/// The `applies` bits of the escape pattern the call's path matches, 0 for none.
/// `access` is what the call asks for ([`open_access`] for opens, CONNECT for
/// connects). A path that cannot be read counts as a plain match: an unknown path is
/// never treated as harmless.
#[inline(always)]
fn path_matches(rule: &SyscallRule, args: &[u64; 6], access: u8) -> u8 {
    const UNKNOWN: u8 = pattern_applies::OPEN;
    let Some(buf) = PATH_SCRATCH.get_ptr_mut(0) else {
        return UNKNOWN;
    };
    let ptr = pick(args, rule.path_arg);
    let src = if rule.sockaddr != 0 {
        // SAFETY: reading sa_family from the caller's sockaddr.
        let family = unsafe { bpf_probe_read_user(ptr as *const u16) }.unwrap_or(0);
        if family != AF_UNIX {
            // Network connects are judged by the egress hooks.
            return 0;
        }
        ptr + 2
    } else {
        ptr
    };
    // SAFETY: `buf` is this CPU's scratch value, SYSCALL_PATH_BYTES long.
    let read = unsafe { bpf_probe_read_user_str_bytes(src as *const u8, &mut *buf) };
    let len = match read {
        // An abstract socket's name (`sun_path` starts with a NUL: a shim's socket,
        // CVE-2020-15257), read after the NUL and written `@name`. The kernel matches
        // an abstract name exactly, so the name written is the socket reached.
        Ok([]) if rule.sockaddr != 0 => {
            // SAFETY: as above; the name goes after the `@`.
            let (at, rest) = unsafe { (*buf).split_at_mut(1) };
            at[0] = b'@';
            // SAFETY: reading the caller's sockaddr past the NUL.
            let read = match unsafe { bpf_probe_read_user_str_bytes((src + 1) as *const u8, rest) }
            {
                Ok(name) => name.len() + 1,
                Err(_) => return 0,
            };
            // The name ends where `addrlen` (the argument after the sockaddr) says, not
            // at a NUL: the family's two bytes, the NUL, then the name.
            let addrlen = pick(args, rule.path_arg + 1) as usize;
            let len = if addrlen >= 3 && addrlen - 2 < read {
                addrlen - 2
            } else {
                read
            };
            // SAFETY: masked into the scratch buffer.
            unsafe { (*buf)[len & PATH_MASK] = 0 };
            len
        }
        Ok(bytes) => bytes.len(),
        Err(_) => {
            // SAFETY: as above.
            unsafe { (*buf)[0] = 0 };
            return UNKNOWN;
        }
    };
    // Most opens only read: they walk only the patterns a read can match.
    let set = if access == pattern_applies::OPEN {
        READ_PATTERN_SET
    } else {
        0
    };
    match_set(set, buf.cast::<u8>().cast_const(), len, access)
}

/// Whether a path-judged call (at its exit, `ret` its result) is an escape attempt: its
/// path matches an escape pattern, with the executable-handle patterns resolved.
#[inline(never)]
fn escapes(rule: &SyscallRule, args: &[u64; 6], ret: i64) -> u8 {
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
        if reopens_exe_handle(ret) {
            return PATH_MATCHED;
        }
    } else if matched != 0 {
        return PATH_MATCHED;
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
fn reached_escape_file(fd: i64) -> bool {
    let Some(key) = crate::maps::REACHED.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's value, read and written only by this program.
    let key = unsafe { &mut *key };
    // SAFETY: a read-only lookup of a value the agent writes.
    crate::creds::reached_file(fd as u64, key)
        && unsafe { crate::maps::ESCAPE_FILES.get(key) }.is_some()
}

/// The accesses an open asks for: OPEN, and OPEN_WRITE when its flags write (an
/// unreadable `struct open_how` counts as writing).
#[inline(always)]
fn open_access(rule: &SyscallRule, args: &[u64; 6]) -> u8 {
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
const NOT_AN_ESCAPE: u8 = 0;
/// The rule's path argument, read when the event is written.
const PATH_BY_RULE: u8 = 0;
/// The path the matcher read, in `PATH_SCRATCH`.
const PATH_MATCHED: u8 = 1;
/// A connect's `sun_path` (the socket it reached was known by its identity).
const PATH_SUN: u8 = 2;
/// The path the matcher read, in `PATH_SCRATCH`; the open was judged by the file it
/// reached, in `REACHED`.
const PATH_REACHED: u8 = 3;
/// The path the matcher read, in `PATH_SCRATCH`; the kernel could not decide.
const PATH_UNDECIDED: u8 = 4;

const EPERM: i64 = 1;
const EACCES: i64 = 13;

/// Key of `EXE_HANDLES` for a descriptor by number: the process and the number.
#[inline(always)]
fn fd_key(tgid: u64, fd: u64) -> u64 {
    (tgid << 32) | (fd & 0xffff_ffff)
}

/// Remembers an executable handle an open of some `/proc/<pid>/exe` returned (any
/// mode, `O_PATH` included): by its inode, which every later reopen of the same file
/// shows whatever path, process or descriptor it goes through, and by process and
/// number, for reopens that fail (a running executable cannot be opened for writing:
/// ETXTBSY) and for kernels whose BTF the agent could not read.
#[inline(never)]
fn remember_exe_handle(ret: i64) {
    if ret < 0 {
        return;
    }
    if let Some(inode) = crate::creds::inode_of_fd(ret as u64) {
        let _ = EXE_HANDLES.insert(&inode, &1, 0);
    }
    let tgid = bpf_get_current_pid_tgid() >> 32;
    let _ = EXE_HANDLES.insert(&fd_key(tgid, ret as u64), &1, 0);
}

/// Parser state for `/proc/<pid|self|thread-self>/fd/<fd>` in `PATH_SCRATCH`.
#[repr(C)]
struct ProcFd {
    buf: *const u8,
    /// 0: the process component, 1: `fd`, 2: the descriptor, 3: parsed.
    phase: u8,
    /// The process component was `self` or `thread-self`.
    own: u8,
    digits: u8,
    len: u8,
    /// The component's first eight bytes.
    tag: u64,
    num: u64,
    pid: u64,
}

/// Whether a write-open under `/proc` (whose path is in `PATH_SCRATCH`, `ret` its
/// result) reopens a remembered executable handle: a descriptor it returned names a
/// remembered inode; a refused one names a remembered descriptor through
/// `/proc/<pid|self|thread-self>/fd/<fd>`.
#[inline(never)]
fn reopens_exe_handle(ret: i64) -> bool {
    if ret >= 0 {
        if let Some(inode) = crate::creds::inode_of_fd(ret as u64) {
            // SAFETY: a plain read of a flag byte.
            return unsafe { EXE_HANDLES.get(&inode) }.is_some();
        }
    }
    let Some(buf) = PATH_SCRATCH.get_ptr(0) else {
        return false;
    };
    let mut p = ProcFd {
        buf: buf.cast::<u8>(),
        phase: 0,
        own: 0,
        digits: 1,
        len: 0,
        tag: 0,
        num: 0,
        pid: 0,
    };
    // SAFETY: the callback only uses the pointer as the `ProcFd` it is.
    unsafe {
        bpf_loop(
            (SYSCALL_PATH_BYTES - PROC_PREFIX) as u32,
            proc_fd_step as *mut c_void,
            (&raw mut p).cast(),
            0,
        )
    };
    if p.phase != 3 {
        return false;
    }
    let pid = if p.own != 0 {
        bpf_get_current_pid_tgid() >> 32
    } else {
        p.pid
    };
    // SAFETY: a plain read of a flag byte.
    unsafe { EXE_HANDLES.get(&fd_key(pid, p.num)) }.is_some()
}

/// Bytes of `/proc/`, where the parse starts.
const PROC_PREFIX: usize = 6;

/// Reads byte `i` after `/proc/`; stops at the end of the path or on anything that is
/// not `<pid|self|thread-self>/fd/<digits>`.
extern "C" fn proc_fd_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `ProcFd` passed to bpf_loop.
    let p = unsafe { &mut *state.cast::<ProcFd>() };
    // SAFETY: masked into the scratch buffer.
    let c = unsafe { *p.buf.add((PROC_PREFIX + i as usize) & PATH_MASK) };
    if c == b'/' || c == 0 {
        let ok = match p.phase {
            0 => {
                if p.len == 4 && p.tag == u64::from_le_bytes(*b"self\0\0\0\0")
                    || p.len == 11 && p.tag == u64::from_le_bytes(*b"thread-s")
                {
                    p.own = 1;
                    true
                } else {
                    p.pid = p.num;
                    p.len > 0 && p.digits != 0
                }
            }
            1 => p.len == 2 && p.tag == u64::from_le_bytes(*b"fd\0\0\0\0\0\0"),
            _ => c == 0 && p.len > 0 && p.digits != 0,
        };
        if !ok || (c == 0) != (p.phase == 2) {
            return 1;
        }
        p.phase += 1;
        if p.phase == 3 {
            return 1;
        }
        p.len = 0;
        p.tag = 0;
        p.num = 0;
        p.digits = 1;
        return 0;
    }
    if p.len < 8 {
        p.tag |= u64::from(c) << (8 * u64::from(p.len));
    }
    p.len = p.len.saturating_add(1);
    if c.is_ascii_digit() {
        p.num = p.num.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
    } else {
        p.digits = 0;
    }
    0
}

/// Matches the path in `buf` (`len` bytes) against pattern set `set`; returns the
/// `applies` bits of the first pattern that applies to `access` and matches, or 0.
#[inline(always)]
fn match_set(set: u32, buf: *const u8, len: usize, access: u8) -> u8 {
    let mut m = Matcher {
        buf,
        len,
        access,
        matched: 0,
        set,
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
    m.matched
}

/// Tries pattern `i` of the set; stops at the first match or the first missing index.
extern "C" fn pattern_step(i: u64, state: *mut c_void) -> i64 {
    // SAFETY: `state` is the `Matcher` passed to bpf_loop.
    let m = unsafe { &mut *state.cast::<Matcher>() };
    let p = if m.set == 0 {
        PATH_PATTERNS.get(i as u32)
    } else if m.set == READ_PATTERN_SET {
        crate::maps::READ_PATTERNS.get(i as u32)
    } else {
        let key = PatternKey {
            set: m.set,
            index: i as u32,
        };
        // SAFETY: values are written whole by the agent and only read here.
        unsafe { PROFILE_PATTERNS.get(&key) }
    };
    let Some(p) = p else {
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
    // Word by word, the bytes past the prefix masked out: no branch per byte.
    // SAFETY: both are map values (8-byte aligned), the scratch buffer holds at least
    // PATTERN_PREFIX_BYTES and `PathPattern` is 8-byte aligned.
    let (path, prefix) = (m.buf.cast::<u64>(), p.prefix.as_ptr().cast::<u64>());
    let mut diff = 0u64;
    for k in 0..PATTERN_PREFIX_BYTES / 8 {
        // SAFETY: as above.
        diff |= unsafe { *path.add(k) ^ *prefix.add(k) } & p.prefix_mask[k];
    }
    if diff != 0 {
        return 0;
    }
    // A directory prefix ends at a path component boundary.
    // SAFETY: as above.
    if p.dir != 0 && pl < m.len && unsafe { *m.buf.add(pl & PATH_MASK) } != b'/' {
        return 0;
    }
    let start = m.len - sl;
    for j in 0..PATTERN_SUFFIX_BYTES {
        // SAFETY: masked into the scratch buffer.
        if j < sl && unsafe { *m.buf.add((start + j) & PATH_MASK) } != p.suffix[j] {
            return 0;
        }
    }
    m.matched = p.applies;
    1
}

const AF_UNIX: u16 = 1;
/// Keeps indexes inside the SYSCALL_PATH_BYTES scratch buffer.
const PATH_MASK: usize = SYSCALL_PATH_BYTES - 1;

/// Learn mode: records that an armed process of a learning profile used syscall `id`.
#[inline(always)]
fn learn_syscall(id: u64) {
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
