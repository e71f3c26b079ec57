//! `action: kill-container`: the attempt kills its caller, as `kill` does, and then
//! every process of the container's cgroup, so nothing that shares what the attempt
//! opened (a `CLONE_FILES` sibling, a shell waiting on it) goes on.

use cgwarden_tests::{ProfileFile, agent::RunningAgent, engines, exec, require_root};

/// A shell with a sibling, then the attempt, then more of the shell; with `kill` only
/// the attempt dies and the shell goes on to say it survived. With `kill-container` the
/// shell and its sibling die too, within the agent's reaction time (the sleep is far
/// longer, so this does not time anything).
const SCRIPT: &str = "sleep 30 & unshare -U true; sleep 5; echo survived; kill %1";

#[test]
fn kill_container_ends_every_process_of_the_cgroup() {
    require_root();
    let profile = ProfileFile::new(
        "name: kc\nmode: enforce\nsyscalls:\n  - names: [unshare]\n    action: kill-container\n",
    );
    let out = exec(profile.path(), &["sh", "-c", SCRIPT]);
    assert_eq!(out.code, Some(137), "{out:?}");
    assert!(!out.stdout.contains("survived"), "{out:?}");
    let kills: Vec<_> = out
        .events
        .iter()
        .filter(|e| e["kind"] == "syscall")
        .collect();
    assert_eq!(kills.len(), 1, "{:#?}", out.events);
    assert_eq!(kills[0]["action"], "kill-container");
    assert_eq!(kills[0]["verdict"], "deny");
    assert_eq!(kills[0]["killed_cgroup"], kills[0]["cgroup"]);
    // `kill` alone: the caller dies, the rest goes on.
    let profile = ProfileFile::new(
        "name: k\nmode: enforce\nsyscalls:\n  - names: [unshare]\n    action: kill\n",
    );
    let out = exec(profile.path(), &["sh", "-c", SCRIPT]);
    assert!(out.stdout.contains("survived"), "{out:?}");
}

#[test]
fn kill_container_ends_a_docker_container_not_its_neighbours() {
    require_root();
    engines::docker();
    let profile = ProfileFile::new(
        "name: kc-docker\nmode: enforce\nselector:\n  runtime: docker\nsyscalls:\n  - set: escape\n    action: kill-container\n",
    );
    let agent = RunningAgent::start(profile.path());
    let neighbour = engines::DockerContainer::start(
        &engines::name("neighbour"),
        &["--network", "none"],
        &["sleep", "60"],
    );
    let out = engines::docker_run(
        &["--network", "none", "--security-opt", "seccomp=unconfined"],
        &["sh", "-c", SCRIPT],
    );
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    // The container next to it, under the same parent cgroup, runs on.
    let running = engines::run_ok(
        engines::DOCKER,
        &["inspect", "-f", "{{.State.Running}}", &neighbour.name],
    );
    assert_eq!(running, "true");
    let events = agent.stop_and_read();
    let kill = events
        .iter()
        .find(|e| e["kind"] == "syscall" && e["action"] == "kill-container")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert!(
        kill["killed_cgroup"]
            .as_str()
            .is_some_and(|c| c.starts_with("/docker/") && c.len() > "/docker/".len()),
        "{kill:#}"
    );
}
