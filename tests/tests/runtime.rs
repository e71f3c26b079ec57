//! The hardened runtime profile: loopback-only binds, no raw sockets, the expected uid.

use cgwarden_tests::{ProfileFile, exec, netprobe, require_root};

fn hardened(mode: &str) -> ProfileFile {
    ProfileFile::new(&format!(
        "name: hardened\nmode: {mode}\nruntime:\n  user: 1000\n  binds: loopback\n  raw_sockets: deny\n"
    ))
}

const BINDS: &str = r#"
import socket
for a in ('127.0.0.1', '0.0.0.0'):
    s = socket.socket()
    try:
        s.bind((a, 28080)); print('ok')
    except OSError as e:
        print('error', e.errno)
    s.close()
s = socket.socket(socket.AF_INET6); s.bind(('::1', 28081)); print('ok')
s = socket.socket(); s.bind(('0.0.0.0', 0)); print('ok')
"#;

#[test]
fn binds_are_loopback_only_and_raw_sockets_are_refused() {
    require_root();
    let p = hardened("enforce");
    let out = exec(p.path(), &["python3", "-c", BINDS]);
    // 127.0.0.1 ok, 0.0.0.0:28080 refused, ::1 ok, 0.0.0.0:0 (no listening port) ok.
    assert_eq!(out.stdout, "ok\nerror 1\nok\nok\n", "{out:?}");
    let binds: Vec<_> = out.events.iter().filter(|e| e["kind"] == "bind").collect();
    assert_eq!(binds.len(), 1, "{binds:?}");
    assert_eq!(binds[0]["dst"], "0.0.0.0");
    assert_eq!(binds[0]["port"], 28080);
    assert_eq!(binds[0]["verdict"], "deny");

    let probe = netprobe();
    let out = exec(
        p.path(),
        &[probe.to_str().unwrap(), "icmp-raw", "127.0.0.1:0"],
    );
    assert_eq!(out.stdout, "error 1\n", "{out:?}");
    let raw: Vec<_> = out
        .events
        .iter()
        .filter(|e| e["deviation"] == "raw_socket")
        .collect();
    assert_eq!(raw.len(), 1, "{:?}", out.events);
    assert_eq!(raw[0]["verdict"], "deny");
}

#[test]
fn audit_mode_reports_binds_and_raw_sockets_without_refusing() {
    require_root();
    let p = hardened("audit");
    let out = exec(p.path(), &["python3", "-c", BINDS]);
    assert_eq!(out.stdout, "ok\nok\nok\nok\n", "{out:?}");
    assert!(
        out.events
            .iter()
            .any(|e| e["kind"] == "bind" && e["verdict"] == "audit")
    );
}

#[test]
fn a_process_running_as_root_is_a_deviation_reported_once_per_program() {
    require_root();
    let p = hardened("enforce");
    let out = exec(p.path(), &["sh", "-c", "/bin/true; /bin/true; /bin/true"]);
    let uid: Vec<_> = out
        .events
        .iter()
        .filter(|e| e["deviation"] == "uid")
        .collect();
    let trues = uid
        .iter()
        .filter(|e| e["exe"] == "/bin/true" || e["exe"] == "/usr/bin/true")
        .count();
    assert_eq!(trues, 1, "{uid:?}");
    assert!(
        uid.iter()
            .all(|e| e["uid"] == 0 && e["detail"].as_str().unwrap().contains("uid 1000"))
    );
    // The expected uid produces nothing.
    let p = ProfileFile::new("name: rootok\nmode: enforce\nruntime:\n  user: 0\n");
    let out = exec(p.path(), &["sh", "-c", "/bin/true"]);
    assert!(
        out.events.iter().all(|e| e["kind"] != "deviation"),
        "{:?}",
        out.events
    );
}
