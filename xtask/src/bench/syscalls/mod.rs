//! `cargo xtask bench syscalls`: what watching syscalls costs the watched processes, for
//! cgwarden and for the peers (bpftrace, auditd), all measured in one run.
//!
//! The client, `syscallbench` (benchclients/src/bin/syscallbench.rs), runs the
//! workloads itself and prints one JSON line, so process start-up is never measured: a
//! tight loop of `getppid` (ns per call), a syscall-heavy benign mix of 11 syscalls per
//! iteration (open/read/close of a file, stat, pread, writes to /dev/null and a pipe,
//! getpid, mmap/munmap), and a realistic benign workload, compiling a small C file with
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
//!
//! This module is the run itself: the settings, the configurations and the order they
//! run in. The roles around it: [`measure`] (one run of a configuration and what is
//! timed and counted in it), [`quiet`] (whether the shared machine was quiet during a
//! run), [`peers`] (bpftrace and auditd: set-up, use and teardown), [`cleanup`] (the
//! ledger of what the bench changed, and undoing what a killed run left) and [`report`]
//! (the markdown report).

mod cleanup;
mod measure;
mod peers;
mod quiet;
mod report;

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;

use super::util::{
    Cgroup, Run, ScratchDir, cgroup2_mount, client_binary, clk_tck, env_reps, env_u64, output,
    publish, which,
};
use cleanup::{Ledger, remove_stale};
use measure::{Sample, measure_quietly, program_costs, syscall_counts};
use peers::{Audit, install, peer_versions};
use quiet::{find_kauditd, wait_for_quiet};
use report::Report;

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
    /// Repetitions at least, and at most while a target is undecided.
    reps: usize,
    max_reps: usize,
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
            max_reps: usize::try_from(get("CGWARDEN_BENCH_MAX_REPS", 12)?)
                .context("CGWARDEN_BENCH_MAX_REPS")?
                .max(env_reps(5)?),
            getppid: get("CGWARDEN_BENCH_GETPPID", 100_000)?.max(ROUNDS * WATCHED_AUDITD_DIV),
            mix: get("CGWARDEN_BENCH_MIX", 10_000)?.max(ROUNDS),
            gcc: get("CGWARDEN_BENCH_GCC", 30)?.max(1),
            auditd: get("CGWARDEN_BENCH_AUDITD", 1)? != 0,
            bpftrace: get("CGWARDEN_BENCH_BPFTRACE", 1)? != 0,
        })
    }
}

/// How a cgwarden configuration's watched syscalls reach their programs
/// (`cgwarden exec --syscall-hooks`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hooks {
    /// One tracepoint per watched syscall: the agent's (`cgwarden run`), as deployed.
    Tracepoints,
    /// The raw `sys_enter` and `sys_exit` tracepoints: `cgwarden exec`'s default.
    Raw,
}

impl Hooks {
    fn arg(self) -> &'static str {
        match self {
            Hooks::Tracepoints => "tracepoints",
            Hooks::Raw => "raw",
        }
    }
}

enum Kind {
    Plain,
    Cgwarden {
        policy: PathBuf,
        /// Whether the agent must watch something through raw `sys_enter` (with the
        /// agent's hooks, where a syscall has no tracepoint of its own).
        raw: bool,
        hooks: Hooks,
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
        notes.push("bpftrace is not available: (e), (f), (h), (i) and (j) were skipped".to_owned());
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
                hooks: Hooks::Tracepoints,
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
                hooks: Hooks::Tracepoints,
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
                policy: p_escape.clone(),
                raw: module_calls,
                hooks: Hooks::Tracepoints,
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
                hooks: Hooks::Tracepoints,
            },
            getppid: n,
            watched: false,
            mix: true,
            gcc: true,
        },
        Config {
            key: "d3",
            label: "cgwarden, escape set through the raw `sys_enter` and `sys_exit` \
                    (`--syscall-hooks raw`, `cgwarden exec`'s default: two links whatever \
                    the set, and two programs run on every syscall of every task)"
                .to_owned(),
            kind: Kind::Cgwarden {
                policy: p_escape,
                raw: true,
                hooks: Hooks::Raw,
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
            key: "j",
            label: "bpftrace `tracepoint:syscalls:sys_enter_personality {} \
                    tracepoint:syscalls:sys_exit_personality {}` (both ends, as a monitor \
                    that sees calls seccomp refused needs)"
                .to_owned(),
            kind: Kind::Bpftrace {
                script: "tracepoint:syscalls:sys_enter_personality {} \
                         tracepoint:syscalls:sys_exit_personality {}"
                    .to_owned(),
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
    // At least `reps` repetitions; more, up to `max_reps`, while a target's interval
    // still spans it.
    let undecided = |samples: &[Vec<Sample>]| {
        report::targets(&configs, samples)
            .iter()
            .any(|t| t.target.judge(&t.values) == crate::bench::judge::Verdict::Undecided)
    };
    let mut rep = 0;
    while rep < settings.reps || (rep < settings.max_reps && undecided(&samples)) {
        for i in 0..configs.len() {
            let idx = (i + rep) % configs.len();
            let c = &configs[idx];
            let s = measure_quietly(&ctx, c, &mut budget)?;
            let show = |v: Option<f64>, unit: &str| {
                v.map_or_else(String::new, |x| format!(" {x:>9.1} {unit}"))
            };
            eprintln!(
                "[{}/{}–{}] ({}) {:<70}{}{}{}{}{}",
                rep + 1,
                settings.reps,
                settings.max_reps,
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
        rep += 1;
    }

    // Start and stop under the shipped hardened profile against a one-rule egress
    // profile, paired (`exec -- true`).
    // Enough pairs for a 95% interval, except in a quick run.
    let pairs = settings
        .max_reps
        .min(crate::bench::judge::MIN_VALUES)
        .max(settings.reps);
    let exec_times = exec_times(&ctx, root, pairs)?;

    // Per-program kernel time, one extra run each of (c) and (d).
    let mut costs = Vec::new();
    for key in ["c", "d", "d3"] {
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
        exec_times: &exec_times,
        run: run.end(),
    }
    .render();
    publish(root, "syscalls", &report)?;
    drop(ledger);
    Ok(())
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

/// Wall times of `cgwarden exec -- true` under policies/gateway.yaml without its
/// selector (the shipped hardened profile) and under a one-rule egress profile, `pairs`
/// times each, alternating which goes first. The gateway's DNS names are resolved
/// through 127.0.0.1:9, where nothing answers: no query leaves the machine.
fn exec_times(ctx: &Ctx, root: &Path, pairs: usize) -> anyhow::Result<measure::ExecTimes> {
    let gateway = std::fs::read_to_string(root.join("policies/gateway.yaml"))
        .context("reading policies/gateway.yaml")?;
    let mut hardened = String::new();
    let mut in_selector = false;
    for line in gateway.lines() {
        if line.starts_with("selector:") {
            in_selector = true;
            continue;
        }
        if in_selector && (line.starts_with(' ') || line.is_empty()) {
            continue;
        }
        in_selector = false;
        hardened.push_str(line);
        hardened.push('\n');
    }
    let p_hardened = ctx.scratch.join("bench-hardened.yaml");
    std::fs::write(&p_hardened, hardened).context("writing the hardened profile")?;
    let p_one = ctx.scratch.join("bench-one-rule.yaml");
    std::fs::write(
        &p_one,
        "name: bench-one-rule\nmode: enforce\negress:\n  default: deny\n  allow:\n    - to: 127.0.0.1\n",
    )
    .context("writing the one-rule profile")?;
    let true_bin = which("true").unwrap_or_else(|| PathBuf::from("/bin/true"));
    let mut times = measure::ExecTimes::default();
    for pair in 0..pairs {
        for hard in [pair % 2 == 0, pair % 2 != 0] {
            let policy = if hard { &p_hardened } else { &p_one };
            std::thread::sleep(Duration::from_millis(100));
            let mut cmd = std::process::Command::new(ctx.bin);
            cmd.args(["exec", "--resolver", "127.0.0.1:9", "--policy"])
                .arg(policy)
                .arg("--")
                .arg(&true_bin);
            let t0 = Instant::now();
            output(&mut cmd, "cgwarden exec -- true")?;
            let wall = t0.elapsed().as_secs_f64() * 1e3;
            if hard {
                times.hardened_ms.push(wall);
            } else {
                times.one_rule_ms.push(wall);
            }
        }
    }
    Ok(times)
}

fn write_profile(dir: &Path, name: &str, rule: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("bench-{name}.yaml"));
    let text = format!("name: bench-{name}\nmode: enforce\nsyscalls:\n  {rule}\n");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
