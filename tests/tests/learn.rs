//! Learn mode: a profile generated from what a workload really did allows exactly that
//! workload, and the seccomp export runs it in runc.

use std::process::Command;

use cgwarden_tests::{
    ExecOutput, ProfileFile, cgwarden,
    container::Container,
    dns::DnsServer,
    exec, exec_with,
    net::{TcpServer, UdpServer},
    netprobe, require_root, unique,
};

fn denials(out: &ExecOutput) -> Vec<&serde_json::Value> {
    out.events
        .iter()
        .filter(|e| e["verdict"] == "deny" || e["kind"] == "deviation")
        .collect()
}

#[test]
fn a_learned_profile_allows_the_workload_and_nothing_new() {
    require_root();
    let api = TcpServer::bind("127.0.0.81");
    let metrics = UdpServer::bind("127.0.0.82");
    let extra = TcpServer::bind("127.0.0.83");
    let zone = [(
        "svc.test".to_owned(),
        vec![vec![("127.0.0.81".parse().unwrap(), 300)]],
    )]
    .into_iter()
    .collect();
    let dns = DnsServer::start("127.53.0.7", zone);
    let probe = netprobe();
    let workload: Vec<String> = vec![
        probe.display().to_string(),
        "dns".into(),
        format!("svc.test@{}", dns.addr.ip()),
        "tcp".into(),
        api.addr.to_string(),
        "udp".into(),
        metrics.addr.to_string(),
    ];
    let args: Vec<&str> = workload.iter().map(String::as_str).collect();

    let dir = tempfile::tempdir().unwrap();
    let learned = dir.path().join("learned.yaml");
    let out = exec_with(
        &["--learn", learned.to_str().unwrap(), "--name", "svc"],
        &args,
        "",
    );
    assert_eq!(out.stdout, "ok 127.0.0.81\nok\nok\n", "{out:?}");
    let text = std::fs::read_to_string(&learned).unwrap();
    assert!(
        text.contains("- to: svc.test"),
        "the name it resolved, not the address:\n{text}"
    );
    let check = Command::new(cgwarden())
        .arg("check")
        .arg(&learned)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The same workload under the learned profile, enforced: nothing is denied.
    let profile = ProfileFile::new(&text);
    let out = exec(profile.path(), &args);
    assert_eq!(out.stdout, "ok 127.0.0.81\nok\nok\n", "{out:?}");
    assert!(denials(&out).is_empty(), "{:?}", denials(&out));

    // One new destination: exactly one denial.
    let mut more = args.clone();
    let extra_addr = extra.addr.to_string();
    more.extend(["tcp", &extra_addr]);
    let out = exec(profile.path(), &more);
    assert_eq!(out.stdout, "ok 127.0.0.81\nok\nok\nerror 1\n", "{out:?}");
    let d = denials(&out);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["dst"], "127.0.0.83");
    assert_eq!(extra.accepted(), 0);
}

#[test]
fn the_seccomp_export_runs_the_workload_in_runc() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let learned = dir.path().join("learned.yaml");
    let seccomp = dir.path().join("seccomp.json");
    let script =
        "echo hello; /bin/busybox ls / > /dev/null; /bin/busybox cat /etc/passwd > /dev/null";
    let out = exec_with(
        &[
            "--learn",
            learned.to_str().unwrap(),
            "--seccomp",
            seccomp.to_str().unwrap(),
        ],
        &["/bin/busybox", "sh", "-c", script],
        "",
    );
    assert_eq!(out.stdout, "hello\n", "{out:?}");
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&seccomp).unwrap()).unwrap();
    let names = profile["syscalls"][0]["names"].as_array().unwrap();
    assert!(names.iter().any(|n| n == "execve"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "mount"),
        "the workload never mounted"
    );

    let id = unique("cgw");
    let container = Container::new(
        &id,
        &format!("/{}", unique("cgwarden-test-seccomp")),
        &["sh", "-c", script],
        |c| {
            c["linux"]["seccomp"] = profile.clone();
        },
    );
    let run = container.run();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello\n");
    // And the filter is real: a syscall the workload never used is refused.
    let id = unique("cgw");
    let container = Container::new(
        &id,
        &format!("/{}", unique("cgwarden-test-seccomp")),
        &["sh", "-c", "/bin/busybox unshare -U true; echo unshare=$?"],
        |c| {
            c["linux"]["seccomp"] = profile.clone();
        },
    );
    let run = container.run();
    assert_ne!(String::from_utf8_lossy(&run.stdout).trim(), "unshare=0");
}

#[test]
fn learn_from_an_events_file_of_a_running_agent() {
    require_root();
    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup};
    let server = TcpServer::bind("127.0.0.84");
    let base = unique("cgwarden-test-learnrun");
    let _base = TestCgroup::create(&base);
    let recording = ProfileFile::new(&format!(
        "name: rec\nmode: audit\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n  report: all\n  dns:\n    report: true\n"
    ));
    let agent = RunningAgent::start(recording.path());
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = app.run(Command::new(netprobe()).args(["tcp", &server.addr.to_string()]));
    assert_eq!(out, "ok\n");
    let found = agent.wait_event(std::time::Duration::from_secs(5), |e| {
        e["dst"] == "127.0.0.84"
    });
    assert!(found.is_some(), "{}", agent.log());
    let learned = Command::new(cgwarden())
        .args(["learn", "--name", "app", "--events"])
        .arg(agent.events_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&learned.stdout);
    assert!(
        text.contains(&format!(
            "- to: 127.0.0.84\n      ports: [{}]\n      protocol: tcp",
            server.port()
        )),
        "{text}"
    );
}
