//! `cgwarden learn --select`: learn the containers a selector picks (the selector
//! syntax of profiles), each from its first process. It waits for the next matching
//! container, holds its first exec at the gate until the learning profile is on its
//! cgroup, and learns until the duration has passed since then, the container exits,
//! or Ctrl-C. By default only the first matching container is learned (later ones
//! start unmonitored); with `--merge-all`, every matching container that starts in the
//! window, into one profile. The profile written selects what `--select` selected.
//!
//! It refuses to run beside a `cgwarden run` agent: both would hold and release new
//! containers at their gates, and one's release would let a container run before the
//! other had its profile in place.

use std::{path::Path, time::Duration};

use anyhow::Context as _;

use crate::{
    agent::{Agent, Claims},
    bpf::Kernel,
    exec::{Learning, write_learned},
    host,
    learn::{self, progress::Progress},
    resolver::Resolver,
    serve::{self, Options, Stop},
    sinks::Sinks,
};

/// What `learn --select` was asked.
pub struct Selected<'a> {
    /// The selector, as YAML (`{compose: {project: shop, service: web}}`).
    pub selector: &'a str,
    /// How long to learn, from the first container's first process.
    pub duration: Duration,
    /// How long to wait for a matching container.
    pub wait: Duration,
    /// Learn every matching container into one profile, not only the first.
    pub merge_all: bool,
    /// The running agent's control socket, to refuse to run beside it.
    pub control: &'a Path,
}

/// The selector as one line of YAML (JSON), or why it is no selector.
pub fn selector_line(text: &str) -> anyhow::Result<String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|e| anyhow::anyhow!("--select {text:?} is not YAML: {e}"))?;
    anyhow::ensure!(
        value.is_mapping(),
        "--select takes a selector as profiles write it, a mapping: `name: web`, `{{compose: {{project: shop, service: web}}}}`, `cgroup: \"/docker/*\"`"
    );
    let json = serde_json::to_string(&value).context("the selector as JSON")?;
    // Parsed as a profile's selector, so it is valid by the same rules.
    learn::learning_profile("selector-check", false, Some(&json))
        .map_err(|e| anyhow::anyhow!("--select {text:?}: {e}"))?;
    Ok(json)
}

/// Refuses when an agent answers on `control`.
fn refuse_beside_agent(control: &Path) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(control).is_ok() {
        anyhow::bail!(
            "a `cgwarden run` agent is running (it answers on {}): learning beside it would fight it over new containers at the gate. Stop the agent to learn with --select, or learn from the agent's own events: give the containers a profile in audit mode with `report: all`, then `cgwarden learn --events FILE`",
            control.display()
        );
    }
    Ok(())
}

/// Runs the learning; returns the exit code (0 when something was learned).
pub async fn run(
    s: Selected<'_>,
    learning: Learning<'_>,
    sinks: Sinks,
    resolver: Resolver,
) -> anyhow::Result<i32> {
    refuse_beside_agent(s.control)?;
    let selector = selector_line(s.selector)?;
    let host = host::prepare()?;
    let mut kernel = Kernel::load(None)?;
    let ring = kernel.take_events().context("event ring buffer")?;
    let mut agent = Agent::new(kernel, host.cgroup2.clone(), sinks, resolver)?;
    agent.set_engine_dirs(crate::engines::Dirs::default());
    agent.set_posture(false);
    agent.set_runtime_sockets(&[])?;
    let creds = crate::exec::learns_credentials(&agent);
    let profile = learn::learning_profile(learning.name, creds, Some(&selector))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = profile.name.as_str().to_owned();
    agent.install(vec![profile])?;
    agent.record_all();
    agent.claim(Claims::new(!s.merge_all));
    agent.rescan()?;
    agent.kernel_mut().attach(&host.cgroup2)?;
    let signals = serve::Signals::install()?;
    let waiting_for = format!("a container matching {selector}");
    log::warn!(
        "waiting for {waiting_for} (up to {}), then learning for {}{}",
        humantime::format_duration(s.wait),
        humantime::format_duration(s.duration),
        if s.merge_all {
            ", every matching container into one profile"
        } else {
            ", the first matching container only"
        }
    );
    let stop = serve::serve(
        &mut agent,
        ring,
        Options {
            policy: Path::new("/dev/null"),
            rescan: true,
            watch: Some(Duration::from_secs(1)),
            child: None,
            control: None,
            metrics: None,
            signals,
            deadline: Some(tokio::time::Instant::now() + s.wait + s.duration),
            while_exists: None,
            until_claims_gone: !s.merge_all,
            learn_for: Some(s.duration),
            progress: Some(Progress::new(s.duration, waiting_for.clone())),
        },
    )
    .await;
    // No container may stay stopped at a gate this run put there.
    agent.release_all_held();
    let stop = stop?;
    let claims = agent.claims().cloned().unwrap_or_default();
    if claims.claimed.is_empty() {
        anyhow::bail!(
            "no container matching {selector} started{}: nothing learned",
            match stop {
                Stop::Signal => " before the interruption".to_owned(),
                _ => format!(" within {}", humantime::format_duration(s.wait)),
            }
        );
    }
    let learned: Vec<String> = claims
        .claimed
        .iter()
        .map(|(path, who)| match who {
            Some(w) => format!(
                "{} container {} ({})",
                w.container.runtime,
                w.container.name.as_deref().unwrap_or("with no name"),
                &w.container.id[..w.container.id.len().min(12)]
            ),
            None => format!("cgroup {path}"),
        })
        .collect();
    match stop {
        Stop::Signal => log::warn!("interrupted: writing what was seen so far"),
        Stop::Gone => log::warn!("the container ended"),
        _ => {}
    }
    eprintln!("learned from {}", learned.join(", "));
    let records: Vec<serde_json::Value> = agent
        .recorded()
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let used = agent.syscalls_used(&name);
    let origin = format!("{} (selected by {selector})", learned.join(", "));
    let learning = Learning {
        selector: Some(&selector),
        ..learning
    };
    write_learned(
        &learning,
        &origin,
        &records,
        learn::Watched {
            devices: true,
            creds,
        },
        &[],
        Some(&used),
    )?;
    Ok(0)
}
