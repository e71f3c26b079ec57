//! The client of `cargo xtask bench egress`: times loopback connects and UDP sends in a
//! loop and prints one JSON line, so process start-up is never part of a measurement.
//!
//! ```text
//! connbench [--tcp N] [--udp N] [--rounds K] [--warmup N] [--join-cgroup DIR] [--probe ADDR]
//! ```
//! - `--tcp N`: N iterations of: connect a TCP socket to a listener on 127.0.0.1 (owned by
//!   this process, on an ephemeral port, a fresh one for every round), accept, close
//!   both ends (client first);
//! - `--udp N`: N unconnected `sendto`s of 64 bytes to a UDP socket on 127.0.0.1 (never
//!   read: once its buffer is full the kernel drops what arrives, the same way in every
//!   configuration);
//! - `--rounds K` (default 10): each loop is timed in K rounds of N/K iterations; the
//!   results are the median round (`connect_ns`: ns per connect+accept+close, `udp_pps`:
//!   datagrams per second), so a burst of noise from elsewhere on the machine spoils one
//!   round rather than the run; the means over all rounds and every round are printed
//!   too;
//! - `--warmup N`: untimed iterations of each loop first (default: a tenth);
//! - `--join-cgroup DIR`: move this process into the cgroup v2 directory DIR first;
//! - `--probe ADDR`: after the timed loops, one UDP `sendto` to ADDR (a destination the
//!   profile under test denies); reports `"probe":"ok"` or the errno, so the harness can
//!   check the process really was under the rules it meant to measure.
//!
//! Every address is on loopback; connbench never sends anywhere else.

use cgwarden_benchclients::{bad, enter_cgroup, finish, flags, json_list, median, split};
use std::{
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    path::PathBuf,
    time::{Duration, Instant},
};

/// Iterations per listener at most. Each iteration leaves the client's port in
/// TIME_WAIT towards the listener's address; past about 14,000 (the even half of the
/// default ephemeral port range) connect(2) has to search for a free port and every
/// iteration gets twice as slow, so a round moves to a fresh listener (created outside
/// the timed part) well before that.
const PER_LISTENER: u64 = 4096;

struct Args {
    tcp: u64,
    udp: u64,
    rounds: u64,
    warmup: Option<u64>,
    join: Option<PathBuf>,
    probe: Option<SocketAddr>,
}

fn main() {
    finish(
        "connbench",
        parse(std::env::args().skip(1)).and_then(|a| run(&a)),
    );
}

fn parse(it: impl Iterator<Item = String>) -> io::Result<Args> {
    let mut args = Args {
        tcp: 10_000,
        udp: 200_000,
        rounds: 10,
        warmup: None,
        join: None,
        probe: None,
    };
    for flag in flags(it) {
        let flag = flag?;
        match flag.name.as_str() {
            "--tcp" => args.tcp = flag.number()?.max(1),
            "--udp" => args.udp = flag.number()?.max(1),
            "--rounds" => args.rounds = flag.number()?.max(1),
            "--warmup" => args.warmup = Some(flag.number()?),
            "--join-cgroup" => args.join = Some(PathBuf::from(&flag.value)),
            "--probe" => {
                let addr: SocketAddr = flag
                    .value
                    .parse()
                    .map_err(|_| bad(&format!("--probe: bad address `{}`", flag.value)))?;
                if !addr.ip().is_loopback() {
                    return Err(bad("--probe: only loopback destinations"));
                }
                args.probe = Some(addr);
            }
            _ => {
                return Err(flag.unknown(
                    "connbench [--tcp N] [--udp N] [--rounds K] [--warmup N] \
                     [--join-cgroup DIR] [--probe ADDR]",
                ));
            }
        }
    }
    Ok(args)
}

fn run(args: &Args) -> io::Result<String> {
    let cgroup = enter_cgroup(args.join.as_deref())?;

    // TCP: ns per iteration, per round.
    tcp_round(args.warmup.unwrap_or(args.tcp / 10))?;
    let mut tcp = Vec::new();
    for n in split(args.tcp, args.rounds) {
        tcp.push(tcp_round(n)?.as_nanos() as f64 / n as f64);
    }
    // UDP: datagrams per second, per round.
    let sink = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    let to = sink.local_addr()?;
    let sender = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    udp_round(&sender, to, args.warmup.unwrap_or(args.udp / 10))?;
    let mut udp = Vec::new();
    let mut udp_secs = 0.0;
    for n in split(args.udp, args.rounds) {
        let secs = udp_round(&sender, to, n)?.as_secs_f64();
        udp_secs += secs;
        udp.push(if secs > 0.0 { n as f64 / secs } else { 0.0 });
    }
    drop(sink);

    let probe = match args.probe {
        None => "null".to_owned(),
        Some(addr) => {
            let local = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
            match UdpSocket::bind(local)?.send_to(b"probe", addr) {
                Ok(_) => "\"ok\"".to_owned(),
                Err(e) => match e.raw_os_error() {
                    Some(1) => "\"EPERM\"".to_owned(),
                    Some(n) => format!("\"errno {n}\""),
                    None => "\"error\"".to_owned(),
                },
            }
        }
    };
    let tcp_mean = tcp.iter().sum::<f64>() / tcp.len() as f64;
    let udp_mean = if udp_secs > 0.0 {
        args.udp as f64 / udp_secs
    } else {
        0.0
    };
    Ok(format!(
        "{{\"tcp_iters\":{},\"udp_datagrams\":{},\"rounds\":{},\"connect_ns\":{:.1},\
         \"connect_ns_mean\":{tcp_mean:.1},\"udp_pps\":{:.0},\"udp_pps_mean\":{udp_mean:.0},\
         \"probe\":{probe},\"pid\":{},\"cgroup\":\"{}\",\"connect_ns_rounds\":[{}],\
         \"udp_pps_rounds\":[{}]}}",
        args.tcp,
        args.udp,
        tcp.len(),
        median(&tcp),
        median(&udp),
        std::process::id(),
        cgroup,
        json_list(tcp.iter().copied(), 0),
        json_list(udp.iter().copied(), 0),
    ))
}

/// Times `n` iterations of connect+accept+close; listeners are made outside the timing.
fn tcp_round(n: u64) -> io::Result<Duration> {
    let mut total = Duration::ZERO;
    let mut left = n;
    while left > 0 {
        let k = left.min(PER_LISTENER);
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let start = Instant::now();
        for _ in 0..k {
            let client = TcpStream::connect(addr)?;
            let (server, _) = listener.accept()?;
            drop(client);
            drop(server);
        }
        total += start.elapsed();
        left -= k;
    }
    Ok(total)
}

/// Times `n` unconnected sendtos from `sender` to `to`.
fn udp_round(sender: &UdpSocket, to: SocketAddr, n: u64) -> io::Result<Duration> {
    let payload = [0x5au8; 64];
    let start = Instant::now();
    for _ in 0..n {
        sender.send_to(&payload, to)?;
    }
    Ok(start.elapsed())
}
