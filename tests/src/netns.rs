//! Test hosts: two network namespaces joined by a veth pair, removed on drop.
//!
//! Host A (`192.0.2.1`, `2001:db8::1`) and host B (`192.0.2.2`, `2001:db8::2`) use
//! documentation addresses that exist only inside these namespaces; nothing leaves them.

use std::{fs::File, os::fd::AsRawFd, process::Command};

/// Two namespaces `a` and `b` with a veth link between them and loopback up.
pub struct NetnsPair {
    pub a: String,
    pub b: String,
}

pub const A_V4: &str = "192.0.2.1";
pub const B_V4: &str = "192.0.2.2";
pub const A_V6: &str = "2001:db8::1";
pub const B_V6: &str = "2001:db8::2";

impl NetnsPair {
    pub fn new(tag: &str) -> Self {
        let pair = Self {
            a: crate::unique(&format!("cgw{tag}a")),
            b: crate::unique(&format!("cgw{tag}b")),
        };
        let (a, b) = (pair.a.as_str(), pair.b.as_str());
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&[
            "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b,
        ]);
        for (ns, dev, v4, v6) in [(a, "veth0", A_V4, A_V6), (b, "veth1", B_V4, B_V6)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    /// Runs `f` on a thread that has entered namespace `ns` (sockets it opens live
    /// there), and returns its result.
    pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = File::open(format!("/run/netns/{ns}")).expect("open netns");
        std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
