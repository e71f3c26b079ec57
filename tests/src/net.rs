//! Listeners on loopback addresses that count what reaches them.

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
};

/// A TCP listener on a loopback address that accepts and closes connections, counting
/// them, until dropped.
pub struct TcpServer {
    pub addr: SocketAddr,
    fd: std::os::fd::RawFd,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    /// Binds `ip` on a free port (`127.0.0.x` or `::1`).
    pub fn bind(ip: &str) -> Self {
        let bind: SocketAddr = if ip.contains(':') {
            format!("[{ip}]:0")
        } else {
            format!("{ip}:0")
        }
        .parse()
        .expect("address");
        let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let fd = listener.as_raw_fd();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        // Blocking accepts keep up with a client connecting in a tight loop; drop wakes
        // the thread by shutting the listening socket down (which works from any
        // network namespace, unlike connecting to it).
        let thread = std::thread::spawn(move || {
            while let Ok(_conn) = listener.accept() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                a.fetch_add(1, Ordering::Relaxed);
            }
        });
        Self {
            addr,
            fd,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: the listener (owned by the accept thread) is still open: the thread
        // only ends after accept fails, which this call causes.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP socket on a loopback address; `received` counts datagrams read so far.
pub struct UdpServer {
    pub addr: SocketAddr,
    socket: UdpSocket,
}

impl UdpServer {
    pub fn bind(ip: &str) -> Self {
        let bind: SocketAddr = if ip.contains(':') {
            format!("[{ip}]:0")
        } else {
            format!("{ip}:0")
        }
        .parse()
        .expect("address");
        let socket = UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        socket.set_nonblocking(true).expect("nonblocking");
        let addr = socket.local_addr().expect("local addr");
        Self { addr, socket }
    }

    /// Reads every datagram waiting and returns how many there were.
    pub fn received(&self) -> usize {
        let mut buf = [0u8; 1500];
        let mut n = 0;
        while self.socket.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}
