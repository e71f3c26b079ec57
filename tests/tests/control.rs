//! The control socket as a client that is not `cgwarden`: requests are versioned JSON
//! lines, anything else is answered with an error that names the protocol, and only
//! root may talk to the agent at all.

use std::{
    io::{Read, Write},
    os::unix::{net::UnixStream, process::CommandExt},
    process::Command,
};

use cgwarden_tests::{ProfileFile, agent::RunningAgent, require_root};
use serde_json::Value;

fn ask(agent: &RunningAgent, line: &str) -> Value {
    let mut stream = UnixStream::connect(agent.control()).unwrap();
    writeln!(stream, "{line}").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn requests_are_versioned_json_lines_and_the_socket_is_root_only() {
    require_root();
    let profile =
        ProfileFile::new("name: ctl\nmode: audit\nselector:\n  cgroup: \"/nothing-here-*\"\n");
    let agent = RunningAgent::start(profile.path());
    let status = ask(&agent, r#"{"v": 1, "command": "status"}"#);
    assert_eq!(status["ok"], true, "{status}");
    for (line, says) in [
        ("status", "JSON lines, version 1"),
        (
            r#"{"v": 2, "command": "status"}"#,
            "version 2 is not spoken here",
        ),
        (r#"{"v": 1, "command": "shutdown"}"#, "unknown command"),
        (
            r#"{"v": 1, "command": "status", "as": "root"}"#,
            "unknown field",
        ),
    ] {
        let answer = ask(&agent, line);
        assert_eq!(answer["ok"], false, "{line}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{line}: {answer}"
        );
    }
    // A filter with spaces is one value: the agent takes the request and follows (no
    // error answer; the stream stays open for events).
    let mut follow = UnixStream::connect(agent.control()).unwrap();
    writeln!(
        follow,
        r#"{{"v": 1, "command": "follow", "filter": {{"container": "my app / web 1"}}}}"#
    )
    .unwrap();
    follow
        .set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 256];
    match follow.read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!(
            "the follow request was answered: {other:?} {}",
            String::from_utf8_lossy(&buf)
        ),
    }
    // Another user cannot even connect: the socket is root's, mode 0600.
    let socket = agent.control();
    let out = unsafe {
        Command::new("python3")
            .args([
                "-c",
                "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1]); print('connected')\nexcept PermissionError:\n    print('refused')",
            ])
            .arg(&socket)
            .pre_exec(|| {
                if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .output()
            .unwrap()
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), "refused\n", "{out:?}");
    // The agent is still there and answering.
    assert_eq!(ask(&agent, r#"{"v": 1, "command": "status"}"#)["ok"], true);
}
