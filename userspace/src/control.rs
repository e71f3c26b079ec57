//! The agent's local control socket: a root-only unix socket that answers one request
//! per connection (`reload`, `status`, `posture`, or `follow` the events) with one JSON
//! document (or, for `follow`, JSON lines). Requests are versioned JSON lines
//! ([`PROTOCOL_VERSION`]).
//!
//! The socket's directory is created 0700 and the socket 0600, and every peer's
//! credentials are checked: only root may talk to the agent.

use std::{
    io::{self, Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream as StdUnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::mpsc,
};

use crate::events::Record;

/// Where `cgwarden run` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/cgwarden/control.sock";

/// The control protocol's version. A request is one JSON line, `{"v": 1, "command":
/// "follow", "filter": {"kind": "dns", "container": "my app"}}`; a request of another
/// version, or not JSON, is answered with an error that says which one this agent
/// speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A command a client can send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Command {
    // Struct variants, not unit ones: serde refuses an unknown field of an internally
    // tagged struct variant (`deny_unknown_fields`), and lets a unit variant's through.
    Reload {},
    Status {},
    /// Every known container's posture.
    Posture {},
    /// Stream events as JSON lines until the client goes away.
    Follow {
        #[serde(default)]
        filter: Filter,
    },
}

/// Which events a follower wants.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only this kind (`connect`, `dns`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only events whose cgroup path contains this (a container id or name), or of the
    /// container its OCI runtime names so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl Filter {
    pub fn matches(&self, record: &Record) -> bool {
        self.kind.as_deref().is_none_or(|k| record.kind() == k)
            && self.container.as_deref().is_none_or(|c| {
                record.cgroup().is_some_and(|g| g.contains(c)) || record.container_name() == Some(c)
            })
    }
}

impl Command {
    /// A request line, or why it is not one (said to the client).
    fn parse(line: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(line.trim()).map_err(|_| {
            format!(
                "the control protocol is JSON lines, version {PROTOCOL_VERSION}: {{\"v\": {PROTOCOL_VERSION}, \"command\": \"status\"}}"
            )
        })?;
        let Value::Object(mut fields) = value else {
            return Err("a request is a JSON object".to_owned());
        };
        match fields.remove("v").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "protocol version {v} is not spoken here; this agent speaks version {PROTOCOL_VERSION}"
                ));
            }
            None => return Err("a request says its protocol version: \"v\": 1".to_owned()),
        }
        serde_json::from_value(Value::Object(fields))
            .map_err(|e| format!("unknown command or field: {e}"))
    }

    /// The request line for this command (without the newline).
    fn to_line(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.insert("v".to_owned(), Value::from(PROTOCOL_VERSION));
        }
        value.to_string()
    }
}

/// A client following the live event stream.
pub struct Follower {
    filter: Filter,
    tx: mpsc::Sender<Vec<u8>>,
    dropped: u64,
}

/// Every follower. A slow follower loses records (counted, and said to it) rather
/// than slowing the agent down.
#[derive(Default)]
pub struct Followers {
    list: Vec<Follower>,
}

impl Followers {
    pub fn add(&mut self, follower: Follower) {
        self.list.push(follower);
    }

    pub fn send(&mut self, record: &Record) {
        if self.list.is_empty() {
            return;
        }
        let line = crate::output::record_line(record);
        self.list.retain_mut(|f| {
            if !f.filter.matches(record) {
                return !f.tx.is_closed();
            }
            if f.dropped > 0 {
                let lost = Record::Lost(crate::events::LostRecord::follower_too_slow(
                    crate::events::rfc3339_now(),
                    f.dropped,
                ));
                let note = crate::output::record_line(&lost);
                if f.tx.try_send(note).is_ok() {
                    f.dropped = 0;
                }
            }
            match f.tx.try_send(line.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    f.dropped += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

/// Starts streaming to `stream`: returns the follower to register with the agent.
pub fn start_following(mut stream: UnixStream, filter: Filter) -> Follower {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16_384);
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if stream.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    Follower {
        filter,
        tx,
        dropped: 0,
    }
}

/// A client's command and the connection to answer on.
pub type Request = (Command, UnixStream);

/// The listening side, owned by the agent. Removes its socket on drop.
///
/// Accepting and reading a command are split: each client's line is read by its own
/// task and handed over through a channel, so [`ControlSocket::next`] is cancel-safe
/// and a `select!` that picks another branch never drops a half-read client.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    tx: mpsc::Sender<Request>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Request>>,
}

impl ControlSocket {
    /// Binds `path`. A stale socket (no agent answers on it) is replaced; a live one is
    /// an error, since two agents would fight over the same maps.
    pub fn bind(path: &Path) -> io::Result<Self> {
        // A directory it makes is root's alone; an existing one keeps its mode (it may
        // be /run, shared with everything else): the socket's own mode keeps others out.
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        if path.exists() {
            if StdUnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another agent is listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let (tx, rx) = mpsc::channel(16);
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            tx,
            rx: tokio::sync::Mutex::new(rx),
        })
    }

    /// Waits for the next well-formed command from a root client. Cancel-safe.
    pub async fn next(&self) -> io::Result<Request> {
        let mut rx = self.rx.lock().await;
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, _) = accepted?;
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        if let Some(request) = read_command(stream).await {
                            let _ = tx.send(request).await;
                        }
                    });
                }
                Some(request) = rx.recv() => return Ok(request),
            }
        }
    }
}

/// Reads one client's command. Clients that are not root, or that do not send a known
/// command within a second, get an error and are dropped (`None`).
async fn read_command(mut stream: UnixStream) -> Option<Request> {
    let root = matches!(stream.peer_cred(), Ok(peer) if peer.uid() == 0);
    if !root {
        let _ = reply(&mut stream, &error_json("the control socket is root-only")).await;
        return None;
    }
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(1), async {
        BufReader::new(&mut stream).read_line(&mut line).await
    })
    .await;
    let parsed = match read {
        Ok(Ok(_)) => Command::parse(&line),
        _ => Err("no request within a second".to_owned()),
    };
    match parsed {
        Ok(cmd) => Some((cmd, stream)),
        Err(why) => {
            let _ = reply(&mut stream, &error_json(&why)).await;
            None
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes a response and closes the connection.
pub async fn reply(stream: &mut UnixStream, value: &Value) -> io::Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    text.push(b'\n');
    stream.write_all(&text).await?;
    stream.shutdown().await
}

pub fn error_json(message: &str) -> Value {
    serde_json::json!({ "ok": false, "error": message })
}

/// Client side: follows the event stream, copying each line to `out` until the agent
/// closes the stream.
pub fn follow(path: &Path, filter: Filter, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut stream = connect(path)?;
    writeln!(stream, "{}", Command::Follow { filter }.to_line())?;
    let reader = io::BufReader::new(stream);
    for line in io::BufRead::lines(reader) {
        writeln!(out, "{}", line?)?;
        out.flush()?;
    }
    Ok(())
}

/// Client side: connects to the agent's socket; an agent that is not there is a
/// [`crate::Error::Agent`].
fn connect(path: &Path) -> Result<StdUnixStream, crate::Error> {
    StdUnixStream::connect(path).map_err(|e| {
        crate::Error::Agent(format!(
            "cannot reach the agent at {}: {e} (is `cgwarden run` running?)",
            path.display()
        ))
    })
}

/// Client side: sends `command` to the agent at `path` and returns its JSON answer.
pub fn request(path: &Path, command: Command) -> anyhow::Result<Value> {
    let mut stream = connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(stream, "{}", command.to_line())?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    serde_json::from_str(&text)
        .map_err(|e| crate::Error::Agent(format!("bad answer from the agent: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_as_versioned_json_lines() {
        for c in [
            Command::Reload {},
            Command::Status {},
            Command::Posture {},
            Command::Follow {
                filter: Filter::default(),
            },
            Command::Follow {
                filter: Filter {
                    kind: Some("dns".into()),
                    container: Some("my app / web 1".into()),
                },
            },
        ] {
            let line = c.to_line();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(Command::parse(&line), Ok(c), "{line}");
        }
        assert_eq!(
            Command::parse(r#"{"v":1,"command":"follow"}"#),
            Ok(Command::Follow {
                filter: Filter::default()
            })
        );
        for (bad, says) in [
            ("status", "JSON lines, version 1"),
            (r#"{"command":"status"}"#, "protocol version"),
            (
                r#"{"v":2,"command":"status"}"#,
                "version 2 is not spoken here",
            ),
            (r#"{"v":1,"command":"rm"}"#, "unknown command"),
            (
                r#"{"v":1,"command":"follow","filter":{"colour":"red"}}"#,
                "unknown",
            ),
            (r#"{"v":1,"command":"status","extra":1}"#, "unknown"),
            ("[1]", "JSON object"),
        ] {
            let why = Command::parse(bad).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
    }

    #[test]
    fn binding_never_changes_an_existing_directorys_mode() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("control.sock");
        let bound = ControlSocket::bind(&socket).unwrap();
        assert_eq!(mode(dir.path()), 0o755);
        assert_eq!(mode(&socket), 0o600);
        drop(bound);
        // A directory it makes is root's alone.
        let new = dir.path().join("a/b");
        let _bound = ControlSocket::bind(&new.join("control.sock")).unwrap();
        assert_eq!(mode(&new), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
    }
}
