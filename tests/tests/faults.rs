//! Fault tolerance: pinned links and maps keep enforcing when the agent dies, a
//! restarted agent adopts them without a gap, and `cgwarden uninstall` removes them.

use std::{process::Command, time::Duration};

use cgwarden_tests::{
    ProfileFile,
    agent::{RunningAgent, StateDir},
    cgroup::TestCgroup,
    cgwarden,
    net::TcpServer,
    netprobe, require_root, unique,
};

#[test]
fn kill_9_keeps_enforcing_and_a_restart_adopts_without_a_gap() {
    require_root();
    let base = unique("cgwarden-test-faults");
    let _base = TestCgroup::create(&base);
    let allowed = TcpServer::bind("127.0.0.1");
    let denied = TcpServer::bind("127.0.0.71");
    let profile = ProfileFile::new(&format!(
        "name: faults\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n  allow:\n    - to: 127.0.0.1\n      ports: [{}]\n",
        allowed.port()
    ));
    let state = StateDir::new();
    let agent = RunningAgent::start_in(profile.path(), state.path());
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    let attempt = || {
        app.run(Command::new(netprobe()).args([
            "tcp",
            &allowed.addr.to_string(),
            "tcp",
            &denied.addr.to_string(),
        ]))
    };
    assert_eq!(attempt(), "ok\nerror 1\n");

    // Steady traffic across a kill -9 and a restart: allowed connects never fail.
    let mut cmd = Command::new(netprobe());
    cmd.args(["tcp-loop", &format!("3000@{}@300", allowed.addr)])
        .stdout(std::process::Stdio::piped());
    let steady = app.spawn(&mut cmd);
    std::thread::sleep(Duration::from_millis(200));
    agent.kill9();
    // No agent: the pinned programs still decide.
    assert_eq!(
        attempt(),
        "ok\nerror 1\n",
        "enforcement stopped with the agent"
    );
    let agent = RunningAgent::start_in(profile.path(), state.path());
    assert!(agent.log().contains("adopted the pins"), "{}", agent.log());
    let out = steady.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "an allowed connect failed"
    );
    assert_eq!(attempt(), "ok\nerror 1\n");
    assert_eq!(denied.accepted(), 0);

    // The denial made while no agent ran reaches the restarted agent (pinned ring
    // buffer), and the new agent reports its own.
    let reported = agent.wait_event(Duration::from_secs(5), |e| {
        e["verdict"] == "deny" && e["dst"] == "127.0.0.71"
    });
    assert!(
        reported.is_some(),
        "no denial reported after the restart:\n{}",
        agent.log()
    );
    // Stale state of the first agent is swept once the second has taken over.
    let swept = cgwarden_tests::wait_for(Duration::from_secs(5), || {
        agent.log().contains("a previous agent left").then_some(())
    });
    assert!(swept.is_some(), "{}", agent.log());
    assert_eq!(attempt(), "ok\nerror 1\n");
    drop(agent);
    // A clean stop keeps enforcement too.
    assert_eq!(attempt(), "ok\nerror 1\n");

    // uninstall removes it all.
    let out = Command::new(cgwarden())
        .args(["uninstall", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    cgwarden_tests::assert_success(&out);
    assert!(!state.path().exists());
    assert_eq!(attempt(), "ok\nok\n", "enforcement left after uninstall");
}

#[test]
fn fail_open_detaches_when_the_agent_exits() {
    require_root();
    let base = unique("cgwarden-test-failopen");
    let _base = TestCgroup::create(&base);
    let denied = TcpServer::bind("127.0.0.72");
    let profile = ProfileFile::new(&format!(
        "name: open\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n"
    ));
    let state = StateDir::new();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(cgwarden())
        .args(["run", "--fail-open", "--policy"])
        .arg(profile.path())
        .arg("--control")
        .arg(dir.path().join("ctl.sock"))
        .arg("--events")
        .arg(dir.path().join("events"))
        .arg("--state-dir")
        .arg(state.path())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let ready = cgwarden_tests::wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path().join("log"))
            .unwrap_or_default()
            .contains("cgwarden is enforcing")
            .then_some(())
    });
    assert!(ready.is_some());
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    let attempt = || app.run(Command::new(netprobe()).args(["tcp", &denied.addr.to_string()]));
    assert_eq!(attempt(), "error 1\n");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(attempt(), "ok\n", "fail-open left enforcement behind");
    assert!(!state.path().exists(), "fail-open pinned something");
}

#[test]
fn kill_rules_keep_killing_after_kill_9_and_a_restart_adds_no_second_program() {
    use std::os::unix::process::ExitStatusExt as _;
    require_root();
    let base = unique("cgwarden-test-faults-sys");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: faults\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\nsyscalls:\n  - names: [personality]\n    action: kill\n"
    ));
    let state = StateDir::new();
    let agent = RunningAgent::start_in(profile.path(), state.path());
    // Made after the agent enforces: the `<base>/*` glob's parent entry covers it from
    // its first process, with no wait.
    let app = TestCgroup::create(&format!("{base}/app"));
    // personality(0xffffffff) only queries: the process lives unless it is killed.
    let attempt = || {
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            "import ctypes; ctypes.CDLL(None).personality(0xffffffff); print('survived')",
        ])
        .stdout(std::process::Stdio::piped());
        let child = app.spawn(&mut cmd);
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        (
            out.status.signal(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            pid,
        )
    };
    let killed = |(signal, stdout, _): (Option<i32>, String, u32)| (signal, stdout);
    assert_eq!(killed(attempt()), (Some(9), String::new()));
    agent.kill9();
    assert_eq!(
        killed(attempt()),
        (Some(9), String::new()),
        "the kill rule stopped with the agent"
    );
    let agent = RunningAgent::start_in(profile.path(), state.path());
    assert!(agent.log().contains("adopted the pins"), "{}", agent.log());
    // The adopted entry and exit programs keep their run statistics.
    let body = cgwarden_tests::agent::scrape(agent.metrics_addr());
    for program in ["sys_enter", "sys_exit_refused", "proc_exec"] {
        let key = format!("cgwarden_program_runs_total{{program=\"{program}\"}}");
        assert!(
            body.contains(&key),
            "{key} missing after the restart:\n{body}"
        );
    }
    let (signal, stdout, pid) = attempt();
    assert_eq!((signal, stdout), (Some(9), String::new()));
    // Reported once, not once per attached program (adopted and new); the stopped
    // agent has written everything the kernel sent.
    let log = agent.log();
    let reports = agent
        .stop_and_read()
        .iter()
        .filter(|e| e["syscall"] == "personality" && e["pid"] == pid)
        .count();
    assert_eq!(reports, 1, "not reported exactly once:\n{log}");
    let out = Command::new(cgwarden())
        .args(["uninstall", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    // The kernel frees unpinned links from a work queue, a moment later.
    let survived = cgwarden_tests::wait_for(Duration::from_secs(5), || {
        (killed(attempt()) == (None, "survived\n".to_owned())).then_some(())
    });
    assert!(survived.is_some(), "a kill rule left after uninstall");
}

/// A tmpfs of a few kilobytes, unmounted on drop.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount(bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        Self { dir }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_events_disk_is_a_counted_fault_and_enforcement_goes_on() {
    require_root();
    let disk = TinyDisk::mount(8 * 1024);
    let full_file = disk.dir.path().join("events.jsonl");
    let base = unique("cgwarden-test-full");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: full\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n"
    ));
    let sink = format!("json:{}", full_file.display());
    let agent = RunningAgent::start_with(profile.path(), &["--sink", &sink]);
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    // Hundreds of distinct denied connects: far more events than 8 KiB holds.
    let attempts: Vec<String> = (1..=200)
        .flat_map(|i| {
            [
                "tcp".to_owned(),
                format!("127.0.{}.{}:9", 100 + i / 250, i % 250 + 1),
            ]
        })
        .collect();
    let out = app.run(Command::new(netprobe()).args(&attempts));
    assert_eq!(
        out.lines().filter(|l| *l == "error 1").count(),
        200,
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(500));
    // The agent is still there, still answering, and says what it lost.
    let (code, status, _) = agent.client("status -o json");
    assert_eq!(code, Some(0), "the agent stopped: {}", agent.log());
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["faults"]["sink_write"].as_u64() > Some(0)
            || status["faults"]["sink_flush"].as_u64() > Some(0),
        "{status:#}"
    );
    assert!(
        agent.log().contains("No space left on device"),
        "{}",
        agent.log()
    );
    // The other sink got every event; enforcement never depended on either.
    let denied = agent
        .events()
        .iter()
        .filter(|e| e["kind"] == "connect" && e["verdict"] == "deny")
        .count();
    assert_eq!(denied, 200);
    assert_eq!(
        app.run(Command::new(netprobe()).args(["tcp", "127.0.0.2:9"])),
        "error 1\n"
    );
}

/// The DNS answer reader is a late link like the tracepoints: a restarted agent adopts
/// it, and still reports its run statistics (they were missing after an adoption).
#[test]
fn an_adopted_dns_reader_keeps_its_run_statistics() {
    require_root();
    let base = unique("cgwarden-test-faults-dns");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: faults-dns\nmode: audit\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: allow\n  dns:\n    report: true\n"
    ));
    let state = StateDir::new();
    let key = "cgwarden_program_runs_total{program=\"skb_ingress\"}";
    let agent = RunningAgent::start_in(profile.path(), state.path());
    let body = cgwarden_tests::agent::scrape(agent.metrics_addr());
    assert!(
        body.contains(key),
        "{key} missing before the restart:\n{body}"
    );
    agent.kill9();
    let agent = RunningAgent::start_in(profile.path(), state.path());
    assert!(agent.log().contains("adopted the pins"), "{}", agent.log());
    let body = cgwarden_tests::agent::scrape(agent.metrics_addr());
    assert!(
        body.contains(key),
        "{key} missing after the restart:\n{body}"
    );
}
