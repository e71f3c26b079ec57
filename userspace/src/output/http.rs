//! The HTTP sink (`falco:http://HOST:PORT/PATH`, `json:http://...`): records are POSTed
//! to falcosidekick or any webhook by a thread of their own, so a slow or failed
//! receiver never stalls the agent.
//!
//! The agent hands each record to a bounded queue and goes on. The sender takes what
//! is queued and posts it over one kept-alive connection: Falco alerts one per request
//! (falcosidekick reads one alert a request), JSON records as batches of JSON lines.
//! A request that fails (no connection, a timeout, a 5xx or 429) is retried with
//! exponential backoff; after the last try its records are dropped. A 4xx other than
//! 429 says the receiver refuses the payload itself, and retrying cannot help: those
//! records are dropped at once. Everything dropped (a full queue, the last try failed,
//! refused) is counted, logged and shown by `status` and the metrics.
//!
//! Plain HTTP only: a TLS receiver is reached through a local proxy or falcosidekick
//! on the node. That is why this small HTTP/1.1 client is kept instead of `ureq` or
//! `reqwest`: their worth is mostly TLS, redirects, proxies and compression (ureq's
//! defaults pull in rustls, ring and gzip; reqwest brings hyper on tokio), none of
//! which a POST to a node-local falcosidekick needs.

use std::{
    collections::VecDeque,
    io::{self, BufRead, BufReader, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::Format;

/// Records waiting to be sent; past this the newest are dropped.
pub const QUEUE_RECORDS: usize = 8_192;
/// JSON records per request.
const BATCH_RECORDS: usize = 500;
/// Tries of one request, and the wait before the second (doubled after each).
const TRIES: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the agent waits at exit for what is queued.
const DRAIN_AT_EXIT: Duration = Duration::from_secs(3);

/// Where an HTTP sink posts: `http://HOST[:PORT][/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.path)
    }
}

impl std::str::FromStr for Url {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("https://") {
            return Err(format!(
                "`{s}`: the HTTP sink speaks plain HTTP only; reach a TLS receiver through falcosidekick or a proxy on the node"
            ));
        }
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{s}` is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            // `[::1]:2801`, `host:2801`; a bare IPv6 address needs its brackets.
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("`{s}`: bad port `{port}`"))?,
            ),
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!("`{s}` has no host or port"));
        }
        if path.contains(char::is_whitespace) {
            return Err(format!("`{s}`: the path has white space"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// What a sink has done so far, for `status` and the metrics.
#[derive(Debug, Default, Serialize, Clone, PartialEq, Eq)]
pub struct Health {
    pub target: String,
    pub delivered: u64,
    /// Dropped because the queue was full (the receiver is slower than the events).
    pub dropped_queue_full: u64,
    /// Dropped after the last try failed.
    pub dropped_failed: u64,
    /// Dropped because the receiver refused them (a 4xx other than 429).
    pub dropped_refused: u64,
    pub retries: u64,
    pub queued: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Health {
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_failed + self.dropped_refused
    }
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_failed: AtomicU64,
    dropped_refused: AtomicU64,
    retries: AtomicU64,
}

/// What the agent and the sender share.
struct Shared {
    url: Url,
    format: Format,
    queue: Mutex<VecDeque<Vec<u8>>>,
    ready: Condvar,
    stop: AtomicBool,
    counters: Counters,
    last_error: Mutex<Option<String>>,
}

/// The agent's side of an HTTP sink: [`Write`] queues one record per call.
pub struct HttpSink {
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
}

/// A handle that reads a sink's [`Health`] after the sink moved into the sinks.
#[derive(Clone)]
pub struct HealthHandle(Arc<Shared>);

impl HealthHandle {
    pub fn health(&self) -> Health {
        let s = &self.0;
        let c = &s.counters;
        Health {
            target: s.url.to_string(),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            dropped_failed: c.dropped_failed.load(Ordering::Relaxed),
            dropped_refused: c.dropped_refused.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            queued: s.queue.lock().map_or(0, |q| q.len() as u64),
            last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

impl HttpSink {
    /// Starts the sender thread. Nothing is connected yet: a receiver that is not up
    /// is retried like any failure.
    pub fn start(url: Url, format: Format) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            url,
            format,
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            last_error: Mutex::new(None),
        });
        let for_thread = Arc::clone(&shared);
        let sender = std::thread::Builder::new()
            .name("cgwarden-http".to_owned())
            .spawn(move || send_loop(&for_thread))?;
        Ok(Self {
            shared,
            sender: Some(sender),
        })
    }

    pub fn health_handle(&self) -> HealthHandle {
        HealthHandle(Arc::clone(&self.shared))
    }
}

impl Write for HttpSink {
    /// Queues `buf` as one record (the sinks write a whole record per call); a full
    /// queue drops it, counted. Never blocks on the receiver.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let record = buf.strip_suffix(b"\n").unwrap_or(buf).to_vec();
        let mut queue = self
            .shared
            .queue
            .lock()
            .map_err(|_| io::Error::other("the HTTP sink's queue is poisoned"))?;
        if queue.len() >= QUEUE_RECORDS {
            drop(queue);
            let dropped = self
                .shared
                .counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            if dropped == 0 || (dropped + 1).is_power_of_two() {
                log::warn!(
                    "sink {}: queue full ({QUEUE_RECORDS} records), {} record(s) dropped so far",
                    self.shared.url,
                    dropped + 1
                );
            }
        } else {
            queue.push_back(record);
            drop(queue);
            self.shared.ready.notify_one();
        }
        Ok(buf.len())
    }

    /// The sender sends on its own; the agent never waits for the receiver.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for HttpSink {
    /// Gives the sender a bounded time to deliver what is queued, then leaves it.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.ready.notify_one();
        if let Some(sender) = self.sender.take() {
            let until = Instant::now() + DRAIN_AT_EXIT;
            while !sender.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if sender.is_finished() {
                let _ = sender.join();
            }
        }
        // What is still queued now goes with the agent.
        let left = self
            .shared
            .queue
            .lock()
            .map_or(0, |mut q| q.drain(..).count() as u64);
        let h = self.health_handle().health();
        if h.dropped() + left > 0 {
            log::warn!(
                "sink {}: {} delivered, {} records dropped in all ({} queue full, {} after retries, {} refused, {left} left at exit)",
                h.target,
                h.delivered,
                h.dropped() + left,
                h.dropped_queue_full,
                h.dropped_failed,
                h.dropped_refused,
            );
        }
    }
}

/// The sender: takes what is queued, a request's worth at a time, and posts it.
fn send_loop(shared: &Shared) {
    let mut conn: Option<Connection> = None;
    loop {
        let batch = {
            let Ok(mut queue) = shared.queue.lock() else {
                return;
            };
            while queue.is_empty() && !shared.stop.load(Ordering::Relaxed) {
                queue = match shared.ready.wait_timeout(queue, Duration::from_millis(500)) {
                    Ok((q, _)) => q,
                    Err(_) => return,
                };
            }
            if queue.is_empty() {
                return;
            }
            let n = match shared.format {
                Format::Falco => 1,
                Format::Json => queue.len().min(BATCH_RECORDS),
            };
            queue.drain(..n).collect::<Vec<_>>()
        };
        deliver(shared, &mut conn, &batch);
    }
}

/// Posts one batch, retrying with backoff; counts how it ended.
fn deliver(shared: &Shared, conn: &mut Option<Connection>, batch: &[Vec<u8>]) {
    let body = match shared.format {
        Format::Falco => batch.concat(),
        Format::Json => {
            let mut body = Vec::new();
            for record in batch {
                body.extend_from_slice(record);
                body.push(b'\n');
            }
            body
        }
    };
    let n = batch.len() as u64;
    let c = &shared.counters;
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=TRIES {
        match post(shared, conn, &body) {
            Ok(status) if (200..300).contains(&status) => {
                c.delivered.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Ok(status) if status != 429 && (400..500).contains(&status) => {
                c.dropped_refused.fetch_add(n, Ordering::Relaxed);
                note_error(
                    shared,
                    format!("the receiver refused the records: HTTP {status}"),
                );
                return;
            }
            Ok(status) => note_error(shared, format!("HTTP {status}")),
            Err(e) => {
                *conn = None;
                note_error(shared, e.to_string());
            }
        }
        if attempt == TRIES || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        c.retries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(wait);
        wait *= 2;
    }
    c.dropped_failed.fetch_add(n, Ordering::Relaxed);
}

/// Keeps the last error, and logs it when it is a new one.
fn note_error(shared: &Shared, error: String) {
    if let Ok(mut last) = shared.last_error.lock()
        && last.as_deref() != Some(error.as_str())
    {
        log::warn!("sink {}: {error}", shared.url);
        *last = Some(error);
    }
}

/// A kept-alive connection to the receiver.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(url: &Url) -> io::Result<Self> {
        let mut last = io::Error::other(format!("{}:{} resolves to nothing", url.host, url.port));
        for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(IO_TIMEOUT))?;
                    stream.set_write_timeout(Some(IO_TIMEOUT))?;
                    stream.set_nodelay(true)?;
                    return Ok(Self {
                        reader: BufReader::new(stream.try_clone()?),
                        writer: stream,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// One POST over the kept-alive connection (opened when there is none); the response's
/// status. The connection is dropped when the receiver closes it.
fn post(shared: &Shared, conn: &mut Option<Connection>, body: &[u8]) -> io::Result<u16> {
    let url = &shared.url;
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Connection::open(url)?),
    };
    let content_type = match shared.format {
        Format::Falco => "application/json",
        Format::Json => "application/x-ndjson",
    };
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cgwarden/{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    c.writer.write_all(head.as_bytes())?;
    c.writer.write_all(body)?;
    let (status, close) = read_response(&mut c.reader)?;
    if close {
        *conn = None;
    }
    Ok(status)
}

/// Reads one response: its status and whether the receiver closes the connection. The
/// body is read and discarded (by length, chunks, or to the end).
fn read_response(r: &mut impl BufRead) -> io::Result<(u16, bool)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the receiver closed the connection",
        ));
    }
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1 response"));
    }
    let mut close = version == "HTTP/1.0";
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("the response ends in its headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| bad("bad Content-Length"))?,
                );
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => {
                if value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            io::copy(&mut r.by_ref().take(size + 2), &mut io::sink())?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        io::copy(&mut r.by_ref().take(n), &mut io::sink())?;
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        // No length: the body runs to the end of the connection.
        io::copy(r, &mut io::sink())?;
        close = true;
    }
    Ok((status, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_https_is_refused_with_a_reason() {
        let u: Url = "http://127.0.0.1:2801/".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 2801, "/")
        );
        let u: Url = "http://sidekick.falco.svc/hook".parse().unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/hook"));
        let u: Url = "http://[::1]:9000".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 9000, "/")
        );
        assert!(
            "https://x/"
                .parse::<Url>()
                .unwrap_err()
                .contains("plain HTTP only")
        );
        assert!("http://:80/".parse::<Url>().is_err());
        assert!("http://x:99999/".parse::<Url>().is_err());
        assert!("ftp://x/".parse::<Url>().is_err());
    }

    fn wait_until(what: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_receiver_that_is_not_there_is_retried_then_its_records_are_counted_as_dropped() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url: Url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let mut sink = HttpSink::start(url, Format::Json).unwrap();
        let health = sink.health_handle();
        for i in 0..3 {
            sink.write_all(format!("{{\"n\":{i}}}\n").as_bytes())
                .unwrap();
        }
        assert!(
            wait_until(|| health.health().dropped_failed == 3),
            "{:?}",
            health.health()
        );
        let h = health.health();
        assert_eq!(h.retries, u64::from(TRIES - 1), "{h:?}");
        assert_eq!(h.delivered, 0);
        assert!(
            h.last_error.is_some_and(|e| e.contains("refused")),
            "{:?}",
            health.health()
        );
    }

    #[test]
    fn a_refused_payload_is_dropped_at_once_and_a_good_one_delivered_on_the_same_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            let mut r = BufReader::new(conn);
            loop {
                let (mut line, mut length) = (String::new(), 0usize);
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                r.read_exact(&mut body).unwrap();
                let reply: &[u8] = if body.starts_with(b"bad") {
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno!"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                };
                w.write_all(reply).unwrap();
            }
        });
        let url: Url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let mut sink = HttpSink::start(url, Format::Falco).unwrap();
        let health = sink.health_handle();
        sink.write_all(b"bad\n").unwrap();
        sink.write_all(b"{}\n").unwrap();
        assert!(
            wait_until(|| health.health().delivered == 1),
            "{:?}",
            health.health()
        );
        let h = health.health();
        assert_eq!((h.dropped_refused, h.retries), (1, 0), "{h:?}");
    }

    #[test]
    fn responses_are_read_by_length_chunks_or_to_the_end() {
        let mut r = io::Cursor::new(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\nHTTP/1.0 500 x\r\n\r\nrest".to_vec());
        assert_eq!(read_response(&mut r).unwrap(), (200, false));
        assert_eq!(read_response(&mut r).unwrap(), (400, false));
        assert_eq!(read_response(&mut r).unwrap(), (500, true));
        assert!(read_response(&mut r).is_err());
    }
}
