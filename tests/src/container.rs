//! Real OCI containers run by runc from a busybox-static rootfs, each in its own cgroup.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
};

use serde_json::{Value, json};

use crate::cgroup::{cgroup2_root, remove_tree};

/// A runc bundle (rootfs + config.json) and the container made from it, deleted on drop.
pub struct Container {
    id: String,
    bundle: tempfile::TempDir,
    cgroup: String,
}

impl Container {
    /// Prepares a container that runs `args` (a busybox applet and its arguments) in the
    /// cgroup `cgroup` (relative to the cgroup2 root). It shares the host's network
    /// namespace, so loopback listeners of the test are reachable. `customise` may edit
    /// config.json before it is written.
    pub fn new(id: &str, cgroup: &str, args: &[&str], customise: impl FnOnce(&mut Value)) -> Self {
        let runc = which("runc");
        let bundle = tempfile::tempdir().expect("bundle dir");
        let rootfs = bundle.path().join("rootfs");
        for dir in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            fs::create_dir_all(rootfs.join(dir)).expect("rootfs dir");
        }
        // As in any distribution's root: runc gives a tmpfs mounted on /tmp this mode.
        fs::set_permissions(
            rootfs.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .expect("chmod tmp");
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "busybox-static is not installed (run `cargo xtask setup`)"
        );
        fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
        )
        .expect("passwd");
        let status = Command::new(&runc)
            .arg("spec")
            .current_dir(bundle.path())
            .status()
            .expect("runc spec");
        assert!(status.success(), "runc spec failed");
        let config_path = bundle.path().join("config.json");
        let mut config: Value =
            serde_json::from_str(&fs::read_to_string(&config_path).expect("read config"))
                .expect("parse config");
        let mut argv = vec!["/bin/busybox".to_owned()];
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        config["process"]["args"] = json!(argv);
        config["process"]["terminal"] = json!(false);
        config["root"]["readonly"] = json!(true);
        config["linux"]["cgroupsPath"] = json!(cgroup);
        if let Some(ns) = config["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
        customise(&mut config);
        fs::write(
            &config_path,
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("write config");
        Self {
            id: id.to_owned(),
            bundle,
            cgroup: cgroup.to_owned(),
        }
    }

    /// Runs the container in the foreground to completion.
    pub fn run(&self) -> Output {
        Command::new(which("runc"))
            .args(["run", "--bundle"])
            .arg(self.bundle.path())
            .arg(&self.id)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runc run")
    }

    /// Starts the container in the background (`runc run`, not detached: the returned
    /// child is runc, which lives as long as the container).
    pub fn spawn(&self) -> std::process::Child {
        Command::new(which("runc"))
            .args(["run", "--bundle"])
            .arg(self.bundle.path())
            .arg(&self.id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("runc run")
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn cgroup(&self) -> &str {
        &self.cgroup
    }

    /// The container's root filesystem, to add files before it runs.
    pub fn rootfs(&self) -> std::path::PathBuf {
        self.bundle.path().join("rootfs")
    }

    /// The bundle directory (with config.json).
    pub fn bundle(&self) -> &Path {
        self.bundle.path()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(which("runc"))
            .args(["delete", "--force", &self.id])
            .output();
        remove_tree(&cgroup2_root().join(self.cgroup.trim_start_matches('/')));
    }
}

fn which(program: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!("{program} is not installed (run `cargo xtask setup`)");
}
