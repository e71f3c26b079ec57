//! `cargo xtask bench events`: how many events per second the agent delivers to its
//! JSON file sink without losing any, its resident memory at that rate, and how long
//! it takes from start to enforcing.
//!
//! Every trial starts a fresh agent, `cgwarden run --policy <storm> --events <file>`
//! with its own control socket, bpffs state directory and metrics port, whose one
//! profile (`default: deny`, no rule) selects a cgroup made by the bench. The
//! generator, `eventstorm` (benchclients/src/bin/eventstorm.rs), joins that cgroup and
//! makes N unconnected UDP `sendto`s, each to a destination of its own on 127.0.0.0/8,
//! at an offered rate (paced every 0.25 ms) or as fast as it can, from one thread
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
//! (1,000,000/s, or the full-speed rate when the generator makes less) upwards by ×1.25 while there is no loss, or downwards by ×0.8 until
//! there is none, then bisection to 5%; the rate found must then pass `REPS` runs
//! (every undisturbed run at that rate without loss), or the next 5% lower is tried.
//! Start-to-enforcing: separate starts of an idle agent, the agent's own `cgwarden is
//! enforcing (… in N ms)` and the wall time from spawning it to reading that line.
//!
//! Everything it creates (cgroup, bpffs pins via `cgwarden uninstall`, scratch files,
//! agent processes) is removed also when it fails; what a SIGKILLed run left is removed
//! by the next one.
//!
//! This module is the run itself: the settings, the places for the events file, the
//! starts of an idle agent, a search per place and the extra trials, in that order. The
//! roles around it: [`search`] (which offered rates are tried, and the one reported),
//! [`measure`] (one trial: what is timed and sampled), [`tally`] (reading the events
//! file as it grows), [`agent`] (starting and stopping the agent under test),
//! [`quiet`] (the load of the shared machine) and [`report`] (the markdown report).

mod agent;
mod measure;
mod quiet;
mod report;
mod search;
mod tally;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::util::{
    Cgroup, Run, ScratchDir, cgroup2_mount, client_binary, clk_tck, dead_pid, dir_entries, fs_type,
    publish, remove_stale_cgroup, remove_stale_dir, warn_if_busy, which,
};
use agent::Agent;
use measure::{Trial, trial};
use quiet::wait_quiet;
use report::{Report, commit};
use search::search;

/// The target rate (events/s) and limits, as issue #15 sets them: resident memory is
/// judged on VmRSS during the runs (the start-up peak, VmHWM, is shown beside it).
const TARGET_RATE: u64 = 1_000_000;
const TARGET_RSS_MB: f64 = 30.0;
const TARGET_START_MS: f64 = 150.0;
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
