//! The deploy files: the systemd unit passes `systemd-analyze verify` against the built
//! binary, and the agent tells systemd it is ready (`Type=notify`) once it enforces,
//! and that it is stopping; the Kubernetes manifest validates (kubernetes-validate) and
//! has the probes, the Service, the mounts and the image operators need.

use std::{os::unix::net::UnixDatagram, process::Command, time::Duration};

use cgwarden_tests::{ProfileFile, agent::RunningAgent, cgwarden, require_root};

#[test]
fn the_systemd_unit_verifies_against_the_built_binary() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/cgwarden.service"
    ))
    .unwrap();
    for line in [
        "Type=notify",
        "SystemCallErrorNumber=EPERM",
        "LimitNOFILE=",
        "CAP_SYS_PTRACE",
    ] {
        assert!(unit.contains(line), "the unit lacks {line}");
    }
    assert!(
        !unit.contains("ProtectControlGroups=yes"),
        "kill-container writes cgroup.kill"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cgwarden.service");
    std::fs::write(
        &file,
        unit.replace("/usr/local/bin/cgwarden", &cgwarden().display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("systemd-analyze (systemd) verifies the unit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // An unknown or malformed setting is only a warning ("ignoring"): none is allowed.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_agent_says_ready_once_it_enforces_and_stopping_when_it_stops() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify");
    let receiver = UnixDatagram::bind(&socket).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let profile = ProfileFile::new(
        "name: ready\nmode: enforce\nselector:\n  cgroup: \"/cgwarden-selects-nothing\"\negress:\n  default: allow\n",
    );
    let agent = RunningAgent::start_with_env(profile.path(), &[], &[("NOTIFY_SOCKET", &socket)]);
    let mut buf = [0u8; 64];
    let n = receiver.recv(&mut buf).expect("READY=1 from the agent");
    assert_eq!(&buf[..n], b"READY=1");
    // By then it said it enforces.
    assert!(
        agent.log().contains("cgwarden is enforcing"),
        "{}",
        agent.log()
    );
    drop(agent.stop_and_read());
    let n = receiver.recv(&mut buf).expect("STOPPING=1 from the agent");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn the_daemonset_validates_and_has_what_operators_need() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = root.join("deploy/kubernetes/cgwarden.yaml");
    let tool = std::env::var_os("CGWARDEN_KUBERNETES_VALIDATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/tools/venv/bin/kubernetes-validate"));
    let out = Command::new(&tool)
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubernetes-validate (PyPI; `cargo xtask setup` installs it) at {}: {e}",
                tool.display()
            )
        });
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&manifest).unwrap();
    // ConfigMaps as directories: kubelet never updates a subPath mount.
    assert!(
        !text.contains("subPath:"),
        "a subPath mount never sees edits"
    );
    // Probes the agent answers, a port and a Service Prometheus can reach.
    for needed in [
        "path: /healthz",
        "path: /readyz",
        "containerPort: 9464",
        "kind: Service",
        "metrics: 0.0.0.0:9464",
        // The runtimes' state, for names and Kubernetes metadata.
        "mountPath: /run/containerd",
        "mountPath: /run/runc",
        "mountPath: /run/crun",
        "mountPath: /run/containers",
        // Events name the node, not the pod.
        "name: CGWARDEN_HOSTNAME",
        "fieldPath: spec.nodeName",
    ] {
        assert!(text.contains(needed), "the manifest lacks {needed:?}");
    }
    // The image a user builds with `cargo xtask image`, never pulled.
    let image_rs = std::fs::read_to_string(root.join("xtask/src/image.rs")).unwrap();
    let tag = image_rs
        .lines()
        .find_map(|l| l.strip_prefix("pub const DEFAULT_TAG: &str = \""))
        .and_then(|l| l.strip_suffix("\";"))
        .expect("xtask's default image tag");
    assert!(
        text.contains(&format!("image: {tag}\n")),
        "image is not {tag}"
    );
    assert!(text.contains("imagePullPolicy: Never"));
}
