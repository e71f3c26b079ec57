//! A DNS server for the tests, on port 53 of a loopback address of its own: answers A
//! and AAAA queries from a table, rotating through several answer sets per name (as CDNs
//! do), and counts the queries it got.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

/// Answer sets per lower-case name: query k gets set k % len.
pub type Zone = HashMap<String, Vec<Vec<(IpAddr, u32)>>>;

/// A name the server answers with a CNAME to `target`, the target's `addrs`, and a
/// `stray` A record for another name (the target's parent) in the same answer.
#[derive(Debug, Clone)]
pub struct Alias {
    pub target: String,
    pub addrs: Vec<IpAddr>,
    pub stray: Option<IpAddr>,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    tcp: Option<JoinHandle<()>>,
    served: Arc<Mutex<HashMap<String, usize>>>,
}

impl DnsServer {
    /// Serves `zone` on `ip`:53 (a 127.0.0.0/8 address no other test uses).
    pub fn start(ip: &str, zone: Zone) -> Self {
        Self::start_with_aliases(ip, zone, HashMap::new())
    }

    /// Like [`DnsServer::start`], answering the names of `aliases` with CNAMEs (UDP).
    pub fn start_with_aliases(ip: &str, zone: Zone, aliases: HashMap<String, Alias>) -> Self {
        let addr: SocketAddr = format!("{ip}:53").parse().expect("address");
        let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let served: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        // The same zone over TCP on the same address, as resolvers serve it.
        let listener =
            std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind tcp {addr}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let tcp = {
            let (s, counts, zone) = (stop.clone(), served.clone(), zone.clone());
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                while !s.load(Ordering::Relaxed) {
                    let Ok((mut conn, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut len = [0u8; 2];
                    if conn.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if conn.read_exact(&mut buf).is_err() {
                        continue;
                    }
                    let Some((name, qtype, qend)) = question(&buf) else {
                        continue;
                    };
                    let k = {
                        let mut c = counts.lock().expect("lock");
                        let e = c.entry(format!("{name}/{qtype}/tcp")).or_insert(0);
                        *e += 1;
                        *e - 1
                    };
                    let answers = answers_for(&zone, &name, qtype, k);
                    let msg = response(&buf[..qend], &answers, zone.contains_key(&name));
                    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&msg);
                    let _ = conn.write_all(&out);
                }
            })
        };
        let (s, counts) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some((name, qtype, qend)) = question(&buf[..n]) else {
                    continue;
                };
                let k = {
                    let mut c = counts.lock().expect("lock");
                    let e = c.entry(format!("{name}/{qtype}")).or_insert(0);
                    *e += 1;
                    *e - 1
                };
                if let Some(alias) = aliases.get(&name) {
                    let _ = socket.send_to(&alias_response(&buf[..qend], alias), peer);
                    continue;
                }
                let answers = answers_for(&zone, &name, qtype, k);
                let _ = socket.send_to(
                    &response(&buf[..qend], &answers, zone.contains_key(&name)),
                    peer,
                );
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
            tcp: Some(tcp),
            served,
        }
    }

    /// How many queries over TCP of type `qtype` were answered for `name`.
    pub fn tcp_queries(&self, name: &str, qtype: u16) -> usize {
        self.served
            .lock()
            .expect("lock")
            .get(&format!("{name}/{qtype}/tcp"))
            .copied()
            .unwrap_or(0)
    }

    /// How many queries of type `qtype` (1 = A, 28 = AAAA) were answered for `name`.
    pub fn queries(&self, name: &str, qtype: u16) -> usize {
        self.served
            .lock()
            .expect("lock")
            .get(&format!("{name}/{qtype}"))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.tcp.take() {
            let _ = t.join();
        }
    }
}

/// The `k`-th answer set for a name, of the asked type.
fn answers_for(zone: &Zone, name: &str, qtype: u16, k: usize) -> Vec<(IpAddr, u32)> {
    zone.get(name)
        .map(|sets| sets[k % sets.len()].clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(a, _)| matches!((a, qtype), (IpAddr::V4(_), 1) | (IpAddr::V6(_), 28)))
        .collect()
}

/// The question's name, type, and the offset after the question.
fn question(msg: &[u8]) -> Option<(String, u16, usize)> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos + 1..pos + 1 + len)?).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    Some((labels.join("."), qtype, pos + 4))
}

/// A response with a CNAME to the alias's target (written in full in its rdata), A
/// records whose owner points at that target, and the stray A record, whose owner
/// points at the target's parent (a suffix of the same rdata).
fn alias_response(query: &[u8], alias: &Alias) -> Vec<u8> {
    let mut out = query.to_vec();
    out[2] = 0x81;
    out[3] = 0x80;
    let count = 1 + alias.addrs.len() + usize::from(alias.stray.is_some());
    out[6..8].copy_from_slice(&(count as u16).to_be_bytes());
    out[8..12].fill(0);
    let mut rdata = Vec::new();
    for label in alias.target.split('.') {
        rdata.push(label.len() as u8);
        rdata.extend_from_slice(label.as_bytes());
    }
    rdata.push(0);
    out.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 44]);
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    let target_at = out.len();
    let parent_at = target_at + 1 + usize::from(rdata[0]);
    out.extend_from_slice(&rdata);
    let a = |out: &mut Vec<u8>, owner: usize, ip: &IpAddr| {
        if let IpAddr::V4(v4) = ip {
            out.extend_from_slice(&[
                0xc0 | (owner >> 8) as u8,
                owner as u8,
                0,
                1,
                0,
                1,
                0,
                0,
                1,
                44,
                0,
                4,
            ]);
            out.extend_from_slice(&v4.octets());
        }
    };
    for ip in &alias.addrs {
        a(&mut out, target_at, ip);
    }
    if let Some(ip) = &alias.stray {
        a(&mut out, parent_at, ip);
    }
    out
}

/// A response echoing the question, with answers whose owner is a pointer to it.
fn response(query: &[u8], answers: &[(IpAddr, u32)], known: bool) -> Vec<u8> {
    let mut out = query.to_vec();
    out[2] = 0x81;
    out[3] = if known { 0x80 } else { 0x83 };
    out[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    out[8..12].fill(0);
    for (addr, ttl) in answers {
        out.extend_from_slice(&[0xc0, 12]);
        let (ty, data) = match addr {
            IpAddr::V4(a) => (1u16, a.octets().to_vec()),
            IpAddr::V6(a) => (28u16, a.octets().to_vec()),
        };
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}
