//! The markdown report of `bench egress`: every configuration against (a), the load
//! times of 100,000 CIDRs, and the targets.

use std::fmt::Write as _;

use super::{
    BIG, CONNECT_TARGET, Config, JUDGED, Kind, LOAD_TARGET_S, ROUNDS, Settings, UDP_TARGET,
    measure::Sample,
};
use crate::bench::{
    judge::{Target, interval_text},
    util::{RunFacts, max, median, min, thousands},
};

/// Configuration `i`'s figure `of` over (a)'s in the same repetition, per repetition.
pub(super) fn ratios(samples: &[Vec<Sample>], i: usize, of: fn(&Sample) -> f64) -> Vec<f64> {
    let (Some(base), Some(v)) = (samples.first(), samples.get(i)) else {
        return Vec::new();
    };
    v.iter().zip(base).map(|(x, b)| of(x) / of(b)).collect()
}

/// A row of the targets table: the median, its 95% interval, how many repetitions it
/// took to decide, and the verdict.
fn target_row(o: &mut String, what: &str, values: &[f64], t: Target, min_reps: usize, unit: &str) {
    let decided = t.decided_after(values, min_reps).map_or_else(
        || format!("not decided in {}", values.len()),
        |n| format!("{n} of {}", values.len()),
    );
    let _ = writeln!(
        o,
        "| {what} | {:.3}{unit} ({}) | {decided} | {} |",
        median(values),
        interval_text(values, |x| format!("{x:.3}")),
        t.judge(values).text()
    );
}

pub(super) struct Report<'a> {
    pub(super) audit: String,
    pub(super) settings: &'a Settings,
    pub(super) configs: &'a [Config],
    pub(super) samples: &'a [Vec<Sample>],
    pub(super) agent_load_ms: &'a [f64],
    pub(super) big_entries: u64,
    pub(super) wall_small: &'a [f64],
    pub(super) wall_big: &'a [f64],
    pub(super) wall_diff: &'a [f64],
    pub(super) check_diff: &'a [f64],
    pub(super) nft_load_s: &'a [f64],
    /// When the bench ran, and the load around it.
    pub(super) run: RunFacts,
}

impl Report<'_> {
    pub(super) fn render(&self) -> String {
        let s = self.settings;
        let mut o = String::new();
        self.run.head(&mut o, "Egress: `cargo xtask bench egress`");
        let _ = writeln!(o, "- audit: {}", self.audit);
        self.run.load_line(
            &mut o,
            " (the bench itself keeps one CPU busy; more means something else competed)",
        );
        let _ = writeln!(
            o,
            "- method: {} repetitions (at least {}, more while a target was undecided); each runs every configuration once, in an order \
             rotated by one each repetition. One run = one `connbench` process: {} × \
             (TCP connect to its own listener on 127.0.0.1, accept, close) and {} × \
             unconnected UDP `sendto` (64 bytes) to its own socket on 127.0.0.1, each after \
             a 10% untimed warm-up and timed in {ROUNDS} rounds; a run's value is its median \
             round. Shown: the median over the repetitions of those values (best run in \
             brackets); \"vs (a)\" is the median of the per-repetition ratios to (a) of the \
             same repetition, with their range. The whole bench took {:.0} s.",
            self.samples.first().map_or(0, Vec::len),
            s.reps,
            s.tcp,
            s.udp,
            self.run.took.as_secs_f64()
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "| configuration | connect+accept+close (µs) | vs (a) | UDP sendto (datagrams/s) | vs (a) |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|");
        let mut connect_ratio = Vec::new();
        for (i, (c, v)) in self.configs.iter().zip(self.samples).enumerate() {
            let conn: Vec<f64> = v.iter().map(|x| x.connect_ns / 1e3).collect();
            let udp: Vec<f64> = v.iter().map(|x| x.udp_pps).collect();
            let rc = ratios(self.samples, i, |s| s.connect_ns);
            let ru = ratios(self.samples, i, |s| s.udp_pps);
            connect_ratio.push(median(&rc));
            let ratio = |r: &[f64]| {
                if c.kind == Kind::Plain {
                    "1".to_owned()
                } else {
                    format!(
                        "{:.3} ({:+.1}%; {:.2}–{:.2})",
                        median(r),
                        (median(r) - 1.0) * 100.0,
                        min(r),
                        max(r)
                    )
                }
            };
            let _ = writeln!(
                o,
                "| ({}) {} | {:.2} [{:.2}] | {} | {} [{}] | {} |",
                c.key,
                c.label,
                median(&conn),
                min(&conn),
                ratio(&rc),
                thousands(median(&udp)),
                thousands(max(&udp)),
                ratio(&ru),
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "Load time of {} CIDRs:\n", thousands(BIG as f64));
        let _ = writeln!(o, "| what | median | min | max | runs |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|");
        let ms_row = |o: &mut String, what: &str, v: &[f64]| {
            let _ = writeln!(
                o,
                "| {what} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                median(v),
                min(v),
                max(v),
                v.len()
            );
        };
        let to_ms = |v: &[f64]| v.iter().map(|x| x * 1e3).collect::<Vec<f64>>();
        ms_row(
            &mut o,
            &format!(
                "cgwarden: compile + load, agent log (`compiled and loaded in`, {} entries)",
                self.big_entries
            ),
            self.agent_load_ms,
        );
        ms_row(
            &mut o,
            "cgwarden: wall time of `exec --policy <100,000 rules> -- true`",
            &to_ms(self.wall_big),
        );
        ms_row(
            &mut o,
            "cgwarden: wall time of `exec --policy <1 rule> -- true`",
            &to_ms(self.wall_small),
        );
        ms_row(
            &mut o,
            "cgwarden: difference of the two (parse + compile + load + teardown), paired",
            &to_ms(self.wall_diff),
        );
        ms_row(
            &mut o,
            "cgwarden: of which parse + validate (`check` wall time, 100,000 − 1 rule, paired)",
            &to_ms(self.check_diff),
        );
        ms_row(
            &mut o,
            "nftables: `nft -f` of the table with the 100,000-element interval set",
            &to_ms(self.nft_load_s),
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Targets (issue #15), each judged on the 95% confidence interval of its median \
             (order statistics): met when the interval lies wholly on the target's side, \
             missed when wholly on the other; the bench repeats (up to {} repetitions) while \
             an interval spans its target. \"Decided after\" is how many repetitions it took \
             for the verdict to hold from then on.\n",
            s.max_reps
        );
        let _ = writeln!(
            o,
            "| target | median (95% interval) | decided after | met |"
        );
        let _ = writeln!(o, "|---|---:|---:|---|");
        for i in JUDGED {
            let label = self.configs.get(i).map_or("?", |c| c.label);
            target_row(
                &mut o,
                &format!("{label}: connect+accept+close ≤ 1.02× (a)"),
                &ratios(self.samples, i, |s| s.connect_ns),
                CONNECT_TARGET,
                s.reps,
                "×",
            );
            target_row(
                &mut o,
                &format!("{label}: UDP sendto ≥ 0.97× (a)"),
                &ratios(self.samples, i, |s| s.udp_pps),
                UDP_TARGET,
                s.reps,
                "×",
            );
        }
        target_row(
            &mut o,
            "a 100,000-CIDR profile: parse + compile + load end to end (`exec` wall-time difference, adds teardown) < 0.3 s",
            self.wall_diff,
            LOAD_TARGET_S,
            s.reps,
            " s",
        );
        let load = median(self.agent_load_ms);
        let _ = writeln!(
            o,
            "\nOf the end-to-end figure, compile + load (agent log) took {load:.0} ms and parse + validate {:.0} ms (medians).",
            median(self.check_diff) * 1e3
        );
        let nft_r = connect_ratio.get(3).copied().unwrap_or(f64::NAN);
        let _ = writeln!(
            o,
            "\nFor comparison, nftables (d) in the same run: {:+.1}% on connect, set loaded in {:.0} ms (median).",
            (nft_r - 1.0) * 100.0,
            median(self.nft_load_s) * 1e3
        );
        o
    }
}
