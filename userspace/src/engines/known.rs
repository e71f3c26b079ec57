//! The agent's view of the host's containers: every container in the engines' OCI state
//! directories, and what each engine says about it, by cgroup path. Refreshed on each
//! rescan; a container's metadata is read once, when it appears (and again while it
//! was not readable yet).

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use super::{Dirs, Identity, cgroup_path, oci::OciContainer};

/// Containers found in OCI state, and identities by cgroup path.
#[derive(Debug, Default)]
pub struct Known {
    dirs: Dirs,
    /// By (state directory, container id).
    oci: HashMap<(PathBuf, String), OciContainer>,
    /// Container cgroup path → its key in `oci`.
    oci_paths: HashMap<String, (PathBuf, String)>,
    /// Containers known only by their cgroup path (Docker's `/docker/<id>` before its
    /// state is written), with what their engine's metadata said.
    by_path: HashMap<String, Identity>,
    /// Counts the calls that may have changed what is known, so a cache of identities
    /// can tell it is stale ([`Known::generation`]).
    generation: u64,
}

impl Known {
    pub fn new(dirs: Dirs) -> Self {
        Self {
            dirs,
            ..Self::default()
        }
    }

    /// Changes whenever what is known may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// How many containers the OCI state directories hold.
    pub fn len(&self) -> usize {
        self.oci.len()
    }

    pub fn is_empty(&self) -> bool {
        self.oci.is_empty()
    }

    /// Whether containers appeared in (or left) the state directories since the last
    /// [`Known::refresh`]: one directory read per state directory.
    pub fn changed(&self) -> bool {
        let mut seen = 0;
        for (dir, _) in self.dirs.state_dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let key = (
                    dir.clone(),
                    entry.file_name().to_string_lossy().into_owned(),
                );
                if !self.oci.contains_key(&key) {
                    return true;
                }
                seen += 1;
            }
        }
        seen != self.oci.len()
    }

    /// Reads the state of containers that appeared in the state directories and
    /// forgets those that went. A state not readable yet is tried again next time.
    /// Returns the containers that are new.
    pub fn refresh(&mut self, cgroup2: &Path) -> Vec<&OciContainer> {
        self.generation = self.generation.wrapping_add(1);
        let mut present = HashSet::new();
        let mut fresh = Vec::new();
        for (dir, engine) in self.dirs.state_dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let key = (
                    dir.clone(),
                    entry.file_name().to_string_lossy().into_owned(),
                );
                if !self.oci.contains_key(&key)
                    && let Some(c) = super::oci::read_state(
                        &entry.path().join("state.json"),
                        engine,
                        &self.dirs,
                        cgroup2,
                    )
                {
                    self.oci.insert(key.clone(), c);
                    fresh.push(key.clone());
                }
                present.insert(key);
            }
        }
        self.oci.retain(|k, _| present.contains(k));
        self.oci_paths = self
            .oci
            .iter()
            .filter_map(|(k, c)| c.cgroup.clone().map(|p| (p, k.clone())))
            .collect();
        fresh.iter().filter_map(|k| self.oci.get(k)).collect()
    }

    /// Remembers the containers that cgroup paths name but no state directory holds
    /// (yet), with their engine's metadata, and forgets paths that are gone.
    pub fn note_paths<'a>(&mut self, paths: impl IntoIterator<Item = &'a str>) {
        self.generation = self.generation.wrapping_add(1);
        let mut present = HashSet::new();
        for path in paths {
            if self.oci_paths.contains_key(path) {
                continue;
            }
            let Some(mut who) = cgroup_path::identify(path) else {
                continue;
            };
            if !cgroup_path::is_own(path, &who) {
                continue;
            }
            present.insert(path.to_owned());
            // Read once; again only while the engine had written nothing yet.
            if self
                .by_path
                .get(path)
                .is_some_and(|known| known.container.name.is_some())
            {
                continue;
            }
            self.dirs.enrich(&mut who, &serde_json::Value::Null);
            self.by_path.insert(path.to_owned(), who);
        }
        self.by_path.retain(|p, _| present.contains(p));
    }

    /// Every container the state directories hold.
    pub fn oci(&self) -> impl Iterator<Item = &OciContainer> {
        self.oci.values()
    }

    /// The container whose own cgroup is `path`, as its runtime describes it.
    pub fn oci_at(&self, path: &str) -> Option<&OciContainer> {
        self.oci_paths.get(path).and_then(|k| self.oci.get(k))
    }

    /// The container whose own cgroup is `path`.
    pub fn own(&self, path: &str) -> Option<&Identity> {
        self.oci_at(path)
            .map(|c| &c.identity)
            .or_else(|| self.by_path.get(path))
    }

    /// The container `path` is the cgroup of, or is nested in.
    pub fn container_of(&self, path: &str) -> Option<Identity> {
        let mut at = path;
        loop {
            if let Some(who) = self.own(at) {
                return Some(who.clone());
            }
            match super::parent_of(at) {
                Some("/") | None => break,
                Some(parent) => at = parent,
            }
        }
        cgroup_path::identify(path)
    }

    /// Every container with a known cgroup: (cgroup path, identity).
    pub fn containers(&self) -> impl Iterator<Item = (&str, &Identity)> {
        self.oci_paths
            .keys()
            .filter_map(|p| self.own(p).map(|who| (p.as_str(), who)))
            .chain(self.by_path.iter().map(|(p, who)| (p.as_str(), who)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent caches identities per generation: every call that may change what is
    /// known must move it on.
    #[test]
    fn every_change_moves_the_generation_on() {
        let mut known = Known::new(Dirs::with_state_roots(Vec::new()));
        let g0 = known.generation();
        known.note_paths(["/docker/abc"]);
        let g1 = known.generation();
        assert_ne!(g0, g1);
        let _ = known.refresh(Path::new("/nonexistent"));
        assert_ne!(known.generation(), g1);
    }
}
