//! Egress enforcement in the kernel: every rule kind, address form, mode and hook, with
//! real sockets on loopback addresses and on test hosts in network namespaces.

use cgwarden_tests::{
    ExecOutput, ProfileFile, exec, exec_with_input,
    net::{TcpServer, UdpServer},
    net_events,
    netns::{self, NetnsPair},
    netprobe, require_root,
};

const EPERM: &str = "error 1";

/// Runs netprobe under `profile` with `attempts` (pairs of kind and address).
fn probe(profile: &ProfileFile, attempts: &[(&str, String)]) -> (Vec<String>, ExecOutput) {
    let probe = netprobe();
    let mut cmd = vec![probe.to_str().unwrap().to_owned()];
    for (kind, addr) in attempts {
        cmd.push((*kind).to_owned());
        cmd.push(addr.clone());
    }
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = exec(profile.path(), &args);
    assert_eq!(out.code, Some(0), "{out:?}");
    (out.stdout.lines().map(str::to_owned).collect(), out)
}

fn profile(mode: &str, default: &str, rules: &str) -> ProfileFile {
    ProfileFile::new(&format!(
        "name: egress-test\nmode: {mode}\negress:\n  default: {default}\n{rules}"
    ))
}

fn verdicts(out: &ExecOutput) -> Vec<(String, String, u64)> {
    net_events(&out.events)
        .iter()
        .map(|e| {
            (
                e["verdict"].as_str().unwrap().to_owned(),
                e["dst"].as_str().unwrap().to_owned(),
                e["port"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn cidr_address_port_range_and_protocol_rules_over_tcp_and_udp_v4_and_v6() {
    require_root();
    let t1 = TcpServer::bind("127.0.0.1");
    let t2 = TcpServer::bind("127.0.0.2");
    let t6 = TcpServer::bind("::1");
    let u1 = UdpServer::bind("127.0.0.1");
    let u6 = UdpServer::bind("::1");
    let rules = format!(
        "  allow:\n\
         \x20   - name: tcp-one\n      to: 127.0.0.1\n      ports: [{t1}]\n      protocol: tcp\n\
         \x20   - name: udp-range\n      to: 127.0.0.0/30\n      ports: [\"{lo}-{hi}\"]\n      protocol: udp\n\
         \x20   - name: v6\n      to: \"::1/128\"\n      ports: [{t6}, {u6}]\n",
        t1 = t1.port(),
        lo = u1.port() - 1,
        hi = u1.port() + 1,
        t6 = t6.port(),
        u6 = u6.port()
    );
    let p = profile("enforce", "deny", &rules);
    let (results, out) = probe(
        &p,
        &[
            ("tcp", t1.addr.to_string()),                // allowed: tcp-one
            ("tcp", t2.addr.to_string()),                // denied: address
            ("udp", u1.addr.to_string()),                // allowed: udp-range
            ("udp", format!("127.0.0.1:{}", t1.port())), // denied unless t1's port falls in the range
            ("tcp", format!("127.0.0.1:{}", u1.port())), // denied: udp-range is udp only
            ("tcp", t6.addr.to_string()),                // allowed: v6
            ("udp", u6.addr.to_string()),                // allowed: v6
            ("udp", format!("[::1]:{}", u6.port() + 2)), // denied: port
        ],
    );
    let udp_t1_in_range = (u1.port() - 1..=u1.port() + 1).contains(&t1.port());
    let expected = [
        "ok",
        EPERM,
        "ok",
        if udp_t1_in_range { "ok" } else { EPERM },
        EPERM,
        "ok",
        "ok",
        EPERM,
    ];
    assert_eq!(results, expected, "{out:?}");
    assert!(t1.accepted() >= 1 && t6.accepted() >= 1);
    assert_eq!(t2.accepted(), 0);
    assert_eq!(u1.received(), 1);
    assert_eq!(u6.received(), 1);
    let denied: Vec<_> = verdicts(&out)
        .into_iter()
        .filter(|v| v.0 == "deny")
        .collect();
    assert_eq!(
        denied.len(),
        expected.iter().filter(|r| **r == EPERM).count(),
        "{:?}",
        out.events
    );
    let udp_port_event = net_events(&out.events)
        .into_iter()
        .find(|e| e["dst"] == "::1")
        .expect("v6 denial reported");
    assert_eq!(udp_port_event["protocol"], "udp");
    assert_eq!(udp_port_event["kind"], "sendmsg");
    assert_eq!(udp_port_event["family"], "ipv6");
    assert_eq!(udp_port_event["rule"], "default");
}

#[test]
fn address_forms_cannot_bypass_ipv4_rules() {
    require_root();
    let allowed = TcpServer::bind("127.0.0.1");
    let other = TcpServer::bind("127.0.0.3");
    let u = UdpServer::bind("127.0.0.3");
    let p = profile(
        "enforce",
        "deny",
        &format!(
            "  allow:\n    - to: 127.0.0.1\n      ports: [{}]\n",
            allowed.port()
        ),
    );
    let (results, out) = probe(
        &p,
        &[
            // v4-mapped through an AF_INET6 socket: judged as the IPv4 address.
            ("tcp", format!("[::ffff:127.0.0.1]:{}", allowed.port())),
            ("tcp", format!("[::ffff:127.0.0.3]:{}", other.port())),
            // 0.0.0.0 and :: reach the local host: judged as 127.0.0.1 / ::1.
            ("tcp", format!("0.0.0.0:{}", allowed.port())),
            ("tcp", format!("0.0.0.0:{}", other.port())),
            ("tcp", format!("[::]:{}", allowed.port())),
            // A scope id does not change the address.
            ("tcp", format!("[fe80::1%1]:{}", allowed.port())),
            // Connected UDP: judged at connect, so the send never happens.
            ("udp-connected", u.addr.to_string()),
            ("udp", format!("[::ffff:127.0.0.3]:{}", u.port())),
        ],
    );
    assert_eq!(
        results,
        ["ok", EPERM, "ok", EPERM, EPERM, EPERM, EPERM, EPERM],
        "{out:?}"
    );
    assert_eq!(other.accepted(), 0);
    assert_eq!(u.received(), 0);
    let v = verdicts(&out);
    assert!(
        v.contains(&("deny".into(), "127.0.0.3".into(), u64::from(other.port()))),
        "{v:?}"
    );
    assert!(
        v.contains(&("deny".into(), "::1".into(), u64::from(allowed.port()))),
        "{v:?}"
    );
    assert!(
        v.contains(&("deny".into(), "fe80::1".into(), u64::from(allowed.port()))),
        "{v:?}"
    );
    let mapped = net_events(&out.events)
        .into_iter()
        .find(|e| e["family"] == "ipv6" && e["dst"] == "127.0.0.3")
        .expect("v4-mapped connect reported with its IPv4 address");
    assert_eq!(mapped["kind"], "connect");
}

#[test]
fn audit_mode_lets_flows_through_and_reports_them() {
    require_root();
    let server = TcpServer::bind("127.0.0.2");
    let p = profile("audit", "deny", "  allow:\n    - to: 127.0.0.1\n");
    let (results, out) = probe(&p, &[("tcp", server.addr.to_string())]);
    assert_eq!(results, ["ok"]);
    assert_eq!(server.accepted(), 1);
    assert_eq!(
        verdicts(&out),
        [("audit".into(), "127.0.0.2".into(), u64::from(server.port()))]
    );
}

#[test]
fn denylist_mode_and_more_specific_rules() {
    require_root();
    let a = TcpServer::bind("127.0.0.4");
    let b = TcpServer::bind("127.0.0.5");
    let p = profile(
        "enforce",
        "allow",
        &format!(
            "  deny:\n    - name: block-net\n      to: 127.0.0.4/31\n  allow:\n    - name: except-b\n      to: 127.0.0.5\n      ports: [{}]\n",
            b.port()
        ),
    );
    let (results, out) = probe(
        &p,
        &[
            ("tcp", a.addr.to_string()),
            ("tcp", b.addr.to_string()),
            ("tcp", format!("127.0.0.5:{}", a.port())),
            ("tcp", format!("127.0.0.6:{}", a.port())),
        ],
    );
    // 127.0.0.6 is outside the denied /31: the default allows it (nothing listens).
    assert_eq!(results[..3], ["error 1", "ok", "error 1"], "{out:?}");
    assert_ne!(results[3], EPERM);
    let rules: Vec<&str> = net_events(&out.events)
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["block-net", "block-net"]);
}

#[test]
fn icmp_is_judged_by_the_packet_backstop() {
    require_root();
    // Raw sockets allowed explicitly (an allowlist refuses them by default): then the
    // packet backstop judges what they send.
    let p = profile(
        "enforce",
        "deny",
        "  allow:\n    - to: 127.0.0.1\n      protocol: icmp\n    - to: 127.0.0.2\n      protocol: tcp\nruntime:\n  raw_sockets: allow\n",
    );
    let (results, out) = probe(
        &p,
        &[
            ("icmp-raw", "127.0.0.1:0".into()),
            ("icmp-raw", "127.0.0.2:0".into()),
            ("icmp-raw", "[::1]:0".into()),
        ],
    );
    assert_eq!(results, ["ok", EPERM, EPERM], "{out:?}");
    let events = net_events(&out.events);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["kind"] == "packet" && e["verdict"] == "deny")
    );
    assert_eq!(events[0]["protocol"], "icmp");
    assert_eq!(events[1]["protocol"], "icmpv6");
}

#[test]
fn ping_sockets_in_a_test_namespace_are_judged() {
    require_root();
    let hosts = NetnsPair::new("ping");
    let set = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &hosts.a,
            "sysctl",
            "-qw",
            "net.ipv4.ping_group_range=0 2147483647",
        ])
        .status()
        .unwrap();
    assert!(
        set.success(),
        "kernel feature missing: ping sockets (net.ipv4.ping_group_range)"
    );
    let p = profile(
        "enforce",
        "deny",
        &format!(
            "  allow:\n    - to: {}\n      protocol: icmp\n",
            netns::B_V4
        ),
    );
    let probe = netprobe();
    let out = exec(
        p.path(),
        &[
            "ip",
            "netns",
            "exec",
            &hosts.a,
            probe.to_str().unwrap(),
            "ping",
            &format!("{}:0", netns::B_V4),
            "ping",
            "192.0.2.9:0",
        ],
    );
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["ok", EPERM],
        "{out:?}"
    );
    let events = net_events(&out.events);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["dst"], "192.0.2.9");
    assert_eq!(events[0]["kind"], "packet");
}

#[test]
fn test_hosts_in_network_namespaces_over_v4_and_v6() {
    require_root();
    let hosts = NetnsPair::new("eg");
    let (b4, b6) = {
        let ns = hosts.b.clone();
        NetnsPair::within(&ns, || {
            (TcpServer::bind(netns::B_V4), TcpServer::bind(netns::B_V6))
        })
    };
    let p = profile(
        "enforce",
        "deny",
        &format!(
            "  allow:\n    - to: 192.0.2.0/24\n      ports: [{}]\n    - to: \"2001:db8::/64\"\n      ports: [{}]\n",
            b4.port(),
            b6.port()
        ),
    );
    let probe = netprobe();
    let out = exec(
        p.path(),
        &[
            "ip",
            "netns",
            "exec",
            &hosts.a,
            probe.to_str().unwrap(),
            "tcp",
            &b4.addr.to_string(),
            "tcp",
            &b6.addr.to_string(),
            "tcp",
            &format!("{}:{}", netns::B_V4, b6.port()),
            "tcp",
            &format!("[{}]:{}", netns::B_V6, b4.port()),
        ],
    );
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["ok", "ok", EPERM, EPERM],
        "{out:?}"
    );
    assert_eq!(b4.accepted(), 1);
    assert_eq!(b6.accepted(), 1);
    assert_eq!(net_events(&out.events).len(), 2);
}

#[test]
fn repeats_are_aggregated_in_the_kernel_and_counted_exactly() {
    require_root();
    let p = profile("enforce", "deny", "  allow:\n    - to: 127.0.0.1\n");
    let (results, out) = probe(&p, &[("tcp-loop", "2000@127.0.0.9:9".into())]);
    assert_eq!(results, [EPERM]);
    let events = net_events(&out.events);
    let total: u64 = events.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 2000, "{events:?}");
    assert!(
        events.len() <= 4,
        "a retry loop must not flood the agent: {} events",
        events.len()
    );
}

#[test]
fn report_all_includes_allowed_flows() {
    require_root();
    let server = TcpServer::bind("127.0.0.1");
    let p = profile(
        "enforce",
        "deny",
        "  report: all\n  allow:\n    - name: lo\n      to: 127.0.0.1\n",
    );
    let (_, out) = probe(&p, &[("tcp", server.addr.to_string())]);
    let events = net_events(&out.events);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["verdict"], "allow");
    assert_eq!(events[0]["rule"], "lo");
}

#[test]
fn a_ten_thousand_rule_profile_enforces_exactly() {
    require_root();
    // Rule i allows 127.1.x.y (x.y = i) on one UDP port; every address is probed with its
    // own port (allowed), a wrong port (denied), and over TCP-only rules' absence. With
    // this many whole addresses the profile's are in the kernel's hash map
    // (HOSTS_HASHED): each must still carry the rules of the prefix that contains it,
    // here a deny of 127.1.3.0/24 that decides its addresses' other ports.
    let mut rules = String::from("  deny:\n    - name: outer\n      to: 127.1.3.0/24\n  allow:\n");
    let mut input = String::new();
    let mut expected = Vec::new();
    for i in 0..10_000u32 {
        let addr = format!("127.1.{}.{}", i / 250, i % 250 + 1);
        let port = 20_000 + i % 5_000;
        rules.push_str(&format!(
            "    - to: {addr}\n      ports: [{port}]\n      protocol: udp\n"
        ));
        input.push_str(&format!("udp {addr}:{port}\nudp {addr}:{}\n", port + 1));
        expected.push("ok");
        expected.push(EPERM);
    }
    // Neighbours outside the set are denied too.
    input.push_str("udp 127.1.40.1:20000\nudp 127.1.0.251:20000\n");
    expected.extend([EPERM, EPERM]);
    let p = profile("enforce", "deny", &rules);
    let probe = netprobe();
    let out = exec_with_input(p.path(), &[probe.to_str().unwrap(), "-"], &input);
    let results: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(results.len(), expected.len(), "{}", out.stderr);
    let wrong: Vec<usize> = (0..expected.len())
        .filter(|&i| results[i] != expected[i])
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts, first at {:?}",
        wrong.len(),
        wrong.first()
    );
    let denied: u64 = net_events(&out.events)
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(denied, 10_002);
    // The wrong-port sends to 127.1.3.1–250 were denied by the containing prefix's
    // rule, not by the default: the hashed entries carry it.
    let outer: Vec<String> = net_events(&out.events)
        .iter()
        .filter(|e| e["dst"].as_str().is_some_and(|d| d.starts_with("127.1.3.")))
        .map(|e| e["rule"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outer.len(), 250, "{outer:?}");
    assert!(outer.iter().all(|r| r == "outer"), "{outer:?}");
}
