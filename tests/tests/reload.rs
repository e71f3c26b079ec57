//! Hot reload through the control socket and SIGHUP: atomic, and a bad file keeps the
//! last good profile.

use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use cgwarden_tests::{
    ProfileFile, agent::RunningAgent, cgroup::TestCgroup, cgwarden, net::TcpServer, netprobe,
    require_root, unique,
};

fn profile_text(glob: &str, port: u16, extra: &str) -> String {
    format!(
        "name: reload\nmode: enforce\nselector:\n  cgroup: \"{glob}\"\negress:\n  default: deny\n  allow:\n    - name: server\n      to: 127.0.0.1\n      ports: [{port}]\n{extra}"
    )
}

/// Extra rules that make each install do real work.
fn filler(n: u32, salt: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "    - to: 10.{}.{}.{}/32\n      ports: [{}]\n",
                salt % 200,
                i / 250,
                i % 250,
                1000 + i % 100
            )
        })
        .collect()
}

#[test]
fn reload_under_steady_traffic_refuses_no_allowed_connect() {
    require_root();
    let base = unique("cgwarden-test-reload");
    let _base = TestCgroup::create(&base);
    let server = TcpServer::bind("127.0.0.1");
    let profile = ProfileFile::new(&profile_text(&format!("/{base}/*"), server.port(), ""));
    let agent = RunningAgent::start(profile.path());
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    // A steady stream of allowed connects while the profile is reloaded again and again.
    let mut cmd = Command::new(netprobe());
    // 4000 paced connects (about two seconds): enough to overlap every reload without
    // running out of ephemeral ports to TIME_WAIT.
    cmd.args(["tcp-loop", &format!("4000@{}@300", server.addr)])
        .stdout(std::process::Stdio::piped());
    let child = app.spawn(&mut cmd);
    let mut reloads = 0;
    for round in 0..12 {
        profile.rewrite(&profile_text(
            &format!("/{base}/*"),
            server.port(),
            &filler(2000, round),
        ));
        let (code, _, err) = agent.client("reload");
        assert_eq!(code, Some(0), "reload failed: {err}");
        reloads += 1;
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "an allowed connect failed during reload"
    );
    assert_eq!(reloads, 12);
    let all = cgwarden_tests::wait_for(Duration::from_secs(5), || {
        (server.accepted() == 4_000).then_some(())
    });
    assert!(
        all.is_some(),
        "server accepted {} of 4000",
        server.accepted()
    );
    let denials: Vec<_> = agent
        .events()
        .into_iter()
        .filter(|e| e["verdict"] == "deny")
        .collect();
    assert!(denials.is_empty(), "{denials:?}");
}

#[test]
fn a_bad_reload_keeps_the_last_good_profile() {
    require_root();
    let base = unique("cgwarden-test-badreload");
    let _base = TestCgroup::create(&base);
    let server = TcpServer::bind("127.0.0.1");
    let glob = format!("/{base}/*");
    let profile = ProfileFile::new(&profile_text(&glob, server.port(), ""));
    let agent = RunningAgent::start(profile.path());
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    let denied_addr = format!("127.0.0.1:{}", server.port() + 1);
    let attempt = || {
        app.run(Command::new(netprobe()).args([
            "tcp",
            &server.addr.to_string(),
            "tcp",
            &denied_addr,
        ]))
    };
    assert_eq!(attempt(), "ok\nerror 1\n");

    // Broken YAML: refused with file:line:column; enforcement unchanged.
    profile.rewrite(&profile_text(
        &glob,
        server.port(),
        "    - to: 10.0.0.0/33\n",
    ));
    let (code, _, err) = agent.client("reload");
    assert_eq!(code, Some(1));
    let location = format!("{}:11:", profile.path().display());
    assert!(
        err.contains(&location) && err.contains("10.0.0.0/33"),
        "{err}"
    );
    assert_eq!(attempt(), "ok\nerror 1\n");

    // The same through SIGHUP.
    agent.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.log().contains("reload refused"), "{}", agent.log());
    assert_eq!(attempt(), "ok\nerror 1\n");

    // A good reload takes effect: the second port is now allowed, the first is not.
    profile.rewrite(&profile_text(&glob, server.port() + 1, ""));
    let (code, out, err) = agent.client("reload");
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(attempt(), "error 1\nerror 111\n");
}

#[test]
fn status_reports_profiles_and_cgroups_and_the_socket_is_root_only() {
    require_root();
    let base = unique("cgwarden-test-status");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&profile_text(&format!("/{base}/*"), 9, ""));
    let agent = RunningAgent::start(profile.path());
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    // One refused connect, for the profile's counters.
    app.run(Command::new(netprobe()).args(["tcp", "127.0.0.9:4242"]));
    agent
        .wait_event(Duration::from_secs(5), |e| e["verdict"] == "deny")
        .expect("the refused connect's event");
    // The kernel judges the new cgroup through its parent's entry from its first
    // process on; the agent lists it once its watcher has seen the cgroup, which may be
    // after that first event.
    let listed = |status: &serde_json::Value| {
        status["profiles"][0]["cgroups"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == app.relative()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        let (code, out, err) = agent.client("status -o json");
        assert_eq!(code, Some(0), "{err}");
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        if listed(&status) || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["profiles"][0]["name"], "reload");
    assert_eq!(status["profiles"][0]["events"]["deny"], 1, "{status}");
    assert_eq!(status["profiles"][0]["mode"], "enforce");
    let cgroups = status["profiles"][0]["cgroups"].as_array().unwrap();
    assert!(cgroups.iter().any(|c| c == app.relative()), "{cgroups:?}");
    assert!(
        cgroups.iter().any(|c| c == &format!("/{base}/*")),
        "{cgroups:?}"
    );
    assert_eq!(
        status["build_id"].as_str().map(str::len),
        Some(16),
        "{status}"
    );
    // For a person: the agent, the profile with its counters, losses and faults.
    let (code, table, err) = agent.client("status");
    assert_eq!(code, Some(0), "{err}");
    let build = status["build_id"].as_str().unwrap();
    assert!(
        table.starts_with(&format!(
            "cgwarden {} (build {build}), up ",
            status["version"].as_str().unwrap()
        )),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("reload "))
        .unwrap_or_else(|| panic!("no row for the profile: {table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // name, mode, egress entries, DNS names, cgroups (the app and the parent entry).
    assert_eq!(cells[1], "enforce", "{row}");
    assert_eq!(cells[4], "2", "{row}");
    // denied, audited, reported.
    assert_eq!(&cells[5..8], ["1", "0", "0"], "{row}");
    assert!(table.contains("ring buffer: 0 records lost"), "{table}");
    assert!(table.contains("faults: none"), "{table}");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(agent.control())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let out = Command::new(cgwarden())
        .args(["status", "--control"])
        .arg(agent.control())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an unprivileged user reached the agent"
    );
}

#[test]
fn the_agent_never_falls_under_its_own_profiles() {
    require_root();
    // The agent runs in `<base>/agent`; the profile selects every child of `<base>`
    // and allows no egress. Its own cgroup stays out (a parent entry would cover it
    // from its first process, so it gets an entry of its own that says so); a sibling
    // is covered.
    let base = unique("cgwarden-test-self");
    let _base = TestCgroup::create(&base);
    let own = TestCgroup::create(&format!("{base}/agent"));
    let profile = ProfileFile::new(&format!(
        "name: everything-below\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n"
    ));
    let agent = RunningAgent::start_in_cgroup(profile.path(), &own);
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    let (code, out, err) = agent.client("status -o json");
    assert_eq!(code, Some(0), "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cgroups = status["profiles"][0]["cgroups"].as_array().unwrap();
    assert!(cgroups.iter().any(|c| c == app.relative()), "{cgroups:?}");
    assert!(!cgroups.iter().any(|c| c == own.relative()), "{cgroups:?}");
    // A connect from the agent's own cgroup is not judged; the same from the app is.
    let server = TcpServer::bind("127.0.0.94");
    let probe = |cgroup: &TestCgroup| {
        cgroup.run(Command::new(netprobe()).args(["tcp", &server.addr.to_string()]))
    };
    let own_connect = probe(&own);
    assert!(
        own_connect.starts_with("ok"),
        "the agent's own cgroup was judged: {own_connect}"
    );
    let app_connect = probe(&app);
    assert!(
        app_connect.starts_with("error"),
        "the app was not judged: {app_connect}"
    );
}
