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

#[test]
fn completions_and_man_pages_come_from_the_command_line_itself() {
    // bash: completing `cgwarden le` offers `learn`, and `cgwarden learn --se` its flags.
    let script = std::process::Command::new(cgwarden_tests::cgwarden())
        .args(["generate", "completion", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success(), "{script:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cgwarden.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let complete = |words: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _cgwarden cgwarden; echo \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        complete("cgwarden le")
            .split(' ')
            .any(|w| w.trim() == "learn")
    );
    let flags = complete("cgwarden learn --se");
    for flag in ["--select", "--seccomp", "--seccomp-kubelet"] {
        assert!(
            flags.split_whitespace().any(|w| w == flag),
            "{flag}: {flags}"
        );
    }
    // zsh and fish too.
    for shell in ["zsh", "fish"] {
        let out = std::process::Command::new(cgwarden_tests::cgwarden())
            .args(["generate", "completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    // A man page for the command and for each subcommand users see.
    let man = dir.path().join("man");
    let out = std::process::Command::new(cgwarden_tests::cgwarden())
        .args(["generate", "man"])
        .arg(&man)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "cgwarden",
        "cgwarden-run",
        "cgwarden-exec",
        "cgwarden-learn",
        "cgwarden-posture",
    ] {
        let text = std::fs::read_to_string(man.join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1: {e}"));
        assert!(text.contains(".TH "), "{page}.1");
    }
    assert!(
        !man.join("cgwarden-generate.1").exists(),
        "the hidden command has no page"
    );
}
