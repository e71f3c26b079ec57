//! Tells the kernel-side code which architecture's kernel it is built for
//! (`cfg(bpf_target_arch = "...")`), as aya-ebpf does for itself: the eBPF target is
//! `bpfel` whatever the kernel runs on, and reading a task's saved registers depends on
//! the kernel's architecture. `CARGO_CFG_BPF_TARGET_ARCH` chooses it; by default, the
//! architecture of the machine that builds.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\"))");
    println!("cargo::rerun-if-env-changed=CARGO_CFG_BPF_TARGET_ARCH");
    let arch = std::env::var("CARGO_CFG_BPF_TARGET_ARCH").unwrap_or_else(|_| {
        std::env::var("HOST")
            .ok()
            .and_then(|host| host.split('-').next().map(str::to_owned))
            .unwrap_or_default()
    });
    println!("cargo::rustc-cfg=bpf_target_arch=\"{arch}\"");
}
