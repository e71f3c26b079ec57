//! The posture of containers as `cgwarden posture` prints it: one table per
//! container, one row per check (id, verdict, title, evidence), and the total.

use std::fmt::Write as _;

use super::Posture;
use crate::engines::Identity;

/// The tables of `containers`, one after the other.
pub fn render(containers: &[(Identity, Posture)]) -> String {
    let mut out = String::new();
    if containers.is_empty() {
        out.push_str("no containers found\n");
    }
    for (who, posture) in containers {
        let c = &who.container;
        let _ = writeln!(
            out,
            "{} container {} ({}){}",
            c.runtime,
            c.name.as_deref().unwrap_or("no name"),
            &c.id[..c.id.len().min(12)],
            c.image
                .as_deref()
                .map(|i| format!(", image {i}"))
                .unwrap_or_default()
        );
        let title_width = posture
            .checks
            .iter()
            .map(|f| f.title.len())
            .max()
            .unwrap_or(0);
        for f in &posture.checks {
            let _ = write!(
                out,
                "  {:<5} {:<7} {:<title_width$}",
                f.id.id(),
                f.verdict.as_str().to_ascii_uppercase(),
                f.title,
            );
            for (i, e) in f.evidence.iter().enumerate() {
                if i > 0 {
                    let _ = write!(out, "\n  {:<5} {:<7} {:<title_width$}", "", "", "");
                }
                let _ = write!(out, "  {e}");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "  {} ({} fail, {} unknown)\n",
            posture.score, posture.failed, posture.unknown
        );
    }
    out
}
