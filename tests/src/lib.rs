//! Integration test harness: real cgroups, processes, sockets and runc containers, with
//! guards that remove what a test created even when it panics.
//!
//! Tests need root and a kernel with the features listed in DESIGN.md; a missing one
//! fails the test with a message that names it.

pub mod agent;
pub mod cgroup;
pub mod container;
pub mod devfilter;
pub mod dns;
pub mod engines;
pub mod net;
pub mod netns;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The `cgwarden` binary under test: `$CGWARDEN_BIN` (set by `cargo xtask test`), or the
/// one next to the test executable.
pub fn cgwarden() -> PathBuf {
    if let Some(bin) = std::env::var_os("CGWARDEN_BIN") {
        return PathBuf::from(bin);
    }
    let guess = built("cgwarden");
    assert!(
        guess.exists(),
        "cgwarden binary not found at {}; run the tests with `cargo xtask test`",
        guess.display()
    );
    guess
}

/// The netprobe helper (`tests/src/bin/netprobe.rs`).
pub fn netprobe() -> PathBuf {
    let path = built("netprobe");
    assert!(path.exists(), "netprobe not built at {}", path.display());
    path
}

/// The `syscallbench` benchmark client (`benchclients/src/bin/syscallbench.rs`), which a
/// test runs for its exact count of `getppid` calls. It is another package's binary, so
/// cargo does not build it for this one's tests: `cargo xtask test` builds every binary
/// of the workspace first (by hand: `cargo build -p cgwarden-benchclients`).
pub fn syscallbench() -> PathBuf {
    let path = built("syscallbench");
    assert!(
        path.exists(),
        "syscallbench not built at {}; run the tests with `cargo xtask test` (or build it \
         with `cargo build -p cgwarden-benchclients`)",
        path.display()
    );
    path
}

/// Where cargo puts the workspace binary `name` for the test executable that calls:
/// target/debug/deps/<test> -> target/debug/<name>.
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .unwrap_or_default()
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests load eBPF programs and need root"
    );
}

/// A name unique to this process and call, for cgroups, files and containers.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A profile written to a temporary file.
pub struct ProfileFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ProfileFile {
    pub fn new(yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("profile.yaml");
        std::fs::write(&path, yaml).expect("write profile");
        Self { _dir: dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content (for reload tests).
    pub fn rewrite(&self, yaml: &str) {
        std::fs::write(&self.path, yaml).expect("rewrite profile");
    }
}

/// What `cgwarden exec` produced.
#[derive(Debug)]
pub struct ExecOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
}

/// Runs `cgwarden exec --policy <profile> -- <command>` and collects its events.
pub fn exec(profile: &Path, command: &[&str]) -> ExecOutput {
    exec_full(profile, &[], command, "")
}

/// Like [`exec`], with `input` on the command's standard input.
pub fn exec_with_input(profile: &Path, command: &[&str], input: &str) -> ExecOutput {
    exec_full(profile, &[], command, input)
}

/// Like [`exec`], with extra `cgwarden exec` options and standard input.
pub fn exec_full(profile: &Path, options: &[&str], command: &[&str], input: &str) -> ExecOutput {
    let policy = profile.display().to_string();
    let mut all = vec!["--policy", policy.as_str()];
    all.extend_from_slice(options);
    exec_with(&all, command, input)
}

/// Runs `cgwarden exec <options> --events <file> -- <command>` (learn mode passes no
/// `--policy`). The command finds the events file in `CGWARDEN_TEST_EVENTS`, to wait
/// for what the agent has reported.
pub fn exec_with(options: &[&str], command: &[&str], input: &str) -> ExecOutput {
    exec_under(&[], options, command, input)
}

/// Like [`exec_with`], with `cgwarden` started by `launcher` (a program and its
/// arguments, e.g. `["setpriv", "--no-new-privs"]`); an empty `launcher` runs it directly.
pub fn exec_under(
    launcher: &[&str],
    options: &[&str],
    command: &[&str],
    input: &str,
) -> ExecOutput {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("events.jsonl");
    let mut cmd = match launcher.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(cgwarden());
            cmd
        }
        None => Command::new(cgwarden()),
    };
    let mut child = cmd
        .arg("exec")
        .arg("--events")
        .arg(&events)
        .env("CGWARDEN_TEST_EVENTS", &events)
        .args(options)
        .arg("--")
        .args(command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cgwarden exec");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for cgwarden exec");
    let _ = writer.join();
    ExecOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        events: read_events(&events),
    }
}

/// Asserts that a finished command exited successfully, showing its standard error if not.
#[track_caller]
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a JSON-lines events file (missing file: no events). Every event is checked
/// against the documented schema (docs/events.schema.json), so every kind any test
/// produces is validated.
pub fn read_events(path: &Path) -> Vec<Value> {
    let events = read_json_lines(path);
    for event in &events {
        assert_documented(event);
    }
    events
}

/// Reads a file of JSON lines (missing file: none), checking nothing more.
pub fn read_json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

/// The events' JSON Schema, docs/events.schema.json.
pub fn event_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.schema.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the event schema {}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the event schema {} is not JSON: {e}", path.display()));
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("the event schema {} is invalid: {e}", path.display()))
    })
}

/// Fails the test when `event` is not what docs/events.schema.json describes.
#[track_caller]
pub fn assert_documented(event: &Value) {
    let errors: Vec<String> = event_schema()
        .iter_errors(event)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "an event the schema (docs/events.schema.json) does not describe:\n{}\n{}",
        serde_json::to_string_pretty(event).unwrap_or_default(),
        errors.join("\n")
    );
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The network events (`connect`, `sendmsg`, `packet`) among `events`.
pub fn net_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("connect" | "sendmsg" | "packet")))
        .collect()
}
