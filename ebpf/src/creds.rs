//! Effective credentials after an exec: the effective uid, the effective capabilities
//! and the no-new-privileges flag of an armed process, read from its `task_struct` at
//! offsets the agent found in the kernel's BTF, and judged against the profile's
//! `CredRule`. The credentials a process had before (recorded at fork and at each exec)
//! tell an exec that gained privileges, such as a set-uid program.
//!
//! Minimum kernel: 5.8, as its record goes to the ring buffer (through `event`); its
//! own reads need 5.5 (`bpf_probe_read_kernel`, `bpf_probe_read_kernel_str`).

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
    generated::bpf_get_current_task,
};
use cgwarden_common::{
    CredOffsets, CredState, CredsEvent, EXE_BYTES, PFA_NO_NEW_PRIVS, cred_deviation, cred_rule,
    kind,
};

use crate::{
    event,
    maps::{CRED_OFFSETS, CRED_RULES, CREDS},
    profile::Match,
};

/// The current task's effective credentials and no-new-privileges flag.
#[inline(always)]
fn current(o: &CredOffsets) -> Option<(CredState, bool)> {
    // SAFETY: a plain helper call; the pointers below are only read through
    // `bpf_probe_read_kernel`, which fails safely on a bad address.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let cred: *const u8 =
            bpf_probe_read_kernel(task.add(o.task_cred as usize).cast::<*const u8>()).ok()?;
        let euid: u32 = bpf_probe_read_kernel(cred.add(o.cred_euid as usize).cast()).ok()?;
        let egid: u32 = bpf_probe_read_kernel(cred.add(o.cred_egid as usize).cast()).ok()?;
        let caps: u64 =
            bpf_probe_read_kernel(cred.add(o.cred_cap_effective as usize).cast()).ok()?;
        let flags: u64 =
            bpf_probe_read_kernel(task.add(o.task_atomic_flags as usize).cast()).ok()?;
        Some((
            CredState {
                euid,
                egid,
                cap_effective: caps,
            },
            flags & PFA_NO_NEW_PRIVS != 0,
        ))
    }
}

/// The `struct file` behind descriptor `fd` of the current task (its kernel address),
/// when the agent found the offsets in the kernel's BTF.
#[inline(always)]
fn file_of_fd(o: &CredOffsets, fd: u64) -> Option<*const u8> {
    // SAFETY: as in `current`: every pointer is only read through
    // `bpf_probe_read_kernel`, which fails safely on a bad address.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let files: *const u8 =
            bpf_probe_read_kernel(task.add(o.task_files as usize).cast::<*const u8>()).ok()?;
        let fdt: *const u8 =
            bpf_probe_read_kernel(files.add(o.files_fdt as usize).cast::<*const u8>()).ok()?;
        let fds: *const *const u8 =
            bpf_probe_read_kernel(fdt.add(o.fdtable_fd as usize).cast::<*const *const u8>())
                .ok()?;
        let file: *const u8 = bpf_probe_read_kernel(fds.add((fd & 0xffff) as usize)).ok()?;
        (!file.is_null()).then_some(file)
    }
}

/// The inode (its kernel address) behind descriptor `fd` of the current task, when the
/// agent found the offsets in the kernel's BTF.
#[inline(always)]
pub fn inode_of_fd(fd: u64) -> Option<u64> {
    let o = offsets()?;
    let file = file_of_fd(o, fd)?;
    // SAFETY: read through `bpf_probe_read_kernel`.
    let inode: u64 =
        unsafe { bpf_probe_read_kernel(file.add(o.file_inode as usize).cast::<u64>()) }.ok()?;
    (inode != 0).then_some(inode)
}

/// The `struct sock` behind descriptor `fd` of the current task, when it is a socket.
#[inline(always)]
fn sock_of_fd(o: &CredOffsets, fd: u64) -> Option<*const u8> {
    const S_IFMT: u16 = 0o170000;
    const S_IFSOCK: u16 = 0o140000;
    let file = file_of_fd(o, fd)?;
    // SAFETY: every pointer is only read through `bpf_probe_read_kernel`.
    unsafe {
        let inode: *const u8 =
            bpf_probe_read_kernel(file.add(o.file_inode as usize).cast::<*const u8>()).ok()?;
        let mode: u16 =
            bpf_probe_read_kernel(inode.add(o.inode_mode as usize).cast::<u16>()).ok()?;
        if mode & S_IFMT != S_IFSOCK {
            return None;
        }
        let socket: *const u8 =
            bpf_probe_read_kernel(file.add(o.file_private_data as usize).cast::<*const u8>())
                .ok()?;
        bpf_probe_read_kernel(socket.add(o.socket_sk as usize).cast::<*const u8>()).ok()
    }
}

/// The address a socket descriptor of the current task is bound to: (family, local
/// port, address as v4-mapped or plain IPv6). `None` when the socket offsets are
/// unknown, the descriptor is not a socket, or a read failed.
#[inline(always)]
pub fn bound_address_of_fd(fd: u64) -> Option<(u16, u16, [u8; 16])> {
    const AF_INET: u16 = 2;
    let o = offsets().filter(|o| o.sock_valid != 0)?;
    let sk = sock_of_fd(o, fd)?;
    // SAFETY: every pointer is only read through `bpf_probe_read_kernel`.
    unsafe {
        let family: u16 = bpf_probe_read_kernel(sk.add(o.sk_family as usize).cast::<u16>()).ok()?;
        let port: u16 = bpf_probe_read_kernel(sk.add(o.sk_num as usize).cast::<u16>()).ok()?;
        let addr = if family == AF_INET {
            let v4: [u8; 4] =
                bpf_probe_read_kernel(sk.add(o.sk_rcv_saddr as usize).cast::<[u8; 4]>()).ok()?;
            [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
            ]
        } else {
            bpf_probe_read_kernel(sk.add(o.sk_v6_rcv_saddr as usize).cast::<[u8; 16]>()).ok()?
        };
        Some((family, port, addr))
    }
}

/// The socket file a connected unix socket (descriptor `fd` of the current task)
/// reaches: the inode and device of the file its peer was bound to, whatever name or
/// mount path the caller used. `None` when it is not a unix socket with a bound peer,
/// or the offsets are unknown.
#[inline(always)]
pub fn unix_peer_file(fd: u64) -> Option<cgwarden_common::SocketFile> {
    let o = offsets().filter(|o| o.sock_valid != 0 && o.unix_valid != 0)?;
    let sk = sock_of_fd(o, fd)?;
    // SAFETY: every pointer is only read through `bpf_probe_read_kernel`.
    unsafe {
        let family: u16 = bpf_probe_read_kernel(sk.add(o.sk_family as usize).cast::<u16>()).ok()?;
        if family != 1 {
            return None;
        }
        let peer: *const u8 =
            bpf_probe_read_kernel(sk.add(o.unix_peer as usize).cast::<*const u8>()).ok()?;
        if peer.is_null() {
            return None;
        }
        let dentry: *const u8 =
            bpf_probe_read_kernel(peer.add(o.unix_path_dentry as usize).cast::<*const u8>())
                .ok()?;
        if dentry.is_null() {
            return None;
        }
        let file_inode: *const u8 =
            bpf_probe_read_kernel(dentry.add(o.dentry_inode as usize).cast::<*const u8>()).ok()?;
        let ino: u64 =
            bpf_probe_read_kernel(file_inode.add(o.inode_ino as usize).cast::<u64>()).ok()?;
        let sb: *const u8 =
            bpf_probe_read_kernel(file_inode.add(o.inode_sb as usize).cast::<*const u8>()).ok()?;
        let dev: u32 = bpf_probe_read_kernel(sb.add(o.sb_dev as usize).cast::<u32>()).ok()?;
        Some(cgwarden_common::SocketFile { ino, dev, _pad: 0 })
    }
}

/// Writes into `key` what file descriptor `fd` of the current task reached: its file
/// system's magic number and its dentry's name (what an open really opened, through
/// symlinks, `..`, a relative or long path, or a reopen through `/proc/self/fd`).
/// False when it cannot be read (the key is then not to be used).
#[inline(always)]
pub fn reached_file(fd: u64, key: &mut cgwarden_common::EscapeFileKey) -> bool {
    let Some(o) = offsets().filter(|o| o.name_valid != 0) else {
        return false;
    };
    let Some(file) = file_of_fd(o, fd) else {
        return false;
    };
    // SAFETY: every pointer is only read through `bpf_probe_read_kernel`.
    unsafe {
        let Ok(dentry) =
            bpf_probe_read_kernel(file.add(o.file_dentry as usize).cast::<*const u8>())
        else {
            return false;
        };
        let Ok(sb) = bpf_probe_read_kernel(dentry.add(o.dentry_sb as usize).cast::<*const u8>())
        else {
            return false;
        };
        let Ok(magic) = bpf_probe_read_kernel(sb.add(o.sb_magic as usize).cast::<u64>()) else {
            return false;
        };
        let Ok(name) =
            bpf_probe_read_kernel(dentry.add(o.dentry_name as usize).cast::<*const u8>())
        else {
            return false;
        };
        key.magic = magic;
        key.name = [0; cgwarden_common::ESCAPE_FILE_NAME_BYTES];
        aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(name, &mut key.name).is_ok()
    }
}

/// The device number (major << 20 | minor) of the block device behind descriptor `fd`
/// of the current task, if it is one.
#[inline(always)]
pub fn block_device_of_fd(fd: u64) -> Option<u32> {
    const S_IFMT: u16 = 0o170000;
    const S_IFBLK: u16 = 0o060000;
    let o = offsets().filter(|o| o.block_valid != 0)?;
    let file = file_of_fd(o, fd)?;
    // SAFETY: probe reads of kernel memory.
    unsafe {
        let inode: *const u8 =
            bpf_probe_read_kernel(file.add(o.file_inode as usize).cast::<*const u8>()).ok()?;
        let mode = bpf_probe_read_kernel(inode.add(o.inode_mode as usize).cast::<u16>()).ok()?;
        if mode & S_IFMT != S_IFBLK {
            return None;
        }
        bpf_probe_read_kernel(inode.add(o.inode_rdev as usize).cast::<u32>()).ok()
    }
}

/// The inode number of the file behind descriptor `fd` of the current task (a
/// namespace's id for an nsfs file).
#[inline(always)]
pub fn inode_number_of_fd(fd: u64) -> Option<u64> {
    let o = offsets().filter(|o| o.unix_valid != 0)?;
    let file = file_of_fd(o, fd)?;
    // SAFETY: probe reads of kernel memory.
    unsafe {
        let inode: *const u8 =
            bpf_probe_read_kernel(file.add(o.file_inode as usize).cast::<*const u8>()).ok()?;
        bpf_probe_read_kernel(inode.add(o.inode_ino as usize).cast::<u64>()).ok()
    }
}

/// The dirty-pipe pattern (CVE-2022-0847 and its kin): `splice` from `fd_in`, a regular
/// file the caller opened read-only that is set-uid/set-gid or belongs to another user
/// (a file it must not change), into `fd_out`, a pipe.
#[inline(always)]
pub fn dirty_pipe_source(fd_in: u64, fd_out: u64) -> bool {
    const S_IFMT: u16 = 0o170000;
    const S_IFREG: u16 = 0o100000;
    const S_IFIFO: u16 = 0o010000;
    const S_ISUID_GID: u16 = 0o6000;
    const FMODE_WRITE: u32 = 0x2;
    let Some(o) = offsets().filter(|o| o.sock_valid != 0 && o.pipe_valid != 0) else {
        return false;
    };
    let mode_of = |file: *const u8| -> Option<(u16, u32)> {
        // SAFETY: probe reads of kernel memory.
        unsafe {
            let inode: *const u8 =
                bpf_probe_read_kernel(file.add(o.file_inode as usize).cast::<*const u8>()).ok()?;
            let mode: u16 =
                bpf_probe_read_kernel(inode.add(o.inode_mode as usize).cast::<u16>()).ok()?;
            let uid: u32 =
                bpf_probe_read_kernel(inode.add(o.inode_uid as usize).cast::<u32>()).ok()?;
            Some((mode, uid))
        }
    };
    let (Some(src), Some(dst)) = (file_of_fd(o, fd_in), file_of_fd(o, fd_out)) else {
        return false;
    };
    let (Some((src_mode, owner)), Some((dst_mode, _))) = (mode_of(src), mode_of(dst)) else {
        return false;
    };
    if src_mode & S_IFMT != S_IFREG || dst_mode & S_IFMT != S_IFIFO {
        return false;
    }
    // SAFETY: a probe read of the file's mode bits.
    let f_mode: u32 = unsafe { bpf_probe_read_kernel(src.add(o.file_mode as usize).cast::<u32>()) }
        .unwrap_or(FMODE_WRITE);
    if f_mode & FMODE_WRITE != 0 {
        return false;
    }
    let euid = current(o).map_or(u32::MAX, |(c, _)| c.euid);
    src_mode & S_ISUID_GID != 0 || owner != euid
}

#[inline(always)]
fn offsets() -> Option<&'static CredOffsets> {
    CRED_OFFSETS.get(0).filter(|o| o.valid != 0)
}

/// The offsets the raw process-table programs read (`proc_valid`).
#[inline(always)]
pub fn proc_offsets() -> Option<&'static CredOffsets> {
    offsets().filter(|o| o.proc_valid != 0)
}

/// An armed process of `m`'s cgroup executed `exe`: report credentials beyond its
/// profile's rule, and remember them for its next exec.
#[inline(always)]
pub fn exec(m: &Match, exe: &[u8; EXE_BYTES]) {
    // SAFETY: values are written whole by the agent and only read here.
    let Some(rule) = (unsafe { CRED_RULES.get(&m.profile.id) }) else {
        return;
    };
    let Some(o) = offsets() else {
        return;
    };
    let Some((now, nnp)) = current(o) else {
        return;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: values are written whole and copied out at once.
    let before = unsafe { CREDS.get(&tgid) }.copied();
    let _ = CREDS.insert(&tgid, &now, 0);
    let mut what = 0;
    let uid_gid = bpf_get_current_uid_gid();
    let (uid, gid) = (uid_gid as u32, (uid_gid >> 32) as u32);
    if rule.flags & cred_rule::EUID != 0 {
        if uid == rule.expected_euid && now.euid != rule.expected_euid {
            what |= cred_deviation::EUID;
        }
    }
    if rule.flags & cred_rule::CAPS != 0 && now.cap_effective & !rule.allowed_caps != 0 {
        what |= cred_deviation::CAPS;
    }
    if rule.flags & cred_rule::NO_NEW_PRIVS != 0 {
        if !nnp {
            what |= cred_deviation::NO_NEW_PRIVS;
        }
        // What no-new-privileges stops: an exec that switches the effective ids to the
        // file's owner (set-uid/set-gid: they then differ from the real ones) or adds
        // file capabilities. A process that dropped to another user itself (gosu,
        // su-exec) has equal real and effective ids and is not a gain.
        if let Some(b) = before
            && ((now.euid != b.euid && now.euid != uid)
                || (now.egid != b.egid && now.egid != gid)
                || now.cap_effective & !b.cap_effective != 0)
        {
            what |= cred_deviation::GAINED;
        }
    }
    if what == 0 {
        return;
    }
    let cgroup_id = m.cgroup_of_task();
    // Written field by field in place: the whole record does not fit the BPF stack.
    event::emit::<CredsEvent>(false, |e| {
        // SAFETY: `e` points to the reserved record; every field is written here.
        unsafe {
            event::write_header(&raw mut (*e).header, kind::CREDS, m.profile.id, cgroup_id);
            (*e).what = what;
            (*e).euid = now.euid;
            (*e).egid = now.egid;
            (*e).no_new_privs = u32::from(nnp);
            (*e).cap_effective = now.cap_effective;
            (*e).rule = *rule;
            (*e).before = before.unwrap_or_default();
            (*e).before_known = u32::from(before.is_some());
            (*e)._pad = 0;
            core::ptr::copy_nonoverlapping(exe.as_ptr(), (*e).exe.as_mut_ptr(), EXE_BYTES);
        }
    });
}

/// A process forked `child`: it starts with the current task's credentials when the
/// current task's profile has a credential rule (no reads otherwise). Otherwise a
/// reused pid must not keep a dead process's.
#[inline(always)]
pub fn fork(child: u32, m: Option<&Match>) {
    // SAFETY: values are written whole by the agent and only read here.
    let rule = m.and_then(|m| unsafe { CRED_RULES.get(&m.profile.id) });
    match rule.and_then(|_| offsets()).and_then(current) {
        Some((now, _)) => {
            let _ = CREDS.insert(&child, &now, 0);
        }
        // Not judged: a reused pid must not keep what a dead process had.
        // SAFETY: only the presence is checked.
        None => {
            if unsafe { CREDS.get(&child) }.is_some() {
                let _ = CREDS.remove(&child);
            }
        }
    }
}
