//! `cgwarden exec`: a command in a fresh cgroup under a profile, with the real eBPF
//! object in the real kernel.

use std::process::Command;

use cgwarden_tests::{
    ProfileFile, cgroup::TestCgroup, exec, net::TcpServer, net_events, netprobe, require_root,
    unique,
};

fn report_all(extra_rules: &str) -> ProfileFile {
    ProfileFile::new(&format!(
        "name: exec-test\nmode: enforce\negress:\n  default: deny\n  report: all\n  allow:\n{extra_rules}"
    ))
}

#[test]
fn exec_reports_a_loopback_connect_with_process_and_cgroup() {
    require_root();
    let server = TcpServer::bind("127.0.0.1");
    let profile = report_all("    - to: 127.0.0.1\n");
    let probe = netprobe();
    let addr = server.addr.to_string();
    let out = exec(profile.path(), &[probe.to_str().unwrap(), "tcp", &addr]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), "ok", "{out:?}");
    let events = net_events(&out.events);
    assert_eq!(events.len(), 1, "{:?}", out.events);
    let e = events[0];
    assert_eq!(e["kind"], "connect");
    assert_eq!(e["verdict"], "allow");
    assert_eq!(e["process"], "netprobe");
    assert_eq!(e["dst"], "127.0.0.1");
    assert_eq!(e["port"], server.port());
    assert_eq!(e["protocol"], "tcp");
    assert_eq!(e["family"], "ipv4");
    assert_eq!(e["profile"], "exec-test");
    assert_eq!(e["rule"], "allow[0]");
    assert_eq!(e["uid"], 0);
    let cgroup = e["cgroup"].as_str().unwrap();
    assert!(cgroup.starts_with("/cgwarden-exec-"), "{e}");
    assert!(e["pid"].as_u64().unwrap() > 1);
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    assert!(server.accepted() >= 1);
    // The cgroup is gone afterwards.
    let root = cgwarden_tests::cgroup::cgroup2_root();
    assert!(
        !root.join(cgroup.trim_start_matches('/')).exists(),
        "{cgroup} left behind"
    );
}

#[test]
fn exec_event_pid_is_the_commands_pid() {
    require_root();
    let server = TcpServer::bind("127.0.0.1");
    let profile = report_all("    - to: 127.0.0.1\n");
    // The shell prints its pid, then execs the probe (same pid).
    let script = format!("echo $$; exec {} tcp {}", netprobe().display(), server.addr);
    let out = exec(profile.path(), &["/bin/sh", "-c", &script]);
    let pid: u64 = out.stdout.lines().next().unwrap().trim().parse().unwrap();
    let events = net_events(&out.events);
    assert_eq!(events.len(), 1, "{out:?}");
    assert_eq!(events[0]["pid"], pid);
}

#[test]
fn exec_propagates_exit_status_and_signals() {
    require_root();
    let profile = report_all("    - to: 127.0.0.1\n");
    let out = exec(profile.path(), &["/bin/sh", "-c", "exit 7"]);
    assert_eq!(out.code, Some(7));
    let out = exec(profile.path(), &["/bin/sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.code, Some(128 + 9));
}

#[test]
fn exec_exits_as_docker_run_does_when_the_command_or_cgwarden_fails() {
    require_root();
    let p = report_all("    - to: 127.0.0.1\n");
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("data.txt");
    std::fs::write(&not_executable, "not a program").unwrap();
    let run = |policy: &std::path::Path, command: &std::path::Path| {
        Command::new(cgwarden_tests::cgwarden())
            .args(["exec", "--policy"])
            .arg(policy)
            .arg("--")
            .arg(command)
            .output()
            .unwrap()
    };
    // Not found: 127; found but not executable: 126 (as a shell and docker run say).
    let missing = run(p.path(), &dir.path().join("no-such-program"));
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot run"));
    let refused = run(p.path(), &not_executable);
    assert_eq!(refused.status.code(), Some(126), "{refused:?}");
    // cgwarden itself failed (its profile cannot be read): 125, the command never ran.
    let marker = dir.path().join("ran");
    let script = dir.path().join("script.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let failed = run(&dir.path().join("no-such-profile.yaml"), &script);
    assert_eq!(failed.status.code(), Some(125), "{failed:?}");
    assert!(!marker.exists());
    // Otherwise the command's own status, whatever it is (125 included).
    let own = Command::new(cgwarden_tests::cgwarden())
        .args(["exec", "--policy"])
        .arg(p.path())
        .args(["--", "sh", "-c", "exit 125"])
        .output()
        .unwrap();
    assert_eq!(own.status.code(), Some(125), "{own:?}");
    assert!(own.stderr.is_empty(), "{own:?}");
}

#[test]
fn the_same_connect_from_outside_the_cgroup_yields_no_event() {
    require_root();
    let server = TcpServer::bind("127.0.0.1");
    let profile = report_all("    - to: 127.0.0.1\n");
    // While a command runs under exec (its hooks attached), a process in another cgroup
    // connects to the same listener.
    let other = TestCgroup::create(&unique("cgwarden-test-outside"));
    let probe = netprobe();
    let addr = server.addr.to_string();
    let script = format!("sleep 0.3; {} tcp {addr}", probe.display());
    let before = server.accepted();
    let handle = std::thread::spawn({
        let path = profile.path().to_owned();
        move || exec(&path, &["/bin/sh", "-c", &script])
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let outside = other.run(Command::new(&probe).args(["tcp", &addr]));
    assert_eq!(outside.trim(), "ok");
    let out = handle.join().unwrap();
    let events = net_events(&out.events);
    assert_eq!(
        events.len(),
        1,
        "only the command's own connect: {:?}",
        out.events
    );
    assert_ne!(events[0]["cgroup"], other.relative());
    assert_eq!(server.accepted() - before, 2);
}

#[test]
fn exec_denies_what_the_profile_does_not_allow() {
    require_root();
    let allowed = TcpServer::bind("127.0.0.1");
    let other = TcpServer::bind("127.0.0.2");
    let profile = ProfileFile::new(&format!(
        "name: deny-test\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 127.0.0.1\n      ports: [{}]\n      protocol: tcp\n",
        allowed.port()
    ));
    let probe = netprobe();
    let out = exec(
        profile.path(),
        &[
            probe.to_str().unwrap(),
            "tcp",
            &allowed.addr.to_string(),
            "tcp",
            &other.addr.to_string(),
        ],
    );
    assert_eq!(
        out.stdout,
        format!("ok\nerror {}\n", libc::EPERM),
        "{out:?}"
    );
    let events = net_events(&out.events);
    assert_eq!(
        events.len(),
        1,
        "allowed flows are not reported by default: {:?}",
        out.events
    );
    assert_eq!(events[0]["verdict"], "deny");
    assert_eq!(events[0]["dst"], "127.0.0.2");
    assert_eq!(events[0]["rule"], "default");
    assert_eq!(other.accepted(), 0);
}
