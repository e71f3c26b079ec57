//! One trial and what is timed and sampled in it: a fresh agent, the generator at an
//! offered rate, the events file's growth (polled from a thread of its own), the
//! agent's CPU time and memory, the CPU others used, and the generator's result line.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{
    DISTURBED, Env, POLL, SETTLE, Settings,
    agent::{Agent, scrape},
    quiet::{delta_ticks, others_ticks},
    tally::Tally,
};
use crate::bench::util::{result_line, stat_fields};

/// The generator's result line.
#[derive(Clone, Debug)]
pub(super) struct Generated {
    pub(super) sent: u64,
    pub(super) errors: u64,
    pub(super) first_error: String,
    pub(super) secs: f64,
    pub(super) rate: f64,
    pub(super) cpu_s: f64,
    pub(super) pid: u64,
}

/// What one agent start took.
#[derive(Clone, Copy, Debug)]
pub(super) struct Start {
    /// The agent's own number (`… in N ms`).
    pub(super) log_ms: f64,
    /// Spawn to reading the line.
    pub(super) wall_ms: f64,
}

/// One trial.
#[derive(Clone, Debug)]
pub(super) struct Trial {
    /// Offered events/s; 0 = as fast as the generator can.
    pub(super) offered: u64,
    pub(super) generated: Generated,
    /// Sum of `count` of the generator's sendmsg records.
    pub(super) delivered: u64,
    pub(super) records: u64,
    /// Records rebuilt by the agent's flush after their own was dropped.
    pub(super) recovered: u64,
    /// Sum of `count` of `lost` records.
    pub(super) lost: u64,
    /// Records of other kinds or pids.
    pub(super) other: u64,
    /// Records that only appeared when the agent was stopped.
    pub(super) at_stop: u64,
    pub(super) file_bytes: u64,
    /// Generator start to the last growth of the events file (NaN: not every send was
    /// in the file before the agent was stopped).
    pub(super) delivery_secs: f64,
    /// Generator end to the last growth of the events file.
    pub(super) lag_ms: f64,
    /// Longest time the events file did not grow while the generator ran.
    pub(super) stall_ms: f64,
    /// Share of a CPU the agent used in the second after the trial, with nothing to do
    /// (measured after the full-speed trial only).
    pub(super) idle_cpu: Option<f64>,
    pub(super) hwm_kb: u64,
    pub(super) idle_rss_kb: u64,
    /// VmHWM before the generator started: the start-up peak.
    pub(super) idle_hwm_kb: u64,
    /// Highest VmRSS sampled (every 50 ms) while the generator ran.
    pub(super) storm_rss_kb: u64,
    pub(super) metric_rss: Option<u64>,
    pub(super) cpu_user_s: f64,
    pub(super) cpu_sys_s: f64,
    /// CPUs other processes used during the trial, on average.
    pub(super) others_cpu: f64,
    /// Disturbed and run again: not used by the search.
    pub(super) superseded: bool,
    /// Time between the agent's `enforcing` line and the generator's start.
    pub(super) warmup: Duration,
    /// How long a `/metrics` scrape halfway through the run took, when there was one.
    pub(super) scrape_ms: Option<f64>,
    pub(super) start: Start,
}

impl Trial {
    pub(super) fn zero_loss(&self) -> bool {
        self.lost == 0 && self.generated.errors == 0 && self.delivered == self.generated.sent
    }

    /// Zero loss, at (nearly) the rate that was asked for.
    pub(super) fn passes(&self) -> bool {
        self.zero_loss() && (self.offered == 0 || self.generated.rate >= 0.97 * self.offered as f64)
    }

    pub(super) fn disturbed(&self) -> bool {
        self.others_cpu > DISTURBED
    }

    pub(super) fn delivered_rate(&self) -> f64 {
        self.delivered as f64 / self.delivery_secs
    }

    pub(super) fn cpu_us_per_event(&self) -> (f64, f64) {
        let n = self.delivered.max(1) as f64;
        (self.cpu_user_s * 1e6 / n, self.cpu_sys_s * 1e6 / n)
    }
}

/// One trial: a fresh agent, the generator at `offered` events/s (0: full speed), the
/// events file checked.
pub(super) fn trial(
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

/// The fields of the generator's JSON line that the bench reads.
#[derive(Deserialize)]
struct GeneratorLine {
    sent: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    rate: f64,
    cpu_s: f64,
    pid: u64,
    cgroup: Option<String>,
}

fn parse_generated(out: &str, cgroup: &str) -> anyhow::Result<Generated> {
    let line: GeneratorLine = result_line(out, "sent")
        .with_context(|| format!("no result line from eventstorm in: {out}"))??;
    let actual = line.cgroup.as_deref().unwrap_or("?");
    if actual != cgroup {
        bail!("eventstorm ran in cgroup `{actual}`, expected `{cgroup}`");
    }
    Ok(Generated {
        sent: line.sent,
        errors: line.errors,
        first_error: line.first_error.unwrap_or_else(|| "null".to_owned()),
        secs: line.secs,
        rate: line.rate,
        cpu_s: line.cpu_s,
        pid: line.pid,
    })
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
