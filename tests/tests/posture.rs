//! Posture on real engines: every container the agent sees is checked against the CIS
//! Docker Benchmark's runtime section. For each check a Docker (or Podman) container
//! violates it and another passes it, and the verdict, its evidence and the total are
//! asserted: in the `posture` events, `cgwarden posture` (from the agent and from the
//! host), the metrics, and a profile that requires checks.
//!
//! The tests of this file run one at a time: each starts an agent, and two agents'
//! gates would hold and release each other's containers.

use std::{os::unix::net::UnixListener, path::Path, sync::Mutex, time::Duration};

use cgwarden_tests::{
    ProfileFile,
    agent::RunningAgent,
    engines::{self, ComposeProject, DockerContainer, DockerNetwork, PodmanContainer},
    require_root, wait_for,
};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The newest `posture` event of container `id` that satisfies `pred`.
fn posture_event(agent: &RunningAgent, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(15), || {
        agent
            .all_events()
            .into_iter()
            .rev()
            .find(|e| e["kind"] == "posture" && e["container"]["id"] == id && pred(e))
    })
    .unwrap_or_else(|| {
        panic!(
            "no posture event for {id}: {:#?}\n{}",
            agent.all_events(),
            agent.log()
        )
    })
}

/// The finding of check `check` in a posture (an event, or `cgwarden posture -o json`).
fn finding<'a>(posture: &'a Value, check: &str) -> &'a Value {
    let checks = if posture["checks"].is_array() {
        &posture["checks"]
    } else {
        &posture["posture"]["checks"]
    };
    checks
        .as_array()
        .and_then(|all| all.iter().find(|f| f["id"] == check))
        .unwrap_or_else(|| panic!("no check {check} in {posture:#}"))
}

/// Asserts the verdict of `check`, and that some evidence line says `says`.
#[track_caller]
fn assert_check(posture: &Value, check: &str, verdict: &str, says: &str) {
    let f = finding(posture, check);
    assert_eq!(f["verdict"], verdict, "{check}: {f:#}");
    let evidence = f["evidence"].as_array().cloned().unwrap_or_default();
    assert!(!evidence.is_empty(), "{check} has no evidence: {f:#}");
    let lines: Vec<String> = evidence
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            format!("{}: {} in {}", s("key"), s("value"), s("file"))
        })
        .collect();
    assert!(
        lines.iter().any(|l| l.contains(says)),
        "{check} ({verdict}): no evidence says {says:?}: {lines:#?}"
    );
    for e in &evidence {
        assert!(
            e["file"].as_str().is_some_and(|f| !f.is_empty()),
            "evidence without its file: {e}"
        );
    }
}

/// A listening unix socket standing in for a runtime's API socket (never the host's
/// real docker.sock), in a directory of its own.
struct StandIn {
    dir: tempfile::TempDir,
    _listener: UnixListener,
}

impl StandIn {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("api.sock")).unwrap();
        Self {
            dir,
            _listener: listener,
        }
    }

    fn socket(&self) -> String {
        self.dir.path().join("api.sock").display().to_string()
    }

    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }
}

/// A tmpfs made a shared mount (Docker accepts `bind-propagation=rshared` only from
/// one); unmounted on drop.
struct SharedMount(tempfile::TempDir);

impl SharedMount {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        engines::run_ok("mount", &["-t", "tmpfs", "cgw-shared", &path]);
        engines::run_ok("mount", &["--make-shared", &path]);
        Self(dir)
    }

    fn path(&self) -> String {
        self.0.path().display().to_string()
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = engines::run("umount", &[self.0.path().to_str().unwrap_or("")]);
    }
}

/// `cgwarden posture <args>`; returns exit code and standard output.
fn posture_cli(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(cgwarden_tests::cgwarden())
        .arg("posture")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn docker_containers_fail_each_check_they_violate_and_a_hardened_one_passes() {
    require_root();
    let _serial = serial();
    engines::docker();
    let standin = StandIn::new();
    let shared = SharedMount::new();
    let decoy = tempfile::NamedTempFile::new().unwrap();
    let net = DockerNetwork::internal("198.51.100.0/24");
    let weak_name = engines::name("weak");
    // A profile that requires three checks of the weak container.
    let profile = ProfileFile::new(&format!(
        "name: required\nmode: enforce\nselector:\n  name: \"{weak_name}\"\negress:\n  default: allow\nruntime:\n  posture: [5.4, 5.31, 5.25]\n"
    ));
    let agent = RunningAgent::start_with(profile.path(), &["--runtime-socket", &standin.socket()]);
    let sock_mount = format!("{}:/run/api.sock", standin.socket());
    let shared_mount = format!(
        "type=bind,source={},target=/shared,bind-propagation=rshared",
        shared.path()
    );
    // Ports on an internal network are recorded but never published: nothing binds.
    let weak = DockerContainer::start(
        &weak_name,
        &[
            "--network",
            &net.name,
            "-p",
            "80:80",
            "--cap-add",
            "SYS_ADMIN",
            "--pid",
            "host",
            "--ipc",
            "host",
            "--uts",
            "host",
            "--security-opt",
            "seccomp=unconfined",
            "--device",
            "/dev/zero:/dev/zero2",
            "-v",
            "/etc:/host-etc",
            "-v",
            &sock_mount,
            "--mount",
            &shared_mount,
        ],
        &["sleep", "300"],
    );
    let decoy_mount = format!("{}:/var/run/docker.sock:ro", decoy.path().display());
    let hardened = DockerContainer::start(
        &engines::name("hardened"),
        &[
            "--network",
            &net.name,
            "-p",
            "127.0.0.1:18081:8080",
            "--user",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--memory",
            "64m",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "64",
            "--health-cmd",
            "true",
            "-v",
            &decoy_mount,
        ],
        &["sleep", "300"],
    );
    let host_net = DockerContainer::start(
        &engines::name("hostnet"),
        &["--network", "host", "--user", "1000:1000"],
        &["sleep", "300"],
    );
    let (weak_id, hardened_id) = (weak.id(), hardened.id());

    let w = posture_event(&agent, &weak_id, |_| true);
    assert_eq!(w["container"]["name"], weak_name.as_str());
    assert_eq!(w["profile"], "required");
    for (check, says) in [
        ("4.1", "process.user.uid: 0"),
        ("5.3", "CAP_SYS_ADMIN beyond Docker's default set"),
        ("5.5", "/etc -> /host-etc (rw): host /etc, writable"),
        (
            "5.7",
            "HostConfig.PortBindings[80/tcp]: 0.0.0.0:80 -> 80/tcp",
        ),
        ("5.10", "HostConfig.Memory: 0"),
        ("5.11", "HostConfig.CpuShares: 0"),
        ("5.12", "root.readonly"),
        ("5.13", "every host interface"),
        ("5.15", "HostConfig.PidMode: host"),
        ("5.16", "HostConfig.IpcMode: host"),
        ("5.17", "/dev/zero2 (c 1:5)"),
        ("5.19", "(rshared)"),
        ("5.20", "HostConfig.UTSMode: host"),
        ("5.21", "seccomp=unconfined"),
        ("5.25", "process.noNewPrivileges"),
        ("5.26", "Config.Healthcheck.Test"),
        ("5.28", "HostConfig.PidsLimit"),
        ("5.30", "no `user` entry"),
        // By the socket it is, though the container calls it /run/api.sock.
        (
            "5.31",
            &format!(
                "{} -> /run/api.sock (rw): the runtime socket {}",
                standin.socket(),
                standin.socket()
            ),
        ),
    ] {
        assert_check(&w, check, "fail", says);
    }
    assert_check(&w, "5.4", "pass", "HostConfig.Privileged: false");
    assert_check(&w, "5.9", "pass", "network, a new namespace");
    assert_check(
        &w,
        "5.29",
        "pass",
        &format!("HostConfig.NetworkMode: {}", net.name),
    );
    assert_eq!(w["score"], "3/22 PASS", "{w:#}");
    assert_eq!(
        (w["failed"].as_u64(), w["unknown"].as_u64()),
        (Some(19), Some(0))
    );
    // Evidence cites the OCI state and Docker's own files.
    let cites = |check: &str, file: &str| {
        finding(&w, check)["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["file"].as_str().unwrap().contains(file))
    };
    assert!(cites(
        "5.31",
        &format!("/run/docker/runtime-runc/moby/{weak_id}/state.json → bundle config.json")
    ));
    assert!(cites(
        "5.15",
        &format!("/var/lib/docker/containers/{weak_id}/hostconfig.json")
    ));

    let h = posture_event(&agent, &hardened_id, |_| true);
    assert_eq!(h["score"], "21/22 PASS", "{h:#}");
    for (check, says) in [
        ("4.1", "process.user.uid: 1000"),
        ("5.3", "none held"),
        ("5.4", "HostConfig.Privileged: false"),
        ("5.5", "none of / /boot /dev /etc /lib /proc /sys /usr"),
        ("5.7", "none below host port 1024"),
        ("5.10", "HostConfig.Memory: 67108864"),
        ("5.11", "HostConfig.CpuShares: 512"),
        ("5.12", "root.readonly: true"),
        ("5.13", "127.0.0.1:18081 -> 8080/tcp"),
        ("5.15", "pid, a new namespace"),
        ("5.17", "linux.devices: none"),
        ("5.21", "SCMP_ACT_ERRNO"),
        ("5.25", "process.noNewPrivileges: true"),
        ("5.26", "CMD-SHELL"),
        ("5.28", "HostConfig.PidsLimit: 64"),
        // A file named docker.sock that is no runtime's socket is no runtime socket.
        ("5.31", "none is or holds a runtime socket"),
    ] {
        assert_check(&h, check, "pass", says);
    }
    // Docker here has no user namespace remapping: the host's is shared.
    assert_check(&h, "5.30", "fail", "HostConfig.UsernsMode: unset");

    let n = posture_event(&agent, &host_net.id(), |_| true);
    assert_check(&n, "5.9", "fail", "HostConfig.NetworkMode: host");

    // The profile's required checks: 5.31 and 5.25 fail; 5.4 passes.
    let deviations: Vec<Value> = wait_for(Duration::from_secs(10), || {
        let d: Vec<Value> = agent
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "deviation" && e["deviation"] == "posture")
            .collect();
        (d.len() >= 2).then_some(d)
    })
    .unwrap_or_else(|| panic!("no posture deviations: {:#?}", agent.events()));
    assert_eq!(deviations.len(), 2, "{deviations:#?}");
    let details: Vec<&str> = deviations
        .iter()
        .map(|d| d["detail"].as_str().unwrap())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("5.25 (no-new-privileges set) is fail")),
        "{details:?}"
    );
    assert!(
        details.iter().any(
            |d| d.starts_with("5.31 (no container runtime socket mounted) is fail")
                && d.contains("/run/api.sock")
        ),
        "{details:?}"
    );
    assert!(
        deviations
            .iter()
            .all(|d| d["container"]["id"] == weak_id.as_str())
    );
    let (code, status, _) = agent.client("status -o json");
    assert_eq!(code, Some(0));
    let status: Value = serde_json::from_str(&status).unwrap();
    let failing = &status["profiles"][0]["posture_failing"];
    assert_eq!(
        failing[0]["container"]["id"],
        weak_id.as_str(),
        "{status:#}"
    );
    assert_eq!(failing[0]["checks"], serde_json::json!(["5.25", "5.31"]));

    // The table, from the running agent: one row per check and the total.
    let control = agent.control().display().to_string();
    let (code, table) = posture_cli(&["--container", &weak_name, "--control", &control]);
    assert_eq!(code, Some(0), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("5.31  FAIL")),
        "{table}"
    );
    assert!(table.contains("3/22 PASS (19 fail, 0 unknown)"), "{table}");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("  5.") || l.starts_with("  4."))
            .count(),
        22
    );

    // Metrics: the counts per container, by verdict.
    let metrics = cgwarden_tests::agent::scrape(agent.metrics_addr());
    let series = format!(
        "cgwarden_posture_checks{{container=\"{weak_name}\",id=\"{}\",verdict=\"fail\"}} 19",
        &weak_id[..12]
    );
    assert!(metrics.contains(&series), "{series} not in:\n{metrics}");

    // A change of configuration is a new posture event.
    engines::run_ok(
        engines::DOCKER,
        &[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "--pids-limit",
            "100",
            &weak_name,
        ],
    );
    let changed = posture_event(&agent, &weak_id, |e| e["score"] == "5/22 PASS");
    assert_check(&changed, "5.10", "pass", "HostConfig.Memory: 67108864");
    assert_check(&changed, "5.28", "pass", "HostConfig.PidsLimit: 100");

    // A container that goes takes its series with it.
    drop(weak);
    let gone = wait_for(Duration::from_secs(10), || {
        let m = cgwarden_tests::agent::scrape(agent.metrics_addr());
        (!m.contains(&weak_name)).then_some(())
    });
    assert!(gone.is_some(), "the removed container's series stayed");

    // With no agent running, the command reads the host itself, to the same verdicts.
    let events = agent.stop_and_read_all();
    let postures = events.iter().filter(|e| e["kind"] == "posture").count();
    assert!(postures >= 4, "{postures} posture events");
    let (code, json) = posture_cli(&[
        "--container",
        &hardened_id[..12],
        "-o",
        "json",
        "--control",
        "/nonexistent/control.sock",
    ]);
    assert_eq!(code, Some(0), "{json}");
    let local: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(local.as_array().map(Vec::len), Some(1), "{local:#}");
    assert_eq!(local[0]["posture"]["score"], "21/22 PASS");
    assert_check(
        &local[0],
        "5.31",
        "pass",
        "none is or holds a runtime socket",
    );
    let (code, _) = posture_cli(&[
        "--container",
        "no-such-container",
        "--control",
        "/nonexistent/control.sock",
    ]);
    assert_eq!(code, Some(1));
}

#[test]
fn podman_containers_are_checked_from_their_oci_config_and_say_unknown_where_it_is_silent() {
    require_root();
    let _serial = serial();
    let standin = StandIn::new();
    let profile = ProfileFile::new(
        "name: nothing\nmode: audit\nselector:\n  cgroup: \"/cgwarden-selects-nothing\"\negress:\n  default: allow\n",
    );
    let agent = RunningAgent::start_with(profile.path(), &["--runtime-socket", &standin.socket()]);
    // The directory that holds the runtime socket reaches it as well as the socket.
    let dir_mount = format!("{}:/sockets", standin.dir());
    let weak = PodmanContainer::start(
        &engines::name("pweak"),
        &["--privileged", "--pid", "host", "-v", &dir_mount],
        &["sleep", "300"],
    );
    let hardened = PodmanContainer::start(
        &engines::name("phard"),
        &[
            "--user",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--memory",
            "64m",
            "--pids-limit",
            "64",
            "--uidmap",
            "0:100000:65536",
            "--gidmap",
            "0:100000:65536",
        ],
        &["sleep", "300"],
    );
    let w = posture_event(&agent, &weak.id(), |_| true);
    assert_eq!(w["container"]["runtime"], "podman");
    assert_check(&w, "5.4", "fail", "io.podman.annotations.privileged]: TRUE");
    assert_check(&w, "5.4", "fail", "privileged in effect");
    assert_check(&w, "5.15", "fail", "no `pid` entry");
    assert_check(&w, "5.21", "fail", "linux.seccomp: absent");
    assert_check(&w, "5.3", "fail", "CAP_SYS_ADMIN");
    assert_check(&w, "5.17", "fail", "linux.devices[0]");
    assert_check(
        &w,
        "5.31",
        "fail",
        &format!("holds the runtime socket {}", standin.socket()),
    );
    let h = posture_event(&agent, &hardened.id(), |_| true);
    for (check, says) in [
        ("4.1", "process.user.uid: 1000"),
        ("5.3", "none held"),
        ("5.4", "io.podman.annotations.privileged]: FALSE"),
        ("5.9", "network, a new namespace"),
        ("5.10", "linux.resources.memory.limit: 67108864"),
        ("5.12", "root.readonly: true"),
        ("5.21", "SCMP_ACT_ERRNO"),
        ("5.25", "process.noNewPrivileges: true"),
        ("5.28", "linux.resources.pids.limit: 64"),
        ("5.30", "linux.uidMappings"),
        ("5.31", "none is or holds a runtime socket"),
    ] {
        assert_check(&h, check, "pass", says);
    }
    // Podman keeps ports, healthchecks and networks in its own database.
    for check in ["5.7", "5.13", "5.26", "5.29"] {
        assert_check(
            &h,
            check,
            "unknown",
            "podman keeps this setting outside the OCI config",
        );
    }
    assert_eq!(h["unknown"], 4);
    drop(agent);
}

#[test]
fn the_hardened_compose_service_passes_every_check_its_file_addresses() {
    require_root();
    let _serial = serial();
    let project = ComposeProject::new(engines::HARDENED_COMPOSE);
    let id = project.up("web");
    let (code, json) = posture_cli(&[
        "--container",
        &id,
        "-o",
        "json",
        "--control",
        "/nonexistent/control.sock",
    ]);
    assert_eq!(code, Some(0), "{json}");
    let all: Value = serde_json::from_str(&json).unwrap();
    let p = &all[0];
    assert_eq!(p["compose"]["service"], "web", "{p:#}");
    // What the review's hardened file addresses: privileged, root, socket mounts, host
    // mounts, capabilities, no-new-privileges, read-only root, ports beyond
    // localhost, healthcheck.
    for check in [
        "5.4", "4.1", "5.31", "5.5", "5.3", "5.25", "5.12", "5.13", "5.7", "5.26", "5.29",
    ] {
        assert_eq!(
            finding(p, check)["verdict"],
            "pass",
            "{check}: {:#}",
            finding(p, check)
        );
    }
    assert_check(p, "5.13", "pass", "127.0.0.1:18080 -> 8080/tcp");
    let (_, table) = posture_cli(&["--container", &id, "--control", "/nonexistent/control.sock"]);
    let score = p["posture"]["score"].as_str().unwrap();
    assert!(table.contains(score), "{table}");
    assert!(Path::new(&format!("/var/lib/docker/containers/{id}/hostconfig.json")).exists());
}
