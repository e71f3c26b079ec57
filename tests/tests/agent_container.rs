//! The agent as a container (the image `cargo xtask image` builds, started as
//! deploy/container/README.md says): it enforces a profile on another container, its
//! events are in its own output, and its pins keep enforcing after `docker rm -f`.

use std::time::Duration;

use cgwarden_tests::{
    agent::StateDir,
    engines::{self, DOCKER, DockerContainer},
    require_root, wait_for,
};

/// The image under test, built by `cargo xtask test` (`CGWARDEN_IMAGE`).
fn image() -> String {
    std::env::var("CGWARDEN_IMAGE").unwrap_or_else(|_| {
        panic!("CGWARDEN_IMAGE is not set: run the tests with `cargo xtask test`, which builds the agent image")
    })
}

/// What a denied connect prints in busybox's nc (without the agent: "Network is
/// unreachable", the container's network being `none`).
fn refused(out: &str) -> bool {
    out.contains("Operation not permitted")
}

#[test]
fn the_agent_container_enforces_on_another_container_and_its_pins_outlive_it() {
    require_root();
    engines::docker();
    let image = image();
    let victim = engines::name("guarded");
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("guarded.yaml"),
        format!(
            "name: guarded\nmode: enforce\nselector:\n  name: \"{victim}\"\negress:\n  default: deny\n  allow:\n    - to: [127.0.0.0/8, \"::1\"]\n"
        ),
    )
    .unwrap();
    // The host's tracefs, for the agent's tracepoints (a host agent mounts it itself).
    let tracefs = std::path::Path::new("/sys/kernel/tracing/events");
    if !tracefs.exists() {
        engines::run_ok(
            "mount",
            &["-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
        );
    }
    let state = StateDir::new();
    let policy_mount = format!("{}:/etc/cgwarden/policies:ro", policies.path().display());
    let state_dir = state.path().display().to_string();
    let agent_name = engines::name("agent");
    // As deploy/container/README.md says, with the capabilities spelled out instead of
    // `--privileged` (this machine's bounding set lacks CAP_SYS_RESOURCE, which
    // `--privileged` asks for). Docker 20.10 knows no CAP_BPF or CAP_PERFMON:
    // CAP_SYS_ADMIN covers them.
    let agent = DockerContainer::start_from(
        &agent_name,
        &[
            "--network",
            "none",
            "--pid",
            "host",
            "--cgroupns",
            "host",
            "--cap-add",
            "SYS_ADMIN",
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "SYS_PTRACE",
            "--cap-add",
            "KILL",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "-v",
            "/sys/fs/bpf:/sys/fs/bpf",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:ro",
            "-v",
            "/sys/kernel/btf:/sys/kernel/btf:ro",
            "-v",
            "/sys/kernel/tracing:/sys/kernel/tracing",
            "-v",
            "/run/docker/runtime-runc:/run/docker/runtime-runc:ro",
            "-v",
            "/run/docker/containerd/daemon/io.containerd.runtime.v2.task:/run/docker/containerd/daemon/io.containerd.runtime.v2.task:ro",
            "-v",
            "/var/lib/docker/containers:/var/lib/docker/containers:ro",
            "-v",
            &policy_mount,
        ],
        &image,
        &[
            "run",
            "--config",
            "/etc/cgwarden/agent.yaml",
            "--sink",
            "json:-",
            "--state-dir",
            &state_dir,
            "--no-metrics",
        ],
    );
    let started = wait_for(Duration::from_secs(30), || {
        agent.logs().contains("cgwarden is enforcing").then_some(())
    });
    assert!(
        started.is_some(),
        "the agent container did not start:\n{}",
        agent.logs()
    );
    // The guarded container, covered from its first process: its first connect beyond
    // loopback is refused (no packet leaves: its network is `none` anyway).
    let guarded = DockerContainer::start(
        &victim,
        &["--network", "none"],
        &[
            "sh",
            "-c",
            "nc -w 2 192.0.2.1 80 </dev/null 2>&1; sleep 600",
        ],
    );
    let first = wait_for(Duration::from_secs(10), || {
        let logs = guarded.logs();
        (!logs.is_empty()).then_some(logs)
    })
    .unwrap_or_default();
    assert!(
        refused(&first),
        "the guarded container's connect was not refused: {first}\nagent:\n{}",
        agent.logs()
    );
    let event = wait_for(Duration::from_secs(10), || {
        agent
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["kind"] == "connect" && e["dst"] == "192.0.2.1")
    })
    .unwrap_or_else(|| panic!("no connect event in the agent's output:\n{}", agent.logs()));
    assert_eq!(event["verdict"], "deny");
    assert_eq!(event["container"]["name"], victim.as_str());
    assert_eq!(event["profile"], "guarded");
    // The agent goes; its pinned links and maps stay, and keep refusing.
    drop(agent);
    assert!(
        !engines::run(DOCKER, &["inspect", &agent_name])
            .status
            .success(),
        "the agent container is still there"
    );
    let again = guarded.exec(&["sh", "-c", "nc -w 2 192.0.2.1 80 </dev/null"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        refused(&text),
        "no longer refused after the agent left: {text}"
    );
    // `state` (dropped last) uninstalls the pins.
    drop(guarded);
}
