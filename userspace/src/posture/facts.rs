//! What the posture checks read about one container: the OCI runtime spec its runtime
//! was given, what its engine recorded beside it (Docker's `hostconfig.json` and
//! `config.v2.json`), and what the host says about the container's first process (the
//! namespaces it is in) and about the mounts' sources (which are runtime sockets).
//!
//! Every document keeps the name of the file it came from, so each verdict can cite it.

use std::{
    os::unix::fs::{FileTypeExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde_json::Value;

use crate::engines::{Dirs, Engine, oci::OciContainer};

/// A JSON document and the file it was read from.
#[derive(Debug, Clone)]
pub struct Source {
    pub value: Value,
    pub file: String,
}

/// The facts about one container.
#[derive(Debug, Clone)]
pub struct Facts {
    pub engine: Engine,
    /// The runtime's state file that led to the spec.
    pub state_file: String,
    /// The OCI runtime spec (`config.json` of the bundle); `None` when it is gone.
    pub spec: Option<Source>,
    /// Docker's `hostconfig.json` and `config.v2.json` (Docker containers only).
    pub host_config: Option<Source>,
    pub docker_config: Option<Source>,
    /// The container's first process, to read its namespaces.
    pub init_pid: u32,
    pub host: Host,
}

/// What the host says, the same for every container.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The host's container runtime sockets that exist: the known places and the ones
    /// the agent was told (`--runtime-socket`).
    pub runtime_sockets: Vec<RuntimeSocket>,
    /// Where `/proc` is.
    pub proc: PathBuf,
}

/// A runtime API socket, by path and by the file it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSocket {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

impl Host {
    /// The host as seen from here, with the runtime sockets among `paths` that exist.
    pub fn new(paths: &[PathBuf]) -> Self {
        let mut runtime_sockets: Vec<RuntimeSocket> = paths
            .iter()
            .filter_map(|p| {
                let m = std::fs::metadata(p).ok()?;
                m.file_type().is_socket().then(|| RuntimeSocket {
                    path: std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()),
                    dev: m.dev(),
                    ino: m.ino(),
                })
            })
            .collect();
        runtime_sockets.sort_by(|a, b| a.path.cmp(&b.path));
        runtime_sockets.dedup_by(|a, b| (a.dev, a.ino) == (b.dev, b.ino));
        Self {
            runtime_sockets,
            proc: PathBuf::from("/proc"),
        }
    }

    /// Whether process `pid` is in the host's namespace of `kind` (`net`, `pid`, ...),
    /// and the two namespaces compared; `None` when either cannot be read. The host's
    /// is pid 1's, or where pid 1's cannot be read, the agent's own.
    pub fn shares_namespace(&self, pid: u32, kind: &str) -> Option<(bool, String, String)> {
        let ns = |who: &str| {
            std::fs::read_link(self.proc.join(who).join("ns").join(kind))
                .ok()
                .map(|l| l.display().to_string())
        };
        if pid == 0 {
            return None;
        }
        let theirs = ns(&pid.to_string())?;
        let host = ns("1").or_else(|| ns("self"))?;
        Some((theirs == host, theirs, host))
    }
}

impl Facts {
    /// Reads the facts of a container the engines' state lists.
    pub fn gather(c: &OciContainer, dirs: &Dirs, host: &Host) -> Self {
        let engine = c.identity.container.runtime;
        let spec = c.bundle.as_ref().and_then(|b| {
            let config = b.join("config.json");
            read(&config).map(|value| Source {
                value,
                file: format!("{} → bundle config.json", c.state.display()),
            })
        });
        let docker_file = |name: &str| -> Option<Source> {
            let id = &c.identity.container.id;
            if engine != Engine::Docker || !id.chars().all(|ch| ch.is_ascii_hexdigit()) {
                return None;
            }
            let path = dirs.docker.join("containers").join(id).join(name);
            read(&path).map(|value| Source {
                value,
                file: path.display().to_string(),
            })
        };
        Self {
            engine,
            state_file: c.state.display().to_string(),
            spec,
            host_config: docker_file("hostconfig.json"),
            docker_config: docker_file("config.v2.json"),
            init_pid: c.init_pid,
            host: host.clone(),
        }
    }

    /// The files the facts come from, to notice when the configuration changes.
    pub fn files(c: &OciContainer, dirs: &Dirs) -> Vec<PathBuf> {
        let mut files = vec![c.state.clone()];
        if let Some(b) = &c.bundle {
            files.push(b.join("config.json"));
        }
        if c.identity.container.runtime == Engine::Docker {
            let dir = dirs
                .docker
                .join("containers")
                .join(&c.identity.container.id);
            files.push(dir.join("hostconfig.json"));
            files.push(dir.join("config.v2.json"));
        }
        files
    }
}

/// When each of `files` last changed (`None` for one that is not there).
pub fn fingerprint(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
