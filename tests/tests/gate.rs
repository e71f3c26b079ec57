//! The gate, deterministically: a process that executes in a new cgroup below an
//! engine's parent (`/docker`), while a profile selects containers by name, is held
//! right after its exec until the agent knows the container. The tests play the
//! runtime themselves: they make the cgroup, run the process in it, and write (or do
//! not write) the container's OCI state in a state directory the agent is told about.

use std::{
    process::Command,
    sync::Mutex,
    time::{Duration, Instant},
};

use cgwarden_tests::{
    ProfileFile,
    agent::RunningAgent,
    cgroup::{TestCgroup, cgroup2_root},
    engines, require_root, unique, wait_for,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// The state letter of `/proc/<pid>/stat` (`T`: stopped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Makes sure Docker's cgroupfs parent `/docker` exists (dockerd makes it with its
/// first container).
fn docker_parent() {
    engines::docker();
    if !cgroup2_root().join("docker").exists() {
        let out = engines::docker_run(&["--network", "none"], &["true"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn start(victim: &str, state_dir: &std::path::Path) -> (ProfileFile, RunningAgent) {
    let profile = ProfileFile::new(&format!(
        "name: gated\nmode: enforce\nselector:\n  name: \"{victim}\"\negress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: kill\n"
    ));
    let root = state_dir.display().to_string();
    let agent = RunningAgent::start_with(profile.path(), &["--runc-root", &root]);
    (profile, agent)
}

#[test]
fn a_first_exec_waits_at_the_gate_until_its_container_is_known_then_runs_under_its_profile() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    docker_parent();
    let state = tempfile::tempdir().unwrap();
    let victim = unique("gated-victim");
    let (_profile, agent) = start(&victim, state.path());
    // Not a hex id: the path names no container; only the state will.
    let id = unique("cgw-gate");
    let cg = TestCgroup::create(&format!("docker/{id}"));
    let mut child = cg.spawn(Command::new("/bin/busybox").args(["unshare", "-U", "true"]));
    let pid = child.id();
    let held = wait_for(Duration::from_secs(3), || {
        (proc_state(pid) == Some('T')).then_some(())
    });
    assert!(
        held.is_some(),
        "the first exec was not held (state {:?})",
        proc_state(pid)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        proc_state(pid),
        Some('T'),
        "let go before the container was known"
    );
    // The "runtime" writes the container's state: the agent names it, gives it the
    // profile, and only then lets it go on.
    let bundle = state.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(
        bundle.join("config.json"),
        serde_json::json!({"hostname": victim, "process": {"user": {"uid": 0}}}).to_string(),
    )
    .unwrap();
    let dir = state.path().join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("state.json"),
        serde_json::json!({
            "id": id,
            "init_process_pid": pid,
            "cgroup_paths": {"": cg.path()},
            "config": {"labels": [format!("bundle={}", bundle.display())]}
        })
        .to_string(),
    )
    .unwrap();
    let status = wait_for(Duration::from_secs(5), || child.try_wait().ok().flatten())
        .expect("the held process never went on");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let events = agent.stop_and_read();
    let kills: Vec<_> = events.iter().filter(|e| e["kind"] == "syscall").collect();
    assert_eq!(kills.len(), 1, "{events:#?}");
    assert_eq!(kills[0]["syscall"], "unshare");
    assert_eq!(kills[0]["profile"], "gated");
    assert_eq!(kills[0]["container"]["name"], victim.as_str());
    assert_eq!(kills[0]["container"]["id"], id.as_str());
}

#[test]
fn a_cgroup_no_engine_describes_goes_on_unmonitored_after_the_bound() {
    require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    docker_parent();
    let state = tempfile::tempdir().unwrap();
    let (_profile, agent) = start(&unique("nobody"), state.path());
    let cg = TestCgroup::create(&format!("docker/{}", unique("cgw-orphan")));
    let started = Instant::now();
    let child = cg.spawn(
        Command::new("/bin/busybox")
            .args(["sh", "-c", "unshare -U true && echo ran"])
            .stdout(std::process::Stdio::piped()),
    );
    let pid = child.id();
    let held = wait_for(Duration::from_secs(3), || {
        (proc_state(pid) == Some('T')).then_some(())
    });
    assert!(held.is_some(), "the first exec was not held");
    let out = child.wait_with_output().unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "let go after {waited:?}, before the bound"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ran"),
        "an unmonitored cgroup's process must run untouched"
    );
    assert!(
        agent.log().contains("no engine describes it"),
        "{}",
        agent.log()
    );
    let events = agent.stop_and_read();
    assert!(events.iter().all(|e| e["kind"] != "syscall"), "{events:#?}");
}
