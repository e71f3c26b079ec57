//! `cargo xtask bench syscalls`: what watching syscalls costs the watched processes, for
//! cgwarden and for the peers (bpftrace, auditd), all measured in one run.
//!
//! The client, `syscallbench` (tests/src/bin/syscallbench.rs), runs the workloads itself
//! and prints one JSON line, so process start-up is never measured: a tight loop of
//! `getppid` (ns per call), a syscall-heavy benign mix of 11 syscalls per iteration
//! (open/read/close of a file, stat, pread, writes to /dev/null and a pipe, getpid,
//! mmap/munmap), and a realistic benign workload, compiling a small C file with
//! `gcc -O2 -c` (one gcc, cc1 and as process each). Every workload is timed in 20
//! rounds, interleaved, 30 ms apart (so an agent that reports every call can drain its
//! ring buffer), the rounds alternating between the CPUs (the client pins itself: some
//! tracers cost more on one CPU than another); a run's value is the mean over the CPUs
//! of its median round on each. `CGWARDEN_BENCH_REPS` (5), `CGWARDEN_BENCH_GETPPID`
//! (100,000), `CGWARDEN_BENCH_MIX` (10,000) and `CGWARDEN_BENCH_GCC` (30) set the
//! repetitions and sizes; `CGWARDEN_BENCH_AUDITD=0` and `CGWARDEN_BENCH_BPFTRACE=0`
//! leave the peers out. Configurations:
//!
//! - (a) no monitor: the client in a plain cgroup v2 cgroup made by the bench;
//! - (b) `cgwarden exec`, a profile watching one unrelated syscall (`personality`,
//!   report): what unwatched syscalls pay;
//! - (c) `cgwarden exec`, a profile watching `getppid` (report): the getppid loop is
//!   the watched syscall, every call counted (identical calls are aggregated in the
//!   kernel: the first is sent at once, then at most one record a second with the count);
//! - (d) `cgwarden exec`, the built-in escape set (kill), which watches the module and
//!   kexec syscalls through the raw `sys_enter` tracepoint (they have no tracepoint of
//!   their own here), so a program runs for every syscall of every task, where the
//!   kernel implements them (here it does not: they answer ENOSYS and nothing watches
//!   them, so (d) and (d2) are the same configuration);
//! - (d2) `cgwarden exec`, the escape set without the five syscalls that need raw
//!   `sys_enter` (`except: [init_module, finit_module, delete_module, kexec_load,
//!   kexec_file_load]`), so only per-syscall tracepoints;
//! - (e) bpftrace, `tracepoint:syscalls:sys_enter_personality {}`: one unrelated
//!   syscall tracepoint, the slow-path floor;
//! - (f) bpftrace, `tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }`;
//! - (g) auditd with `-a always,exit -F arch=b64 -S getppid`: the getppid loop is the
//!   watched syscall, and the client is on the audit slow path for every syscall;
//! - (h) bpftrace, `tracepoint:syscalls:sys_enter_getppid { @[cgroup] = count(); }`:
//!   the watched syscall under bpftrace;
//! - (i) bpftrace, `tracepoint:syscalls:sys_enter_getppid {}`: an empty program on the
//!   watched syscall's tracepoint, the least any tracepoint-based monitor of a watched
//!   syscall can cost.
//!
//! Every repetition runs every configuration once, in an order rotated by one each
//! repetition. Each run checks that it measured what it meant to: the client's cgroup;
//! for cgwarden, whether the agent used raw `sys_enter` ((d) only), that no unwatched
//! call was reported or killed, and for (c) that every getppid call was recorded or
//! counted as lost; for bpftrace, the count of its map for the client's cgroup; for
//! auditd, the records in its log. Loops of a watched syscall are shorter under
//! monitors that make them slow ((c): a fifth, (g): a 25th).
//!
//! Audit (DESIGN.md): once auditd has run, every new process pays for syscall auditing
//! until reboot unless `auditctl -a never,task` is in place, so the bench prepends that
//! rule before it starts auditd and keeps it in force for every configuration but (g),
//! which removes it only while its rule is in place and its client starts. auditd runs
//! in the foreground as a child of the bench, with Debian's `auditd.conf` but its log in
//! the bench's scratch directory and Debian's default backlog limit (8192).
//!
//! The machine is shared: before and after every run the bench lists the tracing
//! programs attached (`bpftool link`/`bpftool perf`; none of its own are attached at
//! those moments) and measures the CPU time used by processes other than its own.
//! A run during which another tracer was attached or others used more than a fifth of
//! a CPU is repeated (up to twice, within a time budget); what still was disturbed is
//! kept, marked and counted in the report.
//!
//! After the timed runs, one extra run each of (c) and (d) with
//! `kernel.bpf_stats_enabled=1` (restored afterwards) reads the run count and run time
//! of every cgwarden program from the agent's descriptors, while the client holds; and
//! `perf stat` on the syscall tracepoints counts the syscalls and opens of one
//! compilation and of one mix iteration. The overhead of the benign workloads is then
//! also estimated from those counts (each syscall pays what a getppid call pays over
//! (a), each watched open the escape set's entry and exit programs), because 1% is well
//! inside the run-to-run noise of the measured ratios on this kind of machine.
//!
//! Everything it creates (cgroup, scratch files, bpftrace and auditd processes, audit
//! rules, the audit enabled flag and backlog limit) is removed or restored also when it
//! fails; what a SIGKILLed run left is listed in a ledger file and undone by the next.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Write as _},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::util::{
    self, Cgroup, Run, RunFacts, ScratchDir, cgroup2_mount, cgwarden_exec, check_cgroup,
    client_binary, clk_tck, dead_pid, dir_entries, env_reps, env_u64, forward_lines, json_field,
    json_number, max, median, min, publish, remove_cgroup, result_line, run_quiet, stat_fields,
    wait_for, which,
};

/// Timed rounds per workload in a client run.
const ROUNDS: u64 = 20;
/// Pause between rounds.
const PAUSE_MS: u64 = 30;
/// The getppid loop is this many times shorter when cgwarden reports every call...
const WATCHED_CGWARDEN_DIV: u64 = 5;
/// ...and when auditd records every call.
const WATCHED_AUDITD_DIV: u64 = 25;
/// A run is disturbed when processes other than the bench's used more CPU than this
/// (in CPUs, averaged over the run).
const FOREIGN_CPU_LIMIT: f64 = 0.2;
/// Attempts per run while it is disturbed, and the most the bench waits for quiet.
const ATTEMPTS: usize = 3;
const RETRY_BUDGET: Duration = Duration::from_secs(90);
/// The syscall number of getppid in audit records.
const GETPPID_NR: &str = if cfg!(target_arch = "aarch64") {
    "173"
} else {
    "110"
};
/// The key of the bench's audit rule.
const AUDIT_KEY: &str = "cgwarden-bench-syscalls";
/// The five escape syscalls without a tracepoint on this kernel (DESIGN.md).
const RAW_ONLY: &[&str] = &[
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
];

struct Settings {
    reps: usize,
    getppid: u64,
    mix: u64,
    gcc: u64,
    auditd: bool,
    bpftrace: bool,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let get = env_u64;
        Ok(Self {
            reps: env_reps(5)?,
            getppid: get("CGWARDEN_BENCH_GETPPID", 100_000)?.max(ROUNDS * WATCHED_AUDITD_DIV),
            mix: get("CGWARDEN_BENCH_MIX", 10_000)?.max(ROUNDS),
            gcc: get("CGWARDEN_BENCH_GCC", 30)?.max(1),
            auditd: get("CGWARDEN_BENCH_AUDITD", 1)? != 0,
            bpftrace: get("CGWARDEN_BENCH_BPFTRACE", 1)? != 0,
        })
    }
}

enum Kind {
    Plain,
    Cgwarden {
        policy: PathBuf,
        /// Whether the agent must watch something through raw `sys_enter`.
        raw: bool,
    },
    Bpftrace {
        script: String,
        /// The script counts per cgroup in `@`.
        counts: bool,
    },
    Auditd,
}

struct Config {
    key: &'static str,
    label: String,
    kind: Kind,
    /// getppid calls per run (0: the loop is not run).
    getppid: u64,
    /// getppid is the watched syscall.
    watched: bool,
    mix: bool,
    gcc: bool,
}

/// What a monitor made of the watched getppid calls.
#[derive(Clone, Copy)]
struct Seen {
    calls: u64,
    recorded: Option<u64>,
    lost: u64,
}

#[derive(Clone, Default)]
struct Sample {
    getppid_ns: Option<f64>,
    /// The getppid loop's median on each CPU, in the order of `cpus`.
    getppid_by_cpu: Vec<f64>,
    cpus: Vec<String>,
    mix_ns: Option<f64>,
    gcc_ms: Option<f64>,
    /// Wall time of the run minus the client's own: the monitor's start and stop.
    overhead_ms: f64,
    seen: Option<Seen>,
    /// Why the run was disturbed, if it was.
    disturbed: Option<String>,
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
struct ProgCost {
    config: &'static str,
    program: String,
    runs: u64,
    ns_per_run: f64,
}

/// Everything a run needs.
struct Ctx<'a> {
    settings: &'a Settings,
    bin: &'a Path,
    client: &'a Path,
    scratch: &'a Path,
    plain: &'a Cgroup,
    plain_id: u64,
    bpftrace: Option<&'a Path>,
    bpftool: Option<&'a Path>,
    audit: Option<&'a Audit>,
    ledger: &'a Ledger,
    /// kauditd's pid: its CPU time during (g) is the bench's own.
    kauditd: Option<u32>,
    clk_tck: f64,
}

pub fn run(root: &Path, bin: &Path) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let client = client_binary(bin, "syscallbench")?;
    which("gcc").context("gcc is not installed (the benign workload compiles C)")?;
    let cgroup2 = cgroup2_mount()?;
    let pid = std::process::id();
    let bench_dir = root.join("target/bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("creating {}", bench_dir.display()))?;
    remove_stale(&bench_dir, &cgroup2);

    let run = Run::begin();

    // Peers: installed from Debian's packages when missing.
    let mut notes: Vec<String> = Vec::new();
    let mut wanted = Vec::new();
    if settings.bpftrace && which("bpftrace").is_none() {
        wanted.push("bpftrace");
    }
    if settings.auditd && (which("auditctl").is_none() || which("auditd").is_none()) {
        wanted.push("auditd");
    }
    if !wanted.is_empty() {
        install(&wanted, &mut notes);
    }
    let bpftrace = if settings.bpftrace {
        which("bpftrace")
    } else {
        None
    };
    if settings.bpftrace && bpftrace.is_none() {
        notes.push("bpftrace is not available: (e), (f), (h) and (i) were skipped".to_owned());
    }
    let bpftool = which("bpftool");
    if bpftool.is_none() {
        notes.push(
            "bpftool is not installed: runs were not checked for other tracing programs".to_owned(),
        );
    }
    let versions = peer_versions(bpftrace.as_deref());

    // Declared first, so dropped last: everything below records itself here first.
    let ledger = Ledger::create(&bench_dir, pid)?;
    let scratch = ScratchDir::create(bench_dir.join(format!("tmp-syscalls-{pid}")))?;
    // The client writes its files here; the agent's events go here too.
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755))
        .context("chmod scratch")?;
    let audit = if settings.auditd {
        Audit::start(scratch.path(), &ledger)
    } else {
        Audit::none("auditd skipped (CGWARDEN_BENCH_AUDITD=0)")
    };
    eprintln!("bench syscalls: {}", audit.note);
    let plain = Cgroup::create(&cgroup2, &format!("cgwarden-bench-{pid}-syscalls"))?;
    let plain_id = std::fs::metadata(plain.path())
        .with_context(|| format!("stat {}", plain.path().display()))?
        .ino();

    let p_other = write_profile(
        scratch.path(),
        "other",
        "- names: [personality]\n    action: report",
    )?;
    let p_watch = write_profile(
        scratch.path(),
        "watch",
        "- names: [getppid]\n    action: report",
    )?;
    let p_escape = write_profile(scratch.path(), "escape", "- set: escape\n    action: kill")?;
    // The agent watches the module and kexec calls (no tracepoints here) through raw
    // `sys_enter` only where the kernel implements them.
    let module_calls = module_calls_implemented();
    let p_escape_no_raw = write_profile(
        scratch.path(),
        "escape-no-raw",
        &format!(
            "- set: escape\n    except: [{}]\n    action: kill",
            RAW_ONLY.join(", ")
        ),
    )?;

    let n = settings.getppid;
    let mut configs = vec![
        Config {
            key: "a",
            label: "no monitor (plain cgroup v2)".to_owned(),
            kind: Kind::Plain,
            getppid: n,
            watched: false,
            mix: true,
            gcc: true,
        },
        Config {
            key: "b",
            label: "cgwarden, watching one unrelated syscall (`personality`, report)".to_owned(),
            kind: Kind::Cgwarden {
                policy: p_other,
                raw: false,
            },
            getppid: n,
            watched: false,
            mix: true,
            gcc: true,
        },
        Config {
            key: "c",
            label: "cgwarden, watching `getppid` (report): every call counted, repeats aggregated in the kernel".to_owned(),
            kind: Kind::Cgwarden {
                policy: p_watch,
                raw: false,
            },
            getppid: n / WATCHED_CGWARDEN_DIV,
            watched: true,
            mix: false,
            gcc: false,
        },
        Config {
            key: "d",
            label: if module_calls {
                "cgwarden, escape set (kill; module/kexec via raw `sys_enter`)".to_owned()
            } else {
                "cgwarden, escape set (kill; the module/kexec calls are not implemented by \
                 this kernel, so nothing watches them: no raw `sys_enter`)"
                    .to_owned()
            },
            kind: Kind::Cgwarden {
                policy: p_escape,
                raw: module_calls,
            },
            getppid: n,
            watched: false,
            mix: true,
            gcc: true,
        },
        Config {
            key: "d2",
            label: "cgwarden, escape set `except:` the five module/kexec syscalls (kill; no raw \
                    `sys_enter`)"
                .to_owned(),
            kind: Kind::Cgwarden {
                policy: p_escape_no_raw,
                raw: false,
            },
            getppid: n,
            watched: false,
            mix: true,
            gcc: true,
        },
    ];
    if bpftrace.is_some() {
        configs.push(Config {
            key: "e",
            label: "bpftrace `tracepoint:syscalls:sys_enter_personality {}`".to_owned(),
            kind: Kind::Bpftrace {
                script: "tracepoint:syscalls:sys_enter_personality {}".to_owned(),
                counts: false,
            },
            getppid: n,
            watched: false,
            mix: true,
            gcc: true,
        });
        configs.push(Config {
            key: "f",
            label: "bpftrace `tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }`"
                .to_owned(),
            kind: Kind::Bpftrace {
                script: "tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }".to_owned(),
                counts: true,
            },
            getppid: n,
            watched: false,
            mix: true,
            gcc: true,
        });
    }
    if audit.usable() {
        configs.push(Config {
            key: "g",
            label: "auditd, `-a always,exit -F arch=b64 -S getppid`".to_owned(),
            kind: Kind::Auditd,
            getppid: n / WATCHED_AUDITD_DIV,
            watched: true,
            mix: true,
            gcc: true,
        });
    }
    if bpftrace.is_some() {
        configs.push(Config {
            key: "h",
            label: "bpftrace `tracepoint:syscalls:sys_enter_getppid { @[cgroup] = count(); }`"
                .to_owned(),
            kind: Kind::Bpftrace {
                script: "tracepoint:syscalls:sys_enter_getppid { @[cgroup] = count(); }".to_owned(),
                counts: true,
            },
            getppid: n,
            watched: true,
            mix: false,
            gcc: false,
        });
        configs.push(Config {
            key: "i",
            label: "bpftrace `tracepoint:syscalls:sys_enter_getppid {}` (empty program)".to_owned(),
            kind: Kind::Bpftrace {
                script: "tracepoint:syscalls:sys_enter_getppid {}".to_owned(),
                counts: false,
            },
            getppid: n,
            watched: true,
            mix: false,
            gcc: false,
        });
    }

    let ctx = Ctx {
        settings: &settings,
        bin,
        client: &client,
        scratch: scratch.path(),
        plain: &plain,
        plain_id,
        bpftrace: bpftrace.as_deref(),
        bpftool: bpftool.as_deref(),
        audit: audit.usable().then_some(&audit),
        ledger: &ledger,
        kauditd: find_kauditd(),
        clk_tck: clk_tck(),
    };

    wait_for_quiet(&ctx, Duration::from_secs(60));
    let mut budget = RETRY_BUDGET;
    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    for rep in 0..settings.reps {
        for i in 0..configs.len() {
            let idx = (i + rep) % configs.len();
            let c = &configs[idx];
            let s = measure_quietly(&ctx, c, &mut budget)?;
            let show = |v: Option<f64>, unit: &str| {
                v.map_or_else(String::new, |x| format!(" {x:>9.1} {unit}"))
            };
            eprintln!(
                "[{}/{}] ({}) {:<70}{}{}{}{}{}",
                rep + 1,
                settings.reps,
                c.key,
                c.label,
                show(s.getppid_ns, "ns/getppid"),
                show(s.mix_ns.map(|x| x / 1e3), "µs/mix"),
                show(s.gcc_ms, "ms/gcc"),
                s.seen.map_or_else(String::new, |x| format!(
                    "  recorded {}/{}{}",
                    x.recorded.map_or_else(|| "?".to_owned(), |r| r.to_string()),
                    x.calls,
                    if x.lost > 0 {
                        format!(", {} lost", x.lost)
                    } else {
                        String::new()
                    }
                )),
                s.disturbed
                    .as_deref()
                    .map_or_else(String::new, |d| format!("  [disturbed: {d}]")),
            );
            samples[idx].push(s);
        }
    }

    // Per-program kernel time, one extra run each of (c) and (d).
    let mut costs = Vec::new();
    for key in ["c", "d"] {
        if let Some(c) = configs.iter().find(|c| c.key == key) {
            match program_costs(&ctx, c) {
                Ok(mut v) => costs.append(&mut v),
                Err(e) => notes.push(format!("per-program kernel time of ({key}): {e:#}")),
            }
        }
    }
    // How many syscalls and opens the benign workloads make.
    let counts = match syscall_counts(&ctx) {
        Ok(c) => Some(c),
        Err(e) => {
            notes.push(format!("syscall counts of the workloads: {e:#}"));
            None
        }
    };

    let audit_note = audit.note.clone();
    let audit_lost = audit.status("lost");
    drop(audit);
    drop(plain);
    drop(scratch);
    if let Some(lost) = audit_lost
        && lost != "0"
    {
        notes.push(format!(
            "the kernel's audit `lost` counter read {lost} at the end"
        ));
    }

    let report = Report {
        audit: audit_note,
        versions,
        notes,
        settings: &settings,
        configs: &configs,
        samples: &samples,
        costs: &costs,
        counts,
        run: run.end(),
    }
    .render();
    publish(root, "syscalls", &report)?;
    drop(ledger);
    Ok(())
}

/// Installs Debian packages; failures become notes (their configurations are skipped).
fn install(packages: &[&str], notes: &mut Vec<String>) {
    eprintln!("bench syscalls: installing {}", packages.join(" "));
    let Some(apt) = which("apt-get") else {
        notes.push(format!("{} missing and no apt-get", packages.join(", ")));
        return;
    };
    let mut cmd = Command::new(&apt);
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q"])
        .args(packages);
    if run_quiet(&mut cmd, "apt-get install").is_err() {
        let _ = run_quiet(Command::new(&apt).args(["update", "-q"]), "apt-get update");
        if let Err(e) = run_quiet(&mut cmd, "apt-get install") {
            notes.push(format!("could not install {}: {e:#}", packages.join(", ")));
        }
    }
}

fn peer_versions(bpftrace: Option<&Path>) -> String {
    let mut parts = Vec::new();
    if let Some(bt) = bpftrace
        && let Ok(out) = Command::new(bt).arg("--version").output()
    {
        parts.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    if let Ok(out) = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "auditd"])
        .output()
        && out.status.success()
    {
        parts.push(format!(
            "auditd {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    if parts.is_empty() {
        "no peers".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Whether the running kernel implements any of the module and kexec calls (a strong
/// `T` symbol in kallsyms; one built without them has only `COND_SYSCALL`'s weak stubs).
fn module_calls_implemented() -> bool {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    [
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
    ]
    .iter()
    .any(|name| {
        kallsyms
            .lines()
            .any(|l| l.ends_with(&format!(" T __x64_sys_{name}")))
    })
}

fn write_profile(dir: &Path, name: &str, rule: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("bench-{name}.yaml"));
    let text = format!("name: bench-{name}\nmode: enforce\nsyscalls:\n  {rule}\n");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs a configuration until a run is not disturbed, at most [`ATTEMPTS`] times while
/// the retry budget lasts.
fn measure_quietly(ctx: &Ctx, c: &Config, budget: &mut Duration) -> anyhow::Result<Sample> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Let deferred work of the previous run (detaching, freeing) settle.
        std::thread::sleep(Duration::from_millis(200));
        let before = Snapshot::take(ctx);
        let mut s = measure(ctx, c).with_context(|| format!("({}) {}", c.key, c.label))?;
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

/// Waits (at most `limit`) until no other tracer is attached and the machine is idle.
fn wait_for_quiet(ctx: &Ctx, limit: Duration) {
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
        Kind::Cgwarden { policy, raw } => {
            let events = ctx.scratch.join("events.json");
            let _ = std::fs::remove_file(&events);
            let mut cmd = cgwarden_exec(ctx.bin, policy, Some(&events));
            cmd.env("RUST_LOG", "info")
                .arg(ctx.client)
                .args(client_args(ctx, c, false));
            let out = output(&mut cmd, "cgwarden exec -- syscallbench")?;
            let r = parse_client(&out.stdout, None)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            let used_raw = stderr.contains("through raw sys_enter");
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

/// Parses the client's line and checks its cgroup (`None`: a `cgwarden exec` cgroup).
fn parse_client(stdout: &[u8], cgroup: Option<&str>) -> anyhow::Result<ClientResult> {
    let text = String::from_utf8_lossy(stdout);
    let line = result_line(&text, "getppid_calls")
        .with_context(|| format!("no result line from syscallbench in:\n{text}"))?;
    let opt = |key: &str| json_number(line, key);
    let number = |key: &str| -> anyhow::Result<f64> {
        opt(key).with_context(|| format!("no `{key}` in {line}"))
    };
    let r = ClientResult {
        pid: number("pid")? as u32,
        cgroup: json_field(line, "cgroup").unwrap_or("?").to_owned(),
        getppid_calls: number("getppid_calls")? as u64,
        getppid_ns: opt("getppid_ns"),
        getppid_by_cpu: json_list(line, "getppid_ns_by_cpu")
            .iter()
            .filter_map(|x| x.parse().ok())
            .collect(),
        cpus: json_list(line, "cpus"),
        mix_ns: opt("mix_ns"),
        gcc_ms: opt("gcc_ms"),
        elapsed_ms: number("elapsed_ms")?,
    };
    check_cgroup(&r.cgroup, cgroup)?;
    Ok(r)
}

/// The items of a flat JSON array `"key":[a,b,…]`, as text.
fn json_list(line: &str, key: &str) -> Vec<String> {
    let Some(start) = line.find(&format!("\"{key}\":[")) else {
        return Vec::new();
    };
    let rest = &line[start + key.len() + 4..];
    rest.split(']')
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
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
    let pid = pid.to_string();
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        match json_field(&line, "kind") {
            Some("lost") => {
                t.lost += json_field(&line, "count")
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            Some("syscall") if json_field(&line, "pid") == Some(pid.as_str()) => {
                if json_field(&line, "syscall") == Some("getppid") {
                    // Identical calls arrive aggregated: a record stands for `count`.
                    t.getppid += json_field(&line, "count")
                        .and_then(|c| c.parse::<u64>().ok())
                        .unwrap_or(1);
                } else {
                    t.other += 1;
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

/// The count bpftrace printed for `@[<cgroup id>]`.
fn bpftrace_count(printed: &str, cgroup_id: u64) -> u64 {
    let key = format!("@[{cgroup_id}]:");
    printed
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&key))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// Per-program run count and time of cgwarden's programs during one run of `c`, with
/// `kernel.bpf_stats_enabled=1`; read from the agent's descriptors while the client
/// holds after its result.
fn program_costs(ctx: &Ctx, c: &Config) -> anyhow::Result<Vec<ProgCost>> {
    let Kind::Cgwarden { policy, .. } = &c.kind else {
        bail!("not a cgwarden configuration");
    };
    let _stats = BpfStats::enable()?;
    let events = ctx.scratch.join("events-stats.json");
    let stderr =
        std::fs::File::create(ctx.scratch.join("stats.stderr")).context("creating stats.stderr")?;
    let mut child = cgwarden_exec(ctx.bin, policy, Some(&events))
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
    for entry in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
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
struct Counts {
    gcc: (f64, f64),
    mix: (f64, f64),
}

/// Counts the syscalls of the benign workloads with `perf stat` on the syscall
/// tracepoints (the client in the plain cgroup, no monitor of the bench running): a run
/// with 5 compilations (+1 warm-up) and one with 1,000 mix iterations (+10 warm-up),
/// each minus a run with no workload.
fn syscall_counts(ctx: &Ctx) -> anyhow::Result<Counts> {
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

/// A bpftrace process of the bench: stopped (SIGINT, then SIGKILL) when dropped.
struct Bpftrace {
    child: Child,
    lines: mpsc::Receiver<String>,
    printed: String,
}

impl Bpftrace {
    fn start(path: &Path, script: &str, ledger: &Ledger) -> anyhow::Result<Self> {
        let mut child = Command::new(path)
            .args(["-e", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting bpftrace")?;
        ledger.child(child.id(), path);
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            forward_lines(out, tx.clone(), |l| l);
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, tx, |l| l);
        }
        let mut bt = Self {
            child,
            lines,
            printed: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match bt.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let attached = l.starts_with("Attaching ");
                    bt.printed.push_str(&l);
                    bt.printed.push('\n');
                    if attached {
                        return Ok(bt);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = bt.child.try_wait() {
                        bail!(
                            "bpftrace exited ({status}) before attaching:\n{}",
                            bt.printed
                        );
                    }
                    if Instant::now() > deadline {
                        bail!("bpftrace did not attach within 60 s:\n{}", bt.printed);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = bt.child.wait().context("waiting for bpftrace")?;
                    bail!(
                        "bpftrace exited ({status}) before attaching:\n{}",
                        bt.printed
                    );
                }
            }
        }
    }

    /// SIGINT (bpftrace prints its maps and exits); everything it printed.
    fn stop(mut self) -> anyhow::Result<String> {
        signal(self.child.id(), "INT");
        if wait_for(
            &mut self.child,
            Duration::from_secs(15),
            Duration::from_millis(20),
        )?
        .is_none()
        {
            bail!("bpftrace did not stop within 15 s of SIGINT");
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.printed.push_str(&l);
            self.printed.push('\n');
        }
        Ok(std::mem::take(&mut self.printed))
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal to one process of ours, by pid.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// The audit side: the `never,task` rule, the auditd daemon of the bench, and its log.
struct Audit {
    auditctl: Option<PathBuf>,
    /// The bench added `never,task` (and so removes it again).
    never_task: bool,
    daemon: Option<Child>,
    log: Option<PathBuf>,
    previous_enabled: Option<String>,
    previous_backlog: Option<String>,
    note: String,
}

impl Audit {
    fn none(note: &str) -> Self {
        Self {
            auditctl: None,
            never_task: false,
            daemon: None,
            log: None,
            previous_enabled: None,
            previous_backlog: None,
            note: note.to_owned(),
        }
    }

    /// Prepends `never,task`, then starts auditd (unless one runs already). Never
    /// fails: what did not work is in `note`, and (g) is skipped when unusable.
    fn start(scratch: &Path, ledger: &Ledger) -> Self {
        let (Some(auditctl), Some(auditd)) = (which("auditctl"), which("auditd")) else {
            return Self::none("auditd not installed: (g) skipped");
        };
        let mut a = Self::none("");
        a.auditctl = Some(auditctl.clone());
        a.previous_enabled = a.status("enabled");
        a.previous_backlog = a.status("backlog_limit");
        if let Some(e) = &a.previous_enabled {
            ledger.note(&format!("audit-enabled {e}"));
        }
        if let Some(b) = &a.previous_backlog {
            ledger.note(&format!("audit-backlog {b}"));
        }
        match run_quiet(
            Command::new(&auditctl).args(["-A", "never,task"]),
            "auditctl -A never,task",
        ) {
            Ok(()) => {
                a.never_task = true;
                ledger.note("audit-rule -A never,task");
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if !msg.contains("exists") {
                    a.note = format!(
                        "`auditctl -A never,task` failed ({msg}): auditd not started, (g) skipped"
                    );
                    a.auditctl = None;
                    return a;
                }
                // Someone else's `never,task` is in place: keep it, never remove it.
            }
        }
        let running = a
            .status("pid")
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p != 0 && alive(p));
        if running {
            a.note = "an auditd of the machine was already running: used as it is, its log \
                      not checked; `auditctl -a never,task` in force except in (g)"
                .to_owned();
            return a;
        }
        match start_auditd(&auditd, scratch, ledger) {
            Ok((child, log)) => {
                a.daemon = Some(child);
                a.log = Some(log);
                let _ = run_quiet(Command::new(&auditctl).args(["-b", "8192"]), "auditctl -b");
                a.note = "auditd (Debian's auditd.conf, log in the scratch directory, backlog \
                          limit 8192) ran during the whole bench; `auditctl -a never,task` was \
                          prepended before it started and kept in force except in (g); all \
                          restored afterwards"
                    .to_owned();
            }
            Err(e) => {
                a.note = format!("could not start auditd ({e:#}): (g) skipped");
                a.auditctl = None;
            }
        }
        a
    }

    fn usable(&self) -> bool {
        self.auditctl.is_some()
    }

    /// A field of `auditctl -s`.
    fn status(&self, field: &str) -> Option<String> {
        let out = Command::new(self.auditctl.as_ref()?)
            .arg("-s")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == field).then(|| v.trim().to_owned())
        })
    }

    /// Puts (g)'s rule in place and lifts `never,task` until dropped.
    fn watch(&self) -> anyhow::Result<Watch<'_>> {
        let auditctl = self.auditctl.as_ref().context("auditctl missing")?;
        let w = Watch { audit: self };
        if self.never_task {
            run_quiet(
                Command::new(auditctl).args(["-d", "never,task"]),
                "auditctl -d never,task",
            )?;
        }
        run_quiet(
            Command::new(auditctl).args(getppid_rule("-a")),
            "auditctl -a (getppid)",
        )?;
        Ok(w)
    }

    /// getppid records of `pid` in the bench's audit log, once it stops growing or
    /// reaches `expected` (None when the log is not the bench's).
    fn records(&self, pid: u32, expected: u64) -> Option<u64> {
        let log = self.log.as_ref()?;
        let needle = format!(" pid={pid} ");
        let syscall = format!(" syscall={GETPPID_NR} ");
        let count = || -> u64 {
            let Ok(f) = std::fs::File::open(log) else {
                return 0;
            };
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| {
                    l.starts_with("type=SYSCALL") && l.contains(&syscall) && l.contains(&needle)
                })
                .count() as u64
        };
        // auditd queues and writes asynchronously: wait until the count reaches what
        // was made or has not grown for a second (at most 10 s).
        let mut last = count();
        let mut still = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while last < expected && still < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            let now = count();
            if now == last {
                still += 1;
            } else {
                still = 0;
                last = now;
            }
        }
        Some(last)
    }
}

fn getppid_rule(op: &str) -> Vec<String> {
    [
        op,
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "getppid",
        "-k",
        AUDIT_KEY,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// auditd in the foreground (`-n`), with Debian's auditd.conf but its log in `scratch`.
fn start_auditd(
    auditd: &Path,
    scratch: &Path,
    ledger: &Ledger,
) -> anyhow::Result<(Child, PathBuf)> {
    let dir = scratch.join("auditd");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))?;
    let log = dir.join("audit.log");
    let base = std::fs::read_to_string("/etc/audit/auditd.conf").unwrap_or_else(|_| {
        "log_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 8\n\
         max_log_file_action = ROTATE\npriority_boost = 4\n"
            .to_owned()
    });
    // The log lives in the scratch directory and goes with it: never rotated, so every
    // record of a run can be counted.
    let mut conf = String::new();
    for line in base.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if !matches!(key, "log_file" | "max_log_file_action") {
            conf.push_str(line);
            conf.push('\n');
        }
    }
    let _ = writeln!(conf, "log_file = {}", log.display());
    let _ = writeln!(conf, "max_log_file_action = IGNORE");
    let conf_path = dir.join("auditd.conf");
    std::fs::write(&conf_path, conf).with_context(|| format!("writing {}", conf_path.display()))?;
    std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o640))?;
    let out = std::fs::File::create(dir.join("auditd.out")).context("creating auditd.out")?;
    let err = out.try_clone().context("auditd.out")?;
    let mut child = Command::new(auditd)
        .arg("-n")
        .arg("-c")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("starting auditd")?;
    ledger.child(child.id(), auditd);
    let deadline = Instant::now() + Duration::from_secs(10);
    let me = child.id().to_string();
    loop {
        let out = Command::new("auditctl").arg("-s").output();
        if let Ok(out) = out
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == format!("pid {me}"))
        {
            return Ok((child, log));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(dir.join("auditd.out")).unwrap_or_default();
            bail!("auditd exited ({status}): {said}");
        }
        if Instant::now() > deadline {
            stop_child(&mut child, "TERM");
            bail!("auditd did not register within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Signals a child of ours and waits up to 5 s; then SIGKILL.
fn stop_child(child: &mut Child, sig: &str) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    signal(child.id(), sig);
    if let Ok(None) = wait_for(child, Duration::from_secs(5), Duration::from_millis(20)) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        let Some(auditctl) = self.auditctl.clone() else {
            return;
        };
        let quiet = |args: &[String]| {
            let _ = Command::new(&auditctl)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&getppid_rule("-d"));
        if self.never_task {
            quiet(&["-d".to_owned(), "never,task".to_owned()]);
        }
        if let Some(mut child) = self.daemon.take() {
            stop_child(&mut child, "TERM");
        }
        if let Some(b) = &self.previous_backlog {
            quiet(&["-b".to_owned(), b.clone()]);
        }
        // auditd leaves `enabled 1` behind when it stops.
        if let Some(e) = &self.previous_enabled
            && (e == "0" || e == "1")
        {
            quiet(&["-e".to_owned(), e.clone()]);
        }
    }
}

/// (g)'s rule in place and `never,task` lifted; undone when dropped.
struct Watch<'a> {
    audit: &'a Audit,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let Some(auditctl) = &self.audit.auditctl else {
            return;
        };
        let _ = Command::new(auditctl)
            .args(getppid_rule("-d"))
            .stderr(Stdio::null())
            .status();
        if self.audit.never_task {
            let _ = Command::new(auditctl)
                .args(["-A", "never,task"])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// What the bench started and changed, for the next run to undo if this one is killed
/// before its guards run: `child PID STARTTIME EXE`, `audit-rule ARGS`,
/// `audit-enabled V`, `audit-backlog V`. Removed when dropped.
struct Ledger {
    path: PathBuf,
}

impl Ledger {
    fn create(dir: &Path, pid: u32) -> anyhow::Result<Self> {
        let path = dir.join(format!("syscalls-{pid}.ledger"));
        std::fs::write(&path, "").with_context(|| format!("creating {}", path.display()))?;
        let l = Self { path };
        l.note(&format!("audit-rule {}", getppid_rule("-a").join(" ")));
        Ok(l)
    }

    fn note(&self, line: &str) {
        let r = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = r {
            eprintln!(
                "bench syscalls: could not write {}: {e}",
                self.path.display()
            );
        }
    }

    fn child(&self, pid: u32, exe: &Path) {
        let start = start_time(pid).unwrap_or_default();
        self.note(&format!("child {pid} {start} {}", exe.display()));
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process exists and is not a zombie (orphans may stay unreaped here).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_fields(&stat)?.first().map(|s| (*s).to_owned()))
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Field 22 of /proc/PID/stat: when the process started (identifies it across pid reuse).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.get(19).map(|s| (*s).to_owned())
}

/// Undoes what earlier runs killed before their guards ran left behind: processes and
/// audit settings listed in their ledgers, their cgroups and scratch directories.
fn remove_stale(bench_dir: &Path, cgroup2: &Path) {
    for (name, path) in dir_entries(bench_dir) {
        if let Some(pid) = name.strip_prefix("tmp-syscalls-")
            && dead_pid(pid)
        {
            eprintln!("bench syscalls: removing stale {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
        if let Some(pid) = name
            .strip_prefix("syscalls-")
            .and_then(|r| r.strip_suffix(".ledger"))
            && dead_pid(pid)
        {
            eprintln!("bench syscalls: undoing what run {pid} left");
            undo_ledger(&path);
            let _ = std::fs::remove_file(&path);
            let cg = cgroup2.join(format!("cgwarden-bench-{pid}-syscalls"));
            if cg.exists() {
                remove_cgroup(&cg);
            }
        }
    }
}

fn undo_ledger(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let auditctl = which("auditctl");
    let ctl = |args: &[&str]| {
        if let Some(a) = &auditctl {
            let _ = Command::new(a)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    };
    let mut restore = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("child") => {
                let (Some(pid), Some(start), Some(exe)) =
                    (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let Ok(pid) = pid.parse::<u32>() else {
                    continue;
                };
                let same_exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|p| p == Path::new(exe));
                if same_exe && start_time(pid).as_deref() == Some(start) {
                    eprintln!("bench syscalls: stopping stale {exe} ({pid})");
                    signal(pid, "KILL");
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while alive(pid) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            Some("audit-rule") => {
                let args: Vec<&str> = words.collect();
                if let Some(first) = args.first() {
                    let mut del = args.clone();
                    del[0] = if *first == "-a" || *first == "-A" {
                        "-d"
                    } else {
                        first
                    };
                    ctl(&del);
                }
            }
            Some("audit-enabled") => {
                if let Some(v) = words.next() {
                    restore.push(["-e".to_owned(), v.to_owned()]);
                }
            }
            Some("audit-backlog") => {
                if let Some(v) = words.next() {
                    restore.push(["-b".to_owned(), v.to_owned()]);
                }
            }
            _ => {}
        }
    }
    for args in restore {
        ctl(&[args[0].as_str(), args[1].as_str()]);
    }
}

/// The machine's state around a run.
struct Snapshot {
    tracers: Vec<String>,
    busy: u64,
    ours: u64,
    at: Instant,
}

impl Snapshot {
    fn take(ctx: &Ctx) -> Self {
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
fn disturbance(ctx: &Ctx, before: &Snapshot, after: &Snapshot) -> Option<String> {
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
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
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
fn find_kauditd() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "kauditd").then_some(pid)
    })
}

struct Report<'a> {
    audit: String,
    versions: String,
    notes: Vec<String>,
    settings: &'a Settings,
    configs: &'a [Config],
    samples: &'a [Vec<Sample>],
    costs: &'a [ProgCost],
    counts: Option<Counts>,
    /// When the bench ran, and the load around it.
    run: RunFacts,
}

/// Which workload.
#[derive(Clone, Copy)]
enum W {
    Getppid,
    Mix,
    Gcc,
}

impl W {
    fn of(self, s: &Sample) -> Option<f64> {
        match self {
            W::Getppid => s.getppid_ns,
            W::Mix => s.mix_ns.map(|x| x / 1e3),
            W::Gcc => s.gcc_ms,
        }
    }
}

impl Report<'_> {
    /// Per-repetition ratios of a configuration to (a) for one workload.
    fn ratios(&self, idx: usize, w: W) -> Vec<f64> {
        let base = &self.samples[0];
        self.samples[idx]
            .iter()
            .zip(base)
            .filter_map(|(x, b)| Some(w.of(x)? / w.of(b)?))
            .collect()
    }

    /// The median over the repetitions of `key`'s value over `other`'s of the same
    /// repetition.
    fn paired(&self, key: &str, other: &str, w: W) -> Option<f64> {
        let a = self.configs.iter().position(|c| c.key == key)?;
        let b = self.configs.iter().position(|c| c.key == other)?;
        let r: Vec<f64> = self.samples[a]
            .iter()
            .zip(&self.samples[b])
            .filter_map(|(x, y)| Some(w.of(x)? / w.of(y)?))
            .collect();
        (!r.is_empty()).then(|| median(&r))
    }

    /// The median over the repetitions of `key`'s value minus (a)'s of the same
    /// repetition.
    fn delta(&self, key: &str, w: W) -> Option<f64> {
        let a = self.configs.iter().position(|c| c.key == key)?;
        let d: Vec<f64> = self.samples[a]
            .iter()
            .zip(&self.samples[0])
            .filter_map(|(x, y)| Some(w.of(x)? - w.of(y)?))
            .collect();
        (!d.is_empty()).then(|| median(&d))
    }

    /// Estimated overhead (%) of `key` on a workload of `syscalls` and `opens` per unit
    /// taking `base_ns`: every syscall pays what a getppid call pays there over (a), and
    /// every open, where opens are watched, the kernel time of the escape set's exit
    /// program (opens are judged by their path, at exit only).
    fn estimate(&self, key: &str, (syscalls, opens): (f64, f64), base_ns: f64) -> Option<f64> {
        let per_syscall = self.delta(key, W::Getppid)?;
        let per_open = if key == "d" || key == "d2" {
            self.costs
                .iter()
                .find(|p| p.config == "d" && p.program == "sys_exit")?
                .ns_per_run
        } else {
            0.0
        };
        Some((syscalls * per_syscall + opens * per_open) / base_ns * 100.0)
    }

    fn ratio_of(&self, key: &str, w: W) -> Option<f64> {
        let idx = self.configs.iter().position(|c| c.key == key)?;
        let r = self.ratios(idx, w);
        (!r.is_empty()).then(|| median(&r))
    }

    fn render(&self) -> String {
        let s = self.settings;
        let mut o = String::new();
        self.run
            .head(&mut o, "Syscalls: `cargo xtask bench syscalls`");
        let _ = writeln!(o, "- peers: {}", self.versions);
        let _ = writeln!(o, "- audit: {}", self.audit);
        self.run.load_line(&mut o, "");
        let disturbed: usize = self
            .samples
            .iter()
            .flatten()
            .filter(|x| x.disturbed.is_some())
            .count();
        let total: usize = self.samples.iter().map(Vec::len).sum();
        let _ = writeln!(
            o,
            "- disturbed runs kept (another tracer attached, or others used > {FOREIGN_CPU_LIMIT} \
             CPU, after up to {ATTEMPTS} attempts): {disturbed} of {total}"
        );
        for n in &self.notes {
            let _ = writeln!(o, "- note: {n}");
        }
        let _ = writeln!(
            o,
            "- method: {} repetitions; each runs every configuration once, in an order rotated \
             by one each repetition. One run = one `syscallbench` process: {} × `getppid` \
             (fewer where it is the watched syscall: {} under cgwarden (c), {} under auditd \
             (g)), {} × a syscall mix (openat+read 4 KiB+close, stat, pread, write to \
             /dev/null, write+read through a pipe, getpid, mmap+touch+munmap 64 KiB, \
             clock_gettime: 11 syscalls), {} × `gcc -O2 -Wall -c` of a 60-line C file; each \
             workload timed in {ROUNDS} interleaved rounds {PAUSE_MS} ms apart after an \
             untimed warm-up, the rounds alternating between the CPUs (pinned); a run's value \
             is the mean over the CPUs of its median round on each. Shown: the median over the \
             repetitions (best in brackets); \"vs (a)\" is the median of the per-repetition \
             ratios to (a) of the same repetition, with their range. The whole bench took {:.0} s.",
            s.reps,
            s.getppid,
            s.getppid / WATCHED_CGWARDEN_DIV,
            s.getppid / WATCHED_AUDITD_DIV,
            s.mix,
            s.gcc,
            self.run.took.as_secs_f64()
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "| configuration | getppid loop (ns/call) | vs (a) | syscall mix (µs/iteration) | vs (a) | gcc (ms/compile) | vs (a) |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
        for (idx, (c, v)) in self.configs.iter().zip(self.samples).enumerate() {
            let d = v.iter().filter(|x| x.disturbed.is_some()).count();
            let mut row = format!("| ({}) {}", c.key, c.label);
            if d > 0 {
                let _ = write!(row, " *({d} of {} runs disturbed)*", v.len());
            }
            row.push_str(" |");
            for w in [W::Getppid, W::Mix, W::Gcc] {
                let vals: Vec<f64> = v.iter().filter_map(|x| w.of(x)).collect();
                if vals.is_empty() {
                    row.push_str(" — | — |");
                    continue;
                }
                let best = min(&vals);
                let watched = matches!(w, W::Getppid) && c.watched;
                let digits = if matches!(w, W::Getppid) { 0 } else { 2 };
                let _ = write!(
                    row,
                    " {:.*} [{:.*}]{} |",
                    digits,
                    median(&vals),
                    digits,
                    best,
                    if watched { " **watched**" } else { "" }
                );
                if idx == 0 {
                    row.push_str(" 1 |");
                } else {
                    let r = self.ratios(idx, w);
                    if r.is_empty() {
                        row.push_str(" — |");
                    } else {
                        let _ = write!(
                            row,
                            " ×{} ({}–{}) |",
                            fmt_ratio(median(&r)),
                            fmt_ratio(min(&r)),
                            fmt_ratio(max(&r))
                        );
                    }
                }
            }
            let _ = writeln!(o, "{row}");
        }

        let _ = writeln!(
            o,
            "\nThe watched getppid calls, as each monitor saw them (all runs):\n"
        );
        let _ = writeln!(o, "| configuration | calls | recorded | lost (counted) |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for (c, v) in self.configs.iter().zip(self.samples) {
            let seen: Vec<Seen> = v.iter().filter_map(|x| x.seen).collect();
            if seen.is_empty() {
                continue;
            }
            let calls: u64 = seen.iter().map(|x| x.calls).sum();
            let recorded = if seen.iter().all(|x| x.recorded.is_some()) {
                seen.iter()
                    .filter_map(|x| x.recorded)
                    .sum::<u64>()
                    .to_string()
            } else {
                "not checked".to_owned()
            };
            let lost: u64 = seen.iter().map(|x| x.lost).sum();
            let _ = writeln!(o, "| ({}) | {calls} | {recorded} | {lost} |", c.key);
        }

        let _ = writeln!(
            o,
            "\nStart and stop: wall time of a run minus the client's own (process start, \
             loading and attaching, detaching, teardown):\n"
        );
        let _ = writeln!(o, "| configuration | median | min | max |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for (c, v) in self.configs.iter().zip(self.samples) {
            let ms: Vec<f64> = v.iter().map(|x| x.overhead_ms).collect();
            let _ = writeln!(
                o,
                "| ({}) | {:.0} ms | {:.0} ms | {:.0} ms |",
                c.key,
                median(&ms),
                min(&ms),
                max(&ms)
            );
        }

        let cpus: Vec<String> = self
            .samples
            .iter()
            .flatten()
            .find(|x| x.cpus.len() > 1)
            .map(|x| x.cpus.clone())
            .unwrap_or_default();
        if !cpus.is_empty() {
            let _ = writeln!(
                o,
                "\nThe getppid loop on each CPU (every run spreads its rounds over the CPUs; \
                 the value above is the mean of these; median over the runs, ns/call):\n"
            );
            let _ = writeln!(
                o,
                "| configuration | {} |",
                cpus.iter()
                    .map(|c| format!("CPU {c}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(o, "|---|{}", "---:|".repeat(cpus.len()));
            for (c, v) in self.configs.iter().zip(self.samples) {
                let mut row = format!("| ({}) |", c.key);
                for i in 0..cpus.len() {
                    let x: Vec<f64> = v
                        .iter()
                        .filter_map(|s| s.getppid_by_cpu.get(i).copied())
                        .collect();
                    let _ = write!(row, " {:.0} |", median(&x));
                }
                let _ = writeln!(o, "{row}");
            }
        }

        if !self.costs.is_empty() {
            let _ = writeln!(
                o,
                "\nKernel time per program run (`kernel.bpf_stats_enabled=1`, one extra run each; \
                 the raw `sys_enter` program runs for every syscall of every task on the \
                 machine):\n"
            );
            let _ = writeln!(o, "| configuration | program | runs | ns per run |");
            let _ = writeln!(o, "|---|---|---:|---:|");
            for p in self.costs {
                let _ = writeln!(
                    o,
                    "| ({}) | `{}` | {} | {:.0} |",
                    p.config, p.program, p.runs, p.ns_per_run
                );
            }
        }

        if let Some(n) = self.counts {
            let _ = writeln!(
                o,
                "\nWhere the benign workloads' overhead comes from (an estimate, because run-to-run \
                 noise of the measured ratios is several percent): syscalls per unit counted with \
                 `perf stat` on the syscall tracepoints; each syscall costs what a getppid call \
                 costs over (a) in the same repetition, each open where opens are watched ((d), \
                 (d2): judged by its path at exit only) the exit program's kernel time above:\n"
            );
            let _ = writeln!(
                o,
                "| workload | syscalls | of which opens | (a) | (b) estimated | (d2) estimated | (d) estimated |"
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
            for (w, what, c) in [
                (W::Gcc, "gcc, per compilation", n.gcc),
                (W::Mix, "syscall mix, per iteration", n.mix),
            ] {
                let base: Vec<f64> = self.samples[0].iter().filter_map(|x| w.of(x)).collect();
                // Milliseconds (gcc) or microseconds (mix) to ns.
                let scale = if matches!(w, W::Gcc) { 1e6 } else { 1e3 };
                let base_ns = median(&base) * scale;
                let est = |k: &str| {
                    self.estimate(k, c, base_ns)
                        .map_or_else(|| "—".to_owned(), |e| format!("{e:+.2}%"))
                };
                let _ = writeln!(
                    o,
                    "| {what} | {:.0} | {:.0} | {} | {} | {} | {} |",
                    c.0,
                    c.1,
                    if matches!(w, W::Gcc) {
                        format!("{:.1} ms", base_ns / 1e6)
                    } else {
                        format!("{:.1} µs", base_ns / 1e3)
                    },
                    est("b"),
                    est("d2"),
                    est("d")
                );
            }
        }

        let _ = writeln!(
            o,
            "\nTargets (the benign-workload rows are judged on the estimate when there is one: \
             the measured ratios scatter by several percent from run to run):\n"
        );
        let _ = writeln!(o, "| target | measured | met |");
        let _ = writeln!(o, "|---|---:|---|");
        let yes = |ok: bool| if ok { "yes" } else { "**no**" };
        let floor = self.ratio_of("e", W::Getppid);
        for key in ["b", "d", "d2"] {
            let Some(r) = self.ratio_of(key, W::Getppid) else {
                continue;
            };
            let what = match key {
                "b" => "one unrelated syscall watched",
                "d" => "escape set",
                _ => "escape set except the raw-`sys_enter` syscalls",
            };
            match (floor, self.paired(key, "e", W::Getppid)) {
                (Some(f), Some(p)) => {
                    let _ = writeln!(
                        o,
                        "| unwatched syscalls at the slow-path floor, cgwarden ({key}, {what}): getppid no slower than under bpftrace's single tracepoint (e): ({key}) / (e) in the same repetition ≤ 1.03 | ×{} vs ×{} (({key}) / (e): {}) | {} |",
                        fmt_ratio(r),
                        fmt_ratio(f),
                        fmt_ratio(p),
                        yes(p <= 1.03)
                    );
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "| unwatched syscalls at the slow-path floor, cgwarden ({key}, {what}) | ×{} (no bpftrace to compare) | — |",
                        fmt_ratio(r)
                    );
                }
            }
        }
        for key in ["b", "d", "d2"] {
            for (w, what) in [
                (W::Gcc, "realistic benign workload (gcc)"),
                (W::Mix, "syscall-heavy benign mix"),
            ] {
                if let Some(r) = self.ratio_of(key, w) {
                    let est = self.counts.and_then(|n| {
                        let (c, scale) = match w {
                            W::Gcc => (n.gcc, 1e6),
                            _ => (n.mix, 1e3),
                        };
                        let base: Vec<f64> =
                            self.samples[0].iter().filter_map(|x| w.of(x)).collect();
                        self.estimate(key, c, median(&base) * scale)
                    });
                    let _ = writeln!(
                        o,
                        "| < 1% on the {what}, cgwarden ({key}) | measured {:+.1}%{} | {} |",
                        (r - 1.0) * 100.0,
                        est.map_or_else(String::new, |e| format!(", estimated {e:+.2}%")),
                        match est {
                            Some(e) => yes(e < 1.0),
                            None => yes(r < 1.01),
                        }
                    );
                }
            }
        }
        if let Some(r) = self.ratio_of("c", W::Getppid) {
            let _ = writeln!(
                o,
                "| a watched (reported) syscall costs at most ×1.5, cgwarden (c) | ×{} | {} |",
                fmt_ratio(r),
                yes(r <= 1.5)
            );
        }
        let peers: Vec<String> = ["f", "g", "h", "i"]
            .iter()
            .filter_map(|k| {
                self.ratio_of(k, W::Getppid)
                    .map(|r| format!("({k}) ×{}", fmt_ratio(r)))
            })
            .collect();
        if !peers.is_empty() {
            let _ = writeln!(
                o,
                "\nPeers on the getppid loop in the same run: {}.",
                peers.join(", ")
            );
        }
        o
    }
}

fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "n/a".to_owned()
    } else if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bpftrace_maps() {
        let printed = "Attaching 1 probe...\n\n\n@[1]: 12\n@[4242]: 100500\n";
        assert_eq!(bpftrace_count(printed, 4242), 100_500);
        assert_eq!(bpftrace_count(printed, 7), 0);
    }

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
    fn reads_json_lists() {
        let l = r#"{"cpus":[0,1],"getppid_ns_by_cpu":[120.50,131.00],"x":[]}"#;
        assert_eq!(json_list(l, "cpus"), ["0", "1"]);
        assert_eq!(json_list(l, "getppid_ns_by_cpu"), ["120.50", "131.00"]);
        assert!(json_list(l, "x").is_empty());
        assert!(json_list(l, "y").is_empty());
    }

    #[test]
    fn ratios_print_compactly() {
        assert_eq!(fmt_ratio(1.234), "1.23");
        assert_eq!(fmt_ratio(140.4), "140");
    }
}
