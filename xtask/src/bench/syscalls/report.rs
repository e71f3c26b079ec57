//! The markdown report of `bench syscalls`: the table of every configuration and
//! workload against (a), what each monitor saw of the watched calls, start and stop
//! times, the per-CPU loop, per-program kernel time, the estimate from syscall counts,
//! and the targets.

use std::fmt::Write as _;

use super::{
    ATTEMPTS, Config, FOREIGN_CPU_LIMIT, PAUSE_MS, ROUNDS, Settings, WATCHED_AUDITD_DIV,
    WATCHED_CGWARDEN_DIV,
    measure::{Counts, ExecTimes, ProgCost, Sample, Seen},
};
use crate::bench::{
    judge::{Target, interval_text},
    util::{RunFacts, max, median, min},
};

/// A target of issue #13 and the per-repetition values it is judged on.
pub(super) struct Judged {
    pub(super) what: &'static str,
    pub(super) values: Vec<f64>,
    pub(super) target: Target,
}

/// Per-repetition ratios of configuration `key` over `other` for one workload.
fn paired_values(
    configs: &[Config],
    samples: &[Vec<Sample>],
    key: &str,
    other: &str,
    w: W,
) -> Vec<f64> {
    let (Some(a), Some(b)) = (
        configs.iter().position(|c| c.key == key),
        configs.iter().position(|c| c.key == other),
    ) else {
        return Vec::new();
    };
    samples[a]
        .iter()
        .zip(&samples[b])
        .filter_map(|(x, y)| Some(w.of(x)? / w.of(y)?))
        .collect()
}

/// Issue #13's cost targets on the escape set (d), as ratios in the same repetition;
/// those whose peer did not run (bpftrace) are left out.
pub(super) fn targets(configs: &[Config], samples: &[Vec<Sample>]) -> Vec<Judged> {
    let at_most = |bound| Target {
        bound,
        at_most: true,
    };
    let v = |key, other, w| paired_values(configs, samples, key, other, w);
    [
        Judged {
            what: "unwatched getppid under the escape set (d) within 3% of bpftrace with one tracepoint (e): (d) / (e) ≤ 1.03",
            values: v("d", "e", W::Getppid),
            target: at_most(1.03),
        },
        Judged {
            what: "the same, against bpftrace on both ends of one syscall (j), the hooks a monitor that sees the calls seccomp refused needs: (d) / (j) ≤ 1.03",
            values: v("d", "j", W::Getppid),
            target: at_most(1.03),
        },
        Judged {
            what: "the benign syscall mix under the escape set (d) costs ≤ +3%: (d) / (a) ≤ 1.03",
            values: v("d", "a", W::Mix),
            target: at_most(1.03),
        },
        Judged {
            what: "gcc under the escape set (d) costs ≤ +1%: (d) / (a) ≤ 1.01",
            values: v("d", "a", W::Gcc),
            target: at_most(1.01),
        },
        Judged {
            what: "a watched, reported getppid (c) costs no more than under bpftrace's empty program on the same tracepoint (i): (c) / (i) ≤ 1",
            values: v("c", "i", W::Getppid),
            target: at_most(1.0),
        },
    ]
    .into_iter()
    .filter(|t| !t.values.is_empty())
    .collect()
}

/// A row of the targets table: the median, its 95% interval, how many repetitions it
/// took to decide, and the verdict.
fn target_row(o: &mut String, t: &Judged, min_reps: usize) {
    let decided = t.target.decided_after(&t.values, min_reps).map_or_else(
        || format!("not decided in {}", t.values.len()),
        |n| format!("{n} of {}", t.values.len()),
    );
    let _ = writeln!(
        o,
        "| {} | ×{} ({}) | {decided} | {} |",
        t.what,
        fmt_ratio(median(&t.values)),
        interval_text(&t.values, fmt_ratio),
        t.target.judge(&t.values).text()
    );
}

pub(super) struct Report<'a> {
    pub(super) audit: String,
    pub(super) versions: String,
    pub(super) notes: Vec<String>,
    pub(super) settings: &'a Settings,
    pub(super) configs: &'a [Config],
    pub(super) samples: &'a [Vec<Sample>],
    pub(super) costs: &'a [ProgCost],
    pub(super) counts: Option<Counts>,
    pub(super) exec_times: &'a ExecTimes,
    /// When the bench ran, and the load around it.
    pub(super) run: RunFacts,
}

/// Which workload.
#[derive(Clone, Copy)]
enum W {
    Getppid,
    Mix,
    Gcc,
}

impl W {
    fn of(self, s: &Sample) -> Option<f64> {
        match self {
            W::Getppid => s.getppid_ns,
            W::Mix => s.mix_ns.map(|x| x / 1e3),
            W::Gcc => s.gcc_ms,
        }
    }
}

impl Report<'_> {
    /// Per-repetition ratios of a configuration to (a) for one workload.
    fn ratios(&self, idx: usize, w: W) -> Vec<f64> {
        let base = &self.samples[0];
        self.samples[idx]
            .iter()
            .zip(base)
            .filter_map(|(x, b)| Some(w.of(x)? / w.of(b)?))
            .collect()
    }

    /// The median over the repetitions of `key`'s value minus (a)'s of the same
    /// repetition.
    fn delta(&self, key: &str, w: W) -> Option<f64> {
        let a = self.configs.iter().position(|c| c.key == key)?;
        let d: Vec<f64> = self.samples[a]
            .iter()
            .zip(&self.samples[0])
            .filter_map(|(x, y)| Some(w.of(x)? - w.of(y)?))
            .collect();
        (!d.is_empty()).then(|| median(&d))
    }

    /// Estimated overhead (%) of `key` on a workload of `syscalls` and `opens` per unit
    /// taking `base_ns`: every syscall pays what a getppid call pays there over (a), and
    /// every open, where opens are watched, the kernel time of the escape set's exit
    /// program (opens are judged by their path, at exit only).
    fn estimate(&self, key: &str, (syscalls, opens): (f64, f64), base_ns: f64) -> Option<f64> {
        let per_syscall = self.delta(key, W::Getppid)?;
        let per_open = if key == "d" || key == "d2" {
            self.costs
                .iter()
                .find(|p| p.config == "d" && p.program == "sys_exit")?
                .ns_per_run
        } else {
            0.0
        };
        Some((syscalls * per_syscall + opens * per_open) / base_ns * 100.0)
    }

    fn ratio_of(&self, key: &str, w: W) -> Option<f64> {
        let idx = self.configs.iter().position(|c| c.key == key)?;
        let r = self.ratios(idx, w);
        (!r.is_empty()).then(|| median(&r))
    }

    pub(super) fn render(&self) -> String {
        let s = self.settings;
        let mut o = String::new();
        self.run
            .head(&mut o, "Syscalls: `cargo xtask bench syscalls`");
        let _ = writeln!(o, "- peers: {}", self.versions);
        let _ = writeln!(o, "- audit: {}", self.audit);
        self.run.load_line(&mut o, "");
        let disturbed: usize = self
            .samples
            .iter()
            .flatten()
            .filter(|x| x.disturbed.is_some())
            .count();
        let total: usize = self.samples.iter().map(Vec::len).sum();
        let _ = writeln!(
            o,
            "- disturbed runs kept (another tracer attached, or others used > {FOREIGN_CPU_LIMIT} \
             CPU, after up to {ATTEMPTS} attempts): {disturbed} of {total}"
        );
        for n in &self.notes {
            let _ = writeln!(o, "- note: {n}");
        }
        let _ = writeln!(
            o,
            "- method: {} repetitions (at least {}, more while a target was undecided); each \
             runs every configuration once, in an order rotated \
             by one each repetition. One run = one `syscallbench` process: {} × `getppid` \
             (fewer where it is the watched syscall: {} under cgwarden (c), {} under auditd \
             (g)), {} × a syscall mix (openat+read 4 KiB+close, stat, pread, write to \
             /dev/null, write+read through a pipe, getpid, mmap+touch+munmap 64 KiB, \
             clock_gettime: 11 syscalls), {} × `gcc -O2 -Wall -c` of a 60-line C file; each \
             workload timed in {ROUNDS} interleaved rounds {PAUSE_MS} ms apart after an \
             untimed warm-up, the rounds alternating between the CPUs (pinned); a run's value \
             is the mean over the CPUs of its median round on each. Shown: the median over the \
             repetitions (best in brackets); \"vs (a)\" is the median of the per-repetition \
             ratios to (a) of the same repetition, with their range. The whole bench took {:.0} s.",
            self.samples.first().map_or(0, Vec::len),
            s.reps,
            s.getppid,
            s.getppid / WATCHED_CGWARDEN_DIV,
            s.getppid / WATCHED_AUDITD_DIV,
            s.mix,
            s.gcc,
            self.run.took.as_secs_f64()
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "| configuration | getppid loop (ns/call) | vs (a) | syscall mix (µs/iteration) | vs (a) | gcc (ms/compile) | vs (a) |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
        for (idx, (c, v)) in self.configs.iter().zip(self.samples).enumerate() {
            let d = v.iter().filter(|x| x.disturbed.is_some()).count();
            let mut row = format!("| ({}) {}", c.key, c.label);
            if d > 0 {
                let _ = write!(row, " *({d} of {} runs disturbed)*", v.len());
            }
            row.push_str(" |");
            for w in [W::Getppid, W::Mix, W::Gcc] {
                let vals: Vec<f64> = v.iter().filter_map(|x| w.of(x)).collect();
                if vals.is_empty() {
                    row.push_str(" — | — |");
                    continue;
                }
                let best = min(&vals);
                let watched = matches!(w, W::Getppid) && c.watched;
                let digits = if matches!(w, W::Getppid) { 0 } else { 2 };
                let _ = write!(
                    row,
                    " {:.*} [{:.*}]{} |",
                    digits,
                    median(&vals),
                    digits,
                    best,
                    if watched { " **watched**" } else { "" }
                );
                if idx == 0 {
                    row.push_str(" 1 |");
                } else {
                    let r = self.ratios(idx, w);
                    if r.is_empty() {
                        row.push_str(" — |");
                    } else {
                        let _ = write!(
                            row,
                            " ×{} ({}–{}) |",
                            fmt_ratio(median(&r)),
                            fmt_ratio(min(&r)),
                            fmt_ratio(max(&r))
                        );
                    }
                }
            }
            let _ = writeln!(o, "{row}");
        }

        let _ = writeln!(
            o,
            "\nThe watched getppid calls, as each monitor saw them (all runs):\n"
        );
        let _ = writeln!(o, "| configuration | calls | recorded | lost (counted) |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for (c, v) in self.configs.iter().zip(self.samples) {
            let seen: Vec<Seen> = v.iter().filter_map(|x| x.seen).collect();
            if seen.is_empty() {
                continue;
            }
            let calls: u64 = seen.iter().map(|x| x.calls).sum();
            let recorded = if seen.iter().all(|x| x.recorded.is_some()) {
                seen.iter()
                    .filter_map(|x| x.recorded)
                    .sum::<u64>()
                    .to_string()
            } else {
                "not checked".to_owned()
            };
            let lost: u64 = seen.iter().map(|x| x.lost).sum();
            let _ = writeln!(o, "| ({}) | {calls} | {recorded} | {lost} |", c.key);
        }

        let _ = writeln!(
            o,
            "\nStart and stop: wall time of a run minus the client's own (process start, \
             loading and attaching, detaching, teardown):\n"
        );
        let _ = writeln!(o, "| configuration | median | min | max |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        for (c, v) in self.configs.iter().zip(self.samples) {
            let ms: Vec<f64> = v.iter().map(|x| x.overhead_ms).collect();
            let _ = writeln!(
                o,
                "| ({}) | {:.0} ms | {:.0} ms | {:.0} ms |",
                c.key,
                median(&ms),
                min(&ms),
                max(&ms)
            );
        }

        let cpus: Vec<String> = self
            .samples
            .iter()
            .flatten()
            .find(|x| x.cpus.len() > 1)
            .map(|x| x.cpus.clone())
            .unwrap_or_default();
        if !cpus.is_empty() {
            let _ = writeln!(
                o,
                "\nThe getppid loop on each CPU (every run spreads its rounds over the CPUs; \
                 the value above is the mean of these; median over the runs, ns/call):\n"
            );
            let _ = writeln!(
                o,
                "| configuration | {} |",
                cpus.iter()
                    .map(|c| format!("CPU {c}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(o, "|---|{}", "---:|".repeat(cpus.len()));
            for (c, v) in self.configs.iter().zip(self.samples) {
                let mut row = format!("| ({}) |", c.key);
                for i in 0..cpus.len() {
                    let x: Vec<f64> = v
                        .iter()
                        .filter_map(|s| s.getppid_by_cpu.get(i).copied())
                        .collect();
                    let _ = write!(row, " {:.0} |", median(&x));
                }
                let _ = writeln!(o, "{row}");
            }
        }

        if !self.costs.is_empty() {
            let _ = writeln!(
                o,
                "\nKernel time per program run (`kernel.bpf_stats_enabled=1`, one extra run each; \
                 the raw `sys_enter` and `sys_exit` programs run for every syscall of every task \
                 on the machine):\n"
            );
            let _ = writeln!(o, "| configuration | program | runs | ns per run |");
            let _ = writeln!(o, "|---|---|---:|---:|");
            for p in self.costs {
                let _ = writeln!(
                    o,
                    "| ({}) | `{}` | {} | {:.0} |",
                    p.config, p.program, p.runs, p.ns_per_run
                );
            }
        }

        if let Some(n) = self.counts {
            let _ = writeln!(
                o,
                "\nWhere the benign workloads' overhead comes from (an estimate, because run-to-run \
                 noise of the measured ratios is several percent): syscalls per unit counted with \
                 `perf stat` on the syscall tracepoints; each syscall costs what a getppid call \
                 costs over (a) in the same repetition, each open where opens are watched ((d), \
                 (d2): judged by its path at exit only) the exit program's kernel time above:\n"
            );
            let _ = writeln!(
                o,
                "| workload | syscalls | of which opens | (a) | (b) estimated | (d2) estimated | (d) estimated |"
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
            for (w, what, c) in [
                (W::Gcc, "gcc, per compilation", n.gcc),
                (W::Mix, "syscall mix, per iteration", n.mix),
            ] {
                let base: Vec<f64> = self.samples[0].iter().filter_map(|x| w.of(x)).collect();
                // Milliseconds (gcc) or microseconds (mix) to ns.
                let scale = if matches!(w, W::Gcc) { 1e6 } else { 1e3 };
                let base_ns = median(&base) * scale;
                let est = |k: &str| {
                    self.estimate(k, c, base_ns)
                        .map_or_else(|| "—".to_owned(), |e| format!("{e:+.2}%"))
                };
                let _ = writeln!(
                    o,
                    "| {what} | {:.0} | {:.0} | {} | {} | {} | {} |",
                    c.0,
                    c.1,
                    if matches!(w, W::Gcc) {
                        format!("{:.1} ms", base_ns / 1e6)
                    } else {
                        format!("{:.1} µs", base_ns / 1e3)
                    },
                    est("b"),
                    est("d2"),
                    est("d")
                );
            }
        }

        let _ = writeln!(
            o,
            "\nTargets (issue #13), each judged on the 95% confidence interval of the median of \
             its per-repetition ratios (order statistics), never on the estimate above: met \
             when the interval lies wholly on the target's side, missed when wholly on the \
             other; the bench repeats (up to {} repetitions) while an interval spans its \
             target. \"Decided after\" is how many repetitions it took for the verdict to \
             hold from then on.\n",
            s.max_reps
        );
        let _ = writeln!(
            o,
            "| target | median (95% interval) | decided after | met |"
        );
        let _ = writeln!(o, "|---|---:|---:|---|");
        for t in targets(self.configs, self.samples) {
            target_row(&mut o, &t, s.reps);
        }
        let e = self.exec_times;
        let ratios: Vec<f64> = e
            .hardened_ms
            .iter()
            .zip(&e.one_rule_ms)
            .map(|(h, one)| h / one)
            .collect();
        if !ratios.is_empty() {
            target_row(
                &mut o,
                &Judged {
                    what: "`cgwarden exec -- true` under the shipped hardened profile (policies/gateway.yaml without its selector) takes ≤ 2× the same exec under a one-rule egress profile",
                    values: ratios,
                    target: Target {
                        bound: 2.0,
                        at_most: true,
                    },
                },
                1,
            );
            let _ = writeln!(
                o,
                "\n`exec -- true` wall times (its default hooks, the raw tracepoints), {} pairs: hardened profile {:.0} ms (median; {:.0}–{:.0}), one-rule egress profile {:.0} ms ({:.0}–{:.0}).",
                e.hardened_ms.len(),
                median(&e.hardened_ms),
                min(&e.hardened_ms),
                max(&e.hardened_ms),
                median(&e.one_rule_ms),
                min(&e.one_rule_ms),
                max(&e.one_rule_ms)
            );
        }
        let peers: Vec<String> = ["f", "g", "h", "i", "j"]
            .iter()
            .filter_map(|k| {
                self.ratio_of(k, W::Getppid)
                    .map(|r| format!("({k}) ×{}", fmt_ratio(r)))
            })
            .collect();
        if !peers.is_empty() {
            let _ = writeln!(
                o,
                "\nPeers on the getppid loop in the same run: {}.",
                peers.join(", ")
            );
        }
        o
    }
}

fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "n/a".to_owned()
    } else if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_print_compactly() {
        assert_eq!(fmt_ratio(1.234), "1.23");
        assert_eq!(fmt_ratio(140.4), "140");
    }
}
