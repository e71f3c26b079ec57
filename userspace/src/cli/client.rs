//! Commands that do not load eBPF programs themselves: `check`, and the clients of a
//! running agent (`reload`, `status`, `events`), and `uninstall`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cgwarden::{bpf, control, host, policy};

/// Validates profiles; 0 when all are valid.
pub fn check(paths: &[PathBuf]) -> i32 {
    let mut failed = false;
    for path in paths {
        match policy::load_path(path) {
            Ok(profiles) => {
                for p in profiles {
                    println!("{}: profile `{}` is valid", p.source.display(), p.name);
                    for w in policy::lint::warnings(&p) {
                        eprintln!("{}: warning: {w}", p.source.display());
                    }
                }
            }
            Err(errors) => {
                failed = true;
                eprintln!("{errors}");
            }
        }
    }
    i32::from(failed)
}

/// Sends a command to the running agent and prints its answer; 0 when it says ok.
pub fn request(socket: &Path, command: control::Command) -> anyhow::Result<i32> {
    let answer = control::request(socket, command)?;
    let ok = answer["ok"].as_bool() == Some(true);
    match answer["error"].as_str() {
        Some(error) if !ok => eprintln!("{error}"),
        _ => println!("{}", serde_json::to_string_pretty(&answer)?),
    }
    Ok(i32::from(!ok))
}

/// `cgwarden status`: the running agent's state, as JSON or for a person.
pub fn status(socket: &Path, json: bool) -> anyhow::Result<i32> {
    if json {
        return request(socket, control::Command::Status {});
    }
    let answer = control::request(socket, control::Command::Status {})?;
    if answer["ok"].as_bool() != Some(true) {
        eprintln!(
            "{}",
            answer["error"].as_str().unwrap_or("the agent refused")
        );
        return Ok(1);
    }
    print!("{}", status_table(&answer));
    Ok(0)
}

/// The status answer for a person: the agent, its kernel features, each profile with
/// its counters, losses, faults (sinks included), containers and gate.
fn status_table(s: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cgwarden {} (build {}), up {}, cgroup2 at {}",
        s["version"].as_str().unwrap_or("?"),
        s["build_id"].as_str().unwrap_or("?"),
        humantime::format_duration(std::time::Duration::from_secs(n(&s["uptime_s"]))),
        s["cgroup2"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "kernel: credential layout {}",
        match s["credentials"]["ok"].as_bool() {
            Some(true) => "found (uid, capability and no-new-privileges checks on)".to_owned(),
            _ => format!(
                "not found: {}",
                s["credentials"]["error"].as_str().unwrap_or("unknown")
            ),
        }
    );
    let c = &s["counters"];
    let _ = writeln!(
        out,
        "egress: {} judged, {} denied; ring buffer: {} records lost",
        n(&c["egress_checked"]),
        n(&c["egress_denied"]),
        n(&c["ringbuf_drops"])
    );
    let profiles = s["profiles"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "
profiles ({}):",
        profiles.len()
    );
    let _ = writeln!(
        out,
        "  {:<24} {:<8} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}  source",
        "name", "mode", "egress", "names", "cgroups", "denied", "audited", "reported"
    );
    for p in &profiles {
        let events = &p["events"];
        let _ = writeln!(
            out,
            "  {:<24} {:<8} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}  {}",
            p["name"].as_str().unwrap_or("?"),
            p["mode"].as_str().unwrap_or("?"),
            n(&p["egress_entries"]),
            n(&p["dns_names"]),
            p["cgroups"].as_array().map_or(0, Vec::len),
            n(&events["deny"]),
            n(&events["audit"]),
            n(&events["allow"]) + n(&events["report"]),
            p["source"].as_str().unwrap_or("?"),
        );
        for failing in p["posture_failing"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "    posture failing: {} ({})",
                failing["cgroup"].as_str().unwrap_or("?"),
                failing["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let posture = &s["posture"];
    let _ = writeln!(
        out,
        "
containers: {} known; posture: {}",
        n(&s["oci_containers"]),
        if posture["enabled"].as_bool() == Some(true) {
            format!(
                "{} checked, {} failing a check",
                n(&posture["containers"]),
                n(&posture["failing"])
            )
        } else {
            "off".to_owned()
        }
    );
    let gate = &s["gate"];
    let parents: Vec<&str> = gate["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .collect();
    let _ = writeln!(
        out,
        "gate: {}; {} held now, {} released",
        if parents.is_empty() {
            "none".to_owned()
        } else {
            parents.join(", ")
        },
        n(&gate["held"]),
        n(&gate["released"])
    );
    for sink in s["sinks"].as_array().into_iter().flatten() {
        let dropped = n(&sink["dropped_queue_full"])
            + n(&sink["dropped_failed"])
            + n(&sink["dropped_refused"]);
        let _ = writeln!(
            out,
            "sink {}: {} delivered, {} dropped ({} queue full, {} after retries, {} refused), {} queued{}",
            sink["target"].as_str().unwrap_or("?"),
            n(&sink["delivered"]),
            dropped,
            n(&sink["dropped_queue_full"]),
            n(&sink["dropped_failed"]),
            n(&sink["dropped_refused"]),
            n(&sink["queued"]),
            sink["last_error"]
                .as_str()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        );
    }
    let faults = s["faults"].as_object().cloned().unwrap_or_default();
    if faults.is_empty() {
        let _ = writeln!(out, "faults: none (every sink writing)");
    } else {
        let list: Vec<String> = faults
            .iter()
            .map(|(k, v)| format!("{k} ×{}", n(v)))
            .collect();
        let _ = writeln!(out, "faults: {}", list.join(", "));
    }
    out
}

/// Prints every container's posture (or one's): the running agent's, or with no agent
/// running, decided here from the host's engines.
pub fn posture(
    socket: &Path,
    container: Option<&str>,
    json: bool,
    runtime_sockets: &[PathBuf],
) -> anyhow::Result<i32> {
    use std::io::ErrorKind;
    let agent = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => true,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => false,
        Err(e) => anyhow::bail!("cannot reach the agent at {}: {e}", socket.display()),
    };
    let mut containers: Vec<serde_json::Value> = if agent {
        let answer = control::request(socket, control::Command::Posture {})?;
        if answer["enabled"].as_bool() == Some(false) {
            anyhow::bail!("the running agent does not check postures (it runs with --no-posture)");
        }
        answer["containers"].as_array().cloned().unwrap_or_default()
    } else {
        local_postures(runtime_sockets)?
    };
    if let Some(wanted) = container {
        containers.retain(|c| {
            let who = &c["container"];
            who["name"].as_str() == Some(wanted)
                || who["id"].as_str().is_some_and(|id| id.starts_with(wanted))
        });
        if containers.is_empty() {
            eprintln!("no container {wanted} is known");
            return Ok(1);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&containers)?);
    } else {
        print!("{}", cgwarden::posture::table::render(&containers));
    }
    Ok(0)
}

/// Every container's posture, decided from the engines' state on this host.
fn local_postures(extra_sockets: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    use cgwarden::posture::{Posture, facts};
    let cgroup2 = cgwarden::host::cgroups::find_cgroup2_mount(Path::new("/proc/self/mountinfo"))
        .context("finding the cgroup2 mount")?;
    let mut known = cgwarden::engines::known::Known::new(cgwarden::engines::Dirs::default());
    known.refresh(&cgroup2);
    let mut sockets: Vec<PathBuf> = cgwarden::policy::syscalls::RUNTIME_SOCKETS
        .iter()
        .map(PathBuf::from)
        .collect();
    sockets.extend_from_slice(extra_sockets);
    let host = facts::Host::new(&sockets);
    let mut all: Vec<_> = known
        .oci()
        .map(|c| {
            let posture = Posture::evaluate(&facts::Facts::gather(c, known.dirs(), &host));
            cgwarden::posture::assessed_json(&c.identity, c.cgroup.as_deref(), &posture)
        })
        .collect();
    all.sort_by_key(|c| {
        (
            c["container"]["name"].to_string(),
            c["container"]["id"].to_string(),
        )
    });
    Ok(all)
}

/// Copies the live event stream to standard output.
pub fn follow(socket: &Path, filter: control::Filter) -> anyhow::Result<i32> {
    control::follow(socket, filter, &mut std::io::stdout())?;
    Ok(0)
}

/// Removes every pin under the state directory.
pub fn uninstall(state_dir: &Path) -> anyhow::Result<i32> {
    host::prepare()?;
    if bpf::uninstall(state_dir).with_context(|| format!("removing {}", state_dir.display()))? {
        println!(
            "removed every link and map pinned in {}",
            state_dir.display()
        );
    } else {
        println!("nothing is pinned in {}", state_dir.display());
    }
    Ok(0)
}

/// Prints the per-container report of an events file.
pub fn report(events: Option<&Path>, json: bool) -> anyhow::Result<i32> {
    use std::io::BufReader;
    let report = match events {
        Some(path) if path != Path::new("-") => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            cgwarden::report::build(BufReader::new(file))?
        }
        _ => cgwarden::report::build(std::io::stdin().lock())?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", cgwarden::report::render(&report));
    }
    Ok(0)
}

/// Prints a profile made from an OCI runtime config.
pub fn from_oci(config: &Path, name: &str) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config.display()))?;
    let h = cgwarden::policy::import::from_oci(&value);
    print!(
        "{}",
        cgwarden::policy::import::profile_yaml(
            name,
            &format!("{} (OCI runtime config)", config.display()),
            &h
        )
    );
    Ok(0)
}

/// Prints a profile made from a Compose service.
pub fn from_compose(compose: &Path, service: &str, project: Option<&str>) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(compose)
        .with_context(|| format!("reading {}", compose.display()))?;
    let value: serde_json::Value = cgwarden::yaml::from_foreign_str(&text)
        .map_err(|e| anyhow::anyhow!("{}:{e}", compose.display()))?;
    let project = cgwarden::policy::import::compose_project(compose, &value, project);
    let h = cgwarden::policy::import::from_compose(&value, &project, service)
        .map_err(anyhow::Error::msg)?;
    print!(
        "{}",
        cgwarden::policy::import::profile_yaml(
            service,
            &format!("service `{service}` of {}", compose.display()),
            &h
        )
    );
    Ok(0)
}

/// Reads an events file (`-` or unset: standard input); lines that are not JSON are
/// skipped.
fn read_records(events: Option<&Path>) -> anyhow::Result<Vec<serde_json::Value>> {
    use std::io::{BufRead, BufReader};
    let reader: Box<dyn BufRead> = match events {
        Some(path) if path != Path::new("-") => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut records = Vec::new();
    for line in reader.lines() {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line?) {
            records.push(value);
        }
    }
    Ok(records)
}

/// Writes the profile learned from an events file (merged into an existing one when
/// asked).
pub fn learn(
    events: Option<&Path>,
    learning: &cgwarden::exec::Learning<'_>,
) -> anyhow::Result<i32> {
    let records = read_records(events)?;
    let origin = events.map_or("standard input".to_owned(), |p| p.display().to_string());
    // An events file holds only what its profile reported: devices and credentials
    // outside it were never recorded, so they are not learned from it.
    cgwarden::exec::write_learned(
        learning,
        &origin,
        &records,
        cgwarden::learn::Watched::default(),
        &[],
        None,
    )?;
    Ok(0)
}

/// Lists what `profile` would deny or report for the records of an events file; 1 when
/// anything would be denied.
pub fn check_events(
    events: Option<&Path>,
    profile: &Path,
    format: cgwarden::learn::check::Format,
) -> anyhow::Result<i32> {
    let profiles = policy::load_path(profile).map_err(|e| anyhow::anyhow!("{e}"))?;
    let [p] = <[_; 1]>::try_from(profiles).map_err(|p: Vec<_>| {
        anyhow::anyhow!(
            "exactly one profile is needed; {} has {}",
            profile.display(),
            p.len()
        )
    })?;
    let records = read_records(events)?;
    let findings = cgwarden::learn::check::against(&p, &records);
    print!(
        "{}",
        cgwarden::learn::check::report(
            &findings,
            p.name.as_str(),
            profile,
            "the events file judged against it; names it lists are not resolved",
            format,
        )
    );
    Ok(i32::from(findings.failed()))
}
