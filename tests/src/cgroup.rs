//! A cgroup v2 directory a test creates and always removes.

use std::{
    fs,
    io::Write,
    os::{fd::AsRawFd, unix::fs::MetadataExt, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_root() -> PathBuf {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    text.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            left.split_whitespace().nth(4).map(PathBuf::from)
        })
        .expect("kernel feature missing: no cgroup2 filesystem is mounted")
}

/// A cgroup below the cgroup2 root, removed on drop with every process left in it.
pub struct TestCgroup {
    path: PathBuf,
    relative: String,
}

impl TestCgroup {
    /// Creates `<cgroup2>/<relative>` (parents included).
    pub fn create(relative: &str) -> Self {
        let relative = format!("/{}", relative.trim_start_matches('/'));
        let path = cgroup2_root().join(relative.trim_start_matches('/'));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create cgroup {}: {e}", path.display()));
        Self { path, relative }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path relative to the cgroup2 root, as events show it.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    pub fn id(&self) -> u64 {
        fs::metadata(&self.path).expect("stat cgroup").ino()
    }

    /// Starts `cmd` inside this cgroup (it joins before exec, so its first instruction
    /// already runs here).
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        let procs = fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))
            .expect("open cgroup.procs");
        let fd = procs.as_raw_fd();
        // SAFETY: only write(2) on an open fd between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd.spawn().expect("spawn in cgroup");
        drop(procs);
        child
    }

    /// Runs `cmd` inside this cgroup to completion and returns its stdout.
    pub fn run(&self, cmd: &mut Command) -> String {
        let child = self.spawn(cmd.stdout(std::process::Stdio::piped()));
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// Kills every process below `path` and removes the cgroups, deepest first.
pub fn remove_tree(path: &Path) {
    if !path.exists() {
        return;
    }
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(mut f) = fs::OpenOptions::new()
            .write(true)
            .open(path.join("cgroup.kill"))
        {
            let _ = f.write_all(b"1");
        }
        if fs::remove_dir(path).is_ok() || !path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("warning: could not remove cgroup {}", path.display());
}
