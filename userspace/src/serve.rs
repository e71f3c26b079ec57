//! The agent's event loop: ring-buffer records, periodic work (cgroup rescans, loss
//! counters), reloads on SIGHUP, and shutdown on SIGINT/SIGTERM or when the command
//! run by `exec` ends.

use std::{path::Path, process::ExitStatus, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    net::TcpListener,
    process::Child,
    signal::unix::{SignalKind, signal},
};

use crate::{
    agent::Agent,
    control::{self, Command, ControlSocket},
    policy,
};

/// How the loop ends.
pub enum Stop {
    /// SIGINT or SIGTERM (`run`).
    Signal,
    /// The command exited (`exec`).
    Exited(ExitStatus),
    /// The deadline passed.
    Deadline,
    /// The watched cgroup was removed.
    Gone,
}

/// What the loop watches besides the ring buffer.
pub struct Options<'a> {
    /// Profile file or directory to reload on SIGHUP.
    pub policy: &'a Path,
    /// Apply selectors to the cgroup tree on every tick (`run`).
    pub rescan: bool,
    /// With `rescan`: also apply them as soon as inotify sees a cgroup or container
    /// appear; the tick's walk becomes a backstop every this long.
    pub watch: Option<Duration>,
    /// The command run by `exec`; signals are forwarded to it instead of stopping.
    pub child: Option<&'a mut Child>,
    /// The control socket (`run`).
    pub control: Option<&'a ControlSocket>,
    /// The Prometheus metrics listener (`run`).
    pub metrics: Option<&'a TcpListener>,
    /// The signals the loop answers, installed before the agent says it is enforcing.
    pub signals: Signals,
    /// Stop at this time (`learn --container`).
    pub deadline: Option<tokio::time::Instant>,
    /// Stop when this cgroup directory is removed (checked every tick).
    pub while_exists: Option<&'a Path>,
    /// `learn --select`: stop when every cgroup the learning profile went to is gone.
    pub until_claims_gone: bool,
    /// `learn --select`: stop this long after the learning profile went to its first
    /// cgroup.
    pub learn_for: Option<Duration>,
    /// A learning run's progress line.
    pub progress: Option<crate::learn::progress::Progress>,
}

/// SIGHUP (reload), SIGINT and SIGTERM (stop, or forward to `exec`'s command).
pub struct Signals {
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// From now on these signals are queued for the loop instead of killing the agent.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }
}

const TICK: Duration = Duration::from_millis(100);
/// How long an event may wait in the ring buffer when no batch woke the agent.
const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// Runs until a stop condition; always drains the ring buffer before returning.
pub async fn serve(
    agent: &mut Agent,
    ring: RingBuf<MapData>,
    mut opts: Options<'_>,
) -> anyhow::Result<Stop> {
    // SAFETY: the AsyncFd takes ownership of the ring buffer, so its fd stays open for
    // as long as it is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE)? };
    let mut tick = tokio::time::interval(TICK);
    // The kernel wakes the agent only for batches; small amounts are drained here.
    let mut drain_tick = tokio::time::interval(DRAIN_EVERY);
    let Signals {
        mut hup,
        mut int,
        mut term,
    } = opts.signals;
    let mut forwarded = 0u32;
    let mut dns_tick = std::time::Instant::now();
    // New cgroups and containers are applied as their directories appear; the walk on
    // the tick stays as a backstop.
    let mut watch = if opts.rescan && opts.watch.is_some() {
        match crate::engines::watch::Watcher::new(agent.cgroup_root(), &agent.state_dirs())
            // SAFETY: the AsyncFd owns the watcher, so its fd stays open for as long as
            // it is registered.
            .and_then(|w| {
                unsafe { AsyncFd::register_with_interest(w, Interest::READABLE) }
                    .map_err(std::io::Error::from)
            }) {
            Ok(w) => {
                log::info!(
                    "watching {} cgroup and runtime state directories for new containers",
                    w.get_ref().len()
                );
                Some(w)
            }
            Err(e) => {
                log::warn!(
                    "cannot watch the cgroup tree ({e}); new cgroups are found by a walk every {} ms",
                    TICK.as_millis()
                );
                None
            }
        }
    } else {
        None
    };
    // What appeared between the start-up walk and the watches is found now, not at the
    // next walk (the watches see only what comes after them).
    if watch.is_some() {
        let done = rescan(agent, ring.get_mut(), watch.as_mut());
        survive(agent, "rescan", done);
    }
    let mut last_walk = std::time::Instant::now();
    let stop = loop {
        let wait_child = async {
            match opts.child.as_deref_mut() {
                Some(child) => child.wait().await,
                None => std::future::pending().await,
            }
        };
        let control = async {
            match opts.control {
                Some(socket) => socket.next().await,
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match opts.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let scrape = async {
            match opts.metrics {
                Some(listener) => listener.accept().await,
                None => std::future::pending().await,
            }
        };
        let watched = async {
            match watch.as_mut() {
                Some(w) => w.readable_mut().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            guard = watched => {
                let mut guard = guard?;
                let changed = guard.get_inner_mut().read()?;
                guard.clear_ready();
                if changed {
                    last_walk = std::time::Instant::now();
                    let done = rescan(agent, ring.get_mut(), watch.as_mut());
                    survive(agent, "rescan", done);
                    agent.flush()?;
                }
            }
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                // With records left, readiness is kept so the loop comes back at once,
                // after signals, ticks and the control socket had their turn.
                if !drain(agent, guard.get_inner_mut()) {
                    guard.clear_ready();
                }
                if opts.rescan && agent.take_gate_wakeup() {
                    let done = rescan(agent, guard.get_inner_mut(), watch.as_mut());
                    survive(agent, "rescan", done);
                }
                agent.flush()?;
            }
            _ = drain_tick.tick() => {
                drain(agent, ring.get_mut());
                if opts.rescan && agent.take_gate_wakeup() {
                    let done = rescan(agent, ring.get_mut(), watch.as_mut());
                    survive(agent, "rescan", done);
                }
                agent.flush()?;
            }
            _ = tick.tick() => {
                if opts.while_exists.is_some_and(|p| !p.exists()) {
                    break Stop::Gone;
                }
                if opts.until_claims_gone
                    && agent.claims().is_some_and(|c| c.all_gone(agent.cgroup_root()))
                {
                    break Stop::Gone;
                }
                if opts.learn_for.is_some_and(|d| {
                    agent
                        .claims()
                        .and_then(|c| c.first_at)
                        .is_some_and(|at| at.elapsed() >= d)
                }) {
                    break Stop::Deadline;
                }
                if let Some(progress) = &mut opts.progress {
                    progress.tick(agent);
                }
                if opts.rescan
                    && (watch.is_none()
                        || opts.watch.is_some_and(|every| last_walk.elapsed() >= every)
                        || agent.holds_processes()
                        || agent.oci_changed())
                {
                    last_walk = std::time::Instant::now();
                    let done = rescan(agent, ring.get_mut(), watch.as_mut());
                    survive(agent, "rescan", done);
                }
                let done = agent.check_counters();
                survive(agent, "counters", done);
                let done = agent.remove_retired();
                survive(agent, "retire_rules", done);
                let done = agent.sweep_inherited();
                survive(agent, "sweep_inherited", done);
                let done = agent.flush_aggregates(false);
                survive(agent, "flush_repeats", done);
                if dns_tick.elapsed() >= Duration::from_secs(1) {
                    dns_tick = std::time::Instant::now();
                    let done = agent.dns_upkeep();
                    survive(agent, "dns_upkeep", done);
                }
                agent.flush()?;
            }
            _ = hup.recv() => {
                if let Err(e) = reload(agent, opts.policy) {
                    log::error!("{e}");
                }
            }
            scraper = scrape => {
                match scraper {
                    Ok((stream, _)) => {
                        let body = agent.metrics_text();
                        tokio::spawn(answer_scrape(stream, body));
                    }
                    Err(e) => log::warn!("metrics listener: {e}"),
                }
            }
            request = control => {
                match request {
                    Ok((Command::Follow { filter }, stream)) => {
                        agent.follow(control::start_following(stream, filter));
                    }
                    Ok((command, mut stream)) => {
                        let answer = match command {
                            Command::Reload {} => match reload(agent, opts.policy) {
                                Ok(()) => serde_json::json!({ "ok": true, "profiles": agent.profile_names() }),
                                Err(e) => control::error_json(&e),
                            },
                            Command::Status {} => serde_json::to_value(agent.status())
                                .unwrap_or_else(|e| control::error_json(&format!("status: {e}"))),
                            Command::Posture {} => agent.postures(),
                            Command::Follow { .. } => unreachable!("handled above"),
                        };
                        if let Err(e) = control::reply(&mut stream, &answer).await {
                            log::warn!("control client went away: {e}");
                        }
                    }
                    Err(e) => log::warn!("control socket: {e}"),
                }
            }
            _ = int.recv() => {
                if !forward(opts.child.as_deref(), libc::SIGINT, &mut forwarded) {
                    break Stop::Signal;
                }
            }
            _ = term.recv() => {
                if !forward(opts.child.as_deref(), libc::SIGTERM, &mut forwarded) {
                    break Stop::Signal;
                }
            }
            status = wait_child => break Stop::Exited(status?),
            () = deadline => break Stop::Deadline,
        }
    };
    // What the kernel sent before the stop, within a bound: monitored cgroups other
    // than a stopped command's may keep producing.
    for _ in 0..16 {
        if !drain(agent, ring.get_mut()) {
            break;
        }
    }
    let done = agent.check_counters();
    survive(agent, "counters", done);
    let done = agent.flush_aggregates(true);
    survive(agent, "flush_repeats", done);
    agent.flush()?;
    Ok(stop)
}

/// Reads the request line (within a second) and writes the metrics.
async fn answer_scrape(mut stream: tokio::net::TcpStream, body: String) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(1), async {
        tokio::io::BufReader::new(&mut stream)
            .read_line(&mut line)
            .await
    })
    .await;
    if matches!(read, Ok(Ok(_))) {
        let response = crate::output::metrics::http_response(&line, &body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// Applies the selectors to the cgroup tree as it is now. Records of a cgroup's
/// processes reach the ring buffer before its directory can go, so they are handled
/// first, while its path is still known; state directories that appeared meanwhile are
/// watched from now on.
fn rescan(
    agent: &mut Agent,
    ring: &mut RingBuf<MapData>,
    watch: Option<&mut AsyncFd<crate::engines::watch::Watcher>>,
) -> anyhow::Result<()> {
    drain(agent, ring);
    if let Some(w) = watch
        && let Err(e) = w.get_mut().watch_new_state_roots(&agent.state_dirs())
    {
        log::warn!("cannot watch a runtime state directory: {e}");
    }
    agent.rescan()
}

/// Records handled per turn of the loop: a storm must not starve signals, the control
/// socket, counters and flushes.
const DRAIN_BATCH: usize = 65_536;

/// Handles up to [`DRAIN_BATCH`] records; returns whether more may be waiting. A
/// record that cannot be handled is a fault; the next one is handled all the same.
fn drain(agent: &mut Agent, ring: &mut RingBuf<MapData>) -> bool {
    for _ in 0..DRAIN_BATCH {
        let Some(item) = ring.next() else {
            return false;
        };
        let done = agent.handle_record(&item);
        drop(item);
        survive(agent, "record", done);
    }
    true
}

/// Counts a failed step of the loop as a fault instead of ending the loop: the step
/// runs again on the next turn.
fn survive(agent: &mut Agent, cause: &'static str, done: anyhow::Result<()>) {
    if let Err(e) = done {
        agent.fault(cause, &e);
    }
}

/// Forwards a signal to the command run by `exec`. The first two are passed on as they
/// are; a third kills it. Returns false when there is no command (the agent stops).
fn forward(child: Option<&Child>, sig: i32, forwarded: &mut u32) -> bool {
    let Some(pid) = child.and_then(Child::id) else {
        return child.is_some();
    };
    *forwarded += 1;
    let sig = if *forwarded > 2 { libc::SIGKILL } else { sig };
    // SAFETY: kill(2) on our own child's pid with a valid signal.
    unsafe { libc::kill(pid as i32, sig) };
    true
}

/// Loads the profiles again; a bad set keeps the running profiles and says why.
fn reload(agent: &mut Agent, path: &Path) -> Result<(), String> {
    let result = match policy::load_path(path) {
        Err(errors) => Err(format!(
            "reload refused, keeping the running profiles:\n{errors}"
        )),
        Ok(profiles) => agent
            .install({
                policy::lint::log_warnings(&profiles);
                profiles
            })
            .map_err(|e| format!("reload refused, keeping the running profiles: {e:#}")),
    };
    if result.is_ok() {
        log::info!("reloaded profiles from {}", path.display());
        if let Err(e) = agent.rescan() {
            log::error!("applying reloaded selectors: {e:#}");
        }
    }
    // Parsing and compiling a large profile set peaks far above what the agent keeps.
    crate::host::release_free_memory();
    result
}
