//! `cargo xtask bench events`: how many events per second the agent delivers to its
//! JSON file sink without losing any, its resident memory at that rate, and how long
//! it takes from start to enforcing.
//!
//! Every trial starts a fresh agent, `cgwarden run --policy <storm> --events <file>`
//! with its own control socket, bpffs state directory and metrics port, whose one
//! profile (`default: deny`, no rule) selects a cgroup made by the bench. The
//! generator, `eventstorm` (tests/src/bin/eventstorm.rs), joins that cgroup and makes N
//! unconnected UDP `sendto`s, each to a destination of its own on 127.0.0.0/8, at an
//! offered rate (paced every 0.25 ms) or as fast as it can, from one thread
//! (`CGWARDEN_BENCH_EVENTS_THREADS`: more threads make fewer sends here, as they contend
//! for the kernel's flow table and ring buffer locks); the generator and the agent share
//! the CPUs, as a busy container and the agent do. Every send is a distinct
//! flow, so the kernel's aggregation of repeats never folds two into one record: one
//! send = one event. The profile is in enforce mode by default, so each send is judged
//! by sendmsg4, reported, and refused with EPERM before a packet exists; in audit mode
//! (`CGWARDEN_BENCH_EVENTS_MODE=audit`) the datagrams really go out on loopback, which
//! costs the generator far more than the event and keeps it well below the rates this
//! bench is about.
//!
//! The events file is measured in two places by default: in `target/bench` (the
//! project's disk, where the kernel's writeback of 100+ MB/s of JSON competes for the
//! two CPUs) and in `/dev/shm` (tmpfs: the agent's own cost without the disk);
//! `CGWARDEN_BENCH_EVENTS_DIRS=DIR[:DIR…]` chooses others.
//!
//! A trial has zero loss when the agent wrote no `lost` record and the `count`s of the
//! `sendmsg` records of the generator's pid add up to exactly what it made (no
//! `sendto` error other than EPERM allowed). A thread polls the events file's size
//! every 5 ms (the longest time it did not grow while the generator ran is the
//! "stall"); once the generator ended, the file is read until every send is in it. The
//! delivered rate is the number of events over the time from the generator's start to
//! the last growth of the file, the lag is that last growth minus the generator's end.
//! The agent's CPU time (utime + stime from /proc) over the trial and its peak resident
//! memory (VmHWM) are read before it is stopped; what it writes when stopped is counted
//! too (and shown).
//!
//! The machine may be shared: before each trial the bench waits (up to 5 s) until the
//! machine is nearly idle, and it measures the CPU time other processes (not kernel
//! threads, not the bench's own) used during the trial. A failed trial during which
//! they used more than 30% of a CPU is marked as disturbed and run once more, and so is
//! one in which the generator fell more than 3% short of the offered rate (no answer
//! either way); a rate it falls short of twice is reported as the generator's limit. The
//! searches share a time budget (`CGWARDEN_BENCH_EVENTS_BUDGET`, 360 s); a search that
//! runs out of it reports what it found so far, marked as cut short.
//!
//! Search, per place: one run at full speed, then offered rates from the target
//! (500,000/s) upwards by ×1.25 while there is no loss, or downwards by ×0.8 until
//! there is none, then bisection to 5%; the rate found must then pass `REPS` runs
//! (every undisturbed run at that rate without loss), or the next 5% lower is tried.
//! Start-to-enforcing: separate starts of an idle agent, the agent's own `cgwarden is
//! enforcing (… in N ms)` and the wall time from spawning it to reading that line.
//!
//! Everything it creates (cgroup, bpffs pins via `cgwarden uninstall`, scratch files,
//! agent processes) is removed also when it fails; what a SIGKILLed run left is removed
//! by the next one.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::TcpStream,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::util::{
    Cgroup, Run, RunFacts, ScratchDir, cgroup2_mount, client_binary, clk_tck, dead_pid,
    dir_entries, forward_lines, json_field, json_field_at, json_number, max, median, min, publish,
    remove_stale_cgroup, remove_stale_dir, result_line, stat_fields, thousands, wait_for,
    warn_if_busy, which,
};

/// The target rate (events/s) and limits from the issue.
const TARGET_RATE: u64 = 500_000;
const TARGET_RSS_MB: f64 = 50.0;
const TARGET_START_MS: f64 = 300.0;
/// Offered rates are multiples of this.
const STEP: u64 = 10_000;
/// Most trials the search may use (the full-speed run and confirmations not counted).
const MAX_SEARCH: usize = 8;
/// Most 5% steps down from the rate the search found while confirming it.
const MAX_STEP_DOWNS: usize = 6;
/// When not every send is in the events file yet, it must not grow for this long after
/// the generator ended before the agent is stopped: the agent flushes after every drain
/// of the ring buffer, reports losses every 100 ms and the repeats it recovers from the
/// kernel's flow table every 500 ms (for flows quiet for a second).
const SETTLE: Duration = Duration::from_millis(1500);
const POLL: Duration = Duration::from_millis(5);
/// CPUs other processes may use during a trial before a failure counts as disturbed.
const DISTURBED: f64 = 0.3;
/// The machine counts as idle before a trial below this many busy CPUs.
const QUIET_CPUS: f64 = 0.15;

struct Settings {
    /// Seconds of generation per trial.
    secs: f64,
    /// Runs at the reported rate, all without loss.
    reps: usize,
    /// Separate starts for the start-to-enforcing time.
    starts: usize,
    /// `enforce` or `audit`.
    mode: String,
    /// Where the events file goes (None: the defaults).
    dirs: Option<Vec<PathBuf>>,
    /// Time for all the searches together; a search that runs out reports what it has.
    budget: Duration,
    /// Generator threads.
    threads: u64,
    /// Time between the agent's `enforcing` line and the generator's start.
    warmup: Duration,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let get = |name: &str, default: f64| -> anyhow::Result<f64> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .with_context(|| format!("{name}=`{v}` is not a positive number")),
                Err(_) => Ok(default),
            }
        };
        let mode = std::env::var("CGWARDEN_BENCH_EVENTS_MODE").unwrap_or_else(|_| "enforce".into());
        if mode != "enforce" && mode != "audit" {
            bail!("CGWARDEN_BENCH_EVENTS_MODE=`{mode}`: enforce or audit");
        }
        let dirs = std::env::var_os("CGWARDEN_BENCH_EVENTS_DIRS")
            .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
            .filter(|d| !d.is_empty());
        Ok(Self {
            secs: get("CGWARDEN_BENCH_EVENTS_SECS", 4.0)?,
            reps: get("CGWARDEN_BENCH_EVENTS_REPS", 3.0)?.round().max(1.0) as usize,
            starts: get("CGWARDEN_BENCH_EVENTS_STARTS", 10.0)?.round().max(1.0) as usize,
            mode,
            dirs,
            budget: Duration::from_secs_f64(get("CGWARDEN_BENCH_EVENTS_BUDGET", 360.0)?),
            threads: get("CGWARDEN_BENCH_EVENTS_THREADS", 1.0)?.round().max(1.0) as u64,
            warmup: Duration::from_secs_f64(match std::env::var("CGWARDEN_BENCH_EVENTS_WARMUP") {
                Ok(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .with_context(|| format!("CGWARDEN_BENCH_EVENTS_WARMUP=`{v}`"))?,
                Err(_) => 3.0,
            }),
        })
    }
}

/// Paths and names of this run.
struct Env<'a> {
    bin: &'a Path,
    eventstorm: PathBuf,
    kill: PathBuf,
    policy: PathBuf,
    control: PathBuf,
    state_dir: PathBuf,
    cgroup: &'a Cgroup,
    clk_tck: f64,
}

/// A place for the events file, and what the search found there.
struct Place {
    dir: PathBuf,
    /// How the report names the directory (without the run's pid).
    shown: String,
    /// Filesystem type.
    fs: String,
    trials: Vec<Trial>,
    /// Highest offered rate that passed every run.
    max_rate: Option<u64>,
    lowest_failing: Option<u64>,
    /// Lowest rate the generator could not keep up (without loss).
    generator_short: Option<u64>,
    /// The time budget ran out before the search was done.
    cut_short: bool,
    /// The rate reported passed only this many runs (fewer than asked for) before the
    /// time budget ran out.
    unconfirmed: Option<usize>,
    /// Trials at the rate found (or the target) that the search does not use: the
    /// generator started as soon as the agent is enforcing, and a `/metrics` scrape
    /// during the run.
    extra: Vec<Trial>,
}

impl Place {
    fn events(&self) -> PathBuf {
        self.dir.join("events.json")
    }

    fn label(&self) -> String {
        format!("JSON file on {} ({})", self.fs, self.shown)
    }
}

/// The generator's result line.
#[derive(Clone, Debug)]
struct Generated {
    sent: u64,
    errors: u64,
    first_error: String,
    secs: f64,
    rate: f64,
    cpu_s: f64,
    pid: u64,
}

/// What one agent start took.
#[derive(Clone, Copy, Debug)]
struct Start {
    /// The agent's own number (`… in N ms`).
    log_ms: f64,
    /// Spawn to reading the line.
    wall_ms: f64,
}

/// One trial.
#[derive(Clone, Debug)]
struct Trial {
    /// Offered events/s; 0 = as fast as the generator can.
    offered: u64,
    generated: Generated,
    /// Sum of `count` of the generator's sendmsg records.
    delivered: u64,
    records: u64,
    /// Records rebuilt by the agent's flush after their own was dropped.
    recovered: u64,
    /// Sum of `count` of `lost` records.
    lost: u64,
    /// Records of other kinds or pids.
    other: u64,
    /// Records that only appeared when the agent was stopped.
    at_stop: u64,
    file_bytes: u64,
    /// Generator start to the last growth of the events file (NaN: not every send was
    /// in the file before the agent was stopped).
    delivery_secs: f64,
    /// Generator end to the last growth of the events file.
    lag_ms: f64,
    /// Longest time the events file did not grow while the generator ran.
    stall_ms: f64,
    /// Share of a CPU the agent used in the second after the trial, with nothing to do
    /// (measured after the full-speed trial only).
    idle_cpu: Option<f64>,
    hwm_kb: u64,
    idle_rss_kb: u64,
    /// VmHWM before the generator started: the start-up peak.
    idle_hwm_kb: u64,
    /// Highest VmRSS sampled (every 50 ms) while the generator ran.
    storm_rss_kb: u64,
    metric_rss: Option<u64>,
    cpu_user_s: f64,
    cpu_sys_s: f64,
    /// CPUs other processes used during the trial, on average.
    others_cpu: f64,
    /// Disturbed and run again: not used by the search.
    superseded: bool,
    /// Time between the agent's `enforcing` line and the generator's start.
    warmup: Duration,
    /// How long a `/metrics` scrape halfway through the run took, when there was one.
    scrape_ms: Option<f64>,
    start: Start,
}

impl Trial {
    fn zero_loss(&self) -> bool {
        self.lost == 0 && self.generated.errors == 0 && self.delivered == self.generated.sent
    }

    /// Zero loss, at (nearly) the rate that was asked for.
    fn passes(&self) -> bool {
        self.zero_loss() && (self.offered == 0 || self.generated.rate >= 0.97 * self.offered as f64)
    }

    fn disturbed(&self) -> bool {
        self.others_cpu > DISTURBED
    }

    fn delivered_rate(&self) -> f64 {
        self.delivered as f64 / self.delivery_secs
    }

    fn cpu_us_per_event(&self) -> (f64, f64) {
        let n = self.delivered.max(1) as f64;
        (self.cpu_user_s * 1e6 / n, self.cpu_sys_s * 1e6 / n)
    }
}

pub fn run(root: &Path, bin: &Path) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let eventstorm = client_binary(bin, "eventstorm")?;
    let kill = which("kill").context("no `kill` command")?;
    let cgroup2 = cgroup2_mount()?;
    let pid = std::process::id();
    remove_stale(root, &cgroup2, bin);

    let run = Run::begin();
    warn_if_busy("events", run.load_before());
    let scratch = ScratchDir::create(root.join(format!("target/bench/tmp-events-{pid}")))?;
    let shm = Path::new("/dev/shm");
    let shm_scratch = if settings.dirs.is_none() && fs_type(shm) == "tmpfs" {
        Some(ScratchDir::create(
            shm.join(format!("cgwarden-bench-{pid}-events")),
        )?)
    } else {
        None
    };
    let dirs: Vec<PathBuf> = match &settings.dirs {
        Some(d) => d.clone(),
        None => std::iter::once(scratch.path().to_owned())
            .chain(shm_scratch.as_ref().map(|s| s.path().to_owned()))
            .collect(),
    };
    for d in &dirs {
        if !d.is_dir() {
            bail!("{} is not a directory", d.display());
        }
    }
    let cgroup = Cgroup::create(&cgroup2, &format!("cgwarden-bench-{pid}-events"))?;
    let policy = scratch.path().join("storm.yaml");
    std::fs::write(
        &policy,
        format!(
            "name: storm\nmode: {}\nselector:\n  cgroup: \"{}\"\negress:\n  default: deny\n  allow: []\n",
            settings.mode,
            cgroup.relative()
        ),
    )
    .with_context(|| format!("writing {}", policy.display()))?;
    let env = Env {
        bin,
        eventstorm,
        kill,
        policy,
        control: scratch.path().join("control.sock"),
        state_dir: PathBuf::from(format!("/sys/fs/bpf/cgwarden-bench-{pid}-events")),
        cgroup: &cgroup,
        clk_tck: clk_tck(),
    };
    let mut places: Vec<Place> = dirs
        .into_iter()
        .map(|dir| Place {
            fs: fs_type(&dir),
            shown: if settings.dirs.is_some() {
                dir.display().to_string()
            } else if dir.starts_with(shm) {
                "/dev/shm".to_owned()
            } else {
                "target/bench".to_owned()
            },
            dir,
            trials: Vec::new(),
            max_rate: None,
            lowest_failing: None,
            generator_short: None,
            cut_short: false,
            unconfirmed: None,
            extra: Vec::new(),
        })
        .collect();

    // Start-to-enforcing of an idle agent.
    let mut starts = Vec::new();
    let first_events = places
        .first()
        .map(Place::events)
        .context("no place for the events file")?;
    for i in 0..settings.starts {
        wait_quiet(env.clk_tck);
        let mut agent = Agent::start(&env, &first_events)?;
        let s = agent.start;
        agent.stop()?;
        let _ = std::fs::remove_file(&first_events);
        eprintln!(
            "[start {}/{}] enforcing after {:.0} ms (agent log), {:.1} ms (wall)",
            i + 1,
            settings.starts,
            s.log_ms,
            s.wall_ms
        );
        starts.push(s);
    }

    let n = places.len();
    for (i, place) in places.iter_mut().enumerate() {
        eprintln!("bench events: {}", place.label());
        // Each place gets an equal share of what is left of the time budget.
        let left = settings.budget.saturating_sub(run.elapsed());
        let deadline = Instant::now() + left / u32::try_from(n - i).unwrap_or(1);
        search(&env, &settings, place, deadline)?;
        let rate = match place.max_rate {
            Some(r) if r > 0 => r,
            _ => TARGET_RATE,
        };
        let variants = [
            ("cold start", Duration::ZERO, false),
            ("metrics scrape", settings.warmup, true),
        ];
        for (what, warmup, scrape_mid_run) in variants {
            if what == "cold start" && settings.warmup.is_zero() {
                continue;
            }
            wait_quiet(env.clk_tck);
            let t = trial(
                &env,
                &settings,
                &place.events(),
                rate,
                warmup,
                scrape_mid_run,
            )?;
            eprintln!(
                "[{what}] offered {rate}/s made {:.0}/s: delivered {}/{} lost {}, stall {:.0} \
                 ms{} -> {}",
                t.generated.rate,
                t.delivered,
                t.generated.sent,
                t.lost,
                t.stall_ms,
                t.scrape_ms
                    .map_or(String::new(), |ms| format!(", scrape took {ms:.0} ms")),
                if t.zero_loss() { "no loss" } else { "LOSS" }
            );
            place.extra.push(t);
        }
    }

    let report = Report {
        commit: commit(root),
        settings: &settings,
        starts: &starts,
        places: &places,
        run: run.end(),
    }
    .render();
    publish(root, "events", &report)?;
    drop(cgroup);
    drop(shm_scratch);
    drop(scratch);
    Ok(())
}

/// Finds the highest rate without loss for one place of the events file.
fn search(
    env: &Env,
    settings: &Settings,
    place: &mut Place,
    deadline: Instant,
) -> anyhow::Result<()> {
    let events = place.events();
    let trials = &mut place.trials;
    let mut cut_short = false;
    // Runs a trial (again, once, when it failed while something else used the CPUs);
    // None when the time budget is spent.
    let mut run_trial = |offered: u64, trials: &mut Vec<Trial>| -> anyhow::Result<Option<Trial>> {
        let mut attempt = 0;
        loop {
            if Instant::now() > deadline && offered != 0 {
                cut_short = true;
                return Ok(None);
            }
            attempt += 1;
            wait_quiet(env.clk_tck);
            let t = trial(env, settings, &events, offered, settings.warmup, false)?;
            // Disturbed, or the generator fell short of the rate: once more.
            let again =
                !t.passes() && (t.disturbed() || t.zero_loss()) && attempt < 2 && offered != 0;
            eprintln!(
                "[trial {}] offered {:>9}/s made {:>9.0}/s: delivered {}/{} lost {} at {:.0}/s, \
                 lag {:.0} ms, stall {:.0} ms, agent {:.2} µs/event, VmHWM {:.1} MB, others \
                 {:.2} CPU -> {}",
                trials.len() + 1,
                if offered == 0 {
                    "max".to_owned()
                } else {
                    offered.to_string()
                },
                t.generated.rate,
                t.delivered,
                t.generated.sent,
                t.lost,
                t.delivered_rate(),
                t.lag_ms,
                t.stall_ms,
                t.cpu_us_per_event().0 + t.cpu_us_per_event().1,
                t.hwm_kb as f64 / 1024.0,
                t.others_cpu,
                match (t.passes(), t.zero_loss(), again) {
                    (true, _, _) => "no loss",
                    (false, true, true) => "no loss, but the generator fell short: again",
                    (false, true, false) => "no loss, but the generator fell short",
                    (false, false, true) => "LOSS, disturbed: again",
                    (false, false, false) => "LOSS",
                }
            );
            trials.push(Trial {
                superseded: again,
                ..t.clone()
            });
            if !again {
                return Ok(Some(t));
            }
        }
    };

    // Full speed first: what the generator can make, and what the agent drains when it
    // cannot keep up.
    let full = run_trial(0, trials)?.context("no full-speed trial")?;
    let cap = ((full.generated.rate * 0.9) as u64 / STEP * STEP).max(STEP);
    let round = |x: f64| ((x / STEP as f64).round() as u64 * STEP).max(STEP);
    // Highest rate without loss, lowest with loss, and lowest the generator could not
    // keep up (no loss seen, but no answer either).
    let mut lo: Option<u64> = None;
    let mut hi: Option<u64> = None;
    let mut slow: Option<u64> = None;
    let min_some = |a: Option<u64>, b: u64| Some(a.map_or(b, |a| a.min(b)));
    let mut rate = TARGET_RATE.min(cap);
    for _ in 0..MAX_SEARCH {
        let Some(t) = run_trial(rate, trials)? else {
            break;
        };
        if t.passes() {
            lo = Some(lo.map_or(rate, |l| l.max(rate)));
        } else if t.zero_loss() {
            slow = min_some(slow, rate);
        } else {
            hi = min_some(hi, rate);
        }
        let top = match (hi, slow) {
            (Some(h), Some(s)) => Some(h.min(s)),
            (h, s) => h.or(s),
        };
        let next = match (lo, top) {
            (Some(l), None) if l >= cap => break,
            (Some(l), None) => round(l as f64 * 1.25).min(cap),
            (None, Some(h)) if h <= STEP => break,
            (None, Some(h)) => round(h as f64 * 0.8),
            (Some(l), Some(h)) if (h as f64) <= l as f64 * 1.05 || h - l <= STEP => break,
            (Some(l), Some(h)) => round((l + h) as f64 / 2.0),
            (None, None) => break,
        };
        if next == rate {
            break;
        }
        rate = next;
    }
    // Confirm: `reps` runs at the reported rate, every one without loss and at the rate,
    // or 5% lower. A rate that failed once (undisturbed) is never reported, whatever
    // passed before.
    for _ in 0..MAX_STEP_DOWNS {
        let Some(l) = lo else { break };
        let counted = |t: &&Trial| t.offered == l && !t.superseded;
        let mut failed = trials.iter().filter(counted).find(|t| !t.passes()).cloned();
        let mut passed = trials.iter().filter(counted).count();
        let mut out_of_time = false;
        while failed.is_none() && passed < settings.reps {
            match run_trial(l, trials)? {
                Some(t) if t.passes() => {}
                Some(t) => failed = Some(t),
                None => {
                    out_of_time = true;
                    break;
                }
            }
            passed += 1;
        }
        if out_of_time {
            // What passed so far at this rate still counts, marked as unconfirmed.
            if failed.is_none() && passed > 0 {
                place.max_rate = Some(l);
                place.unconfirmed = Some(passed);
            }
            break;
        }
        match failed {
            None => {
                place.max_rate = Some(l);
                break;
            }
            Some(t) if t.zero_loss() => slow = min_some(slow, l),
            Some(_) => hi = min_some(hi, l),
        }
        let lower = round(l as f64 * 0.95);
        lo = (lower < l).then_some(lower);
    }
    place.lowest_failing = hi;
    place.generator_short = slow;
    place.cut_short = cut_short;
    Ok(())
}

/// One trial: a fresh agent, the generator at `offered` events/s (0: full speed), the
/// events file checked.
fn trial(
    env: &Env,
    settings: &Settings,
    events: &Path,
    offered: u64,
    warmup: Duration,
    scrape_mid_run: bool,
) -> anyhow::Result<Trial> {
    let count = if offered == 0 {
        (1_000_000.0 * settings.secs) as u64
    } else {
        (offered as f64 * settings.secs) as u64
    };
    let _ = std::fs::remove_file(events);
    let mut agent = Agent::start(env, events)?;
    std::thread::sleep(warmup);
    let idle_rss_kb = status_kb(agent.pid(), "VmRSS").unwrap_or(0);
    let idle_hwm_kb = status_kb(agent.pid(), "VmHWM").unwrap_or(0);
    let cpu0 = cpu_times(agent.pid(), env.clk_tck)?;
    let others0 = others_ticks();
    let window = Instant::now();

    let watch = std::sync::Mutex::new(Watch {
        size: 0,
        last_growth: Instant::now(),
        stall: Duration::ZERO,
        generating: true,
        rss_kb: 0,
    });
    let agent_pid = agent.pid();
    let metrics_addr = agent.metrics.clone();
    let scrape_ms = std::sync::Mutex::new(None::<f64>);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (generated, gen_start, gen_end, mut tally) = std::thread::scope(|scope| {
        // Watches the file's size from a thread of its own, so that reading the file
        // below never delays noticing when it last grew.
        scope.spawn(|| {
            let mut polls = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(POLL);
                let s = std::fs::metadata(events).map_or(0, |m| m.len());
                let now = Instant::now();
                // The agent's memory every 50 ms (reading its status costs more).
                polls += 1;
                let rss = polls
                    .is_multiple_of(10)
                    .then(|| status_kb(agent_pid, "VmRSS"))
                    .flatten();
                if let Ok(mut w) = watch.lock() {
                    if let Some(rss) = rss
                        && w.generating
                    {
                        w.rss_kb = w.rss_kb.max(rss);
                    }
                    if s != w.size {
                        if w.size > 0 && w.generating {
                            w.stall = w.stall.max(now.duration_since(w.last_growth));
                        }
                        w.size = s;
                        w.last_growth = now;
                    }
                }
            }
        });
        if scrape_mid_run && let Some(addr) = metrics_addr.as_deref() {
            // One Prometheus-style scrape halfway through the generator's run.
            let scrape_ms = &scrape_ms;
            scope.spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(settings.secs / 2.0));
                let t0 = Instant::now();
                let _ = scrape(addr, "cgwarden_up");
                if let Ok(mut s) = scrape_ms.lock() {
                    *s = Some(t0.elapsed().as_secs_f64() * 1e3);
                }
            });
        }
        let result = generate_and_tally(env, settings, events, offered, count, &watch);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    })?;
    let cpu1 = cpu_times(agent.pid(), env.clk_tck)?;
    let others_cpu =
        delta_ticks(&others0, &others_ticks()) / env.clk_tck / window.elapsed().as_secs_f64();
    let (last_growth, stall, storm_rss_kb) = watch
        .lock()
        .map(|w| (w.last_growth, w.stall, w.rss_kb))
        .map_err(|_| anyhow::anyhow!("file watcher panicked"))?;
    let complete = tally.delivered >= generated.sent;

    let hwm_kb = status_kb(agent.pid(), "VmHWM").context("reading the agent's VmHWM")?;
    let idle_cpu = if offered == 0 {
        let c0 = cpu_times(agent.pid(), env.clk_tck)?;
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let c1 = cpu_times(agent.pid(), env.clk_tck)?;
        Some((c1.0 + c1.1 - c0.0 - c0.1) / t0.elapsed().as_secs_f64())
    } else {
        None
    };
    let metric_rss = agent.metric("cgwarden_agent_resident_bytes");
    let start = agent.start;
    agent.stop()?;
    // What the agent wrote when it stopped (its final drain and flush).
    let before_stop = tally.records + tally.other;
    tally.update()?;
    let _ = std::fs::remove_file(events);
    Ok(Trial {
        offered,
        generated,
        delivered: tally.delivered,
        records: tally.records,
        recovered: tally.recovered,
        lost: tally.lost,
        other: tally.other,
        at_stop: tally.records + tally.other - before_stop,
        file_bytes: tally.bytes,
        delivery_secs: if complete {
            last_growth.duration_since(gen_start).as_secs_f64()
        } else {
            f64::NAN
        },
        lag_ms: if complete {
            last_growth
                .checked_duration_since(gen_end)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        } else {
            f64::NAN
        },
        stall_ms: stall.as_secs_f64() * 1e3,
        idle_cpu,
        hwm_kb,
        idle_rss_kb,
        idle_hwm_kb,
        storm_rss_kb,
        metric_rss,
        cpu_user_s: cpu1.0 - cpu0.0,
        cpu_sys_s: cpu1.1 - cpu0.1,
        others_cpu,
        superseded: false,
        warmup,
        scrape_ms: scrape_ms.lock().ok().and_then(|s| *s),
        start,
    })
}

/// What the file watcher saw.
struct Watch {
    size: u64,
    last_growth: Instant,
    /// Longest time without growth while the generator ran.
    stall: Duration,
    generating: bool,
    /// Highest VmRSS of the agent seen while the generator ran, in kB.
    rss_kb: u64,
}

/// Runs the generator, then reads the events file until every send is in it or the
/// file stopped growing for [`SETTLE`].
fn generate_and_tally(
    env: &Env,
    settings: &Settings,
    events: &Path,
    offered: u64,
    count: u64,
    watch: &std::sync::Mutex<Watch>,
) -> anyhow::Result<(Generated, Instant, Instant, Tally)> {
    let generator = Command::new(&env.eventstorm)
        .arg("--count")
        .arg(count.to_string())
        .arg("--rate")
        .arg(offered.to_string())
        .arg("--threads")
        .arg(settings.threads.to_string())
        .arg("--join-cgroup")
        .arg(env.cgroup.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting eventstorm")?;
    let gen_start = Instant::now();
    if let Ok(mut w) = watch.lock() {
        w.last_growth = gen_start;
    }
    let out = generator
        .wait_with_output()
        .context("waiting for eventstorm")?;
    let gen_end = Instant::now();
    if let Ok(mut w) = watch.lock() {
        w.generating = false;
    }
    if !out.status.success() {
        bail!(
            "eventstorm failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let generated = parse_generated(&String::from_utf8_lossy(&out.stdout), env.cgroup.relative())?;

    let mut tally = Tally::new(events, generated.pid);
    let limit = settings.secs * 5.0 + 30.0;
    let deadline = gen_end + Duration::from_secs_f64(limit);
    loop {
        tally.update()?;
        if tally.delivered >= generated.sent {
            break;
        }
        let (size, quiet) = watch
            .lock()
            .map(|w| (w.size, w.last_growth.elapsed()))
            .map_err(|_| anyhow::anyhow!("file watcher panicked"))?;
        if quiet >= SETTLE && tally.bytes >= size {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent still wrote events {limit:.0} s after the generator ended");
        }
        std::thread::sleep(POLL);
    }
    Ok((generated, gen_start, gen_end, tally))
}

fn parse_generated(out: &str, cgroup: &str) -> anyhow::Result<Generated> {
    let line = result_line(out, "sent")
        .with_context(|| format!("no result line from eventstorm in: {out}"))?;
    let number = |key: &str| -> anyhow::Result<f64> {
        json_number(line, key).with_context(|| format!("no `{key}` in {line}"))
    };
    let actual = json_field(line, "cgroup").unwrap_or("?");
    if actual != cgroup {
        bail!("eventstorm ran in cgroup `{actual}`, expected `{cgroup}`");
    }
    Ok(Generated {
        sent: number("sent")? as u64,
        errors: number("errors")? as u64,
        first_error: json_field(line, "first_error").unwrap_or("null").to_owned(),
        secs: number("secs")?,
        rate: number("rate")?,
        cpu_s: number("cpu_s")?,
        pid: number("pid")? as u64,
    })
}

/// What the events file holds, read as it grows.
struct Tally {
    path: PathBuf,
    pid: String,
    file: Option<std::fs::File>,
    /// An incomplete last line, kept for the next read.
    partial: Vec<u8>,
    /// Sum of `count` of the generator's sendmsg records.
    delivered: u64,
    records: u64,
    /// Of those, records rebuilt by the agent's flush from the kernel's flow table
    /// after their own record was dropped (rebuilt from the kernel's key: no process
    /// name, `"process":""`).
    recovered: u64,
    lost: u64,
    other: u64,
    bytes: u64,
}

impl Tally {
    fn new(path: &Path, pid: u64) -> Self {
        Self {
            path: path.to_owned(),
            pid: pid.to_string(),
            file: None,
            partial: Vec::new(),
            delivered: 0,
            records: 0,
            recovered: 0,
            lost: 0,
            other: 0,
            bytes: 0,
        }
    }

    /// Reads and counts what was appended since the last call.
    fn update(&mut self) -> anyhow::Result<()> {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(e).with_context(|| format!("opening {}", self.path.display()));
                }
            }
        }
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let result = self.read_from(&mut file);
        self.file = Some(file);
        result
    }

    fn read_from(&mut self, file: &mut std::fs::File) -> anyhow::Result<()> {
        let mut chunk = vec![0u8; 4 << 20];
        loop {
            let n = file
                .read(&mut chunk)
                .with_context(|| format!("reading {}", self.path.display()))?;
            if n == 0 {
                return Ok(());
            }
            self.bytes += n as u64;
            let mut data = &chunk[..n];
            while let Some(end) = data.iter().position(|b| *b == b'\n') {
                if self.partial.is_empty() {
                    self.line(&data[..end])?;
                } else {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&data[..end]);
                    self.line(&line)?;
                }
                data = &data[end + 1..];
            }
            self.partial.extend_from_slice(data);
        }
    }

    fn line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let text = String::from_utf8_lossy(line);
        let count: u64 = json_field_at(&text, "\"count\":")
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("an event without `count`: {text}"))?;
        match json_field_at(&text, "\"kind\":") {
            Some("sendmsg") if json_field_at(&text, "\"pid\":") == Some(self.pid.as_str()) => {
                self.delivered += count;
                self.records += 1;
                if json_field_at(&text, "\"process\":") == Some("") {
                    self.recovered += 1;
                }
            }
            Some("lost") => self.lost += count,
            _ => self.other += 1,
        }
        Ok(())
    }
}

/// A `cgwarden run` started by the bench. Dropping it kills it (if it still runs) and
/// removes its pins with `cgwarden uninstall`.
struct Agent<'a> {
    env: &'a Env<'a>,
    child: Child,
    start: Start,
    metrics: Option<String>,
    log: mpsc::Receiver<(Instant, String)>,
    stopped: bool,
}

impl<'a> Agent<'a> {
    /// Starts the agent and waits until it says it is enforcing.
    fn start(env: &'a Env<'a>, events: &Path) -> anyhow::Result<Self> {
        let _ = std::fs::remove_file(&env.control);
        let spawned = Instant::now();
        let mut child = Command::new(env.bin)
            .env("RUST_LOG", "info")
            .arg("run")
            .arg("--policy")
            .arg(&env.policy)
            .arg("--events")
            .arg(events)
            .arg("--control")
            .arg(&env.control)
            .arg("--state-dir")
            .arg(&env.state_dir)
            .arg("--metrics")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting cgwarden run")?;
        let (tx, log) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            forward_lines(stderr, tx, |line| (Instant::now(), line));
        }
        // The guard exists from here on: any error below kills and uninstalls.
        let mut agent = Self {
            env,
            child,
            start: Start {
                log_ms: f64::NAN,
                wall_ms: f64::NAN,
            },
            metrics: None,
            log,
            stopped: false,
        };
        let mut seen = String::new();
        loop {
            match agent.log.recv_timeout(Duration::from_secs(30)) {
                Ok((at, line)) => {
                    if line.contains("cgwarden is enforcing (") {
                        agent.start = Start {
                            log_ms: enforcing_ms(&line).with_context(|| {
                                format!("no `in N ms` in the agent's line: {line}")
                            })?,
                            wall_ms: at.duration_since(spawned).as_secs_f64() * 1e3,
                        };
                        agent.metrics = line
                            .split("metrics on http://")
                            .nth(1)
                            .and_then(|r| r.split('/').next())
                            .map(str::to_owned);
                        if !seen.contains("gets profile `storm`") {
                            bail!(
                                "the agent did not apply the profile to {} before enforcing:\n{seen}",
                                env.cgroup.relative()
                            );
                        }
                        return Ok(agent);
                    }
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => bail!("cgwarden run did not start enforcing:\n{seen}"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Scrapes one value from the agent's metrics endpoint (loopback).
    fn metric(&self, name: &str) -> Option<u64> {
        scrape(self.metrics.as_deref()?, name)
    }
}

/// One value from an agent's metrics endpoint at `addr` (loopback).
fn scrape(addr: &str, name: &str) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    })
}

impl Agent<'_> {
    /// SIGTERM, wait (SIGKILL after 10 s), then remove the pins.
    fn stop(&mut self) -> anyhow::Result<()> {
        self.stopped = true;
        let pid = self.child.id().to_string();
        // Our own child, not yet reaped: the pid cannot have been reused.
        let _ = Command::new(&self.env.kill)
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let status = wait_for(
            &mut self.child,
            Duration::from_secs(10),
            Duration::from_millis(10),
        )
        .context("waiting for the agent")?;
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.uninstall()?;
        match status {
            // Killed by the SIGTERM itself: it came before the agent's handler was in
            // place (it installs it only after logging that it is enforcing).
            Some(s) if s.success() || s.signal() == Some(15) => Ok(()),
            Some(s) => {
                let log: Vec<String> = self.log.try_iter().map(|(_, l)| l).collect();
                bail!("the agent exited with {s}:\n{}", log.join("\n"))
            }
            None => bail!("the agent did not stop within 10 s of SIGTERM"),
        }
    }

    fn uninstall(&self) -> anyhow::Result<()> {
        let out = Command::new(self.env.bin)
            .arg("uninstall")
            .arg("--state-dir")
            .arg(&self.env.state_dir)
            .output()
            .context("running cgwarden uninstall")?;
        if !out.status.success() {
            bail!(
                "cgwarden uninstall --state-dir {} failed: {}",
                self.env.state_dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if let Err(e) = self.uninstall() {
                eprintln!("bench events: {e:#}");
            }
        }
    }
}

/// `cgwarden is enforcing (pinned in DIR in 94 ms); …` → 94.
fn enforcing_ms(line: &str) -> Option<f64> {
    let head = line.split("cgwarden is enforcing (").nth(1)?;
    head.split(" ms)").next()?.rsplit(' ').next()?.parse().ok()
}

/// A `Vm…:` line of /proc/PID/status, in kB.
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// (user, system) CPU seconds of a process, from /proc/PID/stat.
fn cpu_times(pid: u32, clk_tck: f64) -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let fields = stat_fields(&stat).context("malformed /proc/PID/stat")?;
    // Fields 14 and 15 of stat(5); `fields` starts at field 3.
    let get = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .context("malformed /proc/PID/stat")
    };
    Ok((get(14)? / clk_tck, get(15)? / clk_tck))
}

/// CPU ticks (user + system) of every process that is neither a kernel thread, nor this
/// bench, nor one of its children, by pid.
fn others_ticks() -> HashMap<u32, u64> {
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
fn delta_ticks(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> f64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum::<u64>() as f64
}

/// (busy, all) ticks of the whole machine, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let idle = v.get(3)? + v.get(4)?;
    let all: u64 = v.iter().take(8).sum();
    Some((all - idle, all))
}

/// Waits (up to 5 s) until the machine uses less than [`QUIET_CPUS`] over half a
/// second; then returns anyway.
fn wait_quiet(clk_tck: f64) {
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

/// The last commit that changed the agent's sources, and whether they have changed since
/// (read-only git commands).
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            // Never take the index lock or refresh it: this only reads.
            .arg("--no-optional-locks")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // The last commit that changed the agent (its user space, eBPF or shared layouts).
    let Some(head) = git(&[
        "log",
        "-1",
        "--format=%h %cd %s",
        "--date=format:%Y-%m-%d %H:%M",
        "--",
        "userspace",
        "ebpf",
        "common",
    ]) else {
        return "unknown (no git)".to_owned();
    };
    let dirty = git(&["status", "--porcelain", "--", "userspace", "ebpf", "common"])
        .is_some_and(|s| !s.is_empty());
    format!(
        "{head}{}",
        if dirty {
            " (with uncommitted changes to the agent)"
        } else {
            ""
        }
    )
}

/// The filesystem type of the mount holding `path` (from /proc/self/mountinfo).
fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(mount), Some(fs)) = (
            left.split_whitespace().nth(4),
            right.split_whitespace().next(),
        ) else {
            continue;
        };
        let mount = mount.replace("\\040", " ");
        if path.starts_with(&mount) && best.as_ref().is_none_or(|(len, _)| mount.len() >= *len) {
            best = Some((mount.len(), fs.to_owned()));
        }
    }
    best.map_or_else(|| "?".to_owned(), |(_, fs)| fs)
}

/// Removes what an earlier run killed before its guards ran left: the cgroup, the
/// pins and the scratch directories of dead pids.
fn remove_stale(root: &Path, cgroup2: &Path, bin: &Path) {
    let stale_pid = |name: &str| -> Option<String> {
        let pid = name
            .strip_prefix("cgwarden-bench-")?
            .strip_suffix("-events")?;
        dead_pid(pid).then(|| pid.to_owned())
    };
    for (name, path) in dir_entries(&root.join("target/bench")) {
        if let Some(pid) = name.strip_prefix("tmp-events-")
            && dead_pid(pid)
        {
            remove_stale_dir(&path);
        }
    }
    for (name, path) in dir_entries(Path::new("/dev/shm")) {
        if stale_pid(&name).is_some() {
            remove_stale_dir(&path);
        }
    }
    for (name, path) in dir_entries(Path::new("/sys/fs/bpf")) {
        if stale_pid(&name).is_some() {
            eprintln!("bench: removing stale pins {}", path.display());
            let _ = Command::new(bin)
                .arg("uninstall")
                .arg("--state-dir")
                .arg(&path)
                .output();
        }
    }
    for (name, path) in dir_entries(cgroup2) {
        if stale_pid(&name).is_some() {
            remove_stale_cgroup(&name, &path);
        }
    }
}

struct Report<'a> {
    /// The commit the agent was built from.
    commit: String,
    settings: &'a Settings,
    starts: &'a [Start],
    places: &'a [Place],
    /// When the bench ran, and the load around it.
    run: RunFacts,
}

impl Report<'_> {
    fn render(&self) -> String {
        let s = self.settings;
        let mut o = String::new();
        self.run.head(&mut o, "Events: `cargo xtask bench events`");
        let _ = writeln!(o, "- agent sources as of: {}", self.commit);
        self.run.load_line(
            &mut o,
            " (the bench itself keeps both CPUs busy: the generator and the agent)",
        );
        let _ = writeln!(
            o,
            "- method: every trial starts a fresh `cgwarden run --events FILE` whose profile \
             ({} mode, `default: deny`, no rule) selects a cgroup of the bench; the generator \
             (`eventstorm`, {} sender thread(s)) joins it {:.0} s after the agent logged that it is \
             enforcing and makes unconnected UDP `sendto`s to distinct 127.x.y.z:port \
             destinations (one flow, so one event, each) for about {:.0} s at an offered \
             rate{}; generator and agent share the machine's CPUs. The last two rows of \
             each table are not part of the search: one run with the generator started as \
             soon as the agent is enforcing, one with a `/metrics` scrape halfway through. Zero loss = no `lost` record and the `count`s of the \
             generator's `sendmsg` records add up to exactly the sends it made. Delivered \
             rate = events / (generator start → last growth of the file); lag = generator \
             end → last growth. Agent CPU from /proc/PID/stat over the trial, peak memory = \
             VmHWM. Search: full speed, then from {} events/s up ×1.25 or down ×0.8, \
             bisection to 5%; the rate reported must then pass {} runs, every undisturbed \
             run at it without loss (on a failure: 5% lower, again). Before each trial the \
             bench waits (up to 5 s) until the machine is idle; a failed trial during which \
             other processes used more than {:.0}% of a CPU, or in which the generator fell \
             more than 3% short of the offered rate, is run once more (the first run is \
             shown but not counted). The whole bench took {:.0} s.",
            s.mode,
            s.threads,
            s.warmup.as_secs_f64(),
            s.secs,
            if s.mode == "enforce" {
                " (each send is refused with EPERM after sendmsg4 reported it: no packet, \
                 so the generator is cheap)"
            } else {
                ""
            },
            thousands(TARGET_RATE as f64),
            s.reps,
            DISTURBED * 100.0,
            self.run.took.as_secs_f64()
        );
        let _ = writeln!(o);

        let log_ms: Vec<f64> = self.starts.iter().map(|s| s.log_ms).collect();
        let wall_ms: Vec<f64> = self.starts.iter().map(|s| s.wall_ms).collect();
        let yes = |ok: bool| if ok { "yes" } else { "**no**" };
        let _ = writeln!(o, "| target | measured | met |");
        let _ = writeln!(o, "|---|---:|---|");
        for place in self.places {
            self.target_rows(&mut o, place);
        }
        let _ = writeln!(
            o,
            "| agent start to enforcing < {TARGET_START_MS:.0} ms (median of {} starts; agent log) | {:.0} ms | {} |",
            log_ms.len(),
            median(&log_ms),
            yes(median(&log_ms) < TARGET_START_MS)
        );
        let _ = writeln!(
            o,
            "| the same as wall time, spawn → `enforcing` line read | {:.0} ms | {} |",
            median(&wall_ms),
            yes(median(&wall_ms) < TARGET_START_MS)
        );
        let _ = writeln!(o);

        for place in self.places {
            self.trial_table(&mut o, place);
        }
        let _ = writeln!(
            o,
            "Columns: delivered = events / (generator start → last growth of the file), n/a \
             when not every send was in the file before the agent was stopped; lag = \
             generator end → last growth; longest stall = the longest time the file did not \
             grow while the generator ran (polled every {} ms); agent CPU = its utime and \
             stime over the trial per delivered event; VmRSS idle = before the generator \
             started, max = sampled every 50 ms while it ran, metric = \
             `cgwarden_agent_resident_bytes` scraped after the last event; VmHWM = the agent's peak resident memory over its life, with in brackets \
             its value before the generator started (the start-up peak); others = CPUs used on average by processes other than the bench's \
             (kernel threads such as writeback not counted).",
            POLL.as_millis()
        );
        for place in self.places {
            if let Some(idle) = place.trials.iter().find_map(|t| t.idle_cpu) {
                let _ = writeln!(
                    o,
                    "After the full-speed trial ({}), with nothing left to do, the agent still \
                     used {:.0}% of a CPU (measured over 1 s).",
                    place.label(),
                    (idle * 100.0).max(0.0)
                );
            }
        }
        let _ = writeln!(o);

        let _ = writeln!(
            o,
            "Start to enforcing ({} starts of an idle agent, each with fresh pins, and the \
             agents of the trials above):\n",
            self.starts.len()
        );
        let trials: Vec<&Trial> = self.places.iter().flat_map(|p| &p.trials).collect();
        let trial_log: Vec<f64> = trials.iter().map(|t| t.start.log_ms).collect();
        let trial_wall: Vec<f64> = trials.iter().map(|t| t.start.wall_ms).collect();
        let _ = writeln!(o, "| what | median | min | max | runs |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|");
        for (what, v) in [
            (
                "agent log (`cgwarden is enforcing (… in N ms)`, from its start of `run`)",
                &log_ms,
            ),
            (
                "wall time: spawn of `cgwarden run` → the line read from its stderr",
                &wall_ms,
            ),
            ("agent log, the agents of the trials", &trial_log),
            ("wall time, the agents of the trials", &trial_wall),
        ] {
            let _ = writeln!(
                o,
                "| {what} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                median(v),
                min(v),
                max(v),
                v.len()
            );
        }
        o
    }

    fn target_rows(&self, o: &mut String, place: &Place) {
        let yes = |ok: bool| if ok { "yes" } else { "**no**" };
        let counted: Vec<&Trial> = place.trials.iter().filter(|t| !t.superseded).collect();
        let full = counted.iter().find(|t| t.offered == 0);
        let full_text = full.map_or(String::new(), |t| {
            format!(
                "; at full speed the generator made {}/s {}",
                thousands(t.generated.rate),
                if t.zero_loss() {
                    "without loss"
                } else {
                    "with loss"
                }
            )
        });
        let (rate_text, rate_ok) = match place.max_rate {
            Some(r) => (
                format!(
                    "{}{}{}{full_text}",
                    thousands(r as f64),
                    match place.unconfirmed {
                        Some(n) => format!(
                            " ({n} of {} runs at it, all without loss, before the time ran out)",
                            self.settings.reps
                        ),
                        None => String::new(),
                    },
                    match (place.lowest_failing, place.generator_short) {
                        (Some(h), _) => format!(" (loss at {})", thousands(h as f64)),
                        (None, Some(g)) => format!(
                            " (no loss at any rate tried; the generator fell short of {}/s)",
                            thousands(g as f64)
                        ),
                        (None, None) => {
                            " (no loss at any rate tried: the generator is the limit)".to_owned()
                        }
                    }
                ),
                r >= TARGET_RATE,
            ),
            None => (
                match place.lowest_failing {
                    Some(h) => format!(
                        "< {} (no rate tried passed all its runs){full_text}",
                        thousands(h as f64)
                    ),
                    None => format!("not determined{full_text}"),
                },
                false,
            ),
        };
        // No loss seen at all, but no run at the target rate either: the generator, not
        // the agent, fell short.
        let verdict = if !rate_ok && place.lowest_failing.is_none() {
            "not shown: no loss at any rate, the generator fell short"
        } else {
            yes(rate_ok)
        };
        let _ = writeln!(
            o,
            "| ≥ {} events/s with zero loss, sustained: {} | {rate_text}{} | {} |",
            thousands(TARGET_RATE as f64),
            place.label(),
            if place.cut_short {
                "; search cut short by the time budget"
            } else {
                ""
            },
            verdict
        );
        // The runs at the rate reported; without one, every run of the search.
        let (at_max, which): (Vec<&&Trial>, &str) = match place.max_rate {
            Some(r) => (
                counted.iter().filter(|t| t.offered == r).collect(),
                "highest of those runs",
            ),
            None => (counted.iter().collect(), "highest of all runs"),
        };
        let mb = |f: fn(&Trial) -> u64| {
            at_max
                .iter()
                .map(|t| f(t) as f64 / 1024.0)
                .fold(f64::NAN, f64::max)
        };
        let (hwm, storm, startup) = (
            mb(|t| t.hwm_kb),
            mb(|t| t.storm_rss_kb),
            mb(|t| t.idle_hwm_kb),
        );
        let _ = writeln!(
            o,
            "| agent resident memory < {TARGET_RSS_MB:.0} MB at that rate ({which}) | {} | {} |",
            if hwm.is_finite() {
                format!(
                    "VmRSS ≤ {storm:.1} MB during the runs; VmHWM {hwm:.1} MB (start-up peak \
                     alone: {startup:.1} MB)"
                )
            } else {
                "n/a".to_owned()
            },
            yes(hwm < TARGET_RSS_MB)
        );
    }

    fn trial_table(&self, o: &mut String, place: &Place) {
        let _ = writeln!(o, "Trials, {}, in the order run:\n", place.label());
        let _ = writeln!(
            o,
            "| # | offered (events/s) | made (events/s) | delivered / made | lost | delivered (events/s) | lag | longest stall | agent CPU µs/event (user + sys) | agent VmRSS: idle → max during the run (metric after) | agent VmHWM (start-up) | others (CPUs) | result |"
        );
        let _ = writeln!(
            o,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let warmup = self.settings.warmup;
        for (i, t) in place.trials.iter().chain(&place.extra).enumerate() {
            let (u, k) = t.cpu_us_per_event();
            let result = if t.passes() {
                "no loss".to_owned()
            } else if t.generated.errors > 0 {
                format!(
                    "{} send errors ({})",
                    t.generated.errors, t.generated.first_error
                )
            } else if t.zero_loss() {
                "no loss, but the generator fell short of the offered rate".to_owned()
            } else {
                loss_note(t)
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} / {} | {} | {} | {} | {:.0} ms | {:.2} + {:.2} = {:.2} | {:.1} → {:.1} ({}) MB | {:.1} ({:.1}) MB | {:.2} | {}{} |",
                i + 1,
                match (t.offered, t.warmup != warmup, t.scrape_ms) {
                    (0, _, _) => "full speed".to_owned(),
                    (r, true, _) => format!(
                        "{}, generator started {:.0} s after `enforcing` (cold start)",
                        thousands(r as f64),
                        t.warmup.as_secs_f64()
                    ),
                    (r, false, Some(ms)) => format!(
                        "{}, one `/metrics` scrape halfway (answered in {ms:.0} ms)",
                        thousands(r as f64)
                    ),
                    (r, false, None) => thousands(r as f64),
                },
                thousands(t.generated.rate),
                thousands(t.delivered as f64),
                thousands(t.generated.sent as f64),
                thousands(t.lost as f64),
                thousands(t.delivered_rate()),
                if t.lag_ms.is_finite() {
                    format!("{:.0} ms", t.lag_ms)
                } else {
                    "n/a".to_owned()
                },
                t.stall_ms,
                u,
                k,
                u + k,
                t.idle_rss_kb as f64 / 1024.0,
                t.storm_rss_kb as f64 / 1024.0,
                t.metric_rss
                    .map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0)),
                t.hwm_kb as f64 / 1024.0,
                t.idle_hwm_kb as f64 / 1024.0,
                t.others_cpu,
                result,
                if t.superseded {
                    " (disturbed or short: run again, not counted)"
                } else {
                    ""
                }
            );
        }
        let bytes: u64 = place.trials.iter().map(|t| t.file_bytes).sum();
        let records: u64 = place.trials.iter().map(|t| t.records).sum();
        let other: u64 = place.trials.iter().map(|t| t.other).sum();
        let gen_cpu: Vec<f64> = place
            .trials
            .iter()
            .map(|t| t.generated.cpu_s * 1e6 / t.generated.sent.max(1) as f64)
            .collect();
        let gen_secs: Vec<f64> = place.trials.iter().map(|t| t.generated.secs).collect();
        let _ = writeln!(
            o,
            "\nAverage line {:.0} bytes; {} records of other kinds or processes; the \
             generator ran {:.1}–{:.1} s and used {:.2}–{:.2} µs of CPU per send (its \
             `sendto` with the eBPF program that reports it).\n",
            bytes as f64 / (records + other).max(1) as f64,
            other,
            min(&gen_secs),
            max(&gen_secs),
            min(&gen_cpu),
            max(&gen_cpu)
        );
    }
}

/// What went wrong in a trial with loss.
fn loss_note(t: &Trial) -> String {
    let mut notes = Vec::new();
    if t.lost > 0 {
        notes.push(format!(
            "{} records dropped (ring buffer full)",
            thousands(t.lost as f64)
        ));
    }
    if t.recovered > 0 {
        notes.push(format!(
            "{} of them rebuilt from the kernel's flow table (no process, uid or rule)",
            thousands(t.recovered as f64)
        ));
    }
    match t.delivered.cmp(&t.generated.sent) {
        std::cmp::Ordering::Less => notes.push(format!(
            "{} sends in no record",
            thousands((t.generated.sent - t.delivered) as f64)
        )),
        std::cmp::Ordering::Greater => notes.push(format!(
            "{} counted twice",
            thousands((t.delivered - t.generated.sent) as f64)
        )),
        std::cmp::Ordering::Equal => notes.push("every send counted".to_owned()),
    }
    if t.at_stop > 0 {
        notes.push(format!(
            "{} records only at shutdown",
            thousands(t.at_stop as f64)
        ));
    }
    format!("**loss**: {}", notes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_enforcing_line() {
        let l = "[2026-11-24T20:25:30.986Z INFO  cgwarden::cli::agent] cgwarden is enforcing \
                 (pinned in /sys/fs/bpf/x in 94 ms); cgroup2 at /sys/fs/cgroup/unified; metrics \
                 on http://127.0.0.1:34171/metrics";
        assert_eq!(enforcing_ms(l), Some(94.0));
    }

    #[test]
    fn reads_fields() {
        let l = r#"{"time":"x","kind":"sendmsg","pid":42,"count":1}"#;
        assert_eq!(json_field_at(l, "\"kind\":"), Some("sendmsg"));
        assert_eq!(json_field_at(l, "\"pid\":"), Some("42"));
        assert_eq!(json_field_at(l, "\"count\":"), Some("1"));
        assert_eq!(json_field_at(l, "\"dst\":"), None);
    }

    #[test]
    fn tallies_a_growing_file() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("cgwarden-tally-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("e.json");
        let mut t = Tally::new(&path, 7);
        t.update().expect("no file yet");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(
            b"{\"kind\":\"sendmsg\",\"pid\":7,\"process\":\"udp\",\"count\":1}\n\
              {\"kind\":\"sendmsg\",\"pid\":7,\"process\":\"\",\"co",
        )
        .expect("write");
        t.update().expect("update");
        assert_eq!((t.delivered, t.records), (1, 1));
        f.write_all(
            b"unt\":2}\n{\"kind\":\"sendmsg\",\"pid\":8,\"count\":1}\n\
              {\"time\":\"t\",\"kind\":\"lost\",\"count\":5,\"reason\":\"ring buffer full\"}\n",
        )
        .expect("write");
        t.update().expect("update");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            (t.delivered, t.records, t.recovered, t.lost, t.other),
            (3, 2, 1, 5, 1)
        );
    }
}
