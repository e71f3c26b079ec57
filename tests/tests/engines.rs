//! cgwarden on real engines: Docker Engine, Podman and containerd containers start
//! under the escape set on `kill`, are named by what their engine says, and are
//! covered from their very first process.
//!
//! The tests of this file run one at a time: each starts an agent, and two agents'
//! gates would hold and release each other's containers.

use std::sync::Mutex;

use cgwarden_tests::{
    ProfileFile,
    agent::RunningAgent,
    engines::{self, ComposeProject, DockerContainer, PodmanContainer},
    require_root,
};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A profile that kills every escape attempt, selecting `selector` (YAML lines).
fn escape_kill(name: &str, selector: &str) -> ProfileFile {
    ProfileFile::new(&format!(
        "name: {name}\nmode: enforce\nselector:\n{selector}\negress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: kill\n"
    ))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The first event of syscall `name` among `calls`; the test fails without one.
fn first_call<'a>(calls: &[&'a Value], name: &str) -> &'a Value {
    calls
        .iter()
        .find(|e| e["syscall"] == name)
        .copied()
        .unwrap_or_else(|| panic!("no `{name}` event in {calls:#?}"))
}

#[test]
fn docker_containers_start_under_the_escape_set_on_kill() {
    require_root();
    let _serial = serial();
    engines::docker();
    let profile = escape_kill("docker-escape", "  runtime: docker");
    let agent = RunningAgent::start(profile.path());
    // Docker writes net.ipv4.ip_unprivileged_port_start and ping_group_range from runc's
    // init for every container: the configuration, not the container's doing.
    let out = engines::docker_run(&["--network", "none"], &["echo", "started"]);
    assert!(
        out.status.success() && stdout(&out).contains("started"),
        "a Docker container did not start under the escape set:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A sysctl write by the container's own process after start is judged as before.
    let out = engines::docker_run(
        &[
            "--network",
            "none",
            "--cap-add",
            "NET_ADMIN",
            "--security-opt",
            "systempaths=unconfined",
        ],
        &[
            "sh",
            "-c",
            "echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start && echo written || echo refused",
        ],
    );
    assert!(stdout(&out).contains("refused"), "{}", stdout(&out));
    let events = agent.stop_and_read();
    let sysctls = kind(&events, "sysctl");
    assert_eq!(
        sysctls.len(),
        1,
        "exactly the container's own write is reported, not the runtime's: {sysctls:#?}"
    );
    assert_eq!(sysctls[0]["verdict"], "deny");
    assert_eq!(sysctls[0]["name"], "net/ipv4/ip_unprivileged_port_start");
    assert_eq!(sysctls[0]["process"], "sh");
    assert_eq!(sysctls[0]["container"]["runtime"], "docker");
    // Docker's own start-up is no escape attempt.
    assert!(
        kind(&events, "syscall").is_empty(),
        "start-up reported as escape attempts: {events:#?}"
    );
}

#[test]
fn a_docker_container_is_named_and_covered_from_its_first_process() {
    require_root();
    let _serial = serial();
    engines::docker();
    let victim = engines::name("victim");
    let profile = escape_kill("by-name", &format!("  name: \"{victim}\""));
    let agent = RunningAgent::start(profile.path());
    // The attempt is the container's first command: the profile, chosen by a name the
    // kernel cannot see, must be in force before it runs.
    let c = DockerContainer::start(
        &victim,
        &[
            "--network",
            "none",
            "--security-opt",
            "seccomp=unconfined",
            "--label",
            "com.docker.compose.project=shop",
            "--label",
            "com.docker.compose.service=web",
        ],
        &["unshare", "-U", "true"],
    );
    assert_eq!(c.wait(), 137, "not killed: {}", c.logs());
    let id = c.id();
    // Another container, selected by nothing, runs the same command untouched.
    let other = DockerContainer::start(
        &engines::name("bystander"),
        &["--network", "none", "--security-opt", "seccomp=unconfined"],
        &["sh", "-c", "unshare -U true; echo bystander ran"],
    );
    assert_eq!(other.wait(), 0, "{}", other.logs());
    assert!(other.logs().contains("bystander ran"));
    let events = agent.stop_and_read();
    let kills = kind(&events, "syscall");
    assert_eq!(kills.len(), 1, "{kills:#?}");
    let e = kills[0];
    assert_eq!(e["syscall"], "unshare");
    assert_eq!(e["action"], "kill");
    assert_eq!(e["profile"], "by-name");
    assert_eq!(e["container"]["runtime"], "docker");
    assert_eq!(e["container"]["id"], id.as_str(), "the full id");
    assert_eq!(e["container"]["name"], victim.as_str());
    assert_eq!(e["container"]["image"], engines::docker_image());
    assert_eq!(e["compose"]["project"], "shop");
    assert_eq!(e["compose"]["service"], "web");
}

#[test]
fn podman_containers_start_named_and_covered_from_their_first_process() {
    require_root();
    let _serial = serial();
    let victim = engines::name("pvictim");
    // Two profiles: the named container's, and every other Podman container's. The
    // first in name order that selects a container wins.
    let dir = tempfile::tempdir().unwrap();
    let kill = "egress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: kill\n";
    std::fs::write(
        dir.path().join("a-named.yaml"),
        format!(
            "name: a-named\nmode: enforce\nselector:\n  runtime: podman\n  name: \"{victim}\"\n  image: \"localhost/cgwarden-test/*\"\n{kill}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b-podman.yaml"),
        format!("name: b-podman\nmode: enforce\nselector:\n  runtime: podman\n{kill}"),
    )
    .unwrap();
    let image = engines::podman_image().to_owned();
    let agent = RunningAgent::start(dir.path());
    let started = PodmanContainer::start(&engines::name("pstart"), &[], &["echo", "started"]);
    assert_eq!(started.wait(), 0, "{}", started.logs());
    assert!(started.logs().contains("started"));
    let c = PodmanContainer::start(
        &victim,
        &["--security-opt", "seccomp=unconfined"],
        &["unshare", "-U", "true"],
    );
    assert_eq!(c.wait(), 137, "not killed: {}", c.logs());
    let id = c.id();
    let events = agent.stop_and_read();
    assert!(
        kind(&events, "sysctl").is_empty(),
        "the runtime's set-up reported: {events:#?}"
    );
    let kills = kind(&events, "syscall");
    assert_eq!(kills.len(), 1, "{kills:#?}");
    let e = kills[0];
    assert_eq!(e["profile"], "a-named", "{e:#}");
    assert_eq!(e["container"]["runtime"], "podman");
    assert_eq!(e["container"]["id"], id.as_str());
    assert_eq!(e["container"]["name"], victim.as_str());
    assert_eq!(e["container"]["image"], image.as_str());
}

#[test]
fn containerd_pods_are_named_from_cri_annotations_and_covered_from_their_first_process() {
    require_root();
    let _serial = serial();
    let ns = "k8s.io";
    let image = engines::containerd_image(ns);
    let pod = engines::name("pod");
    let profile = escape_kill(
        "by-pod",
        &format!("  k8s:\n    namespace: shop\n    pod: \"{pod}\""),
    );
    let agent = RunningAgent::start(profile.path());
    // A containerd id is no hex id: nothing in the cgroup path (/k8s.io/<id>) says
    // which container it is; only its state and annotations do.
    let id = engines::name("ctr");
    let _guard = engines::CtrContainer::guard(ns, &id);
    let sandbox_ns = "io.kubernetes.cri.sandbox-namespace=shop".to_owned();
    let sandbox_name = format!("io.kubernetes.cri.sandbox-name={pod}");
    let out = engines::ctr(
        ns,
        &[
            "run",
            "--rm",
            "--seccomp=false",
            "--annotation",
            &sandbox_ns,
            "--annotation",
            &sandbox_name,
            "--annotation",
            "io.kubernetes.cri.container-name=web",
            &image,
            &id,
            "unshare",
            "-U",
            "true",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(137),
        "not killed: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    // Whether the agent read the state before the first exec or held it at the gate,
    // the profile was in force before the command ran (tests/gate.rs holds one for
    // certain).
    let (_, status, _) = agent.client("status -o json");
    let status: Value = serde_json::from_str(&status).expect("status JSON");
    assert!(
        status["gate"]["parents"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "/k8s.io")),
        "{status:#}"
    );
    let events = agent.stop_and_read();
    let kills = kind(&events, "syscall");
    assert_eq!(kills.len(), 1, "{kills:#?}");
    let e = kills[0];
    assert_eq!(e["container"]["runtime"], "containerd");
    assert_eq!(e["container"]["id"], id.as_str());
    assert_eq!(e["container"]["name"], "web");
    assert_eq!(e["k8s"]["namespace"], "shop");
    assert_eq!(e["k8s"]["pod"], pod.as_str());
    assert_eq!(e["k8s"]["container"], "web");
}

/// The seed's hardened Compose service: uid 1000, read-only root, a noexec tmpfs,
/// `cap_drop: [ALL]`, no-new-privileges, a port on host loopback only, an internal
/// network on a documentation subnet and a healthcheck.

#[test]
fn the_hardened_compose_service_runs_clean_under_its_generated_profile() {
    require_root();
    let _serial = serial();
    let project = ComposeProject::new(engines::HARDENED_COMPOSE);
    let out = std::process::Command::new(cgwarden_tests::cgwarden())
        .args(["profile", "from-compose"])
        .arg(project.file())
        .arg("web")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = stdout(&out);
    assert!(
        yaml.contains(&format!("project: \"{}\"", project.project)),
        "the selector names the project as Compose does:\n{yaml}"
    );
    let profile = ProfileFile::new(&yaml.replace("mode: audit", "mode: enforce"));
    let agent = RunningAgent::start(profile.path());
    let id = project.up("web");
    engines::wait_healthy(&id);
    // Its own workload: pages served to itself, and more healthchecks.
    engines::fetch_own_pages(&|cmd| engines::docker_exec(&id, cmd));
    assert_eq!(engines::docker_health(&id), "healthy");
    // The escape attempt, under Docker's default seccomp profile (which refuses it).
    let attempt = engines::docker_exec(&id, &["unshare", "-U", "true"]);
    assert_eq!(attempt.status.code(), Some(137), "not killed: {attempt:?}");
    let events = agent.stop_and_read_all();
    // Each container's posture is reported once at discovery (tests/tests/posture.rs).
    let postures = kind(&events, "posture").len();
    assert_eq!(postures, 1, "{events:#?}");
    let events: Vec<&Value> = events.iter().filter(|e| e["kind"] != "posture").collect();
    assert_eq!(
        events.len(),
        1,
        "zero denials and deviations besides the attempt: {events:#?}"
    );
    let e = &events[0];
    assert_eq!(e["kind"], "syscall");
    assert_eq!(e["syscall"], "unshare");
    assert_eq!(e["action"], "kill");
    assert_eq!(e["container"]["id"], id.as_str());
    assert_eq!(
        e["container"]["name"],
        format!("{}_web_1", project.project).as_str()
    );
    assert_eq!(e["compose"]["project"], project.project.as_str());
    assert_eq!(e["compose"]["service"], "web");
    // Docker's seccomp profile refused it before it ran; the attempt is still the
    // signal, and kill still kills.
    assert_eq!(e["result"]["seccomp"], true, "{e:#}");
    assert_eq!(e["result"]["errno"], "EPERM", "{e:#}");
    assert_eq!(e["args"]["flags"], serde_json::json!(["CLONE_NEWUSER"]));
}

#[test]
fn attempts_docker_seccomp_refuses_are_reported_with_their_arguments_and_result() {
    require_root();
    let _serial = serial();
    engines::docker();
    let profile = ProfileFile::new(
        "name: refused\nmode: enforce\nselector:\n  runtime: docker\negress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: report\n",
    );
    let agent = RunningAgent::start(profile.path());
    // Docker's default seccomp profile refuses each of these for a container without
    // CAP_SYS_ADMIN: none of them ever reaches `sys_enter`.
    let out = engines::docker_run(
        &["--network", "none"],
        &[
            "sh",
            "-c",
            "unshare -U true; unshare -m true; mount -t tmpfs none /mnt; echo finished",
        ],
    );
    assert!(stdout(&out).contains("finished"), "{out:?}");
    let events = agent.stop_and_read();
    let calls = kind(&events, "syscall");
    let find = |name: &str| first_call(&calls, name);
    let unshare: Vec<_> = calls.iter().filter(|e| e["syscall"] == "unshare").collect();
    assert_eq!(unshare.len(), 2, "{calls:#?}");
    assert_eq!(
        unshare[0]["args"]["flags"],
        serde_json::json!(["CLONE_NEWUSER"])
    );
    assert_eq!(
        unshare[1]["args"]["flags"],
        serde_json::json!(["CLONE_NEWNS"])
    );
    let mount = find("mount");
    // What explains the attempt: the file system and the target.
    assert_eq!(mount["args"]["fstype"], "tmpfs", "{mount:#}");
    assert_eq!(mount["path"], "/mnt", "{mount:#}");
    for e in unshare.iter().map(|e| **e).chain([mount]) {
        assert_eq!(e["verdict"], "allow", "{e:#}");
        assert_eq!(e["result"]["seccomp"], true, "{e:#}");
        assert_eq!(e["result"]["errno"], "EPERM", "{e:#}");
        assert_eq!(e["container"]["runtime"], "docker");
    }
}

#[test]
fn the_release_agent_escape_in_a_docker_container_with_cap_sys_admin_is_seen_step_by_step() {
    require_root();
    let _serial = serial();
    engines::docker();
    // Privileged in effect (`--privileged` itself cannot start on this host: its
    // bounding set lacks CAP_SYS_RESOURCE): CAP_SYS_ADMIN, no seccomp, no AppArmor.
    let privileged = [
        "--network",
        "none",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
    ];
    // The escape's steps: a cgroup v1 hierarchy of its own (named, so no host
    // controller is touched), its release_agent reached through a symlink whose name
    // says nothing, and a new namespace. Nothing is written to the release_agent.
    let hierarchy = engines::name("v1");
    let script = format!(
        "mkdir /tmp/c && mount -t cgroup -o none,name={hierarchy} cgroup /tmp/c && \
         ln -s /tmp/c/release_agent /tmp/notes && : > /tmp/notes && echo opened; \
         unshare -m true && echo unshared; echo finished"
    );
    let profile = ProfileFile::new(
        "name: privileged\nmode: enforce\nselector:\n  runtime: docker\negress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: report\n",
    );
    let agent = RunningAgent::start(profile.path());
    let out = engines::docker_run(&privileged, &["sh", "-c", &script]);
    assert_eq!(
        stdout(&out),
        "opened\nunshared\nfinished\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = agent.stop_and_read();
    let calls = kind(&events, "syscall");
    let find = |name: &str| first_call(&calls, name);
    let mount = find("mount");
    assert_eq!(mount["args"]["fstype"], "cgroup", "{mount:#}");
    assert_eq!(mount["path"], "/tmp/c", "{mount:#}");
    let open = calls
        .iter()
        .find(|e| e["path"] == "/tmp/notes")
        .unwrap_or_else(|| panic!("the release_agent open is not reported: {calls:#?}"));
    assert_eq!(
        open["reached"],
        serde_json::json!({"by": "kernel", "fs": "cgroup", "name": "release_agent"})
    );
    assert_eq!(open["result"]["ret"].as_i64().map(|r| r >= 0), Some(true));
    let unshare = find("unshare");
    assert_eq!(unshare["args"]["flags"], serde_json::json!(["CLONE_NEWNS"]));
    assert_eq!(
        unshare["result"],
        Value::Null,
        "judged at entry: {unshare:#}"
    );
    for e in [mount, open, unshare] {
        assert_eq!(e["container"]["runtime"], "docker", "{e:#}");
        assert_eq!(e["verdict"], "allow", "{e:#}");
    }
    // Under kill, each step's process dies in it (mount, unshare: children of the
    // shell), so nothing that depends on them runs.
    let profile = escape_kill("privileged-kill", "  runtime: docker");
    let agent = RunningAgent::start(profile.path());
    let out = engines::docker_run(&privileged, &["sh", "-c", &script]);
    assert_eq!(stdout(&out), "finished\n", "{out:?}");
    let events = agent.stop_and_read();
    let killed: Vec<&str> = kind(&events, "syscall")
        .iter()
        .filter(|e| e["verdict"] == "deny")
        .filter_map(|e| e["syscall"].as_str())
        .collect();
    assert_eq!(killed, ["mount", "unshare"], "{events:#?}");
}

#[test]
fn a_refused_write_through_a_symlink_in_docker_is_resolved_in_the_containers_root() {
    require_root();
    let _serial = serial();
    engines::docker();
    // Root in a default Docker container: /proc/sys is read-only, so the write-open
    // fails (EROFS) and reaches no file; the path written names nothing. The agent
    // resolves the symlink in the container's own root: core_pattern is an escape
    // file, the hostname sysctl is not.
    let script = "ln -s /proc/sys/kernel/core_pattern /tmp/notes; \
                  ln -s /proc/sys/kernel/hostname /tmp/name; \
                  true > /tmp/notes; true > /tmp/name; sleep 1; echo finished";
    let profile = ProfileFile::new(
        "name: refused\nmode: enforce\nselector:\n  runtime: docker\negress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: kill\n",
    );
    let agent = RunningAgent::start(profile.path());
    let out = engines::docker_run(&["--network", "none"], &["sh", "-c", script]);
    // Never killed for it: the kernel could not decide.
    assert!(stdout(&out).contains("finished"), "{out:?}");
    let events = agent.stop_and_read();
    let calls = kind(&events, "syscall");
    let notes: Vec<_> = calls.iter().filter(|e| e["path"] == "/tmp/notes").collect();
    assert_eq!(notes.len(), 1, "{calls:#?}");
    let e = notes[0];
    assert_eq!(
        e["reached"],
        serde_json::json!({"by": "agent", "fs": "proc", "name": "core_pattern", "path": "/proc/sys/kernel/core_pattern"}),
        "{e:#}"
    );
    assert_eq!(e["result"]["errno"], "EROFS", "{e:#}");
    assert_eq!(e["action"], "report", "{e:#}");
    assert_eq!(e["container"]["runtime"], "docker");
    assert!(
        !calls.iter().any(|e| e["path"] == "/tmp/name"),
        "a refused write to an ordinary sysctl is no attempt: {calls:#?}"
    );
}

#[test]
fn an_escape_path_open_seccomp_refuses_is_judged_by_its_path_and_still_killed() {
    require_root();
    let _serial = serial();
    engines::docker();
    // A seccomp profile that refuses a shell's `>` (an open with O_WRONLY|O_CREAT|
    // O_TRUNC) with EPERM before the kernel enters it: no entry program would ever see
    // it. (runc opens its exec fifo for writing after its seccomp filter is in place, so
    // not every write-open can be refused.) The attempt on core_pattern is judged at
    // exit, by its path, and killed; an ordinary refused write-open is not an attempt.
    let dir = tempfile::tempdir().unwrap();
    let seccomp = dir.path().join("seccomp.json");
    // O_ACCMODE | O_CREAT | O_TRUNC, and O_WRONLY | O_CREAT | O_TRUNC.
    let (mask, wanted) = (0o1103, 0o1101);
    let refuse = |name: &str, flags: u32| {
        serde_json::json!({
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "args": [{"index": flags, "value": mask, "valueTwo": wanted, "op": "SCMP_CMP_MASKED_EQ"}],
        })
    };
    let profile_json = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [refuse("openat", 2), refuse("open", 1)],
    });
    std::fs::write(&seccomp, profile_json.to_string()).unwrap();
    let option = format!("seccomp={}", seccomp.display());
    let profile = ProfileFile::new(
        "name: refused\nmode: enforce\nselector:\n  runtime: docker\negress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: kill\n",
    );
    let agent = RunningAgent::start(profile.path());
    let ordinary = engines::docker_run(
        &["--network", "none", "--security-opt", &option],
        // The agent resolves the refused path in the container's root while it runs.
        &["sh", "-c", "true > /tmp/notes; sleep 1; echo finished $?"],
    );
    assert!(
        stdout(&ordinary).contains("finished"),
        "an ordinary refused write is no attempt: {ordinary:?}"
    );
    let attempt = engines::docker_run(
        &["--network", "none", "--security-opt", &option],
        &[
            "sh",
            "-c",
            "true > /proc/sys/kernel/core_pattern; echo survived",
        ],
    );
    assert_eq!(attempt.status.code(), Some(137), "not killed: {attempt:?}");
    assert!(!stdout(&attempt).contains("survived"), "{attempt:?}");
    let events = agent.stop_and_read();
    let calls = kind(&events, "syscall");
    let attempts: Vec<_> = calls
        .iter()
        .filter(|e| e["path"] == "/proc/sys/kernel/core_pattern")
        .collect();
    assert_eq!(attempts.len(), 1, "{calls:#?}");
    let e = attempts[0];
    assert!(e["syscall"] == "openat" || e["syscall"] == "open", "{e:#}");
    assert_eq!(e["verdict"], "deny", "{e:#}");
    assert_eq!(e["action"], "kill", "{e:#}");
    // Refused by seccomp (EPERM), not by the read-only /proc/sys mount (EROFS).
    assert_eq!(e["result"]["errno"], "EPERM", "{e:#}");
    assert_eq!(e["container"]["runtime"], "docker");
    assert!(
        !calls.iter().any(|e| e["path"] == "/tmp/notes"),
        "{calls:#?}"
    );
}

#[test]
fn an_executable_handle_through_a_symlink_reopened_for_writing_in_docker_is_killed() {
    require_root();
    let _serial = serial();
    engines::docker();
    // CVE-2019-5736's second step, root in a default Docker container (Docker's seccomp
    // profile in force): a handle on the running shell's own executable, taken through
    // a symlink that names no escape path, reopened for writing through /proc/self/fd.
    // The kernel refuses the reopen (ETXTBSY); the subshell that tries it is killed.
    let script = "ln -s /proc/self/exe /tmp/innocent; exec 3</tmp/innocent; \
                  (echo x > /proc/self/fd/3; echo reopened); echo \"status $?\"";
    let profile = ProfileFile::new(
        "name: reopen\nmode: enforce\nselector:\n  runtime: docker\negress:\n  default: allow\nsyscalls:\n  - set: escape\n    action: kill\n",
    );
    let agent = RunningAgent::start(profile.path());
    let out = engines::docker_run(&["--network", "none"], &["sh", "-c", script]);
    let said = stdout(&out);
    assert!(said.contains("status 137"), "{out:?}");
    assert!(!said.contains("reopened"), "{out:?}");
    let events = agent.stop_and_read();
    let calls = kind(&events, "syscall");
    let reopen: Vec<_> = calls
        .iter()
        .filter(|e| e["path"] == "/proc/self/fd/3")
        .collect();
    assert_eq!(reopen.len(), 1, "{calls:#?}");
    let e = reopen[0];
    assert_eq!(e["result"]["errno"], "ETXTBSY", "{e:#}");
    assert_eq!(e["verdict"], "deny", "{e:#}");
    assert_eq!(e["container"]["runtime"], "docker", "{e:#}");
    // Taking the handle (a read-only open through the symlink) is no attempt.
    assert!(
        !calls.iter().any(|e| e["path"] == "/tmp/innocent"),
        "{calls:#?}"
    );
}
