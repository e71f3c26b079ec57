//! The kernel side as the agent sees it: load the embedded object, attach its programs
//! to a cgroup through bpf_links, and read and write its maps.

mod loader;
mod maps;

pub use loader::{Kernel, LoadError};
pub use maps::Counters;
