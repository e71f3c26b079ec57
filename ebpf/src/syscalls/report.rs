//! Acting on a watched call: the verdict, SIGKILL when the rule kills, repeats counted
//! in the kernel, and the one way a syscall record is written.
//!
//! Minimum kernel: 5.12, for repeat totals (an atomic fetch-add, in `event::repeat`);
//! the record needs 5.8 (the ring buffer), the kill 5.3 (`bpf_send_signal`).

use super::*;

#[derive(Clone, Copy)]
/// A watched call to act on: what [`act`] needs, in one place (a BPF subprogram takes
/// at most five arguments).
pub(super) struct Call<'a> {
    pub(super) m: &'a profile::Match,
    pub(super) rule: &'a SyscallRule,
    pub(super) nr: u32,
    pub(super) args: &'a [u64; 6],
    /// The flags the rule checked (0 for none).
    pub(super) flags: u64,
    pub(super) proc_info: *const ProcInfo,
    /// Where the event's path comes from ([`PATH_BY_RULE`], [`PATH_MATCHED`],
    /// [`PATH_SUN`], [`PATH_REACHED`], [`PATH_UNDECIDED`], [`PATH_BLOCK_DEVICE`]).
    pub(super) path_from: u8,
    pub(super) end: End,
}

/// Acts on a call judged by its rule alone (not by a path) and of the rule's concern
/// (`flags` from [`of_concern`]): at entry, or at the exit of a call refused before
/// entry.
#[inline(always)]
pub(super) fn act_by_rule(
    m: &profile::Match,
    rule: &SyscallRule,
    nr: u32,
    args: &[u64; 6],
    flags: u64,
    proc_info: *const ProcInfo,
    end: End,
) {
    act(&Call {
        m,
        rule,
        nr,
        args,
        flags,
        proc_info,
        path_from: PATH_BY_RULE,
        end,
    });
}

/// Reports a watched call, and kills the caller when the rule says so (enforce mode).
/// Not inlined: every caller (entry, exit, refused before entry) shares one copy, and
/// its record and repeat key live in its own frame, not in each caller's (the
/// verifier's 512-byte limit counts a caller's frame and its callee's together).
#[inline(never)]
pub(super) fn act(call: &Call) {
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
                event::copy(&raw mut (*key).args, args);
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
    } else if path_from == PATH_BLOCK_DEVICE {
        // Read now: a read-only open's path is read in full only where a read pattern
        // may match it (`may_match_read`), and a block device can have any name.
        how = reached::BLOCK_DEVICE;
        PathFrom::Arg(pick(args, rule.path_arg))
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
            if how == reached::FILE || how == reached::BLOCK_DEVICE {
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
pub(super) enum PathFrom {
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
pub(super) struct About<'a> {
    pub(super) m: &'a profile::Match,
    pub(super) kind: u32,
    pub(super) cgroup_id: u64,
    pub(super) nr: u32,
    pub(super) args: &'a [u64; 6],
    pub(super) proc_info: *const ProcInfo,
    pub(super) end: End,
}

/// Writes every field of a reserved [`SyscallEvent`]: what `about` says, the rest
/// empty (a plain report of no rule) for the caller to fill in.
///
/// # Safety
/// `ev` is a reserved record; `about.proc_info` comes from the process table.
#[inline(always)]
pub(super) unsafe fn begin(ev: *mut SyscallEvent, about: &About) {
    // SAFETY: as the caller promises.
    unsafe {
        event::write_header(
            &raw mut (*ev).header,
            about.kind,
            about.m.profile.id,
            about.cgroup_id,
        );
        (*ev).nr = about.nr;
        event::copy(&raw mut (*ev).args, about.args);
        (*ev).judged = about.end.judged;
        (*ev).ret = about.end.ret;
        (*ev).ppid = (*about.proc_info).ppid;
        event::copy(&raw mut (*ev).exe, &raw const (*about.proc_info).exe);
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
pub(super) unsafe fn reached_file_into(ev: *mut SyscallEvent) {
    let Some(file) = crate::maps::REACHED.get_ptr(0) else {
        return;
    };
    // SAFETY: `file` is this CPU's value; `ev` as the caller promises.
    unsafe {
        (*ev).reached_magic = (*file).magic;
        // One string read: a byte loop that stops at the first NUL is a verifier
        // state per byte.
        let name = &(*file).name;
        let out = &mut (&mut (*ev).str_val)[..ESCAPE_FILE_NAME_BYTES];
        (*ev).str_len = match bpf_probe_read_kernel_str_bytes(name.as_ptr(), out) {
            Ok(s) => s.len() as u32 + 1,
            Err(_) => 0,
        };
    }
}

/// Writes the event's path from where it comes from.
///
/// # Safety
/// `ev` is a reserved record.
#[inline(always)]
pub(super) unsafe fn path_into(ev: *mut SyscallEvent, path: PathFrom) {
    // SAFETY: as the caller promises.
    unsafe {
        match path {
            PathFrom::None => {}
            PathFrom::Unreadable => (*ev).path_unreadable = 1,
            // One string read, which also gives the length (a search for the NUL
            // would be a verifier state per byte).
            PathFrom::Scratch => match PATH_SCRATCH.get_ptr(0) {
                Some(scratch) => {
                    match bpf_probe_read_kernel_str_bytes(scratch.cast(), &mut (*ev).path) {
                        Ok(s) => (*ev).path_len = s.len() as u32 + 1,
                        Err(_) => (*ev).path_unreadable = 1,
                    }
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

/// The rule's path argument, read when the event is written.
pub(super) const PATH_BY_RULE: u8 = 0;

/// The path the matcher read, in `PATH_SCRATCH`.
pub(super) const PATH_MATCHED: u8 = 1;

/// A connect's `sun_path` (the socket it reached was known by its identity).
pub(super) const PATH_SUN: u8 = 2;

/// The path the matcher read, in `PATH_SCRATCH`; the open was judged by the file it
/// reached, in `REACHED`.
pub(super) const PATH_REACHED: u8 = 3;

/// The path the matcher read, in `PATH_SCRATCH`; the kernel could not decide.
pub(super) const PATH_UNDECIDED: u8 = 4;

/// The path the caller passed (read when the event is written); the open reached a
/// block device, in `REACHED` (its name, and its device number as the magic).
pub(super) const PATH_BLOCK_DEVICE: u8 = 5;
