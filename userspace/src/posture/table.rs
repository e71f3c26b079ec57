//! The posture of containers as `cgwarden posture` prints it: one table per
//! container, one row per check (id, verdict, title, evidence), and the total. It
//! reads the JSON form ([`super::assessed_json`]), the same whether the running agent
//! or the command itself decided the checks.

use std::fmt::Write as _;

use serde_json::Value;

/// The tables of `containers`, one after the other.
pub fn render(containers: &[Value]) -> String {
    let mut out = String::new();
    if containers.is_empty() {
        out.push_str("no containers found\n");
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    for c in containers {
        let who = &c["container"];
        let id = s(&who["id"]);
        let _ = writeln!(
            out,
            "{} container {} ({}){}",
            s(&who["runtime"]),
            who["name"].as_str().unwrap_or("with no name"),
            &id[..id.len().min(12)],
            who["image"]
                .as_str()
                .map(|i| format!(", image {i}"))
                .unwrap_or_default()
        );
        let checks = c["posture"]["checks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for f in &checks {
            let _ = writeln!(
                out,
                "  {:<5} {:<7} {}",
                s(&f["id"]),
                s(&f["verdict"]).to_ascii_uppercase(),
                s(&f["title"]),
            );
            for e in f["evidence"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "                {}: {}  ({})",
                    s(&e["key"]),
                    s(&e["value"]),
                    s(&e["file"])
                );
            }
        }
        let p = &c["posture"];
        let _ = writeln!(
            out,
            "  {} ({} fail, {} unknown)\n",
            s(&p["score"]),
            p["failed"],
            p["unknown"]
        );
    }
    out
}
