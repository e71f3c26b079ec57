//! Posture: every container's configuration checked against the runtime section of
//! the CIS Docker Benchmark, numbered as docker-bench-security numbers its checks, with
//! the evidence for each verdict (the configuration key, its value, and the file it
//! came from).
//!
//! - [`facts`]: what the engine wrote about a container (the OCI `config.json`,
//!   Docker's `hostconfig.json` and `config.v2.json`, Podman's annotations) and what
//!   the host says (its runtime sockets, its namespaces);
//! - [`checks`]: one function per check, deciding pass, fail or unknown from the facts;
//! - [`table`]: the per-container table `cgwarden posture` prints.
//!
//! A check the facts cannot decide (a port mapping Podman keeps in its own database, a
//! healthcheck only kubelet knows) is `unknown`, never `pass`.

pub mod checks;
pub mod facts;
pub mod table;

use serde::{Serialize, Serializer};

/// One check of the benchmark's runtime section (and 4.1, the container's user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    NonRootUser,
    Capabilities,
    Privileged,
    SensitiveMounts,
    PrivilegedPorts,
    HostNetwork,
    MemoryLimit,
    CpuShares,
    ReadOnlyRoot,
    PortInterface,
    HostPid,
    HostIpc,
    HostDevices,
    SharedPropagation,
    HostUts,
    Seccomp,
    NoNewPrivileges,
    Healthcheck,
    PidsLimit,
    DefaultBridge,
    HostUserns,
    RuntimeSocket,
}

impl Check {
    /// Every check, in the benchmark's order.
    pub const ALL: [Check; 22] = [
        Self::NonRootUser,
        Self::Capabilities,
        Self::Privileged,
        Self::SensitiveMounts,
        Self::PrivilegedPorts,
        Self::HostNetwork,
        Self::MemoryLimit,
        Self::CpuShares,
        Self::ReadOnlyRoot,
        Self::PortInterface,
        Self::HostPid,
        Self::HostIpc,
        Self::HostDevices,
        Self::SharedPropagation,
        Self::HostUts,
        Self::Seccomp,
        Self::NoNewPrivileges,
        Self::Healthcheck,
        Self::PidsLimit,
        Self::DefaultBridge,
        Self::HostUserns,
        Self::RuntimeSocket,
    ];

    /// The number docker-bench-security gives the check.
    pub fn id(self) -> &'static str {
        match self {
            Self::NonRootUser => "4.1",
            Self::Capabilities => "5.3",
            Self::Privileged => "5.4",
            Self::SensitiveMounts => "5.5",
            Self::PrivilegedPorts => "5.7",
            Self::HostNetwork => "5.9",
            Self::MemoryLimit => "5.10",
            Self::CpuShares => "5.11",
            Self::ReadOnlyRoot => "5.12",
            Self::PortInterface => "5.13",
            Self::HostPid => "5.15",
            Self::HostIpc => "5.16",
            Self::HostDevices => "5.17",
            Self::SharedPropagation => "5.19",
            Self::HostUts => "5.20",
            Self::Seccomp => "5.21",
            Self::NoNewPrivileges => "5.25",
            Self::Healthcheck => "5.26",
            Self::PidsLimit => "5.28",
            Self::DefaultBridge => "5.29",
            Self::HostUserns => "5.30",
            Self::RuntimeSocket => "5.31",
        }
    }

    /// What a pass means, in the benchmark's words (shortened).
    pub fn title(self) -> &'static str {
        match self {
            Self::NonRootUser => "container runs as a non-root user",
            Self::Capabilities => "capabilities restricted to Docker's default set",
            Self::Privileged => "not privileged",
            Self::SensitiveMounts => "no sensitive host directory mounted",
            Self::PrivilegedPorts => "no privileged host port mapped",
            Self::HostNetwork => "host network namespace not shared",
            Self::MemoryLimit => "memory limited",
            Self::CpuShares => "CPU priority set",
            Self::ReadOnlyRoot => "root filesystem read-only",
            Self::PortInterface => "ports bound to a specific host interface",
            Self::HostPid => "host PID namespace not shared",
            Self::HostIpc => "host IPC namespace not shared",
            Self::HostDevices => "no host device exposed",
            Self::SharedPropagation => "no shared mount propagation",
            Self::HostUts => "host UTS namespace not shared",
            Self::Seccomp => "seccomp profile in force",
            Self::NoNewPrivileges => "no-new-privileges set",
            Self::Healthcheck => "healthcheck configured",
            Self::PidsLimit => "PIDs limited",
            Self::DefaultBridge => "not on the default bridge",
            Self::HostUserns => "host user namespace not shared",
            Self::RuntimeSocket => "no container runtime socket mounted",
        }
    }

    /// The check a profile names: `"5.4"` as text, or as YAML reads `5.4`. A number
    /// cannot tell 5.3 from 5.30 (YAML reads both as 5.3): that one must be quoted.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.id() == text)
            .ok_or_else(|| {
                let ids: Vec<&str> = Self::ALL.iter().map(|c| c.id()).collect();
                format!(
                    "`{text}` is not a posture check (one of {})",
                    ids.join(", ")
                )
            })
    }

    fn from_number(n: f64) -> Result<Self, String> {
        let text = format!("{n}");
        if text == "5.3" {
            return Err(
                "YAML reads both 5.3 and 5.30 as the number 5.3: quote the check (\"5.3\" or \"5.30\")"
                    .to_owned(),
            );
        }
        // 5.10 is read as 5.1, 5.20 as 5.2: no check has the shorter number.
        Self::parse(&text).or_else(|e| Self::parse(&format!("{text}0")).map_err(|_| e))
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Check {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> serde::Deserialize<'de> for Check {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            Number(f64),
        }
        match Written::deserialize(d)? {
            Written::Text(t) => Self::parse(t.trim()),
            Written::Number(n) => Self::from_number(n),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// The facts the agent can read do not decide it.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        }
    }
}

/// One fact behind a verdict: a configuration key, its value, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// `mounts[3]`, `HostConfig.Privileged`, `/proc/<pid>/ns/net`.
    pub key: String,
    pub value: String,
    /// The file it came from (`<state.json> → bundle <config.json>` for the OCI config).
    pub file: String,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} in {}", self.key, self.value, self.file)
    }
}

/// One check's verdict with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: Check,
    pub title: &'static str,
    pub verdict: Verdict,
    pub evidence: Vec<Evidence>,
}

/// Every check's finding for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posture {
    pub passed: usize,
    pub failed: usize,
    pub unknown: usize,
    /// `11/22 PASS`, as the review scored it.
    pub score: String,
    pub checks: Vec<Finding>,
}

impl Posture {
    /// Runs every check on the facts.
    pub fn evaluate(facts: &facts::Facts) -> Self {
        Self::from_findings(
            Check::ALL
                .into_iter()
                .map(|check| {
                    let (verdict, evidence) = checks::decide(check, facts);
                    Finding {
                        id: check,
                        title: check.title(),
                        verdict,
                        evidence,
                    }
                })
                .collect(),
        )
    }

    fn from_findings(checks: Vec<Finding>) -> Self {
        let count = |v: Verdict| checks.iter().filter(|f| f.verdict == v).count();
        let (passed, failed, unknown) = (
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Unknown),
        );
        Self {
            passed,
            failed,
            unknown,
            score: format!("{passed}/{} PASS", checks.len()),
            checks,
        }
    }

    /// The finding of one check.
    pub fn finding(&self, check: Check) -> Option<&Finding> {
        self.checks.iter().find(|f| f.id == check)
    }
}

/// One container's posture as `cgwarden posture -o json` and the control socket give
/// it: the container's identity (flattened), its cgroup, and the posture.
pub fn assessed_json(
    who: &crate::engines::Identity,
    cgroup: Option<&str>,
    posture: &Posture,
) -> serde_json::Value {
    let mut v = serde_json::to_value(who).unwrap_or_default();
    v["cgroup"] = serde_json::json!(cgroup);
    v["posture"] = serde_json::to_value(posture).unwrap_or_default();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_named_as_docker_bench_numbers_them() {
        assert_eq!(Check::parse("5.31"), Ok(Check::RuntimeSocket));
        assert_eq!(Check::parse("4.1"), Ok(Check::NonRootUser));
        assert!(
            Check::parse("5.99")
                .unwrap_err()
                .contains("not a posture check")
        );
        // As YAML numbers: 5.10 arrives as 5.1, 5.30 as 5.3.
        assert_eq!(Check::from_number(5.4), Ok(Check::Privileged));
        assert_eq!(Check::from_number(5.1), Ok(Check::MemoryLimit));
        assert_eq!(Check::from_number(5.2), Ok(Check::HostUts));
        assert!(Check::from_number(5.3).unwrap_err().contains("quote"));
        let ids: std::collections::HashSet<&str> = Check::ALL.iter().map(|c| c.id()).collect();
        assert_eq!(ids.len(), Check::ALL.len());
    }
}
