//! Builds the kernel-side object (`ebpf/`) with Debian's rustc-web for
//! `bpfel-unknown-none` and places it in OUT_DIR, where `src/bpf/loader.rs` embeds it.
//!
//! `CGWARDEN_EBPF_OBJECT=<path>` uses a prebuilt object instead. `cargo xtask setup`
//! installs the toolchain this needs.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let dest = out_dir.join("cgwarden-ebpf");

    println!("cargo:rerun-if-env-changed=CGWARDEN_EBPF_OBJECT");
    if let Some(prebuilt) = env::var_os("CGWARDEN_EBPF_OBJECT") {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        copy(Path::new(&prebuilt), &dest);
        return;
    }
    for watched in [
        "ebpf/src",
        "ebpf/Cargo.toml",
        "ebpf/build.rs",
        "ebpf/.cargo/config.toml",
        "common/src",
        "common/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    for (path, package) in [
        (DEBIAN_CARGO, "cargo-web"),
        (DEBIAN_RUSTC, "rustc-web"),
        (
            "/usr/lib/rustlib/bpfel-unknown-none",
            "libstd-rust-web-dev-bpf",
        ),
    ] {
        if !Path::new(path).exists() {
            fail(&format!(
                "{path} is missing (Debian package {package}); run `cargo xtask setup` first"
            ));
        }
    }
    let home = env::var_os("HOME").unwrap_or_default();
    let cargo_bin = Path::new(&home).join(".cargo/bin");
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        cargo_bin.display()
    );
    let ebpf_dir = root.join("ebpf");
    // A clean environment: the outer cargo's variables (RUSTC, RUSTFLAGS, target dir,
    // toolchain overrides) must not leak into the kernel-side build.
    let status = Command::new(DEBIAN_CARGO)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", &home)
        .env("RUSTC", DEBIAN_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TERM_COLOR", "never")
        .current_dir(&ebpf_dir)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "bpfel-unknown-none",
        ])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!(
            "building the eBPF object in {} failed ({s}); is bpf-linker 0.13 installed? run `cargo xtask setup`",
            ebpf_dir.display()
        )),
        Err(e) => fail(&format!("could not run {DEBIAN_CARGO}: {e}")),
    }
    copy(
        &ebpf_dir.join("target/bpfel-unknown-none/release/cgwarden-ebpf"),
        &dest,
    );
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        fail(&format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
