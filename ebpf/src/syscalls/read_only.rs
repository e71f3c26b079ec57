//! Writes under a profile's read-only paths, judged at exit (a deviation report, never
//! a kill): by the written path, or by the kernel's EROFS.
//!
//! Minimum kernel: 5.17 (`bpf_loop`, in the path checks); its record goes to the ring
//! buffer (5.8).

use super::*;

/// Where a written path lies, for the profile's read-only paths.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Under a writable path, or under no read-only one.
    Fine,
    /// Under a read-only path (or the kernel refused the write with EROFS).
    ReadOnly,
    /// Relative, or with `.`, `..` or `//` components: for the agent to resolve.
    Unresolved,
    /// The path could not be read: never treated as harmless.
    Unreadable,
}

pub(super) const EROFS: i64 = 30;

/// A write call under a profile with read-only paths (an open only with write flags,
/// [`may_write`]): reported when a path it writes lies under a read-only path, when the kernel refused
/// it as a write to a read-only file system (a symlink cannot hide that), or when its
/// place is not known here.
#[inline(always)]
pub(super) fn read_only(
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
pub(super) struct WriteCall<'a> {
    pub(super) m: &'a profile::Match,
    pub(super) nr: u32,
    pub(super) args: &'a [u64; 6],
    pub(super) ret: i64,
    pub(super) proc_info: *const ProcInfo,
}

/// Judges one path argument of a write and reports it when it deviates or only the
/// agent can place it. Returns whether the call is settled (a deviation reported): a
/// path only the agent can place (relative) may turn out writable, so the call's other
/// path (rename's target) is judged as well. Not inlined: the verifier then checks one
/// copy, however many paths a call has.
#[inline(never)]
pub(super) fn judge_write_path(call: &WriteCall, arg: u8) -> bool {
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
/// `open_how` counts as a write), every other write call always. Not inlined: the
/// verifier then walks the read-only matcher after it with one state per answer, not
/// one per way through it.
#[inline(never)]
pub(super) fn may_write(rule: &SyscallRule, args: &[u64; 6]) -> bool {
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
pub(super) fn place_of(set: u32, ptr: u64) -> Place {
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
