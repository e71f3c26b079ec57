//! Prometheus metrics: counters the agent keeps as events pass, gauges read when a
//! scrape arrives, and the text exposition format served on a loopback port.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
};

use crate::events::Record;

/// Where `cgwarden run` serves metrics unless told otherwise (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Counters derived from the event stream.
///
/// Label sets are bounded: by default a series is a (kind, verdict, profile), whatever
/// runs; with per-container labels ([`Metrics::per_container`]) each container's series
/// also carry its cgroup and name, and go when its cgroup goes ([`Metrics::forget`]).
/// Counting a record allocates nothing once its series exist (it runs for every event).
#[derive(Debug, Default)]
pub struct Metrics {
    per_container: bool,
    /// By profile name (empty: no profile).
    profiles: HashMap<String, ProfileSeries>,
    /// Occurrences folded into another record by in-kernel aggregation.
    aggregated: u64,
    /// Records the kernel could not deliver.
    lost: u64,
}

/// One profile's series.
#[derive(Debug, Default)]
struct ProfileSeries {
    /// Records by series.
    records: BTreeMap<Series, u64>,
    /// Occurrences (records weighted by their count) by the same series.
    occurrences: BTreeMap<Series, u64>,
    /// Occurrences by the rule that decided them, and verdict.
    rules: HashMap<String, BTreeMap<&'static str, u64>>,
}

/// The labels of an events or flows series beside the profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    kind: &'static str,
    verdict: &'static str,
    /// With per-container labels: the cgroup's id (to forget it by), its path and the
    /// container's name (empty when not known).
    container: Option<(u64, String, String)>,
}

impl Series {
    fn labels(&self, profile: &str) -> String {
        let mut l = format!(
            "kind=\"{}\",verdict=\"{}\",profile=\"{}\"",
            esc(self.kind),
            esc(self.verdict),
            esc(profile)
        );
        if let Some((_, cgroup, name)) = &self.container {
            let _ = write!(l, ",cgroup=\"{}\",container=\"{}\"", esc(cgroup), esc(name));
        }
        l
    }
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub egress_checked: u64,
    pub egress_denied: u64,
    pub dns_learned: u64,
    pub dns_capped: u64,
    pub dns_untrusted: u64,
    pub dns_forged: u64,
    pub ringbuf_drops: u64,
    pub profiles: u64,
    pub monitored_cgroups: u64,
    /// (map, entries in use, capacity).
    pub maps: Vec<(&'static str, u64, u64)>,
    /// Faults survived, by cause.
    pub faults: Vec<(&'static str, u64)>,
    /// What each HTTP sink delivered and dropped.
    pub sinks: Vec<crate::output::http::Health>,
    /// Posture check counts of each container the agent knows (gone with it).
    pub posture: Vec<PostureGauge>,
    pub resident_bytes: u64,
    /// (program, runs, run time in ns), when the kernel counts them.
    pub programs: Vec<(&'static str, u64, u64)>,
    /// Whether the kernel counts program runs (`kernel.bpf_stats_enabled`).
    pub bpf_stats: bool,
}

/// One container's posture counts.
#[derive(Debug, Default)]
pub struct PostureGauge {
    pub container: String,
    /// The first 12 characters of the id.
    pub id: String,
    pub passed: u64,
    pub failed: u64,
    pub unknown: u64,
}

impl Metrics {
    /// Counters whose series also carry each container's cgroup and name
    /// (`--metrics-per-container`); they go when the container's cgroup goes.
    pub fn per_container(per_container: bool) -> Self {
        Self {
            per_container,
            ..Self::default()
        }
    }

    /// Counts one record.
    pub fn observe(&mut self, record: &Record) {
        if let Record::Lost(r) = record {
            self.lost += r.count;
            return;
        }
        let profile = record.profile().unwrap_or("");
        let series = match self.profiles.get_mut(profile) {
            Some(s) => s,
            None => self.profiles.entry(profile.to_owned()).or_default(),
        };
        let key = Series {
            kind: record.kind(),
            verdict: record.verdict().unwrap_or(""),
            container: self
                .per_container
                .then(|| record.cgroup_id().zip(record.cgroup()))
                .flatten()
                .map(|(id, path)| {
                    (
                        id,
                        path.to_owned(),
                        record.container_name().unwrap_or("").to_owned(),
                    )
                }),
        };
        let count = record.count();
        if let Some(rule) = record.rule() {
            let by_verdict = match series.rules.get_mut(rule) {
                Some(v) => v,
                None => series.rules.entry(rule.to_owned()).or_default(),
            };
            *by_verdict.entry(key.verdict).or_default() += count;
        }
        // Flows only: the occurrences of other kinds are their records plus the
        // repeats folded into them (`cgwarden_aggregated_repeats_total`).
        let flow = matches!(key.kind, "connect" | "sendmsg" | "packet");
        if flow {
            match series.occurrences.get_mut(&key) {
                Some(n) => *n += count,
                None => {
                    series.occurrences.insert(key.clone(), count);
                }
            }
        }
        *series.records.entry(key).or_default() += 1;
        self.aggregated += count.saturating_sub(1);
    }

    /// Forgets the per-container series of a cgroup that is gone.
    pub fn forget(&mut self, cgroup_id: u64) {
        let keep = |k: &Series, _: &mut u64| k.container.as_ref().is_none_or(|c| c.0 != cgroup_id);
        for series in self.profiles.values_mut() {
            series.records.retain(keep);
            series.occurrences.retain(keep);
        }
    }

    /// Forgets the rule counters of profiles no longer installed.
    pub fn keep_rules_of(&mut self, profiles: &[&str]) {
        for (name, series) in &mut self.profiles {
            if !profiles.contains(&name.as_str()) {
                series.rules.clear();
            }
        }
    }

    /// The occurrences of a profile's records by verdict (`deny`, `audit`, `allow`,
    /// `report`), since the agent started.
    pub fn verdicts_of(&self, profile: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let Some(s) = self.profiles.get(profile) else {
            return out;
        };
        for (series, n) in &s.records {
            if !series.verdict.is_empty() {
                // Flows count every occurrence, other records themselves.
                let occurred = s.occurrences.get(series).copied().unwrap_or(*n);
                *out.entry(series.verdict.to_owned()).or_default() += occurred;
            }
        }
        out
    }

    /// The cgroups that have per-container series.
    pub fn cgroups(&self) -> std::collections::BTreeSet<u64> {
        self.profiles
            .values()
            .flat_map(|s| s.records.keys())
            .filter_map(|k| k.container.as_ref().map(|c| c.0))
            .collect()
    }

    /// The profiles with series, in name order.
    fn sorted(&self) -> Vec<(&str, &ProfileSeries)> {
        let mut all: Vec<(&str, &ProfileSeries)> =
            self.profiles.iter().map(|(k, v)| (k.as_str(), v)).collect();
        all.sort_unstable_by_key(|(k, _)| *k);
        all
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "cgwarden_build_info",
            "gauge",
            "The agent's version and build id (its eBPF object's, which pins are checked against).",
        );
        let _ = writeln!(
            out,
            "cgwarden_build_info{{version=\"{}\",build_id=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            crate::bpf::build_id()
        );
        family(
            &mut out,
            "cgwarden_events_total",
            "counter",
            "Event records written, by kind, verdict and profile (and cgroup and container with --metrics-per-container).",
        );
        for (profile, s) in self.sorted() {
            for (series, n) in &s.records {
                let _ = writeln!(
                    out,
                    "cgwarden_events_total{{{}}} {n}",
                    series.labels(profile)
                );
            }
        }
        family(
            &mut out,
            "cgwarden_flows_total",
            "counter",
            "Flows (connect, sendmsg, packet) the records stand for, aggregated repeats included.",
        );
        for (profile, s) in self.sorted() {
            for (series, n) in &s.occurrences {
                let _ = writeln!(
                    out,
                    "cgwarden_flows_total{{{}}} {n}",
                    series.labels(profile)
                );
            }
        }
        family(
            &mut out,
            "cgwarden_rule_hits_total",
            "counter",
            "Occurrences by the profile rule that decided them (`default` for the default), as reported: every refused or audited flow and reported syscall, allowed flows only under `report: all`.",
        );
        for (profile, s) in self.sorted() {
            let mut rules: Vec<_> = s.rules.iter().collect();
            rules.sort_unstable_by_key(|(rule, _)| rule.as_str());
            for (rule, by_verdict) in rules {
                for (verdict, n) in by_verdict {
                    let _ = writeln!(
                        out,
                        "cgwarden_rule_hits_total{{profile=\"{}\",rule=\"{}\",verdict=\"{}\"}} {n}",
                        esc(profile),
                        esc(rule),
                        esc(verdict)
                    );
                }
            }
        }
        let scalars: [(&str, &str, &str, u64); 13] = [
            (
                "cgwarden_aggregated_repeats_total",
                "counter",
                "Repeats folded into another record in the kernel.",
                self.aggregated,
            ),
            (
                "cgwarden_lost_events_total",
                "counter",
                "Records lost because the ring buffer was full (as reported).",
                self.lost,
            ),
            (
                "cgwarden_ringbuf_drops_total",
                "counter",
                "Ring buffer reservations that failed, from the kernel's per-CPU counters.",
                g.ringbuf_drops,
            ),
            (
                "cgwarden_egress_checked_total",
                "counter",
                "Flows of monitored cgroups judged in the kernel.",
                g.egress_checked,
            ),
            (
                "cgwarden_egress_denied_total",
                "counter",
                "Flows denied in the kernel (enforce mode).",
                g.egress_denied,
            ),
            (
                "cgwarden_dns_learned_total",
                "counter",
                "Addresses learned from DNS answers.",
                g.dns_learned,
            ),
            (
                "cgwarden_dns_capped_total",
                "counter",
                "DNS answer addresses not learned because of the per-name cap.",
                g.dns_capped,
            ),
            (
                "cgwarden_dns_untrusted_total",
                "counter",
                "DNS answers nothing was learned from: no matching query to a trusted resolver from that socket, another source or another question.",
                g.dns_untrusted,
            ),
            (
                "cgwarden_dns_forged_total",
                "counter",
                "DNS answers a monitored process sent (UDP from port 53), dropped.",
                g.dns_forged,
            ),
            (
                "cgwarden_profiles",
                "gauge",
                "Installed profiles.",
                g.profiles,
            ),
            (
                "cgwarden_monitored_cgroups",
                "gauge",
                "Cgroups with a profile attached (their descendants inherit it).",
                g.monitored_cgroups,
            ),
            (
                "cgwarden_agent_resident_bytes",
                "gauge",
                "Resident memory of the agent.",
                g.resident_bytes,
            ),
            ("cgwarden_up", "gauge", "1 while the agent runs.", 1),
        ];
        for (name, kind, help, value) in scalars {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        family(
            &mut out,
            "cgwarden_bpf_stats_enabled",
            "gauge",
            "1 when the kernel counts program runs (sysctl kernel.bpf_stats_enabled).",
        );
        let _ = writeln!(out, "cgwarden_bpf_stats_enabled {}", u8::from(g.bpf_stats));
        family(
            &mut out,
            "cgwarden_program_runs_total",
            "counter",
            "Runs per eBPF program, as the kernel counts them.",
        );
        for (program, runs, _) in &g.programs {
            let _ = writeln!(
                out,
                "cgwarden_program_runs_total{{program=\"{program}\"}} {runs}"
            );
        }
        family(
            &mut out,
            "cgwarden_program_run_seconds_total",
            "counter",
            "Time spent in each eBPF program, as the kernel counts it.",
        );
        for (program, _, ns) in &g.programs {
            let _ = writeln!(
                out,
                "cgwarden_program_run_seconds_total{{program=\"{program}\"}} {}",
                *ns as f64 / 1e9
            );
        }
        family(
            &mut out,
            "cgwarden_map_entries",
            "gauge",
            "Entries in use per eBPF map.",
        );
        for (map, used, _) in &g.maps {
            let _ = writeln!(out, "cgwarden_map_entries{{map=\"{map}\"}} {used}");
        }
        family(
            &mut out,
            "cgwarden_map_capacity",
            "gauge",
            "Capacity per eBPF map.",
        );
        for (map, _, cap) in &g.maps {
            let _ = writeln!(out, "cgwarden_map_capacity{{map=\"{map}\"}} {cap}");
        }
        family(
            &mut out,
            "cgwarden_faults_total",
            "counter",
            "Errors the agent survived and retried, by cause (sink_write, assign, rescan...).",
        );
        for (cause, count) in &g.faults {
            let _ = writeln!(out, "cgwarden_faults_total{{cause=\"{cause}\"}} {count}");
        }
        family(
            &mut out,
            "cgwarden_sink_records_total",
            "counter",
            "Records each HTTP sink delivered, or dropped: queue_full (the receiver is slower than the events), failed (the last retry failed), refused (a 4xx).",
        );
        for h in &g.sinks {
            for (outcome, n) in [
                ("delivered", h.delivered),
                ("queue_full", h.dropped_queue_full),
                ("failed", h.dropped_failed),
                ("refused", h.dropped_refused),
            ] {
                let _ = writeln!(
                    out,
                    "cgwarden_sink_records_total{{sink=\"{}\",outcome=\"{outcome}\"}} {n}",
                    esc(&h.target)
                );
            }
        }
        family(
            &mut out,
            "cgwarden_posture_checks",
            "gauge",
            "CIS Docker Benchmark checks of each known container, by verdict.",
        );
        for p in &g.posture {
            for (verdict, n) in [
                ("pass", p.passed),
                ("fail", p.failed),
                ("unknown", p.unknown),
            ] {
                let _ = writeln!(
                    out,
                    "cgwarden_posture_checks{{container=\"{}\",id=\"{}\",verdict=\"{verdict}\"}} {n}",
                    esc(&p.container),
                    esc(&p.id)
                );
            }
        }
        out
    }
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The agent's resident set size in bytes.
pub fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// An HTTP/1.1 response carrying the exposition (or 404 for other paths).
pub fn http_response(request_line: &str, body: &str) -> String {
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    // Liveness and readiness (Kubernetes probes): the event loop answers these itself,
    // and serves nothing before it enforces, so an answer means both.
    if path == "/healthz" || path == "/readyz" {
        return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
            .to_owned();
    }
    if path == "/metrics" || path == "/" {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Header, LostRecord, NetRecord};

    fn net(verdict: &'static str, count: u64) -> Record {
        Record::Net(NetRecord {
            header: Header {
                time: String::new(),
                kind: "connect",
                pid: 1,
                tid: 1,
                process: "p".into(),
                uid: 0,
                gid: 0,
                cgroup: Some("/c\"x".into()),
                cgroup_id: 1,
                who: None,
                profile: Some("web".into()),
            },
            verdict,
            rule: "default".into(),
            protocol: "tcp",
            family: "ipv4",
            dst: "10.0.0.1".into(),
            port: 1,
            count,
        })
    }

    #[test]
    fn per_container_series_carry_the_cgroup_and_go_with_it() {
        let mut m = Metrics::per_container(true);
        m.observe(&net("deny", 5));
        let mut other = net("allow", 1);
        if let Record::Net(r) = &mut other {
            r.header.cgroup = Some("/other".into());
            r.header.cgroup_id = 2;
        }
        m.observe(&other);
        let text = m.render(&Gauges::default());
        assert!(
            text.contains("cgwarden_flows_total{kind=\"connect\",verdict=\"deny\",profile=\"web\",cgroup=\"/c\\\"x\",container=\"\"} 5"),
            "{text}"
        );
        m.forget(1);
        let text = m.render(&Gauges::default());
        assert!(!text.contains("/c\\\"x"), "{text}");
        assert!(text.contains("cgroup=\"/other\""), "{text}");
        // Rule counters stay (bounded by the profiles), until their profile goes.
        assert!(
            text.contains("rule=\"default\",verdict=\"deny\"} 5"),
            "{text}"
        );
        m.keep_rules_of(&["other"]);
        assert!(
            !m.render(&Gauges::default())
                .contains("cgwarden_rule_hits_total{")
        );
    }

    #[test]
    fn counts_records_occurrences_and_losses() {
        let mut m = Metrics::default();
        m.observe(&net("deny", 1));
        m.observe(&net("deny", 41));
        m.observe(&Record::Lost(LostRecord::ring_buffer_full(
            String::new(),
            3,
        )));
        let text = m.render(&Gauges::default());
        assert!(
            text.contains(
                "cgwarden_events_total{kind=\"connect\",verdict=\"deny\",profile=\"web\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "cgwarden_flows_total{kind=\"connect\",verdict=\"deny\",profile=\"web\"} 42"
        ));
        assert!(text.contains(
            "cgwarden_rule_hits_total{profile=\"web\",rule=\"default\",verdict=\"deny\"} 42"
        ));
        assert!(
            !text.contains("cgroup="),
            "no per-cgroup series by default: {text}"
        );
        assert!(text.contains("cgwarden_aggregated_repeats_total 40"));
        // Flows only: a bind is an event, not a flow.
        let mut bind = net("deny", 3);
        if let Record::Net(r) = &mut bind {
            r.header.kind = "bind";
        }
        m.observe(&bind);
        let text = m.render(&Gauges::default());
        assert!(
            text.contains("cgwarden_events_total{kind=\"bind\""),
            "{text}"
        );
        assert!(
            !text.contains("cgwarden_flows_total{kind=\"bind\""),
            "{text}"
        );
        assert!(text.contains("cgwarden_lost_events_total 3"));
        assert!(text.contains("# TYPE cgwarden_up gauge"));
        assert!(text.contains(&format!(
            "cgwarden_build_info{{version=\"{}\",build_id=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            crate::bpf::build_id()
        )));
    }

    #[test]
    fn serves_only_the_metrics_path() {
        assert!(http_response("GET /metrics HTTP/1.1", "x 1\n").starts_with("HTTP/1.1 200"));
        assert!(http_response("GET /secret HTTP/1.1", "").starts_with("HTTP/1.1 404"));
        for probe in ["/healthz", "/readyz"] {
            let answer = http_response(&format!("GET {probe} HTTP/1.1"), "x 1\n");
            assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\nok\n"));
        }
    }
}
