//! What a path a contained process wrote reaches, decided by the agent where the kernel
//! could not: a write-open that failed (so it reached no file the kernel could look
//! at) and whose path as written names no escape file. The path is resolved as the
//! kernel would walk it for that process: from its own root and working directory,
//! following symlinks and `..` inside that root (`openat2` with `RESOLVE_IN_ROOT`),
//! then the file found is known by its file system and name, as the kernel knows an
//! escape file it reached (`syscalls::ESCAPE_FILES`).

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

/// What a written path reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A file: its file system's magic number, its name, and its path inside the
    /// process's root.
    File {
        magic: u64,
        name: String,
        path: String,
    },
    /// Nothing: no file by that path (the open could not have reached one).
    Nothing,
    /// It cannot be known, and why: never taken as harmless.
    Unknown(String),
}

/// Resolves `written` as process `pid` would (relative to the directory `dirfd` names
/// in it, or to its working directory), using `proc` (`/proc`). When `pid` is gone, an
/// absolute path is resolved in the root of one of `others()` (the processes left in
/// its cgroup: the same container, the same root), asked only then.
pub fn reach(
    proc: &Path,
    pid: u32,
    others: impl FnOnce() -> Vec<u32>,
    written: &str,
    dirfd: Option<i32>,
) -> Reach {
    let dir = proc.join(pid.to_string());
    let (dir, root) = match open_path(&dir.join("root")) {
        Ok(fd) => (dir, fd),
        Err(e) if !written.starts_with('/') => {
            return Reach::Unknown(format!(
                "the process is gone (its root: {e}) and the path is relative to it"
            ));
        }
        Err(e) => match others().iter().filter(|p| **p != pid).find_map(|p| {
            open_path(&proc.join(p.to_string()).join("root"))
                .ok()
                .map(|fd| (*p, fd))
        }) {
            Some((other, fd)) => (proc.join(other.to_string()), fd),
            None => {
                return Reach::Unknown(format!(
                    "the process is gone (its root: {e}) and no other process of its cgroup is left"
                ));
            }
        },
    };
    let absolute = if written.starts_with('/') {
        written.to_owned()
    } else {
        let base = match dirfd {
            Some(fd) if fd >= 0 => format!("fd/{fd}"),
            _ => "cwd".to_owned(),
        };
        match inside_root(&dir, &base) {
            Some(inside) => format!("{inside}/{written}"),
            None => {
                return Reach::Unknown(format!(
                    "the directory the path is relative to ({base}) cannot be placed in its root"
                ));
            }
        }
    };
    let file = match open_in_root(&root, &absolute) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Reach::Nothing,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Reach::Unknown(format!(
                "it leads through a /proc magic link or too many symlinks: {e}"
            ));
        }
        Err(e) => return Reach::Unknown(format!("it cannot be resolved: {e}")),
    };
    // SAFETY: fstatfs writes a statfs into the zeroed buffer it is given.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `file` is an open descriptor and `st` a valid buffer.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return Reach::Unknown(format!(
            "its file system cannot be read: {}",
            std::io::Error::last_os_error()
        ));
    }
    let shown = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| absolute.clone());
    let name = shown.rsplit('/').next().unwrap_or_default().to_owned();
    Reach::File {
        magic: st.f_type as u64,
        name,
        path: shown,
    }
}

/// Where `/proc/<pid>/<link>` (its cwd, or a descriptor) lies inside its root.
fn inside_root(dir: &Path, link: &str) -> Option<String> {
    let target = std::fs::read_link(dir.join(link)).ok()?;
    let root = std::fs::read_link(dir.join("root")).ok()?;
    let (target, root) = (target.to_string_lossy(), root.to_string_lossy());
    if root == "/" {
        return Some(target.into_owned());
    }
    let rest = target.strip_prefix(root.as_ref())?;
    (rest.is_empty() || rest.starts_with('/')).then(|| rest.to_owned())
}

fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: a plain open of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` (absolute inside the root) with `O_PATH`, walking it as if `root` were
/// `/`: symlinks and `..` never leave it, and /proc magic links are refused (they
/// would name the agent's own descriptors, not the process's).
fn open_in_root(root: &OwnedFd, path: &str) -> std::io::Result<OwnedFd> {
    let c = CString::new(path)?;
    // SAFETY: `open_how` is plain integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 with a valid descriptor, a NUL-terminated path and its `how`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_followed_inside_the_processes_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let pid = std::process::id();
        let written = format!("{}/link", dir.path().display());
        match reach(Path::new("/proc"), pid, Vec::new, &written, None) {
            Reach::File { name, path, .. } => {
                assert_eq!(name, "real");
                assert!(path.ends_with("/real"), "{path}");
            }
            other => panic!("{other:?}"),
        }
        let missing = format!("{}/none", dir.path().display());
        assert_eq!(
            reach(Path::new("/proc"), pid, Vec::new, &missing, None),
            Reach::Nothing
        );
        // The process's own procfs magic links are not followed for it.
        assert!(matches!(
            reach(Path::new("/proc"), pid, Vec::new, "/proc/self/fd/0", None),
            Reach::Unknown(_)
        ));
        assert!(matches!(
            reach(Path::new("/proc"), u32::MAX, Vec::new, "/x", None),
            Reach::Unknown(_)
        ));
        // A process that is gone: its cgroup's others resolve an absolute path only.
        assert_eq!(
            reach(Path::new("/proc"), u32::MAX, || vec![pid], &missing, None),
            Reach::Nothing
        );
        assert!(matches!(
            reach(Path::new("/proc"), u32::MAX, || vec![pid], "link", None),
            Reach::Unknown(_)
        ));
    }
}
