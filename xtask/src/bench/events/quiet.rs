//! The load of the shared machine around a trial: the CPU time of processes other than
//! the bench's, and waiting until the machine is nearly idle before a trial.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::QUIET_CPUS;
use crate::bench::util::{cpu_ticks, stat_fields};

/// CPU ticks (user + system) of every process that is neither a kernel thread, nor this
/// bench, nor one of its children, by pid.
pub(super) fn others_ticks() -> HashMap<u32, u64> {
    let me = std::process::id();
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `f` starts at field 3 of stat(5): ppid is field 4, utime..cstime 14..17.
        let Some(f) = stat_fields(&stat) else {
            continue;
        };
        let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
        let Some(ppid) = num(4) else { continue };
        if pid == me || ppid == u64::from(me) || pid == 2 || ppid == 2 {
            continue;
        }
        let ticks = (14..=15).filter_map(num).sum();
        out.insert(pid, ticks);
    }
    out
}

/// Ticks used between two [`others_ticks`] snapshots (processes that appeared count in
/// full; those that came and went in between are missed).
pub(super) fn delta_ticks(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> f64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum::<u64>() as f64
}

/// (busy, all) ticks of the whole machine, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let v = cpu_ticks()?;
    // user nice system idle iowait irq softirq steal
    let idle = v.get(3)? + v.get(4)?;
    let all: u64 = v.iter().take(8).sum();
    Some((all - idle, all))
}

/// Waits (up to 5 s) until the machine uses less than [`QUIET_CPUS`] over half a
/// second; then returns anyway.
pub(super) fn wait_quiet(clk_tck: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut warned = false;
    while Instant::now() < deadline {
        let (Some((b0, _)), t0) = (machine_ticks(), Instant::now()) else {
            return;
        };
        std::thread::sleep(Duration::from_millis(500));
        let Some((b1, _)) = machine_ticks() else {
            return;
        };
        let busy = (b1 - b0) as f64 / clk_tck / t0.elapsed().as_secs_f64();
        if busy < QUIET_CPUS {
            return;
        }
        if !warned {
            eprintln!("bench events: the machine is busy ({busy:.2} CPUs); waiting");
            warned = true;
        }
    }
    eprintln!("bench events: the machine stayed busy; going on");
}
