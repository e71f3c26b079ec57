//! The agent: keeps the kernel's maps in line with the loaded profiles and the cgroups
//! they select, and turns kernel records into events on a sink.
//!
//! `cgwarden run` and `cgwarden exec` both drive one [`Agent`]; they differ only in where
//! the programs are attached and how cgroups get their profile (selectors for `run`, the
//! command's own cgroup for `exec`).

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context as _;
use cgwarden_common::{
    Config, MAX_CGROUP_LEVELS, ProfileRef, SyscallKey, SyscallRule, config_flags, profile_flags,
};
use syscalls::Sysno;

mod claims;
mod faults;
mod gate;
mod posture;
mod status;

pub use claims::{Claimed, Claims};

use crate::{
    aggregate::Aggregator,
    bpf::{Counters, Kernel},
    cgroups,
    control::Followers,
    events::{self, LostRecord, Raw, Record},
    metrics::{Gauges, Metrics},
    policy::{
        EgressDefault, Mode, Profile, ReportLevel,
        compile::{EgressEntry, NameEntry, compile_egress, compile_names, compile_syscalls},
    },
    resolver::Resolver,
    sinks::Sinks,
};

/// A profile compiled under one id (ids change on every reload).
struct Compiled {
    profile: Profile,
    pref: ProfileRef,
    rules: Rules,
}

/// The map entries of one compiled profile.
#[derive(Default)]
pub struct Rules {
    pub id: u32,
    pub egress: Vec<EgressEntry>,
    pub names: Vec<NameEntry>,
    /// `DNS_SERVERS` entries of the profile: the resolvers it trusts.
    pub dns_servers: Vec<cgwarden_common::DnsServerKey>,
    pub syscalls: Vec<(SyscallKey, SyscallRule, Sysno)>,
    /// `DEVICE_RULES` entries: the device allowlist.
    pub devices: Vec<(cgwarden_common::DeviceKey, u32)>,
    /// `PROFILE_PATTERNS` entries of set `id`: the read-only and writable paths.
    pub patterns: Vec<cgwarden_common::PathPattern>,
    /// What the profile allows of a program's credentials after its exec.
    pub creds: Option<cgwarden_common::CredRule>,
}

/// Names and rule labels of every id ever installed, for events still in flight.
#[derive(Default)]
struct Names {
    by_id: HashMap<u32, (String, Vec<String>)>,
    syscall_labels: HashMap<u32, Vec<String>>,
}

/// Where a cgroup's profile came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    profile: String,
    level: u32,
    /// A parent cgroup whose children the profile selects (see
    /// `profile_flags::DESCENDANTS_ONLY`).
    descendants_only: bool,
}

/// The running agent.
pub struct Agent {
    kernel: Kernel,
    cgroup_root: PathBuf,
    compiled: BTreeMap<String, Compiled>,
    names: Names,
    next_id: u32,
    assignments: HashMap<u64, Assignment>,
    paths: HashMap<u64, String>,
    sinks: Sinks,
    metrics: Metrics,
    followers: Followers,
    clock_offset_ns: i128,
    counters: Counters,
    aggregator: Aggregator<cgwarden_common::NetEvent>,
    syscall_repeats: Aggregator<cgwarden_common::SyscallEvent>,
    /// Entries of the kernel's flow table at the last walk (a scrape does not walk it).
    flows_seen: usize,
    last_flush: Instant,
    /// When the agent started, for `status`.
    started: Instant,
    /// The agent's own cgroup (relative to the cgroup2 root), which no profile covers.
    own_cgroup: Option<String>,
    /// Egress entries of replaced profiles, removed once no program can still be
    /// using the old profile id (see [`RETIRE_AFTER`]).
    retired: Vec<(Instant, Rules)>,
    resolver: Resolver,
    /// The profiles as last loaded, to recompile when a DNS name's addresses change.
    sources: Vec<Profile>,
    /// The kernel's count of held-back repeats when last seen, and when it last moved
    /// (`None`: never, so a new agent does not walk the flow table for nothing).
    held_back_seen: u64,
    held_back_at: Option<Instant>,
    /// Learn mode: every record emitted.
    recorded: Option<Vec<Record>>,
    /// Uid deviations already reported: (cgroup, uid, program).
    deviations_seen: std::collections::HashSet<(u64, u32, String)>,
    /// Credential deviations already reported: (cgroup, deviation, program).
    creds_seen: std::collections::HashSet<(u64, &'static str, String)>,
    /// The host's containers, from the engines' state and metadata.
    known: crate::engines::known::Known,
    /// Gate entries and "unmonitored" entries, by cgroup (see [`gate`]).
    gates: gate::Entries,
    /// A process was held at the gate: rescan now.
    gate_wakeup: bool,
    /// Errors survived, by cause.
    faults: faults::Faults,
    /// Configuration deviations already reported: (cgroup, container id).
    oci_reported: std::collections::HashSet<(u64, String)>,
    /// Every container's posture (CIS Docker Benchmark checks).
    postures: posture::Tracker,
    /// `learn --select`: the cgroups the learning profile went to.
    claims: Option<Claims>,
    /// Whether the kernel side knows where the credentials are (from the kernel's
    /// BTF), or why not.
    cred_offsets: Result<(), String>,
    /// Levels (and cgroups) a previous agent left in the pinned maps: kept enforcing
    /// until this agent's own assignments replace them, then swept.
    inherited: Option<Inherited>,
}

/// What a previous agent left in pinned maps.
struct Inherited {
    levels: u32,
    sweep_at: Instant,
}

/// A program that read a cgroup's old profile id just before a reload switched it may
/// still look up that id's rules; old rules stay this long so it finds them. eBPF
/// programs run for microseconds, so this is a wide margin.
const RETIRE_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// Expired learned addresses are removed this long after they expire (the kernel
/// already ignores them); the delay keeps removal away from a refresh in flight.
const LEARNED_GRACE_NS: u64 = 30_000_000_000;

/// The kernel's aggregation window.
const AGGREGATE_WINDOW: std::time::Duration =
    std::time::Duration::from_nanos(cgwarden_common::AGGREGATE_WINDOW_NS);

/// How often the agent reports repeats the kernel counted but did not send.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Agent {
    pub fn new(
        mut kernel: Kernel,
        cgroup_root: PathBuf,
        sinks: Sinks,
        resolver: Resolver,
    ) -> anyhow::Result<Self> {
        kernel
            .write_escape_patterns(&crate::syscalls::escape_patterns())
            .context("writing the escape path patterns")?;
        kernel
            .write_escape_files(&crate::syscalls::escape_files())
            .context("writing the escape files")?;
        let config = kernel
            .read_config()
            .context("reading the kernel's settings")?;
        // Repeats a previous agent already counted are not reported again.
        let flows = kernel.flows();
        let flows_seen = flows.len();
        let mut aggregator = Aggregator::default();
        aggregator.prime(&flows);
        let mut syscall_repeats = Aggregator::default();
        syscall_repeats.prime(&kernel.syscall_repeats());
        let inherited = (config.levels != 0).then(|| Inherited {
            levels: config.levels,
            sweep_at: Instant::now() + RETIRE_AFTER,
        });
        if inherited.is_some() {
            log::info!("adopting the enforcement a previous agent left in the kernel");
        }
        // `CGWARDEN_BTF` names another BTF file (tests use it to see the refusal).
        let vmlinux =
            std::env::var_os("CGWARDEN_BTF").map_or_else(|| PathBuf::from(VMLINUX), PathBuf::from);
        let cred_offsets = match crate::btf::kernel_cred_offsets(&vmlinux) {
            Ok(offsets) => {
                if offsets.sock_valid == 0 {
                    log::warn!(
                        "the kernel's BTF lacks the socket layout: under `binds: loopback`, listen() on an unbound socket cannot be judged"
                    );
                }
                kernel
                    .write_cred_offsets(offsets)
                    .context("writing the credential offsets")?;
                log::debug!("credential offsets from {}: {offsets:?}", vmlinux.display());
                Ok(())
            }
            Err(e) => Err(format!("{e}")),
        };
        Ok(Self {
            kernel,
            cgroup_root,
            compiled: BTreeMap::new(),
            names: Names::default(),
            next_id: config.next_profile_id.max(1),
            assignments: HashMap::new(),
            paths: HashMap::new(),
            sinks,
            metrics: Metrics::default(),
            followers: Followers::default(),
            clock_offset_ns: clock_offset_ns(),
            counters: Counters::default(),
            aggregator,
            syscall_repeats,
            flows_seen,
            last_flush: Instant::now(),
            started: Instant::now(),
            own_cgroup: crate::procfs::cgroup_path(
                std::path::Path::new("/proc"),
                std::process::id(),
            )
            .filter(|p| p != "/"),
            retired: Vec::new(),
            resolver,
            sources: Vec::new(),
            deviations_seen: Default::default(),
            postures: posture::Tracker::default(),
            claims: None,
            creds_seen: Default::default(),
            recorded: None,
            held_back_seen: 0,
            held_back_at: None,
            inherited,
            cred_offsets,
            known: crate::engines::known::Known::new(crate::engines::Dirs::default()),
            gates: gate::Entries::default(),
            gate_wakeup: false,
            faults: faults::Faults::default(),
            oci_reported: Default::default(),
        })
    }

    /// Tells the kernel the host's container runtime API sockets (the known ones that
    /// exist, and `extra`), so a connect to one is known by the socket file it reaches.
    pub fn set_runtime_sockets(&mut self, extra: &[PathBuf]) -> anyhow::Result<()> {
        let mut paths: Vec<PathBuf> = crate::syscalls::RUNTIME_SOCKETS
            .iter()
            .map(PathBuf::from)
            .collect();
        paths.extend_from_slice(extra);
        self.postures
            .set_host(crate::posture::facts::Host::new(&paths));
        let files = crate::syscalls::socket_files(&paths);
        for p in extra {
            if !crate::syscalls::socket_files(std::slice::from_ref(p)).is_empty() {
                continue;
            }
            log::warn!("--runtime-socket {}: not a socket here", p.display());
        }
        log::debug!("runtime sockets by identity: {files:?}");
        self.kernel
            .set_runtime_sockets(&files)
            .context("writing the runtime sockets")?;
        Ok(())
    }

    /// Whether every container's posture is checked at discovery (on by default).
    pub fn set_posture(&mut self, enabled: bool) {
        self.postures.set_enabled(enabled);
    }

    /// Where the engines keep their state and metadata.
    pub fn set_engine_dirs(&mut self, dirs: crate::engines::Dirs) {
        self.known = crate::engines::known::Known::new(dirs);
    }

    /// The directories to watch for containers: the OCI state directories as they are
    /// now, and the parents where namespaced ones appear.
    pub fn state_dirs(&self) -> Vec<PathBuf> {
        let dirs = self.known.dirs();
        let mut out: Vec<PathBuf> = dirs.state_dirs().into_iter().map(|(d, _)| d).collect();
        out.extend(dirs.namespace_parents());
        out
    }

    /// The cgroup2 mount the agent watches.
    pub fn cgroup_root(&self) -> &std::path::Path {
        &self.cgroup_root
    }

    /// Whether containers appeared in (or left) the runtime's state directories since
    /// the last [`Agent::rescan`].
    pub fn oci_changed(&self) -> bool {
        self.known.changed()
    }

    /// Reads the state of containers that appeared in the engines' state directories
    /// and forgets those that went.
    fn refresh_containers(&mut self) {
        for c in self.known.refresh(&self.cgroup_root) {
            let who = &c.identity.container;
            log::info!(
                "{} container {} ({}) in cgroup {}",
                who.runtime,
                who.id,
                who.name.as_deref().unwrap_or("no name"),
                c.cgroup.as_deref().unwrap_or("?")
            );
        }
    }

    /// Whether a process was just held at the gate: the loop rescans at once.
    pub fn take_gate_wakeup(&mut self) -> bool {
        std::mem::take(&mut self.gate_wakeup)
    }

    /// Whether processes wait at the gate (the loop rescans on every tick, so each goes
    /// on once its container is known, or after the bound).
    pub fn holds_processes(&self) -> bool {
        !self.gates.held_is_empty()
    }

    /// Reports, once per container, where its OCI configuration promises less
    /// hardening than the profile its cgroup has.
    fn report_oci_deviations(&mut self) -> anyhow::Result<()> {
        let mut found = Vec::new();
        for (cgroup, a) in &self.assignments {
            if a.descendants_only {
                continue;
            }
            let Some(path) = self.paths.get(cgroup) else {
                continue;
            };
            let Some(c) = self.known.oci_at(path) else {
                continue;
            };
            if !self
                .oci_reported
                .insert((*cgroup, c.identity.container.id.clone()))
            {
                continue;
            }
            let Some(compiled) = self.compiled.get(&a.profile) else {
                continue;
            };
            let mut deviations =
                crate::engines::oci::deviations(&c.config, &compiled.profile.runtime);
            deviations.extend(
                self.posture_shortfall(path, &compiled.profile.runtime)
                    .into_iter()
                    .map(|(_, detail)| ("posture", detail)),
            );
            for (deviation, detail) in deviations {
                found.push(events::DeviationRecord {
                    time: events::rfc3339(now_ns()),
                    kind: "deviation",
                    verdict: "report",
                    deviation,
                    detail,
                    device: None,
                    write: None,
                    pid: c.init_pid,
                    tid: c.init_pid,
                    process: String::new(),
                    exe: None,
                    uid: c.config.uid,
                    gid: c.config.gid,
                    cgroup: Some(path.clone()),
                    cgroup_id: *cgroup,
                    profile: Some(a.profile.clone()),
                    who: Some(c.identity.clone()),
                    creds: None,
                });
            }
        }
        let assigned = &self.assignments;
        self.oci_reported
            .retain(|(id, _)| assigned.contains_key(id));
        for record in found {
            self.emit(&Record::Deviation(record))?;
        }
        Ok(())
    }

    /// Why the kernel's credential layout is unknown, or `Ok` when profiles may judge
    /// capabilities and no-new-privileges.
    pub fn credential_layout(&self) -> Result<(), &str> {
        self.cred_offsets
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }

    pub fn kernel_mut(&mut self) -> &mut Kernel {
        &mut self.kernel
    }

    /// Installs a new set of profiles atomically: every profile is compiled under a new
    /// id and written to the kernel before any cgroup is switched to it, each cgroup is
    /// switched with one map update, and the old entries are removed last. If anything
    /// fails before the switch, the previous profiles stay in force untouched.
    pub fn install(&mut self, profiles: Vec<Profile>) -> anyhow::Result<()> {
        let mut fresh = BTreeMap::new();
        let started = Instant::now();
        let sources = profiles.clone();
        for profile in &profiles {
            for name in profile.egress.rules.iter().flat_map(|r| r.to.iter()) {
                if let crate::policy::Destination::Name(name) = name {
                    self.resolver.want(name);
                }
            }
        }
        for profile in profiles {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            let context = || format!("profile `{}` ({})", profile.name, profile.source.display());
            let resolver = &self.resolver;
            let egress = compile_egress(id, &profile.egress, &|name| resolver.addresses(name))
                .with_context(context)?;
            let names = compile_names(id, &profile.egress).with_context(context)?;
            let dns_servers = trusted_resolvers(id, &profile, &self.resolver.servers());
            let mut syscalls = compile_syscalls(id, &profile.syscalls);
            let runtime = &profile.runtime;
            let patterns =
                crate::policy::paths::compile_paths(&runtime.read_only, &runtime.writable);
            if !patterns.is_empty() {
                crate::policy::paths::add_write_rules(id, &mut syscalls);
            }
            let devices = profile
                .runtime
                .devices
                .as_deref()
                .map(|d| crate::policy::devices::compile_devices(id, d))
                .unwrap_or_default();
            let pref = profile_ref(id, &profile);
            if profile.runtime.needs_creds()
                && let Err(why) = &self.cred_offsets
            {
                anyhow::bail!(
                    "profile `{}` ({}): `runtime.capabilities` and `runtime.no_new_privileges` need the kernel's credential layout, which is unknown: {why}",
                    profile.name,
                    profile.source.display()
                );
            }
            let creds = cred_rule(&profile.runtime, self.cred_offsets.is_ok());
            fresh.insert(
                profile.name.as_str().to_owned(),
                Compiled {
                    profile,
                    pref,
                    rules: Rules {
                        id,
                        egress,
                        names,
                        dns_servers,
                        syscalls,
                        devices,
                        patterns,
                        creds,
                    },
                },
            );
        }
        let mut written: Vec<&Compiled> = Vec::new();
        for c in fresh.values() {
            if let Err(e) = self.kernel.insert_rules(&c.rules) {
                for w in written.iter().chain(std::iter::once(&c)) {
                    let _ = self.kernel.remove_rules(&w.rules);
                }
                return Err(e).context("writing egress rules to the kernel");
            }
            written.push(c);
        }
        // Each watched syscall, and whether some rule judges it by its path at exit.
        let mut wanted: Vec<(Sysno, bool)> = fresh
            .values()
            .flat_map(|c| {
                c.rules
                    .syscalls
                    .iter()
                    // Every acting rule is watched at exit too: a call refused by seccomp
                    // before entry is seen only there.
                    .map(|(_, r, s)| (*s, r.action != 0 || r.path_filter != 0 || r.read_only != 0))
            })
            .collect();
        wanted.sort_by_key(|(s, exit)| (s.id(), !exit));
        wanted.dedup_by_key(|(s, _)| s.id());
        let track = !wanted.is_empty()
            || fresh.values().any(|c| {
                c.profile.runtime.user.is_some()
                    || c.rules.creds.is_some()
                    || c.profile.learn
                    // The gate holds a container's first process at its exec.
                    || c.profile.selector.selects_by_container()
            });
        if fresh.values().any(|c| c.profile.learn) {
            self.kernel
                .learn_syscalls()
                .context("attaching the syscall recorder")?;
        }
        let packet_sockets = fresh
            .values()
            .any(|c| c.pref.flags & profile_flags::DENY_RAW_SOCKETS != 0);
        let loopback_binds = fresh
            .values()
            .any(|c| c.pref.flags & profile_flags::BIND_LOOPBACK_ONLY != 0);
        if let Err(e) = self
            .kernel
            .track_processes(track)
            .and_then(|()| self.kernel.watch_syscalls(&wanted))
            .and_then(|()| self.kernel.watch_packet_sockets(packet_sockets))
            .and_then(|()| self.kernel.watch_listens(loopback_binds))
        {
            for w in &written {
                let _ = self.kernel.remove_rules(&w.rules);
            }
            return Err(e).context("attaching the syscall programs");
        }
        self.sources = sources;
        self.update_levels()?;
        let compiled_at = Instant::now();
        for c in fresh.values() {
            let labels = c
                .profile
                .egress
                .rules
                .iter()
                .map(|r| r.label.clone())
                .collect();
            self.names
                .by_id
                .insert(c.pref.id, (c.profile.name.as_str().to_owned(), labels));
            let syscall_labels = c
                .profile
                .syscalls
                .iter()
                .enumerate()
                .map(|(i, r)| match r.set {
                    Some(crate::policy::SyscallSet::Escape) => format!("syscalls[{i}] (escape)"),
                    None => format!("syscalls[{i}]"),
                })
                .collect();
            self.names.syscall_labels.insert(c.pref.id, syscall_labels);
        }
        let old = std::mem::replace(&mut self.compiled, fresh);
        let installed: Vec<&str> = self.compiled.keys().map(String::as_str).collect();
        self.metrics.keep_rules_of(&installed);
        // Switch every assigned cgroup to its profile's new id, or drop it.
        let assigned: Vec<(u64, Assignment)> = self
            .assignments
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (cgroup, a) in assigned {
            match self.compiled.get(&a.profile) {
                Some(c) => self
                    .kernel
                    .set_cgroup_profile(cgroup, with_scope(c.pref, a.descendants_only))
                    .context("switching a cgroup to the reloaded profile")?,
                None => self.unassign(cgroup)?,
            }
        }
        self.retired
            .extend(old.into_values().map(|c| (Instant::now(), c.rules)));
        let entries: usize = self.compiled.values().map(|c| c.rules.egress.len()).sum();
        log::info!(
            "installed {} profile(s): {entries} egress entries, compiled and loaded in {:.1} ms, switched in {:.1} ms",
            self.compiled.len(),
            (compiled_at - started).as_secs_f64() * 1e3,
            compiled_at.elapsed().as_secs_f64() * 1e3,
        );
        Ok(())
    }

    /// Removes the egress entries of replaced profiles once they cannot be in use.
    pub fn remove_retired(&mut self) -> anyhow::Result<()> {
        while let Some((since, _)) = self.retired.first() {
            if since.elapsed() < RETIRE_AFTER {
                break;
            }
            let (_, rules) = self.retired.remove(0);
            self.kernel
                .remove_rules(&rules)
                .context("removing the previous egress rules")?;
        }
        Ok(())
    }

    /// Periodic DNS upkeep: re-resolves names whose TTL ran out (recompiling the
    /// profiles when addresses changed) and forgets learned addresses long expired.
    pub fn dns_upkeep(&mut self) -> anyhow::Result<()> {
        if self.resolver.refresh_due() {
            let sources = self.sources.clone();
            self.install(sources)
                .context("recompiling profiles after a DNS change")?;
        }
        let now = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0);
        for (key, value) in self.kernel.learned() {
            if value.expires_ns.saturating_add(LEARNED_GRACE_NS) < now {
                self.kernel.forget_learned(&key, &value)?;
            }
        }
        Ok(())
    }

    /// Names of the installed profiles.
    pub fn profile_names(&self) -> Vec<String> {
        self.compiled.keys().cloned().collect()
    }

    /// The installed profiles, in name order.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.compiled.values().map(|c| &c.profile)
    }

    /// Applies a profile to a cgroup and its descendants.
    pub fn assign(
        &mut self,
        cgroup_id: u64,
        path: &str,
        level: u32,
        profile: &str,
    ) -> anyhow::Result<()> {
        self.assign_scoped(cgroup_id, path, level, profile, false)
    }

    /// Like [`Agent::assign`]; `descendants_only` applies the profile to the cgroups
    /// below `path` but not to `path` itself.
    pub fn assign_scoped(
        &mut self,
        cgroup_id: u64,
        path: &str,
        level: u32,
        profile: &str,
        descendants_only: bool,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            level < MAX_CGROUP_LEVELS,
            "cgroup {path} is {level} levels deep; cgwarden follows at most {MAX_CGROUP_LEVELS}"
        );
        let c = self
            .compiled
            .get(profile)
            .with_context(|| format!("no profile named `{profile}`"))?;
        let arm = !c.rules.syscalls.is_empty() && !descendants_only;
        let creds = c
            .rules
            .creds
            .filter(|_| !descendants_only)
            .map(|r| (c.pref.id, r));
        self.kernel
            .set_cgroup_profile(cgroup_id, with_scope(c.pref, descendants_only))?;
        if arm {
            self.arm_existing(path)?;
        }

        self.assignments.insert(
            cgroup_id,
            Assignment {
                profile: profile.to_owned(),
                level,
                descendants_only,
            },
        );
        self.paths.insert(cgroup_id, path.to_owned());
        self.update_levels()?;
        if !descendants_only {
            self.trust_container_resolvers(cgroup_id, path, profile)?;
        }
        if let Some((id, rule)) = creds {
            self.judge_running(cgroup_id, path, id, &rule)?;
        }
        Ok(())
    }

    /// Where a write the kernel reported under a read-only path lands, or `None` when it
    /// is no deviation after all: the kernel could not place the path (relative, or
    /// with `..`), and resolved here it lies under a writable path. A write the kernel
    /// refused with EROFS, or whose place is unknown, is always a deviation.
    fn place_write(&self, e: &cgwarden_common::SyscallEvent) -> Option<events::Placed> {
        use crate::policy::paths;
        let Some(written) = events::written_path(e) else {
            return Some(events::Placed {
                path: "?".to_owned(),
                written: None,
                location_unknown: true,
            });
        };
        if e.unresolved == 0 {
            return Some(events::Placed {
                path: written,
                written: None,
                location_unknown: false,
            });
        }
        // `rule` carries the index of the path argument judged.
        let dirfd = paths::write_syscall(e.nr).and_then(|s| {
            let arg = u8::try_from(e.rule).ok()?;
            let fd_arg = if arg == s.path { s.dirfd } else { s.dirfd2 }?;
            Some(e.args[usize::from(fd_arg) % 6] as i32)
        });
        let proc = std::path::Path::new("/proc");
        let Some(path) = paths::resolve(proc, e.header.pid, &written, dirfd) else {
            return Some(events::Placed {
                path: written,
                written: None,
                location_unknown: true,
            });
        };
        let refused = e.flags as i64 == -30;
        let runtime = self
            .names
            .by_id
            .get(&e.header.profile)
            .and_then(|(name, _)| self.compiled.get(name))
            .map(|c| &c.profile.runtime);
        let read_only =
            runtime.is_none_or(|r| paths::is_read_only(&r.read_only, &r.writable, &path));
        (read_only || refused).then(|| events::Placed {
            written: (path != written).then_some(written),
            path,
            location_unknown: false,
        })
    }

    /// The chain of processes from `pid` upwards, from the kernel's process table and,
    /// past it, /proc.
    fn ancestry(&self, mut pid: u32) -> Vec<events::Ancestor> {
        let mut chain = Vec::new();
        for _ in 0..8 {
            if pid <= 1 {
                break;
            }
            let (exe, ppid) = match self.kernel.process(pid) {
                Some(info) => (events::c_string(&info.exe), info.ppid),
                None => match crate::procfs::process(std::path::Path::new("/proc"), pid) {
                    Some(p) => (p.exe, p.ppid),
                    None => break,
                },
            };
            chain.push(events::Ancestor { pid, exe });
            pid = ppid;
        }
        chain
    }

    /// Makes syscall rules apply to the processes already in a cgroup (new ones are
    /// armed by the kernel when they execute a program). A runtime's set-up process is
    /// left alone: it is armed when it executes the container's program.
    fn arm_existing(&mut self, path: &str) -> anyhow::Result<()> {
        let dir = self.cgroup_root.join(path.trim_start_matches('/'));
        for pid in crate::procfs::pids_below(&dir) {
            let Some(p) = crate::procfs::process(std::path::Path::new("/proc"), pid) else {
                continue;
            };
            if crate::procfs::is_runtime_init(&p) {
                continue;
            }
            self.kernel.arm_process(p.pid, p.ppid, &p.exe)?;
        }
        Ok(())
    }

    /// Judges the credentials of the processes already in a cgroup (the kernel judges
    /// new ones at their exec). A runtime's set-up process is left alone.
    fn judge_running(
        &mut self,
        cgroup_id: u64,
        path: &str,
        profile: u32,
        rule: &cgwarden_common::CredRule,
    ) -> anyhow::Result<()> {
        let dir = self.cgroup_root.join(path.trim_start_matches('/'));
        let proc_root = std::path::Path::new("/proc");
        let now = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0);
        for pid in crate::procfs::pids_below(&dir) {
            let Some(p) = crate::procfs::process(proc_root, pid) else {
                continue;
            };
            if crate::procfs::is_runtime_init(&p) {
                continue;
            }
            let Some(status) = crate::running::status(proc_root, pid) else {
                continue;
            };
            let mut comm = [0u8; 16];
            let n = p.comm.len().min(15);
            comm[..n].copy_from_slice(&p.comm.as_bytes()[..n]);
            let header = cgwarden_common::EventHeader {
                kind: cgwarden_common::kind::CREDS,
                profile,
                ts_ns: now,
                cgroup_id,
                pid,
                tid: pid,
                uid: status.uid,
                gid: status.gid,
                comm,
            };
            if let Some(event) = crate::running::judge(&status, rule, header, &p.exe) {
                self.emit_creds(&event)?;
            }
        }
        Ok(())
    }

    /// Emits the deviations of a credentials record, once per container, deviation and
    /// program.
    fn emit_creds(&mut self, e: &cgwarden_common::CredsEvent) -> anyhow::Result<()> {
        for record in events::enrich_creds(e, &*self) {
            let key = (
                e.header.cgroup_id,
                record.deviation,
                record.exe.clone().unwrap_or_default(),
            );
            if self.creds_seen.len() > 100_000 {
                self.creds_seen.clear();
            }
            if self.creds_seen.insert(key) {
                self.emit(&Record::Deviation(record))?;
            }
        }
        Ok(())
    }

    /// Trusts the nameservers of the container's own resolv.conf (read through a
    /// process of the cgroup, `/proc/<pid>/root`) for a profile that learns names and
    /// names no resolvers itself: Docker's 127.0.0.11, a pod's cluster DNS.
    fn trust_container_resolvers(
        &mut self,
        cgroup_id: u64,
        path: &str,
        profile: &str,
    ) -> anyhow::Result<()> {
        let Some(c) = self.compiled.get(profile) else {
            return Ok(());
        };
        let dns = &c.profile.egress.dns;
        if !dns.servers.is_empty() || (!c.profile.egress.has_names() && !dns.report) {
            return Ok(());
        }
        let dir = self.cgroup_root.join(path.trim_start_matches('/'));
        let Some(text) = crate::procfs::pids_below(&dir).into_iter().find_map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf")).ok()
        }) else {
            return Ok(());
        };
        let servers: Vec<[u8; 16]> = crate::resolver::nameserver_addresses(&text)
            .into_iter()
            .map(kernel_addr)
            .collect();
        if !servers.is_empty() {
            log::debug!("cgroup {path}: trusting its resolvers {servers:?}");
            self.kernel
                .set_cgroup_resolvers(cgroup_id, &servers)
                .context("trusting a container's resolvers")?;
        }
        Ok(())
    }

    /// Stops applying a profile to a cgroup and forgets what it learned from DNS.
    pub fn unassign(&mut self, cgroup_id: u64) -> anyhow::Result<()> {
        self.kernel.remove_cgroup_profile(cgroup_id)?;
        self.kernel.remove_cgroup_resolvers(cgroup_id)?;
        self.assignments.remove(&cgroup_id);
        for (key, value) in self.kernel.learned() {
            if key.cgroup_id == cgroup_id {
                self.kernel.forget_learned(&key, &value)?;
            }
        }
        self.update_levels()
    }

    fn update_levels(&mut self) -> anyhow::Result<()> {
        let inherited = self.inherited.as_ref().map_or(0, |i| i.levels);
        let levels = self
            .assignments
            .values()
            .fold(inherited | self.gates.plan.levels(), |acc, a| {
                acc | (1u32 << a.level)
            });
        let dns = self
            .compiled
            .values()
            .any(|c| c.pref.flags & (profile_flags::LEARN_DNS | profile_flags::REPORT_DNS) != 0);
        let learn = self.compiled.values().any(|c| c.profile.learn);
        let mut flags = 0;
        if dns {
            flags |= config_flags::DNS;
        }
        if learn {
            flags |= config_flags::LEARN_SYSCALLS;
        }
        self.kernel.write_config(Config {
            levels,
            next_profile_id: self.next_id,
            flags,
            _reserved: 0,
        })?;
        Ok(())
    }

    /// Once this agent has applied its own profiles, removes what a previous agent left
    /// in pinned maps: cgroups it no longer selects and rules of old profile ids.
    pub fn sweep_inherited(&mut self) -> anyhow::Result<()> {
        let Some(inherited) = &self.inherited else {
            return Ok(());
        };
        if inherited.sweep_at > Instant::now() {
            return Ok(());
        }
        self.inherited = None;
        for (cgroup, _) in self.kernel.cgroup_profiles() {
            if !self.assignments.contains_key(&cgroup) && !self.gates.plan.contains(cgroup) {
                self.kernel.remove_cgroup_profile(cgroup)?;
            }
        }
        self.update_levels()?;
        let live: std::collections::HashSet<u32> = self
            .compiled
            .values()
            .map(|c| c.pref.id)
            .chain(self.retired.iter().map(|(_, r)| r.id))
            .collect();
        let removed = self.kernel.sweep_rules(|id| live.contains(&id))?;
        log::info!("removed {removed} rule entries a previous agent left");
        let unpinned = self.kernel.sweep_tracepoints();
        if unpinned > 0 {
            log::info!("detached {unpinned} syscall tracepoints no profile watches any more");
        }
        Ok(())
    }

    /// Whether the cgroup at `path` is the agent's own or one above it.
    fn holds_the_agent(&self, path: &str) -> bool {
        self.own_cgroup
            .as_deref()
            .is_some_and(|own| cgroups::contains(path, own))
    }

    /// Walks the cgroup tree and applies each profile's selector: new matching cgroups
    /// get the profile, vanished or no longer matching ones lose it. The first profile
    /// in name order whose selector matches wins.
    pub fn rescan(&mut self) -> anyhow::Result<()> {
        self.refresh_containers();
        let entries = cgroups::walk(&self.cgroup_root);
        self.known
            .note_paths(entries.iter().map(|e| e.path.as_str()));
        let mut wanted: HashMap<u64, (String, u32, String, bool)> = HashMap::new();
        let previous = std::mem::take(&mut self.paths);
        for e in &entries {
            self.paths.insert(e.id, e.path.clone());
            if self.claims.as_ref().is_some_and(|c| !c.allows(&e.path)) {
                continue;
            }
            // The agent never falls under its own profiles: a deny-all egress profile
            // on its pod or slice would cut it off from its resolvers and sinks.
            if self.holds_the_agent(&e.path) {
                continue;
            }
            let who = self.known.own(&e.path);
            if let Some(c) = self
                .compiled
                .values()
                .find(|c| c.profile.selector.matches_container(&e.path, who))
            {
                wanted.insert(
                    e.id,
                    (
                        c.profile.name.as_str().to_owned(),
                        e.level,
                        e.path.clone(),
                        false,
                    ),
                );
            }
        }
        // A selector `<parent>/*` also goes on the parent, for its children only: a new
        // container is covered from its first process, before this walk sees it.
        if let Some(claims) = &mut self.claims {
            // The first match: in path order, so the same container wins every time.
            let mut matched: Vec<(u64, &str)> = wanted
                .iter()
                .map(|(id, (_, _, path, _))| (*id, path.as_str()))
                .collect();
            matched.sort_by(|a, b| a.1.cmp(b.1));
            for (id, path) in matched {
                if claims.allows(path) {
                    claims.claim(path, id, self.known.own(path).cloned());
                }
            }
            let claims = &*claims;
            wanted.retain(|_, (_, _, path, _)| claims.allows(path));
        }
        // A learning run by selector covers containers from their first process
        // through the gate, never through a parent entry (which would cover every
        // child, claimed or not).
        for e in entries.iter().filter(|_| self.claims.is_none()) {
            if wanted.contains_key(&e.id) {
                continue;
            }
            if let Some(c) = self
                .compiled
                .values()
                .find(|c| c.profile.selector.children_of(&e.path))
            {
                wanted.insert(
                    e.id,
                    (
                        c.profile.name.as_str().to_owned(),
                        e.level,
                        e.path.clone(),
                        true,
                    ),
                );
            }
        }
        // A cgroup loses its profile when it no longer matches, or when it is proven
        // gone; one the walk missed (a directory it could not read) keeps it.
        let seen: std::collections::HashSet<u64> = entries.iter().map(|e| e.id).collect();
        // A gone cgroup's per-container series go with it (metrics, not enforcement: a
        // cgroup the walk missed only loses its series, and starts them again).
        for id in self.metrics.cgroups() {
            if !seen.contains(&id) {
                self.metrics.forget(id);
            }
        }
        let stale: Vec<u64> = self
            .assignments
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .filter(|id| {
                seen.contains(id)
                    || previous
                        .get(id)
                        .is_none_or(|path| cgroups::is_gone(&self.cgroup_root, path, **id))
            })
            .copied()
            .collect();
        for (id, path) in &previous {
            if self.assignments.contains_key(id) && !seen.contains(id) && !stale.contains(id) {
                self.paths.insert(*id, path.clone());
                self.faults.record(
                    "cgroup_walk",
                    &format!("cgroup {path} was not seen in the walk but is still there; it keeps its profile"),
                );
            }
        }
        for id in stale {
            if let Err(e) = self.unassign(id) {
                self.faults.record("unassign", &e);
            }
        }
        for (id, (profile, level, path, below)) in wanted {
            let current = self.assignments.get(&id);
            if current.is_none_or(|a| a.profile != profile || a.descendants_only != below) {
                if below {
                    log::info!("cgroups below {path} get profile `{profile}`");
                } else {
                    log::info!("cgroup {path} gets profile `{profile}`");
                }
                // One cgroup that cannot get its profile (too deep, a full map) does
                // not keep the others from theirs; it is tried again next rescan.
                if let Err(e) = self.assign_scoped(id, &path, level, &profile, below) {
                    self.faults
                        .record("assign", &e.context(format!("cgroup {path}")));
                }
            }
        }
        let active = self.claims.is_some()
            || self
                .compiled
                .values()
                .any(|c| c.profile.selector.selects_by_container());
        let assignments = &self.assignments;
        let mut plan = gate::Plan::new(
            active,
            &entries,
            |id| assignments.contains_key(&id),
            &self.known,
            &self.gates.released,
        );
        // Below a gate or a parent entry the agent's own cgroup would be covered by
        // them: an "unmonitored" entry of its own keeps it out.
        if let Some(own) = self.own_cgroup.as_deref()
            && let Some(e) = entries.iter().find(|e| e.path == own)
        {
            let covered = entries.iter().any(|a| {
                a.path != own
                    && self.holds_the_agent(&a.path)
                    && (plan.gates.contains_key(&a.id)
                        || self
                            .assignments
                            .get(&a.id)
                            .is_some_and(|x| x.descendants_only))
            });
            if covered {
                plan.unmonitored.insert(e.id, (e.path.clone(), e.level));
            }
        }
        self.apply_gates(plan)?;
        self.release_held()?;
        self.report_postures()?;
        self.report_oci_deviations()
    }

    /// Emits a `posture` event for each container whose posture is new or changed.
    fn report_postures(&mut self) -> anyhow::Result<()> {
        for state in self.postures.update(&self.known) {
            let Some(entry) = self.postures.get(&state) else {
                continue;
            };
            let profile = entry.cgroup.as_deref().and_then(|path| {
                self.paths
                    .iter()
                    .find(|(_, p)| p.as_str() == path)
                    .and_then(|(id, _)| self.assignments.get(id))
                    .filter(|a| !a.descendants_only)
                    .map(|a| a.profile.clone())
            });
            let record = events::PostureRecord {
                time: events::rfc3339(now_ns()),
                kind: "posture",
                cgroup: entry.cgroup.clone(),
                who: entry.identity.clone(),
                profile,
                posture: entry.posture.clone(),
            };
            self.emit(&Record::Posture(Box::new(record)))?;
        }
        Ok(())
    }

    /// What the agent knows of every container's posture (`cgwarden posture`).
    pub fn postures(&self) -> serde_json::Value {
        let containers: Vec<serde_json::Value> = self
            .postures
            .all()
            .into_iter()
            .map(|e| crate::posture::assessed_json(&e.identity, e.cgroup.as_deref(), &e.posture))
            .collect();
        serde_json::json!({
            "ok": true,
            "enabled": self.postures.enabled(),
            "containers": containers,
        })
    }

    /// The required posture checks (`runtime.posture`) a container fails or that
    /// cannot be decided: (check, what the evidence says).
    fn posture_shortfall(
        &self,
        path: &str,
        runtime: &crate::policy::Runtime,
    ) -> Vec<(crate::posture::Check, String)> {
        if runtime.posture.is_empty() {
            return Vec::new();
        }
        let Some(entry) = self.postures.at_cgroup(path) else {
            return runtime
                .posture
                .iter()
                .map(|c| (*c, "the container's posture is not known".to_owned()))
                .collect();
        };
        runtime
            .posture
            .iter()
            .filter_map(|c| {
                let f = entry.posture.finding(*c)?;
                (f.verdict != crate::posture::Verdict::Pass).then(|| {
                    let evidence: Vec<String> = f.evidence.iter().map(|e| e.to_string()).collect();
                    (
                        *c,
                        format!(
                            "{} ({}) is {}: {}",
                            c.id(),
                            f.title,
                            f.verdict.as_str(),
                            evidence.join("; ")
                        ),
                    )
                })
            })
            .collect()
    }

    /// Writes the gate and "unmonitored" entries of `plan` and removes those it drops.
    fn apply_gates(&mut self, plan: gate::Plan) -> anyhow::Result<()> {
        if plan == self.gates.plan {
            return Ok(());
        }
        for (id, entry) in plan.kernel_entries() {
            if !self.gates.plan.contains(id) {
                self.kernel
                    .set_cgroup_profile(id, entry)
                    .context("writing a gate entry")?;
            }
        }
        for id in self.gates.plan.dropped_in(&plan) {
            // A cgroup that got a profile of its own has that entry now.
            if !self.assignments.contains_key(&id) {
                self.kernel.remove_cgroup_profile(id)?;
            }
        }
        for (path, _) in plan.gates.values() {
            if !self.gates.plan.gates.values().any(|(p, _)| p == path) {
                log::info!(
                    "new containers below {path} are held at their first exec until identified"
                );
            }
        }
        self.gates.plan = plan;
        self.gates.released.retain(|id| self.paths.contains_key(id));
        self.update_levels()
    }

    /// Lets the processes held at the gate go on once their container's cgroup has its
    /// entry, or once they waited too long (their cgroup is then unmonitored).
    fn release_held(&mut self) -> anyhow::Result<()> {
        let held = self.kernel.gated();
        self.gates.held = held.len();
        if held.is_empty() {
            return Ok(());
        }
        let now = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0);
        let decided = |cgroup: u64| {
            self.assignments
                .get(&cgroup)
                .is_some_and(|a| !a.descendants_only)
                || self.gates.plan.unmonitored.contains_key(&cgroup)
                // Gone, or no gate above it any more.
                || self.paths.get(&cgroup).is_none_or(|path| {
                    crate::engines::parent_of(path).is_none_or(|parent| {
                        !self.gates.plan.gates.values().any(|(p, _)| p == parent)
                    })
                })
        };
        let releases = gate::releases(&held, now, decided);
        for (pid, cgroup, why) in releases {
            if why == gate::Release::TimedOut {
                let path = self.paths.get(&cgroup).cloned().unwrap_or_default();
                log::warn!(
                    "cgroup {path}: no engine describes it within {} s; its processes run unmonitored",
                    gate::HOLD_AT_MOST_NS / 1_000_000_000
                );
                self.gates.released.insert(cgroup);
                if let Some(level) = entries_level(&path) {
                    self.gates.plan.unmonitored.insert(cgroup, (path, level));
                    self.kernel
                        .set_cgroup_profile(cgroup, gate::unmonitored_entry())
                        .context("writing an unmonitored entry")?;
                    self.update_levels()?;
                }
            }
            // SAFETY: kill(2) with a valid signal; a pid that is gone gives ESRCH.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
            self.kernel.forget_gated(pid)?;
            self.gates.held = self.gates.held.saturating_sub(1);
            self.gates.released_total += 1;
        }
        Ok(())
    }

    /// The cgroups whose new containers are held at the gate.
    pub fn gate_paths(&self) -> Vec<String> {
        self.gates.gate_paths()
    }

    /// Lets every held process go on (the agent stops and its entries go with it).
    pub fn release_all_held(&mut self) {
        for (pid, _) in self.kernel.gated() {
            // SAFETY: kill(2) with a valid signal.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
            let _ = self.kernel.forget_gated(pid);
        }
    }

    /// Decodes, enriches and writes one ring-buffer record.
    pub fn handle_record(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let decoded = events::decode(bytes);
        if let Ok(raw) = &decoded {
            let id = raw.header().cgroup_id;
            if !self.paths.contains_key(&id) {
                self.learn_path(id);
            }
        }
        match decoded {
            Ok(Raw::Net(e)) => {
                if let Some(count) = self.aggregator.on_event(&e) {
                    self.write_net(&e, count)?;
                }
            }
            Ok(Raw::Syscall(e)) => {
                // Calls the kernel does not aggregate carry no total.
                let count = if e.total == 0 {
                    Some(1)
                } else {
                    self.syscall_repeats.on_event(&e)
                };
                if let Some(count) = count {
                    self.write_syscall(&e, count)?;
                }
            }
            Ok(Raw::Socket(e)) => {
                let record = events::enrich_socket(&e, &*self);
                self.emit(&Record::Deviation(record))?;
            }
            Ok(Raw::Device(e)) => {
                let record = events::enrich_device(&e, &*self);
                self.emit(&Record::Deviation(record))?;
            }
            Ok(Raw::ReadOnly(e)) => {
                if let Some(placed) = self.place_write(&e) {
                    let record = events::enrich_read_only(&e, placed, &*self);
                    self.emit(&Record::Deviation(record))?;
                }
            }
            Ok(Raw::Deviation(e)) => {
                let record = events::enrich_deviation(&e, &*self);
                // One report per container, uid and program: a root shell running a
                // thousand commands is one deviation, not a thousand.
                let key = (
                    e.header.cgroup_id,
                    e.header.uid,
                    record.exe.clone().unwrap_or_default(),
                );
                if self.deviations_seen.len() > 100_000 {
                    self.deviations_seen.clear();
                }
                if self.deviations_seen.insert(key) {
                    self.emit(&Record::Deviation(record))?;
                }
            }
            Ok(Raw::Creds(e)) => self.emit_creds(&e)?,
            Ok(Raw::Gate(e)) => {
                log::debug!(
                    "pid {} held at the gate in cgroup {}",
                    e.header.pid,
                    e.header.cgroup_id
                );
                self.gate_wakeup = true;
            }
            Ok(Raw::Sysctl(e)) => {
                if !self.paths.contains_key(&e.header.cgroup_id) {
                    self.learn_path(e.header.cgroup_id);
                }
                let record = events::enrich_sysctl(&e, &*self);
                self.emit(&Record::Sysctl(record))?;
            }
            Ok(Raw::Dns(e)) => {
                if !self.paths.contains_key(&e.header.cgroup_id) {
                    self.learn_path(e.header.cgroup_id);
                }
                let record = events::enrich_dns(&e, &*self);
                if record.capped > 0 {
                    log::warn!(
                        "cgroup {}: `{}` has more addresses than the profile's cap; {} not allowed",
                        record.cgroup.as_deref().unwrap_or("?"),
                        record.name,
                        record.capped
                    );
                }
                self.emit(&Record::Dns(record))?;
            }
            Err(e) => log::warn!("dropping a kernel record: {e}"),
        }
        Ok(())
    }

    fn write_syscall(
        &mut self,
        e: &cgwarden_common::SyscallEvent,
        count: u64,
    ) -> anyhow::Result<()> {
        if !self.paths.contains_key(&e.header.cgroup_id) {
            self.learn_path(e.header.cgroup_id);
        }
        // The kernel could not decide what a failed write-open reached: decided here,
        // and only an escape file or an unknown target is reported.
        let decided = if e.reached == cgwarden_common::reached::UNDECIDED {
            let cgroup = self
                .paths
                .get(&e.header.cgroup_id)
                .map(|p| self.cgroup_root.join(p.trim_start_matches('/')));
            let others = || {
                cgroup
                    .map(|c| crate::procfs::pids_below(&c))
                    .unwrap_or_default()
            };
            match undecided_reach(e, others) {
                Some(reached) => Some(reached),
                None => return Ok(()),
            }
        } else {
            None
        };
        // First the containment: every process of the container, before anything else.
        let killed = (e.action == cgwarden_common::syscall_action::KILL_CONTAINER
            && e.verdict == cgwarden_common::verdict::DENY)
            .then(|| self.kill_container(e.header.cgroup_id))
            .flatten();
        let mut record = events::enrich_syscall(e, count, &*self);
        record.killed_cgroup = killed;
        if decided.is_some() {
            record.reached = decided;
        }
        if record.ppid == 0 {
            // The process entered the cgroup before it executed (so the kernel never saw
            // its fork); /proc still knows its parent while it lives.
            if let Some(p) = crate::procfs::process(std::path::Path::new("/proc"), record.pid) {
                record.ppid = p.ppid;
            }
        }
        record.ancestry = self.ancestry(record.ppid);
        self.emit(&Record::Syscall(record))
    }

    /// Kills every process of the container a cgroup belongs to (`cgroup.kill`):
    /// the nearest cgroup on its path with a profile entry of its own, or the child of
    /// a parent entry (never the parent, which holds other containers). Returns the
    /// cgroup killed.
    fn kill_container(&mut self, task_cgroup: u64) -> Option<String> {
        let path = self.paths.get(&task_cgroup)?.clone();
        let mut at = path.as_str();
        let mut below: Option<&str> = None;
        let target = loop {
            let entry = self
                .assignments
                .iter()
                .find(|(id, _)| self.paths.get(id).is_some_and(|p| p == at));
            if let Some((_, a)) = entry {
                break if a.descendants_only { below } else { Some(at) };
            }
            below = Some(at);
            match crate::engines::parent_of(at) {
                Some("/") | None => break None,
                Some(parent) => at = parent,
            }
        }?
        .to_owned();
        let file = self
            .cgroup_root
            .join(target.trim_start_matches('/'))
            .join("cgroup.kill");
        match std::fs::write(&file, "1") {
            Ok(()) => {
                log::warn!("killed every process of cgroup {target} (kill-container)");
                Some(target)
            }
            Err(e) => {
                self.faults
                    .record("kill_container", &format!("{}: {e}", file.display()));
                None
            }
        }
    }

    fn write_net(&mut self, e: &cgwarden_common::NetEvent, count: u64) -> anyhow::Result<()> {
        if !self.paths.contains_key(&e.header.cgroup_id) {
            self.learn_path(e.header.cgroup_id);
        }
        let record = events::enrich_net(e, count, &*self);
        self.emit(&Record::Net(record))
    }

    /// Keeps a copy of every record from now on (learn mode).
    pub fn record_all(&mut self) {
        self.recorded = Some(Vec::new());
    }

    /// `learn --select`: the learning profile goes only to the cgroups `claims`
    /// allows, each container covered from its first process by the gate.
    pub fn claim(&mut self, claims: Claims) {
        self.claims = Some(claims);
    }

    /// What a selector-learning run claimed so far.
    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_ref()
    }

    /// What a learning run has seen so far: (flows, DNS answers, syscalls,
    /// deviations).
    pub fn learn_counts(&self) -> (usize, usize, usize, usize) {
        let records = self.recorded.as_deref().unwrap_or_default();
        let count = |kinds: &[&str]| records.iter().filter(|r| kinds.contains(&r.kind())).count();
        let syscalls = self
            .compiled
            .values()
            .filter(|c| c.profile.learn)
            .map(|c| self.kernel.syscalls_used(c.pref.id, None).len())
            .sum();
        (
            count(&["connect", "sendmsg", "packet", "bind"]),
            count(&["dns"]),
            syscalls,
            count(&["deviation", "syscall", "sysctl"]),
        )
    }

    /// The records kept since [`Agent::record_all`].
    pub fn recorded(&mut self) -> Vec<Record> {
        self.recorded.take().unwrap_or_default()
    }

    /// The syscalls the processes of a learning profile used: in the cgroup with id
    /// `cgroup` (and below it), or in any.
    pub fn syscalls_used(&self, profile: &str, cgroup: Option<u64>) -> Vec<u32> {
        self.compiled
            .get(profile)
            .map(|c| self.kernel.syscalls_used(c.pref.id, cgroup))
            .unwrap_or_default()
    }

    /// Sends a record to the sinks, the metrics and the followers. A sink that cannot
    /// write (a full disk) loses the record, counted as a fault; the others get it.
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        if let Some(kept) = &mut self.recorded {
            kept.push(record.clone());
        }
        self.metrics.observe(record);
        self.followers.send(record);
        if let Err(e) = self.sinks.emit(record) {
            self.faults.record("sink_write", &e);
        }
        Ok(())
    }

    /// Counts (and logs, once per cause while it repeats) an error the agent survives.
    pub fn fault(&mut self, cause: &'static str, error: &dyn std::fmt::Display) {
        self.faults.record(cause, error);
    }

    /// The faults survived, by cause.
    pub fn faults(&self) -> Vec<(&'static str, u64)> {
        self.faults.counts()
    }

    /// Adds a live event stream (`cgwarden events`).
    pub fn follow(&mut self, follower: crate::control::Follower) {
        self.followers.add(follower);
    }

    /// Gives each container its own metrics series (`--metrics-per-container`), gone
    /// when its cgroup goes.
    pub fn set_metrics_per_container(&mut self, on: bool) {
        self.metrics = Metrics::per_container(on);
    }

    /// The metrics exposition, with gauges read now.
    pub fn metrics_text(&self) -> String {
        let c = self.kernel.counters().unwrap_or_default();
        let egress_entries: usize = self
            .compiled
            .values()
            .map(|c| c.rules.egress.len())
            .chain(self.retired.iter().map(|(_, r)| r.egress.len()))
            .sum();
        let gauges = Gauges {
            egress_checked: c.egress_checked,
            egress_denied: c.egress_denied,
            dns_learned: c.dns_learned,
            dns_capped: c.dns_capped,
            faults: self.faults.counts(),
            sinks: self.sinks.health(),
            dns_untrusted: c.dns_untrusted,
            dns_forged: c.dns_forged,
            ringbuf_drops: c.ringbuf_drops,
            profiles: self.compiled.len() as u64,
            monitored_cgroups: self.assignments.len() as u64,
            maps: vec![
                (
                    "EGRESS",
                    egress_entries as u64,
                    u64::from(cgwarden_common::EGRESS_MAX_ENTRIES),
                ),
                (
                    "CGROUP_PROFILES",
                    self.assignments.len() as u64,
                    u64::from(cgwarden_common::CGROUP_MAX_ENTRIES),
                ),
                (
                    "FLOWS",
                    self.flows_seen as u64,
                    u64::from(cgwarden_common::FLOWS_MAX_ENTRIES),
                ),
                (
                    "LEARNED",
                    self.kernel.learned().len() as u64,
                    u64::from(cgwarden_common::LEARNED_MAX_ENTRIES),
                ),
            ],
            posture: self
                .postures
                .all()
                .into_iter()
                .map(|e| {
                    let c = &e.identity.container;
                    crate::metrics::PostureGauge {
                        container: c.name.clone().unwrap_or_default(),
                        id: c.id.chars().take(12).collect(),
                        passed: e.posture.passed as u64,
                        failed: e.posture.failed as u64,
                        unknown: e.posture.unknown as u64,
                    }
                })
                .collect(),
            resident_bytes: crate::metrics::resident_bytes(),
            programs: self.kernel.program_stats(),
            bpf_stats: std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
                .is_ok_and(|v| v.trim() == "1"),
        };
        self.metrics.render(&gauges)
    }

    /// Reports repeats the kernel counted but did not send. `force` flushes now (at
    /// shutdown, after the last events were drained).
    pub fn flush_aggregates(&mut self, force: bool) -> anyhow::Result<()> {
        if !force && self.last_flush.elapsed() < FLUSH_EVERY {
            return Ok(());
        }
        // Walking the kernel's flow table is only worth it while the kernel is holding
        // back repeats: until two windows after the last one it counted.
        let held_back = self.counters.aggregated;
        if held_back != self.held_back_seen {
            self.held_back_seen = held_back;
            self.held_back_at = Some(Instant::now());
        }
        let quiet = self
            .held_back_at
            .is_none_or(|at| at.elapsed() > 2 * AGGREGATE_WINDOW);
        if !force && quiet {
            return Ok(());
        }
        self.last_flush = Instant::now();
        let flows = self.kernel.flows();
        self.flows_seen = flows.len();
        let now = if force {
            u64::MAX
        } else {
            u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
        };
        for (event, count) in self.aggregator.flush(&flows, now) {
            self.write_net(&event, count)?;
        }
        let repeats = self.kernel.syscall_repeats();
        for (event, count) in self.syscall_repeats.flush(&repeats, now) {
            self.write_syscall(&event, count)?;
        }
        Ok(())
    }

    /// Finds the path of a cgroup created since the last walk (a nested cgroup of a
    /// monitored one) by walking below the monitored cgroups.
    fn learn_path(&mut self, id: u64) {
        for e in cgroups::walk(&self.cgroup_root) {
            self.paths.insert(e.id, e.path);
        }
        if !self.paths.contains_key(&id) {
            log::debug!("cgroup {id} is gone before its path was known");
        }
    }

    /// Emits a `lost` record when the kernel counted ring-buffer drops since last time.
    pub fn check_counters(&mut self) -> anyhow::Result<()> {
        let now = self.kernel.counters()?;
        let lost = now
            .ringbuf_drops
            .saturating_sub(self.counters.ringbuf_drops);
        if lost > 0 {
            let record = LostRecord::ring_buffer_full(events::rfc3339(now_ns()), lost);
            self.emit(&Record::Lost(record))?;
        }
        self.counters = now;
        Ok(())
    }

    /// Flushes the sinks; a sink that cannot write is a fault, not an end.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Err(e) = self.sinks.flush() {
            self.faults.record("sink_flush", &e);
        }
        Ok(())
    }
}

impl events::Context for Agent {
    fn syscall_arity(&self, nr: u32) -> usize {
        match self.kernel.watched_syscalls().get(&nr) {
            Some(crate::bpf::Watch::Tracepoint { arity }) => *arity,
            _ => 6,
        }
    }

    fn syscall_rule(&self, profile: u32, rule: u32) -> Option<String> {
        self.names
            .syscall_labels
            .get(&profile)
            .and_then(|l| l.get(rule as usize).cloned())
    }

    fn profile(&self, id: u32) -> Option<(&str, &[String])> {
        self.names
            .by_id
            .get(&id)
            .map(|(name, labels)| (name.as_str(), labels.as_slice()))
    }

    fn cgroup_path(&self, id: u64) -> Option<String> {
        self.paths.get(&id).cloned()
    }

    fn wall_clock(&self, monotonic_ns: u64) -> u128 {
        (i128::from(monotonic_ns) + self.clock_offset_ns).max(0) as u128
    }

    fn container(&self, cgroup_id: u64) -> Option<crate::engines::Identity> {
        self.paths
            .get(&cgroup_id)
            .and_then(|path| self.known.container_of(path))
    }
}

/// The level of a cgroup path (`/` is 0).
fn entries_level(path: &str) -> Option<u32> {
    if path.is_empty() {
        return None;
    }
    Some(path.trim_end_matches('/').matches('/').count() as u32 - u32::from(path == "/"))
}

/// Where the kernel describes its own types.
const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// What a profile allows of credentials after an exec; `None` when it asks nothing the
/// kernel can check (`known`: the credential offsets are known).
fn cred_rule(runtime: &crate::policy::Runtime, known: bool) -> Option<cgwarden_common::CredRule> {
    use cgwarden_common::cred_rule;
    if !known {
        return None;
    }
    let mut rule = cgwarden_common::CredRule::default();
    if let Some(caps) = runtime.capabilities {
        rule.flags |= cred_rule::CAPS;
        rule.allowed_caps = caps.0;
    }
    if runtime.no_new_privileges {
        rule.flags |= cred_rule::NO_NEW_PRIVS;
    }
    if let Some(uid) = runtime.user {
        rule.flags |= cred_rule::EUID;
        rule.expected_euid = uid;
    }
    (rule.flags != 0).then_some(rule)
}

/// The resolvers a profile trusts (`DNS_SERVERS` entries of its id): its own
/// `egress.dns.servers`, else the agent's resolvers (the container's own resolv.conf is
/// added per cgroup when it gets the profile).
fn trusted_resolvers(
    id: u32,
    profile: &Profile,
    agent_resolvers: &[std::net::IpAddr],
) -> Vec<cgwarden_common::DnsServerKey> {
    let dns = &profile.egress.dns;
    if !profile.egress.has_names() && !dns.report {
        return Vec::new();
    }
    let servers = if dns.servers.is_empty() {
        agent_resolvers
    } else {
        &dns.servers
    };
    servers
        .iter()
        .map(|ip| cgwarden_common::DnsServerKey {
            scope: cgwarden_common::DNS_SCOPE_PROFILE | u64::from(id),
            addr: kernel_addr(*ip),
        })
        .collect()
}

/// An address as the kernel keys it: IPv6, or IPv4 v4-mapped.
fn kernel_addr(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// A profile entry for a cgroup, or for the cgroups below it.
fn with_scope(mut pref: ProfileRef, descendants_only: bool) -> ProfileRef {
    if descendants_only {
        pref.flags |= profile_flags::DESCENDANTS_ONLY;
    }
    pref
}

/// What the kernel needs to know about a profile for every hook.
fn profile_ref(id: u32, profile: &Profile) -> ProfileRef {
    let mut flags = 0;
    if profile.mode == Mode::Enforce {
        flags |= profile_flags::ENFORCE;
    }
    if profile.egress.default == EgressDefault::Allow {
        flags |= profile_flags::EGRESS_DEFAULT_ALLOW;
    }
    if profile.egress.report == ReportLevel::All {
        flags |= profile_flags::REPORT_ALLOWED;
    }
    if profile.egress.has_names() {
        flags |= profile_flags::LEARN_DNS;
    }
    if profile.egress.dns.report {
        flags |= profile_flags::REPORT_DNS;
    }
    // The escape set also covers writes under /proc/sys, through the sysctl hook.
    for rule in &profile.syscalls {
        if rule.set == Some(crate::policy::SyscallSet::Escape) {
            flags |= profile_flags::WATCH_SYSCTL;
            if rule.action.kills() {
                flags |= profile_flags::DENY_SYSCTL;
            }
        }
    }
    if profile.runtime.binds == crate::policy::Binds::Loopback {
        flags |= profile_flags::BIND_LOOPBACK_ONLY;
    }
    if profile.raw_sockets() == crate::policy::RawSockets::Deny {
        flags |= profile_flags::DENY_RAW_SOCKETS;
    }
    if profile.learn {
        flags |= profile_flags::LEARN_SYSCALLS;
    }
    if profile.runtime.devices.is_some() {
        flags |= profile_flags::RESTRICT_DEVICES;
    }
    ProfileRef {
        id,
        flags,
        dns_cap: profile.egress.dns.max_addresses_per_name,
        expected_uid_plus_one: profile.runtime.user.map_or(0, |u| u.saturating_add(1)),
        dns_max_ttl: profile.egress.dns.max_ttl.0,
        _pad: 0,
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Offset from `CLOCK_MONOTONIC` (what the kernel stamps) to wall-clock time.
fn clock_offset_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC)
}

fn now_ns() -> u128 {
    clock_ns(libc::CLOCK_REALTIME).max(0) as u128
}

/// What a failed write-open the kernel could not judge reached, resolved in the
/// caller's root (see [`crate::reach`]; `others`: the processes of its cgroup, whose
/// root serves when it is gone, listed only then): `Some` for an escape file or an unknown target
/// (reported), `None` when it reached nothing that matters.
fn undecided_reach(
    e: &cgwarden_common::SyscallEvent,
    others: impl FnOnce() -> Vec<u32>,
) -> Option<events::Reached> {
    use crate::reach::{Reach, reach};
    let unknown = |why: String| events::Reached {
        by: "agent".to_owned(),
        fs: None,
        name: None,
        path: None,
        unknown: Some(why),
    };
    if e.path_len as usize >= cgwarden_common::SYSCALL_PATH_BYTES {
        return Some(unknown(format!(
            "the path is longer than the {} bytes the kernel reads",
            cgwarden_common::SYSCALL_PATH_BYTES - 1
        )));
    }
    let Some(written) = events::written_path(e) else {
        return Some(unknown("the path could not be read".to_owned()));
    };
    // open(path, ...) has no directory; openat and openat2 name theirs first.
    let dirfd = (i64::from(e.nr) != libc::SYS_open).then_some(e.args[0] as i32);
    match reach(
        std::path::Path::new("/proc"),
        e.header.pid,
        others,
        &written,
        dirfd,
    ) {
        Reach::File { magic, name, path } => crate::syscalls::is_escape_file(magic, &name)
            .then(|| events::Reached::file("agent", magic, name, Some(path))),
        Reach::Nothing => None,
        Reach::Unknown(why) => Some(unknown(why)),
    }
}
