//! `cgwarden run`: profiles applied by selector to cgroups and runc containers.

use std::{process::Command, time::Duration};

use cgwarden_tests::{
    ProfileFile, agent::RunningAgent, cgroup::TestCgroup, container::Container, net::TcpServer,
    netprobe, require_root, unique,
};

fn selector_profile(name: &str, glob: &str) -> ProfileFile {
    ProfileFile::new(&format!(
        "name: {name}\nmode: audit\nselector:\n  cgroup: \"{glob}\"\negress:\n  default: deny\n  allow:\n    - name: loopback-one\n      to: 127.0.0.1\n"
    ))
}

#[test]
fn run_applies_a_profile_to_a_selected_cgroup_and_its_children() {
    require_root();
    let base = unique("cgwarden-test-run");
    let _base_guard = TestCgroup::create(&base);
    let profile = selector_profile("sel", &format!("/{base}/*"));
    let agent = RunningAgent::start(profile.path());
    let server = TcpServer::bind("127.0.0.2");
    let _parent = TestCgroup::create(&format!("{base}/app"));
    let nested = TestCgroup::create(&format!("{base}/app/worker"));
    let unmatched = TestCgroup::create(&format!("{base}-other"));
    // Let the agent's rescan see the new cgroup.
    std::thread::sleep(Duration::from_millis(400));
    let probe = netprobe();
    let addr = server.addr.to_string();
    assert_eq!(
        nested.run(Command::new(&probe).args(["tcp", &addr])).trim(),
        "ok",
        "audit mode lets it through"
    );
    assert_eq!(
        unmatched
            .run(Command::new(&probe).args(["tcp", &addr]))
            .trim(),
        "ok"
    );
    let e = agent
        .wait_event(Duration::from_secs(5), |e| e["verdict"] == "audit")
        .unwrap_or_else(|| panic!("no audit event; log:\n{}", agent.log()));
    assert_eq!(e["cgroup"], nested.relative());
    assert_eq!(e["profile"], "sel");
    assert_eq!(e["dst"], "127.0.0.2");
    assert_eq!(e["rule"], "default");
    std::thread::sleep(Duration::from_millis(200));
    let all = agent.events();
    assert_eq!(
        all.len(),
        1,
        "the unmatched cgroup is not monitored: {all:?}"
    );
    assert_eq!(agent.stop(), Some(0));
}

#[test]
fn run_sees_a_runc_container_under_a_matching_selector() {
    require_root();
    let base = unique("cgwarden-test-runc");
    let _base_guard = TestCgroup::create(&base);
    let profile = selector_profile("containers", &format!("/{base}/*"));
    let agent = RunningAgent::start(profile.path());
    let server = TcpServer::bind("127.0.0.3");
    let id = unique("cgw");
    let cgroup = format!("/{base}/{id}");
    // The container waits for the agent's rescan, then connects with busybox nc.
    let script = format!(
        "sleep 0.5; /bin/busybox nc -w 1 127.0.0.3 {} </dev/null; echo done",
        server.port()
    );
    let container = Container::new(&id, &cgroup, &["sh", "-c", &script], |_| {});
    let out = container.run();
    assert!(
        out.status.success(),
        "runc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = agent
        .wait_event(Duration::from_secs(5), |e| e["kind"] == "connect")
        .unwrap_or_else(|| panic!("no event for the container; log:\n{}", agent.log()));
    assert_eq!(e["cgroup"], cgroup);
    assert_eq!(e["verdict"], "audit");
    assert_eq!(
        e["process"], "busybox",
        "comm of the busybox binary that ran nc"
    );
    assert_eq!(e["dst"], "127.0.0.3");
    assert_eq!(e["port"], server.port());
}
