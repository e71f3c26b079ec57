//! Whether the shared machine was quiet during a run: the tracing programs of others
//! attached and the CPU time used by processes other than the bench's, before and after
//! each run, and waiting for quiet before the first.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use super::{Ctx, FOREIGN_CPU_LIMIT};
use crate::bench::util::{cpu_ticks, stat_fields};

/// Waits (at most `limit`) until no other tracer is attached and the machine is idle.
pub(super) fn wait_for_quiet(ctx: &Ctx, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let before = Snapshot::take(ctx);
        std::thread::sleep(Duration::from_secs(1));
        let after = Snapshot::take(ctx);
        let Some(why) = disturbance(ctx, &before, &after) else {
            return;
        };
        if t0.elapsed() > limit {
            eprintln!("bench syscalls: the machine is not quiet ({why}); measuring anyway");
            return;
        }
        eprintln!("bench syscalls: waiting for quiet: {why}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The machine's state around a run.
pub(super) struct Snapshot {
    tracers: Vec<String>,
    busy: u64,
    ours: u64,
    pub(super) at: Instant,
}

impl Snapshot {
    pub(super) fn take(ctx: &Ctx) -> Self {
        let mut ours = self_ticks();
        if let Some(a) = ctx.audit
            && let Some(d) = &a.daemon
        {
            ours += proc_ticks(d.id());
        }
        if let Some(k) = ctx.kauditd {
            ours += proc_ticks(k);
        }
        Self {
            tracers: tracers(ctx.bpftool),
            busy: busy_ticks(),
            ours,
            at: Instant::now(),
        }
    }
}

/// Why a run between two snapshots was disturbed, if it was.
pub(super) fn disturbance(ctx: &Ctx, before: &Snapshot, after: &Snapshot) -> Option<String> {
    let mut why = Vec::new();
    let mut tracers: Vec<&String> = before.tracers.iter().chain(&after.tracers).collect();
    tracers.sort();
    tracers.dedup();
    if !tracers.is_empty() {
        why.push(format!(
            "{} tracing attachment(s) of others: {}",
            tracers.len(),
            tracers
                .iter()
                .take(3)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let secs = after.at.duration_since(before.at).as_secs_f64();
    if secs > 0.0 {
        let foreign = (after.busy.saturating_sub(before.busy) as f64
            - after.ours.saturating_sub(before.ours) as f64)
            / ctx.clk_tck
            / secs;
        if foreign > FOREIGN_CPU_LIMIT {
            why.push(format!("others used {foreign:.2} CPUs"));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Tracing programs attached (perf-event, raw tracepoint and tracing links, and what
/// `bpftool perf` lists); the bench has none attached when it looks.
fn tracers(bpftool: Option<&Path>) -> Vec<String> {
    let Some(bpftool) = bpftool else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(o) = Command::new(bpftool).args(["link", "show"]).output() {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let mut w = line.split_whitespace();
            if let (Some(id), Some(kind)) = (w.next(), w.next())
                && id.ends_with(':')
                && id[..id.len() - 1].chars().all(|c| c.is_ascii_digit())
                && matches!(
                    kind,
                    "perf_event" | "raw_tracepoint" | "tracing" | "kprobe_multi" | "uprobe_multi"
                )
            {
                out.push(format!("link {} {kind}", &id[..id.len() - 1]));
            }
        }
    }
    if let Ok(o) = Command::new(bpftool).args(["perf", "show"]).output() {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let line = line.trim();
            if line.starts_with("pid ") {
                out.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    out
}

/// Busy CPU time of the machine (user, nice, system, irq, softirq), in ticks.
fn busy_ticks() -> u64 {
    let Some(v) = cpu_ticks() else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal ...
    [0, 1, 2, 5, 6].iter().filter_map(|&i| v.get(i)).sum()
}

/// utime + stime (+ cutime + cstime) of a process, in ticks.
fn stat_ticks(path: &str, children: bool) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let Some(fields) = stat_fields(&stat) else {
        return 0;
    };
    let v: Vec<u64> = fields.iter().map(|x| x.parse().unwrap_or(0)).collect();
    // Fields 14-17 of the file: utime stime cutime cstime; `fields` starts at field 3.
    let n = if children { 4 } else { 2 };
    v.iter().skip(11).take(n).sum()
}

/// The bench's own CPU time and that of every child it has waited for.
fn self_ticks() -> u64 {
    stat_ticks("/proc/self/stat", true)
}

fn proc_ticks(pid: u32) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat"), false)
}

/// The kernel's audit thread (read-only lookup by name, to account its CPU time).
pub(super) fn find_kauditd() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "kauditd").then_some(pid)
    })
}
