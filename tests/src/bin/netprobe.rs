//! A tiny network client for the integration tests: each pair of arguments is one
//! attempt, and each attempt prints one line, `ok` or `error <errno>`.
//!
//! ```text
//! netprobe tcp 127.0.0.1:8080 udp [::1]:53 udp-connected 127.0.0.2:9
//! ```
//! - `tcp ADDR`: connect (the family follows the address; `[::ffff:a.b.c.d]:p` uses an
//!   AF_INET6 socket);
//! - `udp ADDR`: one unconnected `sendto`;
//! - `udp-connected ADDR`: `connect` then `send` without an address;
//! - `tcp-loop N@ADDR[@PAUSE_US]`: N connects in a row (with a pause between them);
//!   prints `ok` if all succeeded, else the first error;
//! - `ping ADDR`: one ICMP echo request from a ping socket (`SOCK_DGRAM`/`IPPROTO_ICMP`;
//!   the port is ignored);
//! - `icmp-raw ADDR`: one ICMP echo request from a raw socket;
//! - `dns NAME@SERVER`: one A query from this process's own socket; prints
//!   `ok ADDR,ADDR...` (the answer's addresses) or an error;
//! - `sleep MS`: pause (for tests that change things between attempts).
//!
//! `netprobe -` reads the attempts from standard input instead, one `KIND ARG` a line.

use std::{
    io,
    net::{SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `netprobe -`: read the attempts from standard input, one `KIND ARG` per line.
    if args == ["-"] {
        args = std::io::stdin()
            .lines()
            .map_while(Result::ok)
            .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect();
    }
    if !args.len().is_multiple_of(2) {
        eprintln!("usage: netprobe (tcp|udp|udp-connected|sleep) ARG ...");
        std::process::exit(2);
    }
    for pair in args.chunks(2) {
        if pair[0] == "dns" || pair[0] == "dns-tcp" {
            match resolve(&pair[1], pair[0] == "dns-tcp") {
                Ok(addrs) => println!("ok {}", addrs.join(",")),
                Err(e) => println!("error {}", e.raw_os_error().unwrap_or(-1)),
            }
            continue;
        }
        let result = attempt(&pair[0], &pair[1]);
        match result {
            Ok(()) => println!("ok"),
            Err(e) => println!("error {}", e.raw_os_error().unwrap_or(-1)),
        }
    }
}

fn attempt(what: &str, arg: &str) -> io::Result<()> {
    if what == "sleep" {
        let ms: u64 = arg.parse().map_err(|_| io::Error::other("bad sleep"))?;
        std::thread::sleep(Duration::from_millis(ms));
        return Ok(());
    }
    if what == "tcp-loop" {
        let mut parts = arg.split('@');
        let (Some(n), Some(addr)) = (parts.next(), parts.next()) else {
            return Err(io::Error::other("tcp-loop takes N@ADDR[@PAUSE_US]"));
        };
        let pause = Duration::from_micros(parts.next().and_then(|p| p.parse().ok()).unwrap_or(0));
        let n: u64 = n.parse().map_err(|_| io::Error::other("bad count"))?;
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let mut first_error = None;
        for _ in 0..n {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        }
        return first_error.map_or(Ok(()), Err);
    }
    let addr: SocketAddr = arg
        .parse()
        .map_err(|_| io::Error::other(format!("bad address {arg}")))?;
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    match what {
        "tcp" => TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(drop),
        "udp" => UdpSocket::bind(local)?.send_to(b"probe", addr).map(drop),
        "udp-connected" => {
            let s = UdpSocket::bind(local)?;
            s.connect(addr)?;
            s.send(b"probe").map(drop)
        }
        "ping" => icmp_echo(addr, libc::SOCK_DGRAM),
        "icmp-raw" => icmp_echo(addr, libc::SOCK_RAW),
        other => Err(io::Error::other(format!("unknown probe {other}"))),
    }
}

/// Sends one ICMP (or ICMPv6) echo request to `addr` from a socket of type `ty`.
fn icmp_echo(addr: SocketAddr, ty: i32) -> io::Result<()> {
    let (family, protocol, echo_type) = match addr {
        SocketAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8),
        SocketAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8),
    };
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(family, ty, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut packet = [0u8; 16];
    packet[0] = echo_type;
    if family == libc::AF_INET {
        // The kernel fills the checksum for ICMPv6 and ping sockets; raw IPv4 needs it.
        let mut sum: u32 = 0;
        for pair in packet.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let checksum = !(sum as u16);
        packet[2..4].copy_from_slice(&checksum.to_be_bytes());
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: `packet` and `storage` are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&raw const storage).cast(),
            len,
        )
    };
    let result = if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    result
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Asks `SERVER` (an address, port 53 when omitted) for the A records of `NAME`, over
/// UDP or over TCP (the message after its two-byte length).
fn resolve(arg: &str, tcp: bool) -> io::Result<Vec<String>> {
    let (name, server) = arg
        .split_once('@')
        .ok_or_else(|| io::Error::other("dns takes NAME@SERVER"))?;
    let server: SocketAddr = if server.contains(':') {
        server.parse().map_err(io::Error::other)?
    } else {
        format!("{server}:53").parse().map_err(io::Error::other)?
    };
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut buf = vec![0u8; 4096];
    let n = if tcp {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut out = (query.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&query);
        stream.write_all(&out)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let n = usize::from(u16::from_be_bytes(len));
        stream.read_exact(&mut buf[..n])?;
        n
    } else {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.send_to(&query, server)?;
        socket.recv_from(&mut buf)?.0
    };
    let msg = &buf[..n];
    let count = usize::from(u16::from_be_bytes([msg[6], msg[7]]));
    let mut pos = query.len();
    let mut addrs = Vec::new();
    for _ in 0..count {
        // Owner (a pointer), type, class, ttl, rdlength, rdata.
        let ty = u16::from_be_bytes([msg[pos + 2], msg[pos + 3]]);
        let len = usize::from(u16::from_be_bytes([msg[pos + 10], msg[pos + 11]]));
        let data = &msg[pos + 12..pos + 12 + len];
        if ty == 1 && len == 4 {
            addrs.push(format!("{}.{}.{}.{}", data[0], data[1], data[2], data[3]));
        }
        pos += 12 + len;
    }
    Ok(addrs)
}
