//! Container engines: which containers run on this host, and what their engines call
//! them. This is where a container is named.
//!
//! - [`cgroup_path`]: what a cgroup path alone says (runtime and id, for the layouts of
//!   Docker, containerd/CRI, CRI-O, Podman and Kubernetes pods);
//! - [`oci`]: an OCI runtime's state directory (`state.json` → bundle `config.json`):
//!   the container's cgroup, first process and hardening;
//! - [`docker`], [`podman`], [`cri`]: each engine's own metadata, where the OCI config
//!   lacks the name, image, compose service or pod.
//!
//! [`Identity`] is what events carry and selectors match. The engines' state and
//! metadata directories are parameters ([`Dirs`]), so all of this is tested on
//! temporary directories.

pub mod cgroup_path;
pub mod cri;
pub mod docker;
pub mod known;
pub mod oci;
pub mod podman;
pub mod watch;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The engine that runs a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    Docker,
    Podman,
    Containerd,
    CriO,
    /// Plain runc (or crun) with no engine's metadata.
    Runc,
}

impl Engine {
    /// Every engine, in the order their names are listed in messages.
    pub const ALL: [Engine; 5] = [
        Self::Docker,
        Self::Podman,
        Self::Containerd,
        Self::CriO,
        Self::Runc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Runc => "runc",
        }
    }

    /// The engine a selector's `runtime:` value names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container as events show it and selectors match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub runtime: Engine,
    /// The full id.
    pub id: String,
    /// The engine's name for it (Docker's and Podman's `--name`, the Kubernetes
    /// container name, an OCI annotation or, last, the hostname).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The image it was made from, as the engine names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The Kubernetes pod uid, for pod cgroups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// A Compose service's container (labels `com.docker.compose.project` / `.service`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compose {
    pub project: String,
    pub service: String,
}

/// A Kubernetes container (CRI annotations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct K8s {
    pub namespace: String,
    pub pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Who a container is: what events carry (flattened: `container`, `compose`, `k8s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub container: Container,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose: Option<Compose>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<K8s>,
}

impl Identity {
    /// A container known only by its engine and id.
    pub fn new(runtime: Engine, id: String) -> Self {
        Self {
            container: Container {
                runtime,
                id,
                name: None,
                image: None,
                pod: None,
            },
            compose: None,
            k8s: None,
        }
    }

    /// Takes a Compose identity from engine labels (`key`, `value` pairs).
    pub fn compose_from<'a>(&mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let (mut project, mut service) = (None, None);
        for (k, v) in labels {
            match k {
                "com.docker.compose.project" => project = Some(v.to_owned()),
                "com.docker.compose.service" => service = Some(v.to_owned()),
                _ => {}
            }
        }
        if let (Some(project), Some(service)) = (project, service) {
            self.compose = Some(Compose { project, service });
        }
    }
}

/// Where the engines keep their state and metadata.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// OCI runtime state directories (runc's and crun's `--root`).
    pub state_roots: Vec<StateRoot>,
    /// Docker's data root (`/var/lib/docker`): `containers/<id>/config.v2.json`.
    pub docker: PathBuf,
    /// containers-storage's root (`/var/lib/containers/storage`), Podman's and CRI-O's.
    pub containers_storage: PathBuf,
}

impl Default for Dirs {
    /// The engines' default places on a host.
    fn default() -> Self {
        Self {
            state_roots: vec![
                StateRoot::flat("/run/docker/runtime-runc/moby", Some(Engine::Docker)),
                StateRoot::namespaced("/run/containerd/runc", Engine::Containerd),
                // Podman and CRI-O use runc's and crun's default roots; the annotations
                // say which engine made the container.
                StateRoot::flat("/run/runc", None),
                StateRoot::flat("/run/crun", None),
            ],
            docker: PathBuf::from("/var/lib/docker"),
            containers_storage: PathBuf::from("/var/lib/containers/storage"),
        }
    }
}

impl Dirs {
    /// The defaults with other OCI state directories instead of the default ones
    /// (`cgwarden run --runc-root`).
    pub fn with_state_roots(roots: Vec<PathBuf>) -> Self {
        Self {
            state_roots: roots
                .into_iter()
                .map(|dir| StateRoot {
                    dir,
                    engine: None,
                    namespaced: false,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Every state directory as it is now: a namespaced root (containerd's) stands for
    /// one directory per namespace, and those come and go.
    pub fn state_dirs(&self) -> Vec<(PathBuf, Option<Engine>)> {
        let mut out = Vec::new();
        for root in &self.state_roots {
            if !root.namespaced {
                out.push((root.dir.clone(), root.engine));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&root.dir) else {
                continue;
            };
            let mut namespaces: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            namespaces.sort();
            out.extend(namespaces.into_iter().map(|d| (d, root.engine)));
        }
        out
    }

    /// The directories to watch for new state directories (namespaced roots).
    pub fn namespace_parents(&self) -> Vec<PathBuf> {
        self.state_roots
            .iter()
            .filter(|r| r.namespaced)
            .map(|r| r.dir.clone())
            .collect()
    }

    /// Adds what the engine's own metadata says to a container found in OCI state.
    pub fn enrich(&self, identity: &mut Identity, annotations: &serde_json::Value) {
        cri::apply(identity, annotations);
        match identity.container.runtime {
            Engine::Docker => docker::apply(&self.docker, identity),
            Engine::Podman | Engine::CriO => podman::apply(&self.containers_storage, identity),
            Engine::Containerd | Engine::Runc => {}
        }
    }
}

/// An OCI runtime state directory.
#[derive(Debug, Clone)]
pub struct StateRoot {
    pub dir: PathBuf,
    /// The engine whose runtime keeps its state here, when only one does.
    pub engine: Option<Engine>,
    /// One sub-directory per namespace, each a state directory (containerd).
    pub namespaced: bool,
}

impl StateRoot {
    fn flat(dir: &str, engine: Option<Engine>) -> Self {
        Self {
            dir: PathBuf::from(dir),
            engine,
            namespaced: false,
        }
    }

    fn namespaced(dir: &str, engine: Engine) -> Self {
        Self {
            dir: PathBuf::from(dir),
            engine: Some(engine),
            namespaced: true,
        }
    }
}

/// The engine of a container found in a state directory that several engines share,
/// from its OCI annotations.
pub fn engine_from_annotations(annotations: &serde_json::Value) -> Engine {
    let has = |key: &str| annotations.get(key).is_some();
    if annotations["io.container.manager"].as_str() == Some("libpod") {
        Engine::Podman
    } else if has("io.kubernetes.cri-o.ContainerID") || has("io.kubernetes.cri-o.Created") {
        Engine::CriO
    } else if has("io.kubernetes.cri.container-type") {
        Engine::Containerd
    } else {
        Engine::Runc
    }
}

/// The parent directory of a cgroup path (`/docker/<id>` → `/docker`), or `None` for
/// the root.
pub fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) if trimmed.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&trimmed[..i]),
    }
}

/// Whether every child of cgroup `parent` is a container of an engine, so a gate there
/// holds only containers: engines' cgroupfs parents (`/docker`, `/libpod_parent`, a
/// containerd namespace) and Kubernetes pod cgroups, but no systemd slice, whose
/// children are the host's services.
pub fn holds_only_containers(parent: &str) -> bool {
    let last = parent.rsplit('/').next().unwrap_or("");
    if parent == "/" || last.is_empty() {
        return false;
    }
    match last.strip_suffix(".slice") {
        // `kubepods-burstable-pod<uid>.slice`: a pod's containers.
        Some(slice) => slice.contains("-pod"),
        None => !last.ends_with(".scope") && !last.ends_with(".service"),
    }
}

/// Reads a JSON file; `None` when it is missing or not JSON (yet).
fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_go_only_where_children_are_containers() {
        for yes in [
            "/docker",
            "/libpod_parent",
            "/k8s.io",
            "/kubepods/besteffort/pod0a1b",
        ] {
            assert!(holds_only_containers(yes), "{yes}");
        }
        assert!(holds_only_containers(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b.slice"
        ));
        for no in [
            "/",
            "/system.slice",
            "/machine.slice",
            "/user.slice/user-0.slice",
            "/x.scope",
        ] {
            assert!(!holds_only_containers(no), "{no}");
        }
        assert_eq!(parent_of("/docker/abc"), Some("/docker"));
        assert_eq!(parent_of("/docker"), Some("/"));
        assert_eq!(parent_of("/"), None);
    }

    #[test]
    fn engines_are_told_by_their_annotations() {
        let a = |v: serde_json::Value| engine_from_annotations(&v);
        assert_eq!(
            a(serde_json::json!({"io.container.manager": "libpod"})),
            Engine::Podman
        );
        assert_eq!(
            a(serde_json::json!({"io.kubernetes.cri-o.Created": "x"})),
            Engine::CriO
        );
        assert_eq!(
            a(serde_json::json!({"io.kubernetes.cri.container-type": "container"})),
            Engine::Containerd
        );
        assert_eq!(a(serde_json::json!(null)), Engine::Runc);
        assert_eq!(Engine::parse("cri-o"), Some(Engine::CriO));
        assert_eq!(Engine::parse("dockr"), None);
    }

    #[test]
    fn containerd_namespaces_are_state_directories() {
        let dir = tempfile::tempdir().unwrap();
        for ns in ["default", "k8s.io"] {
            std::fs::create_dir_all(dir.path().join(ns)).unwrap();
        }
        let dirs = Dirs {
            state_roots: vec![StateRoot {
                dir: dir.path().to_path_buf(),
                engine: Some(Engine::Containerd),
                namespaced: true,
            }],
            ..Dirs::default()
        };
        let found: Vec<PathBuf> = dirs.state_dirs().into_iter().map(|(d, _)| d).collect();
        assert_eq!(
            found,
            vec![dir.path().join("default"), dir.path().join("k8s.io")]
        );
    }
}
