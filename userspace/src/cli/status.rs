//! `cgwarden status`: the running agent's profiles, monitored cgroups and counters.

use std::path::PathBuf;

use cgwarden::{control, error::code};

use super::{Output, reload::request};

/// Show the running agent's profiles, monitored cgroups and counters.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = control::DEFAULT_SOCKET)]
    pub control: PathBuf,
    /// `table` for a person, `json` for a program (every field).
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: Output,
}

/// `cgwarden status`: the running agent's state, as JSON or for a person.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let (socket, json) = (args.control.as_path(), args.output == Output::Json);
    if json {
        return request(socket, control::Command::Status {});
    }
    let answer = control::request(socket, control::Command::Status {})?;
    if answer["ok"].as_bool() != Some(true) {
        eprintln!(
            "{}",
            answer["error"].as_str().unwrap_or("the agent refused")
        );
        return Ok(i32::from(code::FOUND));
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
