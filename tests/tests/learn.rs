//! Learn mode: a profile generated from what a workload really did allows exactly that
//! workload, and the seccomp export runs it in runc; learning again on top of a profile
//! adds only what is new; `--check` lists what a profile would deny; a running
//! container is learned by its id.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use cgwarden_tests::{
    ExecOutput, ProfileFile,
    cgroup::TestCgroup,
    cgwarden,
    container::Container,
    dns::DnsServer,
    exec, exec_with,
    net::{TcpServer, UdpServer},
    netprobe, require_root, unique, wait_for,
};

fn denials(out: &ExecOutput) -> Vec<&serde_json::Value> {
    out.events
        .iter()
        .filter(|e| e["verdict"] == "deny" || e["kind"] == "deviation")
        .collect()
}

/// A process in `cgroup` connecting to `server` ten times a second, once it has
/// connected at least once; the caller kills it.
fn connect_in_a_loop(cgroup: &TestCgroup, server: &TcpServer) -> std::process::Child {
    let script = format!(
        "while true; do {} tcp {}; sleep 0.1; done",
        netprobe().display(),
        server.addr
    );
    let child = cgroup.spawn(
        Command::new("/bin/sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::null()),
    );
    let running = wait_for(Duration::from_secs(10), || {
        (server.accepted() > 0).then_some(())
    });
    assert!(running.is_some(), "the process never connected");
    child
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
    let out = learn_named(&learned, "svc", &args);
    assert_eq!(out.stdout, "ok 127.0.0.81\nok\nok\n", "{out:?}");
    let text = std::fs::read_to_string(&learned).unwrap();
    assert!(
        text.contains("- to: svc.test"),
        "the name it resolved, not the address:\n{text}"
    );
    cgwarden_check(&learned);

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
    cgwarden_tests::assert_success(&run);
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

#[test]
fn learn_from_an_events_file_of_a_running_agent() {
    require_root();
    use cgwarden_tests::{agent::RunningAgent, cgroup::TestCgroup};
    let server = TcpServer::bind("127.0.0.84");
    let base = unique("cgwarden-test-learnrun");
    let _base = TestCgroup::create(&base);
    let recording = ProfileFile::new(&format!(
        "name: rec\nmode: audit\nselector:\n  cgroup: \"/{base}/*\"\negress:\n  default: deny\n  report: all\n  dns:\n    report: true\n"
    ));
    let agent = RunningAgent::start(recording.path());
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = app.run(Command::new(netprobe()).args(["tcp", &server.addr.to_string()]));
    assert_eq!(out, "ok\n");
    let found = agent.wait_event(std::time::Duration::from_secs(5), |e| {
        e["dst"] == "127.0.0.84"
    });
    assert!(found.is_some(), "{}", agent.log());
    let learned = learn_from_events(&["--name", "app"], &agent.events_path());
    let text = String::from_utf8_lossy(&learned.stdout);
    assert!(
        text.contains(&tcp_rule("127.0.0.84", server.port())),
        "{text}"
    );
    // Learning the same events on top of it adds nothing and changes no byte.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("app.yaml");
    std::fs::write(&base, text.as_bytes()).unwrap();
    let again = learn_from_events(&["--merge", base.to_str().unwrap()], &agent.events_path());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
    assert!(stderr.contains("0 rule(s) added"), "{stderr}");
    assert!(stderr.contains("egress: nothing new"), "{stderr}");
    // And judged against it, the events file has nothing enforce mode would deny.
    let check = learn_from_events(&["--check", base.to_str().unwrap()], &agent.events_path());
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.contains("0 would be denied"), "{report}");
}

/// Creates a c 1:11 node (what /dev/kmsg is) in `$1` and opens it, then writes to
/// /dev/null (in the default set); each further argument creates a c 1:2 node (kmem) of
/// that name. One line per step: `ok` or `error <errno>`.
const DEVICE_WORKLOAD: &str = r#"
import os, stat, sys
d = sys.argv[1]
def step(f):
    try:
        f(); print('ok')
    except OSError as e:
        print('error', e.errno)
node = d + '/kmsg'
if os.path.exists(node):
    os.unlink(node)
step(lambda: os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 11)))
step(lambda: os.close(os.open(node, os.O_RDONLY)))
step(lambda: os.close(os.open('/dev/null', os.O_WRONLY)))
for extra in sys.argv[2:]:
    step(lambda: os.mknod(d + '/' + extra, 0o600 | stat.S_IFCHR, os.makedev(1, 2)))
"#;

fn deviations<'a>(out: &'a ExecOutput, what: &str) -> Vec<&'a serde_json::Value> {
    out.events
        .iter()
        .filter(|e| e["kind"] == "deviation" && e["deviation"] == what)
        .collect()
}

/// `cgwarden exec <options> -- <command>` started with the no-new-privileges flag set
/// (`setpriv --no-new-privs`), so every program of the command has it too.
fn exec_without_new_privileges(options: &[&str], command: &[&str]) -> ExecOutput {
    cgwarden_tests::exec_under(&["setpriv", "--no-new-privs"], options, command, "")
}

#[test]
fn a_learned_profile_has_the_devices_and_capabilities_the_workload_used() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let nodes = tempfile::tempdir().unwrap();
    let nodes = nodes.path().to_str().unwrap();
    let learned = dir.path().join("learned.yaml");
    let run = ["python3", "-c", DEVICE_WORKLOAD, nodes];
    let out = learn_named(&learned, "dev", &run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    let text = std::fs::read_to_string(&learned).unwrap();
    // The default set, and exactly the accesses used on the one device beyond it.
    assert!(
        text.contains("  devices:\n    - default\n    # c 1:11 /dev/kmsg: rm ×2 by python3\n    - {type: c, major: 1, minor: 11, access: rm}\n  # The effective"),
        "{text}"
    );
    assert!(text.contains("\n  capabilities: ["), "{text}");
    // cgwarden exec does not set no-new-privileges for the command.
    assert!(!text.contains("no_new_privileges: true"), "{text}");
    cgwarden_check(&learned);

    // Enforced, the learned profile refuses nothing the workload does and reports no
    // device, capability or other deviation.
    let out = exec(&learned, &run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    assert!(deviations(&out, "device").is_empty(), "{:?}", out.events);
    assert!(
        deviations(&out, "capabilities").is_empty(),
        "{:?}",
        out.events
    );
    assert!(denials(&out).is_empty(), "{:?}", denials(&out));

    // A device it never used is refused, and is the one deviation.
    let mut more = run.to_vec();
    more.push("kmem");
    let out = exec(&learned, &more);
    assert_eq!(out.stdout, "ok\nok\nok\nerror 1\n", "{out:?}");
    let d = denials(&out);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["deviation"], "device");
    assert_eq!(d[0]["verdict"], "deny");
    assert_eq!(d[0]["device"]["minor"], 2);
    assert_eq!(d[0]["device"]["access"], "m");

    // Learned with no-new-privileges set for every program: the profile promises it,
    // the same workload keeps it, and one started without it deviates.
    let nnp = dir.path().join("nnp.yaml");
    let out = exec_without_new_privileges(&["--learn", nnp.to_str().unwrap()], &run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    let text = std::fs::read_to_string(&nnp).unwrap();
    assert!(text.contains("\n  no_new_privileges: true"), "{text}");
    cgwarden_check(&nnp);
    let out = exec_without_new_privileges(&["--policy", nnp.to_str().unwrap()], &run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    assert!(denials(&out).is_empty(), "{:?}", denials(&out));
    let out = exec(&nnp, &run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    assert!(
        !deviations(&out, "no_new_privileges").is_empty(),
        "{:?}",
        out.events
    );
}

#[test]
fn merge_adds_the_devices_a_profile_lacks() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let nodes = tempfile::tempdir().unwrap();
    let nodes = nodes.path().to_str().unwrap();
    // A profile that knows only the default set, in block style.
    let base = dir.path().join("base.yaml");
    let base_text = "name: dev\nmode: enforce\negress:\n  default: deny\nruntime:\n  user: 0\n  devices:\n    - default\n  capabilities: [ALL]\n";
    std::fs::write(&base, base_text).unwrap();
    let merged = dir.path().join("merged.yaml");
    let run = ["python3", "-c", DEVICE_WORKLOAD, nodes];
    let out = learn_merging(&merged, &base, &run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    let text = std::fs::read_to_string(&merged).unwrap();
    assert!(keeps_every_line(base_text, &text), "{text}");
    assert!(
        text.contains("    - default\n    # c 1:11 /dev/kmsg: rm ×2 by python3\n    - {type: c, major: 1, minor: 11, access: rm}\n  capabilities: [ALL]\n"),
        "{text}"
    );
    assert!(
        out.stderr
            .contains("+    - {type: c, major: 1, minor: 11, access: rm}"),
        "{}",
        out.stderr
    );
    cgwarden_check(&merged);
    let out = exec(&merged, &run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    assert!(deviations(&out, "device").is_empty(), "{:?}", out.events);
}

/// `cgwarden learn <options> --events <events>`: learning (or checking) offline from
/// an events file.
fn learn_from_events(options: &[&str], events: &Path) -> std::process::Output {
    Command::new(cgwarden())
        .arg("learn")
        .args(options)
        .arg("--events")
        .arg(events)
        .output()
        .unwrap()
}

/// `cgwarden exec --learn <learned> --name <name> -- <command>`.
fn learn_named(learned: &Path, name: &str, command: &[&str]) -> ExecOutput {
    exec_with(
        &["--learn", learned.to_str().unwrap(), "--name", name],
        command,
        "",
    )
}

/// `cgwarden exec --learn <learned> --merge <base> -- <command>`: learns `command` on top
/// of the profile `base`.
fn learn_merging(learned: &Path, base: &Path, command: &[&str]) -> ExecOutput {
    exec_with(
        &[
            "--learn",
            learned.to_str().unwrap(),
            "--merge",
            base.to_str().unwrap(),
        ],
        command,
        "",
    )
}

/// Every line of `old` is in `new`, in the same order.
fn keeps_every_line(old: &str, new: &str) -> bool {
    let mut lines = new.lines();
    old.lines().all(|l| lines.any(|n| n == l))
}

/// The lines of a learned rule allowing TCP to `to` on `port` alone.
fn tcp_rule(to: &str, port: u16) -> String {
    format!("- to: {to}\n      ports: [{port}]\n      protocol: tcp")
}

fn rule_count(profile: &str) -> usize {
    profile
        .lines()
        .filter(|l| l.trim_start().starts_with("- to:"))
        .count()
}

fn cgwarden_check(profile: &Path) {
    let check = Command::new(cgwarden())
        .arg("check")
        .arg(profile)
        .output()
        .unwrap();
    cgwarden_tests::assert_success(&check);
}

#[test]
fn merge_adds_exactly_the_new_destination_and_keeps_the_old_rules() {
    require_root();
    let api = TcpServer::bind("127.0.0.85");
    let metrics = UdpServer::bind("127.0.0.86");
    let extra = TcpServer::bind("127.0.0.87");
    let probe = netprobe().display().to_string();
    let (api_addr, metrics_addr, extra_addr) = (
        api.addr.to_string(),
        metrics.addr.to_string(),
        extra.addr.to_string(),
    );
    let first_run = [probe.as_str(), "tcp", &api_addr, "udp", &metrics_addr];
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.yaml");
    let out = learn_named(&first, "svc", &first_run);
    assert_eq!(out.stdout, "ok\nok\n", "{out:?}");
    let first_text = std::fs::read_to_string(&first).unwrap();
    assert_eq!(rule_count(&first_text), 2, "{first_text}");

    // The same workload plus one new destination, learned on top of the first profile.
    let mut second_run = first_run.to_vec();
    second_run.extend(["tcp", &extra_addr]);
    let merged = dir.path().join("merged.yaml");
    let out = learn_merging(&merged, &first, &second_run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    let merged_text = std::fs::read_to_string(&merged).unwrap();
    assert!(
        keeps_every_line(&first_text, &merged_text),
        "an existing line changed:\n{first_text}\n---\n{merged_text}"
    );
    assert_eq!(rule_count(&merged_text), 3, "{merged_text}");
    assert!(
        merged_text.contains(&tcp_rule("127.0.0.87", extra.port())),
        "{merged_text}"
    );
    // The diff on standard error is exactly the lines added.
    let added: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix('+'))
        .collect();
    assert_eq!(
        added.len(),
        merged_text.lines().count() - first_text.lines().count(),
        "{}",
        out.stderr
    );
    assert!(added.iter().all(|l| merged_text.contains(l)), "{added:?}");
    assert!(added.iter().any(|l| l.contains("- to: 127.0.0.87")));
    assert!(out.stderr.contains("1 rule(s) added"), "{}", out.stderr);
    cgwarden_check(&merged);

    // Enforced, the merged profile lets the whole new workload through.
    wait_for(Duration::from_secs(5), || {
        (extra.accepted() > 0).then_some(())
    });
    let before = extra.accepted();
    assert_eq!(before, 1, "the learning run reached it once");
    let out = exec(&merged, &second_run);
    assert_eq!(out.stdout, "ok\nok\nok\n", "{out:?}");
    assert!(denials(&out).is_empty(), "{:?}", denials(&out));
    wait_for(Duration::from_secs(5), || {
        (extra.accepted() > before).then_some(())
    });
    assert_eq!(extra.accepted(), before + 1);
}

/// The `deny` lines of a check's output.
fn deny_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("deny ")).collect()
}

#[test]
fn check_lists_exactly_what_enforce_would_deny() {
    require_root();
    let api = TcpServer::bind("127.0.0.88");
    let extra = TcpServer::bind("127.0.0.89");
    let probe = netprobe().display().to_string();
    let (api_addr, extra_addr) = (api.addr.to_string(), extra.addr.to_string());
    let learned_run = [probe.as_str(), "tcp", &api_addr];
    let dir = tempfile::tempdir().unwrap();
    let learned = dir.path().join("learned.yaml");
    let out = exec_with(&["--learn", learned.to_str().unwrap()], &learned_run, "");
    assert_eq!(out.stdout, "ok\n", "{out:?}");
    let check = learned.to_str().unwrap();

    // The workload it was learned from: nothing.
    let out = exec_with(&["--check", check], &learned_run, "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(deny_lines(&out.stderr).is_empty(), "{}", out.stderr);
    assert!(
        out.stderr.contains("0 would be denied, 0 reported"),
        "{}",
        out.stderr
    );

    // One new destination: exactly one line, naming it; audit mode let it through.
    let mut more = learned_run.to_vec();
    more.extend(["tcp", &extra_addr]);
    let out = exec_with(&["--check", check], &more, "");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "ok\nok\n", "{out:?}");
    // (The listener's thread counts after the probe has already exited.)
    wait_for(Duration::from_secs(5), || {
        (extra.accepted() > 0).then_some(())
    });
    assert_eq!(extra.accepted(), 1, "audit mode refuses nothing");
    let denied = deny_lines(&out.stderr);
    assert_eq!(denied.len(), 1, "{}", out.stderr);
    assert!(
        denied[0].contains(&format!(
            "connect tcp {extra_addr} (rule default) by netprobe"
        )),
        "{}",
        denied[0]
    );
    assert!(
        out.stderr.contains("1 would be denied, 0 reported"),
        "{}",
        out.stderr
    );

    // The same verdict from the events of that run, judged offline.
    let events = dir.path().join("events.jsonl");
    let lines: Vec<String> = out.events.iter().map(|e| e.to_string()).collect();
    std::fs::write(&events, lines.join("\n")).unwrap();
    let offline = learn_from_events(&["--check", check], &events);
    let text = String::from_utf8_lossy(&offline.stdout);
    assert_eq!(offline.status.code(), Some(1), "{text}");
    let denied = deny_lines(&text);
    assert_eq!(denied.len(), 1, "{text}");
    assert!(denied[0].contains(&extra_addr), "{text}");
    // The same, as JSON for a script.
    let json = learn_from_events(&["--check", check, "-o", "json"], &events);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json.stdout)));
    assert_eq!(report["would_deny"], 1, "{report}");
    assert_eq!(report["failed"], true, "{report}");
    let finding = &report["findings"][0];
    assert_eq!(finding["severity"], "deny", "{report}");
    assert!(
        finding["what"].as_str().unwrap().contains(&extra_addr),
        "{report}"
    );
}

/// `runc run` in the background; killed on drop (the container itself is deleted by
/// [`Container`]'s drop).
struct Runc(std::process::Child);

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn learn_a_running_runc_container_by_id() {
    require_root();
    let server = TcpServer::bind("127.0.0.91");
    let id = unique("cgw");
    let script = format!(
        "while true; do /bin/busybox nc {} {} </dev/null; /bin/busybox usleep 100000; done",
        server.addr.ip(),
        server.port()
    );
    let container = Container::new(
        &id,
        &format!("/{}", unique("cgwarden-test-learnc")),
        &["sh", "-c", &script],
        |_| {},
    );
    let _runc = Runc(container.spawn());
    let running = wait_for(Duration::from_secs(10), || {
        (server.accepted() > 0).then_some(())
    });
    assert!(running.is_some(), "the container never connected");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("learned.yaml");
    let seccomp = dir.path().join("seccomp.json");
    let started = Instant::now();
    let learn = Command::new(cgwarden())
        .args([
            "learn",
            "--container",
            &id,
            "--duration",
            "2s",
            "--name",
            "app",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--seccomp")
        .arg(&seccomp)
        .output()
        .unwrap();
    let took = started.elapsed();
    cgwarden_tests::assert_success(&learn);
    assert!(took >= Duration::from_secs(2), "stopped early: {took:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains(&tcp_rule("127.0.0.91", server.port())),
        "{text}"
    );
    assert_eq!(rule_count(&text), 1, "{text}");
    // Found through `runc state` (the cgroup path names no runtime): the right cgroup.
    assert!(
        text.contains(&format!("container {id} (cgroup {})", container.cgroup())),
        "{text}"
    );
    assert!(text.contains("user: 0"), "{text}");
    cgwarden_check(&out);
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&seccomp).unwrap()).unwrap();
    let names = profile["syscalls"][0]["names"].as_array().unwrap();
    assert!(names.iter().any(|n| n == "connect"), "{names:?}");

    // The container was left alone: it still runs and still connects.
    let root = cgwarden_tests::cgroup::cgroup2_root();
    assert!(root.join(&container.cgroup()[1..]).is_dir());
    let before = server.accepted();
    let still = wait_for(Duration::from_secs(5), || {
        (server.accepted() > before).then_some(())
    });
    assert!(still.is_some(), "the container stopped connecting");
}

#[test]
fn learn_a_process_in_a_docker_style_cgroup_by_id_prefix() {
    require_root();
    let server = TcpServer::bind("127.0.0.92");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{:032x}{:032x}", nanos, std::process::id());
    let base = unique("cgwarden-test-learnd");
    let _base = TestCgroup::create(&base);
    let app = TestCgroup::create(&format!("{base}/docker-{id}.scope"));
    let mut child = connect_in_a_loop(&app, &server);

    let learn = Command::new(cgwarden())
        .args(["learn", "--container", &id[..12], "--duration", "1500ms"])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&learn.stdout);
    cgwarden_tests::assert_success(&learn);
    assert!(
        text.contains(&format!("/{base}/docker-{id}.scope")),
        "the cgroup it found: {text}"
    );
    assert!(
        text.contains(&tcp_rule("127.0.0.92", server.port())),
        "{text}"
    );
    assert_eq!(rule_count(&text), 1, "{text}");
}

#[test]
fn learning_a_running_cgroup_shows_its_progress_on_a_terminal() {
    require_root();
    let server = TcpServer::bind("127.0.0.93");
    let base = unique("cgwarden-test-learnp");
    let app = TestCgroup::create(&base);
    let mut child = connect_in_a_loop(&app, &server);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("learned.yaml");
    // `script` gives the learner a terminal; what it wrote there is script's output.
    let line = format!(
        "{} learn --cgroup /{base} --duration 3s --out {}",
        cgwarden().display(),
        out.display()
    );
    let learn = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("script (util-linux) runs a command on a terminal");
    let _ = child.kill();
    let _ = child.wait();
    let shown = String::from_utf8_lossy(&learn.stdout);
    cgwarden_tests::assert_success(&learn);
    assert!(
        shown.contains("learning 1 container(s): ") && shown.contains(" left; "),
        "no progress line: {shown:?}"
    );
    // The counts grow while it watches: some line shows the flows seen so far.
    let flows_seen = shown
        .split("\r\x1b[2K")
        .filter_map(|l| l.split(" left; ").nth(1))
        .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
        .max();
    assert!(
        flows_seen.is_some_and(|n| n > 0),
        "no line counted a flow: {shown:?}"
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("127.0.0.93")
    );
}
