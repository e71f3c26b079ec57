//! A device filter attached the way a container runtime attaches its own (runc on
//! cgroup v2): a `BPF_PROG_TYPE_CGROUP_DEVICE` program put on the container's cgroup
//! with `BPF_PROG_ATTACH` and `BPF_F_ALLOW_MULTI`, not through a link. The program
//! allows or refuses every access.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Loads a device program returning `verdict` (1 allow, 0 refuse) and attaches it to
/// the cgroup directory `cgroup` as a runtime would. It stays until the cgroup is
/// removed.
pub fn attach(cgroup: &Path, verdict: i32) -> io::Result<()> {
    // r0 = verdict; exit
    let insns: [u64; 2] = [0xb7 | (u64::from(verdict as u32) << 32), 0x95];
    let license = b"GPL\0";
    let mut load = [0u8; 128];
    load[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    load[4..8].copy_from_slice(&2u32.to_ne_bytes());
    load[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    load[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    load[68..72].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    let prog = bpf(BPF_PROG_LOAD, &mut load)?;
    // SAFETY: the kernel returned a new fd nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let dir = File::open(cgroup)?;
    let mut attach = [0u8; 128];
    attach[0..4].copy_from_slice(&(dir.as_raw_fd() as u32).to_ne_bytes());
    attach[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attach[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attach[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &mut attach).map(drop)
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zeroed bpf_attr of the size passed.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
