//! `cgwarden run` as a child process: started on a profile, stopped on drop.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{cgwarden, read_events, wait_for};

/// A bpffs directory where an agent pins its links and maps; `cgwarden uninstall`
/// removes them on drop, so no test leaves programs attached.
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new() -> Self {
        Self {
            path: PathBuf::from(format!("/sys/fs/bpf/{}", crate::unique("cgwarden-test"))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for StateDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = Command::new(cgwarden())
            .args(["uninstall", "--state-dir"])
            .arg(&self.path)
            .output();
    }
}

/// A running agent whose events go to a temporary file.
pub struct RunningAgent {
    child: Child,
    dir: tempfile::TempDir,
    _state: Option<StateDir>,
}

impl RunningAgent {
    /// Starts `cgwarden run --policy <policy>` with its own state directory (removed
    /// when the agent is dropped) and waits until it enforces.
    pub fn start(policy: &Path) -> Self {
        let state = StateDir::new();
        let mut agent = Self::start_in(policy, state.path());
        agent._state = Some(state);
        agent
    }

    /// Like [`RunningAgent::start`], with extra `run` options.
    pub fn start_with(policy: &Path, options: &[&str]) -> Self {
        Self::start_with_env(policy, options, &[])
    }

    /// Like [`RunningAgent::start_with`], with extra environment variables.
    pub fn start_with_env(policy: &Path, options: &[&str], env: &[(&str, &Path)]) -> Self {
        let state = StateDir::new();
        let mut agent = Self::start_in_with(policy, state.path(), options, env, None);
        agent._state = Some(state);
        agent
    }

    /// Like [`RunningAgent::start`], the agent itself running in `cgroup`.
    pub fn start_in_cgroup(policy: &Path, cgroup: &crate::cgroup::TestCgroup) -> Self {
        let state = StateDir::new();
        let mut agent = Self::start_in_with(policy, state.path(), &[], &[], Some(cgroup));
        agent._state = Some(state);
        agent
    }

    /// Starts an agent that pins in `state` (which the caller cleans up).
    pub fn start_in(policy: &Path, state: &Path) -> Self {
        Self::start_in_with(policy, state, &[], &[], None)
    }

    fn start_in_with(
        policy: &Path,
        state: &Path,
        options: &[&str],
        env: &[(&str, &Path)],
        cgroup: Option<&crate::cgroup::TestCgroup>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = fs::File::create(dir.path().join("agent.log")).expect("log file");
        let mut command = Command::new(cgwarden());
        command
            .arg("run")
            .arg("--policy")
            .arg(policy)
            .arg("--events")
            .arg(dir.path().join("events.jsonl"))
            .arg("--control")
            .arg(dir.path().join("ctl/control.sock"))
            .arg("--state-dir")
            .arg(state)
            .args(["--metrics", "127.0.0.1:0"])
            .args(options)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        let child = match cgroup {
            Some(cgroup) => cgroup.spawn(&mut command),
            None => command.spawn().expect("start cgwarden run"),
        };
        let agent = Self {
            child,
            dir,
            _state: None,
        };
        let ready = wait_for(Duration::from_secs(20), || {
            agent.log().contains("cgwarden is enforcing").then_some(())
        });
        assert!(ready.is_some(), "agent did not start:\n{}", agent.log());
        agent
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// The events written so far, without `posture` events: the agent reports the
    /// posture of every container on the host, other tests' containers included, so
    /// a test's counts would depend on what runs beside it. Posture tests read
    /// [`RunningAgent::all_events`].
    pub fn events(&self) -> Vec<Value> {
        let mut events = self.all_events();
        events.retain(|e| e["kind"] != "posture");
        events
    }

    /// Every event written so far, `posture` events included.
    pub fn all_events(&self) -> Vec<Value> {
        read_events(&self.events_path())
    }

    /// Where the agent serves metrics (it picks a free loopback port).
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        let log = self.log();
        let start = log
            .find("metrics on http://")
            .expect("metrics address in the log")
            + 18;
        let end = start + log[start..].find('/').expect("end of address");
        log[start..end].parse().expect("metrics address")
    }

    /// The agent's control socket.
    pub fn control(&self) -> PathBuf {
        self.dir.path().join("ctl/control.sock")
    }

    /// Runs `cgwarden <command words> --control <socket>` (`"status -o json"`); returns
    /// exit code, stdout, stderr.
    pub fn client(&self, command: &str) -> (Option<i32>, String, String) {
        let out = Command::new(cgwarden())
            .args(command.split_whitespace())
            .arg("--control")
            .arg(self.control())
            .output()
            .expect("run cgwarden client");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our child with a valid signal.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for an event that satisfies `pred`.
    pub fn wait_event(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        wait_for(timeout, || self.events().into_iter().find(|e| pred(e)))
    }

    /// Kills the agent with SIGKILL (no cleanup of any kind) and waits for it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the agent with SIGTERM and returns its exit status code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }

    /// Stops the agent with SIGTERM (it drains and flushes everything the kernel sent
    /// before it exits) and returns every event it wrote: for "nothing else happened"
    /// checks that must not depend on how long a test waits.
    pub fn stop_and_read(mut self) -> Vec<Value> {
        self.terminate();
        self.events()
    }

    /// Like [`RunningAgent::stop_and_read`], `posture` events included.
    pub fn stop_and_read_all(mut self) -> Vec<Value> {
        self.terminate();
        self.all_events()
    }

    fn terminate(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let code = wait_for(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten()
        });
        match code {
            Some(status) => status.code(),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                None
            }
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// `GET /metrics` from an agent's metrics listener: the exposition text.
pub fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics listener");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("metrics request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("metrics answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
