//! The agent's configuration file (`cgwarden run --config FILE`). Every key is optional;
//! command-line flags override the file. A malformed file is refused with
//! file:line:column.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::output::{SinkSpec, Target};

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

/// Rotation of file sinks; both keys are required.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "RotateFields")]
pub struct Rotate {
    pub max_bytes: u64,
    pub keep: u32,
}

/// `rotate:` as written. A missing key is checked here rather than by serde, so that
/// it is reported where the mapping starts (serde's own check would be placed at the
/// mapping's last key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateFields {
    #[serde(default)]
    max_bytes: Option<u64>,
    #[serde(default)]
    keep: Option<u32>,
}

impl TryFrom<RotateFields> for Rotate {
    type Error = String;
    fn try_from(f: RotateFields) -> Result<Self, String> {
        let missing = |key: &str| format!("missing field `{key}`");
        Ok(Self {
            max_bytes: f.max_bytes.ok_or_else(|| missing("max_bytes"))?,
            keep: f.keep.ok_or_else(|| missing("keep"))?,
        })
    }
}

impl AgentConfig {
    /// Reads and checks the file; what is wrong is a [`crate::Error::Config`].
    pub fn load(path: &Path) -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::Error::Config(format!(
                "{}: cannot read the agent config: {e}",
                path.display()
            ))
        })?;
        crate::yaml::from_str(&text)
            .map_err(|e| crate::Error::Config(format!("{}:{e}", path.display())))
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
            None => Ok(Some(crate::output::metrics::DEFAULT_LISTEN.parse()?)),
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
        let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&k8s).unwrap();
        for value in docs {
            let Some(data) = value.get("data").and_then(|d| d.as_object()) else {
                continue;
            };
            for (key, text) in data {
                let (key, text) = (key.as_str(), text.as_str().unwrap());
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

    #[test]
    fn config_errors_are_placed_at_the_key_or_value_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let error = |text: &str| {
            let file = dir.path().join("agent.yaml");
            std::fs::write(&file, text).unwrap();
            let e = AgentConfig::load(&file).unwrap_err().to_string();
            e.strip_prefix(&format!("{}:", file.display()))
                .unwrap_or_else(|| panic!("{e}"))
                .to_owned()
        };
        let e = error("sinks:\n  - json:-\n  - \"xml:-\"\n");
        assert!(e.starts_with("3:5: "), "{e}");
        let e = error("policy: /p\nmetrics: \"off\"\npolcy: x\n");
        assert!(e.starts_with("3:1: unknown field `polcy`"), "{e}");
        let e = error("metrics: \"off\"\nfail_open: false\nmetrics: 127.0.0.1:9\n");
        assert_eq!(e, "3:1: duplicate key `metrics`: each key may appear once");
        let e = error("fail_open: yes\n");
        assert!(e.starts_with("1:12: "), "{e}");
        let e = error("policy: /p\nrotate:\n  max_bytes: 1000\n  kep: 2\n");
        assert!(e.starts_with("4:3: unknown field `kep`"), "{e}");
        let e = error("policy: /p\nrotate:\n  max_bytes: 1000\n");
        assert_eq!(e, "3:3: missing field `keep`");
        let e = error("rotate: {max_bytes: many, keep: 2}\n");
        assert!(e.starts_with("1:21: ") && e.contains("`many`"), "{e}");
        let e = error("resolver: 127.0.0.53\n");
        assert!(e.starts_with("1:11: "), "{e}");
    }
}
