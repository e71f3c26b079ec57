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

/// Each class of failure has its own exit code (docs/operations.md, "Exit codes"), so a
/// supervisor or a script can tell a bad profile from a host that cannot run the agent
/// from an agent that is not there.
#[test]
fn failures_exit_with_the_documented_code_of_their_class() {
    use std::{ffi::OsString, os::unix::process::CommandExt as _};
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.into_os_string()
    };
    let bad = file("bad.yaml", "name: bad\negress:\n  default: maybe\n");
    let good = file(
        "good.yaml",
        "name: good\nmode: enforce\nselector: {cgroup: /cgwarden-exit-code-test}\negress: {default: deny}\n",
    );
    let bad_config = file("agent.yaml", "policy: /x\nmetrics: [not an address]\n");
    let control = dir.path().join("none.sock").into_os_string();
    let state = dir.path().join("state");
    let run = |args: &[&str], files: &[&OsString], as_nobody: bool| {
        let mut cmd = std::process::Command::new(cgwarden_tests::cgwarden());
        cmd.args(args).args(files);
        if args[0] == "run" {
            cmd.arg("--control").arg(&control);
            cmd.arg("--state-dir").arg(&state).arg("--no-metrics");
        }
        if as_nobody {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(65534) != 0
                        || libc::setuid(65534) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };

    // 3: an invalid profile, placed at file:line:column; nothing was loaded.
    let (code, err) = run(&["run", "--policy"], &[&bad], false);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("bad.yaml:3:"), "{err}");
    // 3: an invalid agent config file.
    let (code, err) = run(&["run", "--config"], &[&bad_config], false);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("agent.yaml:"), "{err}");
    // 4: the host cannot run the kernel side for this user (not root).
    let (code, err) = run(&["run", "--policy"], &[&good], true);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("needs root"), "{err}");
    // 6: no agent at the control socket, for every command that asks it.
    for command in ["status", "reload"] {
        let (code, err) = run(&[command, "--control"], &[&control], false);
        assert_eq!(code, Some(6), "{command}: {err}");
        assert!(err.contains("cannot reach the agent"), "{command}: {err}");
    }
    // 1: `check` found an invalid profile; 0: it found none.
    let (code, err) = run(&["check"], &[&bad], false);
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = run(&["check"], &[&good], false);
    assert_eq!(code, Some(0), "{err}");
    // 2: anything else, as clap gives for a command line it refuses.
    let (code, _) = run(&["run", "--no-such-flag"], &[], false);
    assert_eq!(code, Some(2));
    assert!(
        !state.join("links").exists(),
        "a failed start pinned nothing"
    );
}
