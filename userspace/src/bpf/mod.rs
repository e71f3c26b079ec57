//! The kernel side as the agent sees it: load the embedded object, attach its programs
//! to a cgroup through bpf_links (pinned, so enforcement outlives the agent), and read
//! and write its maps.

pub mod btf;
mod creds;
mod layout;
mod loader;
mod maps;
mod raw;
#[cfg(test)]
mod stack_budget;
mod verify;

pub use loader::{Hooks, Kernel, LoadError, SyscallHooks, Wanted, Watch, implemented, uninstall};

/// This build's id: a hash of its eBPF object. Pins left by another build are never
/// reused (`--version`, `cgwarden_build_info`).
pub fn build_id() -> String {
    loader::object_id()
}
pub use maps::Counters;
