//! Which cgroup gets which profile: selectors applied on every walk, parent entries
//! for children yet to come, the cgroup levels the kernel looks at, and processes
//! already running when a profile applies.

use super::*;

impl<K: KernelMaps> Agent<K> {
    /// Applies a profile to a cgroup and its descendants.
    pub fn assign(
        &mut self,
        cgroup_id: u64,
        path: &str,
        level: u32,
        profile: &str,
    ) -> anyhow::Result<()> {
        self.assign_scoped(cgroup_id, path, level, profile, false)
    }

    /// Like [`Agent::assign`]; `descendants_only` applies the profile to the cgroups
    /// below `path` but not to `path` itself.
    pub fn assign_scoped(
        &mut self,
        cgroup_id: u64,
        path: &str,
        level: u32,
        profile: &str,
        descendants_only: bool,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            level < MAX_CGROUP_LEVELS,
            "cgroup {path} is {level} levels deep; cgwarden follows at most {MAX_CGROUP_LEVELS}"
        );
        let c = self
            .compiled
            .get(profile)
            .with_context(|| format!("no profile named `{profile}`"))?;
        let arm = !c.rules.syscalls.is_empty() && !descendants_only;
        let creds = c
            .rules
            .creds
            .filter(|_| !descendants_only)
            .map(|r| (c.pref.id, r));
        self.kernel
            .set_cgroup_profile(cgroup_id, with_scope(c.pref, descendants_only))?;
        if arm {
            self.arm_existing(path)?;
        }

        self.assignments.insert(
            cgroup_id,
            Assignment {
                profile: profile.to_owned(),
                level,
                descendants_only,
            },
        );
        self.set_path(cgroup_id, path.to_owned());
        self.update_levels()?;
        if !descendants_only {
            self.trust_container_resolvers(cgroup_id, path, profile)?;
        }
        if let Some((id, rule)) = creds {
            self.judge_running(cgroup_id, path, id, &rule)?;
        }
        Ok(())
    }

    /// Makes syscall rules apply to the processes already in a cgroup (new ones are
    /// armed by the kernel when they execute a program). A runtime's set-up process is
    /// left alone: it is armed when it executes the container's program.
    pub(super) fn arm_existing(&mut self, path: &str) -> anyhow::Result<()> {
        let dir = self.cgroup_root.join(path.trim_start_matches('/'));
        for pid in crate::host::procfs::pids_below(&dir) {
            let Some(p) = crate::host::procfs::process(std::path::Path::new("/proc"), pid) else {
                continue;
            };
            if crate::host::procfs::is_runtime_init(&p) {
                continue;
            }
            self.kernel.arm_process(p.pid, p.ppid, &p.exe)?;
        }
        Ok(())
    }

    /// Judges the credentials of the processes already in a cgroup (the kernel judges
    /// new ones at their exec). A runtime's set-up process is left alone.
    pub(super) fn judge_running(
        &mut self,
        cgroup_id: u64,
        path: &str,
        profile: u32,
        rule: &cgwarden_common::CredRule,
    ) -> anyhow::Result<()> {
        let dir = self.cgroup_root.join(path.trim_start_matches('/'));
        let proc_root = std::path::Path::new("/proc");
        let now = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0);
        for pid in crate::host::procfs::pids_below(&dir) {
            let Some(p) = crate::host::procfs::process(proc_root, pid) else {
                continue;
            };
            if crate::host::procfs::is_runtime_init(&p) {
                continue;
            }
            let Some(status) = crate::host::running::status(proc_root, pid) else {
                continue;
            };
            let mut comm = [0u8; 16];
            let n = p.comm.len().min(15);
            comm[..n].copy_from_slice(&p.comm.as_bytes()[..n]);
            let header = cgwarden_common::EventHeader {
                kind: cgwarden_common::kind::CREDS,
                profile,
                ts_ns: now,
                cgroup_id,
                pid,
                tid: pid,
                uid: status.uid,
                gid: status.gid,
                comm,
            };
            if let Some(event) = crate::host::running::judge(&status, rule, header, &p.exe) {
                self.emit_creds(&event)?;
            }
        }
        Ok(())
    }

    /// Trusts the nameservers of the container's own resolv.conf (read through a
    /// process of the cgroup, `/proc/<pid>/root`) for a profile that learns names and
    /// names no resolvers itself: Docker's 127.0.0.11, a pod's cluster DNS.
    pub(super) fn trust_container_resolvers(
        &mut self,
        cgroup_id: u64,
        path: &str,
        profile: &str,
    ) -> anyhow::Result<()> {
        let Some(c) = self.compiled.get(profile) else {
            return Ok(());
        };
        let dns = &c.profile.egress.dns;
        if !dns.servers.is_empty() || (!c.profile.egress.has_names() && !dns.report) {
            return Ok(());
        }
        let dir = self.cgroup_root.join(path.trim_start_matches('/'));
        let Some(text) = crate::host::procfs::pids_below(&dir)
            .into_iter()
            .find_map(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf")).ok()
            })
        else {
            return Ok(());
        };
        let servers: Vec<[u8; 16]> = crate::dns::resolver::nameserver_addresses(&text)
            .into_iter()
            .map(kernel_addr)
            .collect();
        if !servers.is_empty() {
            log::debug!("cgroup {path}: trusting its resolvers {servers:?}");
            self.kernel
                .set_cgroup_resolvers(cgroup_id, &servers)
                .context("trusting a container's resolvers")?;
        }
        Ok(())
    }

    /// Stops applying a profile to a cgroup and forgets what it learned from DNS.
    pub fn unassign(&mut self, cgroup_id: u64) -> anyhow::Result<()> {
        self.kernel.remove_cgroup_profile(cgroup_id)?;
        self.kernel.remove_cgroup_resolvers(cgroup_id)?;
        self.assignments.remove(&cgroup_id);
        for (key, value) in self.kernel.learned() {
            if key.cgroup_id == cgroup_id {
                self.kernel.forget_learned(&key, &value)?;
            }
        }
        self.update_levels()
    }

    pub(super) fn update_levels(&mut self) -> anyhow::Result<()> {
        let inherited = self.inherited.as_ref().map_or(0, |i| i.levels);
        let levels = self
            .assignments
            .values()
            .fold(inherited | self.gates.plan.levels(), |acc, a| {
                acc | (1u32 << a.level)
            });
        let dns = self
            .compiled
            .values()
            .any(|c| c.pref.flags & profile_flags::READS_DNS != 0);
        let learn = self.compiled.values().any(|c| c.profile.learn);
        let mut flags = 0;
        if dns {
            flags |= config_flags::DNS;
        }
        if learn {
            flags |= config_flags::LEARN_SYSCALLS;
        }
        self.kernel.write_config(Config {
            levels,
            next_profile_id: self.next_id,
            flags,
            _reserved: 0,
        })?;
        Ok(())
    }

    /// Whether the cgroup at `path` is the agent's own or one above it.
    pub(super) fn holds_the_agent(&self, path: &str) -> bool {
        self.own_cgroup
            .as_deref()
            .is_some_and(|own| cgroups::contains(path, own))
    }

    /// Walks the cgroup tree and applies each profile's selector: new matching cgroups
    /// get the profile, vanished or no longer matching ones lose it. The first profile
    /// in name order whose selector matches wins.
    pub fn rescan(&mut self) -> anyhow::Result<()> {
        self.refresh_containers();
        let entries = cgroups::walk(&self.cgroup_root);
        self.known
            .note_paths(entries.iter().map(|e| e.path.as_str()));
        let mut wanted: HashMap<u64, (String, u32, String, bool)> = HashMap::new();
        let previous = std::mem::take(&mut self.paths);
        for e in &entries {
            self.set_path(e.id, e.path.clone());
            if self.claims.as_ref().is_some_and(|c| !c.allows(&e.path)) {
                continue;
            }
            // The agent never falls under its own profiles: a deny-all egress profile
            // on its pod or slice would cut it off from its resolvers and sinks.
            if self.holds_the_agent(&e.path) {
                continue;
            }
            let who = self.known.own(&e.path);
            if let Some(c) = self
                .compiled
                .values()
                .find(|c| c.profile.selector.matches_container(&e.path, who))
            {
                wanted.insert(
                    e.id,
                    (
                        c.profile.name.as_str().to_owned(),
                        e.level,
                        e.path.clone(),
                        false,
                    ),
                );
            }
        }
        // A selector `<parent>/*` also goes on the parent, for its children only: a new
        // container is covered from its first process, before this walk sees it.
        if let Some(claims) = &mut self.claims {
            // The first match: in path order, so the same container wins every time.
            let mut matched: Vec<(u64, &str)> = wanted
                .iter()
                .map(|(id, (_, _, path, _))| (*id, path.as_str()))
                .collect();
            matched.sort_by(|a, b| a.1.cmp(b.1));
            for (id, path) in matched {
                if claims.allows(path) {
                    claims.claim(path, id, self.known.own(path).cloned());
                }
            }
            let claims = &*claims;
            wanted.retain(|_, (_, _, path, _)| claims.allows(path));
        }
        // A learning run by selector covers containers from their first process
        // through the gate, never through a parent entry (which would cover every
        // child, claimed or not).
        for e in entries.iter().filter(|_| self.claims.is_none()) {
            if wanted.contains_key(&e.id) {
                continue;
            }
            if let Some(c) = self
                .compiled
                .values()
                .find(|c| c.profile.selector.children_of(&e.path))
            {
                wanted.insert(
                    e.id,
                    (
                        c.profile.name.as_str().to_owned(),
                        e.level,
                        e.path.clone(),
                        true,
                    ),
                );
            }
        }
        // A cgroup loses its profile when it no longer matches, or when it is proven
        // gone; one the walk missed (a directory it could not read) keeps it.
        let seen: std::collections::HashSet<u64> = entries.iter().map(|e| e.id).collect();
        // A gone cgroup's per-container series go with it (metrics, not enforcement: a
        // cgroup the walk missed only loses its series, and starts them again).
        for id in self.metrics.cgroups() {
            if !seen.contains(&id) {
                self.metrics.forget(id);
            }
        }
        let stale: Vec<u64> = self
            .assignments
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .filter(|id| {
                seen.contains(id)
                    || previous
                        .get(id)
                        .is_none_or(|path| cgroups::is_gone(&self.cgroup_root, path, **id))
            })
            .copied()
            .collect();
        for (id, path) in &previous {
            if self.assignments.contains_key(id) && !seen.contains(id) && !stale.contains(id) {
                self.set_path(*id, path.clone());
                self.faults.record(
                    "cgroup_walk",
                    &format!("cgroup {path} was not seen in the walk but is still there; it keeps its profile"),
                );
            }
        }
        for id in stale {
            if let Err(e) = self.unassign(id) {
                self.faults.record("unassign", &e);
            }
        }
        for (id, (profile, level, path, below)) in wanted {
            let current = self.assignments.get(&id);
            if current.is_none_or(|a| a.profile != profile || a.descendants_only != below) {
                if below {
                    log::info!("cgroups below {path} get profile `{profile}`");
                } else {
                    log::info!("cgroup {path} gets profile `{profile}`");
                }
                // One cgroup that cannot get its profile (too deep, a full map) does
                // not keep the others from theirs; it is tried again next rescan.
                if let Err(e) = self.assign_scoped(id, &path, level, &profile, below) {
                    self.faults
                        .record("assign", &e.context(format!("cgroup {path}")));
                }
            }
        }
        let active = self.claims.is_some()
            || self
                .compiled
                .values()
                .any(|c| c.profile.selector.selects_by_container());
        let assignments = &self.assignments;
        let mut plan = gate::Plan::new(
            active,
            &entries,
            |id| assignments.contains_key(&id),
            &self.known,
            &self.gates.released,
        );
        // Below a gate or a parent entry the agent's own cgroup would be covered by
        // them: an "unmonitored" entry of its own keeps it out.
        if let Some(own) = self.own_cgroup.as_deref()
            && let Some(e) = entries.iter().find(|e| e.path == own)
        {
            let covered = entries.iter().any(|a| {
                a.path != own
                    && self.holds_the_agent(&a.path)
                    && (plan.gates.contains_key(&a.id)
                        || self
                            .assignments
                            .get(&a.id)
                            .is_some_and(|x| x.descendants_only))
            });
            if covered {
                plan.unmonitored.insert(e.id, (e.path.clone(), e.level));
            }
        }
        self.apply_gates(plan)?;
        self.release_held()?;
        self.report_postures()?;
        self.report_oci_deviations()
    }
}

/// The level of a cgroup path (`/` is 0).
pub(super) fn entries_level(path: &str) -> Option<u32> {
    if path.is_empty() {
        return None;
    }
    Some(path.trim_end_matches('/').matches('/').count() as u32 - u32::from(path == "/"))
}
