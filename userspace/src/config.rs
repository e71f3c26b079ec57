//! The agent's configuration file (`cgwarden run --config FILE`). Every key is optional;
//! command-line flags override the file. A malformed file is refused with
//! file:line:column.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::sinks::{SinkSpec, Target};

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Profile file or directory.
    pub policy: Option<PathBuf>,
    /// Sinks as `FORMAT:TARGET`.
    #[serde(default)]
    pub sinks: Vec<SinkText>,
    /// Rotation of file sinks.
    pub rotate: Option<Rotate>,
    /// `HOST:PORT` for Prometheus metrics, or `off`.
    pub metrics: Option<String>,
    pub control: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub fail_open: Option<bool>,
    pub resolver: Option<SocketAddr>,
    /// `false`: no posture checks (`--no-posture`).
    pub posture: Option<bool>,
    /// The host name events carry (`--hostname`).
    pub hostname: Option<String>,
    /// Per-container metrics series (`--metrics-per-container`).
    pub metrics_per_container: Option<bool>,
}

/// A sink spec validated while parsing, so a bad one is reported at its line.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct SinkText(pub SinkSpec);

impl TryFrom<String> for SinkText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(SinkText)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    pub max_bytes: u64,
    pub keep: u32,
}

impl AgentConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("{}: cannot read the agent config: {e}", path.display())
        })?;
        serde_yaml::from_str(&text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            anyhow::anyhow!("{}:{line}:{column}: {e}", path.display())
        })
    }

    /// The sinks, with the file's rotation applied to file targets.
    pub fn sink_specs(&self) -> Vec<SinkSpec> {
        self.sinks
            .iter()
            .map(|s| {
                let mut spec = s.0.clone();
                if let (
                    Target::File {
                        max_bytes, keep, ..
                    },
                    Some(r),
                ) = (&mut spec.target, self.rotate)
                {
                    *max_bytes = r.max_bytes;
                    *keep = r.keep;
                }
                spec
            })
            .collect()
    }

    /// The metrics address: `None` when turned off.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        match self.metrics.as_deref() {
            None => Ok(Some(crate::metrics::DEFAULT_LISTEN.parse()?)),
            Some("off") => Ok(None),
            Some(addr) => {
                Ok(Some(addr.parse().map_err(|e| {
                    anyhow::anyhow!("metrics address `{addr}`: {e}")
                })?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped configuration and profiles (deploy/, policies/, and the ones inside
    /// the Kubernetes ConfigMap) are valid.
    #[test]
    fn shipped_configs_and_profiles_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = AgentConfig::load(&root.join("deploy/agent.yaml")).unwrap();
        assert_eq!(
            config.metrics_addr().unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        crate::policy::load_path(&root.join("policies")).unwrap();
        let k8s = std::fs::read_to_string(root.join("deploy/kubernetes/cgwarden.yaml")).unwrap();
        let mut checked = 0;
        for doc in serde_yaml::Deserializer::from_str(&k8s) {
            let value = serde_yaml::Value::deserialize(doc).unwrap();
            let Some(data) = value.get("data").and_then(|d| d.as_mapping()) else {
                continue;
            };
            for (key, text) in data {
                let (key, text) = (key.as_str().unwrap(), text.as_str().unwrap());
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join(key);
                std::fs::write(&file, text).unwrap();
                if key == "agent.yaml" {
                    AgentConfig::load(&file).unwrap();
                } else {
                    // The DaemonSet's profile leaves the agent's own namespace alone.
                    for p in crate::policy::load_path(&file).unwrap() {
                        let namespaces = &p.selector.k8s.as_ref().unwrap().namespace;
                        let selected = |ns: &str| namespaces.iter().any(|g| g.matches(ns));
                        assert!(!selected("cgwarden"), "{key} selects cgwarden's own pods");
                        for other in ["default", "kube-system", "cg", "cgwardens", "shop"] {
                            assert!(selected(other), "{key} leaves {other} out");
                        }
                    }
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 2);
    }

    #[test]
    fn reads_a_config_and_locates_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(
            &good,
            "policy: /etc/cgwarden/policies\nsinks: [\"json:/var/log/e.json\", \"falco:-\"]\nrotate: { max_bytes: 1000, keep: 2 }\nmetrics: \"off\"\n",
        )
        .unwrap();
        let c = AgentConfig::load(&good).unwrap();
        assert!(c.metrics_addr().unwrap().is_none());
        let specs = c.sink_specs();
        assert!(matches!(
            specs[0].target,
            Target::File {
                max_bytes: 1000,
                keep: 2,
                ..
            }
        ));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "sinks:\n  - \"xml:-\"\n").unwrap();
        let e = AgentConfig::load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.yaml:2:") && e.contains("xml"), "{e}");
        let unknown = dir.path().join("unknown.yaml");
        std::fs::write(&unknown, "polcy: x\n").unwrap();
        assert!(AgentConfig::load(&unknown).is_err());
    }
}
