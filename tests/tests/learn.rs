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
