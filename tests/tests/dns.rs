//! Egress rules by DNS name: resolved by the agent (refreshed by TTL), and learned from
//! the answers each container receives, in the kernel, for that container only.

use cgwarden_tests::{
    ExecOutput, ProfileFile, dns::DnsServer, exec_full, net::TcpServer, netprobe, require_root,
};
use serde_json::Value;

const EPERM: &str = "error 1";

/// Answer sets (address, TTL) for one name.
type Sets<'a> = &'a [&'a [(&'a str, u32)]];

fn zone(entries: &[(&str, Sets)]) -> cgwarden_tests::dns::Zone {
    entries
        .iter()
        .map(|(name, sets)| {
            (
                (*name).to_owned(),
                sets.iter()
                    .map(|set| {
                        set.iter()
                            .map(|(a, ttl)| (a.parse().unwrap(), *ttl))
                            .collect()
                    })
                    .collect(),
            )
        })
        .collect()
}

fn run(
    profile: &ProfileFile,
    server: &DnsServer,
    attempts: &[String],
) -> (Vec<String>, ExecOutput) {
    let probe = netprobe();
    let mut cmd = vec![probe.to_str().unwrap()];
    cmd.extend(attempts.iter().map(String::as_str));
    let resolver = server.addr.to_string();
    let out = exec_full(profile.path(), &["--resolver", &resolver], &cmd, "");
    assert_eq!(out.code, Some(0), "{out:?}");
    (out.stdout.lines().map(str::to_owned).collect(), out)
}

fn dns_events(out: &ExecOutput) -> Vec<&Value> {
    out.events.iter().filter(|e| e["kind"] == "dns").collect()
}

#[test]
fn names_resolved_by_the_agent_are_allowed() {
    require_root();
    let server = TcpServer::bind("127.0.0.21");
    let dns = DnsServer::start(
        "127.53.0.1",
        zone(&[("api.test", &[&[("127.0.0.21", 300)]])]),
    );
    let profile = ProfileFile::new(&format!(
        "name: dns\nmode: enforce\negress:\n  default: deny\n  allow:\n    - name: api\n      to: api.test\n      ports: [{}]\n",
        server.port()
    ));
    let (results, out) = run(
        &profile,
        &dns,
        &[
            "tcp".into(),
            server.addr.to_string(),
            "tcp".into(),
            format!("127.0.0.22:{}", server.port()),
        ],
    );
    assert_eq!(results, ["ok", EPERM], "{out:?}");
    assert_eq!(dns.queries("api.test", 1), 1, "the agent resolved the name");
}

#[test]
fn answers_a_container_receives_are_allowed_for_that_container_only() {
    require_root();
    let server_a = TcpServer::bind("127.0.0.31");
    let server_b = TcpServer::bind("127.0.0.32");
    // CDN rotation: the agent gets .31, the container's own query gets .32.
    let dns = DnsServer::start(
        "127.53.0.2",
        zone(&[(
            "cdn.test",
            &[&[("127.0.0.31", 300)], &[("127.0.0.32", 300)]],
        )]),
    );
    let profile = ProfileFile::new(
        "name: dns\nmode: enforce\negress:\n  default: deny\n  allow:\n    - name: cdn\n      to: cdn.test\n      protocol: tcp\n    - name: resolver\n      to: 127.53.0.0/16\n      ports: [53]\n      protocol: udp\n",
    );
    let b = server_b.addr.to_string();
    let (results, out) = run(
        &profile,
        &dns,
        &[
            "tcp".into(),
            b.clone(),
            "dns".into(),
            format!("cdn.test@{}", dns.addr.ip()),
            "tcp".into(),
            b.clone(),
            "tcp".into(),
            server_a.addr.to_string(),
        ],
    );
    assert_eq!(results, [EPERM, "ok 127.0.0.32", "ok", "ok"], "{out:?}");
    assert_eq!(server_b.accepted(), 1);
    // Another container (another exec, another cgroup) did not learn it.
    let (results, out) = run(&profile, &dns, &["tcp".into(), b]);
    assert_eq!(results, [EPERM], "{out:?}");
}

#[test]
fn wildcards_match_learned_answers() {
    require_root();
    let good = TcpServer::bind("127.0.0.41");
    let bad = TcpServer::bind("127.0.0.42");
    let dns = DnsServer::start(
        "127.53.0.3",
        zone(&[
            ("a.b.svc.test", &[&[("127.0.0.41", 300)]]),
            ("svc.test.evil", &[&[("127.0.0.42", 300)]]),
        ]),
    );
    let profile = ProfileFile::new(&format!(
        "name: dns\nmode: enforce\negress:\n  default: deny\n  dns:\n    report: true\n  allow:\n    - to: \"*.svc.test\"\n      ports: [{}, {}]\n    - to: 127.53.0.3\n      ports: [53]\n",
        good.port(),
        bad.port()
    ));
    let server = dns.addr.ip().to_string();
    let (results, out) = run(
        &profile,
        &dns,
        &[
            "dns".into(),
            format!("a.b.svc.test@{server}"),
            "tcp".into(),
            good.addr.to_string(),
            "dns".into(),
            format!("svc.test.evil@{server}"),
            "tcp".into(),
            bad.addr.to_string(),
        ],
    );
    assert_eq!(
        results,
        ["ok 127.0.0.41", "ok", "ok 127.0.0.42", EPERM],
        "{out:?}"
    );
    let answers = dns_events(&out);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["name"], "a.b.svc.test");
    assert_eq!(answers[0]["learned"], true);
    assert_eq!(answers[0]["answers"][0]["addr"], "127.0.0.41");
    assert_eq!(answers[0]["answers"][0]["ttl"], 300);
    assert_eq!(answers[1]["name"], "svc.test.evil");
    assert_eq!(answers[1]["learned"], false);
}

#[test]
fn the_per_name_cap_is_reported_not_silent() {
    require_root();
    let servers: Vec<TcpServer> = (51..=54)
        .map(|i| TcpServer::bind(&format!("127.0.0.{i}")))
        .collect();
    let set: Vec<(&str, u32)> = vec![
        ("127.0.0.51", 300),
        ("127.0.0.52", 300),
        ("127.0.0.53", 300),
        ("127.0.0.54", 300),
    ];
    let dns = DnsServer::start("127.53.0.4", zone(&[("many.test", &[&set[..]])]));
    let ports: Vec<String> = servers.iter().map(|s| s.port().to_string()).collect();
    let profile = ProfileFile::new(&format!(
        "name: dns\nmode: enforce\negress:\n  default: deny\n  dns:\n    max_addresses_per_name: 2\n  allow:\n    - to: many.test\n      ports: [{}]\n    - to: 127.53.0.4\n      ports: [53]\n",
        ports.join(", ")
    ));
    let mut attempts = vec!["dns".to_owned(), format!("many.test@{}", dns.addr.ip())];
    for s in &servers {
        attempts.push("tcp".into());
        attempts.push(s.addr.to_string());
    }
    // The agent's own lookup allows all four; what the container learns from its own
    // answer is capped at two, and the two it could not learn are reported.
    let (_, out) = run(&profile, &dns, &attempts);
    let capped: Vec<_> = dns_events(&out)
        .into_iter()
        .filter(|e| e["capped"].as_u64() > Some(0))
        .collect();
    assert_eq!(capped.len(), 1, "{:?}", out.events);
    assert_eq!(capped[0]["capped"], 2);
    assert_eq!(capped[0]["name"], "many.test");
    // The answer arrives in softirq context, in whatever task runs then (on loopback,
    // the resolver's): the record names the process that asked, as its query showed it.
    assert_eq!(capped[0]["process"], "netprobe", "{}", capped[0]);
    assert_ne!(capped[0]["pid"], std::process::id(), "{}", capped[0]);
    assert_ne!(capped[0]["pid"], 0, "{}", capped[0]);
}

#[test]
fn learned_addresses_expire_with_their_ttl() {
    require_root();
    let server = TcpServer::bind("127.0.0.61");
    let dns = DnsServer::start(
        "127.53.0.5",
        zone(&[("short.test", &[&[], &[("127.0.0.61", 1)]])]),
    );
    let profile = ProfileFile::new(
        "name: dns\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: short.test\n    - to: 127.53.0.5\n      ports: [53]\n",
    );
    let addr = server.addr.to_string();
    // TTL 1 s is raised to the 5 s floor: allowed at once, denied after 6 s.
    let (results, out) = run(
        &profile,
        &dns,
        &[
            "dns".into(),
            format!("short.test@{}", dns.addr.ip()),
            "tcp".into(),
            addr.clone(),
            "sleep".into(),
            "6000".into(),
            "tcp".into(),
            addr,
        ],
    );
    assert_eq!(results, ["ok 127.0.0.61", "ok", "ok", EPERM], "{out:?}");
}
