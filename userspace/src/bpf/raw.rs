//! The bpf(2) commands aya 0.14 does not offer: creating a cgroup link as a plain fd and
//! pinning any fd in bpffs (for the sysctl and device programs, whose aya links cannot
//! become a pinnable `FdLink`), and writing many map entries with one call.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_CGROUP_SYSCTL` in `enum bpf_attach_type`.
pub const ATTACH_CGROUP_SYSCTL: u32 = 18;
/// `BPF_CGROUP_DEVICE` in `enum bpf_attach_type`.
pub const ATTACH_CGROUP_DEVICE: u32 = 6;

/// The `link_create` member of `union bpf_attr` (prefix).
#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u64; 8],
}

/// The `BPF_OBJ_*` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ObjPin {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _rest: [u32; 9],
}

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct Batch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Writes `keys[i]` → `values[i]` into the map `map` with `BPF_MAP_UPDATE_BATCH`: one
/// system call instead of one per entry. Returns how many entries were written, and the
/// error that stopped it (the kernel writes in order and stops at the first failure;
/// a kernel or map type without batch updates fails before writing any).
pub fn update_batch<K: Copy, V: Copy>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
) -> (usize, io::Result<()>) {
    assert_eq!(keys.len(), values.len(), "one value per key");
    let mut written = 0;
    // In slices of at most u32::MAX entries, as `count` is 32 bits.
    for (k, v) in keys.chunks(1 << 20).zip(values.chunks(1 << 20)) {
        let mut attr = Batch {
            keys: k.as_ptr() as u64,
            values: v.as_ptr() as u64,
            count: k.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        let result = bpf(BPF_MAP_UPDATE_BATCH, &mut attr);
        // On failure, `count` says how many were written before it.
        written += attr.count as usize;
        if let Err(e) = result {
            return (written, Err(e));
        }
    }
    (written, Ok(()))
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded bpf_attr member of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Attaches a program to a cgroup through a new bpf_link; the link is the fd returned.
pub fn link_create(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Pins `fd` at `path` in bpffs.
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let mut attr = ObjPin {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        ..Default::default()
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}
