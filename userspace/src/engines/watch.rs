//! Discovery of cgroups and containers as they appear: inotify watches on every
//! directory of the cgroup v2 tree (IN_CREATE / IN_DELETE of sub-directories) and on
//! the OCI runtime's state directories (a container's directory and its state.json).
//! Any change makes the agent apply its selectors at once instead of at its next
//! periodic walk, which stays as a backstop (and takes over when the kernel's queue
//! overflows). The system calls and the parsing of the kernel's `inotify_event`
//! records are the `inotify` crate's, so this module has no `unsafe` of its own.

use std::{
    collections::HashMap,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    path::{Path, PathBuf},
};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// Watches on the cgroup tree and the runtime state directories.
pub struct Watcher {
    /// Non-blocking and close-on-exec; the agent's loop polls its fd.
    inotify: Inotify,
    /// Watch descriptor → directory and whether it is part of the cgroup tree.
    watches: HashMap<WatchDescriptor, (PathBuf, Kind)>,
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

const CGROUP_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::ONLYDIR);
const STATE_ROOT_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::ONLYDIR);
const STATE_ENTRY_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::ONLYDIR);

/// Room for many events per read; one event takes at most its header and a name of
/// NAME_MAX bytes.
const READ_BUFFER: usize = 16 * 1024;

impl Watcher {
    /// Watches every directory below `cgroup2` and each state directory in `state_roots`
    /// that exists.
    pub fn new(cgroup2: &Path, state_roots: &[PathBuf]) -> io::Result<Self> {
        let mut w = Self {
            // IN_NONBLOCK | IN_CLOEXEC.
            inotify: Inotify::init()?,
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
        let wd = self.inotify.watches().add(dir, mask)?;
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
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
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
        let mut buf = [0u8; READ_BUFFER];
        loop {
            let events = match self.inotify.read_events(&mut buf) {
                Ok(events) => events,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            };
            for ev in events {
                changed = true;
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    // Directories created meanwhile have no watch yet.
                    overflowed = true;
                    continue;
                }
                if ev.mask.contains(EventMask::IGNORED) {
                    self.watches.remove(&ev.wd);
                    continue;
                }
                let Some((dir, kind)) = self.watches.get(&ev.wd).cloned() else {
                    continue;
                };
                let created = ev.mask.contains(EventMask::CREATE | EventMask::ISDIR);
                if let (true, Some(name)) = (created, ev.name) {
                    let path = dir.join(name);
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

impl AsFd for Watcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
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

    #[test]
    fn a_directory_created_and_deleted_before_the_read_is_a_change_without_a_watch() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Watcher::new(dir.path(), &[]).unwrap();
        assert_eq!(w.len(), 1);
        std::fs::create_dir(dir.path().join("brief")).unwrap();
        std::fs::remove_dir(dir.path().join("brief")).unwrap();
        assert!(w.read().unwrap(), "its creation and deletion are changes");
        assert_eq!(w.len(), 1, "nothing is left to watch");
        assert!(!w.read().unwrap());
    }

    #[test]
    fn after_the_queue_overflowed_directories_whose_events_were_lost_are_watched() {
        let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16_384);
        if limit > 200_000 {
            eprintln!("fs.inotify.max_queued_events is {limit}: too many events to overflow");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("cg");
        std::fs::create_dir(&cg).unwrap();
        let mut w = Watcher::new(&cg, &[]).unwrap();
        // Two events (IN_CREATE, IN_DELETE) for each, with different names so the kernel
        // does not merge them: the queue fills up.
        for i in 0..limit / 2 + 1 {
            let d = cg.join(format!("flood{i}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::remove_dir(&d).unwrap();
        }
        // Its IN_CREATE is lost.
        std::fs::create_dir_all(cg.join("late/child")).unwrap();
        assert!(w.read().unwrap(), "an overflow is a change");
        assert_eq!(
            w.len(),
            3,
            "the tree is watched again, with the lost directories"
        );
        std::fs::create_dir(cg.join("late/child/grandchild")).unwrap();
        assert!(w.read().unwrap(), "the lost directory's watch reports");
        assert_eq!(w.len(), 4);
    }
}
