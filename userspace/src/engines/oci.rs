//! Containers as their OCI runtime describes them: runc's state directory
//! (`<root>/<id>/state.json`) leads to the container's bundle and its `config.json`,
//! which says the container's name, user, capabilities, root filesystem and
//! no-new-privileges setting. The agent uses it to name containers in events and
//! selectors, and to report, when it discovers a container, a configuration that
//! promises less hardening than the container's profile.
//!
//! The roots are parameters so this is tested on a temporary directory.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::{Dirs, Engine, Identity};
use crate::{policy::Runtime, policy::caps::CapSet};

/// What the OCI runtime (and the engine's metadata) says about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciContainer {
    /// Engine, id, name (from the engine, the annotations or the hostname), image,
    /// Compose service, pod.
    pub identity: Identity,
    /// The container's cgroup, relative to the cgroup2 root (`/` first).
    pub cgroup: Option<String>,
    pub init_pid: u32,
    /// The runtime's `state.json` it was read from.
    pub state: PathBuf,
    pub bundle: Option<PathBuf>,
    pub config: OciConfig,
}

/// The hardening a container's config.json promises.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciConfig {
    pub uid: u32,
    pub gid: u32,
    /// Effective, permitted and ambient capabilities.
    pub capabilities: CapSet,
    pub no_new_privileges: bool,
    pub read_only_root: bool,
}

/// Annotations that name a container, most specific first.
const NAME_ANNOTATIONS: [&str; 5] = [
    "io.kubernetes.container.name",
    "io.kubernetes.cri.container-name",
    "nerdctl/name",
    "com.docker.compose.service",
    "org.opencontainers.image.title",
];

/// Reads every container in the state directory `root`; `cgroup2` is the cgroup2
/// mount, to make cgroup paths relative to it. Unreadable entries are skipped (they may
/// be half-written or gone).
pub fn scan(root: &Path, engine: Option<Engine>, dirs: &Dirs, cgroup2: &Path) -> Vec<OciContainer> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| read_state(&e.path().join("state.json"), engine, dirs, cgroup2))
        .collect()
}

/// Reads one runc `state.json` and the `config.json` of its bundle (the state's own
/// copy of the configuration when the bundle is gone), and what the engine (`engine`,
/// or the one the annotations name) recorded about the container.
pub fn read_state(
    path: &Path,
    engine: Option<Engine>,
    dirs: &Dirs,
    cgroup2: &Path,
) -> Option<OciContainer> {
    let state: Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let id = state["id"].as_str()?.to_owned();
    let labels: HashMap<&str, &str> = state["config"]["labels"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str()?.split_once('='))
                .collect()
        })
        .unwrap_or_default();
    let bundle = labels.get("bundle").map(PathBuf::from);
    let cgroup = state["cgroup_paths"][""]
        .as_str()
        .and_then(|p| Path::new(p).strip_prefix(cgroup2).ok())
        .map(|rel| format!("/{}", rel.display()));
    let from_bundle = bundle
        .as_ref()
        .and_then(|b| fs::read(b.join("config.json")).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let (config, name, annotations) = match &from_bundle {
        Some(spec) => (from_spec(spec), name_of(spec), spec["annotations"].clone()),
        None => (
            from_libcontainer(&state["config"]),
            NAME_ANNOTATIONS
                .iter()
                .find_map(|k| labels.get(k).map(|v| (*v).to_owned()))
                .or_else(|| non_empty(state["config"]["hostname"].as_str())),
            Value::Object(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                    .collect(),
            ),
        ),
    };
    let engine = engine.unwrap_or_else(|| super::engine_from_annotations(&annotations));
    let mut identity = Identity::new(engine, id);
    identity.container.name = name;
    dirs.enrich(&mut identity, &annotations);
    Some(OciContainer {
        identity,
        cgroup,
        init_pid: state["init_process_pid"].as_u64().unwrap_or(0) as u32,
        state: path.to_owned(),
        bundle,
        config,
    })
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The container's name in an OCI runtime spec.
pub fn name_of(spec: &Value) -> Option<String> {
    NAME_ANNOTATIONS
        .iter()
        .find_map(|k| non_empty(spec["annotations"][*k].as_str()))
        .or_else(|| non_empty(spec["hostname"].as_str()))
}

/// The hardening of an OCI runtime spec (`config.json`).
pub fn from_spec(spec: &Value) -> OciConfig {
    let process = &spec["process"];
    OciConfig {
        uid: process["user"]["uid"].as_u64().unwrap_or(0) as u32,
        gid: process["user"]["gid"].as_u64().unwrap_or(0) as u32,
        capabilities: caps(
            &process["capabilities"],
            ["effective", "permitted", "ambient"],
        ),
        no_new_privileges: process["noNewPrivileges"].as_bool() == Some(true),
        read_only_root: spec["root"]["readonly"].as_bool() == Some(true),
    }
}

/// The same from runc's own copy of the configuration in `state.json`.
fn from_libcontainer(config: &Value) -> OciConfig {
    OciConfig {
        // The user is not kept there; root is the safe assumption to report.
        uid: 0,
        gid: 0,
        capabilities: caps(
            &config["capabilities"],
            ["Effective", "Permitted", "Ambient"],
        ),
        no_new_privileges: config["no_new_privileges"].as_bool() == Some(true),
        read_only_root: config["readonlyfs"].as_bool() == Some(true),
    }
}

fn caps(sets: &Value, names: [&str; 3]) -> CapSet {
    let names: Vec<String> = names
        .iter()
        .flat_map(|set| sets[*set].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().map(str::to_owned))
        // Unknown names (a newer runtime's) count as held, not as harmless.
        .map(|c| {
            if CapSet::number(&c).is_some() {
                c
            } else {
                "ALL".to_owned()
            }
        })
        .collect();
    CapSet::from_names(&names).unwrap_or_default()
}

/// Where a container's configuration promises less hardening than its profile: the
/// deviation name and what it is, in words.
pub fn deviations(config: &OciConfig, runtime: &Runtime) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(uid) = runtime.user
        && config.uid != uid
    {
        out.push((
            "oci_user",
            format!(
                "config.json runs the container as uid {} where the profile says uid {uid}",
                config.uid
            ),
        ));
    }
    if let Some(allowed) = runtime.capabilities {
        let beyond = config.capabilities.beyond(allowed);
        if !beyond.is_empty() {
            out.push((
                "oci_capabilities",
                format!("config.json grants {beyond} beyond what the profile allows ({allowed})"),
            ));
        }
    }
    if runtime.no_new_privileges && !config.no_new_privileges {
        out.push((
            "oci_no_new_privileges",
            "config.json does not set noNewPrivileges; the profile promises it".to_owned(),
        ));
    }
    // A profile whose `read_only` covers `/` promises a read-only root.
    if runtime.read_only_root() && !config.read_only_root {
        out.push((
            "oci_read_only_root",
            "config.json leaves the root filesystem writable; the profile says read-only"
                .to_owned(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_a_runc_state_and_its_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        fs::write(
            bundle.join("config.json"),
            json!({
                "hostname": "runc",
                "annotations": {"io.kubernetes.container.name": "web"},
                "process": {"user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": true,
                            "capabilities": {"effective": ["CAP_NET_BIND_SERVICE"], "bounding": ["CAP_SYS_ADMIN"]}},
                "root": {"readonly": true}
            })
            .to_string(),
        )
        .unwrap();
        let root = dir.path().join("runc");
        fs::create_dir_all(root.join("abc")).unwrap();
        fs::write(
            root.join("abc/state.json"),
            json!({
                "id": "abc", "init_process_pid": 42,
                "cgroup_paths": {"": "/sys/fs/cgroup/unified/base/abc"},
                "config": {"labels": [format!("bundle={}", bundle.display())]}
            })
            .to_string(),
        )
        .unwrap();
        let found = scan(
            &root,
            None,
            &Dirs::default(),
            Path::new("/sys/fs/cgroup/unified"),
        );
        assert_eq!(found.len(), 1);
        let c = &found[0];
        assert_eq!(c.identity.container.id, "abc");
        assert_eq!(c.identity.container.runtime, Engine::Runc);
        assert_eq!(c.identity.container.name.as_deref(), Some("web"));
        assert_eq!(c.cgroup.as_deref(), Some("/base/abc"));
        assert_eq!(c.init_pid, 42);
        assert_eq!(c.config.uid, 1000);
        // Only the bounding set names CAP_SYS_ADMIN: the container does not hold it.
        assert_eq!(c.config.capabilities.names(), vec!["CAP_NET_BIND_SERVICE"]);
        assert!(c.config.no_new_privileges && c.config.read_only_root);
    }

    #[test]
    fn a_weaker_config_than_the_profile_deviates() {
        let root = crate::policy::paths::ProfilePath::try_from("/".to_owned()).unwrap();
        let runtime = Runtime {
            user: Some(1000),
            capabilities: Some(CapSet::default()),
            no_new_privileges: true,
            read_only: vec![root],
            ..Runtime::default()
        };
        let weak = from_spec(&json!({
            "hostname": "x",
            "process": {"user": {"uid": 0}, "capabilities": {"effective": ["CAP_SYS_ADMIN", "CAP_FUTURE_THING"]}},
        }));
        let found: Vec<&str> = deviations(&weak, &runtime).iter().map(|d| d.0).collect();
        assert_eq!(
            found,
            vec![
                "oci_user",
                "oci_capabilities",
                "oci_no_new_privileges",
                "oci_read_only_root"
            ]
        );
        let strong = OciConfig {
            uid: 1000,
            gid: 1000,
            capabilities: CapSet::default(),
            no_new_privileges: true,
            read_only_root: true,
        };
        assert!(deviations(&strong, &runtime).is_empty());
        // Read-only paths below the root promise nothing about the root itself.
        let etc = crate::policy::paths::ProfilePath::try_from("/etc".to_owned()).unwrap();
        let partial = Runtime {
            read_only: vec![etc],
            ..Runtime::default()
        };
        assert!(deviations(&weak, &partial).is_empty());
        assert_eq!(name_of(&json!({"hostname": "h"})).as_deref(), Some("h"));
    }
}
