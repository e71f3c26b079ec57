//! The cgroup v2 hierarchy: where it is mounted, walking it, and creating and removing
//! the cgroups `cgwarden exec` runs commands in.
//!
//! Host paths are parameters so the parsing is tested without root.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Finds the cgroup2 mount point in a mountinfo file (normally `/proc/self/mountinfo`).
pub fn find_cgroup2_mount(mountinfo: &Path) -> io::Result<PathBuf> {
    let text = fs::read_to_string(mountinfo)?;
    parse_cgroup2_mount(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no cgroup2 filesystem is mounted (looked in {})",
                mountinfo.display()
            ),
        )
    })
}

fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mount_point = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    // Non-ASCII bytes pass through unchanged by pushing whole chars below.
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4);
        if bytes[i] == b'\\' && octal.is_some_and(|o| o.iter().all(|b| (b'0'..=b'7').contains(b))) {
            let v = octal
                .unwrap_or_default()
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(char::from_u32(v).unwrap_or('?'));
            i += 4;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or('?');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The cgroup id the kernel uses (`bpf_get_current_cgroup_id`): the directory's inode.
pub fn cgroup_id(path: &Path) -> io::Result<u64> {
    Ok(fs::metadata(path)?.ino())
}

/// A cgroup found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    /// Path relative to the cgroup2 root, starting with `/` (`/` is the root).
    pub path: String,
    pub id: u64,
    /// Depth below the root (root = 0), as `bpf_get_current_ancestor_cgroup_id` counts.
    pub level: u32,
}

/// Whether the cgroup at `inner` (relative to the cgroup2 root, `/a/b`) is `outer` or
/// lies below it.
pub fn contains(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/');
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether the cgroup `path` (relative to `root`) with id `id` is proven gone: its
/// directory does not exist, or another cgroup has its path now. Any other error
/// (permissions, a failing file system) proves nothing.
pub fn is_gone(root: &Path, path: &str, id: u64) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match fs::metadata(root.join(path.trim_start_matches('/'))) {
        Ok(meta) => meta.ino() != id,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Lists every cgroup below `root` (the root included). Cgroups that vanish while
/// walking are skipped.
pub fn walk(root: &Path) -> Vec<CgroupEntry> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::from("/"), 0u32)];
    while let Some((dir, rel, level)) = stack.pop() {
        let Ok(meta) = fs::metadata(&dir) else {
            continue;
        };
        out.push(CgroupEntry {
            path: rel.clone(),
            id: meta.ino(),
            level,
        });
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child_rel = if rel == "/" {
                    format!("/{name}")
                } else {
                    format!("{rel}/{name}")
                };
                stack.push((entry.path(), child_rel, level + 1));
            }
        }
    }
    out
}

/// A cgroup this process created; removed (with every process in it killed) on drop.
#[derive(Debug)]
pub struct OwnedCgroup {
    path: PathBuf,
    relative: String,
    id: u64,
}

impl OwnedCgroup {
    /// Creates `root/name`.
    pub fn create(root: &Path, name: &str) -> io::Result<Self> {
        let path = root.join(name);
        fs::create_dir(&path)?;
        let id = cgroup_id(&path)?;
        Ok(Self {
            path,
            relative: format!("/{name}"),
            id,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path relative to the cgroup2 root, as events show it.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Level below the cgroup2 root.
    pub fn level(&self) -> u32 {
        self.relative.matches('/').count() as u32
    }

    /// Kills every process left in the cgroup and removes it.
    pub fn remove(&self) -> io::Result<()> {
        if !self.path.exists() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let procs = fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
            if procs.trim().is_empty() {
                match fs::remove_dir(&self.path) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => {}
                }
            } else {
                kill_all(&self.path, &procs);
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "processes remain in {} after SIGKILL",
                        self.path.display()
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            log::warn!("could not remove cgroup {}: {e}", self.path.display());
        }
    }
}

/// Kills every process in a cgroup: `cgroup.kill` where the kernel has it (5.14+),
/// otherwise SIGKILL to each listed pid.
fn kill_all(path: &Path, procs: &str) {
    let kill_file = path.join("cgroup.kill");
    if let Ok(mut f) = fs::OpenOptions::new().write(true).open(&kill_file)
        && f.write_all(b"1").is_ok()
    {
        return;
    }
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) with a pid read from cgroup.procs and a valid signal number.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_contains_itself_and_what_is_below_it() {
        assert!(contains("/docker/abc", "/docker/abc"));
        assert!(contains("/docker/abc", "/docker/abc/init"));
        assert!(contains("/docker/", "/docker/abc"));
        assert!(contains("/", "/docker"));
        assert!(!contains("/docker/abc", "/docker/abcd"));
        assert!(!contains("/docker/abc", "/docker"));
    }

    #[test]
    fn finds_hybrid_and_unified_mounts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                      40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            parse_cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            parse_cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }

    #[test]
    fn walk_reports_levels_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let mut entries = walk(dir.path());
        entries.sort_by(|x, y| x.path.cmp(&y.path));
        let got: Vec<(&str, u32)> = entries.iter().map(|e| (e.path.as_str(), e.level)).collect();
        assert_eq!(got, vec![("/", 0), ("/a", 1), ("/a/b", 2)]);
    }
}
