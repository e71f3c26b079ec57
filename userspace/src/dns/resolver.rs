//! The agent's own resolution of the DNS names profiles name, refreshed by TTL.
//!
//! Names are looked up in the hosts file first, then asked of the configured DNS
//! servers (`--resolver`, or the nameservers of /etc/resolv.conf) for A and AAAA
//! records. A failed refresh keeps the previous addresses and retries soon, so a
//! resolver outage never turns allowed traffic into denials.
//!
//! Refreshes run on a thread of their own, off the agent's event loop: a slow resolver
//! never holds back the ring buffer. Each query has a random id, from a fresh socket (a
//! random source port), and an answer counts only with that id and that question.
//!
//! It is hand-written on purpose, after weighing `hickory-resolver` (issue #16). That
//! crate does the wire work well (random ids and ports, question checks, hosts file,
//! TTLs), but it is async on tokio and brings about 55 crates this workspace does not
//! have (hickory-proto and -net, futures, moka, idna with ICU, url, tracing, rand). The
//! agent would still need the cache above, since a failed refresh keeps the previous
//! addresses, and the per-name refresh by TTL off the loop. The wire format in
//! [`dns_wire`] stays anyway, as it also parses the answers containers receive.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{dns::wire as dns_wire, policy::DnsName};

const MIN_TTL: Duration = Duration::from_secs(5);
const MAX_TTL: Duration = Duration::from_secs(3600);
const HOSTS_TTL: Duration = Duration::from_secs(60);
const RETRY: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_millis(800);

/// Cached answers for the names of the installed profiles.
pub struct Resolver {
    servers: Vec<SocketAddr>,
    hosts_file: PathBuf,
    entries: HashMap<DnsName, Entry>,
    /// The refresh running on its own thread, if any.
    pending: Option<std::sync::mpsc::Receiver<Vec<(DnsName, Resolved)>>>,
}

/// A name's addresses and how long they hold, or why it could not be resolved.
type Resolved = Result<(Vec<IpAddr>, Duration), String>;

struct Entry {
    addrs: Vec<IpAddr>,
    refresh_at: Instant,
}

impl Resolver {
    /// A resolver asking `servers`, or the nameservers of `resolv_conf` when empty.
    pub fn new(servers: Vec<SocketAddr>, resolv_conf: &Path, hosts_file: &Path) -> Self {
        let servers = if servers.is_empty() {
            std::fs::read_to_string(resolv_conf)
                .map(|text| nameservers(&text))
                .unwrap_or_default()
        } else {
            servers
        };
        Self {
            servers,
            hosts_file: hosts_file.to_path_buf(),
            entries: HashMap::new(),
            pending: None,
        }
    }

    /// The host's resolver configuration, or `server` when given.
    pub fn system(server: Option<SocketAddr>) -> Self {
        Self::new(
            server.into_iter().collect(),
            Path::new("/etc/resolv.conf"),
            Path::new("/etc/hosts"),
        )
    }

    /// The servers this resolver asks (the agent's resolvers, trusted by default).
    pub fn servers(&self) -> Vec<IpAddr> {
        self.servers.iter().map(SocketAddr::ip).collect()
    }

    /// Makes sure `name` is resolved (once; later by TTL). Wildcards have no addresses
    /// of their own: they match answers containers receive.
    pub fn want(&mut self, name: &DnsName) {
        if name.is_wildcard() || self.entries.contains_key(name) {
            return;
        }
        let (addrs, ttl) = self.resolve(name).unwrap_or_else(|e| {
            log::warn!("cannot resolve `{name}`: {e}; it allows nothing until it resolves");
            (Vec::new(), RETRY)
        });
        self.entries.insert(
            name.clone(),
            Entry {
                addrs,
                refresh_at: Instant::now() + ttl,
            },
        );
    }

    /// The current addresses of a name.
    pub fn addresses(&self, name: &DnsName) -> Vec<IpAddr> {
        self.entries
            .get(name)
            .map(|e| e.addrs.clone())
            .unwrap_or_default()
    }

    /// Takes the results of the refresh in flight, if it is done, and starts one for
    /// the names whose TTL ran out; true when any name's addresses changed. Never
    /// waits for a DNS server.
    pub fn refresh_due(&mut self) -> bool {
        let mut changed = false;
        if let Some(rx) = &self.pending {
            match rx.try_recv() {
                Ok(results) => {
                    self.pending = None;
                    changed = self.apply(results);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return false,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.pending = None,
            }
        }
        let now = Instant::now();
        let due: Vec<DnsName> = self
            .entries
            .iter()
            .filter(|(_, e)| e.refresh_at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        if due.is_empty() {
            return changed;
        }
        for name in &due {
            if let Some(e) = self.entries.get_mut(name) {
                // Not asked again while this refresh runs.
                e.refresh_at = now + RETRY;
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (servers, hosts) = (self.servers.clone(), self.hosts_file.clone());
        let spawned = std::thread::Builder::new()
            .name("cgwarden-dns".to_owned())
            .spawn(move || {
                let results = due
                    .into_iter()
                    .map(|name| {
                        let found = resolve_with(&servers, &hosts, &name);
                        (name, found)
                    })
                    .collect();
                let _ = tx.send(results);
            });
        match spawned {
            Ok(_) => self.pending = Some(rx),
            Err(e) => log::warn!("cannot start the DNS refresh: {e}; retrying"),
        }
        changed
    }

    /// Takes a refresh's results; true when any name's addresses changed.
    fn apply(&mut self, results: Vec<(DnsName, Resolved)>) -> bool {
        let now = Instant::now();
        let mut changed = false;
        for (name, result) in results {
            let Some(entry) = self.entries.get_mut(&name) else {
                continue;
            };
            match result {
                Ok((addrs, ttl)) => {
                    // An empty answer where there were addresses is treated as a
                    // passing failure: keep allowing what was allowed.
                    let transient = addrs.is_empty() && !entry.addrs.is_empty();
                    if !transient && addrs != entry.addrs {
                        log::info!("`{name}` now resolves to {addrs:?}");
                        entry.addrs = addrs;
                        changed = true;
                    }
                    entry.refresh_at = now + ttl;
                }
                Err(e) => {
                    log::warn!("refreshing `{name}` failed: {e}; keeping its addresses");
                    entry.refresh_at = now + RETRY;
                }
            }
        }
        changed
    }

    /// Forgets names no installed profile uses any more.
    pub fn retain(&mut self, keep: impl Fn(&DnsName) -> bool) {
        self.entries.retain(|n, _| keep(n));
    }

    fn resolve(&self, name: &DnsName) -> Resolved {
        resolve_with(&self.servers, &self.hosts_file, name)
    }
}

/// Resolves `name`: the hosts file, then each server in turn.
fn resolve_with(servers: &[SocketAddr], hosts_file: &Path, name: &DnsName) -> Resolved {
    if let Some(addrs) = lookup_hosts(hosts_file, name) {
        return Ok((addrs, HOSTS_TTL));
    }
    if servers.is_empty() {
        return Err("no DNS server configured".to_owned());
    }
    let mut last_error = String::new();
    for server in servers {
        match ask(*server, name.as_str()) {
            Ok(found) => return Ok(found),
            Err(e) => last_error = format!("{server}: {e}"),
        }
    }
    Err(last_error)
}

/// A name's addresses in the hosts file.
fn lookup_hosts(hosts_file: &Path, name: &DnsName) -> Option<Vec<IpAddr>> {
    let text = std::fs::read_to_string(hosts_file).ok()?;
    let mut addrs: Vec<IpAddr> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let addr: IpAddr = fields.next()?.parse().ok()?;
            fields
                .any(|h| h.eq_ignore_ascii_case(name.as_str()))
                .then_some(addr)
        })
        .collect();
    addrs.sort();
    addrs.dedup();
    (!addrs.is_empty()).then_some(addrs)
}

/// Asks one server for A and AAAA records; the TTL is the smallest of the answers'.
fn ask(server: SocketAddr, name: &str) -> Result<(Vec<IpAddr>, Duration), String> {
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    socket.connect(server).map_err(|e| e.to_string())?;
    let mut addrs = Vec::new();
    let mut ttl = MAX_TTL;
    for qtype in [dns_wire::TYPE_A, dns_wire::TYPE_AAAA] {
        let id = random_id();
        socket
            .send(&dns_wire::query(id, name, qtype))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        let response = loop {
            let n = socket.recv(&mut buf).map_err(|e| e.to_string())?;
            // Only the answer to this query: its id and its question.
            match dns_wire::parse(&buf[..n]) {
                Ok(r) if r.id == id && r.qname.eq_ignore_ascii_case(name.trim_end_matches('.')) => {
                    break r;
                }
                _ => continue,
            }
        };
        match response.rcode {
            0 | 3 => {}
            code => return Err(format!("server answered with rcode {code}")),
        }
        for (addr, t) in response.answers {
            addrs.push(addr);
            ttl = ttl.min(Duration::from_secs(u64::from(t)));
        }
    }
    addrs.sort();
    addrs.dedup();
    Ok((addrs, ttl.clamp(MIN_TTL, MAX_TTL)))
}

/// A query id from the kernel's random source.
fn random_id() -> u16 {
    use std::io::Read as _;
    let mut b = [0u8; 2];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u16::from_ne_bytes(b),
        // Without /dev/urandom: the hasher's per-process random keys.
        Err(_) => {
            use std::hash::{BuildHasher as _, Hasher as _};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish() as u16
        }
    }
}

/// The nameserver addresses of a resolv.conf's text (a container's own, read through
/// `/proc/<pid>/root`).
pub fn nameserver_addresses(text: &str) -> Vec<IpAddr> {
    nameservers(text).iter().map(SocketAddr::ip).collect()
}

/// The `nameserver` lines of a resolv.conf.
fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = f.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers_and_hosts() {
        assert_eq!(
            nameservers("# x\nnameserver 127.0.0.53\nnameserver ::1\nsearch lan\n"),
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            "127.0.0.1 localhost api.test # comment\n::1 api.test\n",
        )
        .unwrap();
        let r = Resolver::new(vec![], &dir.path().join("none"), &hosts);
        let name = DnsName::try_from("API.test".to_owned()).unwrap();
        let (addrs, ttl) = r.resolve(&name).unwrap();
        assert_eq!(
            addrs,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(ttl, HOSTS_TTL);
        let missing = DnsName::try_from("nope.test".to_owned()).unwrap();
        assert!(r.resolve(&missing).is_err(), "no server configured");
    }
}
