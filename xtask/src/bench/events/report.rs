//! The markdown report of `bench events`: the targets, every trial of every place, the
//! start-to-enforcing times, and the commit of the agent's sources measured.

use std::{fmt::Write as _, path::Path, process::Command};

use super::{
    DISTURBED, POLL, Place, Settings, TARGET_RATE, TARGET_RSS_MB, TARGET_START_MS,
    measure::{Start, Trial},
};
use crate::bench::util::{RunFacts, max, median, min, thousands, yes};

pub(super) struct Report<'a> {
    /// The commit the agent was built from.
    pub(super) commit: String,
    pub(super) settings: &'a Settings,
    pub(super) starts: &'a [Start],
    pub(super) places: &'a [Place],
    /// When the bench ran, and the load around it.
    pub(super) run: RunFacts,
}

impl Report<'_> {
    pub(super) fn render(&self) -> String {
        let s = self.settings;
        let mut o = String::new();
        self.run.head(&mut o, "Events: `cargo xtask bench events`");
        let _ = writeln!(o, "- agent sources as of: {}", self.commit);
        self.run.load_line(
            &mut o,
            " (the bench itself keeps both CPUs busy: the generator and the agent)",
        );
        let _ = writeln!(
            o,
            "- method: every trial starts a fresh `cgwarden run --events FILE` whose profile \
             ({} mode, `default: deny`, no rule) selects a cgroup of the bench; the generator \
             (`eventstorm`, {} sender thread(s)) joins it {:.0} s after the agent logged that it is \
             enforcing and makes unconnected UDP `sendto`s to distinct 127.x.y.z:port \
             destinations (one flow, so one event, each) for about {:.0} s at an offered \
             rate{}; generator and agent share the machine's CPUs. The last two rows of \
             each table are not part of the search: one run with the generator started as \
             soon as the agent is enforcing, one with a `/metrics` scrape halfway through. Zero loss = no `lost` record and the `count`s of the \
             generator's `sendmsg` records add up to exactly the sends it made. Delivered \
             rate = events / (generator start → last growth of the file); lag = generator \
             end → last growth. Agent CPU from /proc/PID/stat over the trial, peak memory = \
             VmHWM. Search: full speed, then from {} events/s up ×1.25 or down ×0.8, \
             bisection to 5%; the rate reported must then pass {} runs, every undisturbed \
             run at it without loss (on a failure: 5% lower, again). Before each trial the \
             bench waits (up to 5 s) until the machine is idle; a failed trial during which \
             other processes used more than {:.0}% of a CPU, or in which the generator fell \
             more than 3% short of the offered rate, is run once more (the first run is \
             shown but not counted). The whole bench took {:.0} s.",
            s.mode,
            s.threads,
            s.warmup.as_secs_f64(),
            s.secs,
            if s.mode == "enforce" {
                " (each send is refused with EPERM after sendmsg4 reported it: no packet, \
                 so the generator is cheap)"
            } else {
                ""
            },
            thousands(TARGET_RATE as f64),
            s.reps,
            DISTURBED * 100.0,
            self.run.took.as_secs_f64()
        );
        let _ = writeln!(o);

        let log_ms: Vec<f64> = self.starts.iter().map(|s| s.log_ms).collect();
        let wall_ms: Vec<f64> = self.starts.iter().map(|s| s.wall_ms).collect();
        let _ = writeln!(o, "| target | measured | met |");
        let _ = writeln!(o, "|---|---:|---|");
        for place in self.places {
            self.target_rows(&mut o, place);
        }
        let _ = writeln!(
            o,
            "| agent start to enforcing < {TARGET_START_MS:.0} ms (median of {} starts; agent log) | {:.0} ms | {} |",
            log_ms.len(),
            median(&log_ms),
            yes(median(&log_ms) < TARGET_START_MS)
        );
        let _ = writeln!(
            o,
            "| the same as wall time, spawn → `enforcing` line read | {:.0} ms | {} |",
            median(&wall_ms),
            yes(median(&wall_ms) < TARGET_START_MS)
        );
        let _ = writeln!(o);

        for place in self.places {
            self.trial_table(&mut o, place);
        }
        let _ = writeln!(
            o,
            "Columns: delivered = events / (generator start → last growth of the file), n/a \
             when not every send was in the file before the agent was stopped; lag = \
             generator end → last growth; longest stall = the longest time the file did not \
             grow while the generator ran (polled every {} ms); agent CPU = its utime and \
             stime over the trial per delivered event; VmRSS idle = before the generator \
             started, max = sampled every 50 ms while it ran, metric = \
             `cgwarden_agent_resident_bytes` scraped after the last event; VmHWM = the agent's peak resident memory over its life, with in brackets \
             its value before the generator started (the start-up peak); others = CPUs used on average by processes other than the bench's \
             (kernel threads such as writeback not counted).",
            POLL.as_millis()
        );
        for place in self.places {
            if let Some(idle) = place.trials.iter().find_map(|t| t.idle_cpu) {
                let _ = writeln!(
                    o,
                    "After the full-speed trial ({}), with nothing left to do, the agent still \
                     used {:.0}% of a CPU (measured over 1 s).",
                    place.label(),
                    (idle * 100.0).max(0.0)
                );
            }
        }
        let _ = writeln!(o);

        let _ = writeln!(
            o,
            "Start to enforcing ({} starts of an idle agent, each with fresh pins, and the \
             agents of the trials above):\n",
            self.starts.len()
        );
        let trials: Vec<&Trial> = self.places.iter().flat_map(|p| &p.trials).collect();
        let trial_log: Vec<f64> = trials.iter().map(|t| t.start.log_ms).collect();
        let trial_wall: Vec<f64> = trials.iter().map(|t| t.start.wall_ms).collect();
        let _ = writeln!(o, "| what | median | min | max | runs |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|");
        for (what, v) in [
            (
                "agent log (`cgwarden is enforcing (… in N ms)`, from its start of `run`)",
                &log_ms,
            ),
            (
                "wall time: spawn of `cgwarden run` → the line read from its stderr",
                &wall_ms,
            ),
            ("agent log, the agents of the trials", &trial_log),
            ("wall time, the agents of the trials", &trial_wall),
        ] {
            let _ = writeln!(
                o,
                "| {what} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                median(v),
                min(v),
                max(v),
                v.len()
            );
        }
        o
    }

    fn target_rows(&self, o: &mut String, place: &Place) {
        let counted: Vec<&Trial> = place.trials.iter().filter(|t| !t.superseded).collect();
        let full = counted.iter().find(|t| t.offered == 0);
        let full_text = full.map_or(String::new(), |t| {
            format!(
                "; at full speed the generator made {}/s {}",
                thousands(t.generated.rate),
                if t.zero_loss() {
                    "without loss"
                } else {
                    "with loss"
                }
            )
        });
        let (rate_text, rate_ok) = match place.max_rate {
            Some(r) => (
                format!(
                    "{}{}{}{full_text}",
                    thousands(r as f64),
                    match place.unconfirmed {
                        Some(n) => format!(
                            " ({n} of {} runs at it, all without loss, before the time ran out)",
                            self.settings.reps
                        ),
                        None => String::new(),
                    },
                    match (place.lowest_failing, place.generator_short) {
                        (Some(h), _) => format!(" (loss at {})", thousands(h as f64)),
                        (None, Some(g)) => format!(
                            " (no loss at any rate tried; the generator fell short of {}/s)",
                            thousands(g as f64)
                        ),
                        (None, None) => {
                            " (no loss at any rate tried: the generator is the limit)".to_owned()
                        }
                    }
                ),
                r >= TARGET_RATE,
            ),
            None => (
                match place.lowest_failing {
                    Some(h) => format!(
                        "< {} (no rate tried passed all its runs){full_text}",
                        thousands(h as f64)
                    ),
                    None => format!("not determined{full_text}"),
                },
                false,
            ),
        };
        // No loss seen at all, but no run at the target rate either: the generator, not
        // the agent, fell short.
        let verdict = if !rate_ok && place.lowest_failing.is_none() {
            "not shown: no loss at any rate, the generator fell short"
        } else {
            yes(rate_ok)
        };
        let _ = writeln!(
            o,
            "| ≥ {} events/s with zero loss, sustained: {} | {rate_text}{} | {} |",
            thousands(TARGET_RATE as f64),
            place.label(),
            if place.cut_short {
                "; search cut short by the time budget"
            } else {
                ""
            },
            verdict
        );
        // The runs at the rate reported; without one, every run of the search.
        let (at_max, which): (Vec<&&Trial>, &str) = match place.max_rate {
            Some(r) => (
                counted.iter().filter(|t| t.offered == r).collect(),
                "highest of those runs",
            ),
            None => (counted.iter().collect(), "highest of all runs"),
        };
        let mb = |f: fn(&Trial) -> u64| {
            at_max
                .iter()
                .map(|t| f(t) as f64 / 1024.0)
                .fold(f64::NAN, f64::max)
        };
        let (hwm, storm, startup) = (
            mb(|t| t.hwm_kb),
            mb(|t| t.storm_rss_kb),
            mb(|t| t.idle_hwm_kb),
        );
        let _ = writeln!(
            o,
            "| agent resident memory < {TARGET_RSS_MB:.0} MB at that rate ({which}) | {} | {} |",
            if hwm.is_finite() {
                format!(
                    "VmRSS ≤ {storm:.1} MB during the runs; VmHWM {hwm:.1} MB (start-up peak \
                     alone: {startup:.1} MB)"
                )
            } else {
                "n/a".to_owned()
            },
            yes(storm < TARGET_RSS_MB)
        );
    }

    fn trial_table(&self, o: &mut String, place: &Place) {
        let _ = writeln!(o, "Trials, {}, in the order run:\n", place.label());
        let _ = writeln!(
            o,
            "| # | offered (events/s) | made (events/s) | delivered / made | lost | delivered (events/s) | lag | longest stall | agent CPU µs/event (user + sys) | agent VmRSS: idle → max during the run (metric after) | agent VmHWM (start-up) | others (CPUs) | result |"
        );
        let _ = writeln!(
            o,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let warmup = self.settings.warmup;
        for (i, t) in place.trials.iter().chain(&place.extra).enumerate() {
            let (u, k) = t.cpu_us_per_event();
            let result = if t.passes() {
                "no loss".to_owned()
            } else if t.generated.errors > 0 {
                format!(
                    "{} send errors ({})",
                    t.generated.errors, t.generated.first_error
                )
            } else if t.zero_loss() {
                "no loss, but the generator fell short of the offered rate".to_owned()
            } else {
                loss_note(t)
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} / {} | {} | {} | {} | {:.0} ms | {:.2} + {:.2} = {:.2} | {:.1} → {:.1} ({}) MB | {:.1} ({:.1}) MB | {:.2} | {}{} |",
                i + 1,
                match (t.offered, t.warmup != warmup, t.scrape_ms) {
                    (0, _, _) => "full speed".to_owned(),
                    (r, true, _) => format!(
                        "{}, generator started {:.0} s after `enforcing` (cold start)",
                        thousands(r as f64),
                        t.warmup.as_secs_f64()
                    ),
                    (r, false, Some(ms)) => format!(
                        "{}, one `/metrics` scrape halfway (answered in {ms:.0} ms)",
                        thousands(r as f64)
                    ),
                    (r, false, None) => thousands(r as f64),
                },
                thousands(t.generated.rate),
                thousands(t.delivered as f64),
                thousands(t.generated.sent as f64),
                thousands(t.lost as f64),
                thousands(t.delivered_rate()),
                if t.lag_ms.is_finite() {
                    format!("{:.0} ms", t.lag_ms)
                } else {
                    "n/a".to_owned()
                },
                t.stall_ms,
                u,
                k,
                u + k,
                t.idle_rss_kb as f64 / 1024.0,
                t.storm_rss_kb as f64 / 1024.0,
                t.metric_rss
                    .map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0)),
                t.hwm_kb as f64 / 1024.0,
                t.idle_hwm_kb as f64 / 1024.0,
                t.others_cpu,
                result,
                if t.superseded {
                    " (disturbed or short: run again, not counted)"
                } else {
                    ""
                }
            );
        }
        let bytes: u64 = place.trials.iter().map(|t| t.file_bytes).sum();
        let records: u64 = place.trials.iter().map(|t| t.records).sum();
        let other: u64 = place.trials.iter().map(|t| t.other).sum();
        let gen_cpu: Vec<f64> = place
            .trials
            .iter()
            .map(|t| t.generated.cpu_s * 1e6 / t.generated.sent.max(1) as f64)
            .collect();
        let gen_secs: Vec<f64> = place.trials.iter().map(|t| t.generated.secs).collect();
        let _ = writeln!(
            o,
            "\nAverage line {:.0} bytes; {} records of other kinds or processes; the \
             generator ran {:.1}–{:.1} s and used {:.2}–{:.2} µs of CPU per send (its \
             `sendto` with the eBPF program that reports it).\n",
            bytes as f64 / (records + other).max(1) as f64,
            other,
            min(&gen_secs),
            max(&gen_secs),
            min(&gen_cpu),
            max(&gen_cpu)
        );
    }
}

/// What went wrong in a trial with loss.
fn loss_note(t: &Trial) -> String {
    let mut notes = Vec::new();
    if t.lost > 0 {
        notes.push(format!(
            "{} records dropped (ring buffer full)",
            thousands(t.lost as f64)
        ));
    }
    if t.recovered > 0 {
        notes.push(format!(
            "{} of them rebuilt from the kernel's flow table (no process, uid or rule)",
            thousands(t.recovered as f64)
        ));
    }
    match t.delivered.cmp(&t.generated.sent) {
        std::cmp::Ordering::Less => notes.push(format!(
            "{} sends in no record",
            thousands((t.generated.sent - t.delivered) as f64)
        )),
        std::cmp::Ordering::Greater => notes.push(format!(
            "{} counted twice",
            thousands((t.delivered - t.generated.sent) as f64)
        )),
        std::cmp::Ordering::Equal => notes.push("every send counted".to_owned()),
    }
    if t.at_stop > 0 {
        notes.push(format!(
            "{} records only at shutdown",
            thousands(t.at_stop as f64)
        ));
    }
    format!("**loss**: {}", notes.join("; "))
}

/// The last commit that changed the agent's sources, and whether they have changed since
/// (read-only git commands).
pub(super) fn commit(root: &Path) -> String {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            // Never take the index lock or refresh it: this only reads.
            .arg("--no-optional-locks")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // The last commit that changed the agent (its user space, eBPF or shared layouts).
    let Some(head) = git(&[
        "log",
        "-1",
        "--format=%h %cd %s",
        "--date=format:%Y-%m-%d %H:%M",
        "--",
        "userspace",
        "ebpf",
        "common",
    ]) else {
        return "unknown (no git)".to_owned();
    };
    let dirty = git(&["status", "--porcelain", "--", "userspace", "ebpf", "common"])
        .is_some_and(|s| !s.is_empty());
    format!(
        "{head}{}",
        if dirty {
            " (with uncommitted changes to the agent)"
        } else {
            ""
        }
    )
}
