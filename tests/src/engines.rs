//! Real container engines for the integration tests: Docker Engine (started here when
//! it is not running, with no default bridge and no NAT), Podman (with runc and a
//! containers.conf of the tests' own) and containerd (the one dockerd starts, through
//! `ctr`). Images are made locally from busybox-static, once per content.
//!
//! Every container, network, compose project and containerd container a test makes is
//! held by a guard that removes it on drop, also when the test fails. Containers run
//! with `--network none`, `--network host`, or an internal network on a documentation
//! subnet; never on an engine's default bridge, never with the host's docker.sock.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::Duration,
};

use crate::wait_for;

/// Docker's client of this machine's engine (another version may come first in PATH).
pub const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const PODMAN: &str = "/usr/bin/podman";
const CTR: &str = "/usr/bin/ctr";
const COMPOSE: &str = "/usr/bin/docker-compose";
/// The containerd that dockerd starts.
pub const CONTAINERD_SOCKET: &str = "/var/run/docker/containerd/containerd.sock";

/// The repository of the tests' images; older tags of it are removed.
const IMAGE_REPO: &str = "cgwarden-test/busybox";

fn require(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{what} is not installed ({path} is missing): run `cargo xtask setup`"
    );
}

/// Runs a command and returns its output (never panics on a non-zero status).
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Like [`run`], failing the test with the command's stderr unless it succeeds.
#[track_caller]
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Makes sure Docker Engine answers: starts `dockerd --bridge=none --iptables=false
/// --ip6tables=false` when it does not, and leaves it running for later tests.
pub fn docker() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        require(DOCKER, "Docker (docker.io)");
        require(DOCKERD, "Docker Engine (docker.io)");
        let answers = || {
            run(DOCKER, &["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
        };
        if !answers() {
            // One test binary may race another to start it: dockerd refuses a second
            // instance on its pid file, and both then wait for the one that runs.
            let log = fs::File::create("/tmp/cgwarden-test-dockerd.log").expect("dockerd log");
            // In a session of its own, not our child: it outlives this test process
            // (`setsid --fork` returns once it has started it).
            let started = Command::new("setsid")
                .arg("--fork")
                .arg(DOCKERD)
                .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .status()
                .expect("start dockerd");
            assert!(started.success(), "setsid --fork dockerd failed");
            let up = wait_for(Duration::from_secs(60), || answers().then_some(()));
            assert!(
                up.is_some(),
                "dockerd did not answer within 60 s:\n{}",
                fs::read_to_string("/tmp/cgwarden-test-dockerd.log").unwrap_or_default()
            );
        }
    });
}

/// The busybox root filesystem the images are made from, as a tar stream.
fn rootfs_tar() -> (Vec<u8>, String) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "busybox-static is not installed (run `cargo xtask setup`)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "run", "www"] {
        fs::create_dir_all(root.join(d)).expect("rootfs dir");
    }
    fs::set_permissions(
        root.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("chmod tmp");
    fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    let applets = run_ok("/bin/busybox", &["--list"]);
    for applet in applets.lines().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n",
    )
    .expect("passwd");
    fs::write(root.join("etc/group"), "root:x:0:\nuser:x:1000:\n").expect("group");
    fs::write(root.join("www/index.html"), "cgwarden test page\n").expect("page");
    let tar = Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C"])
        .arg(root)
        .args(["-c", "."])
        .output()
        .expect("tar");
    assert!(tar.status.success(), "tar of the rootfs failed");
    // The tag follows the content, so a run reuses an image an earlier run made.
    let hash = tar.stdout.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    });
    (tar.stdout, format!("{hash:016x}"))
}

fn import(program: &str, args: &[&str], tar: &[u8]) {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(tar)
        .expect("write image");
    let out = child.wait_with_output().expect("import");
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tests' busybox image in Docker (`cgwarden-test/busybox:<content hash>`); tags of
/// older contents are removed.
pub fn docker_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        docker();
        let (tar, tag) = rootfs_tar();
        let image = format!("{IMAGE_REPO}:{tag}");
        if !run(DOCKER, &["image", "inspect", &image]).status.success() {
            import(DOCKER, &["import", "-", &image], &tar);
        }
        let tags = run_ok(
            DOCKER,
            &["images", IMAGE_REPO, "--format", "{{.Repository}}:{{.Tag}}"],
        );
        for old in tags.lines().filter(|t| *t != image) {
            let _ = run(DOCKER, &["rmi", old]);
        }
        image
    })
}

/// A name unique to this run, for containers, networks and projects.
pub fn name(prefix: &str) -> String {
    crate::unique(&format!("cgw-{prefix}"))
}

/// A Docker container, removed (`docker rm -f`) on drop.
pub struct DockerContainer {
    pub name: String,
}

impl DockerContainer {
    /// `docker run -d --name <name> <options> <image> <command>`; options must choose
    /// the network.
    #[track_caller]
    pub fn start(name: &str, options: &[&str], command: &[&str]) -> Self {
        Self::start_from(name, options, docker_image(), command)
    }

    /// Like [`DockerContainer::start`], from another image.
    #[track_caller]
    pub fn start_from(name: &str, options: &[&str], image: &str, command: &[&str]) -> Self {
        let guard = Self {
            name: name.to_owned(),
        };
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(options);
        assert_network_chosen(options);
        args.push(image);
        args.extend_from_slice(command);
        run_ok(DOCKER, &args);
        guard
    }

    /// The container's full id.
    pub fn id(&self) -> String {
        run_ok(DOCKER, &["inspect", "-f", "{{.Id}}", &self.name])
    }

    /// Its init process as the host sees it.
    pub fn pid(&self) -> u32 {
        run_ok(DOCKER, &["inspect", "-f", "{{.State.Pid}}", &self.name])
            .parse()
            .expect("pid")
    }

    /// `docker exec <name> <command>`.
    pub fn exec(&self, command: &[&str]) -> Output {
        docker_exec(&self.name, command)
    }

    /// Its logs (stdout and stderr).
    pub fn logs(&self) -> String {
        let out = run(DOCKER, &["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits until the container has exited and returns its exit code.
    pub fn wait(&self) -> i32 {
        run_ok(DOCKER, &["wait", &self.name])
            .parse()
            .expect("exit code")
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = run(DOCKER, &["rm", "-f", &self.name]);
    }
}

/// `docker run --rm` in the foreground; the container is removed even if the test
/// fails while it runs.
pub fn docker_run(options: &[&str], command: &[&str]) -> Output {
    let name = name("run");
    let _guard = DockerContainer { name: name.clone() };
    let mut args = vec!["run", "--rm", "--name", name.as_str()];
    assert_network_chosen(options);
    args.extend_from_slice(options);
    args.push(docker_image());
    args.extend_from_slice(command);
    run(DOCKER, &args)
}

#[track_caller]
fn assert_network_chosen(options: &[&str]) {
    let chosen = options
        .iter()
        .any(|o| *o == "--network" || o.starts_with("--network="));
    assert!(
        chosen,
        "a test container must choose its network (none, host or an internal test network)"
    );
}

/// An internal Docker network on a documentation subnet, removed on drop.
pub struct DockerNetwork {
    pub name: String,
}

impl DockerNetwork {
    /// `docker network create --internal --subnet <subnet>` (192.0.2.0/24,
    /// 198.51.100.0/24, 203.0.113.0/24 or 2001:db8::/32 only).
    pub fn internal(subnet: &str) -> Self {
        let allowed = ["192.0.2.", "198.51.100.", "203.0.113.", "2001:db8:"];
        assert!(
            allowed.iter().any(|a| subnet.starts_with(a)),
            "test networks use documentation subnets only, not {subnet}"
        );
        docker();
        let name = name("net");
        run_ok(
            DOCKER,
            &["network", "create", "--internal", "--subnet", subnet, &name],
        );
        Self { name }
    }
}

impl Drop for DockerNetwork {
    fn drop(&mut self) {
        let _ = run(DOCKER, &["network", "rm", &self.name]);
    }
}

/// A docker-compose project in a directory of its own, named like the project, so
/// Compose derives the project name from it as users' projects do; brought down on
/// drop.
pub struct ComposeProject {
    _root: tempfile::TempDir,
    dir: PathBuf,
    pub project: String,
}

impl ComposeProject {
    /// Writes `compose.yml` (with `IMAGE` replaced by the tests' image).
    pub fn new(yaml: &str) -> Self {
        require(COMPOSE, "docker-compose");
        let image = docker_image();
        let project = name("proj").replace('-', "");
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join(&project);
        fs::create_dir(&dir).expect("project dir");
        fs::write(dir.join("compose.yml"), yaml.replace("IMAGE", image))
            .expect("write compose file");
        Self {
            _root: root,
            dir,
            project,
        }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join("compose.yml")
    }

    /// `docker-compose -f <file> <args>`, in the project's directory.
    pub fn compose(&self, args: &[&str]) -> Output {
        let file = self.file().display().to_string();
        let mut all = vec!["-f", file.as_str()];
        all.extend_from_slice(args);
        Command::new(COMPOSE)
            .args(&all)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", "unix:///var/run/docker.sock")
            .env_remove("COMPOSE_PROJECT_NAME")
            .stdin(Stdio::null())
            .output()
            .expect("docker-compose")
    }

    /// The container of a service (`docker-compose ps -q <service>`).
    pub fn container_id(&self, service: &str) -> String {
        let out = self.compose(&["ps", "-q", service]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker-compose up -d`; returns the container of `service`.
    #[track_caller]
    pub fn up(&self, service: &str) -> String {
        let up = self.compose(&["up", "-d"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let id = self.container_id(service);
        assert!(!id.is_empty(), "no container for service {service}");
        id
    }
}

/// A Docker container's health (`healthy`, `starting`, `unhealthy`).
pub fn docker_health(id: &str) -> String {
    run_ok(DOCKER, &["inspect", "-f", "{{.State.Health.Status}}", id])
}

/// Waits until a Docker container is healthy (30 s at most).
#[track_caller]
pub fn wait_healthy(id: &str) {
    let healthy = crate::wait_for(std::time::Duration::from_secs(30), || {
        (docker_health(id) == "healthy").then_some(())
    });
    assert!(healthy.is_some(), "never healthy: {}", docker_health(id));
}

/// The hardened service's own workload: it fetches its page from itself three times
/// (`exec` runs a command inside it: `docker exec`, `podman exec`).
#[track_caller]
pub fn fetch_own_pages(exec: &dyn Fn(&[&str]) -> Output) {
    for _ in 0..3 {
        let page = exec(&["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]);
        assert!(
            String::from_utf8_lossy(&page.stdout).contains("cgwarden test page"),
            "{page:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// `docker exec <id> <command>`.
pub fn docker_exec(id: &str, command: &[&str]) -> Output {
    let mut args = vec!["exec", id];
    args.extend_from_slice(command);
    run(DOCKER, &args)
}

/// `podman exec NAME COMMAND...`.
pub fn podman_exec(name: &str, command: &[&str]) -> Output {
    let mut args = vec!["exec", name];
    args.extend_from_slice(command);
    podman(&args)
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

/// Podman with runc (crun refuses this host's hybrid cgroup layout) and no default
/// ulimits (they exceed this sandbox's hard limits), from a containers.conf of the
/// tests' own.
pub fn podman(args: &[&str]) -> Output {
    Command::new(PODMAN)
        .args(args)
        .env("CONTAINERS_CONF", podman_conf())
        .stdin(Stdio::null())
        .output()
        .expect("podman")
}

fn podman_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        require(PODMAN, "Podman");
        let path = std::env::temp_dir().join("cgwarden-test-containers.conf");
        fs::write(
            &path,
            "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n",
        )
        .expect("containers.conf");
        path
    })
}

/// Like [`podman`], failing the test unless it succeeds; returns stdout.
#[track_caller]
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The tests' busybox image in Podman's storage.
pub fn podman_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let (tar, tag) = rootfs_tar();
        let image = format!("localhost/{IMAGE_REPO}:{tag}");
        if !podman(&["image", "exists", &image]).status.success() {
            let out = {
                use std::io::Write as _;
                let mut child = Command::new(PODMAN)
                    .args(["import", "-", &image])
                    .env("CONTAINERS_CONF", podman_conf())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("podman import");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(&tar)
                    .expect("image");
                child.wait_with_output().expect("podman import")
            };
            assert!(
                out.status.success(),
                "podman import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        image
    })
}

/// A Podman container, removed on drop.
pub struct PodmanContainer {
    pub name: String,
}

impl PodmanContainer {
    /// `podman run -d --network none --name <name> <options> <image> <command>`.
    #[track_caller]
    pub fn start(name: &str, options: &[&str], command: &[&str]) -> Self {
        let guard = Self {
            name: name.to_owned(),
        };
        let image = podman_image();
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend_from_slice(options);
        args.push(image);
        args.extend_from_slice(command);
        podman_ok(&args);
        guard
    }

    pub fn id(&self) -> String {
        podman_ok(&["inspect", "-f", "{{.Id}}", &self.name])
    }

    pub fn wait(&self) -> i32 {
        podman_ok(&["wait", &self.name]).parse().expect("exit code")
    }

    pub fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// `ctr` against the containerd that dockerd runs, in namespace `ns`.
pub fn ctr(ns: &str, args: &[&str]) -> Output {
    require(CTR, "containerd's ctr (containerd, with docker.io)");
    docker();
    let mut all = vec!["-a", CONTAINERD_SOCKET, "-n", ns];
    all.extend_from_slice(args);
    run(CTR, &all)
}

/// The tests' image in containerd namespace `ns` (from Docker's, by `docker save`).
pub fn containerd_image(ns: &str) -> String {
    let image = docker_image();
    let reference = format!("docker.io/{image}");
    let listed = ctr(ns, &["images", "ls", "-q"]);
    if !String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l == reference)
    {
        let saved = run(DOCKER, &["save", image]);
        assert!(saved.status.success(), "docker save failed");
        let args = ["-a", CONTAINERD_SOCKET, "-n", ns, "images", "import", "-"];
        import(CTR, &args, &saved.stdout);
    }
    reference
}

/// A containerd container (and its task), removed on drop.
pub struct CtrContainer {
    pub ns: String,
    pub id: String,
}

impl CtrContainer {
    /// A guard for `ctr run` of container `id` in namespace `ns`: whatever the test
    /// starts under that id is killed and removed on drop.
    pub fn guard(ns: &str, id: &str) -> Self {
        Self {
            ns: ns.to_owned(),
            id: id.to_owned(),
        }
    }
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        let _ = ctr(&self.ns, &["task", "kill", "-s", "SIGKILL", &self.id]);
        let _ = wait_for(Duration::from_secs(5), || {
            let out = ctr(&self.ns, &["task", "ls", "-q"]);
            (!String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == self.id))
            .then_some(())
        });
        let _ = ctr(&self.ns, &["task", "delete", "-f", &self.id]);
        let _ = ctr(&self.ns, &["containers", "rm", &self.id]);
    }
}

/// The hardened Compose service of the review behind cgwarden: uid 1000, read-only
/// root, no capabilities, no-new-privileges, a port on loopback only, an internal
/// network, a healthcheck. `IMAGE` is replaced by the tests' image.
pub const HARDENED_COMPOSE: &str = r#"version: "2.4"
services:
  web:
    image: IMAGE
    user: "1000:1000"
    read_only: true
    tmpfs:
      - /tmp:noexec,nosuid,nodev
    cap_drop: [ALL]
    security_opt: [no-new-privileges:true]
    ports: ["127.0.0.1:18080:8080"]
    networks: [backend]
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 3
networks:
  backend:
    internal: true
    ipam:
      config:
        - subnet: 192.0.2.0/24
"#;
