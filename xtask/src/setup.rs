//! Installs what building and testing need on a fresh Debian machine, and does nothing
//! (in well under a second) when everything is there.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// Debian packages: the eBPF toolchain (rustc 1.96 with a prebuilt `core` for
/// bpfel-unknown-none, and LLVM 22 for bpf-linker), and what the tests and benchmarks run.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "runc",
    "busybox-static",
    "iproute2",
    "nftables",
    "python3",
    // A virtual environment for kubernetes-validate (PyPI), which checks the manifests.
    "python3-venv",
    // The container engines the integration tests run real containers in: Docker Engine
    // (docker.io brings containerd and its own runc), docker-compose and Podman.
    "docker.io",
    "docker-compose",
    "podman",
];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn setup() -> anyhow::Result<()> {
    let missing = missing_packages()?;
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        apt(&["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend(missing.iter().map(String::as_str));
        apt(&args)?;
    }
    // Only the manifest test needs it: without it that test fails and names it, and
    // everything else still runs.
    if let Err(e) = kubernetes_validate() {
        eprintln!("xtask: warning: {e:#}");
    }
    let linker = bpf_linker_path();
    if !bpf_linker_ok(&linker) {
        eprintln!(
            "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)"
        );
        let path = format!(
            "/usr/lib/llvm-22/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
                "--locked",
            ])
            .env("PATH", path)
            .status()
            .context("could not run cargo install")?;
        if !status.success() || !bpf_linker_ok(&linker) {
            bail!(
                "bpf-linker {BPF_LINKER_VERSION} could not be built; it needs llvm-22-dev and access to crates.io"
            );
        }
    }
    Ok(())
}

/// Where `cargo xtask setup` puts kubernetes-validate (in a virtual environment of its
/// own under target/, so no system Python is changed); the tests find it there.
pub fn kubernetes_validate_path() -> PathBuf {
    crate::workspace_root().join("target/tools/venv/bin/kubernetes-validate")
}

/// Installs kubernetes-validate from PyPI when it is not there yet.
fn kubernetes_validate() -> anyhow::Result<()> {
    let tool = kubernetes_validate_path();
    if tool.exists() {
        return Ok(());
    }
    let venv = tool
        .parent()
        .and_then(|bin| bin.parent())
        .context("the virtual environment's directory")?
        .to_path_buf();
    eprintln!(
        "xtask: installing kubernetes-validate (PyPI) into {}",
        venv.display()
    );
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("could not run python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed ({status})", venv.display());
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "kubernetes-validate"])
        .status()
        .context("could not run pip")?;
    if !status.success() || !tool.exists() {
        bail!("pip install kubernetes-validate failed ({status}); it needs access to PyPI");
    }
    Ok(())
}

fn missing_packages() -> anyhow::Result<Vec<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${db:Status-Status}\n"])
        .args(PACKAGES)
        .stderr(Stdio::null())
        .output()
        .context("dpkg-query is missing: cargo xtask setup supports Debian-based machines only")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(PACKAGES
        .iter()
        .filter(|p| {
            !text
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [**p, "installed"])
        })
        .map(|p| (*p).to_owned())
        .collect())
}

fn apt(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("apt-get is missing: install the packages by hand")?;
    if !status.success() {
        bail!(
            "apt-get {} failed ({status}); the build needs Debian's {} packages",
            args.first().unwrap_or(&""),
            PACKAGES.join(", ")
        );
    }
    Ok(())
}

fn bpf_linker_path() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    cargo_home.join("bin/bpf-linker")
}

fn bpf_linker_ok(path: &PathBuf) -> bool {
    Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
}
