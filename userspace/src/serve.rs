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
}

/// What the loop watches besides the ring buffer.
pub struct Options<'a> {
    /// Profile file or directory to reload on SIGHUP.
    pub policy: &'a Path,
    /// Apply selectors to the cgroup tree on every tick (`run`).
    pub rescan: bool,
    /// With `rescan`: also apply them as soon as inotify sees a cgroup or container
    /// appear (the tick's walk becomes a backstop).
    pub watch: bool,
    /// The command run by `exec`; signals are forwarded to it instead of stopping.
    pub child: Option<&'a mut Child>,
    /// The control socket (`run`).
    pub control: Option<&'a ControlSocket>,
    /// The Prometheus metrics listener (`run`).
    pub metrics: Option<&'a TcpListener>,
}

const TICK: Duration = Duration::from_millis(100);
/// With inotify watches in place, the full walk of the cgroup tree is only a backstop.
const BACKSTOP_WALK: Duration = Duration::from_secs(1);
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
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut forwarded = 0u32;
    let mut dns_tick = std::time::Instant::now();
    // New cgroups and containers are applied as their directories appear; the walk on
    // the tick stays as a backstop.
    let mut watch = if opts.rescan && opts.watch {
        match crate::watch::Watcher::new(agent.cgroup_root(), agent.runc_roots())
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
                    // Records of a cgroup's processes reach the ring buffer before its
                    // directory can go: handle them while its path is still known.
                    drain(agent, ring.get_mut())?;
                    last_walk = std::time::Instant::now();
                    agent.rescan()?;
                    agent.flush()?;
                }
            }
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(agent, guard.get_inner_mut())?;
                guard.clear_ready();
                agent.flush()?;
            }
            _ = drain_tick.tick() => {
                drain(agent, ring.get_mut())?;
                agent.flush()?;
            }
            _ = tick.tick() => {
                if opts.rescan
                    && (watch.is_none()
                        || last_walk.elapsed() >= BACKSTOP_WALK
                        || agent.oci_changed())
                {
                    drain(agent, ring.get_mut())?;
                    last_walk = std::time::Instant::now();
                    agent.rescan()?;
                }
                agent.check_counters()?;
                agent.remove_retired()?;
                agent.sweep_inherited()?;
                agent.flush_aggregates(false)?;
                if dns_tick.elapsed() >= Duration::from_secs(1) {
                    dns_tick = std::time::Instant::now();
                    agent.dns_upkeep()?;
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
                    Ok((Command::Follow(filter), stream)) => {
                        agent.follow(control::start_following(stream, filter));
                    }
                    Ok((command, mut stream)) => {
                        let answer = match command {
                            Command::Reload => match reload(agent, opts.policy) {
                                Ok(()) => serde_json::json!({ "ok": true, "profiles": agent.profile_names() }),
                                Err(e) => control::error_json(&e),
                            },
                            Command::Status => agent.status(),
                            Command::Follow(_) => unreachable!("handled above"),
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
        }
    };
    drain(agent, ring.get_mut())?;
    agent.check_counters()?;
    agent.flush_aggregates(true)?;
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
        let response = crate::metrics::http_response(&line, &body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

fn drain(agent: &mut Agent, ring: &mut RingBuf<MapData>) -> anyhow::Result<()> {
    while let Some(item) = ring.next() {
        agent.handle_record(&item)?;
    }
    Ok(())
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
            .install(profiles)
            .map_err(|e| format!("reload refused, keeping the running profiles: {e:#}")),
    };
    if result.is_ok() {
        log::info!("reloaded profiles from {}", path.display());
        if let Err(e) = agent.rescan() {
            log::error!("applying reloaded selectors: {e:#}");
        }
    }
    result
}
