//! Host preparation and feature checks: privileges, BTF, cgroup v2, bpffs and tracefs.
//! Problems are reported as one sentence each, naming what is missing.
//!
//! The host's other views: [`procfs`] (processes), [`cgroups`] (the cgroup v2 tree),
//! [`running`] (credentials of processes already running), [`notify`] (systemd).

pub mod cgroups;
pub mod notify;
pub mod procfs;
pub mod running;

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

/// Where the agent pins and what it needs mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Hands the heap's free pages back to the kernel. Start-up and reloads (reading BTF,
/// parsing and compiling profiles) peak far above what a running agent keeps, and the
/// allocator keeps freed small blocks mapped: without this, that peak stays resident.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns whole free pages of glibc's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What the host offers, as found at start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostInfo {
    pub cgroup2: PathBuf,
    pub bpffs: PathBuf,
    pub tracefs: PathBuf,
    pub btf: bool,
    pub kernel: String,
}

/// Checks privileges, finds the cgroup2 mount and mounts bpffs and tracefs if needed.
/// What is missing is a [`crate::Error::Host`].
pub fn prepare() -> Result<HostInfo, crate::Error> {
    check_host().map_err(|e| crate::Error::Host(format!("{e:#}")))
}

fn check_host() -> anyhow::Result<HostInfo> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "cgwarden needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) to load eBPF programs; run it with sudo"
        );
    }
    let cgroup2 = crate::host::cgroups::find_cgroup2_mount(Path::new("/proc/self/mountinfo"))
        .map_err(|e| anyhow::anyhow!("cgroup v2 is required: {e}"))?;
    let btf = Path::new(BTF_VMLINUX).exists();
    if !btf {
        log::warn!("{BTF_VMLINUX} is missing: the kernel has no BTF; some hooks may not load");
    }
    ensure_mounted(Path::new(BPFFS), "bpf", "bpffs")?;
    // Only syscall tracepoints need tracefs; a sandboxed service that may not mount it
    // still enforces egress.
    if let Err(e) = ensure_mounted(Path::new(TRACEFS), "tracefs", "tracefs") {
        log::warn!("{e:#}");
    }
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Ok(HostInfo {
        cgroup2,
        bpffs: PathBuf::from(BPFFS),
        tracefs: PathBuf::from(TRACEFS),
        btf,
        kernel,
    })
}

/// Mounts a filesystem of type `fstype` at `target` unless one is already there.
fn ensure_mounted(target: &Path, fstype: &str, what: &str) -> anyhow::Result<()> {
    if is_mounted(Path::new("/proc/self/mountinfo"), target, fstype)? {
        return Ok(());
    }
    fs::create_dir_all(target)
        .map_err(|e| anyhow::anyhow!("cannot create {} for {what}: {e}", target.display()))?;
    let c = |s: &str| CString::new(s).map_err(|e| anyhow::anyhow!("{e}"));
    let (src, tgt, ty) = (c(fstype)?, c(&target.to_string_lossy())?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        anyhow::bail!(
            "{what} is not mounted at {} and mounting it failed: {}",
            target.display(),
            io::Error::last_os_error()
        );
    }
    log::info!("mounted {what} at {}", target.display());
    Ok(())
}

fn is_mounted(mountinfo: &Path, target: &Path, fstype: &str) -> io::Result<bool> {
    let text = fs::read_to_string(mountinfo)?;
    let target = target.to_string_lossy();
    Ok(text.lines().any(|line| {
        let Some((left, right)) = line.split_once(" - ") else {
            return false;
        };
        left.split_whitespace().nth(4) == Some(&target)
            && right.split_whitespace().next() == Some(fstype)
    }))
}
