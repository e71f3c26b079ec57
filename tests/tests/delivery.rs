//! Event delivery: Falco-compatible output, syslog, Prometheus metrics, the live
//! stream, the agent's config file, and exact accounting under a storm.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    time::Duration,
};

use cgwarden_tests::{
    ProfileFile, agent::RunningAgent, cgroup::TestCgroup, cgwarden, exec_full, net_events,
    netprobe, read_json_lines, require_root, unique,
};

fn deny_all(name: &str) -> ProfileFile {
    ProfileFile::new(&format!(
        "name: {name}\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 127.0.0.1\n"
    ))
}

#[test]
fn falco_output_has_every_field_falcosidekick_reads() {
    require_root();
    let profile = deny_all("falco");
    let dir = tempfile::tempdir().unwrap();
    let falco = dir.path().join("falco.json");
    let sink = format!("falco:{}", falco.display());
    let probe = netprobe();
    let out = exec_full(
        profile.path(),
        &["--sink", &sink],
        &[probe.to_str().unwrap(), "tcp", "127.0.0.9:4242"],
        "",
    );
    assert_eq!(out.stdout, "error 1\n", "{out:?}");
    let alerts = read_json_lines(&falco);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    let time = a["time"].as_str().unwrap();
    assert!(
        time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    assert_eq!(a["rule"], "cgwarden egress denied");
    assert_eq!(a["priority"], "Warning");
    assert_eq!(a["source"], "cgwarden");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(a["hostname"], hostname.trim());
    assert!(a["tags"].as_array().unwrap().iter().any(|t| t == "egress"));
    let output = a["output"].as_str().unwrap();
    assert!(
        output.contains("127.0.0.9:4242/tcp") && output.contains("netprobe"),
        "{output}"
    );
    let f = &a["output_fields"];
    assert_eq!(f["evt.type"], "connect");
    assert_eq!(f["proc.name"], "netprobe");
    assert_eq!(f["fd.sip"], "127.0.0.9");
    assert_eq!(f["fd.sport"], 4242);
    assert_eq!(f["fd.l4proto"], "tcp");
    assert_eq!(f["cgwarden.profile"], "falco");
    assert_eq!(f["cgwarden.rule"], "default");
    assert_eq!(f["cgwarden.verdict"], "deny");
    assert!(f["proc.pid"].as_u64().unwrap() > 1);
    // Falco's names: the group is `group.gid`; outside a container its fields are null.
    assert!(f["group.gid"].is_u64(), "{f}");
    assert!(f.get("user.gid").is_none(), "{f}");
    for field in [
        "container.id",
        "container.name",
        "k8s.ns.name",
        "k8s.pod.name",
    ] {
        assert!(f[field].is_null(), "{field}: {f}");
    }
    // The JSON sink got the same event.
    assert_eq!(net_events(&out.events).len(), 1);
}

#[test]
fn syslog_sink_sends_one_message_per_event() {
    require_root();
    let profile = deny_all("syslog");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("log");
    let server = UnixDatagram::bind(&socket).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let sink = format!("json:syslog={}", socket.display());
    let probe = netprobe();
    let out = exec_full(
        profile.path(),
        &["--sink", &sink],
        &[probe.to_str().unwrap(), "tcp", "127.0.0.9:4243"],
        "",
    );
    assert_eq!(out.stdout, "error 1\n");
    let mut buf = [0u8; 4096];
    let n = server.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.starts_with("<29>cgwarden["), "{msg}");
    let json: serde_json::Value =
        serde_json::from_str(&msg[msg.find("]: ").unwrap() + 3..]).unwrap();
    assert_eq!(json["port"], 4243);
}

#[test]
fn metrics_are_served_on_loopback_and_parse() {
    require_root();
    let base = unique("cgwarden-test-metrics");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: metrics\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n"
    ));
    let agent = RunningAgent::start_with(profile.path(), &["--metrics-per-container"]);
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(400));
    app.run(Command::new(netprobe()).args(["tcp-loop", "50@127.0.0.9:4244"]));
    let addr = agent.metrics_addr();
    assert!(addr.ip().is_loopback());
    let flows = format!(
        "cgwarden_flows_total{{kind=\"connect\",verdict=\"deny\",profile=\"metrics\",cgroup=\"{}\",container=\"\"}}",
        app.relative()
    );
    // Repeats reach the agent when the kernel's aggregation window has passed.
    let body = cgwarden_tests::wait_for(Duration::from_secs(5), || {
        let body = cgwarden_tests::agent::scrape(addr);
        body.contains(&format!("{flows} 50")).then_some(body)
    })
    .unwrap_or_else(|| cgwarden_tests::agent::scrape(addr));
    let mut values = std::collections::HashMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        values.insert(name.to_owned(), value);
    }
    assert_eq!(values.get(&flows), Some(&50.0), "{body}");
    assert_eq!(
        values.get("cgwarden_egress_denied_total"),
        Some(&50.0),
        "{body}"
    );
    assert_eq!(values.get("cgwarden_up"), Some(&1.0));
    // The build, as `--version` names it.
    let version = Command::new(cgwarden_tests::cgwarden())
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let build_id = version
        .trim()
        .strip_suffix(')')
        .and_then(|v| v.rsplit_once("(build "))
        .map(|(_, id)| id.to_owned())
        .unwrap_or_else(|| panic!("--version names no build: {version}"));
    assert_eq!(build_id.len(), 16, "{version}");
    let info = values
        .keys()
        .find(|k| k.starts_with("cgwarden_build_info{"))
        .unwrap_or_else(|| panic!("no cgwarden_build_info:\n{body}"));
    assert!(info.contains(&format!("build_id=\"{build_id}\"")), "{info}");
    assert_eq!(values[info], 1.0);
    // The app's cgroup, and its parent for the children it will have.
    assert_eq!(values.get("cgwarden_monitored_cgroups"), Some(&2.0));
    assert!(values["cgwarden_agent_resident_bytes"] > 1e6);
    assert!(values.contains_key("cgwarden_map_capacity{map=\"EGRESS\"}"));
    // A small profile's entries are all in the trie; the hash map of whole addresses
    // (for profiles with thousands) is there, empty.
    assert_eq!(
        values.get("cgwarden_map_entries{map=\"EGRESS_HOSTS\"}"),
        Some(&0.0)
    );
    // Every attached program has its run counter (zero unless kernel.bpf_stats_enabled).
    for program in ["connect4", "connect6", "sendmsg4", "sendmsg6", "skb_egress"] {
        let key = format!("cgwarden_program_runs_total{{program=\"{program}\"}}");
        assert!(values.contains_key(&key), "{key} missing:\n{body}");
    }
    // The DNS answer reader is not attached: no profile here reads DNS, so no packet
    // its sockets receive pays for it.
    assert!(
        !values.contains_key("cgwarden_program_runs_total{program=\"skb_ingress\"}"),
        "{body}"
    );
    // Per-rule hits: the default rule refused all fifty.
    assert_eq!(
        values
            .get("cgwarden_rule_hits_total{profile=\"metrics\",rule=\"default\",verdict=\"deny\"}"),
        Some(&50.0),
        "{body}"
    );
    // The app's own series go when its cgroup goes; the bounded ones stay.
    drop(app);
    let after = cgwarden_tests::wait_for(Duration::from_secs(10), || {
        let body = cgwarden_tests::agent::scrape(addr);
        (!body.contains(&flows)).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "the gone cgroup's series stayed:\n{}",
            cgwarden_tests::agent::scrape(addr)
        )
    });
    assert!(after.contains("cgwarden_rule_hits_total{"), "{after}");
    // Any other path is refused.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /debug HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn events_follow_streams_filtered_live_events() {
    require_root();
    let base = unique("cgwarden-test-follow");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: follow\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n"
    ));
    let agent = RunningAgent::start(profile.path());
    let app = TestCgroup::create(&format!("{base}/app"));
    let mut follower = Command::new(cgwarden())
        .args([
            "events",
            "--kind",
            "connect",
            "--container",
            "app",
            "--control",
        ])
        .arg(agent.control())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    app.run(Command::new(netprobe()).args(["udp", "127.0.0.9:53", "tcp", "127.0.0.9:4245"]));
    let mut line = String::new();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        e["kind"], "connect",
        "the sendmsg event was filtered out: {line}"
    );
    assert_eq!(e["port"], 4245);
}

#[test]
fn a_malformed_agent_config_is_refused_with_its_location() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, "policy: /nonexistent\nsinks:\n  - \"json\"\n").unwrap();
    let out = Command::new(cgwarden())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    // 3: an invalid agent config (docs/operations.md, "Exit codes").
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", config.display())), "{err}");
    assert!(err.contains("FORMAT:TARGET"), "{err}");
}

#[test]
fn a_storm_of_a_million_denied_connects_is_accounted_exactly() {
    require_root();
    let profile = deny_all("storm");
    let probe = netprobe();
    let out = exec_full(
        profile.path(),
        &[],
        &[
            probe.to_str().unwrap(),
            "tcp-loop",
            "1000000@127.0.0.9:4246",
        ],
        "",
    );
    assert_eq!(out.stdout, "error 1\n", "{}", out.stderr);
    let delivered: u64 = out
        .events
        .iter()
        .filter(|e| e["kind"] == "connect" || e["kind"] == "lost")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        delivered, 1_000_000,
        "delivered + aggregated + lost must equal the attempts"
    );
    let records = net_events(&out.events).len();
    assert!(
        records < 100,
        "{records} records for one repeated flow: aggregation failed"
    );
}
