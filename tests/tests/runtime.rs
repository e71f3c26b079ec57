//! The hardened runtime profile: loopback-only binds, no raw sockets, the expected uid.

use cgwarden_tests::{ProfileFile, exec, exec_full, netprobe, require_root};

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

/// The events whose `deviation` field is `what` (`"device"`, `"uid"`, …), whatever
/// their `kind`.
fn events_with_deviation<'a>(
    events: &'a [serde_json::Value],
    what: &str,
) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["deviation"] == what).collect()
}

#[test]
fn binds_are_loopback_only_and_raw_sockets_are_refused() {
    require_root();
    let p = hardened("enforce");
    let out = exec(p.path(), &["python3", "-c", BINDS]);
    // 127.0.0.1 ok, 0.0.0.0:28080 refused, ::1 ok, 0.0.0.0:0 refused too (a listen()
    // after it would listen on every address).
    assert_eq!(out.stdout, "ok\nerror 1\nok\n", "{out:?}");
    let binds: Vec<_> = out.events.iter().filter(|e| e["kind"] == "bind").collect();
    assert_eq!(binds.len(), 2, "{binds:?}");
    assert_eq!(binds[0]["dst"], "0.0.0.0");
    assert_eq!(binds[0]["port"], 28080);
    assert_eq!(binds[0]["verdict"], "deny");
    assert_eq!(binds[1]["port"], 0);

    let probe = netprobe();
    let out = exec(
        p.path(),
        &[probe.to_str().unwrap(), "icmp-raw", "127.0.0.1:0"],
    );
    assert_eq!(out.stdout, "error 1\n", "{out:?}");
    let raw = events_with_deviation(&out.events, "raw_socket");
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

/// Every way a socket comes to listen or receive beyond loopback, each in a child of its
/// own (a listen the kernel cannot refuse kills its caller): `<name> <outcome>` lines.
const LISTENERS: &str = r#"
import os, socket
def unbound_listen():
    s = socket.socket(); s.listen()
def wildcard_port0_listen():
    s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen()
def unbound_listen_v6():
    s = socket.socket(socket.AF_INET6); s.listen()
def v6_wildcard_bind():
    s = socket.socket(socket.AF_INET6); s.bind(('::', 28082)); s.listen()
def udp_wildcard_bind():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 0))
def v4mapped_wildcard_bind():
    s = socket.socket(socket.AF_INET6); s.bind(('::ffff:0.0.0.0', 28083)); s.listen()
def loopback_port0_listen():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
def loopback_v6_listen():
    s = socket.socket(socket.AF_INET6); s.bind(('::1', 0)); s.listen()
def v4mapped_loopback_listen():
    s = socket.socket(socket.AF_INET6); s.bind(('::ffff:127.0.0.1', 0)); s.listen()
for f in [unbound_listen, wildcard_port0_listen, unbound_listen_v6, v6_wildcard_bind,
          udp_wildcard_bind, v4mapped_wildcard_bind, loopback_port0_listen,
          loopback_v6_listen, v4mapped_loopback_listen]:
    pid = os.fork()
    if pid == 0:
        try:
            f(); os._exit(0)
        except OSError as e:
            os._exit(100 + e.errno)
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st):
        print(f.__name__, 'killed', os.WTERMSIG(st))
    elif os.WEXITSTATUS(st) == 0:
        print(f.__name__, 'ok')
    else:
        print(f.__name__, 'errno', os.WEXITSTATUS(st) - 100)
"#;

#[test]
fn binds_loopback_holds_for_every_way_a_socket_comes_to_listen() {
    require_root();
    let p = hardened("enforce");
    // The listen check runs at listen()'s own tracepoint (the agent), or in the raw
    // sys_enter program (`cgwarden exec`'s default): both must kill.
    for hooks in ["raw", "tracepoints"] {
        let out = exec_full(
            p.path(),
            &["--syscall-hooks", hooks],
            &["python3", "-c", LISTENERS],
            "",
        );
        let expected = "unbound_listen killed 9\nwildcard_port0_listen errno 1\nunbound_listen_v6 killed 9\nv6_wildcard_bind errno 1\nudp_wildcard_bind errno 1\nv4mapped_wildcard_bind errno 1\nloopback_port0_listen ok\nloopback_v6_listen ok\nv4mapped_loopback_listen ok\n";
        assert_eq!(out.stdout, expected, "{hooks}: {out:?}");
        let listens: Vec<_> = out
            .events
            .iter()
            .filter(|e| e["kind"] == "listen")
            .collect();
        assert_eq!(listens.len(), 2, "{hooks}: {:#?}", out.events);
        assert!(
            listens
                .iter()
                .all(|e| e["verdict"] == "deny" && e["port"] == 0),
            "{hooks}"
        );
        assert_eq!(listens[0]["family"], "ipv4", "{hooks}");
        assert_eq!(listens[1]["family"], "ipv6", "{hooks}");
        let binds = out.events.iter().filter(|e| e["kind"] == "bind").count();
        assert_eq!(binds, 4, "{hooks}: {:#?}", out.events);
    }
    // Audit: every one goes through, each reported.
    let p = hardened("audit");
    let out = exec(p.path(), &["python3", "-c", LISTENERS]);
    assert!(out.stdout.lines().all(|l| l.ends_with(" ok")), "{out:?}");
    let reported: Vec<_> = out
        .events
        .iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("listen" | "bind")))
        .collect();
    // Four wildcard binds, and five listens beyond loopback (two unbound, three on the
    // wildcard binds that audit let through).
    assert_eq!(reported.len(), 9, "{reported:#?}");
    assert_eq!(reported.iter().filter(|e| e["kind"] == "listen").count(), 5);
    assert!(reported.iter().all(|e| e["verdict"] == "audit"));
}

#[test]
fn a_process_running_as_root_is_a_deviation_reported_once_per_program() {
    require_root();
    let p = hardened("enforce");
    let out = exec(p.path(), &["sh", "-c", "/bin/true; /bin/true; /bin/true"]);
    let uid = events_with_deviation(&out.events, "uid");
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

/// Starts an agent on `profile` (selector `/<base>/*`) and runs one runc container in
/// `/<base>/<id>` with `user` as its uid; returns the container's stdout and the events.
fn in_container(profile_body: &str, uid: u32, script: &str) -> (String, Vec<serde_json::Value>) {
    in_container_with(profile_body, script, |c| {
        c["process"]["user"] = serde_json::json!({ "uid": uid, "gid": uid });
    })
}

/// Like [`in_container`], with any change to the container's config.json.
fn in_container_with(
    profile_body: &str,
    script: &str,
    customise: impl FnOnce(&mut serde_json::Value),
) -> (String, Vec<serde_json::Value>) {
    let (_, run) = run_container(None, profile_body, script, customise, |_| {});
    (run.stdout, run.events)
}

#[test]
fn a_new_container_is_covered_from_its_first_process() {
    require_root();
    // No pause: the attempt is the container's very first command.
    let (stdout, events) = in_container(
        "syscalls:\n  - set: escape\n    action: kill\n",
        0,
        "/bin/busybox unshare -U true; echo unshare=$?",
    );
    assert_eq!(stdout.trim(), "unshare=137", "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["syscall"] == "unshare" && e["verdict"] == "deny")
    );
}

#[test]
fn a_hardened_container_has_no_deviation_and_a_root_one_does() {
    require_root();
    let body = "runtime:\n  user: 1000\n  binds: loopback\n  raw_sockets: deny\nsyscalls:\n  - set: escape\n    action: kill\n";
    let (stdout, events) = in_container(body, 1000, "echo hello");
    assert_eq!(stdout.trim(), "hello");
    let deviations: Vec<_> = events.iter().filter(|e| e["kind"] == "deviation").collect();
    assert!(deviations.is_empty(), "{deviations:?}");
    let (stdout, events) = in_container(body, 0, "echo hello; sleep 0.5");
    assert_eq!(stdout.trim(), "hello");
    let uid = events
        .iter()
        .find(|e| e["deviation"] == "uid")
        .unwrap_or_else(|| panic!("no uid deviation: {events:?}"));
    assert_eq!(uid["uid"], 0);
    assert_eq!(uid["profile"], "ctr");
    assert!(uid["cgroup_id"].as_u64().unwrap() > 1, "{uid}");
}

#[test]
fn profiles_from_oci_and_compose_pass_check() {
    require_root();
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    // runc's own default spec, hardened the way the gateway runs.
    let status = Command::new("runc")
        .arg("spec")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    config["process"]["capabilities"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let compose = dir.path().join("compose.yml");
    std::fs::write(
        &compose,
        "services:\n  gateway:\n    user: \"1000\"\n    cap_drop: [ALL]\n    read_only: true\n    security_opt: [\"no-new-privileges:true\"]\n    ports: [\"127.0.0.1:8443:8443\"]\n",
    )
    .unwrap();
    for (args, file) in [
        (
            vec![
                "profile",
                "from-oci",
                path.to_str().unwrap(),
                "--name",
                "gw",
            ],
            "oci.yaml",
        ),
        (
            vec![
                "profile",
                "from-compose",
                compose.to_str().unwrap(),
                "gateway",
            ],
            "compose.yaml",
        ),
    ] {
        let out = Command::new(cgwarden_tests::cgwarden())
            .args(&args)
            .output()
            .unwrap();
        cgwarden_tests::assert_success(&out);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("user: 1000") && text.contains("raw_sockets: deny"),
            "{text}"
        );
        // Both declare a read-only root: its writable mounts are the exceptions.
        assert!(
            text.contains("read_only: [/]") && text.contains("writable: [/dev, /proc"),
            "{text}"
        );
        assert!(text.contains("devices:\n    - default\n"), "{text}");
        // No capabilities after exec (empty effective set, `cap_drop: [ALL]`), and
        // no-new-privileges (runc's spec sets it; the service's security_opt).
        assert!(text.contains("\n  capabilities: []\n"), "{text}");
        assert!(text.contains("\n  no_new_privileges: true\n"), "{text}");
        let profile = dir.path().join(file);
        std::fs::write(&profile, &text).unwrap();
        let check = Command::new(cgwarden_tests::cgwarden())
            .arg("check")
            .arg(&profile)
            .output()
            .unwrap();
        cgwarden_tests::assert_success(&check);
    }
}

/// Opens /dev/null for reading and writing, then the device node given (c 1:11, what
/// /dev/kmsg is), then creates c 1:11 and c 1:3 nodes: one line per step, `ok` or
/// `error <errno>`.
const DEVICES: &str = r#"
import os, stat, sys
node, d = sys.argv[1], sys.argv[2]
def step(f):
    try:
        f(); print('ok')
    except OSError as e:
        print('error', e.errno)
step(lambda: os.close(os.open('/dev/null', os.O_RDONLY)))
step(lambda: os.close(os.open('/dev/null', os.O_WRONLY)))
step(lambda: os.close(os.open(node, os.O_RDONLY)))
step(lambda: os.mknod(d + '/mem2', 0o600 | stat.S_IFCHR, os.makedev(1, 11)))
step(lambda: os.mknod(d + '/null2', 0o600 | stat.S_IFCHR, os.makedev(1, 3)))
"#;

/// A temporary directory holding `mem`, a c 1:11 node made outside any profile (/dev/mem
/// itself, c 1:1, has no driver on this kernel: opening it fails with ENXIO).
fn device_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let node = std::ffi::CString::new(dir.path().join("mem").to_str().unwrap()).unwrap();
    // SAFETY: a plain mknod(2) on a NUL-terminated path.
    let rc = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 11)) };
    assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
    dir
}

fn run_devices(profile: &ProfileFile, dir: &std::path::Path) -> cgwarden_tests::ExecOutput {
    let node = dir.join("mem");
    exec(
        profile.path(),
        &[
            "python3",
            "-c",
            DEVICES,
            node.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    )
}

#[test]
fn devices_outside_the_allowlist_are_refused_in_enforce_and_reported_in_audit() {
    require_root();
    let dir = device_dir();
    let p = ProfileFile::new("name: dev\nmode: enforce\nruntime:\n  devices:\n    - default\n");
    let out = run_devices(&p, dir.path());
    // /dev/null read and write ok; c 1:11 refused for reading and for mknod; a null node
    // may be created (the default set allows rwm on it).
    assert_eq!(out.stdout, "ok\nok\nerror 1\nerror 1\nok\n", "{out:?}");
    let devs = events_with_deviation(&out.events, "device");
    assert_eq!(devs.len(), 2, "{:?}", out.events);
    for (e, access) in devs.iter().zip(["r", "m"]) {
        assert_eq!(e["verdict"], "deny", "{e}");
        assert_eq!(e["device"]["type"], "c", "{e}");
        assert_eq!(e["device"]["major"], 1, "{e}");
        assert_eq!(e["device"]["minor"], 11, "{e}");
        assert_eq!(e["device"]["access"], access, "{e}");
        assert_eq!(e["device"]["name"], "kmsg", "{e}");
        assert_eq!(e["profile"], "dev", "{e}");
        assert!(
            e["cgroup"].as_str().unwrap().starts_with("/cgwarden-exec-"),
            "{e}"
        );
    }
    std::fs::remove_file(dir.path().join("null2")).unwrap();

    // Audit: nothing refused, the same two accesses reported.
    p.rewrite("name: dev\nmode: audit\nruntime:\n  devices:\n    - default\n");
    let out = run_devices(&p, dir.path());
    assert_eq!(out.stdout, "ok\nok\nok\nok\nok\n", "{out:?}");
    let devs = events_with_deviation(&out.events, "device");
    assert_eq!(devs.len(), 2, "{:?}", out.events);
    assert!(devs.iter().all(|e| e["verdict"] == "audit"), "{devs:?}");
    std::fs::remove_file(dir.path().join("null2")).unwrap();
    std::fs::remove_file(dir.path().join("mem2")).unwrap();

    // A device rule allows exactly its accesses; no `devices:` restricts nothing.
    p.rewrite("name: dev\nmode: enforce\nruntime:\n  devices:\n    - default\n    - {type: c, major: 1, minor: \"*\", access: r}\n");
    let out = run_devices(&p, dir.path());
    assert_eq!(out.stdout, "ok\nok\nok\nerror 1\nok\n", "{out:?}");
    assert_eq!(
        events_with_deviation(&out.events, "device").len(),
        1,
        "{:?}",
        out.events
    );
    std::fs::remove_file(dir.path().join("null2")).unwrap();
    p.rewrite("name: dev\nmode: enforce\nruntime:\n  user: 0\n");
    let out = run_devices(&p, dir.path());
    assert_eq!(out.stdout, "ok\nok\nok\nok\nok\n", "{out:?}");
    assert!(
        events_with_deviation(&out.events, "device").is_empty(),
        "{:?}",
        out.events
    );
}

/// Writes in `$1/ro` (read-only) and `$1/ro/rw` (writable): each step prints its
/// errno or `ok`; relative paths after chdir. Sleeps before it changes directory again
/// and at the end: the agent reads the working directory when it handles the event
/// (within about 10 ms), so the relative paths are resolved where they were written.
const WRITES: &str = r#"
import os, sys, time
d = sys.argv[1]
ro, rw = d + '/ro', d + '/ro/rw'
def step(f):
    try:
        f(); print('ok')
    except OSError as e:
        print('error', e.errno)
step(lambda: open(ro + '/a', 'w').close())
step(lambda: open(rw + '/b', 'w').close())
step(lambda: open(ro + '/a').close())
step(lambda: os.mkdir(ro + '/d'))
step(lambda: os.rename(rw + '/b', ro + '/e'))
os.chdir(rw)
step(lambda: open('rel2', 'w').close())
# A relative source in a writable directory must not hide an absolute target under a
# read-only one.
step(lambda: os.rename('rel2', ro + '/f'))
step(lambda: open('../../ro/rw/x', 'w').close())
time.sleep(0.5)
os.chdir(ro)
step(lambda: open('rel', 'w').close())
step(lambda: os.unlink(ro + '/a'))
time.sleep(1)
"#;

#[test]
fn writes_under_read_only_paths_are_reported_in_a_plain_cgroup() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::create_dir_all(dir.path().join("ro/rw")).unwrap();
    let p = ProfileFile::new(&format!(
        "name: ro\nmode: enforce\nruntime:\n  read_only: [{d}/ro]\n  writable: [{d}/ro/rw]\n"
    ));
    let out = exec(p.path(), &["python3", "-c", WRITES, d]);
    // Nothing is refused: the file system is writable and the kernel cannot refuse.
    assert_eq!(out.stdout, "ok\n".repeat(10), "{out:?}");
    let devs = events_with_deviation(&out.events, "read_only");
    let seen: Vec<(&str, String)> = devs
        .iter()
        .map(|e| {
            (
                e["write"]["syscall"].as_str().unwrap(),
                e["write"]["path"].as_str().unwrap().replace(d, "$D"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("openat", "$D/ro/a".to_owned()),
            ("mkdir", "$D/ro/d".to_owned()),
            ("rename", "$D/ro/e".to_owned()),
            ("rename", "$D/ro/f".to_owned()),
            ("openat", "$D/ro/rel".to_owned()),
            ("unlink", "$D/ro/a".to_owned()),
        ],
        "{devs:?}"
    );
    // The relative write was resolved from the working directory.
    assert_eq!(devs[4]["write"]["written"], "rel", "{}", devs[4]);
    for e in &devs {
        assert_eq!(e["verdict"], "report", "{e}");
        assert_eq!(e["write"]["result"], "ok", "{e}");
        assert_eq!(e["profile"], "ro", "{e}");
        assert_eq!(e["process"], "python3", "{e}");
    }
}

/// A container as the gateway runs: uid 1000, read-only root, a tmpfs on /tmp.
fn gateway_like(c: &mut serde_json::Value, uid: u32) {
    c["process"]["user"] = serde_json::json!({ "uid": uid, "gid": uid });
    assert_eq!(c["root"]["readonly"], true);
    c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev"]
    }));
}

const READ_ONLY_ROOT: &str = "runtime:\n  read_only: [/]\n  writable: [/tmp, /dev, /proc]\n";

#[test]
fn a_write_under_a_read_only_root_is_reported_even_when_the_kernel_refuses_it() {
    require_root();
    let (stdout, events) = in_container_with(
        READ_ONLY_ROOT,
        "echo x > /etc/x; echo etc=$?; echo y > /tmp/y; echo tmp=$?; rm /bin/busybox; echo rm=$?; sleep 0.3",
        |c| gateway_like(c, 0),
    );
    // The root file system itself refuses (EROFS); the tmpfs takes the write.
    assert_eq!(stdout, "etc=1\ntmp=0\nrm=1\n", "{events:?}");
    let devs = events_with_deviation(&events, "read_only");
    assert_eq!(devs.len(), 2, "{devs:?}");
    let etc = devs[0];
    assert_eq!(etc["write"]["path"], "/etc/x", "{etc}");
    assert!(
        matches!(etc["write"]["syscall"].as_str(), Some("open" | "openat")),
        "{etc}"
    );
    assert_eq!(etc["write"]["result"], "EROFS", "{etc}");
    assert_eq!(etc["profile"], "ctr", "{etc}");
    assert!(etc["cgroup"].as_str().unwrap().contains("/cgw-"), "{etc}");
    let rm = devs[1];
    assert_eq!(rm["write"]["path"], "/bin/busybox", "{rm}");
    assert!(
        matches!(rm["write"]["syscall"].as_str(), Some("unlink" | "unlinkat")),
        "{rm}"
    );
    assert_eq!(rm["write"]["result"], "EROFS", "{rm}");
}

#[test]
fn the_hardened_gateway_container_has_no_deviation() {
    require_root();
    let body = format!(
        "{READ_ONLY_ROOT}  user: 1000\n  binds: loopback\n  raw_sockets: deny\n  devices: [default]\nsyscalls:\n  - set: escape\n    action: kill\n"
    );
    // `echo z > z` is a relative write the agent resolves from /proc while the shell
    // lives: the final sleep keeps it alive well past the agent's drain interval.
    let script = "echo hello; cat /etc/passwd > /dev/null; echo x > /tmp/y; cat /tmp/y; head -c 4 /dev/urandom > /dev/null; mkdir /tmp/d; rm -r /tmp/d; cd /tmp && echo z > z && cat z; sleep 1";
    let (stdout, events) = in_container_with(&body, script, |c| gateway_like(c, 1000));
    assert_eq!(stdout, "hello\nx\nz\n", "{events:?}");
    let deviations: Vec<_> = events.iter().filter(|e| e["kind"] == "deviation").collect();
    assert!(deviations.is_empty(), "{deviations:?}");
    // The same profile sees a write to the root and a device outside the list.
    let (_, events) = in_container_with(&body, "echo x > /etc/x; cat /dev/kmsg; sleep 0.3", |c| {
        gateway_like(c, 1000)
    });
    let devs = events_with_deviation(&events, "read_only");
    assert_eq!(devs.len(), 1, "{events:?}");
    assert_eq!(devs[0]["write"]["path"], "/etc/x");
}

#[test]
fn a_runtime_device_filter_on_the_container_cgroup_runs_alongside_ours() {
    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, devfilter, unique};
    require_root();
    let dir = device_dir();
    let base = unique("cgwarden-test-dev");
    let _base = TestCgroup::create(&base);
    let ctr = TestCgroup::create(&format!("{base}/ctr"));
    let profile = ProfileFile::new(&format!(
        "name: ctr\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\nruntime:\n  devices: [default]\n"
    ));
    let agent = RunningAgent::start(profile.path());
    let opens = |paths: &[&str]| {
        let script = "import os, sys\nfor p in sys.argv[1:]:\n    try:\n        os.close(os.open(p, os.O_RDONLY)); print('ok')\n    except OSError as e:\n        print('error', e.errno)\n";
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-c", script]).args(paths);
        ctr.run(&mut cmd)
    };
    let node = dir.path().join("mem");
    let node = node.to_str().unwrap();
    // runc attaches its filter to the container's own cgroup with BPF_F_ALLOW_MULTI
    // (cgroup v2): that works next to our link on an ancestor, and ours still judges.
    devfilter::attach(ctr.path(), 1).expect("attach an allowing runtime filter");
    assert_eq!(opens(&["/dev/null", node]), "ok\nerror 1\n");
    // A runtime filter that refuses is obeyed too: both programs must allow.
    devfilter::attach(ctr.path(), 0).expect("attach a refusing runtime filter");
    assert_eq!(opens(&["/dev/null"]), "error 1\n");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let events = agent.events();
    let devs = events_with_deviation(&events, "device");
    // Only ours is reported: /dev/null was refused by the runtime's filter, not ours.
    assert_eq!(devs.len(), 1, "{events:?}");
    assert_eq!(devs[0]["device"]["minor"], 11);
    assert_eq!(devs[0]["verdict"], "deny");
}

#[test]
fn the_device_allowlist_keeps_enforcing_after_the_agent_is_killed() {
    use cgwarden_tests::{
        agent::{RunningAgent, StateDir},
        cgroup::TestCgroup,
        unique,
    };
    require_root();
    let dir = device_dir();
    let node = dir.path().join("mem");
    let base = unique("cgwarden-test-dev");
    let _base = TestCgroup::create(&base);
    let ctr = TestCgroup::create(&format!("{base}/ctr"));
    let profile = ProfileFile::new(&format!(
        "name: ctr\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\nruntime:\n  devices: [default]\n"
    ));
    let state = StateDir::new();
    let agent = RunningAgent::start_in(profile.path(), state.path());
    assert!(
        state.path().read_dir().unwrap().flatten().any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with("links-")
            && e.path().join("device").exists()),
        "the device link is not pinned in {}",
        state.path().display()
    );
    agent.kill9();
    let read = |path: &std::path::Path| {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "head -c0 \"$1\" && echo ok || echo refused", "sh"])
            .arg(path);
        ctr.run(&mut cmd)
    };
    assert_eq!(read(&node), "refused\n");
    assert_eq!(read(std::path::Path::new("/dev/null")), "ok\n");
    drop(state);
    // Uninstalled: the pinned link is gone and the node opens again (the kernel frees
    // an unpinned link from a work queue, a moment later).
    let opened = cgwarden_tests::wait_for(std::time::Duration::from_secs(5), || {
        (read(&node) == "ok\n").then_some(())
    });
    assert!(opened.is_some(), "the device rule outlived the uninstall");
}

/// The profile a hardened container is held to: uid 1000, no capabilities,
/// no-new-privileges, read-only root (`read_only: [/]`, which the container's
/// config.json must promise too).
const HARDENED_CREDS: &str = "runtime:\n  user: 1000\n  capabilities: []\n  no_new_privileges: true\n  read_only: [/]\n  writable: [/tmp, /dev, /proc]\n";

/// What a container run under an agent produced.
struct Run {
    stdout: String,
    events: Vec<serde_json::Value>,
    /// The agent's log.
    log: String,
    /// The container's id.
    id: String,
}

/// Like [`in_container`], with the whole config.json and the rootfs in the caller's
/// hands; `selector` is the profile's selector body (None: `cgroup: /<base>/*`).
fn container_with(
    profile_body: &str,
    script: &str,
    customise: impl FnOnce(&mut serde_json::Value),
    rootfs: impl FnOnce(&std::path::Path),
) -> Run {
    container_selected(None, profile_body, script, customise, rootfs)
}

fn container_selected(
    selector: Option<&str>,
    profile_body: &str,
    script: &str,
    customise: impl FnOnce(&mut serde_json::Value),
    rootfs: impl FnOnce(&std::path::Path),
) -> Run {
    let (out, run) = run_container(selector, profile_body, script, customise, rootfs);
    assert!(
        out.status.success(),
        "container failed: {}\n{:?}",
        String::from_utf8_lossy(&out.stderr),
        run.events
    );
    run
}

/// Runs `script` in a new container under an agent enforcing a profile of
/// `profile_body` (`selector` as in [`container_selected`]), and returns the
/// container's exit and what the run produced, whether the container succeeded or not.
fn run_container(
    selector: Option<&str>,
    profile_body: &str,
    script: &str,
    customise: impl FnOnce(&mut serde_json::Value),
    rootfs: impl FnOnce(&std::path::Path),
) -> (std::process::Output, Run) {
    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, container::Container, unique};
    let base = unique("cgwarden-test-rt");
    let _base = TestCgroup::create(&base);
    let selector = selector.map_or_else(|| format!("  cgroup: \"/{base}/*\"\n"), str::to_owned);
    let profile = ProfileFile::new(&format!(
        "name: ctr\nmode: enforce\nselector:\n{selector}{profile_body}"
    ));
    let agent = RunningAgent::start(profile.path());
    let id = unique("cgw");
    let container = Container::new(
        &id,
        &format!("/{base}/{id}"),
        &["sh", "-c", script],
        customise,
    );
    rootfs(&container.rootfs());
    let out = container.run();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        events: agent.events(),
        log: agent.log(),
        id,
    };
    (out, run)
}

fn hardened_config(c: &mut serde_json::Value) {
    c["process"]["user"] = serde_json::json!({ "uid": 1000, "gid": 1000 });
    c["process"]["capabilities"] = serde_json::json!({});
    c["process"]["noNewPrivileges"] = serde_json::json!(true);
    c["root"]["readonly"] = serde_json::json!(true);
}

fn deviations<'a>(events: &'a [serde_json::Value], what: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "deviation" && e["deviation"] == what)
        .collect()
}

/// Whether the agent's log shows it read the container's OCI state (so a test that
/// expects no configuration deviation is not passing for want of looking).
fn discovered(run: &Run) -> bool {
    run.log.contains(&format!("container {} (", run.id))
}

#[test]
fn a_container_as_hardened_as_its_profile_has_no_credential_deviation() {
    require_root();
    let run = container_with(
        HARDENED_CREDS,
        "/bin/busybox id -u; /bin/busybox true; /bin/busybox sleep 0.5",
        hardened_config,
        |_| {},
    );
    assert_eq!(run.stdout.trim(), "1000");
    assert!(discovered(&run), "{}", run.log);
    let found: Vec<_> = run
        .events
        .iter()
        .filter(|e| e["kind"] == "deviation")
        .collect();
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_root_container_with_every_capability_and_no_nnp_deviates_by_name() {
    require_root();
    let all: Vec<String> = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_SYS_ADMIN",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_SYS_PTRACE",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_NET_BIND_SERVICE",
    ]
    .map(str::to_owned)
    .to_vec();
    let run = container_with(
        "runtime:\n  user: 1000\n  capabilities: [NET_BIND_SERVICE]\n  no_new_privileges: true\n  read_only: [/]\n  writable: [/tmp, /dev, /proc]\n",
        // `su` drops to uid 1000 itself before its exec: no privilege gain.
        "/bin/busybox id -u; /bin/busybox true; /bin/busybox su user -c '/bin/busybox id -u'; /bin/busybox sleep 0.5",
        |c| {
            c["process"]["user"] = serde_json::json!({ "uid": 0, "gid": 0 });
            c["process"]["capabilities"] = serde_json::json!({
                "bounding": all, "effective": all, "permitted": all,
            });
            c["process"]["noNewPrivileges"] = serde_json::json!(false);
            c["root"]["readonly"] = serde_json::json!(false);
        },
        |rootfs| std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap(),
    );
    let events = &run.events;
    assert_eq!(run.stdout.trim(), "0\n1000", "{}", run.log);
    let gains = deviations(events, "privilege_gain");
    assert!(gains.is_empty(), "{gains:?}");
    // At exec, from the kernel.
    assert!(!deviations(events, "uid").is_empty(), "{events:?}");
    let caps = deviations(events, "capabilities");
    let c = caps
        .first()
        .unwrap_or_else(|| panic!("no capabilities deviation: {events:?}"));
    let beyond: Vec<&str> = c["capabilities_beyond_profile"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(beyond.contains(&"CAP_SYS_ADMIN"), "{c}");
    assert!(beyond.contains(&"CAP_NET_RAW"), "{c}");
    // The profile allows this one.
    assert!(!beyond.contains(&"CAP_NET_BIND_SERVICE"), "{c}");
    assert_eq!(c["euid"], 0);
    assert_eq!(c["profile"], "ctr");
    let nnp = deviations(events, "no_new_privileges");
    assert!(!nnp.is_empty(), "{events:?}");
    assert_eq!(nnp[0]["no_new_privileges"], false);
    // At discovery, from config.json: once each.
    for what in [
        "oci_user",
        "oci_capabilities",
        "oci_no_new_privileges",
        "oci_read_only_root",
    ] {
        let found = deviations(events, what);
        assert_eq!(found.len(), 1, "{what}: {events:?}");
        assert_eq!(found[0]["container"]["id"], run.id.as_str(), "{}", found[0]);
    }
    let oci_caps = &deviations(events, "oci_capabilities")[0];
    assert!(
        oci_caps["detail"]
            .as_str()
            .unwrap()
            .contains("CAP_SYS_ADMIN"),
        "{oci_caps}"
    );
}

#[test]
fn a_setuid_root_program_in_a_no_new_privileges_profile_is_a_privilege_gain() {
    require_root();
    use std::os::unix::fs::PermissionsExt as _;
    let run = container_with(
        HARDENED_CREDS,
        "/bin/busybox id -u; /bin/suidbox true; echo done",
        |c| {
            hardened_config(c);
            // The runtime forgot no-new-privileges: a set-uid program works.
            c["process"]["noNewPrivileges"] = serde_json::json!(false);
        },
        |rootfs| {
            let suid = rootfs.join("bin/suidbox");
            std::fs::copy(rootfs.join("bin/busybox"), &suid).unwrap();
            std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        },
    );
    let events = &run.events;
    assert_eq!(run.stdout.trim(), "1000\ndone");
    let gain = deviations(events, "privilege_gain");
    let g = gain
        .iter()
        .find(|e| e["exe"] == "/bin/suidbox")
        .unwrap_or_else(|| panic!("no privilege gain: {events:?}"));
    assert_eq!(g["euid"], 0, "{g}");
    assert_eq!(g["uid"], 1000, "{g}");
    assert_eq!(g["before"]["euid"], 1000, "{g}");
    assert!(g["detail"].as_str().unwrap().contains("1000 -> 0"), "{g}");
    // The effective uid differs from the profile's while the real one matches.
    assert!(
        deviations(events, "euid")
            .iter()
            .any(|e| e["exe"] == "/bin/suidbox"),
        "{events:?}"
    );
    // Nothing set-uid ran before: the shell itself gained nothing.
    assert!(gain.iter().all(|e| e["exe"] == "/bin/suidbox"), "{gain:?}");
}

#[test]
fn a_container_is_selected_and_named_by_its_config_json_name() {
    require_root();
    let name = cgwarden_tests::unique("web");
    let run = container_selected(
        Some(&format!("  name: \"{name}\"\n")),
        "runtime:\n  user: 1000\n",
        // The name selector applies once the agent has read the container's state.
        "/bin/busybox sleep 1; /bin/busybox true; echo ok",
        |c| {
            c["annotations"] = serde_json::json!({ "io.kubernetes.container.name": name });
        },
        |_| {},
    );
    let events = &run.events;
    assert_eq!(run.stdout.trim(), "ok");
    let uid = deviations(events, "uid");
    let u = uid
        .iter()
        .find(|e| e["exe"] == "/bin/busybox")
        .unwrap_or_else(|| panic!("the name selector did not apply: {events:?}\n{}", run.log));
    assert_eq!(u["container"]["name"], name.as_str(), "{u}");
    assert_eq!(u["container"]["id"], run.id.as_str(), "{u}");
    assert_eq!(u["container"]["runtime"], "runc", "{u}");
    let oci = deviations(events, "oci_user");
    assert_eq!(oci.len(), 1, "{events:?}");
    assert_eq!(oci[0]["container"]["name"], name.as_str());
}

/// The cgroups `status` lists for profile `name`.
fn status_cgroups(agent: &cgwarden_tests::agent::RunningAgent, name: &str) -> Vec<String> {
    let (_, out, _) = agent.client("status -o json");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    status["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .flat_map(|p| p["cgroups"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn new_cgroups_get_their_profile_as_they_appear_and_lose_it_as_they_go() {
    require_root();
    use std::time::Duration;

    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, unique, wait_for};
    let base = unique("cgwarden-test-watch");
    let _base = TestCgroup::create(&base);
    // A glob on the name, not `<base>/*`: no parent entry covers these cgroups, only
    // their own, written when the agent sees them.
    let profile = ProfileFile::new(&format!(
        "name: watched\nmode: audit\nselector:\n  cgroup: \"/{base}/c-*\"\n"
    ));
    // The backstop walk only after an hour: whatever is seen below was seen by inotify.
    let agent = RunningAgent::start_with(profile.path(), &["--walk-every", "1h"]);
    // The watches are set up just after the agent says it enforces.
    let watching = wait_for(Duration::from_secs(5), || {
        agent.log().contains("watching").then_some(())
    });
    assert!(watching.is_some(), "{}", agent.log());
    for i in 0..5 {
        let cgroup = TestCgroup::create(&format!("{base}/c-{i}"));
        let rel = cgroup.relative().to_owned();
        let seen = wait_for(Duration::from_secs(5), || {
            status_cgroups(&agent, "watched")
                .contains(&rel)
                .then_some(())
        });
        assert!(
            seen.is_some(),
            "{rel} never got its profile:\n{}",
            agent.log()
        );
        drop(cgroup);
        let gone = wait_for(Duration::from_secs(5), || {
            (!status_cgroups(&agent, "watched").contains(&rel)).then_some(())
        });
        assert!(gone.is_some(), "{rel} kept its profile after it went");
    }
}

#[test]
fn cgroups_made_while_the_agent_starts_get_their_profile_without_a_walk() {
    require_root();
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Duration,
    };

    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, unique, wait_for};
    let base = unique("cgwarden-test-startwatch");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: watched\nmode: audit\nselector:\n  cgroup: \"/{base}/c-*\"\n"
    ));
    // A container runtime does not wait for the agent: cgroups keep appearing while
    // it starts, also between its start-up walk and its watches. With the backstop
    // walk an hour away, each must still get its profile.
    let stop = Arc::new(AtomicBool::new(false));
    let maker = {
        let (stop, base) = (stop.clone(), base.clone());
        std::thread::spawn(move || {
            let mut made = Vec::new();
            while !stop.load(Ordering::Relaxed) && made.len() < 2_000 {
                made.push(TestCgroup::create(&format!("{base}/c-{}", made.len())));
                std::thread::sleep(Duration::from_millis(1));
            }
            made
        })
    };
    let agent = RunningAgent::start_with(profile.path(), &["--walk-every", "1h"]);
    let watching = wait_for(Duration::from_secs(5), || {
        agent.log().contains("watching").then_some(())
    });
    assert!(watching.is_some(), "{}", agent.log());
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let made = maker.join().expect("the cgroup maker");
    let wanted: Vec<String> = made.iter().map(|c| c.relative().to_owned()).collect();
    let all = wait_for(Duration::from_secs(5), || {
        let have = status_cgroups(&agent, "watched");
        wanted.iter().all(|c| have.contains(c)).then_some(())
    });
    let have = status_cgroups(&agent, "watched");
    let missing: Vec<_> = wanted.iter().filter(|c| !have.contains(c)).collect();
    assert!(
        all.is_some(),
        "{} of {} cgroups made while the agent started never got their profile: {missing:?}",
        missing.len(),
        wanted.len()
    );
}

#[test]
fn without_the_kernel_s_credential_layout_a_profile_that_needs_it_is_refused() {
    require_root();
    let p = ProfileFile::new(
        "name: creds\nmode: audit\nruntime:\n  capabilities: []\n  no_new_privileges: true\n",
    );
    let run = |btf: &str| {
        std::process::Command::new(cgwarden_tests::cgwarden())
            .args(["exec", "--policy"])
            .arg(p.path())
            .args(["--", "true"])
            .env("CGWARDEN_BTF", btf)
            .output()
            .unwrap()
    };
    let out = run("/nonexistent/vmlinux");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `exec` exits as `docker run` does: 125 when cgwarden itself fails.
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("profile `creds`") && stderr.contains("/nonexistent/vmlinux"),
        "{stderr}"
    );
    // The same profile runs with the kernel's own BTF.
    let out = run("/sys/kernel/btf/vmlinux");
    cgwarden_tests::assert_success(&out);
    // A profile without those keys does not need the layout.
    let plain = ProfileFile::new("name: plain\nmode: audit\nruntime:\n  user: 0\n");
    let out = std::process::Command::new(cgwarden_tests::cgwarden())
        .args(["exec", "--policy"])
        .arg(plain.path())
        .args(["--", "true"])
        .env("CGWARDEN_BTF", "/nonexistent/vmlinux")
        .output()
        .unwrap();
    cgwarden_tests::assert_success(&out);
}

#[test]
fn processes_running_before_the_profile_are_judged_when_it_applies() {
    require_root();
    use std::{process::Command, time::Duration};

    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup, unique};
    let base = unique("cgwarden-test-running");
    let cgroup = TestCgroup::create(&base);
    // Root with every capability, no no-new-privileges: started before any agent.
    let mut sleeper = cgroup.spawn(Command::new("sleep").arg("30"));
    let profile = ProfileFile::new(&format!(
        "name: late\nmode: audit\nselector:\n  cgroup: \"/{base}\"\nruntime:\n  capabilities: [NET_BIND_SERVICE]\n  no_new_privileges: true\n"
    ));
    let agent = RunningAgent::start(profile.path());
    let pid = sleeper.id();
    let found = agent.wait_event(Duration::from_secs(5), |e| {
        e["deviation"] == "capabilities" && e["pid"] == pid
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let e = found.unwrap_or_else(|| panic!("no deviation: {:?}\n{}", agent.events(), agent.log()));
    assert!(e["exe"].as_str().unwrap().ends_with("/sleep"), "{e}");
    assert_eq!(e["cgroup"], format!("/{base}"), "{e}");
    let beyond = e["capabilities_beyond_profile"].as_array().unwrap();
    assert!(beyond.iter().any(|c| c == "CAP_SYS_ADMIN"), "{e}");
    assert!(beyond.iter().all(|c| c != "CAP_NET_BIND_SERVICE"), "{e}");
    assert!(
        agent
            .events()
            .iter()
            .any(|e| e["deviation"] == "no_new_privileges" && e["pid"] == pid),
        "{:?}",
        agent.events()
    );
}
