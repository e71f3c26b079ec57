//! Nothing leaves unjudged: under an egress allowlist, every socket no hook can judge is
//! refused at creation (raw IP, protocols without a sock_addr hook) or its creator is
//! killed at `socket()` (packet sockets, whose frames skip every cgroup hook), and
//! reported. The attacker is root with CAP_NET_RAW in the monitored cgroup.

use cgwarden_tests::{ProfileFile, agent::RunningAgent, engines, exec, exec_full, require_root};
use serde_json::Value;

/// Tries each socket in a child of its own and prints `<name> <outcome>` per line:
/// `created`, `errno <n>`, or `killed <signal>`.
const ATTACKER: &str = r#"
import os, socket, sys
attempts = [
    ("packet-raw", socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
    ("packet-dgram", socket.AF_PACKET, socket.SOCK_DGRAM, 0x0300),
    ("xdp", 44, socket.SOCK_RAW, 0),
    ("raw-icmp", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    ("raw6-tcp", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP),
    ("tcp", socket.AF_INET, socket.SOCK_STREAM, 0),
    ("udp6", socket.AF_INET6, socket.SOCK_DGRAM, 0),
]
for name, fam, typ, proto in attempts:
    pid = os.fork()
    if pid == 0:
        try:
            socket.socket(fam, typ, proto)
            os._exit(0)
        except OSError as e:
            os._exit(100 + e.errno)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        print(name, "killed", os.WTERMSIG(status))
    elif os.WEXITSTATUS(status) == 0:
        print(name, "created")
    else:
        print(name, "errno", os.WEXITSTATUS(status) - 100)
sys.stdout.flush()
"#;

fn outcomes(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(' ')?;
            Some((name.to_owned(), rest.to_owned()))
        })
        .collect()
}

fn outcome<'a>(all: &'a [(String, String)], name: &str) -> &'a str {
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, o)| o.as_str())
        .unwrap_or_else(|| panic!("no outcome for {name} in {all:?}"))
}

fn deviations<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "deviation" && e["deviation"] == name)
        .collect()
}

#[test]
fn an_allowlist_refuses_raw_sockets_and_kills_packet_socket_creators_by_default() {
    require_root();
    // No `runtime:` section at all: the allowlist alone closes these doors.
    let profile = ProfileFile::new("name: allowlist\nmode: enforce\negress:\n  default: deny\n");
    // The packet-socket check runs at socket()'s own tracepoint (the agent), or in the
    // raw sys_enter program (`cgwarden exec`'s default): both must kill.
    for hooks in ["raw", "tracepoints"] {
        let out = exec_full(
            profile.path(),
            &["--syscall-hooks", hooks],
            &["python3", "-c", ATTACKER],
            "",
        );
        let all = outcomes(&out.stdout);
        for packet in ["packet-raw", "packet-dgram", "xdp"] {
            assert_eq!(
                outcome(&all, packet),
                "killed 9",
                "{hooks} {packet}: {all:?}"
            );
        }
        for raw in ["raw-icmp", "raw6-tcp"] {
            assert_eq!(outcome(&all, raw), "errno 1", "{hooks} {raw}: {all:?}");
        }
        assert_eq!(outcome(&all, "tcp"), "created", "{hooks}");
        assert_eq!(outcome(&all, "udp6"), "created", "{hooks}");
        let packets = deviations(&out.events, "packet_socket");
        assert_eq!(packets.len(), 3, "{hooks}: {:#?}", out.events);
        assert!(packets.iter().all(|e| e["verdict"] == "deny"), "{hooks}");
        assert!(
            packets[0]["detail"]
                .as_str()
                .unwrap()
                .starts_with("AF_PACKET SOCK_RAW"),
            "{hooks}"
        );
        assert!(
            packets[2]["detail"].as_str().unwrap().starts_with("AF_XDP"),
            "{hooks}"
        );
        assert_eq!(deviations(&out.events, "raw_socket").len(), 2, "{hooks}");
    }
}

#[test]
fn audit_reports_the_same_sockets_and_refuses_nothing() {
    require_root();
    let profile = ProfileFile::new("name: allowlist\nmode: audit\negress:\n  default: deny\n");
    let out = exec(profile.path(), &["python3", "-c", ATTACKER]);
    let all = outcomes(&out.stdout);
    assert!(all.iter().all(|(_, o)| o == "created"), "{all:?}");
    let reported = deviations(&out.events, "packet_socket").len()
        + deviations(&out.events, "raw_socket").len();
    assert_eq!(reported, 5, "{:#?}", out.events);
    assert!(
        out.events
            .iter()
            .filter(|e| e["kind"] == "deviation")
            .all(|e| e["verdict"] == "audit")
    );
}

#[test]
fn only_an_explicit_allow_or_a_denylist_lets_them_be() {
    require_root();
    for body in [
        "egress:\n  default: deny\nruntime:\n  raw_sockets: allow\n",
        "egress:\n  default: allow\n",
    ] {
        let profile = ProfileFile::new(&format!("name: open\nmode: enforce\n{body}"));
        let out = exec(profile.path(), &["python3", "-c", ATTACKER]);
        let all = outcomes(&out.stdout);
        assert!(all.iter().all(|(_, o)| o == "created"), "{body}: {all:?}");
        assert!(
            out.events.iter().all(|e| e["kind"] != "deviation"),
            "{body}: {:#?}",
            out.events
        );
    }
}

#[test]
fn a_docker_container_with_cap_net_raw_cannot_open_a_packet_socket() {
    require_root();
    engines::docker();
    let profile = ProfileFile::new(
        "name: docker-allowlist\nmode: enforce\nselector:\n  runtime: docker\negress:\n  default: deny\n  allow:\n    - to: [127.0.0.0/8, \"::1\"]\n",
    );
    let agent = RunningAgent::start(profile.path());
    // Docker grants CAP_NET_RAW by default; busybox's arping opens an AF_PACKET socket.
    let out = engines::docker_run(
        &["--network", "none"],
        &["arping", "-c", "1", "-w", "1", "-I", "lo", "127.0.0.1"],
    );
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let events = agent.stop_and_read();
    let packets = deviations(&events, "packet_socket");
    assert_eq!(packets.len(), 1, "{events:#?}");
    assert_eq!(packets[0]["verdict"], "deny");
    assert_eq!(packets[0]["container"]["runtime"], "docker");
}

#[test]
fn a_docker_container_cannot_listen_beyond_loopback() {
    require_root();
    engines::docker();
    let profile = ProfileFile::new(
        "name: docker-binds\nmode: enforce\nselector:\n  runtime: docker\negress:\n  default: allow\nruntime:\n  binds: loopback\n",
    );
    let agent = RunningAgent::start(profile.path());
    // busybox nc listens on the wildcard address: an explicit bind, refused.
    let wide = engines::docker_run(&["--network", "none"], &["nc", "-l", "-p", "8080"]);
    assert!(
        String::from_utf8_lossy(&wide.stderr).contains("Operation not permitted"),
        "{wide:?}"
    );
    // Loopback is fine: a listener that exits after its first (absent) client's timeout.
    let narrow = engines::docker_run(
        &["--network", "none"],
        &[
            "sh",
            "-c",
            "timeout 1 nc -l -s 127.0.0.1 -p 8080; echo listened",
        ],
    );
    assert!(
        String::from_utf8_lossy(&narrow.stdout).contains("listened")
            && !String::from_utf8_lossy(&narrow.stderr).contains("not permitted"),
        "{narrow:?}"
    );
    let events = agent.stop_and_read();
    let binds: Vec<_> = events.iter().filter(|e| e["kind"] == "bind").collect();
    assert_eq!(binds.len(), 1, "{events:#?}");
    assert_eq!(binds[0]["verdict"], "deny");
    assert_eq!(binds[0]["port"], 8080);
    assert_eq!(binds[0]["container"]["runtime"], "docker");
}
