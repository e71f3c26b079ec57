//! What `cgwarden status` answers, as types: the agent, its kernel features, each
//! profile with its counters, losses, faults, sinks, containers and the gate. The
//! client renders it as a table or prints it as JSON.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

use super::{Agent, KernelMaps};
use crate::{output::http::Health, policy::Mode};

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    pub ok: bool,
    pub version: &'static str,
    pub build_id: String,
    pub uptime_s: u64,
    pub profiles: Vec<ProfileStatus<'a>>,
    pub counters: KernelCounters,
    pub cgroup2: &'a Path,
    pub credentials: Credentials<'a>,
    pub oci_containers: usize,
    pub posture: PostureSummary,
    pub faults: BTreeMap<&'static str, u64>,
    pub sinks: Vec<Health>,
    pub gate: GateSummary,
}

/// One installed profile.
#[derive(Debug, Serialize)]
pub struct ProfileStatus<'a> {
    pub name: &'a str,
    pub source: &'a Path,
    pub mode: &'static str,
    /// Posture checks the profile requires, and the containers failing one.
    pub posture_required: Vec<&'static str>,
    pub posture_failing: Vec<Shortfall<'a>>,
    /// Occurrences of its records by verdict since the agent started.
    pub events: BTreeMap<String, u64>,
    pub egress_entries: usize,
    pub dns_names: usize,
    /// The cgroups it applies to; a parent entry shows as `<parent>/*`.
    pub cgroups: Vec<String>,
}

/// A container an enforcing profile selects that fails a check the profile requires.
#[derive(Debug, Serialize)]
pub struct Shortfall<'a> {
    pub cgroup: &'a str,
    pub container: Option<&'a crate::engines::Container>,
    pub checks: Vec<&'static str>,
}

/// The kernel's own counters.
#[derive(Debug, Serialize)]
pub struct KernelCounters {
    pub egress_checked: u64,
    pub egress_denied: u64,
    pub ringbuf_drops: u64,
}

/// Whether the kernel's credential layout was found (the uid, capability and
/// no-new-privileges checks need it).
#[derive(Debug, Serialize)]
pub struct Credentials<'a> {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct PostureSummary {
    pub enabled: bool,
    pub containers: usize,
    pub failing: usize,
}

#[derive(Debug, Serialize)]
pub struct GateSummary {
    pub parents: Vec<String>,
    pub held: usize,
    pub released: u64,
}

impl<K: KernelMaps> Agent<K> {
    /// What `cgwarden status` shows.
    pub fn status(&self) -> Status<'_> {
        let counters = self.kernel.counters().unwrap_or_default();
        let profiles = self
            .compiled
            .values()
            .map(|c| {
                let name = c.profile.name.as_str();
                let mut cgroups: Vec<String> = self
                    .assignments
                    .iter()
                    .filter(|(_, a)| a.profile == name)
                    .filter_map(|(id, a)| {
                        self.paths.get(id).map(|p| {
                            if a.descendants_only {
                                format!("{}/*", p.trim_end_matches('/'))
                            } else {
                                p.clone()
                            }
                        })
                    })
                    .collect();
                cgroups.sort_unstable();
                // Enforcing profiles name the containers that fail a required check.
                let posture_failing = if c.profile.mode == Mode::Enforce {
                    self.assignments
                        .iter()
                        .filter(|(_, a)| a.profile == name && !a.descendants_only)
                        .filter_map(|(id, _)| self.paths.get(id))
                        .filter(|path| self.known.oci_at(path).is_some())
                        .filter_map(|path| {
                            let short = self.posture_shortfall(path, &c.profile.runtime);
                            (!short.is_empty()).then(|| Shortfall {
                                cgroup: path,
                                container: self.known.own(path).map(|w| &w.container),
                                checks: short.iter().map(|(check, _)| check.id()).collect(),
                            })
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                ProfileStatus {
                    name,
                    source: &c.profile.source,
                    mode: match c.profile.mode {
                        Mode::Enforce => "enforce",
                        Mode::Audit => "audit",
                    },
                    posture_required: c.profile.runtime.posture.iter().map(|c| c.id()).collect(),
                    posture_failing,
                    events: self.metrics.verdicts_of(name),
                    egress_entries: c.rules.egress.len(),
                    dns_names: c.rules.names.len(),
                    cgroups,
                }
            })
            .collect();
        let (containers, failing) = self.postures.counts();
        Status {
            ok: true,
            version: env!("CARGO_PKG_VERSION"),
            build_id: crate::bpf::build_id(),
            uptime_s: self.started.elapsed().as_secs(),
            profiles,
            counters: KernelCounters {
                egress_checked: counters.egress_checked,
                egress_denied: counters.egress_denied,
                ringbuf_drops: counters.ringbuf_drops,
            },
            cgroup2: &self.cgroup_root,
            credentials: match &self.cred_offsets {
                Ok(()) => Credentials {
                    ok: true,
                    error: None,
                },
                Err(why) => Credentials {
                    ok: false,
                    error: Some(why),
                },
            },
            oci_containers: self.known.len(),
            posture: PostureSummary {
                enabled: self.postures.enabled(),
                containers,
                failing,
            },
            faults: self.faults.counts().into_iter().collect(),
            sinks: self.sinks.health(),
            gate: GateSummary {
                parents: self.gates.gate_paths(),
                held: self.gates.held,
                released: self.gates.released_total,
            },
        }
    }
}
