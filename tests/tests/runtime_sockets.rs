//! Container runtime API sockets are known by the socket file a connect reaches, not by
//! the name the caller gives it: a bind mount, a symlink, a hard link, `/proc/self/root`
//! and an `addrlen` that cuts the name short all reach the same socket and are all
//! reported. The socket is a stand-in the agent is told is a runtime socket (never the
//! host's real docker.sock).

use std::{os::unix::net::UnixListener, process::Command, time::Duration};

use cgwarden_tests::{ProfileFile, agent::RunningAgent, cgroup::TestCgroup, require_root, unique};

const ATTACKER: &str = r#"
import ctypes, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
class sockaddr_un(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("path", ctypes.c_char * 108)]
def connect(path, addrlen=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    addr = sockaddr_un(socket.AF_UNIX, path.encode())
    n = addrlen if addrlen is not None else 2 + len(path)
    rc = libc.connect(s.fileno(), ctypes.byref(addr), n)
    print(path, 'connected' if rc == 0 else 'error %d' % ctypes.get_errno())
    s.close()
real, mounted, link, hard, decoy = sys.argv[1:6]
connect(real)
connect(mounted)
connect(link)
connect(hard)
connect('/proc/self/root' + real)
# The name cut short by addrlen: the bytes past it are junk the kernel never reads.
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
addr = sockaddr_un(socket.AF_UNIX, (real + 'JUNK').encode())
rc = libc.connect(s.fileno(), ctypes.byref(addr), 2 + len(real))
print('cut short', 'connected' if rc == 0 else 'error %d' % ctypes.get_errno())
connect(decoy)
"#;

#[test]
fn a_runtime_socket_is_known_by_the_socket_it_reaches_whatever_the_path() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("standin.sock");
    let _listener = UnixListener::bind(&real).unwrap();
    let decoy_path = dir.path().join("decoy.sock");
    let _decoy = UnixListener::bind(&decoy_path).unwrap();
    // The same socket under other names: a bind mount, a symlink, a hard link.
    let mounted = dir.path().join("mnt/api.sock");
    std::fs::create_dir_all(mounted.parent().unwrap()).unwrap();
    std::fs::write(&mounted, b"").unwrap();
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(&real)
        .arg(&mounted)
        .status()
        .unwrap();
    assert!(bound.success(), "bind mount");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mounted.clone());
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let hard = dir.path().join("hard.sock");
    std::fs::hard_link(&real, &hard).unwrap();

    let base = unique("cgwarden-test-rtsock");
    let _base = TestCgroup::create(&base);
    let profile = ProfileFile::new(&format!(
        "name: rtsock\nmode: enforce\nselector:\n  cgroup: \"/{base}/*\"\nsyscalls:\n  - set: escape\n    action: report\n"
    ));
    let real_arg = real.display().to_string();
    let agent = RunningAgent::start_with(profile.path(), &["--runtime-socket", &real_arg]);
    let app = TestCgroup::create(&format!("{base}/app"));
    std::thread::sleep(Duration::from_millis(300));
    let paths: Vec<String> = [&real, &mounted, &link, &hard, &decoy_path]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let out = app.run(Command::new("python3").arg("-c").arg(ATTACKER).args(&paths));
    assert_eq!(
        out.lines().filter(|l| l.ends_with("connected")).count(),
        7,
        "{out}"
    );
    let events = agent.stop_and_read();
    let connects: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "syscall" && e["syscall"] == "connect")
        .collect();
    // Six routes to the runtime socket; the decoy is not one.
    assert_eq!(connects.len(), 6, "{connects:#?}");
    assert!(
        connects
            .iter()
            .all(|e| e["path"].as_str() != Some(decoy_path.to_str().unwrap())),
        "{connects:#?}"
    );
    let named: Vec<&str> = connects.iter().filter_map(|e| e["path"].as_str()).collect();
    for p in [&paths[1], &paths[2], &paths[3]] {
        assert!(named.contains(&p.as_str()), "{p} not reported: {named:?}");
    }
}
