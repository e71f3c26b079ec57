//! The hardened runtime profile: loopback-only binds, no raw sockets, the expected uid.

use cgwarden_tests::{ProfileFile, exec, netprobe, require_root};

fn hardened(mode: &str) -> ProfileFile {
    ProfileFile::new(&format!(
        "name: hardened\nmode: {mode}\nruntime:\n  user: 1000\n  binds: loopback\n  raw_sockets: deny\n"
    ))
}

const BINDS: &str = r#"
import socket
for a in ('127.0.0.1', '0.0.0.0'):
    s = socket.socket()
    try:
        s.bind((a, 28080)); print('ok')
    except OSError as e:
        print('error', e.errno)
    s.close()
s = socket.socket(socket.AF_INET6); s.bind(('::1', 28081)); print('ok')
s = socket.socket(); s.bind(('0.0.0.0', 0)); print('ok')
"#;

#[test]
fn binds_are_loopback_only_and_raw_sockets_are_refused() {
    require_root();
    let p = hardened("enforce");
    let out = exec(p.path(), &["python3", "-c", BINDS]);
    // 127.0.0.1 ok, 0.0.0.0:28080 refused, ::1 ok, 0.0.0.0:0 (no listening port) ok.
    assert_eq!(out.stdout, "ok\nerror 1\nok\nok\n", "{out:?}");
    let binds: Vec<_> = out.events.iter().filter(|e| e["kind"] == "bind").collect();
    assert_eq!(binds.len(), 1, "{binds:?}");
    assert_eq!(binds[0]["dst"], "0.0.0.0");
    assert_eq!(binds[0]["port"], 28080);
    assert_eq!(binds[0]["verdict"], "deny");

    let probe = netprobe();
    let out = exec(
        p.path(),
        &[probe.to_str().unwrap(), "icmp-raw", "127.0.0.1:0"],
    );
    assert_eq!(out.stdout, "error 1\n", "{out:?}");
    let raw: Vec<_> = out
        .events
        .iter()
        .filter(|e| e["deviation"] == "raw_socket")
        .collect();
    assert_eq!(raw.len(), 1, "{:?}", out.events);
    assert_eq!(raw[0]["verdict"], "deny");
}

#[test]
fn audit_mode_reports_binds_and_raw_sockets_without_refusing() {
    require_root();
    let p = hardened("audit");
    let out = exec(p.path(), &["python3", "-c", BINDS]);
    assert_eq!(out.stdout, "ok\nok\nok\nok\n", "{out:?}");
    assert!(
        out.events
            .iter()
            .any(|e| e["kind"] == "bind" && e["verdict"] == "audit")
    );
}

#[test]
fn a_process_running_as_root_is_a_deviation_reported_once_per_program() {
    require_root();
    let p = hardened("enforce");
    let out = exec(p.path(), &["sh", "-c", "/bin/true; /bin/true; /bin/true"]);
    let uid: Vec<_> = out
        .events
        .iter()
        .filter(|e| e["deviation"] == "uid")
        .collect();
    let trues = uid
        .iter()
        .filter(|e| e["exe"] == "/bin/true" || e["exe"] == "/usr/bin/true")
        .count();
    assert_eq!(trues, 1, "{uid:?}");
    assert!(
        uid.iter()
            .all(|e| e["uid"] == 0 && e["detail"].as_str().unwrap().contains("uid 1000"))
    );
    // The expected uid produces nothing.
    let p = ProfileFile::new("name: rootok\nmode: enforce\nruntime:\n  user: 0\n");
    let out = exec(p.path(), &["sh", "-c", "/bin/true"]);
    assert!(
        out.events.iter().all(|e| e["kind"] != "deviation"),
        "{:?}",
        out.events
    );
}

/// Starts an agent on `profile` (selector `/<base>/*`) and runs one runc container in
/// `/<base>/<id>` with `user` as its uid; returns the container's stdout and the events.
fn in_container(profile_body: &str, uid: u32, script: &str) -> (String, Vec<serde_json::Value>) {
    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, container::Container, unique};
    let base = unique("cgwarden-test-rt");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: ctr\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\n{profile_body}"
    ));
    let agent = RunningAgent::start(profile.path());
    let id = unique("cgw");
    let container = Container::new(&id, &format!("/{base}/{id}"), &["sh", "-c", script], |c| {
        c["process"]["user"] = serde_json::json!({ "uid": uid, "gid": uid });
    });
    let out = container.run();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        agent.events(),
    )
}

#[test]
fn a_new_container_is_covered_from_its_first_process() {
    require_root();
    // No pause: the attempt is the container's very first command.
    let (stdout, events) = in_container(
        "syscalls:\n  - set: escape\n    action: kill\n",
        0,
        "/bin/busybox unshare -U true; echo unshare=$?",
    );
    assert_eq!(stdout.trim(), "unshare=137", "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["syscall"] == "unshare" && e["verdict"] == "deny")
    );
}

#[test]
fn a_hardened_container_has_no_deviation_and_a_root_one_does() {
    require_root();
    let body = "runtime:\n  user: 1000\n  binds: loopback\n  raw_sockets: deny\nsyscalls:\n  - set: escape\n    action: kill\n";
    let (stdout, events) = in_container(body, 1000, "echo hello");
    assert_eq!(stdout.trim(), "hello");
    let deviations: Vec<_> = events.iter().filter(|e| e["kind"] == "deviation").collect();
    assert!(deviations.is_empty(), "{deviations:?}");
    let (stdout, events) = in_container(body, 0, "echo hello; sleep 0.5");
    assert_eq!(stdout.trim(), "hello");
    let uid = events
        .iter()
        .find(|e| e["deviation"] == "uid")
        .unwrap_or_else(|| panic!("no uid deviation: {events:?}"));
    assert_eq!(uid["uid"], 0);
    assert_eq!(uid["profile"], "ctr");
    assert!(uid["cgroup_id"].as_u64().unwrap() > 1, "{uid}");
}

#[test]
fn profiles_from_oci_and_compose_pass_check() {
    require_root();
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    // runc's own default spec, hardened the way the gateway runs.
    let status = Command::new("runc")
        .arg("spec")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    config["process"]["capabilities"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let compose = dir.path().join("compose.yml");
    std::fs::write(
        &compose,
        "services:\n  gateway:\n    user: \"1000\"\n    cap_drop: [ALL]\n    read_only: true\n    security_opt: [\"no-new-privileges:true\"]\n    ports: [\"127.0.0.1:8443:8443\"]\n",
    )
    .unwrap();
    for (args, file) in [
        (
            vec![
                "profile",
                "from-oci",
                path.to_str().unwrap(),
                "--name",
                "gw",
            ],
            "oci.yaml",
        ),
        (
            vec![
                "profile",
                "from-compose",
                compose.to_str().unwrap(),
                "gateway",
            ],
            "compose.yaml",
        ),
    ] {
        let out = Command::new(cgwarden_tests::cgwarden())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("user: 1000") && text.contains("raw_sockets: deny"),
            "{text}"
        );
        let profile = dir.path().join(file);
        std::fs::write(&profile, &text).unwrap();
        let check = Command::new(cgwarden_tests::cgwarden())
            .arg("check")
            .arg(&profile)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

/// The profile a hardened container is held to: uid 1000, no capabilities,
/// no-new-privileges, read-only root.
const HARDENED_CREDS: &str = "runtime:\n  user: 1000\n  capabilities: []\n  no_new_privileges: true\n  read_only_root: true\n";

/// What a container run under an agent produced.
struct Run {
    stdout: String,
    events: Vec<serde_json::Value>,
    /// The agent's log.
    log: String,
    /// The container's id.
    id: String,
}

/// Like [`in_container`], with the whole config.json and the rootfs in the caller's
/// hands; `selector` is the profile's selector body (None: `cgroup: /<base>/*`).
fn container_with(
    profile_body: &str,
    script: &str,
    customise: impl FnOnce(&mut serde_json::Value),
    rootfs: impl FnOnce(&std::path::Path),
) -> Run {
    container_selected(None, profile_body, script, customise, rootfs)
}

fn container_selected(
    selector: Option<&str>,
    profile_body: &str,
    script: &str,
    customise: impl FnOnce(&mut serde_json::Value),
    rootfs: impl FnOnce(&std::path::Path),
) -> Run {
    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, container::Container, unique};
    let base = unique("cgwarden-test-rt");
    let _base = TestCgroup::create(&base);
    let selector = selector.map_or_else(|| format!("  cgroup: \"/{base}/*\"\n"), str::to_owned);
    let profile = ProfileFile::new(&format!(
        "name: ctr\nmode: enforce\nselector:\n{selector}{profile_body}"
    ));
    let agent = RunningAgent::start(profile.path());
    let id = unique("cgw");
    let container = Container::new(
        &id,
        &format!("/{base}/{id}"),
        &["sh", "-c", script],
        customise,
    );
    rootfs(&container.rootfs());
    let out = container.run();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let events = agent.events();
    assert!(
        out.status.success(),
        "container failed: {}\n{events:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        events,
        log: agent.log(),
        id,
    }
}

fn hardened_config(c: &mut serde_json::Value) {
    c["process"]["user"] = serde_json::json!({ "uid": 1000, "gid": 1000 });
    c["process"]["capabilities"] = serde_json::json!({});
    c["process"]["noNewPrivileges"] = serde_json::json!(true);
    c["root"]["readonly"] = serde_json::json!(true);
}

fn deviations<'a>(events: &'a [serde_json::Value], what: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "deviation" && e["deviation"] == what)
        .collect()
}

/// Whether the agent's log shows it read the container's OCI state (so a test that
/// expects no configuration deviation is not passing for want of looking).
fn discovered(run: &Run) -> bool {
    run.log.contains(&format!("container {} (", run.id))
}

#[test]
fn a_container_as_hardened_as_its_profile_has_no_credential_deviation() {
    require_root();
    let run = container_with(
        HARDENED_CREDS,
        "/bin/busybox id -u; /bin/busybox true; /bin/busybox sleep 0.5",
        hardened_config,
        |_| {},
    );
    assert_eq!(run.stdout.trim(), "1000");
    assert!(discovered(&run), "{}", run.log);
    let found: Vec<_> = run
        .events
        .iter()
        .filter(|e| e["kind"] == "deviation")
        .collect();
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_root_container_with_every_capability_and_no_nnp_deviates_by_name() {
    require_root();
    let all: Vec<String> = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_SYS_ADMIN",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_SYS_PTRACE",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_NET_BIND_SERVICE",
    ]
    .map(str::to_owned)
    .to_vec();
    let run = container_with(
        "runtime:\n  user: 1000\n  capabilities: [NET_BIND_SERVICE]\n  no_new_privileges: true\n  read_only_root: true\n",
        // `su` drops to uid 1000 itself before its exec: no privilege gain.
        "/bin/busybox id -u; /bin/busybox true; /bin/busybox su user -c '/bin/busybox id -u'; /bin/busybox sleep 0.5",
        |c| {
            c["process"]["user"] = serde_json::json!({ "uid": 0, "gid": 0 });
            c["process"]["capabilities"] = serde_json::json!({
                "bounding": all, "effective": all, "permitted": all,
            });
            c["process"]["noNewPrivileges"] = serde_json::json!(false);
            c["root"]["readonly"] = serde_json::json!(false);
        },
        |rootfs| std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap(),
    );
    let events = &run.events;
    assert_eq!(run.stdout.trim(), "0\n1000", "{}", run.log);
    let gains = deviations(events, "privilege_gain");
    assert!(gains.is_empty(), "{gains:?}");
    // At exec, from the kernel.
    assert!(!deviations(events, "uid").is_empty(), "{events:?}");
    let caps = deviations(events, "capabilities");
    let c = caps
        .first()
        .unwrap_or_else(|| panic!("no capabilities deviation: {events:?}"));
    let beyond: Vec<&str> = c["capabilities_beyond_profile"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(beyond.contains(&"CAP_SYS_ADMIN"), "{c}");
    assert!(beyond.contains(&"CAP_NET_RAW"), "{c}");
    // The profile allows this one.
    assert!(!beyond.contains(&"CAP_NET_BIND_SERVICE"), "{c}");
    assert_eq!(c["euid"], 0);
    assert_eq!(c["profile"], "ctr");
    let nnp = deviations(events, "no_new_privileges");
    assert!(!nnp.is_empty(), "{events:?}");
    assert_eq!(nnp[0]["no_new_privileges"], false);
    // At discovery, from config.json: once each.
    for what in [
        "oci_user",
        "oci_capabilities",
        "oci_no_new_privileges",
        "oci_read_only_root",
    ] {
        let found = deviations(events, what);
        assert_eq!(found.len(), 1, "{what}: {events:?}");
        assert_eq!(found[0]["container"]["id"], run.id.as_str(), "{}", found[0]);
    }
    let oci_caps = &deviations(events, "oci_capabilities")[0];
    assert!(
        oci_caps["detail"]
            .as_str()
            .unwrap()
            .contains("CAP_SYS_ADMIN"),
        "{oci_caps}"
    );
}

#[test]
fn a_setuid_root_program_in_a_no_new_privileges_profile_is_a_privilege_gain() {
    require_root();
    use std::os::unix::fs::PermissionsExt as _;
    let run = container_with(
        HARDENED_CREDS,
        "/bin/busybox id -u; /bin/suidbox true; echo done",
        |c| {
            hardened_config(c);
            // The runtime forgot no-new-privileges: a set-uid program works.
            c["process"]["noNewPrivileges"] = serde_json::json!(false);
        },
        |rootfs| {
            let suid = rootfs.join("bin/suidbox");
            std::fs::copy(rootfs.join("bin/busybox"), &suid).unwrap();
            std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        },
    );
    let events = &run.events;
    assert_eq!(run.stdout.trim(), "1000\ndone");
    let gain = deviations(events, "privilege_gain");
    let g = gain
        .iter()
        .find(|e| e["exe"] == "/bin/suidbox")
        .unwrap_or_else(|| panic!("no privilege gain: {events:?}"));
    assert_eq!(g["euid"], 0, "{g}");
    assert_eq!(g["uid"], 1000, "{g}");
    assert_eq!(g["before"]["euid"], 1000, "{g}");
    assert!(g["detail"].as_str().unwrap().contains("1000 -> 0"), "{g}");
    // The effective uid differs from the profile's while the real one matches.
    assert!(
        deviations(events, "euid")
            .iter()
            .any(|e| e["exe"] == "/bin/suidbox"),
        "{events:?}"
    );
    // Nothing set-uid ran before: the shell itself gained nothing.
    assert!(gain.iter().all(|e| e["exe"] == "/bin/suidbox"), "{gain:?}");
}

#[test]
fn a_container_is_selected_and_named_by_its_config_json_name() {
    require_root();
    let name = cgwarden_tests::unique("web");
    let run = container_selected(
        Some(&format!("  name: \"{name}\"\n")),
        "runtime:\n  user: 1000\n",
        // The name selector applies once the agent has read the container's state.
        "/bin/busybox sleep 1; /bin/busybox true; echo ok",
        |c| {
            c["annotations"] = serde_json::json!({ "io.kubernetes.container.name": name });
        },
        |_| {},
    );
    let events = &run.events;
    assert_eq!(run.stdout.trim(), "ok");
    let uid = deviations(events, "uid");
    let u = uid
        .iter()
        .find(|e| e["exe"] == "/bin/busybox")
        .unwrap_or_else(|| panic!("the name selector did not apply: {events:?}\n{}", run.log));
    assert_eq!(u["container"]["name"], name.as_str(), "{u}");
    assert_eq!(u["container"]["id"], run.id.as_str(), "{u}");
    assert_eq!(u["container"]["runtime"], "runc", "{u}");
    let oci = deviations(events, "oci_user");
    assert_eq!(oci.len(), 1, "{events:?}");
    assert_eq!(oci[0]["container"]["name"], name.as_str());
}

/// The cgroups `status` lists for profile `name`.
fn status_cgroups(agent: &cgwarden_tests::agent::RunningAgent, name: &str) -> Vec<String> {
    let (_, out, _) = agent.client("status");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    status["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .flat_map(|p| p["cgroups"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn new_cgroups_get_their_profile_as_they_appear_and_lose_it_as_they_go() {
    require_root();
    use std::time::{Duration, Instant};

    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, unique, wait_for};
    let base = unique("cgwarden-test-watch");
    let _base = TestCgroup::create(&base);
    // A glob on the name, not `<base>/*`: no parent entry covers these cgroups, only
    // their own, written when the agent sees them.
    let profile = ProfileFile::new(&format!(
        "name: watched\nmode: audit\nselector:\n  cgroup: \"/{base}/c-*\"\n"
    ));
    let agent = RunningAgent::start(profile.path());
    assert!(agent.log().contains("watching"), "{}", agent.log());
    // The periodic walk is a backstop once a second: five cgroups each covered well
    // within 300 ms would be a 1-in-400 chance without the watch.
    let limit = Duration::from_millis(300);
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(137));
        let cgroup = TestCgroup::create(&format!("{base}/c-{i}"));
        let rel = cgroup.relative().to_owned();
        let start = Instant::now();
        let seen = wait_for(Duration::from_secs(3), || {
            status_cgroups(&agent, "watched")
                .contains(&rel)
                .then_some(())
        });
        let took = start.elapsed();
        assert!(
            seen.is_some(),
            "{rel} never got its profile:\n{}",
            agent.log()
        );
        assert!(took < limit, "{rel} got its profile after {took:?}");
        drop(cgroup);
        let start = Instant::now();
        let gone = wait_for(Duration::from_secs(3), || {
            (!status_cgroups(&agent, "watched").contains(&rel)).then_some(())
        });
        let took = start.elapsed();
        assert!(gone.is_some(), "{rel} kept its profile after it went");
        assert!(took < limit, "{rel} lost its profile after {took:?}");
    }
}

#[test]
fn without_the_kernel_s_credential_layout_a_profile_that_needs_it_is_refused() {
    require_root();
    let p = ProfileFile::new(
        "name: creds\nmode: audit\nruntime:\n  capabilities: []\n  no_new_privileges: true\n",
    );
    let run = |btf: &str| {
        std::process::Command::new(cgwarden_tests::cgwarden())
            .args(["exec", "--policy"])
            .arg(p.path())
            .args(["--", "true"])
            .env("CGWARDEN_BTF", btf)
            .output()
            .unwrap()
    };
    let out = run("/nonexistent/vmlinux");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("profile `creds`") && stderr.contains("/nonexistent/vmlinux"),
        "{stderr}"
    );
    // The same profile runs with the kernel's own BTF.
    let out = run("/sys/kernel/btf/vmlinux");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A profile without those keys does not need the layout.
    let plain = ProfileFile::new("name: plain\nmode: audit\nruntime:\n  user: 0\n");
    let out = std::process::Command::new(cgwarden_tests::cgwarden())
        .args(["exec", "--policy"])
        .arg(plain.path())
        .args(["--", "true"])
        .env("CGWARDEN_BTF", "/nonexistent/vmlinux")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn processes_running_before_the_profile_are_judged_when_it_applies() {
    require_root();
    use std::{process::Command, time::Duration};

    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, unique};
    let base = unique("cgwarden-test-running");
    let cgroup = TestCgroup::create(&base);
    // Root with every capability, no no-new-privileges: started before any agent.
    let mut sleeper = cgroup.spawn(Command::new("sleep").arg("30"));
    let profile = ProfileFile::new(&format!(
        "name: late\nmode: audit\nselector:\n  cgroup: \"/{base}\"\nruntime:\n  capabilities: [NET_BIND_SERVICE]\n  no_new_privileges: true\n"
    ));
    let agent = RunningAgent::start(profile.path());
    let pid = sleeper.id();
    let found = agent.wait_event(Duration::from_secs(5), |e| {
        e["deviation"] == "capabilities" && e["pid"] == pid
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let e = found.unwrap_or_else(|| panic!("no deviation: {:?}\n{}", agent.events(), agent.log()));
    assert!(e["exe"].as_str().unwrap().ends_with("/sleep"), "{e}");
    assert_eq!(e["cgroup"], format!("/{base}"), "{e}");
    let beyond = e["capabilities_beyond_profile"].as_array().unwrap();
    assert!(beyond.iter().any(|c| c == "CAP_SYS_ADMIN"), "{e}");
    assert!(beyond.iter().all(|c| c != "CAP_NET_BIND_SERVICE"), "{e}");
    assert!(
        agent
            .events()
            .iter()
            .any(|e| e["deviation"] == "no_new_privileges" && e["pid"] == pid),
        "{:?}",
        agent.events()
    );
}
