//! Discovery of cgroups and containers as they appear: inotify watches on every
//! directory of the cgroup v2 tree (IN_CREATE / IN_DELETE of sub-directories) and on
//! the OCI runtime's state directories (a container's directory and its state.json).
//! Any change makes the agent apply its selectors at once instead of at its next
//! periodic walk, which stays as a backstop (and takes over when the kernel's queue
//! overflows).

use std::{
    collections::HashMap,
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

/// Watches on the cgroup tree and the runtime state directories.
pub struct Watcher {
    fd: OwnedFd,
    /// Watch descriptor → directory and whether it is part of the cgroup tree.
    watches: HashMap<i32, (PathBuf, Kind)>,
    /// What was asked for, to watch again after the kernel's queue overflowed.
    cgroup2: PathBuf,
    state_roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cgroup,
    /// A runtime state directory (runc's `--root`).
    StateRoot,
    /// One container's directory in it.
    StateEntry,
}

const CGROUP_MASK: u32 = libc::IN_CREATE | libc::IN_DELETE | libc::IN_ONLYDIR;
const STATE_ROOT_MASK: u32 = libc::IN_CREATE | libc::IN_DELETE | libc::IN_ONLYDIR;
const STATE_ENTRY_MASK: u32 =
    libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_ONLYDIR;

impl Watcher {
    /// Watches every directory below `cgroup2` and each state directory in `state_roots`
    /// that exists.
    pub fn new(cgroup2: &Path, state_roots: &[PathBuf]) -> io::Result<Self> {
        // SAFETY: inotify_init1 with valid flags; the fd is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut w = Self {
            fd,
            watches: HashMap::new(),
            cgroup2: cgroup2.to_path_buf(),
            state_roots: state_roots.to_vec(),
        };
        w.add_all()?;
        Ok(w)
    }

    /// Watches everything asked for (again: a directory already watched keeps its
    /// watch descriptor).
    fn add_all(&mut self) -> io::Result<()> {
        let cgroup2 = self.cgroup2.clone();
        self.add_tree(&cgroup2)?;
        for root in self.state_roots.clone() {
            self.add_state_root(&root)?;
        }
        Ok(())
    }

    /// Watches a runtime state directory and its container directories, if it exists.
    fn add_state_root(&mut self, root: &Path) -> io::Result<()> {
        if root.is_dir() {
            self.add(root, Kind::StateRoot)?;
            for entry in std::fs::read_dir(root)?.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = self.add(&entry.path(), Kind::StateEntry);
                }
            }
        }
        Ok(())
    }

    /// Starts watching the state directories that did not exist before (a runtime makes
    /// its root with its first container, or made it again); the agent calls this with
    /// each backstop walk.
    pub fn watch_new_state_roots(&mut self, roots: &[PathBuf]) -> io::Result<()> {
        self.state_roots = roots.to_vec();
        for root in self.state_roots.clone() {
            let watched = self
                .watches
                .values()
                .any(|(dir, kind)| *kind == Kind::StateRoot && *dir == root);
            if !watched {
                self.add_state_root(&root)?;
            }
        }
        Ok(())
    }

    /// How many directories are watched.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    fn add(&mut self, dir: &Path, kind: Kind) -> io::Result<()> {
        let mask = match kind {
            Kind::Cgroup => CGROUP_MASK,
            Kind::StateRoot => STATE_ROOT_MASK,
            Kind::StateEntry => STATE_ENTRY_MASK,
        };
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        self.watches.insert(wd, (dir.to_path_buf(), kind));
        Ok(())
    }

    /// Watches `dir` and every directory below it (a new cgroup may already have
    /// children by the time its event is read). Directories that vanish meanwhile are
    /// skipped.
    fn add_tree(&mut self, dir: &Path) -> io::Result<()> {
        let mut stack = vec![dir.to_path_buf()];
        let mut first = true;
        while let Some(d) = stack.pop() {
            match self.add(&d, Kind::Cgroup) {
                Ok(()) => {}
                Err(e) if first => return Err(e),
                // Gone meanwhile: nothing to watch.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    // Out of watches (fs.inotify.max_user_watches) or similar: below
                    // this cgroup only the periodic walk finds new cgroups.
                    log::warn!(
                        "cannot watch cgroup {}: {e}; new cgroups below it are found by the periodic walk",
                        d.display()
                    );
                    continue;
                }
            }
            first = false;
            if let Ok(entries) = std::fs::read_dir(&d) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(entry.path());
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the pending events, adds watches for new directories and says whether
    /// anything changed (`true` also when the kernel's queue overflowed: events were
    /// lost, so the caller must look at everything).
    pub fn read(&mut self) -> io::Result<bool> {
        let mut changed = false;
        let mut overflowed = false;
        let mut buf = [0u8; 16 * 1024];
        loop {
            // SAFETY: reading into a buffer we own, of the length given.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                return Err(e);
            }
            if n == 0 {
                break;
            }
            let mut at = 0usize;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote a whole event here; read unaligned.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at).cast()) };
                let name_bytes = &buf[at + header..at + header + ev.len as usize];
                let end = name_bytes
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(name_bytes.len());
                let name = std::ffi::OsStr::from_bytes(&name_bytes[..end]).to_owned();
                at += header + ev.len as usize;
                changed = true;
                if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                    // Directories created meanwhile have no watch yet.
                    overflowed = true;
                    continue;
                }
                if ev.mask & libc::IN_IGNORED != 0 {
                    self.watches.remove(&ev.wd);
                    continue;
                }
                let Some((dir, kind)) = self.watches.get(&ev.wd).cloned() else {
                    continue;
                };
                let created = ev.mask & libc::IN_CREATE != 0 && ev.mask & libc::IN_ISDIR != 0;
                if created {
                    let path = dir.join(&name);
                    match kind {
                        Kind::Cgroup => {
                            let _ = self.add_tree(&path);
                        }
                        Kind::StateRoot => {
                            let _ = self.add(&path, Kind::StateEntry);
                        }
                        Kind::StateEntry => {}
                    }
                }
            }
        }
        if overflowed {
            log::warn!("inotify queue overflowed: watching the cgroup tree again");
            self.add_all()?;
        }
        Ok(changed)
    }
}

impl std::os::fd::AsFd for Watcher {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_directory_made_after_the_start_is_watched_from_the_next_walk() {
        let tree = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = state.path().join("runc");
        let mut w = Watcher::new(tree.path(), std::slice::from_ref(&root)).unwrap();
        let before = w.len();
        std::fs::create_dir_all(root.join("ctr1")).unwrap();
        w.watch_new_state_roots(std::slice::from_ref(&root))
            .unwrap();
        assert_eq!(w.len(), before + 2, "the root and its container directory");
        w.watch_new_state_roots(std::slice::from_ref(&root))
            .unwrap();
        assert_eq!(w.len(), before + 2, "watched once");
    }

    #[test]
    fn sees_new_directories_at_any_depth_and_watches_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("runc");
        std::fs::create_dir_all(dir.path().join("cg/a")).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let mut w = Watcher::new(&dir.path().join("cg"), std::slice::from_ref(&state)).unwrap();
        assert_eq!(w.len(), 3);
        assert!(!w.read().unwrap());
        std::fs::create_dir(dir.path().join("cg/a/b")).unwrap();
        assert!(w.read().unwrap());
        assert_eq!(w.len(), 4);
        std::fs::create_dir(dir.path().join("cg/a/b/c")).unwrap();
        assert!(w.read().unwrap());
        std::fs::create_dir(state.join("ctr")).unwrap();
        assert!(w.read().unwrap());
        std::fs::write(state.join("ctr/state.json"), "{}").unwrap();
        assert!(w.read().unwrap());
        std::fs::remove_dir(dir.path().join("cg/a/b/c")).unwrap();
        assert!(w.read().unwrap());
        assert_eq!(w.len(), 5, "the removed directory's watch is gone");
        assert!(!w.read().unwrap());
    }
}
