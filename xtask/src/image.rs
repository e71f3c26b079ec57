//! `cargo xtask image`: the agent's container image, made without a registry or a
//! base image: the agent binary and the shared libraries it links (as `ldd` lists
//! them), the default configuration and profiles, imported with `docker import`.
//! `deploy/container/README.md` says how to run it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// The tag `cargo xtask image` gives by default.
pub const DEFAULT_TAG: &str = "cgwarden:local";

const ENTRYPOINT: &str = r#"ENTRYPOINT ["/usr/local/bin/cgwarden"]"#;
const CMD: &str = r#"CMD ["run", "--config", "/etc/cgwarden/agent.yaml"]"#;

/// Builds the image from `binary` and tags it `tag`.
pub fn build(root: &Path, binary: &Path, tag: &str) -> anyhow::Result<()> {
    crate::engines::dockerd()?;
    let dir = tempfile_dir()?;
    let rootfs = dir.join("rootfs");
    for d in [
        "usr/local/bin",
        "etc/cgwarden",
        "var/log/cgwarden",
        "run/cgwarden",
        "tmp",
        "sys",
        "proc",
        "dev",
    ] {
        fs::create_dir_all(rootfs.join(d)).with_context(|| format!("making {d}"))?;
    }
    copy(binary, &rootfs.join("usr/local/bin/cgwarden"))?;
    for lib in shared_libraries(binary)? {
        copy(&lib, &rootfs.join(lib.strip_prefix("/").unwrap_or(&lib)))?;
    }
    copy(
        &root.join("deploy/agent.yaml"),
        &rootfs.join("etc/cgwarden/agent.yaml"),
    )?;
    let policies = rootfs.join("etc/cgwarden/policies");
    fs::create_dir_all(&policies)?;
    for entry in fs::read_dir(root.join("policies"))?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "yaml") {
            copy(&entry.path(), &policies.join(entry.file_name()))?;
        }
    }
    let tar = Command::new("tar")
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("tar")?;
    let status = Command::new(crate::engines::DOCKER)
        .args(["import", "--change", ENTRYPOINT, "--change", CMD])
        .args(["--change", "LABEL org.opencontainers.image.title=cgwarden"])
        .arg("-")
        .arg(tag)
        .stdin(tar.stdout.context("tar output")?)
        .stdout(Stdio::null())
        .status()
        .context("docker import")?;
    let _ = fs::remove_dir_all(&dir);
    if !status.success() {
        bail!("docker import of the agent image failed ({status})");
    }
    eprintln!("xtask: image {tag} from {}", binary.display());
    Ok(())
}

/// The shared libraries (and the dynamic loader) `binary` needs, by `ldd`.
fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("ldd is missing")?;
    if !out.status.success() {
        // A static binary needs none.
        return Ok(Vec::new());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x...)`.
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Copies a file, following links, making its directory.
fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cgwarden-image-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}
