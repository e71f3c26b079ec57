//! The markdown report of `bench syscalls`: the table of every configuration and
//! workload against (a), what each monitor saw of the watched calls, start and stop
//! times, the per-CPU loop, per-program kernel time, the estimate from syscall counts,
//! and the targets.

use std::fmt::Write as _;

use super::{
    ATTEMPTS, Config, FOREIGN_CPU_LIMIT, PAUSE_MS, ROUNDS, Settings, WATCHED_AUDITD_DIV,
    WATCHED_CGWARDEN_DIV,
    measure::{Counts, ProgCost, Sample, Seen},
};
use crate::bench::util::{RunFacts, max, median, min, yes};

pub(super) struct Report<'a> {
    pub(super) audit: String,
    pub(super) versions: String,
    pub(super) notes: Vec<String>,
    pub(super) settings: &'a Settings,
    pub(super) configs: &'a [Config],
    pub(super) samples: &'a [Vec<Sample>],
    pub(super) costs: &'a [ProgCost],
    pub(super) counts: Option<Counts>,
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

    /// The median over the repetitions of `key`'s value over `other`'s of the same
    /// repetition.
    fn paired(&self, key: &str, other: &str, w: W) -> Option<f64> {
        let a = self.configs.iter().position(|c| c.key == key)?;
        let b = self.configs.iter().position(|c| c.key == other)?;
        let r: Vec<f64> = self.samples[a]
            .iter()
            .zip(&self.samples[b])
            .filter_map(|(x, y)| Some(w.of(x)? / w.of(y)?))
            .collect();
        (!r.is_empty()).then(|| median(&r))
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
            "- method: {} repetitions; each runs every configuration once, in an order rotated \
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
                 the raw `sys_enter` program runs for every syscall of every task on the \
                 machine):\n"
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
            "\nTargets (the benign-workload rows are judged on the estimate when there is one: \
             the measured ratios scatter by several percent from run to run):\n"
        );
        let _ = writeln!(o, "| target | measured | met |");
        let _ = writeln!(o, "|---|---:|---|");
        let floor = self.ratio_of("e", W::Getppid);
        for key in ["b", "d", "d2"] {
            let Some(r) = self.ratio_of(key, W::Getppid) else {
                continue;
            };
            let what = match key {
                "b" => "one unrelated syscall watched",
                "d" => "escape set",
                _ => "escape set except the raw-`sys_enter` syscalls",
            };
            match (floor, self.paired(key, "e", W::Getppid)) {
                (Some(f), Some(p)) => {
                    let _ = writeln!(
                        o,
                        "| unwatched syscalls at the slow-path floor, cgwarden ({key}, {what}): getppid no slower than under bpftrace's single tracepoint (e): ({key}) / (e) in the same repetition ≤ 1.03 | ×{} vs ×{} (({key}) / (e): {}) | {} |",
                        fmt_ratio(r),
                        fmt_ratio(f),
                        fmt_ratio(p),
                        yes(p <= 1.03)
                    );
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "| unwatched syscalls at the slow-path floor, cgwarden ({key}, {what}) | ×{} (no bpftrace to compare) | — |",
                        fmt_ratio(r)
                    );
                }
            }
        }
        for key in ["b", "d", "d2"] {
            for (w, what) in [
                (W::Gcc, "realistic benign workload (gcc)"),
                (W::Mix, "syscall-heavy benign mix"),
            ] {
                if let Some(r) = self.ratio_of(key, w) {
                    let est = self.counts.and_then(|n| {
                        let (c, scale) = match w {
                            W::Gcc => (n.gcc, 1e6),
                            _ => (n.mix, 1e3),
                        };
                        let base: Vec<f64> =
                            self.samples[0].iter().filter_map(|x| w.of(x)).collect();
                        self.estimate(key, c, median(&base) * scale)
                    });
                    let _ = writeln!(
                        o,
                        "| < 1% on the {what}, cgwarden ({key}) | measured {:+.1}%{} | {} |",
                        (r - 1.0) * 100.0,
                        est.map_or_else(String::new, |e| format!(", estimated {e:+.2}%")),
                        match est {
                            Some(e) => yes(e < 1.0),
                            None => yes(r < 1.01),
                        }
                    );
                }
            }
        }
        if let Some(r) = self.ratio_of("c", W::Getppid) {
            let _ = writeln!(
                o,
                "| a watched (reported) syscall costs at most ×1.5, cgwarden (c) | ×{} | {} |",
                fmt_ratio(r),
                yes(r <= 1.5)
            );
        }
        let peers: Vec<String> = ["f", "g", "h", "i"]
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
