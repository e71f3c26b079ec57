//! Deviations from the runtime profile found in user space: OCI configuration,
//! posture, credentials, writes under read-only paths, and the process chain behind
//! an attempt.

use super::*;

impl<K: KernelMaps> Agent<K> {
    /// Reports, once per container, where its OCI configuration promises less
    /// hardening than the profile its cgroup has.
    pub(super) fn report_oci_deviations(&mut self) -> anyhow::Result<()> {
        let mut found = Vec::new();
        for (cgroup, a) in &self.assignments {
            if a.descendants_only {
                continue;
            }
            let Some(path) = self.paths.get(cgroup) else {
                continue;
            };
            let Some(c) = self.known.oci_at(path) else {
                continue;
            };
            if !self
                .oci_reported
                .insert((*cgroup, c.identity.container.id.clone()))
            {
                continue;
            }
            let Some(compiled) = self.compiled.get(&a.profile) else {
                continue;
            };
            let mut deviations =
                crate::engines::oci::deviations(&c.config, &compiled.profile.runtime);
            deviations.extend(
                self.posture_shortfall(path, &compiled.profile.runtime)
                    .into_iter()
                    .map(|(_, detail)| ("posture", detail)),
            );
            for (deviation, detail) in deviations {
                found.push(events::DeviationRecord {
                    header: events::Header {
                        time: events::rfc3339_now(),
                        kind: "deviation",
                        pid: c.init_pid,
                        tid: c.init_pid,
                        process: String::new(),
                        uid: c.config.uid,
                        gid: c.config.gid,
                        cgroup: Some(path.clone()),
                        cgroup_id: *cgroup,
                        profile: Some(a.profile.clone()),
                        who: Some(c.identity.clone()),
                    },
                    verdict: "report",
                    deviation,
                    detail,
                    device: None,
                    write: None,
                    exe: None,
                    creds: None,
                });
            }
        }
        let assigned = &self.assignments;
        self.oci_reported
            .retain(|(id, _)| assigned.contains_key(id));
        for record in found {
            self.emit(&Record::Deviation(record))?;
        }
        Ok(())
    }

    /// Why the kernel's credential layout is unknown, or `Ok` when profiles may judge
    /// capabilities and no-new-privileges.
    pub fn credential_layout(&self) -> Result<(), &str> {
        self.cred_offsets
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }

    /// Where a write the kernel reported under a read-only path lands, or `None` when it
    /// is no deviation after all: the kernel could not place the path (relative, or
    /// with `..`), and resolved here it lies under a writable path. A write the kernel
    /// refused with EROFS, or whose place is unknown, is always a deviation.
    pub(super) fn place_write(&self, e: &cgwarden_common::SyscallEvent) -> Option<events::Placed> {
        use crate::policy::paths;
        let Some(written) = events::written_path(e) else {
            return Some(events::Placed {
                path: "?".to_owned(),
                written: None,
                location_unknown: true,
            });
        };
        if e.unresolved == 0 {
            return Some(events::Placed {
                path: written,
                written: None,
                location_unknown: false,
            });
        }
        // `rule` carries the index of the path argument judged.
        let dirfd = paths::write_syscall(e.nr).and_then(|s| {
            let arg = u8::try_from(e.rule).ok()?;
            let fd_arg = if arg == s.path { s.dirfd } else { s.dirfd2 }?;
            Some(e.args[usize::from(fd_arg) % 6] as i32)
        });
        let proc = std::path::Path::new("/proc");
        let Some(path) = paths::resolve(proc, e.header.pid, &written, dirfd) else {
            return Some(events::Placed {
                path: written,
                written: None,
                location_unknown: true,
            });
        };
        let refused = e.flags as i64 == -30;
        let runtime = self
            .names
            .by_id
            .get(&e.header.profile)
            .and_then(|(name, _)| self.compiled.get(name))
            .map(|c| &c.profile.runtime);
        let read_only =
            runtime.is_none_or(|r| paths::is_read_only(&r.read_only, &r.writable, &path));
        (read_only || refused).then(|| events::Placed {
            written: (path != written).then_some(written),
            path,
            location_unknown: false,
        })
    }

    /// The chain of processes from `pid` upwards, from the kernel's process table and,
    /// past it, /proc.
    pub(super) fn ancestry(&self, mut pid: u32) -> Vec<events::Ancestor> {
        let mut chain = Vec::new();
        for _ in 0..8 {
            if pid <= 1 {
                break;
            }
            let (exe, ppid) = match self.kernel.process(pid) {
                Some(info) => (events::c_string(&info.exe), info.ppid),
                None => match crate::host::procfs::process(std::path::Path::new("/proc"), pid) {
                    Some(p) => (p.exe, p.ppid),
                    None => break,
                },
            };
            chain.push(events::Ancestor { pid, exe });
            pid = ppid;
        }
        chain
    }

    /// Emits the deviations of a credentials record, once per container, deviation and
    /// program.
    pub(super) fn emit_creds(&mut self, e: &cgwarden_common::CredsEvent) -> anyhow::Result<()> {
        for record in events::enrich_creds(e, &*self) {
            let key = (
                e.header.cgroup_id,
                record.deviation,
                record.exe.clone().unwrap_or_default(),
            );
            if self.creds_seen.len() > 100_000 {
                self.creds_seen.clear();
            }
            if self.creds_seen.insert(key) {
                self.emit(&Record::Deviation(record))?;
            }
        }
        Ok(())
    }

    /// Emits a `posture` event for each container whose posture is new or changed.
    pub(super) fn report_postures(&mut self) -> anyhow::Result<()> {
        for state in self.postures.update(&self.known) {
            let Some(entry) = self.postures.get(&state) else {
                continue;
            };
            let profile = entry.cgroup.as_deref().and_then(|path| {
                self.paths
                    .iter()
                    .find(|(_, p)| p.as_str() == path)
                    .and_then(|(id, _)| self.assignments.get(id))
                    .filter(|a| !a.descendants_only)
                    .map(|a| a.profile.clone())
            });
            let record = events::PostureRecord {
                time: events::rfc3339_now(),
                kind: "posture",
                cgroup: entry.cgroup.clone(),
                who: entry.identity.clone(),
                profile,
                posture: entry.posture.clone(),
            };
            self.emit(&Record::Posture(Box::new(record)))?;
        }
        Ok(())
    }

    /// What the agent knows of every container's posture (`cgwarden posture`).
    pub fn postures(&self) -> serde_json::Value {
        let containers: Vec<serde_json::Value> = self
            .postures
            .all()
            .into_iter()
            .map(|e| crate::posture::assessed_json(&e.identity, e.cgroup.as_deref(), &e.posture))
            .collect();
        serde_json::json!({
            "ok": true,
            "enabled": self.postures.enabled(),
            "containers": containers,
        })
    }

    /// The required posture checks (`runtime.posture`) a container fails or that
    /// cannot be decided: (check, what the evidence says).
    pub(super) fn posture_shortfall(
        &self,
        path: &str,
        runtime: &crate::policy::Runtime,
    ) -> Vec<(crate::posture::Check, String)> {
        if runtime.posture.is_empty() {
            return Vec::new();
        }
        let Some(entry) = self.postures.at_cgroup(path) else {
            return runtime
                .posture
                .iter()
                .map(|c| (*c, "the container's posture is not known".to_owned()))
                .collect();
        };
        runtime
            .posture
            .iter()
            .filter_map(|c| {
                let f = entry.posture.finding(*c)?;
                (f.verdict != crate::posture::Verdict::Pass).then(|| {
                    let evidence: Vec<String> = f.evidence.iter().map(|e| e.to_string()).collect();
                    (
                        *c,
                        format!(
                            "{} ({}) is {}: {}",
                            c.id(),
                            f.title,
                            f.verdict.as_str(),
                            evidence.join("; ")
                        ),
                    )
                })
            })
            .collect()
    }
}
