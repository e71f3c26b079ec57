//! What is timed and counted in a run of a configuration, and how: the client's command
//! line and result, one run under each kind of monitor with its checks (cgroup, raw
//! `sys_enter`, events recorded), the retry of a disturbed run, and the extra runs that
//! read per-program kernel time and count the workloads' syscalls.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{
    ATTEMPTS, Config, Ctx, Hooks, Kind, PAUSE_MS, ROUNDS,
    peers::{Bpftrace, bpftrace_count},
    quiet::{Snapshot, disturbance},
};
use crate::bench::util::{self, EventLine, cgwarden_exec_with, check_cgroup, result_line, which};

/// What a monitor made of the watched getppid calls.
#[derive(Clone, Copy)]
pub(super) struct Seen {
    pub(super) calls: u64,
    pub(super) recorded: Option<u64>,
    pub(super) lost: u64,
}

#[derive(Clone, Default)]
pub(super) struct Sample {
    pub(super) getppid_ns: Option<f64>,
    /// The getppid loop's median on each CPU, in the order of `cpus`.
    pub(super) getppid_by_cpu: Vec<f64>,
    pub(super) cpus: Vec<String>,
    pub(super) mix_ns: Option<f64>,
    pub(super) gcc_ms: Option<f64>,
    /// Wall time of the run minus the client's own: the monitor's start and stop.
    pub(super) overhead_ms: f64,
    pub(super) seen: Option<Seen>,
    /// Why the run was disturbed, if it was.
    pub(super) disturbed: Option<String>,
}

/// The client's JSON line.
struct ClientResult {
    pid: u32,
    cgroup: String,
    getppid_calls: u64,
    getppid_ns: Option<f64>,
    getppid_by_cpu: Vec<f64>,
    cpus: Vec<String>,
    mix_ns: Option<f64>,
    gcc_ms: Option<f64>,
    elapsed_ms: f64,
}

/// Per-program kernel time of one cgwarden run.
pub(super) struct ProgCost {
    pub(super) config: &'static str,
    pub(super) program: String,
    pub(super) runs: u64,
    pub(super) ns_per_run: f64,
}

/// Runs a configuration until a run is not disturbed, at most [`ATTEMPTS`] times while
/// the retry budget lasts.
pub(super) fn measure_quietly(
    ctx: &Ctx,
    c: &Config,
    budget: &mut Duration,
) -> anyhow::Result<Sample> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Let deferred work of the previous run (detaching, freeing) settle.
        std::thread::sleep(Duration::from_millis(200));
        let before = Snapshot::take(ctx);
        let mut s = match measure(ctx, c) {
            Ok(s) => s,
            // A peer that hangs (bpftrace has once not stopped on SIGINT) fails this run
            // only; it is killed, and the run is repeated.
            Err(e) if matches!(c.kind, Kind::Bpftrace { .. }) && attempt < ATTEMPTS => {
                eprintln!("bench syscalls: ({}) failed ({e:#}); repeating", c.key);
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
            Err(e) => return Err(e.context(format!("({}) {}", c.key, c.label))),
        };
        let after = Snapshot::take(ctx);
        s.disturbed = disturbance(ctx, &before, &after);
        let Some(why) = &s.disturbed else {
            return Ok(s);
        };
        if attempt >= ATTEMPTS || budget.is_zero() {
            return Ok(s);
        }
        eprintln!("bench syscalls: ({}) disturbed ({why}); repeating", c.key);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        *budget = budget.saturating_sub(t0.elapsed() + after.at.duration_since(before.at));
    }
}

fn client_args(ctx: &Ctx, c: &Config, join: bool) -> Vec<String> {
    let s = ctx.settings;
    let mut args = vec![
        "--getppid".to_owned(),
        c.getppid.to_string(),
        "--mix".to_owned(),
        if c.mix { s.mix } else { 0 }.to_string(),
        "--gcc".to_owned(),
        if c.gcc { s.gcc } else { 0 }.to_string(),
        "--rounds".to_owned(),
        ROUNDS.to_string(),
        "--pause-ms".to_owned(),
        PAUSE_MS.to_string(),
        "--scratch".to_owned(),
        ctx.scratch.display().to_string(),
        "--spread-cpus".to_owned(),
        "1".to_owned(),
    ];
    if join {
        args.push("--join-cgroup".to_owned());
        args.push(ctx.plain.path().display().to_string());
    }
    args
}

/// One run of one configuration.
fn measure(ctx: &Ctx, c: &Config) -> anyhow::Result<Sample> {
    let t0 = Instant::now();
    let (r, seen) = match &c.kind {
        Kind::Plain => {
            let out = output(
                Command::new(ctx.client).args(client_args(ctx, c, true)),
                "syscallbench",
            )?;
            (parse_client(&out.stdout, Some(ctx.plain.relative()))?, None)
        }
        Kind::Cgwarden { policy, raw, hooks } => {
            let events = ctx.scratch.join("events.json");
            let _ = std::fs::remove_file(&events);
            let mut cmd = cgwarden_exec_with(
                ctx.bin,
                policy,
                Some(&events),
                &["--syscall-hooks", hooks.arg()],
            );
            cmd.env("RUST_LOG", "info")
                .arg(ctx.client)
                .args(client_args(ctx, c, false));
            let out = output(&mut cmd, "cgwarden exec -- syscallbench")?;
            let r = parse_client(&out.stdout, None)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            // With the raw hooks, everything goes through raw sys_enter (no message).
            let used_raw = stderr.contains("through raw sys_enter") || *hooks == Hooks::Raw;
            if used_raw != *raw {
                bail!(
                    "the agent {} raw sys_enter, expected the opposite:\n{stderr}",
                    if used_raw { "used" } else { "did not use" }
                );
            }
            let tally = scan_events(&events, r.pid)?;
            let _ = std::fs::remove_file(&events);
            let seen = if c.watched {
                Some(Seen {
                    calls: r.getppid_calls,
                    recorded: Some(tally.getppid),
                    lost: tally.lost,
                })
            } else {
                if tally.other > 0 || tally.getppid > 0 {
                    bail!(
                        "the client's unwatched syscalls produced {} events",
                        tally.other + tally.getppid
                    );
                }
                None
            };
            (r, seen)
        }
        Kind::Bpftrace { script, counts } => {
            let bt_path = ctx.bpftrace.context("bpftrace missing")?;
            let bt = Bpftrace::start(bt_path, script, ctx.ledger)?;
            let out = output(
                Command::new(ctx.client).args(client_args(ctx, c, true)),
                "syscallbench",
            );
            let printed = bt.stop()?;
            let r = parse_client(&out?.stdout, Some(ctx.plain.relative()))?;
            let mut seen = None;
            if *counts {
                let count = bpftrace_count(&printed, ctx.plain_id);
                if count == 0 {
                    bail!(
                        "bpftrace counted no syscall of the client's cgroup; its output:\n{printed}"
                    );
                }
                if count < r.getppid_calls {
                    eprintln!(
                        "bench syscalls: ({}) bpftrace counted {count} syscalls of the client's \
                         cgroup, fewer than its {} getppid calls",
                        c.key, r.getppid_calls
                    );
                }
                if c.watched {
                    seen = Some(Seen {
                        calls: r.getppid_calls,
                        recorded: Some(count),
                        lost: 0,
                    });
                }
            }
            (r, seen)
        }
        Kind::Auditd => {
            let audit = ctx.audit.context("auditd unavailable")?;
            let lost_before = audit.status("lost");
            let watch = audit.watch()?;
            let out = output(
                Command::new(ctx.client).args(client_args(ctx, c, true)),
                "syscallbench",
            );
            drop(watch);
            let r = parse_client(&out?.stdout, Some(ctx.plain.relative()))?;
            let recorded = audit.records(r.pid, r.getppid_calls);
            if recorded == Some(0) {
                bail!(
                    "auditd logged no getppid record of the client ({} calls): the rule was \
                     not in force",
                    r.getppid_calls
                );
            }
            let lost = match (lost_before, audit.status("lost")) {
                (Some(a), Some(b)) => b
                    .parse::<u64>()
                    .unwrap_or(0)
                    .saturating_sub(a.parse().unwrap_or(0)),
                _ => 0,
            };
            let seen = Some(Seen {
                calls: r.getppid_calls,
                recorded,
                lost,
            });
            (r, seen)
        }
    };
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(Sample {
        getppid_ns: r.getppid_ns,
        getppid_by_cpu: r.getppid_by_cpu,
        cpus: r.cpus,
        mix_ns: r.mix_ns,
        gcc_ms: r.gcc_ms,
        overhead_ms: wall_ms - r.elapsed_ms,
        seen,
        disturbed: None,
    })
}

/// [`util::output`](super::util::output) with standard input from /dev/null.
fn output(cmd: &mut Command, what: &str) -> anyhow::Result<std::process::Output> {
    util::output(cmd.stdin(Stdio::null()), what)
}

/// The fields of the client's JSON line that the bench reads.
#[derive(Deserialize)]
struct ClientLine {
    pid: u32,
    cgroup: Option<String>,
    getppid_calls: u64,
    getppid_ns: Option<f64>,
    /// `null` for a CPU the loop did not run on.
    #[serde(default)]
    getppid_ns_by_cpu: Vec<Option<f64>>,
    #[serde(default)]
    cpus: Vec<u64>,
    mix_ns: Option<f64>,
    gcc_ms: Option<f64>,
    elapsed_ms: f64,
}

/// Parses the client's line and checks its cgroup (`None`: a `cgwarden exec` cgroup).
fn parse_client(stdout: &[u8], cgroup: Option<&str>) -> anyhow::Result<ClientResult> {
    let text = String::from_utf8_lossy(stdout);
    let line: ClientLine = result_line(&text, "getppid_calls")
        .with_context(|| format!("no result line from syscallbench in:\n{text}"))??;
    let r = ClientResult {
        pid: line.pid,
        cgroup: line.cgroup.unwrap_or_else(|| "?".to_owned()),
        getppid_calls: line.getppid_calls,
        getppid_ns: line.getppid_ns,
        getppid_by_cpu: line.getppid_ns_by_cpu.into_iter().flatten().collect(),
        cpus: line.cpus.iter().map(u64::to_string).collect(),
        mix_ns: line.mix_ns,
        gcc_ms: line.gcc_ms,
        elapsed_ms: line.elapsed_ms,
    };
    check_cgroup(&r.cgroup, cgroup)?;
    Ok(r)
}

#[derive(Default)]
struct Tally {
    getppid: u64,
    other: u64,
    lost: u64,
}

/// Counts the client's syscall events and the `lost` records in an events file.
fn scan_events(path: &Path, pid: u32) -> anyhow::Result<Tally> {
    let mut t = Tally::default();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(t),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let pid = u64::from(pid);
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let e = EventLine::parse(line.as_bytes())
            .with_context(|| format!("reading {}", path.display()))?;
        if e.is("lost") {
            t.lost += e.count.unwrap_or(0);
        } else if e.is("syscall") && e.pid == Some(pid) {
            if e.syscall.as_deref() == Some("getppid") {
                // Identical calls arrive aggregated: a record stands for `count`.
                t.getppid += e.count.unwrap_or(1);
            } else {
                t.other += 1;
            }
        }
    }
    Ok(t)
}

/// Per-program run count and time of cgwarden's programs during one run of `c`, with
/// `kernel.bpf_stats_enabled=1`; read from the agent's descriptors while the client
/// holds after its result.
pub(super) fn program_costs(ctx: &Ctx, c: &Config) -> anyhow::Result<Vec<ProgCost>> {
    let Kind::Cgwarden { policy, hooks, .. } = &c.kind else {
        bail!("not a cgwarden configuration");
    };
    let _stats = BpfStats::enable()?;
    let events = ctx.scratch.join("events-stats.json");
    let stderr =
        std::fs::File::create(ctx.scratch.join("stats.stderr")).context("creating stats.stderr")?;
    let mut child = cgwarden_exec_with(
        ctx.bin,
        policy,
        Some(&events),
        &["--syscall-hooks", hooks.arg()],
    )
    .arg(ctx.client)
    .args(client_args(ctx, c, false))
    .args(["--hold-ms", "1500"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(stderr)
    .spawn()
    .context("starting cgwarden exec")?;
    let agent = child.id();
    let mut line = String::new();
    let read = match child.stdout.take() {
        Some(out) => BufReader::new(out).read_line(&mut line),
        None => Ok(0),
    };
    // The client has measured and now holds: read the counters before the teardown.
    let progs = if matches!(read, Ok(n) if n > 0) {
        agent_programs(agent)
    } else {
        Vec::new()
    };
    let status = child.wait().context("waiting for cgwarden exec")?;
    let _ = std::fs::remove_file(&events);
    if !status.success() || progs.is_empty() {
        bail!("the run failed ({status}) or showed no programs");
    }
    Ok(progs
        .into_iter()
        .filter(|(_, runs, _)| *runs > 0)
        .map(|(program, runs, ns)| ProgCost {
            config: c.key,
            program,
            runs,
            ns_per_run: ns as f64 / runs as f64,
        })
        .collect())
}

/// (name, run_cnt, run_time_ns) of every BPF program the process holds.
fn agent_programs(pid: u32) -> Vec<(String, u64, u64)> {
    let names = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    let name_of = |tag: &str| -> String {
        let key = format!("bpf_prog_{tag}_");
        names
            .lines()
            .find_map(|l| {
                l.split_whitespace()
                    .nth(2)
                    .and_then(|s| s.strip_prefix(&key))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("tag {tag}"))
    };
    let mut seen_ids = Vec::new();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return out;
    };
    // Every number up to past the highest one listed, each read by its own path: a
    // listing taken while the process opens and closes files has missed descriptors
    // (two runs each lacked a different program).
    let highest = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    for fd in 0..=highest + 64 {
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
        };
        let (Some(tag), Some(id), Some(cnt), Some(ns)) = (
            field("prog_tag:"),
            field("prog_id:"),
            field("run_cnt:"),
            field("run_time_ns:"),
        ) else {
            continue;
        };
        if seen_ids.contains(&id) {
            continue;
        }
        seen_ids.push(id);
        out.push((
            name_of(&tag),
            cnt.parse().unwrap_or(0),
            ns.parse().unwrap_or(0),
        ));
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.1));
    out
}

/// Syscalls (all, and opens) per unit of the benign workloads.
#[derive(Clone, Copy)]
pub(super) struct Counts {
    pub(super) gcc: (f64, f64),
    pub(super) mix: (f64, f64),
}

/// Counts the syscalls of the benign workloads with `perf stat` on the syscall
/// tracepoints (the client in the plain cgroup, no monitor of the bench running): a run
/// with 5 compilations (+1 warm-up) and one with 1,000 mix iterations (+10 warm-up),
/// each minus a run with no workload.
pub(super) fn syscall_counts(ctx: &Ctx) -> anyhow::Result<Counts> {
    let perf = which("perf").context("perf is not installed")?;
    let count = |workload: &[&str]| -> anyhow::Result<(f64, f64)> {
        let out = ctx.scratch.join("perf-stat.txt");
        let mut cmd = Command::new(&perf);
        cmd.args(["stat", "-x", ",", "-o"])
            .arg(&out)
            .args([
                "-e",
                "raw_syscalls:sys_enter",
                "-e",
                "syscalls:sys_enter_open",
                "-e",
                "syscalls:sys_enter_openat",
                "-e",
                "syscalls:sys_enter_openat2",
                "--",
            ])
            .arg(ctx.client)
            .args(workload)
            .arg("--scratch")
            .arg(ctx.scratch)
            .arg("--join-cgroup")
            .arg(ctx.plain.path());
        output(&mut cmd, "perf stat -- syscallbench")?;
        let text = std::fs::read_to_string(&out).context("reading perf stat output")?;
        let (mut all, mut opens) = (None, 0.0);
        for line in text.lines() {
            let f: Vec<&str> = line.split(',').collect();
            let (Some(v), Some(name)) = (f.first(), f.get(2)) else {
                continue;
            };
            let Ok(v) = v.parse::<f64>() else {
                continue;
            };
            if *name == "raw_syscalls:sys_enter" {
                all = Some(v);
            } else if name.starts_with("syscalls:sys_enter_open") {
                opens += v;
            }
        }
        Ok((all.context("perf stat counted nothing")?, opens))
    };
    let none = count(&[])?;
    let gcc = count(&["--gcc", "5", "--rounds", "5"])?;
    let mix = count(&["--mix", "1000", "--rounds", "10"])?;
    let per = |x: (f64, f64), units: f64| ((x.0 - none.0) / units, (x.1 - none.1) / units);
    Ok(Counts {
        gcc: per(gcc, 6.0),
        mix: per(mix, 1010.0),
    })
}

/// `kernel.bpf_stats_enabled=1` until dropped (then the previous value).
struct BpfStats {
    previous: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let previous = std::fs::read_to_string(BPF_STATS)
            .context("reading kernel.bpf_stats_enabled")?
            .trim()
            .to_owned();
        std::fs::write(BPF_STATS, "1").context("setting kernel.bpf_stats_enabled")?;
        Ok(Self { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_clients_events() {
        let dir = std::env::temp_dir().join(format!("syscalls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.json");
        std::fs::write(
            &path,
            "{\"kind\":\"syscall\",\"syscall\":\"getppid\",\"pid\":7}\n\
             {\"kind\":\"syscall\",\"syscall\":\"getppid\",\"pid\":8}\n\
             {\"kind\":\"syscall\",\"syscall\":\"mount\",\"pid\":7}\n\
             {\"kind\":\"lost\",\"count\":5,\"reason\":\"ring buffer full\"}\n",
        )
        .unwrap();
        let t = scan_events(&path, 7).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((t.getppid, t.other, t.lost), (1, 1, 5));
    }

    #[test]
    fn reads_the_clients_line() {
        // Keys in any order, a CPU the loop did not run on, noise before the line.
        let out = b"warming up\n{\"cpus\":[0,1,3],\"getppid_ns_by_cpu\":[120.50,null,131.00],\
                    \"elapsed_ms\":12.5,\"gcc_ms\":null,\"mix_ns\":900.25,\"getppid_ns\":125.75,\
                    \"getppid_calls\":1000,\"cgroup\":\"/cg\",\"pid\":42,\"rounds\":20}\n";
        let r = parse_client(out, Some("/cg")).unwrap();
        assert_eq!(
            (r.pid, r.getppid_calls, r.cgroup.as_str()),
            (42, 1000, "/cg")
        );
        assert_eq!(r.cpus, ["0", "1", "3"]);
        assert_eq!(r.getppid_by_cpu, [120.5, 131.0]);
        assert_eq!(
            (r.getppid_ns, r.mix_ns, r.gcc_ms),
            (Some(125.75), Some(900.25), None)
        );
        assert_eq!(r.elapsed_ms, 12.5);
        assert!(parse_client(out, Some("/other")).is_err());
        let missing = parse_client(b"{\"getppid_calls\":1,\"pid\":1}\n", None);
        assert!(format!("{:#}", missing.err().unwrap()).contains("elapsed_ms"));
    }

    #[test]
    fn reads_events_as_json() {
        // What the substring search got wrong: a `pid` among the syscall's arguments,
        // before the record's own, was taken for it. Keys in any order, escaped quotes.
        let dir = std::env::temp_dir().join(format!("syscalls-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.json");
        std::fs::write(
            &path,
            "{\"kind\":\"syscall\",\"args\":{\"pid\":7},\"syscall\":\"kill\",\"pid\":9}\n\
             {\"process\":\"a \\\"kind\\\":\\\"lost\\\" b\",\"count\":3,\"pid\":7,\
             \"syscall\":\"getppid\",\"kind\":\"syscall\"}\n\
             {\"count\":2,\"kind\":\"lost\"}\n",
        )
        .unwrap();
        let t = scan_events(&path, 7).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((t.getppid, t.other, t.lost), (3, 0, 2));
    }
}

/// `exec -- true` wall times (ms), paired: under the hardened profile and under a
/// one-rule egress profile.
#[derive(Default)]
pub(super) struct ExecTimes {
    pub(super) hardened_ms: Vec<f64>,
    pub(super) one_rule_ms: Vec<f64>,
}
