//! `cgwarden learn --select`: learn the containers a selector picks (the selector
//! syntax of profiles), each from its first process. It waits for the next matching
//! container, holds its first exec at the gate until the learning profile is on its
//! cgroup, and learns until the duration has passed since then, the container exits,
//! or Ctrl-C. By default only the first matching container is learned (later ones
//! start unmonitored). With `--each`, every matching container that starts in the
//! window is learned into files of its own (`web.yaml` → `web-<container>.yaml`, the
//! same for the seccomp profile and every `--export`), whose profile selects that
//! container by name; with `--merge-all`, all of them into one profile. A profile
//! written for one container or for all selects what `--select` selected.
//!
//! It refuses to run beside a `cgwarden run` agent: both would hold and release new
//! containers at their gates, and one's release would let a container run before the
//! other had its profile in place.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    agent::{Agent, Claimed, Claims},
    bpf::Kernel,
    dns::resolver::Resolver,
    exec::{Learning, write_learned},
    host,
    learn::{self, progress::Progress},
    output::Sinks,
    serve::{self, Options, Stop},
};

/// What `learn --select` was asked.
pub struct Selected<'a> {
    /// The selector, as YAML (`{compose: {project: shop, service: web}}`).
    pub selector: &'a str,
    /// How long to learn, from the first container's first process.
    pub duration: Duration,
    /// How long to wait for a matching container.
    pub wait: Duration,
    /// Which of several matching containers are learned, and into what.
    pub many: Many,
    /// The running agent's control socket, to refuse to run beside it.
    pub control: &'a Path,
}

/// What `learn --select` does when several containers match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Many {
    /// The first one only; later ones start unmonitored.
    First,
    /// Every one, each into its own files.
    Each,
    /// Every one, into one profile.
    Merge,
}

/// The selector as one line of YAML (JSON), or why it is no selector.
pub fn selector_line(text: &str) -> anyhow::Result<String> {
    let value: serde_json::Value = crate::yaml::from_str(text)
        .map_err(|e| anyhow::anyhow!("--select {text:?} is not YAML: {e}"))?;
    anyhow::ensure!(
        value.is_object(),
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
    agent.claim(Claims::new(s.many == Many::First));
    agent.rescan()?;
    agent.kernel_mut().attach(&host.cgroup2)?;
    let signals = serve::Signals::install()?;
    let waiting_for = format!("a container matching {selector}");
    log::warn!(
        "waiting for {waiting_for} (up to {}), then learning for {}{}",
        humantime::format_duration(s.wait),
        humantime::format_duration(s.duration),
        match s.many {
            Many::First => ", the first matching container only",
            Many::Each => ", every matching container into files of its own",
            Many::Merge => ", every matching container into one profile",
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
            until_claims_gone: s.many == Many::First,
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
    match stop {
        Stop::Signal => log::warn!("interrupted: writing what was seen so far"),
        Stop::Gone => log::warn!("the container ended"),
        _ => {}
    }
    let records: Vec<serde_json::Value> = agent
        .recorded()
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let watched = learn::Watched {
        devices: true,
        creds,
    };
    if s.many != Many::Each {
        let learned: Vec<String> = claims.claimed.iter().map(describe).collect();
        eprintln!("learned from {}", learned.join(", "));
        let used = agent.syscalls_used(&name, None);
        let origin = format!("{} (selected by {selector})", learned.join(", "));
        let learning = Learning {
            selector: Some(&selector),
            ..learning
        };
        write_learned(&learning, &origin, &records, watched, &[], Some(&used))?;
        return Ok(0);
    }
    for (n, claimed) in claims.claimed.iter().enumerate() {
        let label = file_label(claimed, n);
        let own: Vec<serde_json::Value> = records
            .iter()
            .filter(|r| of_cgroup(r, &claimed.path))
            .cloned()
            .collect();
        let used = agent.syscalls_used(&name, Some(claimed.id));
        let profile_out = learning.profile_out.map(|p| with_label(p, &label));
        let seccomp_out = learning.seccomp_out.map(|p| with_label(p, &label));
        let exports: Vec<_> = learning
            .exports
            .iter()
            .map(|e| e.to_file(with_label(&e.path, &label)))
            .collect();
        let own_selector = own_selector(claimed).unwrap_or_else(|| selector.clone());
        let profile_name = format!("{}-{label}", learning.name);
        let one = Learning {
            name: &profile_name,
            profile_out: profile_out.as_deref(),
            seccomp_out: seccomp_out.as_deref(),
            merge: None,
            selector: Some(&own_selector),
            kubelet: learning.kubelet,
            exports: &exports,
            pod_labels: learning.pod_labels,
        };
        let origin = format!("{} (selected by {selector})", describe(claimed));
        write_learned(&one, &origin, &own, watched, &[], Some(&used))?;
        eprintln!(
            "learned from {}: {}{}{}",
            describe(claimed),
            profile_out.map_or("standard output".into(), |p| p.display().to_string()),
            seccomp_out.map_or(String::new(), |p| format!(", {}", p.display())),
            exports
                .iter()
                .map(|e| format!(", {}", e.path.display()))
                .collect::<String>()
        );
    }
    Ok(0)
}

/// A claimed container for people: `docker container web (3f2a…)`.
fn describe(c: &Claimed) -> String {
    match &c.who {
        Some(w) => format!(
            "{} container {} ({})",
            w.container.runtime,
            w.container.name.as_deref().unwrap_or("with no name"),
            &w.container.id[..w.container.id.len().min(12)]
        ),
        None => format!("cgroup {}", c.path),
    }
}

/// What names a container's own files: its name, else its short id, else its place.
fn file_label(c: &Claimed, n: usize) -> String {
    let raw = match &c.who {
        Some(w) => w
            .container
            .name
            .clone()
            .unwrap_or_else(|| w.container.id[..w.container.id.len().min(12)].to_owned()),
        None => format!("{}", n + 1),
    };
    let label: String = raw
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if label.is_empty() {
        format!("{}", n + 1)
    } else {
        label
    }
}

/// `dir/web.yaml` with label `shop-web-1` → `dir/web-shop-web-1.yaml`.
fn with_label(path: &Path, label: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{label}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{label}"),
    };
    path.with_file_name(name)
}

/// The selector of a profile learned for one container: its name, so the profiles
/// learned for several containers do not all select every one of them.
fn own_selector(c: &Claimed) -> Option<String> {
    let name = c.who.as_ref()?.container.name.as_deref()?;
    serde_json::to_string(&serde_json::json!({ "name": name })).ok()
}

/// Whether a record came from the claimed cgroup `path` or one below it.
fn of_cgroup(record: &serde_json::Value, path: &str) -> bool {
    record
        .get("cgroup")
        .and_then(|c| c.as_str())
        .is_some_and(|c| crate::host::cgroups::contains(path, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_containers_files_are_named_after_it() {
        assert_eq!(
            with_label(Path::new("/tmp/web.yaml"), "shop-web-1"),
            Path::new("/tmp/web-shop-web-1.yaml")
        );
        assert_eq!(
            with_label(Path::new("out/profile"), "a"),
            Path::new("out/profile-a")
        );
        let unnamed = Claimed {
            path: "/x".into(),
            id: 1,
            who: None,
        };
        assert_eq!(file_label(&unnamed, 2), "3");
        assert!(own_selector(&unnamed).is_none());
    }

    #[test]
    fn a_containers_records_are_those_of_its_cgroup_and_below() {
        let r = |c: &str| serde_json::json!({ "cgroup": c });
        assert!(of_cgroup(&r("/docker/abc"), "/docker/abc"));
        assert!(of_cgroup(&r("/docker/abc/init"), "/docker/abc"));
        assert!(!of_cgroup(&r("/docker/abcd"), "/docker/abc"));
        assert!(!of_cgroup(&serde_json::json!({}), "/docker/abc"));
    }
}
