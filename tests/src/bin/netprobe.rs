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
//! - `sleep MS`: pause (for tests that change things between attempts).

use std::{
    io,
    net::{SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.len().is_multiple_of(2) {
        eprintln!("usage: netprobe (tcp|udp|udp-connected|sleep) ARG ...");
        std::process::exit(2);
    }
    for pair in args.chunks(2) {
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
        other => Err(io::Error::other(format!("unknown probe {other}"))),
    }
}
