//! The agent's local control socket: a root-only unix socket that answers one command
//! per connection (`reload`, `status`) with one JSON document.
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
};

/// Where `cgwarden run` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/cgwarden/control.sock";

/// A command a client can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Reload,
    Status,
}

impl Command {
    fn parse(line: &str) -> Option<Self> {
        match line.trim() {
            "reload" => Some(Self::Reload),
            "status" => Some(Self::Status),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Reload => "reload",
            Self::Status => "status",
        }
    }
}

/// The listening side, owned by the agent. Removes its socket on drop.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path`. A stale socket (no agent answers on it) is replaced; a live one is
    /// an error, since two agents would fight over the same maps.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
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
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Waits for a client and reads its command. Clients that are not root, or that do
    /// not send a known command within a second, get an error and are dropped (`None`).
    pub async fn next(&self) -> io::Result<Option<(Command, UnixStream)>> {
        let (mut stream, _) = self.listener.accept().await?;
        let peer = stream.peer_cred()?;
        if peer.uid() != 0 {
            let _ = reply(&mut stream, &error_json("the control socket is root-only")).await;
            return Ok(None);
        }
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(1), async {
            BufReader::new(&mut stream).read_line(&mut line).await
        })
        .await;
        match (read, Command::parse(&line)) {
            (Ok(Ok(_)), Some(cmd)) => Ok(Some((cmd, stream))),
            _ => {
                let _ = reply(
                    &mut stream,
                    &error_json("unknown command; try `reload` or `status`"),
                )
                .await;
                Ok(None)
            }
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

/// Client side: sends `command` to the agent at `path` and returns its JSON answer.
pub fn request(path: &Path, command: Command) -> anyhow::Result<Value> {
    let mut stream = StdUnixStream::connect(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the agent at {}: {e} (is `cgwarden run` running?)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(stream, "{}", command.as_str())?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("bad answer from the agent: {e}"))
}
