//! The kernel side as the agent sees it: load the embedded object, attach its programs
//! to a cgroup through bpf_links (pinned, so enforcement outlives the agent), and read
//! and write its maps.

mod creds;
mod loader;
mod maps;
mod raw;

pub use loader::{Kernel, LoadError, Watch, implemented, uninstall};
pub use maps::Counters;
