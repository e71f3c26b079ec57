//! Command-line conventions: what a user of other Unix tools expects of `cgwarden`'s
//! printing commands.

#[test]
fn a_reader_that_goes_away_ends_a_printing_command_quietly() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let lines: String = (0..20_000)
        .map(|i| {
            format!(
                "{{\"kind\":\"connect\",\"dst\":\"127.0.0.1\",\"port\":80,\"protocol\":\"tcp\",\"count\":1,\"time\":\"t\",\"verdict\":\"allow\",\"cgroup\":\"/c{i}\"}}\n"
            )
        })
        .collect();
    std::fs::write(&events, lines).unwrap();
    // `cgwarden report | head -c 10`: the reader takes a little, then closes the pipe.
    let mut child = std::process::Command::new(cgwarden_tests::cgwarden())
        .args(["report", "--events"])
        .arg(&events)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{out:?}");
}
