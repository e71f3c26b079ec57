//! Executable handles: opens of `/proc/<pid>/exe` are remembered (by inode, and by
//! process and descriptor) so a later reopen for writing through `/proc/*/fd/N` is known
//! for what it reaches.
//!
//! Minimum kernel: 5.17 (`bpf_loop`, for the `/proc/<pid>/fd/<fd>` parse).

use super::*;

/// Key of `EXE_HANDLES` for a descriptor by number: the process and the number.
#[inline(always)]
pub(super) fn fd_key(tgid: u64, fd: u64) -> u64 {
    (tgid << 32) | (fd & 0xffff_ffff)
}

/// Remembers an executable handle an open of some `/proc/<pid>/exe` returned (any
/// mode, `O_PATH` included): by its inode, which every later reopen of the same file
/// shows whatever path, process or descriptor it goes through, and by process and
/// number, for reopens that fail (a running executable cannot be opened for writing:
/// ETXTBSY) and for kernels whose BTF the agent could not read.
#[inline(never)]
pub(super) fn remember_exe_handle(ret: i64) {
    if ret < 0 {
        return;
    }
    if let Some(inode) = crate::creds::inode_of_fd(ret as u64) {
        let _ = EXE_HANDLES.insert(&inode, &1, 0);
    }
    let tgid = bpf_get_current_pid_tgid() >> 32;
    let _ = EXE_HANDLES.insert(&fd_key(tgid, ret as u64), &1, 0);
}

/// Parser state for `/proc/<pid|self|thread-self>/fd/<fd>` in `PATH_SCRATCH` (kept in
/// the `PROC_FD` map).
#[repr(C)]
pub struct ProcFd {
    /// 0: the process component, 1: `fd`, 2: the descriptor, 3: parsed.
    pub(super) phase: u8,
    /// The process component was `self` or `thread-self`.
    pub(super) own: u8,
    pub(super) digits: u8,
    pub(super) len: u8,
    pub(super) _pad: [u8; 4],
    /// The component's first eight bytes.
    pub(super) tag: u64,
    pub(super) num: u64,
    pub(super) pid: u64,
}

/// Whether a write-open under `/proc` (whose path is in `PATH_SCRATCH`, `ret` its
/// result) reopens a remembered executable handle: a descriptor it returned names a
/// remembered inode; a refused one names a remembered descriptor through
/// `/proc/<pid|self|thread-self>/fd/<fd>`.
#[inline(never)]
pub(super) fn reopens_exe_handle(ret: i64) -> bool {
    if ret >= 0 {
        if let Some(inode) = crate::creds::inode_of_fd(ret as u64) {
            // SAFETY: a plain read of a flag byte.
            return unsafe { EXE_HANDLES.get(&inode) }.is_some();
        }
    }
    let Some(p) = crate::maps::PROC_FD.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's value, used only by this program and its callback.
    let p = unsafe { &mut *p };
    *p = ProcFd {
        phase: 0,
        own: 0,
        digits: 1,
        len: 0,
        _pad: [0; 4],
        tag: 0,
        num: 0,
        pid: 0,
    };
    // SAFETY: the callback takes no context (its state is `PROC_FD`).
    unsafe {
        bpf_loop(
            (SYSCALL_PATH_BYTES - PROC_PREFIX) as u32,
            proc_fd_step as *mut c_void,
            core::ptr::null_mut(),
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
pub(super) const PROC_PREFIX: usize = 6;

/// Reads byte `i` after `/proc/`; stops at the end of the path or on anything that is
/// not `<pid|self|thread-self>/fd/<digits>`.
pub(super) extern "C" fn proc_fd_step(i: u64, _: *mut c_void) -> i64 {
    let (Some(p), Some(buf)) = (crate::maps::PROC_FD.get_ptr_mut(0), PATH_SCRATCH.get_ptr(0))
    else {
        return 1;
    };
    // SAFETY: this CPU's value, which `reopens_exe_handle` set up.
    let p = unsafe { &mut *p };
    // SAFETY: masked into the scratch buffer.
    let c = unsafe { (*buf)[(PROC_PREFIX + i as usize) & PATH_MASK] };
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
