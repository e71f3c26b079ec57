//! The generator of `cargo xtask bench events`: as many distinct flows as it is asked
//! for, as fast as it is allowed, and one JSON line saying how many it made.
//!
//! ```text
//! eventstorm --count N [--rate R] [--threads T] [--join-cgroup DIR]
//! ```
//! - `--count N`: N unconnected UDP `sendto`s of one byte from one socket, each to a
//!   destination used once: datagram `i` goes to port `10000 + i % 50000` of address
//!   `127.1.0.0 + i / 50000` (127.1.0.0 up to 127.255.255.255: always loopback, never
//!   127.0.0.1). Every datagram is a flow of its own for cgwarden (its kernel
//!   aggregation only merges repeats of the same destination), so each one is one event;
//! - `--rate R`: at most R datagrams per second, paced in slices of a quarter
//!   millisecond against an absolute schedule (a late slice is made up by the next
//!   ones; 0 or absent: as fast as possible);
//! - `--threads T` (default 1): T sender threads, each with a socket of its own, a
//!   contiguous share of the N destinations and R/T per second;
//! - `--join-cgroup DIR`: move this process into the cgroup v2 directory DIR first.
//!
//! A send the kernel refused with EPERM (a profile in enforce mode denied it) was judged
//! and reported by cgwarden like one it let through, so both count as made:
//! `"sent"` = `"ok"` + `"eperm"`. Any other error is counted in `"errors"` (the
//! first one is named): a run with errors cannot be used for exact accounting.
//!
//! Output: `{"sent":…,"ok":…,"eperm":…,"errors":…,"first_error":…,"secs":…,
//! "rate":…,"cpu_s":…,"threads":…,"pid":…,"cgroup":"…"}` where `secs` is the time from the first
//! send to the last, `rate` = `sent / secs` and `cpu_s` the process's user + system CPU
//! time (which includes the eBPF programs that ran in its sends).

use cgwarden_benchclients::{bad, enter_cgroup, finish, flags};
use std::{
    io,
    path::PathBuf,
    time::{Duration, Instant},
};

/// Ports per address: 10000..60000.
const PORTS: u64 = 50_000;
const PORT_BASE: u64 = 10_000;
/// 127.1.0.0: the first address used.
const FIRST_ADDR: u32 = 0x7f01_0000;
/// 127.255.255.255: the last.
const LAST_ADDR: u32 = 0x7fff_ffff;
/// Pacing slice.
const SLICE: Duration = Duration::from_micros(250);

struct Args {
    count: u64,
    rate: u64,
    threads: u64,
    join: Option<PathBuf>,
}

fn main() {
    finish(
        "eventstorm",
        parse(std::env::args().skip(1)).and_then(|a| run(&a)),
    );
}

fn parse(it: impl Iterator<Item = String>) -> io::Result<Args> {
    let mut args = Args {
        count: 0,
        rate: 0,
        threads: 1,
        join: None,
    };
    for flag in flags(it) {
        let flag = flag?;
        match flag.name.as_str() {
            "--count" => args.count = flag.number()?,
            "--rate" => args.rate = flag.number()?,
            "--threads" => args.threads = flag.number()?.max(1),
            "--join-cgroup" => args.join = Some(PathBuf::from(&flag.value)),
            _ => {
                return Err(flag
                    .unknown("eventstorm --count N [--rate R] [--threads T] [--join-cgroup DIR]"));
            }
        }
    }
    let max = (u64::from(LAST_ADDR - FIRST_ADDR) + 1) * PORTS;
    if args.count == 0 || args.count > max {
        return Err(bad(&format!("--count must be between 1 and {max}")));
    }
    Ok(args)
}

/// The destination of datagram `i`: (address in host order, port).
fn destination(i: u64) -> (u32, u16) {
    let addr = FIRST_ADDR + (i / PORTS) as u32;
    let port = (PORT_BASE + i % PORTS) as u16;
    (addr, port)
}

fn run(args: &Args) -> io::Result<String> {
    let cgroup = enter_cgroup(args.join.as_deref())?;

    let threads = args.threads.clamp(1, args.count);
    let start = Instant::now();
    let results: Vec<io::Result<Counts>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let from = args.count * k / threads;
                let to = args.count * (k + 1) / threads;
                let rate = args.rate as f64 / threads as f64;
                scope.spawn(move || send(from..to, rate, start))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a sender thread panicked")))
            })
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds();
    let mut total = Counts::default();
    for r in results {
        let c = r?;
        total.ok += c.ok;
        total.eperm += c.eperm;
        total.errors += c.errors;
        if total.first_error.is_none() {
            total.first_error = c.first_error;
        }
    }

    let sent = total.ok + total.eperm;
    let first_error = match total.first_error {
        Some(e) => format!("\"{}\"", e.to_string().replace(['"', '\\'], "_")),
        None => "null".to_owned(),
    };
    Ok(format!(
        "{{\"sent\":{sent},\"ok\":{},\"eperm\":{},\"errors\":{},\
         \"first_error\":{first_error},\"secs\":{secs:.6},\"rate\":{:.0},\"cpu_s\":{cpu:.3},\
         \"threads\":{threads},\"pid\":{},\"cgroup\":\"{}\"}}",
        total.ok,
        total.eperm,
        total.errors,
        if secs > 0.0 { sent as f64 / secs } else { 0.0 },
        std::process::id(),
        cgroup,
    ))
}

/// What one sender thread did.
#[derive(Default)]
struct Counts {
    ok: u64,
    eperm: u64,
    errors: u64,
    first_error: Option<io::Error>,
}

/// Sends datagrams `range` from a socket of its own, at `rate` per second (0: as fast
/// as possible) counted from `start`.
fn send(range: std::ops::Range<u64>, rate: f64, start: Instant) -> io::Result<Counts> {
    // Precise sleeps for the pacing (the default slack is 50 µs).
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    // SAFETY: plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    let payload = [0x5au8; 1];
    let mut c = Counts::default();
    let count = range.end - range.start;
    let per_slice = if rate <= 0.0 {
        count
    } else {
        (rate * SLICE.as_secs_f64()).ceil().max(1.0) as u64
    };
    let mut i = range.start;
    while i < range.end {
        let end = (i + per_slice).min(range.end);
        while i < end {
            let (addr, port) = destination(i);
            to.sin_addr.s_addr = addr.to_be();
            to.sin_port = port.to_be();
            // SAFETY: `fd` is our socket; the buffer and address are valid for the sizes
            // given.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    payload.as_ptr().cast(),
                    payload.len(),
                    0,
                    (&raw const to).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                c.ok += 1;
            } else {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EPERM) {
                    c.eperm += 1;
                } else {
                    c.errors += 1;
                    c.first_error.get_or_insert(e);
                }
            }
            i += 1;
        }
        if rate > 0.0 && i < range.end {
            let due = start + Duration::from_secs_f64((i - range.start) as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
    // SAFETY: closing our own fd once.
    unsafe { libc::close(fd) };
    Ok(c)
}

/// User + system CPU time of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_loopback_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in (0..300_000).chain([(u64::from(LAST_ADDR - FIRST_ADDR) + 1) * PORTS - 1]) {
            let (addr, port) = destination(i);
            assert_eq!(addr >> 24, 127);
            assert!(addr <= LAST_ADDR);
            assert_ne!(addr, 0x7f00_0001);
            assert!(port >= 10_000);
            assert!(seen.insert((addr, port)));
        }
    }
}
