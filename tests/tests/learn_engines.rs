//! Learn mode on real engines: `cgwarden learn --select` learns a container from its
//! first process, as a selector picks it, and writes a profile and a seccomp profile
//! that the engines run: the hardened Compose service restarted with both stays
//! healthy with zero denials, and an `unshare` inside is refused by the seccomp filter
//! and killed and reported by cgwarden. The same under Podman, whose learned filter must
//! not hold runc's own set-up calls; several containers picked by one selector are
//! learned into files of their own, the seccomp ones where kubelet looks; and learning
//! refuses to run beside an agent.
//!
//! The tests of this file run one at a time: each loads a learner's or an agent's gate.

use std::{
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use cgwarden_tests::{
    ProfileFile,
    agent::RunningAgent,
    engines::{self, ComposeProject, PodmanContainer},
    require_root, wait_for,
};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `cgwarden learn --select` run in the background; killed on drop.
struct Learner {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Learner {
    /// Starts it and waits until it says it is waiting for the container.
    fn start(args: &[&str], dir: &std::path::Path) -> Self {
        let stderr = dir.join("learn.stderr");
        let child = Command::new(cgwarden_tests::cgwarden())
            .arg("learn")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let learner = Self { child, stderr };
        let ready = wait_for(Duration::from_secs(20), || {
            learner.log().contains("waiting for").then_some(())
        });
        assert!(
            ready.is_some(),
            "the learner did not start: {}",
            learner.log()
        );
        learner
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for it to end by itself; returns its exit code.
    fn wait(mut self, timeout: Duration) -> (Option<i32>, String) {
        let status = wait_for(timeout, || self.child.try_wait().ok().flatten());
        let log = self.log();
        assert!(
            status.is_some(),
            "the learner did not stop by itself: {log}"
        );
        (status.and_then(|s| s.code()), log)
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_hardened_compose_service_learned_from_its_first_process_runs_under_its_seccomp_profile() {
    require_root();
    let _serial = serial();
    // The seccomp file must outlive the project: its `down` reads the compose file.
    let dir = tempfile::tempdir().unwrap();
    let project = ComposeProject::new(engines::HARDENED_COMPOSE);
    let (profile_out, seccomp_out) = (dir.path().join("web.yaml"), dir.path().join("web.json"));
    let selector = format!(
        "{{compose: {{project: {}, service: web}}}}",
        project.project
    );
    let learner = Learner::start(
        &[
            "--select",
            &selector,
            "--duration",
            "6s",
            "--name",
            "web",
            "--out",
            profile_out.to_str().unwrap(),
            "--seccomp",
            seccomp_out.to_str().unwrap(),
        ],
        dir.path(),
    );
    let id = project.up("web");
    engines::wait_healthy(&id);
    let exec = |cmd: &[&str]| engines::docker_exec(&id, cmd);
    engines::fetch_own_pages(&exec);
    let (code, log) = learner.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!(
            "learned from docker container {}_web_1",
            project.project
        )),
        "{log}"
    );
    let learned = std::fs::read_to_string(&profile_out).unwrap();
    assert!(
        learned.contains(&format!(
            "selector: {{\"compose\":{{\"project\":\"{}\",\"service\":\"web\"}}}}",
            project.project
        )),
        "the profile selects what --select selected:\n{learned}"
    );
    assert!(learned.contains("user: 1000"), "{learned}");
    let seccomp: Value =
        serde_json::from_str(&std::fs::read_to_string(&seccomp_out).unwrap()).unwrap();
    let allowed: Vec<&str> = seccomp["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        allowed.contains(&"execve") && !allowed.contains(&"unshare"),
        "{allowed:?}"
    );

    // The same service, restarted with its seccomp profile and the learned profile
    // in enforce mode.
    let down = project.compose(&["down", "-t", "1"]);
    assert!(down.status.success());
    let file = std::fs::read_to_string(project.file()).unwrap();
    std::fs::write(
        project.file(),
        file.replace(
            "security_opt: [no-new-privileges:true]",
            &format!(
                "security_opt: [\"no-new-privileges:true\", \"seccomp={}\"]",
                seccomp_out.display()
            ),
        ),
    )
    .unwrap();
    let profile = ProfileFile::new(&learned);
    let agent = RunningAgent::start(profile.path());
    let id = project.up("web");
    engines::wait_healthy(&id);
    let exec = |cmd: &[&str]| engines::docker_exec(&id, cmd);
    engines::fetch_own_pages(&exec);
    assert_eq!(engines::docker_health(&id), "healthy");
    let attempt = exec(&["unshare", "-U", "true"]);
    assert_eq!(attempt.status.code(), Some(137), "not killed: {attempt:?}");
    let events = agent.stop_and_read();
    let calls: Vec<&Value> = events.iter().filter(|e| e["kind"] == "syscall").collect();
    assert_eq!(calls.len(), 1, "{events:#?}");
    assert_eq!(calls[0]["syscall"], "unshare");
    assert_eq!(calls[0]["action"], "kill");
    assert_eq!(calls[0]["result"]["seccomp"], true, "{:#}", calls[0]);
    assert_eq!(calls[0]["profile"], "web");
    assert_eq!(
        events.len(),
        1,
        "zero denials and deviations besides the attempt: {events:#?}"
    );
}

#[test]
fn a_podman_container_learned_from_its_first_process_runs_under_its_seccomp_profile() {
    require_root();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (profile_out, seccomp_out) = (dir.path().join("p.yaml"), dir.path().join("p.json"));
    let name = engines::name("plearn");
    let learner = Learner::start(
        &[
            "--select",
            &format!("name: {name}"),
            "--duration",
            "4s",
            "--out",
            profile_out.to_str().unwrap(),
            "--seccomp",
            seccomp_out.to_str().unwrap(),
        ],
        dir.path(),
    );
    let workload = ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"];
    let exec = |cmd: &[&str]| engines::podman_exec(&name, cmd);
    let c = PodmanContainer::start(&name, &["--user", "1000:1000"], &workload);
    std::thread::sleep(Duration::from_millis(500));
    engines::fetch_own_pages(&exec);
    let (code, log) = learner.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!("learned from podman container {name}")),
        "{log}"
    );
    // runc's own set-up before the entry point (mount, pivot_root, sethostname,
    // unshare) is not the workload's: none of it is in the learned filter.
    let seccomp: Value =
        serde_json::from_str(&std::fs::read_to_string(&seccomp_out).unwrap()).unwrap();
    let allowed: Vec<&str> = seccomp["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for setup in ["mount", "pivot_root", "sethostname", "unshare", "umount2"] {
        assert!(!allowed.contains(&setup), "{setup} learned: {allowed:?}");
    }
    drop(c);
    // The same container under its learned filter: it serves, and unshare fails.
    let seccomp = format!("seccomp={}", seccomp_out.display());
    let c = PodmanContainer::start(
        &name,
        &["--user", "1000:1000", "--security-opt", &seccomp],
        &workload,
    );
    std::thread::sleep(Duration::from_millis(500));
    engines::fetch_own_pages(&exec);
    let attempt = exec(&["unshare", "-U", "true"]);
    assert_ne!(
        attempt.status.code(),
        Some(0),
        "unshare was allowed: {attempt:?}"
    );
    let err = String::from_utf8_lossy(&attempt.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    drop(c);
}

/// The allowed syscall names of a seccomp profile file.
fn allowed_syscalls(file: &std::path::Path) -> Vec<String> {
    let seccomp: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    seccomp["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_container_a_selector_picks_is_learned_into_files_of_its_own_for_kubelet() {
    require_root();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    let profile_out = dir.path().join("p.yaml");
    let prefix = engines::name("each");
    let (server, sleeper) = (format!("{prefix}-server"), format!("{prefix}-sleeper"));
    let learner = Learner::start(
        &[
            "--select",
            &format!("name: \"{prefix}-*\""),
            "--each",
            "--duration",
            "5s",
            "--out",
            profile_out.to_str().unwrap(),
            "--seccomp-kubelet",
            "shop",
            "--kubelet-root",
            kubelet.to_str().unwrap(),
        ],
        dir.path(),
    );
    let exec = |cmd: &[&str]| engines::podman_exec(&server, cmd);
    let workload = ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"];
    let a = PodmanContainer::start(&server, &["--user", "1000:1000"], &workload);
    let b = PodmanContainer::start(&sleeper, &["--user", "1000:1000"], &["sleep", "60"]);
    std::thread::sleep(Duration::from_millis(500));
    engines::fetch_own_pages(&exec);
    let (code, log) = learner.wait(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{log}");
    drop((a, b));
    for name in [&server, &sleeper] {
        // Files of its own, a profile selecting it by name, and kubelet's place.
        let profile = dir.path().join(format!("p-{name}.yaml"));
        let text = std::fs::read_to_string(&profile)
            .unwrap_or_else(|e| panic!("{}: {e}; {log}", profile.display()));
        assert!(
            text.contains(&format!("selector: {{\"name\":\"{name}\"}}")),
            "{text}"
        );
        assert!(text.contains(&format!("name: learned-{name}")), "{text}");
        let relative = format!("profiles/shop-{name}.json");
        assert!(
            log.contains(&format!("localhostProfile: {relative}")),
            "{log}"
        );
        assert!(kubelet.join("seccomp").join(&relative).exists(), "{log}");
    }
    // What one container did is in its own files only.
    let served = allowed_syscalls(&kubelet.join(format!("seccomp/profiles/shop-{server}.json")));
    let slept = allowed_syscalls(&kubelet.join(format!("seccomp/profiles/shop-{sleeper}.json")));
    for call in ["bind", "listen"] {
        assert!(served.iter().any(|s| s == call), "{call}: {served:?}");
        assert!(!slept.iter().any(|s| s == call), "{call}: {slept:?}");
    }
    let server_profile =
        std::fs::read_to_string(dir.path().join(format!("p-{server}.yaml"))).unwrap();
    let sleeper_profile =
        std::fs::read_to_string(dir.path().join(format!("p-{sleeper}.yaml"))).unwrap();
    assert!(server_profile.contains("ports: [8080]"), "{server_profile}");
    assert!(server_profile.contains("/bin/wget"), "{server_profile}");
    assert!(sleeper_profile.contains("allow: []"), "{sleeper_profile}");
    assert!(!sleeper_profile.contains("/bin/wget"), "{sleeper_profile}");
    // The sleeper's own filter runs it; the server's own filter serves.
    let seccomp = format!(
        "seccomp={}",
        kubelet
            .join(format!("seccomp/profiles/shop-{server}.json"))
            .display()
    );
    let a = PodmanContainer::start(
        &server,
        &["--user", "1000:1000", "--security-opt", &seccomp],
        &workload,
    );
    std::thread::sleep(Duration::from_millis(500));
    engines::fetch_own_pages(&exec);
    drop(a);
}

#[test]
fn learning_refuses_to_run_beside_an_agent() {
    require_root();
    let _serial = serial();
    let profile = ProfileFile::new(
        "name: nothing\nmode: audit\nselector:\n  cgroup: \"/cgwarden-selects-nothing\"\negress:\n  default: allow\n",
    );
    let agent = RunningAgent::start(profile.path());
    let out = Command::new(cgwarden_tests::cgwarden())
        .args(["learn", "--select", "name: web", "--control"])
        .arg(agent.control())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a `cgwarden run` agent is running"), "{err}");
    // A selector that is not one is refused before anything is loaded.
    let out = Command::new(cgwarden_tests::cgwarden())
        .args([
            "learn",
            "--select",
            "colour: blue",
            "--control",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--select") && err.contains("colour"), "{err}");
}
