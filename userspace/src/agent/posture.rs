//! The agent's posture of every container it sees, selected by a profile or not:
//! evaluated when the container appears, evaluated again when one of the files its
//! facts come from changes (looked at no more than once a second), and forgotten when
//! the container goes.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    engines::{Identity, known::Known},
    posture::{
        Posture,
        facts::{self, Facts, Host},
    },
};

/// How often the files of known containers are looked at for changes.
const CHANGES_EVERY: Duration = Duration::from_secs(1);

/// One container's posture and the files it was decided from.
#[derive(Debug)]
pub struct Entry {
    pub identity: Identity,
    pub cgroup: Option<String>,
    pub posture: Posture,
    files: Vec<PathBuf>,
    fingerprint: Vec<Option<SystemTime>>,
}

/// Postures by the container's state file.
#[derive(Debug)]
pub struct Tracker {
    enabled: bool,
    host: Host,
    entries: HashMap<PathBuf, Entry>,
    looked_at: Option<Instant>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            enabled: true,
            host: Host::default(),
            entries: HashMap::new(),
            looked_at: None,
        }
    }
}

impl Tracker {
    /// Turns the checks off (`cgwarden run --no-posture`) or on.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
        if !enabled {
            self.entries.clear();
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The host's runtime sockets, found at start.
    pub fn set_host(&mut self, host: Host) {
        self.host = host;
        self.entries.clear();
    }

    /// Brings the postures up to date with the containers `known` holds; returns the
    /// state files of containers whose posture is new or changed.
    pub fn update(&mut self, known: &Known) -> Vec<PathBuf> {
        if !self.enabled {
            return Vec::new();
        }
        let look = self
            .looked_at
            .is_none_or(|at| at.elapsed() >= CHANGES_EVERY);
        if look {
            self.looked_at = Some(Instant::now());
        }
        let mut changed = Vec::new();
        let mut present = std::collections::HashSet::new();
        for c in known.oci() {
            present.insert(c.state.clone());
            let fresh = match self.entries.get(&c.state) {
                None => true,
                Some(e) => look && facts::fingerprint(&e.files) != e.fingerprint,
            };
            if !fresh {
                continue;
            }
            let files = Facts::files(c, known.dirs());
            let fingerprint = facts::fingerprint(&files);
            let posture = Posture::evaluate(&Facts::gather(c, known.dirs(), &self.host));
            let same = self
                .entries
                .get(&c.state)
                .is_some_and(|e| e.posture == posture);
            self.entries.insert(
                c.state.clone(),
                Entry {
                    identity: c.identity.clone(),
                    cgroup: c.cgroup.clone(),
                    posture,
                    files,
                    fingerprint,
                },
            );
            if !same {
                changed.push(c.state.clone());
            }
        }
        self.entries.retain(|k, _| present.contains(k));
        changed
    }

    pub fn get(&self, state: &PathBuf) -> Option<&Entry> {
        self.entries.get(state)
    }

    /// The posture of the container whose own cgroup is `path`.
    pub fn at_cgroup(&self, path: &str) -> Option<&Entry> {
        self.entries
            .values()
            .find(|e| e.cgroup.as_deref() == Some(path))
    }

    /// (containers known, containers failing a check).
    pub fn counts(&self) -> (usize, usize) {
        let failing = self
            .entries
            .values()
            .filter(|e| e.posture.failed > 0)
            .count();
        (self.entries.len(), failing)
    }

    /// Every container's posture, by name then id.
    pub fn all(&self) -> Vec<&Entry> {
        let mut all: Vec<&Entry> = self.entries.values().collect();
        all.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        all
    }
}

/// Containers in `cgwarden posture` order: by name, then id.
fn sort_key(e: &Entry) -> (Option<&str>, &str) {
    (
        e.identity.container.name.as_deref(),
        e.identity.container.id.as_str(),
    )
}
