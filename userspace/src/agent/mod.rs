//! The agent: keeps the kernel's maps in line with the loaded profiles and the cgroups
//! they select, and turns kernel records into events on a sink.
//!
//! `cgwarden run` and `cgwarden exec` both drive one [`Agent`]; they differ only in where
//! the programs are attached and how cgroups get their profile (selectors for `run`, the
//! command's own cgroup for `exec`).
//!
//! One concern per file, each an `impl Agent` block or a part it uses: `install.rs`
//! (profiles → the kernel's maps, reload, retirement), `assign.rs` (cgroups ↔ profiles,
//! levels, the walk, processes already running), `discovery.rs` (containers from the
//! engines, the gate's holds and releases), `deviations.rs` (OCI configuration,
//! posture, credentials, writes under read-only paths), `dispatch.rs` (kernel records
//! to events, `kill-container`, metrics text, flushing), `status.rs` (what `status`
//! answers), `posture.rs`, `gate.rs`, `claims.rs`, `faults.rs`; here, the state and
//! its constructor.

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

mod assign;
mod claims;
mod deviations;
mod discovery;
mod dispatch;
mod faults;
mod gate;
mod install;
mod kernel;
mod posture;
mod status;
#[cfg(test)]
mod tests;
mod unknown;

use self::{assign::*, install::*};
pub use claims::{Claimed, Claims};
pub use kernel::KernelMaps;

use crate::{
    bpf::{Counters, Kernel},
    control::Followers,
    dns::resolver::Resolver,
    events::aggregate::Aggregator,
    events::{self, LostRecord, Raw, Record},
    host::cgroups,
    output::Sinks,
    output::metrics::{Gauges, Metrics},
    policy::{
        EgressDefault, Mode, Profile, ReportLevel,
        compile::{EgressEntry, NameEntry, compile_egress, compile_names, compile_syscalls},
    },
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
    /// The whole-address entries of `egress` go to `EGRESS_HOSTS`
    /// ([`cgwarden_common::profile_flags::HOSTS_HASHED`]).
    pub hosts_hashed: bool,
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

/// The running agent, over the kernel side `K` (the real one but in unit tests).
pub struct Agent<K: KernelMaps = Kernel> {
    kernel: K,
    cgroup_root: PathBuf,
    compiled: BTreeMap<String, Compiled>,
    names: Names,
    next_id: u32,
    assignments: HashMap<u64, Assignment>,
    paths: HashMap<u64, String>,
    /// Container identities by cgroup id, for events (see [`Agent::set_path`]).
    containers: std::cell::RefCell<ContainerCache>,
    /// Cgroups records named that no walk found (see [`unknown`]).
    unknown: unknown::Unknown,
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

impl<K: KernelMaps> Agent<K> {
    pub fn new(
        mut kernel: K,
        cgroup_root: PathBuf,
        sinks: Sinks,
        resolver: Resolver,
    ) -> anyhow::Result<Self> {
        kernel
            .write_escape_patterns(&crate::policy::syscalls::escape_patterns())
            .context("writing the escape path patterns")?;
        kernel
            .write_escape_files(&crate::policy::syscalls::escape_files())
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
        let cred_offsets = match crate::bpf::btf::kernel_cred_offsets(&vmlinux) {
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
            containers: Default::default(),
            unknown: unknown::Unknown::default(),
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
            own_cgroup: crate::host::procfs::cgroup_path(
                std::path::Path::new("/proc"),
                std::process::id(),
            )
            .filter(|p| p != "/"),
            retired: Vec::new(),
            resolver,
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
        let mut paths: Vec<PathBuf> = crate::policy::syscalls::RUNTIME_SOCKETS
            .iter()
            .map(PathBuf::from)
            .collect();
        paths.extend_from_slice(extra);
        self.postures
            .set_host(crate::posture::facts::Host::new(&paths));
        let files = crate::policy::syscalls::socket_files(&paths);
        for p in extra {
            if !crate::policy::syscalls::socket_files(std::slice::from_ref(p)).is_empty() {
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

    /// The cgroup2 mount the agent watches.
    pub fn cgroup_root(&self) -> &std::path::Path {
        &self.cgroup_root
    }

    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
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
}
impl<K: KernelMaps> events::Context for Agent<K> {
    fn syscall_arity(&self, nr: u32) -> usize {
        match self.kernel.watched_syscalls().get(&nr) {
            Some(
                crate::bpf::Watch::Tracepoint { arity, .. }
                | crate::bpf::Watch::RawTracepoints { arity, .. },
            ) => *arity,
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
        let generation = self.known.generation();
        let mut cache = self.containers.borrow_mut();
        if cache.generation != generation {
            cache.generation = generation;
            cache.by_cgroup.clear();
        }
        cache
            .by_cgroup
            .entry(cgroup_id)
            .or_insert_with(|| {
                self.paths
                    .get(&cgroup_id)
                    .and_then(|path| self.known.container_of(path))
            })
            .clone()
    }
}

/// The container identities of cgroups events came from, as of one generation of what
/// the agent knows of containers ([`crate::engines::known::Known::generation`]): emptied
/// when that changes, and an id's entry dropped when its path is set. Without it every
/// event walked its cgroup path's ancestors and parsed it.
#[derive(Default)]
struct ContainerCache {
    generation: u64,
    by_cgroup: HashMap<u64, Option<crate::engines::Identity>>,
}

impl<K: KernelMaps> Agent<K> {
    /// Records cgroup `id`'s path (and forgets its cached container identity).
    fn set_path(&mut self, id: u64, path: String) {
        self.containers.get_mut().by_cgroup.remove(&id);
        self.paths.insert(id, path);
    }
}

/// Where the kernel describes its own types.
const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

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
