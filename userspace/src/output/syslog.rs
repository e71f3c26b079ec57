//! Syslog over the local datagram socket: one RFC 3164 message per record, facility
//! `daemon`, severity from nothing more than the record being an event (`notice`).

use std::{
    io::{self, Write},
    os::unix::net::UnixDatagram,
    path::Path,
};

pub struct Syslog {
    socket: UnixDatagram,
    tag: String,
}

/// `daemon` facility (3) * 8 + `notice` severity (5).
const PRIORITY: u8 = 29;

impl Syslog {
    pub fn connect(path: &Path) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path).map_err(|e| {
            io::Error::new(e.kind(), format!("syslog socket {}: {e}", path.display()))
        })?;
        Ok(Self {
            socket,
            tag: format!("cgwarden[{}]", std::process::id()),
        })
    }
}

impl Write for Syslog {
    /// Sends one record (one line) as one message.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = buf.strip_suffix(b"\n").unwrap_or(buf);
        let mut msg = format!("<{PRIORITY}>{}: ", self.tag).into_bytes();
        msg.extend_from_slice(line);
        self.socket.send(&msg)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_message_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut s = Syslog::connect(&path).unwrap();
        s.write_all(b"{\"kind\":\"connect\"}\n").unwrap();
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(msg.starts_with("<29>cgwarden["), "{msg}");
        assert!(msg.ends_with("]: {\"kind\":\"connect\"}"), "{msg}");
    }
}
