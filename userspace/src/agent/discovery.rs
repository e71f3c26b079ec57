//! Containers as the engines describe them (OCI state, runtime metadata), and the gate
//! that holds a container's first process until it is known.

use super::*;

impl<K: KernelMaps> Agent<K> {
    /// Where the engines keep their state and metadata.
    pub fn set_engine_dirs(&mut self, dirs: crate::engines::Dirs) {
        self.known = crate::engines::known::Known::new(dirs);
        // Identities found with the previous directories no longer hold.
        self.containers.get_mut().by_cgroup.clear();
    }

    /// The directories to watch for containers: the OCI state directories as they are
    /// now, and the parents where namespaced ones appear.
    pub fn state_dirs(&self) -> Vec<PathBuf> {
        let dirs = self.known.dirs();
        let mut out: Vec<PathBuf> = dirs.state_dirs().into_iter().map(|(d, _)| d).collect();
        out.extend(dirs.namespace_parents());
        out
    }

    /// Whether containers appeared in (or left) the runtime's state directories since
    /// the last [`Agent::rescan`].
    pub fn oci_changed(&self) -> bool {
        self.known.changed()
    }

    /// Reads the state of containers that appeared in the engines' state directories
    /// and forgets those that went.
    pub(super) fn refresh_containers(&mut self) {
        for c in self.known.refresh(&self.cgroup_root) {
            let who = &c.identity.container;
            log::info!(
                "{} container {} ({}) in cgroup {}",
                who.runtime,
                who.id,
                who.name.as_deref().unwrap_or("no name"),
                c.cgroup.as_deref().unwrap_or("?")
            );
        }
    }

    /// Whether a process was just held at the gate: the loop rescans at once.
    pub fn take_gate_wakeup(&mut self) -> bool {
        std::mem::take(&mut self.gate_wakeup)
    }

    /// Whether processes wait at the gate (the loop rescans on every tick, so each goes
    /// on once its container is known, or after the bound).
    pub fn holds_processes(&self) -> bool {
        !self.gates.held_is_empty()
    }

    /// Writes the gate and "unmonitored" entries of `plan` and removes those it drops.
    pub(super) fn apply_gates(&mut self, plan: gate::Plan) -> anyhow::Result<()> {
        if plan == self.gates.plan {
            return Ok(());
        }
        for (id, entry) in plan.kernel_entries() {
            if !self.gates.plan.contains(id) {
                self.kernel
                    .set_cgroup_profile(id, entry)
                    .context("writing a gate entry")?;
            }
        }
        for id in self.gates.plan.dropped_in(&plan) {
            // A cgroup that got a profile of its own has that entry now.
            if !self.assignments.contains_key(&id) {
                self.kernel.remove_cgroup_profile(id)?;
            }
        }
        for (path, _) in plan.gates.values() {
            if !self.gates.plan.gates.values().any(|(p, _)| p == path) {
                log::info!(
                    "new containers below {path} are held at their first exec until identified"
                );
            }
        }
        self.gates.plan = plan;
        self.gates.released.retain(|id| self.paths.contains_key(id));
        self.update_levels()
    }

    /// Lets the processes held at the gate go on once their container's cgroup has its
    /// entry, or once they waited too long (their cgroup is then unmonitored).
    pub(super) fn release_held(&mut self) -> anyhow::Result<()> {
        let held = self.kernel.gated();
        self.gates.held = held.len();
        if held.is_empty() {
            return Ok(());
        }
        let now = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0);
        let decided = |cgroup: u64| {
            self.assignments
                .get(&cgroup)
                .is_some_and(|a| !a.descendants_only)
                || self.gates.plan.unmonitored.contains_key(&cgroup)
                // Gone, or no gate above it any more.
                || self.paths.get(&cgroup).is_none_or(|path| {
                    crate::engines::parent_of(path).is_none_or(|parent| {
                        !self.gates.plan.gates.values().any(|(p, _)| p == parent)
                    })
                })
        };
        let releases = gate::releases(&held, now, decided);
        for (pid, cgroup, why) in releases {
            if why == gate::Release::TimedOut {
                let path = self.paths.get(&cgroup).cloned().unwrap_or_default();
                log::warn!(
                    "cgroup {path}: no engine describes it within {} s; its processes run unmonitored",
                    gate::HOLD_AT_MOST_NS / 1_000_000_000
                );
                self.gates.released.insert(cgroup);
                if let Some(level) = entries_level(&path) {
                    self.gates.plan.unmonitored.insert(cgroup, (path, level));
                    self.kernel
                        .set_cgroup_profile(cgroup, gate::unmonitored_entry())
                        .context("writing an unmonitored entry")?;
                    self.update_levels()?;
                }
            }
            // SAFETY: kill(2) with a valid signal; a pid that is gone gives ESRCH.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
            self.kernel.forget_gated(pid)?;
            self.gates.held = self.gates.held.saturating_sub(1);
            self.gates.released_total += 1;
        }
        Ok(())
    }

    /// The cgroups whose new containers are held at the gate.
    pub fn gate_paths(&self) -> Vec<String> {
        self.gates.gate_paths()
    }

    /// Lets every held process go on (the agent stops and its entries go with it).
    pub fn release_all_held(&mut self) {
        for (pid, _) in self.kernel.gated() {
            // SAFETY: kill(2) with a valid signal.
            unsafe { libc::kill(pid as i32, libc::SIGCONT) };
            let _ = self.kernel.forget_gated(pid);
        }
    }
}
