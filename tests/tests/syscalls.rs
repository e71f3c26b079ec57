//! Selected-syscall monitoring and escape detection, in plain cgroups and in a real
//! runc container: each technique is reported with its arguments, `kill` kills before
//! the process returns to user space, and benign workloads produce no event.

use std::{process::Command, time::Duration};

use cgwarden_tests::{
    ExecOutput, ProfileFile, agent::RunningAgent, cgroup::TestCgroup, container::Container, exec,
    exec_full, require_root, unique,
};
use serde_json::Value;

fn profile(mode: &str, rules: &str) -> ProfileFile {
    ProfileFile::new(&format!("name: sys\nmode: {mode}\nsyscalls:\n{rules}"))
}

fn escape(action: &str) -> ProfileFile {
    profile(
        "enforce",
        &format!("  - set: escape\n    action: {action}\n"),
    )
}

fn syscall_events(out: &ExecOutput) -> Vec<&Value> {
    out.events
        .iter()
        .filter(|e| e["kind"] == "syscall")
        .collect()
}

fn python(code: &str) -> Vec<String> {
    vec!["python3".into(), "-c".into(), code.into()]
}

fn run(p: &ProfileFile, cmd: &[String]) -> ExecOutput {
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    exec(p.path(), &args)
}

#[test]
fn unshare_of_a_user_namespace_is_reported_with_its_flags() {
    require_root();
    let p = escape("report");
    let out = exec(p.path(), &["unshare", "-U", "-r", "true"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let events = syscall_events(&out);
    let e = events
        .iter()
        .find(|e| e["syscall"] == "unshare")
        .unwrap_or_else(|| panic!("no unshare event: {:?}", out.events));
    assert_eq!(e["args"]["flags"], serde_json::json!(["CLONE_NEWUSER"]));
    assert_eq!(e["verdict"], "allow");
    assert_eq!(e["action"], "report");
    assert_eq!(e["process"], "unshare");
    assert_eq!(
        e["exe"], "/usr/bin/unshare",
        "the process table names the executable"
    );
    // The first process entered the cgroup before it executed, so its parent comes
    // from /proc when the agent reads the event, if the process still lives.
    assert!(e["ppid"].is_u64(), "{e}");
    assert_eq!(e["rule"], "syscalls[0] (escape)");
    assert!(e["cgroup"].as_str().unwrap().starts_with("/cgwarden-exec-"));
}

#[test]
fn kill_ends_the_process_before_it_returns_to_user_space() {
    require_root();
    let p = escape("kill");
    // The attempt is the process itself: nothing after it may print.
    let out = run(
        &p,
        &python(
            "import ctypes,sys; ctypes.CDLL(None).unshare(0x10000000); print('survived'); sys.stdout.flush()",
        ),
    );
    assert_eq!(out.code, Some(128 + 9), "{out:?}");
    assert_eq!(out.stdout, "", "the process printed after the attempt");
    let events = syscall_events(&out);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["syscall"], "unshare");
    assert_eq!(events[0]["verdict"], "deny");
    assert_eq!(events[0]["action"], "kill");
}

/// A process that installs a seccomp filter refusing `unshare` with EPERM (as Docker's
/// default profile does for a container without CAP_SYS_ADMIN), then tries it: no
/// entry tracepoint fires for the call, only its exit.
const SECCOMP_REFUSES_UNSHARE: &str = r#"
import ctypes, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
ul = ctypes.c_ulong
def insn(code, jt, jf, k): return struct.pack("HBBI", code, jt, jf, k)
# Load the syscall number; unshare (272) answers EPERM, everything else is allowed.
prog = insn(0x20, 0, 0, 0) + insn(0x15, 0, 1, 272) + insn(0x06, 0, 0, 0x00050001) + insn(0x06, 0, 0, 0x7fff0000)
buf = ctypes.create_string_buffer(prog)
class Fprog(ctypes.Structure): _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(4, ctypes.addressof(buf))
assert libc.prctl(ul(38), ul(1), ul(0), ul(0), ul(0)) == 0  # no_new_privs
assert libc.prctl(ul(22), ul(2), ctypes.byref(fprog), ul(0), ul(0)) == 0  # the filter
r = libc.unshare(ul(0x10000000))
print("after", r, ctypes.get_errno()); sys.stdout.flush()
"#;

#[test]
fn a_call_a_seccomp_filter_refused_is_reported_and_killed_through_either_hooks() {
    require_root();
    for hooks in ["raw", "tracepoints"] {
        let options = ["--syscall-hooks", hooks];
        let report = escape("report");
        let out = exec_full(
            report.path(),
            &options,
            &["python3", "-c", SECCOMP_REFUSES_UNSHARE],
            "",
        );
        assert_eq!(out.code, Some(0), "{hooks}: {out:?}");
        assert_eq!(out.stdout, "after -1 1\n", "{hooks}: the filter refused it");
        let events = syscall_events(&out);
        assert_eq!(events.len(), 1, "{hooks}: {events:#?}");
        let e = events[0];
        assert_eq!(e["syscall"], "unshare", "{hooks}: {e:#}");
        assert_eq!(e["args"]["flags"], serde_json::json!(["CLONE_NEWUSER"]));
        assert_eq!(e["result"]["errno"], "EPERM", "{hooks}: {e:#}");
        assert_eq!(e["result"]["seccomp"], true, "{hooks}: {e:#}");
        // Kill still kills: nothing prints after the refused attempt.
        let kill = escape("kill");
        let out = exec_full(
            kill.path(),
            &options,
            &["python3", "-c", SECCOMP_REFUSES_UNSHARE],
            "",
        );
        assert_eq!(out.code, Some(128 + 9), "{hooks}: {out:?}");
        assert_eq!(out.stdout, "", "{hooks}: it printed after the attempt");
        let events = syscall_events(&out);
        assert_eq!(events.len(), 1, "{hooks}: {events:#?}");
        assert_eq!(events[0]["action"], "kill");
        assert_eq!(events[0]["result"]["errno"], "EPERM");
    }
}

#[test]
fn audit_mode_reports_what_kill_would_do_and_kills_nothing() {
    require_root();
    let p = profile("audit", "  - set: escape\n    action: kill\n");
    let out = run(
        &p,
        &python("import ctypes; ctypes.CDLL(None).unshare(0x10000000); print('survived')"),
    );
    assert_eq!(out.stdout, "survived\n", "{out:?}");
    let events = syscall_events(&out);
    assert_eq!(events[0]["verdict"], "audit");
}

#[test]
fn escape_techniques_are_reported_with_their_arguments() {
    require_root();
    let p = escape("report");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("cg");
    std::fs::create_dir(&target).unwrap();
    // A peer process to ptrace and to enter the namespaces of.
    let mut peer = Command::new("sleep").arg("30").spawn().unwrap();
    let peer_pid = peer.id();
    let script = format!(
        r#"
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
# mount a cgroup filesystem (to write release_agent)
mounted = libc.mount(b"cgroup", b"{target}", b"cgroup", 0, b"none,name={hierarchy}") == 0
# open its release_agent for writing (the escape; a named v1 hierarchy of its own, and
# nothing is written anyway)
try:
    os.close(os.open("{target}/release_agent", os.O_WRONLY))
except OSError:
    pass
# ptrace another process
libc.ptrace(16, {peer_pid}, 0, 0)
# keyctl (KEYCTL_GET_KEYRING_ID)
libc.syscall(250, 0, -3, 0)
# finit_module: loading a kernel module
if libc.syscall(313, -1, b"", 0) == -1 and ctypes.get_errno() == 38:
    print("finit_module: ENOSYS")
# setns into another process's network namespace
fd = os.open("/proc/{peer_pid}/ns/net", os.O_RDONLY)
libc.setns(fd, 0x40000000)
print("done" if mounted else "not mounted")
"#,
        target = target.display(),
        hierarchy = unique("cgwarden-test-v1"),
    );
    let out = run(&p, &python(&script));
    let _ = peer.kill();
    let _ = peer.wait();
    let _ = Command::new("umount").arg(&target).status();
    // A kernel built without module loading answers ENOSYS (what the call itself said)
    // and gets no program for it (it would run on every syscall); one with it reports
    // the call (raw sys_enter, as it has no tracepoint here).
    let implemented = !out.stdout.contains("finit_module: ENOSYS\n");
    assert!(out.stdout.ends_with("done\n"), "{out:?}");
    let events = syscall_events(&out);
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e["syscall"] == name)
            .copied()
            .unwrap_or_else(|| panic!("no {name} event: {events:?}"))
    };
    let mount = find("mount");
    assert_eq!(mount["path"], target.display().to_string());
    // `mount -t cgroup`: how the release_agent escape starts, said by name.
    assert_eq!(mount["args"]["fstype"], "cgroup", "{mount:#}");
    let release_agent = target.join("release_agent").display().to_string();
    assert!(
        events
            .iter()
            .any(|e| e["syscall"] == "openat" && e["path"] == release_agent.as_str()),
        "release_agent opened for writing not reported: {events:?}"
    );
    let ptrace = find("ptrace");
    assert_eq!(ptrace["args"]["request"], "PTRACE_ATTACH");
    assert_eq!(ptrace["args"]["pid"], peer_pid);
    assert_eq!(find("keyctl")["args"]["operation"], "KEYCTL_GET_KEYRING_ID");
    assert_eq!(
        events.iter().any(|e| e["syscall"] == "finit_module"),
        implemented,
        "{events:#?}"
    );
    let setns = find("setns");
    assert_eq!(setns["args"]["nstype"], serde_json::json!(["CLONE_NEWNET"]));
    // The namespace it tried to enter, by id: the peer runs in the host's.
    let target = &setns["args"]["target_ns"];
    use std::os::unix::fs::MetadataExt as _;
    let host_net = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_eq!(target["id"], format!("net:[{host_net}]"), "{setns:#}");
    assert_eq!(target["host"], true);
}

#[test]
fn the_new_mount_apis_routes_to_change_a_mount_are_seen() {
    require_root();
    let p = escape("report");
    // Each asks for a mount to change without mount(2): mount_setattr (what a
    // read-only mount turns writable with), open_tree_attr (open_tree and
    // mount_setattr in one call) and fspick (a superblock to reconfigure). None changes
    // anything here: no attribute is set or cleared, and the descriptors are closed.
    let script = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
attr = (ctypes.c_uint64 * 4)()
print("mount_setattr", libc.syscall(442, -100, b"/tmp", 0x8000, ctypes.byref(attr), 32))
fd = libc.syscall(467, -100, b"/tmp", 0, None, 0)
print("open_tree_attr", fd)
if fd >= 0:
    os.close(fd)
fd = libc.syscall(433, -100, b"/tmp", 0)
print("fspick", fd)
if fd >= 0:
    os.close(fd)
print("done")
"#;
    let out = run(&p, &python(script));
    assert!(out.stdout.ends_with("done\n"), "{out:?}");
    let events = syscall_events(&out);
    for name in ["mount_setattr", "open_tree_attr", "fspick"] {
        let e = events
            .iter()
            .find(|e| e["syscall"] == name)
            .unwrap_or_else(|| panic!("no {name} event: {events:#?}\n{out:?}"));
        assert_eq!(e["path"], "/tmp", "{e:#}");
        assert_eq!(e["rule"], "syscalls[0] (escape)", "{e:#}");
    }
}

/// A block device of this machine (not a loop device where there is another): its
/// major and minor numbers, from /sys/dev/block.
fn a_block_device() -> (u32, u32) {
    let mut devices: Vec<(u32, u32)> = std::fs::read_dir("/sys/dev/block")
        .expect("/sys/dev/block: the test needs the machine's block devices")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (major, minor) = name.split_once(':')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .collect();
    devices.sort_by_key(|(major, minor)| (*major == 7, *major, *minor));
    *devices
        .first()
        .expect("this machine has no block device for the test to open")
}

#[test]
fn an_open_of_a_block_device_under_any_name_is_an_escape_and_is_killed() {
    require_root();
    let p = escape("kill");
    let dir = tempfile::tempdir().unwrap();
    let (major, minor) = a_block_device();
    // A host disk's node made with mknod where no pattern looks (the escape set names
    // /dev/sd*, /dev/vd* and the others): opened read-only, which reads nothing.
    let node = dir.path().join("notes");
    let script = format!(
        r#"
import os, stat
os.mknod("{node}", stat.S_IFBLK | 0o600, os.makedev({major}, {minor}))
print("made", flush=True)
fd = os.open("{node}", os.O_RDONLY)
print("survived", flush=True)
"#,
        node = node.display()
    );
    let out = run(&p, &python(&script));
    assert!(out.stdout.contains("made"), "{out:?}");
    assert!(!out.stdout.contains("survived"), "not killed: {out:?}");
    assert_eq!(out.code, Some(128 + 9), "killed: {out:?}");
    let events = syscall_events(&out);
    let e = events
        .iter()
        .find(|e| e["path"] == node.display().to_string())
        .unwrap_or_else(|| panic!("no event for the open: {events:#?}"));
    assert_eq!(e["verdict"], "deny", "{e:#}");
    assert_eq!(e["action"], "kill", "{e:#}");
    assert_eq!(
        e["reached"],
        serde_json::json!({"by": "kernel", "name": "notes", "block_device": format!("{major}:{minor}")}),
        "{e:#}"
    );
    // A character device under another name is no disk: /dev/null's numbers.
    let null = dir.path().join("null");
    let script = format!(
        r#"
import os, stat
os.mknod("{null}", stat.S_IFCHR | 0o600, os.makedev(1, 3))
os.close(os.open("{null}", os.O_RDWR))
print("survived")
"#,
        null = null.display()
    );
    let out = run(&p, &python(&script));
    assert!(out.stdout.contains("survived"), "{out:?}");
    assert!(syscall_events(&out).is_empty(), "{:?}", out.events);
}

#[test]
fn benign_workloads_produce_no_escape_events() {
    require_root();
    let p = escape("kill");
    let dir = tempfile::tempdir().unwrap();
    // A shell script.
    let out = exec(
        p.path(),
        &[
            "sh",
            "-c",
            "for i in 1 2 3; do echo $i > /tmp/cgw-benign; cat /tmp/cgw-benign; done | wc -l",
        ],
    );
    assert_eq!(out.stdout.trim(), "3", "{out:?}");
    assert!(syscall_events(&out).is_empty(), "{:?}", out.events);
    // A Python HTTP server on loopback, with one request.
    let out = run(
        &p,
        &python(
            "import http.server, threading, urllib.request\n\
             s = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n\
             threading.Thread(target=s.handle_request).start()\n\
             print(urllib.request.urlopen(f'http://127.0.0.1:{s.server_port}/').status)",
        ),
    );
    assert_eq!(out.stdout.trim(), "200", "{out:?}");
    assert!(syscall_events(&out).is_empty(), "{:?}", out.events);
    // Compiling and running a small C program.
    let src = dir.path().join("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n",
    )
    .unwrap();
    let bin = dir.path().join("hello");
    let script = format!(
        "gcc -o {} {} && {}",
        bin.display(),
        src.display(),
        bin.display()
    );
    let out = exec(p.path(), &["sh", "-c", &script]);
    assert_eq!(out.stdout.trim(), "hello", "{out:?}");
    assert!(syscall_events(&out).is_empty(), "{:?}", out.events);
}

#[test]
fn an_escape_attempt_in_a_runc_container_is_killed() {
    require_root();
    let base = unique("cgwarden-test-sysrunc");
    let _base = TestCgroup::create(&base);
    let policy = ProfileFile::new(&format!(
        "name: containers\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\nsyscalls:\n  - set: escape\n    action: kill\n"
    ));
    let agent = RunningAgent::start(policy.path());
    let id = unique("cgw");
    let cgroup = format!("/{base}/{id}");
    // busybox unshare -U: killed; the shell goes on and says how unshare ended.
    let container = Container::new(
        &id,
        &cgroup,
        &[
            "sh",
            "-c",
            "sleep 0.5; /bin/busybox unshare -U true; echo unshare=$?",
        ],
        |_| {},
    );
    let out = container.run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "unshare=137",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = agent
        .wait_event(Duration::from_secs(5), |e| e["kind"] == "syscall")
        .unwrap_or_else(|| panic!("no syscall event; log:\n{}", agent.log()));
    assert_eq!(e["syscall"], "unshare");
    assert_eq!(e["verdict"], "deny");
    assert_eq!(e["cgroup"], cgroup);
}

#[test]
fn escape_paths_runtime_sockets_and_sysctl_writes_are_reported() {
    require_root();
    let p = escape("report");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let plain = dir.path().join("notes.txt");
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_UNIX); s.bind("{sock}"); s.listen()
c = socket.socket(socket.AF_UNIX); c.connect("{sock}")
open("{plain}", "w").write("an ordinary file")
try:
    open("/proc/self/exe", "r+b")
except OSError:
    pass
# Writing core_pattern's own value back changes nothing on the host.
value = open("/proc/sys/kernel/core_pattern").read()
open("/proc/sys/kernel/core_pattern", "w").write(value)
print("done")
"#,
        sock = sock.display(),
        plain = plain.display()
    );
    let out = run(&p, &python(&script));
    assert_eq!(out.stdout, "done\n", "{out:?}");
    let events: Vec<&Value> = out
        .events
        .iter()
        .filter(|e| e["kind"] == "syscall" || e["kind"] == "sysctl")
        .collect();
    let connect = events
        .iter()
        .find(|e| e["syscall"] == "connect")
        .expect("connect reported");
    assert_eq!(connect["path"], sock.display().to_string());
    let exe = events
        .iter()
        .find(|e| e["path"] == "/proc/self/exe")
        .unwrap_or_else(|| panic!("/proc/self/exe opened for writing not reported: {events:?}"));
    assert!(
        exe["args"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "O_RDWR")
    );
    // core_pattern: the open for writing (an escape path) and the write itself (the
    // sysctl hook, which sees it whatever path reached the file).
    assert!(
        events
            .iter()
            .any(|e| e["path"] == "/proc/sys/kernel/core_pattern"),
        "{events:?}"
    );
    let sysctl = events
        .iter()
        .find(|e| e["kind"] == "sysctl")
        .expect("sysctl write reported");
    assert_eq!(sysctl["name"], "kernel/core_pattern");
    assert_eq!(sysctl["verdict"], "allow");
    // Nothing else: ordinary opens (the interpreter's own, notes.txt) are not escape paths.
    assert_eq!(events.len(), 4, "{events:?}");
}

#[test]
fn kill_refuses_sysctl_writes_and_kills_runtime_socket_connects() {
    require_root();
    let p = escape("kill");
    // Any write under /proc/sys is refused (hostname: its own value, harmless if not).
    let out = exec(
        p.path(),
        &[
            "sh",
            "-c",
            "v=$(cat /proc/sys/kernel/hostname); echo \"$v\" > /proc/sys/kernel/hostname; echo rc=$?",
        ],
    );
    assert_eq!(out.stdout.trim(), "rc=1", "the write must fail: {out:?}");
    let e = out
        .events
        .iter()
        .find(|e| e["kind"] == "sysctl")
        .expect("sysctl event");
    assert_eq!(e["verdict"], "deny");
    assert_eq!(e["name"], "kernel/hostname");
    // Opening core_pattern for writing is an escape path: the shell dies first.
    // (It writes the current value, so even a failure here changes nothing on the host.)
    let out = exec(
        p.path(),
        &[
            "sh",
            "-c",
            "v=$(cat /proc/sys/kernel/core_pattern); echo \"$v\" > /proc/sys/kernel/core_pattern; echo survived",
        ],
    );
    assert_eq!(out.code, Some(128 + 9), "{out:?}");
    assert_eq!(out.stdout, "");

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("containerd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let script = format!(
        "import socket,sys\nc = socket.socket(socket.AF_UNIX)\nc.connect('{}')\nprint('connected')\nsys.stdout.flush()",
        sock.display()
    );
    let out = run(&p, &python(&script));
    drop(listener);
    assert_eq!(out.code, Some(128 + 9), "{out:?}");
    assert_eq!(out.stdout, "");
    let e = syscall_events(&out)
        .into_iter()
        .find(|e| e["syscall"] == "connect")
        .expect("connect event");
    assert_eq!(e["verdict"], "deny");
}

#[test]
fn report_shows_the_chain_of_processes_behind_an_attempt() {
    require_root();
    let p = escape("report");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let status = Command::new(cgwarden_tests::cgwarden())
        .args(["exec", "--policy"])
        .arg(p.path())
        .arg("--events")
        .arg(&events)
        .args(["--", "sh", "-c", "sh -c 'unshare -U true'"])
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new(cgwarden_tests::cgwarden())
        .args(["report", "-o", "json", "--events"])
        .arg(&events)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let attempt = &report["containers"][0]["syscalls"][0];
    assert_eq!(attempt["syscall"], "unshare");
    let chain: Vec<&str> = attempt["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(chain[0].ends_with("/usr/bin/unshare"), "{chain:?}");
    assert!(
        chain.len() >= 3 && chain[1..].iter().all(|c| c.ends_with("/sh")),
        "{chain:?}"
    );
}

#[test]
fn repeated_reported_calls_are_counted_exactly_and_sent_aggregated() {
    require_root();
    let p = profile("enforce", "  - names: [getppid]\n    action: report\n");
    let bench = cgwarden_tests::syscallbench().display().to_string();
    let out = exec(p.path(), &[&bench, "--getppid", "200000", "--rounds", "2"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let result: Value = serde_json::from_str(out.stdout.trim()).expect("syscallbench's result");
    let calls = result["getppid_calls"].as_u64().expect("getppid_calls");
    let events: Vec<&Value> = syscall_events(&out)
        .into_iter()
        .filter(|e| e["syscall"] == "getppid")
        .collect();
    let counted: u64 = events.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, calls, "every call is counted once: {events:?}");
    // The first call is sent at once, then at most one record per second of repeats,
    // plus the flush of what the last second held back.
    let seconds = result["elapsed_ms"].as_f64().expect("elapsed_ms") / 1000.0;
    let most = 2 + seconds.ceil() as usize;
    assert!(
        !events.is_empty() && events.len() <= most,
        "{} records for {calls} identical calls over {seconds:.1} s (at most {most})",
        events.len()
    );
    assert_eq!(
        events[0]["count"], 1,
        "the first call is reported by itself"
    );
}

#[test]
fn an_executable_reopened_for_writing_through_proc_fd_is_caught() {
    require_root();
    // CVE-2019-5736's second step: a handle on an executable (here O_PATH on
    // /proc/self/exe), reopened for writing through /proc/self/fd/N. The interpreter is
    // running, so the kernel refuses the write-open (ETXTBSY) and nothing is written.
    let script = r#"
import os, sys
fd = os.open("/proc/self/exe", os.O_PATH)
# An ordinary reopen of stdout through /proc is not an escape.
os.close(os.open("/proc/self/fd/1", os.O_WRONLY))
print("fd", fd); sys.stdout.flush()
try:
    os.open(f"/proc/{os.getpid()}/fd/{fd}", os.O_WRONLY)
except OSError as e:
    print("errno", e.errno)
print("after"); sys.stdout.flush()
"#;
    a_refused_reopen_is_caught(script);
}

/// Runs `script`, which takes an executable handle, prints `fd N`, reopens the handle
/// for writing through /proc (refused: ETXTBSY, printed as `errno 26`) and prints
/// `after`: in report mode the reopen is the one escape event; in kill mode the process
/// dies at it.
fn a_refused_reopen_is_caught(script: &str) {
    let out = run(&escape("report"), &python(script));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("errno 26"), "{out:?}");
    let fd: u32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("fd "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    let events = syscall_events(&out);
    assert_eq!(events.len(), 1, "only the reopen is an escape: {events:?}");
    let e = events[0];
    assert_eq!(e["syscall"], "openat");
    let path = e["path"].as_str().unwrap();
    assert!(
        path.starts_with("/proc/") && path.ends_with(&format!("/fd/{fd}")),
        "{e}"
    );
    assert!(
        e["args"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "O_WRONLY"),
        "{e}"
    );

    // Under kill the process dies at the reopen: nothing after it prints.
    let out = run(&escape("kill"), &python(script));
    assert_eq!(out.code, Some(128 + 9), "{out:?}");
    assert!(out.stdout.starts_with("fd "), "{out:?}");
    assert!(!out.stdout.contains("after"), "{out:?}");
}

#[test]
fn an_executable_handle_taken_through_a_symlink_is_caught_at_its_reopen() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    // The same step with the handle taken by a path that names no escape file: a
    // symlink to /proc/self/exe. The reopen for writing fails with ETXTBSY (the
    // interpreter is running), which only a running executable gives.
    let script = format!(
        r#"
import os, sys
link = "{dir}/innocent"
if os.path.lexists(link):
    os.remove(link)
os.symlink("/proc/self/exe", link)
fd = os.open(link, os.O_PATH)
print("fd", fd); sys.stdout.flush()
try:
    os.open(f"/proc/self/fd/{{fd}}", os.O_WRONLY)
except OSError as e:
    print("errno", e.errno)
print("after"); sys.stdout.flush()
"#,
        dir = dir.path().display()
    );
    a_refused_reopen_is_caught(&script);
}

#[test]
fn an_executable_handle_reopened_by_a_child_is_caught_by_its_inode() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    // A handle on another process's executable (a copy of sleep, so nothing else runs
    // it); once that process is gone the file can be opened for writing, and a forked
    // child reopens the inherited handle through its own /proc/self/fd (another process
    // and another path than the one that opened it). It only opens: nothing is written.
    let script = format!(
        r#"
import os, shutil, subprocess, time
victim = "{dir}/victim"
shutil.copy("/usr/bin/sleep", victim)
p = subprocess.Popen([victim, "30"])
time.sleep(0.3)
fd = os.open(f"/proc/{{p.pid}}/exe", os.O_PATH)
p.kill(); p.wait()
child = os.fork()
if child == 0:
    os.close(os.open(f"/proc/self/fd/{{fd}}", os.O_WRONLY))
    print("child reopened", flush=True)
    os._exit(0)
_, status = os.waitpid(child, 0)
print("status", status, flush=True)
"#,
        dir = dir.path().display()
    );
    let out = run(&escape("report"), &python(&script));
    assert!(out.stdout.contains("child reopened"), "{out:?}");
    let reopen: Vec<&Value> = syscall_events(&out)
        .into_iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/proc/self/fd/"))
        })
        .collect();
    assert_eq!(reopen.len(), 1, "{:?}", out.events);
    assert_eq!(reopen[0]["syscall"], "openat");

    let out = run(&escape("kill"), &python(&script));
    assert!(!out.stdout.contains("child reopened"), "{out:?}");
    assert!(
        out.stdout.contains("status 9"),
        "the child was not killed: {out:?}"
    );
}

#[test]
fn the_exit_program_stays_well_inside_the_verifier_budget() {
    require_root();
    // The largest program: the escape set's path checks and read-only paths, both
    // judged at exit. The kernel refuses a program past a million verified
    // instructions; a change that doubles inlined code there can reach it unnoticed
    // (it did once: 974k), so the budget kept here is half of that.
    let p = profile(
        "enforce",
        "  - set: escape\n    action: kill\nruntime:\n  read_only: [/]\n  writable: [/tmp]\n",
    );
    // Both forms of it: on the per-syscall exit tracepoints and on raw `sys_exit`.
    for (hooks, program) in [("tracepoints", "sys_exit"), ("raw", "raw_sys_exit")] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(cgwarden_tests::cgwarden())
            .args(["exec", "--syscall-hooks", hooks, "--events"])
            .arg(dir.path().join("events.jsonl"))
            .arg("--policy")
            .arg(p.path())
            .args(["--", "true"])
            .env("RUST_LOG", "cgwarden::bpf::verify=debug")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let verified: u64 = log
            .lines()
            .find_map(|l| {
                l.split(&format!("program {program}: Some("))
                    .nth(1)?
                    .split(')')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no verified count for {program} in the log:\n{log}"));
        assert!(
            verified < 500_000,
            "{program} took {verified} verified instructions (kernel limit 1,000,000)"
        );
    }
}

#[test]
fn device_grants_binfmt_handlers_and_other_processes_memory_are_escape_paths() {
    require_root();
    let p = escape("report");
    let dir = tempfile::tempdir().unwrap();
    // Stand-ins with the real names (nothing on the host is written): a cgroup v1
    // devices.allow and a binfmt_misc register file.
    let devices = dir.path().join("devices/docker/devices.allow");
    let register = dir.path().join("binfmt_misc/register");
    let mut peer = Command::new("sleep").arg("30").spawn().unwrap();
    let script = format!(
        r#"
import os
os.makedirs(os.path.dirname("{devices}"), exist_ok=True)
os.makedirs(os.path.dirname("{register}"), exist_ok=True)
open("{devices}", "w").write("a *:* rwm")
open("{register}", "w").write(":x:E::x::/tmp/x:")
try:
    os.close(os.open("/proc/{peer}/mem", os.O_RDWR))
except OSError:
    pass
print("done")
"#,
        devices = devices.display(),
        register = register.display(),
        peer = peer.id(),
    );
    let out = run(&p, &python(&script));
    let _ = peer.kill();
    let _ = peer.wait();
    assert_eq!(out.stdout, "done\n", "{out:?}");
    let paths: Vec<&str> = syscall_events(&out)
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    for expected in [
        devices.display().to_string(),
        register.display().to_string(),
        format!("/proc/{}/mem", peer.id()),
    ] {
        assert!(
            paths.contains(&expected.as_str()),
            "{expected} not reported: {paths:?}"
        );
    }
}

/// A mount the test made; unmounted when dropped, also when the test fails.
struct Mounted(std::path::PathBuf);

impl Mounted {
    fn new(fstype: &str, options: &str, at: &std::path::Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", fstype, "-o", options, fstype])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -t {fstype} -o {options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_path_buf())
    }

    fn bind(from: &std::path::Path, at: &std::path::Path) -> Self {
        std::fs::write(at, b"").unwrap();
        let out = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount --bind: {out:?}");
        Self(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn escape_files_are_known_by_the_file_an_open_reached_whatever_the_path() {
    require_root();
    let p = escape("report");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The real files: a named cgroup v1 hierarchy's release_agent, binfmt_misc's
    // register, a process's own memory. Opened for writing; nothing is written.
    let cg = Mounted::new(
        "cgroup",
        &format!("none,name={}", unique("cgwv1")),
        &d.join("cg"),
    );
    let bm = Mounted::new("binfmt_misc", "rw", &d.join("bm"));
    let agent = cg.0.join("release_agent");
    std::os::unix::fs::symlink(&agent, d.join("notes.txt")).unwrap();
    std::os::unix::fs::symlink(bm.0.join("register"), d.join("readme")).unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", d.join("peek")).unwrap();
    let _bound = Mounted::bind(&agent, &d.join("innocent"));
    let long = format!("{}/{}cg/release_agent", d.display(), "./".repeat(150));
    std::fs::write(d.join("plain.txt"), b"root's").unwrap();
    let script = format!(
        r#"
import os
d = "{d}"
def touch(path, flags=os.O_WRONLY):
    os.close(os.open(path, flags))
touch(d + "/notes.txt")                 # a symlink
touch(d + "/innocent")                  # a bind mount under another name
touch("{long}")                         # longer than the kernel reads
fd = os.open(d + "/notes.txt", os.O_PATH)
touch("/proc/self/fd/%d" % fd)          # an O_PATH handle reopened for writing
touch(d + "/readme")                    # binfmt_misc's register, by a symlink
touch(d + "/peek", os.O_RDWR)           # /proc/self/mem, by a symlink
if os.fork() == 0:
    os.setgid(1000); os.setuid(1000)
    for path in (d + "/notes.txt", d + "/plain.txt"):
        try:
            touch(path)                 # refused: no file reached, EACCES
        except PermissionError:
            pass
    # Gone before the agent reads the record: its parent, in the same cgroup (the
    # same root), stays until the agent has reported it, resolved in its root.
    os._exit(0)
os.wait()
import json, time
def refused_reported():
    for line in open(os.environ["CGWARDEN_TEST_EVENTS"]):
        e = json.loads(line)
        if e.get("uid") == 1000 and e.get("path") == d + "/notes.txt":
            return True
for _ in range(600):
    try:
        if refused_reported():
            break
    except (OSError, ValueError):
        pass
    time.sleep(0.05)
touch(d + "/plain.txt")                 # an ordinary file
print("done")
"#,
        d = d.display(),
    );
    let out = run(&p, &python(&script));
    assert_eq!(out.stdout, "done\n", "{out:?}");
    let events = syscall_events(&out);
    let by = |path: &str, uid: u32| -> &Value {
        events
            .iter()
            .find(|e| e["path"].as_str().is_some_and(|p| p.starts_with(path)) && e["uid"] == uid)
            .copied()
            .unwrap_or_else(|| panic!("{path} (uid {uid}) not reported: {events:#?}"))
    };
    let release_agent =
        serde_json::json!({"by": "kernel", "fs": "cgroup", "name": "release_agent"});
    for path in ["notes.txt", "innocent"] {
        assert_eq!(
            by(&format!("{}/{path}", d.display()), 0)["reached"],
            release_agent
        );
    }
    let cut = by(&format!("{}/././", d.display()), 0);
    assert_eq!(cut["reached"], release_agent);
    assert_eq!(cut["path"].as_str().unwrap().len(), 255, "{cut}");
    assert_eq!(by("/proc/self/fd/", 0)["reached"], release_agent);
    assert_eq!(
        by(&format!("{}/readme", d.display()), 0)["reached"],
        serde_json::json!({"by": "kernel", "fs": "binfmt_misc", "name": "register"})
    );
    assert_eq!(
        by(&format!("{}/peek", d.display()), 0)["reached"],
        serde_json::json!({"by": "kernel", "fs": "proc", "name": "mem"})
    );
    // Refused, so no file was reached: the agent resolved the symlink in the caller's
    // root and says so. The refused ordinary file is not an attempt.
    let refused = by(&format!("{}/notes.txt", d.display()), 1000);
    assert_eq!(refused["reached"]["by"], "agent", "{refused}");
    assert_eq!(refused["reached"]["name"], "release_agent", "{refused}");
    assert_eq!(refused["reached"]["path"], agent.display().to_string());
    assert_eq!(refused["result"]["errno"], "EACCES", "{refused}");
    assert_eq!(refused["action"], "report");
    assert!(
        !events
            .iter()
            .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("plain.txt"))),
        "{events:#?}"
    );
}

#[test]
fn kill_ends_an_escape_through_a_symlink_before_the_open_returns() {
    require_root();
    let p = escape("kill");
    let dir = tempfile::tempdir().unwrap();
    let cg = Mounted::new(
        "cgroup",
        &format!("none,name={}", unique("cgwv1k")),
        &dir.path().join("cg"),
    );
    let link = dir.path().join("notes.txt");
    std::os::unix::fs::symlink(cg.0.join("release_agent"), &link).unwrap();
    let script = format!(
        "import os\nprint('before', flush=True)\nfd = os.open('{}', os.O_WRONLY)\nprint('after', flush=True)\n",
        link.display()
    );
    let out = run(&p, &python(&script));
    assert_eq!(out.stdout, "before\n", "{out:?}");
    assert_eq!(out.code, Some(128 + 9), "{out:?}");
    let events = syscall_events(&out);
    let e = events
        .iter()
        .find(|e| e["path"] == link.display().to_string())
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(e["verdict"], "deny");
    assert_eq!(e["reached"]["name"], "release_agent");
}

#[test]
fn a_connect_to_a_shims_abstract_socket_is_an_escape_attempt() {
    require_root();
    // A stand-in for containerd-shim's abstract socket (CVE-2020-15257: reachable from
    // any process on the host's network), and a decoy of another name.
    let shim = format!("/containerd-shim/moby/{}/shim.sock", unique("cgw"));
    let decoy = format!("/cgwarden-test-decoy/{}", unique("cgw"));
    let listen = |name: &str| {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        std::os::unix::net::UnixListener::bind_addr(&addr).unwrap()
    };
    let (_shim, _decoy) = (listen(&shim), listen(&decoy));
    let script = format!(
        r#"
import socket
for name in ("{decoy}", "{shim}"):
    s = socket.socket(socket.AF_UNIX)
    s.connect("\0" + name)
    s.close()
    print("connected", flush=True)
"#
    );
    let out = run(&escape("report"), &python(&script));
    assert_eq!(out.stdout, "connected\nconnected\n", "{out:?}");
    let events = syscall_events(&out);
    let connects: Vec<&&Value> = events
        .iter()
        .filter(|e| e["syscall"] == "connect")
        .collect();
    assert_eq!(connects.len(), 1, "{connects:#?}");
    assert_eq!(connects[0]["path"], format!("@{shim}"));
    assert_eq!(connects[0]["result"]["ret"], 0);
    // Under kill, the connect to the shim is the last thing the process does.
    let out = run(&escape("kill"), &python(&script));
    assert_eq!(out.stdout, "connected\n", "{out:?}");
    assert_eq!(out.code, Some(128 + 9), "{out:?}");
}

#[test]
fn the_dirty_pipe_pattern_is_reported_and_ordinary_splices_are_not() {
    require_root();
    let p = escape("report");
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
import os, shutil
d = "{dir}"
setuid_copy = os.path.join(d, "suid-tool"); open(setuid_copy, "w").write("x" * 64)
os.chmod(setuid_copy, 0o4755)
own = os.path.join(d, "own.txt"); open(own, "w").write("y" * 64)
mine = os.path.join(d, "mine.txt"); open(mine, "w").write("z" * 64); os.chown(mine, 1000, 1000)
os.chmod(d, 0o755)
def splice_from(path):
    fd = os.open(path, os.O_RDONLY)
    r, w = os.pipe()
    os.splice(fd, w, 1)
    for f in (fd, r, w): os.close(f)
# root: a set-uid file (reported), its own ordinary file (not)
splice_from(setuid_copy)
splice_from(own)
pid = os.fork()
if pid == 0:
    os.setgid(1000); os.setuid(1000)
    splice_from("/etc/passwd")   # another user's file: reported
    splice_from(mine)            # its own: not
    os._exit(0)
os.waitpid(pid, 0)
print("done")
"#,
        dir = dir.path().display(),
    );
    let out = run(&p, &python(&script));
    assert_eq!(out.stdout, "done\n", "{out:?}");
    let splices: Vec<&Value> = syscall_events(&out)
        .into_iter()
        .filter(|e| e["syscall"] == "splice")
        .collect();
    assert_eq!(splices.len(), 2, "{splices:#?}");
    assert_eq!(splices[0]["uid"], 0);
    assert_eq!(splices[1]["uid"], 1000);
    assert!(splices.iter().all(|e| e["args"]["len"] == 1));
}
