//! `cargo xtask bench egress`: what cgwarden costs a process that makes connections,
//! against a baseline and against nftables, all measured in one run.
//!
//! The client, `connbench` (tests/src/bin/connbench.rs), runs the loops itself and prints
//! one JSON line, so process start-up is never measured: N × (connect to a listener of
//! its own on 127.0.0.1, accept, close) and M × unconnected UDP `sendto` to a socket of
//! its own on 127.0.0.1. Configurations:
//!
//! - (a) no agent: the client in a plain cgroup v2 cgroup made by the bench;
//! - (b) `cgwarden exec` with a 10-rule allowlist (10 distinct 10.x.y.z/32 + 127.0.0.1);
//! - (c) the same with 100,000 distinct 10.x.y.z/32 rules + 127.0.0.1;
//! - (d) nftables: an output chain with `socket cgroupv2` matching the client's plain
//!   cgroup and a 100,000-element interval set of `CIDR . port range` (the same
//!   CIDRs), loaded before and deleted after each of its runs so that it never taxes the
//!   other configurations' packets;
//! - (e) `cgwarden exec` with a profile without rules (`default: allow`): the cost of
//!   the hooks alone.
//!
//! Every repetition runs every configuration once, in an order rotated by one each
//! repetition, so drift and position effects are spread over all of them. After its
//! timed loops each client sends one datagram to 127.0.0.2:9, which (b), (c) and (d)
//! must refuse with EPERM and (a) and (e) must let through: a run that was not under
//! the rules it meant to measure fails the bench. Nothing is sent off loopback; the
//! 10.0.0.0/8 rules are never used as destinations.
//!
//! Load time: the agent's own log line (`compiled and loaded in … ms`, RUST_LOG=info),
//! and the wall time of `cgwarden exec --policy <100k> -- true` minus the same with a
//! 1-rule profile; nftables: the wall time of `nft -f` for its table.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};

use super::util::{
    Cgroup, Run, RunFacts, ScratchDir, cgroup2_mount, cgwarden_exec, check_cgroup, client_binary,
    dead_pid, dir_entries, env_reps, env_u64, json_field, json_number, max, median, min, output,
    publish, remove_stale_cgroup, remove_stale_dir, result_line, run_quiet, thousands,
    warn_if_busy, which,
};

/// Rules in the big profile and elements in the nftables set.
const BIG: usize = 100_000;
/// Rules in the small profile.
const SMALL: usize = 10;
/// A destination no profile allows (on loopback, so nothing leaves the machine).
const PROBE: &str = "127.0.0.2:9";
/// Timed rounds per client run; a run reports its median round.
const ROUNDS: u64 = 10;

struct Settings {
    reps: usize,
    tcp: u64,
    udp: u64,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let get = env_u64;
        Ok(Self {
            reps: env_reps(10)?,
            tcp: get("CGWARDEN_BENCH_TCP", 10_000)?.max(1),
            udp: get("CGWARDEN_BENCH_UDP", 200_000)?.max(1),
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Cgwarden,
    Nft,
}

struct Config {
    key: &'static str,
    label: &'static str,
    kind: Kind,
    /// The profile, for `Kind::Cgwarden`.
    policy: Option<PathBuf>,
    /// What the probe to a non-allowed destination must give.
    probe: &'static str,
}

#[derive(Clone, Copy)]
struct Sample {
    connect_ns: f64,
    udp_pps: f64,
}

/// The agent's `installed …` log line, parsed.
struct Installed {
    entries: u64,
    load_ms: f64,
}

pub fn run(root: &Path, bin: &Path) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let connbench = client_binary(bin, "connbench")?;
    let nft = which("nft").context("nft is not installed (`cargo xtask setup` installs it)")?;
    let true_bin = which("true").unwrap_or_else(|| PathBuf::from("/bin/true"));
    let cgroup2 = cgroup2_mount()?;
    let pid = std::process::id();
    remove_stale(root, &cgroup2, &nft);

    let run = Run::begin();
    warn_if_busy("egress", run.load_before());
    let audit = Audit::quiet_new_processes();
    eprintln!("bench egress: {}", audit.note());

    let scratch = ScratchDir::create(root.join(format!("target/bench/tmp-egress-{pid}")))?;
    let p1 = write_profile(scratch.path(), "bench1", 0, "deny")?;
    let p0 = write_profile(scratch.path(), "bench0", 0, "allow")?;
    let p10 = write_profile(scratch.path(), "bench10", SMALL, "deny")?;
    let p100k = write_profile(scratch.path(), "bench100k", BIG, "deny")?;

    let plain = Cgroup::create(&cgroup2, &format!("cgwarden-bench-{pid}-plain"))?;
    let nft_cgroup = Cgroup::create(&cgroup2, &format!("cgwarden-bench-{pid}-nft"))?;
    let table = format!("cgwarden_bench_{pid}");
    let nft_file = scratch.path().join("bench100k.nft");
    write_nft(&nft_file, &table, &cgroup2, &nft_cgroup, BIG)?;

    let configs = [
        Config {
            key: "a",
            label: "no agent (plain cgroup v2)",
            kind: Kind::Plain,
            policy: None,
            probe: "ok",
        },
        Config {
            key: "b",
            label: "cgwarden, 10 rules",
            kind: Kind::Cgwarden,
            policy: Some(p10),
            probe: "EPERM",
        },
        Config {
            key: "c",
            label: "cgwarden, 100,000 rules",
            kind: Kind::Cgwarden,
            policy: Some(p100k.clone()),
            probe: "EPERM",
        },
        Config {
            key: "d",
            label: "nftables `socket cgroupv2` + 100,000-element interval set",
            kind: Kind::Nft,
            policy: None,
            probe: "EPERM",
        },
        Config {
            key: "e",
            label: "cgwarden, no rules, `default: allow` (hooks only)",
            kind: Kind::Cgwarden,
            policy: Some(p0),
            probe: "ok",
        },
    ];

    let client_args = |join: Option<&Cgroup>| -> Vec<String> {
        let mut args = vec![
            "--tcp".to_owned(),
            settings.tcp.to_string(),
            "--udp".to_owned(),
            settings.udp.to_string(),
            "--rounds".to_owned(),
            ROUNDS.to_string(),
            "--probe".to_owned(),
            PROBE.to_owned(),
        ];
        if let Some(cg) = join {
            args.push("--join-cgroup".to_owned());
            args.push(cg.path().display().to_string());
        }
        args
    };

    let mut samples: Vec<Vec<Sample>> = configs.iter().map(|_| Vec::new()).collect();
    let mut agent_load_ms: Vec<f64> = Vec::new();
    let mut big_entries = 0;
    let mut nft_load_s: Vec<f64> = Vec::new();
    for rep in 0..settings.reps {
        for i in 0..configs.len() {
            let c = &configs[(i + rep) % configs.len()];
            // Let deferred work of the previous run (freeing maps, sets) settle.
            std::thread::sleep(Duration::from_millis(250));
            let (sample, installed) = match c.kind {
                Kind::Plain => {
                    let out = output(
                        Command::new(&connbench).args(client_args(Some(&plain))),
                        "connbench",
                    )?;
                    (check_client(c, &out, Some(plain.relative()))?, None)
                }
                Kind::Nft => {
                    let t0 = Instant::now();
                    let loaded = NftTable::load(&nft, &nft_file, &table)?;
                    nft_load_s.push(t0.elapsed().as_secs_f64());
                    let out = output(
                        Command::new(&connbench).args(client_args(Some(&nft_cgroup))),
                        "connbench",
                    );
                    drop(loaded);
                    (check_client(c, &out?, Some(nft_cgroup.relative()))?, None)
                }
                Kind::Cgwarden => {
                    let policy = c
                        .policy
                        .as_deref()
                        .context("cgwarden config without policy")?;
                    let mut cmd = cgwarden_exec(bin, policy, None);
                    cmd.env("RUST_LOG", "info")
                        .arg(&connbench)
                        .args(client_args(None));
                    let out = output(&mut cmd, "cgwarden exec -- connbench")?;
                    let installed = installed_line(&out.stderr)
                        .context("cgwarden did not log its `installed …` line")?;
                    (check_client(c, &out, None)?, Some(installed))
                }
            };
            if c.key == "c"
                && let Some(inst) = &installed
            {
                agent_load_ms.push(inst.load_ms);
                big_entries = inst.entries;
            }
            eprintln!(
                "[{}/{}] ({}) {:<58} {:>8.2} µs  {:>9.0} datagrams/s",
                rep + 1,
                settings.reps,
                c.key,
                c.label,
                sample.connect_ns / 1e3,
                sample.udp_pps
            );
            samples[(i + rep) % configs.len()].push(sample);
        }
    }

    // Load time: `exec -- true` with the big profile against a 1-rule profile.
    let mut wall_small = Vec::new();
    let mut wall_big = Vec::new();
    let mut check_diff = Vec::new();
    for rep in 0..settings.reps.min(7) {
        for big in [rep % 2 == 0, rep % 2 != 0] {
            let policy = if big { &p100k } else { &p1 };
            std::thread::sleep(Duration::from_millis(100));
            let mut cmd = cgwarden_exec(bin, policy, None);
            cmd.env("RUST_LOG", "info").arg(&true_bin);
            let t0 = Instant::now();
            let out = output(&mut cmd, "cgwarden exec -- true")?;
            let wall = t0.elapsed().as_secs_f64();
            if big {
                wall_big.push(wall);
                if let Some(inst) = installed_line(&out.stderr) {
                    agent_load_ms.push(inst.load_ms);
                    big_entries = inst.entries;
                }
            } else {
                wall_small.push(wall);
            }
        }
        // What parsing and validating alone take: `cgwarden check`, same pair.
        let mut check = [0.0; 2];
        for (slot, policy) in [&p100k, &p1].into_iter().enumerate() {
            let t0 = Instant::now();
            output(Command::new(bin).arg("check").arg(policy), "cgwarden check")?;
            check[slot] = t0.elapsed().as_secs_f64();
        }
        check_diff.push(check[0] - check[1]);
    }
    let wall_diff: Vec<f64> = wall_big
        .iter()
        .zip(&wall_small)
        .map(|(b, s)| b - s)
        .collect();

    let report = Report {
        audit: audit.note(),
        settings: &settings,
        configs: &configs,
        samples: &samples,
        agent_load_ms: &agent_load_ms,
        big_entries,
        wall_small: &wall_small,
        wall_big: &wall_big,
        wall_diff: &wall_diff,
        check_diff: &check_diff,
        nft_load_s: &nft_load_s,
        run: run.end(),
    }
    .render();
    publish(root, "egress", &report)?;
    drop(audit);
    Ok(())
}

/// Parses connbench's JSON line and checks that it ran where, and under what, we meant.
fn check_client(
    c: &Config,
    out: &std::process::Output,
    cgroup: Option<&str>,
) -> anyhow::Result<Sample> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = result_line(&stdout, "connect_ns")
        .with_context(|| format!("({}) no result line from connbench in:\n{stdout}", c.key))?;
    let number = |key: &str| -> anyhow::Result<f64> {
        json_number(line, key).with_context(|| format!("({}) no `{key}` in {line}", c.key))
    };
    let sample = Sample {
        connect_ns: number("connect_ns")?,
        udp_pps: number("udp_pps")?,
    };
    let probe = json_field(line, "probe").unwrap_or("?");
    if probe != c.probe {
        bail!(
            "({}) {}: a datagram to {PROBE} gave `{probe}`, expected `{}`: the client did not \
             run under the rules this configuration is meant to measure",
            c.key,
            c.label,
            c.probe
        );
    }
    check_cgroup(json_field(line, "cgroup").unwrap_or("?"), cgroup)
        .map_err(|e| anyhow!("({}) {e}", c.key))?;
    Ok(sample)
}

/// `installed 1 profile(s): 100001 egress entries, compiled and loaded in 123.4 ms, …`
fn installed_line(stderr: &[u8]) -> Option<Installed> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.contains("installed ") && l.contains("compiled and loaded in "))?;
    let entries = line
        .split(" egress entries")
        .next()?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()?;
    let load_ms = line
        .split("compiled and loaded in ")
        .nth(1)?
        .split(" ms")
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some(Installed { entries, load_ms })
}

/// The `i`-th of `n` distinct addresses in 10.0.0.0/8: multiplying by an odd constant
/// is a bijection modulo 2^24, so the addresses are distinct and look random.
fn address(i: usize) -> String {
    let v = ((i as u32).wrapping_add(1)).wrapping_mul(0x9E37_79B1) & 0x00FF_FFFF;
    format!("10.{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// An enforce profile allowing 127.0.0.1 and `rules` distinct 10.x.y.z/32, one rule
/// each; with `rules == 0` and `default: allow`, a profile without rules.
fn write_profile(dir: &Path, name: &str, rules: usize, default: &str) -> anyhow::Result<PathBuf> {
    let mut y = String::with_capacity(32 * rules + 256);
    let _ = writeln!(
        y,
        "name: {name}\nmode: enforce\negress:\n  default: {default}"
    );
    if default == "deny" {
        let _ = writeln!(y, "  allow:\n    - to: 127.0.0.1");
        for i in 0..rules {
            let _ = writeln!(y, "    - to: {}/32", address(i));
        }
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, y).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// An nftables table: an interval set of `CIDR . port range` with 127.0.0.1 and the
/// big profile's CIDRs, and an output chain dropping TCP/UDP from sockets of `cgroup`
/// to anything outside the set.
fn write_nft(
    path: &Path,
    table: &str,
    cgroup2: &Path,
    cgroup: &Cgroup,
    elements: usize,
) -> anyhow::Result<()> {
    // nft resolves the path under /sys/fs/cgroup and matches on the inode (= cgroup id);
    // the level is the depth in the cgroup v2 hierarchy.
    let nft_path = match cgroup2.strip_prefix("/sys/fs/cgroup") {
        Ok(rest) if rest.as_os_str().is_empty() => cgroup.relative()[1..].to_owned(),
        Ok(rest) => format!("{}{}", rest.display(), cgroup.relative()),
        Err(_) => format!("../../..{}{}", cgroup2.display(), cgroup.relative()),
    };
    let level = cgroup.relative().matches('/').count();
    let mut s = String::with_capacity(28 * elements + 512);
    let _ = writeln!(s, "table inet {table} {{");
    let _ = writeln!(s, "  set allow {{");
    let _ = writeln!(s, "    type ipv4_addr . inet_service");
    let _ = writeln!(s, "    flags interval");
    let _ = write!(s, "    elements = {{ 127.0.0.1 . 0-65535");
    for i in 0..elements {
        let _ = write!(s, ",\n      {}/32 . 0-65535", address(i));
    }
    let _ = writeln!(s, " }}\n  }}");
    let _ = writeln!(s, "  chain out {{");
    let _ = writeln!(
        s,
        "    type filter hook output priority filter; policy accept;"
    );
    let _ = writeln!(
        s,
        "    socket cgroupv2 level {level} \"{nft_path}\" meta l4proto {{ tcp, udp }} ip daddr . th dport != @allow drop"
    );
    let _ = writeln!(s, "  }}\n}}");
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// A loaded nftables table; deleted when dropped.
struct NftTable<'a> {
    nft: &'a Path,
    name: &'a str,
}

impl<'a> NftTable<'a> {
    fn load(nft: &'a Path, file: &Path, name: &'a str) -> anyhow::Result<Self> {
        // Guard first: a failed `nft -f` is one transaction and leaves nothing, but a
        // delete of a missing table is harmless.
        let table = Self { nft, name };
        run_quiet(Command::new(nft).arg("-f").arg(file), "nft -f")?;
        Ok(table)
    }
}

impl Drop for NftTable<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.nft)
            .args(["delete", "table", "inet", self.name])
            .output();
    }
}

/// Removes what an earlier bench killed before its guards ran (SIGKILL, Ctrl-C) left:
/// `cgwarden-bench-<pid>-*` cgroups, `cgwarden_bench_<pid>` tables and
/// `target/bench/tmp-egress-<pid>` directories of dead pids.
fn remove_stale(root: &Path, cgroup2: &Path, nft: &Path) {
    for (name, path) in dir_entries(&root.join("target/bench")) {
        if let Some(pid) = name.strip_prefix("tmp-egress-")
            && dead_pid(pid)
        {
            remove_stale_dir(&path);
        }
    }
    for (name, path) in dir_entries(cgroup2) {
        if let Some(rest) = name.strip_prefix("cgwarden-bench-")
            && let Some((pid, _)) = rest.split_once('-')
            && dead_pid(pid)
        {
            remove_stale_cgroup(&name, &path);
        }
    }
    if let Ok(out) = Command::new(nft).args(["list", "tables"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.strip_prefix("table inet ")
                && let Some(pid) = name.strip_prefix("cgwarden_bench_")
                && dead_pid(pid)
            {
                eprintln!("bench: removing stale nft table {name}");
                let _ = Command::new(nft)
                    .args(["delete", "table", "inet", name])
                    .output();
            }
        }
    }
}

/// Keeps the processes the bench starts off the audit slow path (DESIGN.md): once
/// auditd has run, every new task pays for syscall auditing until `auditctl -a
/// never,task`. The rule is removed again when dropped.
struct Audit {
    state: AuditState,
}

enum AuditState {
    NoAuditctl,
    Failed(String),
    Added(PathBuf),
}

impl Audit {
    fn quiet_new_processes() -> Self {
        let state = match which("auditctl") {
            None => AuditState::NoAuditctl,
            Some(auditctl) => {
                match run_quiet(
                    Command::new(&auditctl).args(["-a", "never,task"]),
                    "auditctl -a never,task",
                ) {
                    Ok(()) => AuditState::Added(auditctl),
                    Err(e) => AuditState::Failed(format!("{e:#}")),
                }
            }
        };
        Self { state }
    }

    fn note(&self) -> String {
        match &self.state {
            AuditState::NoAuditctl => {
                "auditctl not installed: audit slow path not addressed (no auditd here)".to_owned()
            }
            AuditState::Failed(e) => format!(
                "`auditctl -a never,task` failed ({e}); if auditd ever ran, every number \
                 carries the audit slow path"
            ),
            AuditState::Added(_) => {
                "ran `auditctl -a never,task` before measuring (removed afterwards)".to_owned()
            }
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if let AuditState::Added(auditctl) = &self.state {
            let _ = Command::new(auditctl).args(["-d", "never,task"]).output();
        }
    }
}

struct Report<'a> {
    audit: String,
    settings: &'a Settings,
    configs: &'a [Config],
    samples: &'a [Vec<Sample>],
    agent_load_ms: &'a [f64],
    big_entries: u64,
    wall_small: &'a [f64],
    wall_big: &'a [f64],
    wall_diff: &'a [f64],
    check_diff: &'a [f64],
    nft_load_s: &'a [f64],
    /// When the bench ran, and the load around it.
    run: RunFacts,
}

impl Report<'_> {
    fn render(&self) -> String {
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
            "- method: {} repetitions; each runs every configuration once, in an order \
             rotated by one each repetition. One run = one `connbench` process: {} × \
             (TCP connect to its own listener on 127.0.0.1, accept, close) and {} × \
             unconnected UDP `sendto` (64 bytes) to its own socket on 127.0.0.1, each after \
             a 10% untimed warm-up and timed in {ROUNDS} rounds; a run's value is its median \
             round. Shown: the median over the repetitions of those values (best run in \
             brackets); \"vs (a)\" is the median of the per-repetition ratios to (a) of the \
             same repetition, with their range. The whole bench took {:.0} s.",
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
        let base = &self.samples[0];
        let mut connect_ratio = Vec::new();
        for (c, v) in self.configs.iter().zip(self.samples) {
            let conn: Vec<f64> = v.iter().map(|x| x.connect_ns / 1e3).collect();
            let udp: Vec<f64> = v.iter().map(|x| x.udp_pps).collect();
            let rc: Vec<f64> = v
                .iter()
                .zip(base)
                .map(|(x, b)| x.connect_ns / b.connect_ns)
                .collect();
            let ru: Vec<f64> = v
                .iter()
                .zip(base)
                .map(|(x, b)| x.udp_pps / b.udp_pps)
                .collect();
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
        let _ = writeln!(o, "Targets:\n");
        let _ = writeln!(o, "| target | measured | met |");
        let _ = writeln!(o, "|---|---:|---|");
        let yes = |ok: bool| if ok { "yes" } else { "**no**" };
        for (i, what) in [(1, "10 rules"), (2, "100,000 rules")] {
            let r = connect_ratio.get(i).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                o,
                "| cgwarden ({what}) adds ≤ 5% to the no-agent connect time | {:+.1}% | {} |",
                (r - 1.0) * 100.0,
                yes(r <= 1.05)
            );
        }
        let load = median(self.agent_load_ms);
        let _ = writeln!(
            o,
            "| a 100,000-CIDR profile compiles and loads in < 0.3 s (agent log) | {:.0} ms | {} |",
            load,
            yes(load < 300.0)
        );
        let diff = median(self.wall_diff) * 1e3;
        let _ = writeln!(
            o,
            "| the same, as `exec` wall-time difference (adds YAML parsing and teardown) | {:.0} ms | {} |",
            diff,
            yes(diff < 300.0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct() {
        let set: std::collections::HashSet<String> = (0..BIG).map(address).collect();
        assert_eq!(set.len(), BIG);
        assert!(set.iter().all(|a| a.starts_with("10.")));
    }

    #[test]
    fn parses_the_installed_line() {
        let log = b"[2026 INFO  cgwarden::agent] installed 1 profile(s): 100001 egress entries, compiled and loaded in 123.4 ms, switched in 0.0 ms\n";
        let i = installed_line(log).expect("parsed");
        assert_eq!(i.entries, 100_001);
        assert!((i.load_ms - 123.4).abs() < 1e-9);
    }
}
