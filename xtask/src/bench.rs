//! Benchmarks. Each measures cgwarden against a baseline taken in the same run.
//!
//! - `egress`: loopback connect+accept+close latency and UDP sendto rate from a process
//!   in a plain cgroup, under cgwarden with 10 and 100,000 allowlist rules, and under
//!   nftables (`socket cgroupv2` + a 100,000-element interval set); plus the time to
//!   compile and load a 100,000-CIDR profile. See [`egress`].
//! - `events`: the highest rate of events the agent delivers to its JSON file sink with
//!   zero loss, its resident memory at that rate, and its start-to-enforcing time. See
//!   [`events`].
//! - `syscalls`: what unwatched and watched syscalls cost a process (a getppid loop, a
//!   syscall-heavy mix, gcc) under cgwarden, bpftrace and auditd. See [`syscalls`].
//!
//! The programs that make the load (`connbench`, `eventstorm`, `syscallbench`) are the
//! binaries of the `cgwarden-benchclients` package (benchclients/), built here in the
//! release profile, next to the agent.

mod egress;
mod events;
mod judge;
mod syscalls;
mod util;

use std::path::Path;

use anyhow::bail;

use crate::StatusChecked as _;

/// Every benchmark, in the order `cargo xtask bench` runs them.
const ALL: &[&str] = &["egress", "events", "syscalls"];

/// The package whose binaries are the benchmark clients.
pub const CLIENTS_PACKAGE: &str = "cgwarden-benchclients";

/// The sizes of a quick run (`cargo xtask bench --quick`), each unless already set.
const QUICK: [(&str, &str); 13] = [
    ("CGWARDEN_BENCH_REPS", "1"),
    // Quick figures are for development: no extra repetitions to decide a target.
    ("CGWARDEN_BENCH_MAX_REPS", "1"),
    ("CGWARDEN_BENCH_TCP", "2000"),
    ("CGWARDEN_BENCH_UDP", "40000"),
    ("CGWARDEN_BENCH_GETPPID", "20000"),
    ("CGWARDEN_BENCH_MIX", "1000"),
    ("CGWARDEN_BENCH_GCC", "2"),
    ("CGWARDEN_BENCH_EVENTS_SECS", "1"),
    ("CGWARDEN_BENCH_EVENTS_REPS", "1"),
    ("CGWARDEN_BENCH_EVENTS_STARTS", "2"),
    ("CGWARDEN_BENCH_EVENTS_BUDGET", "15"),
    ("CGWARDEN_BENCH_EVENTS_WARMUP", "1"),
    // One file system (tmpfs) instead of two.
    ("CGWARDEN_BENCH_EVENTS_DIRS", "/dev/shm"),
];

/// Makes the benches that follow a quick run: smaller sizes (unless set), reports to
/// target/bench/quick/.
pub fn quick() {
    for (name, value) in QUICK {
        if std::env::var_os(name).is_none() {
            // SAFETY: called from main before any thread exists.
            unsafe { std::env::set_var(name, value) };
        }
    }
    // SAFETY: as above.
    unsafe { std::env::set_var(util::QUICK_ENV, "1") };
}

pub fn run(root: &Path, bin: &Path, which: Option<&str>) -> anyhow::Result<()> {
    let selected: Vec<&str> = match which {
        None | Some("all") => ALL.to_vec(),
        Some(name) if ALL.contains(&name) => vec![name],
        Some(other) => bail!(
            "no benchmark `{other}`; available: {} (or none for all)",
            ALL.join(", ")
        ),
    };
    build_clients(root)?;
    for name in selected {
        match name {
            "egress" => egress::run(root, bin)?,
            "events" => events::run(root, bin)?,
            "syscalls" => syscalls::run(root, bin)?,
            other => bail!("benchmark `{other}` is listed but not wired up"),
        }
    }
    Ok(())
}

/// Builds the benchmark clients in the release profile, where [`util::client_binary`]
/// finds them: next to the release `cgwarden`.
fn build_clients(root: &Path) -> anyhow::Result<()> {
    crate::cargo(root)
        .args(["build", "--release", "--bins", "-p", CLIENTS_PACKAGE])
        .status_checked(&format!("cargo build -p {CLIENTS_PACKAGE}"))
}
