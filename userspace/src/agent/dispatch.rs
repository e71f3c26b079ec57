//! Kernel records to events: decoding, enrichment, aggregation of repeats, the
//! actions taken on them (`kill-container`), and the sinks, metrics and followers.

use super::*;

impl<K: KernelMaps> Agent<K> {
    /// Decodes, enriches and writes one ring-buffer record.
    pub fn handle_record(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let decoded = events::decode(bytes);
        if let Ok(raw) = &decoded {
            self.know_cgroup(raw.header().cgroup_id);
        }
        match decoded {
            Ok(Raw::Net(e)) => {
                if let Some(count) = self.aggregator.on_event(&e) {
                    self.write_net(&e, count)?;
                }
            }
            Ok(Raw::Syscall(e)) => {
                // Calls the kernel does not aggregate carry no total.
                let count = if e.total == 0 {
                    Some(1)
                } else {
                    self.syscall_repeats.on_event(&e)
                };
                if let Some(count) = count {
                    self.write_syscall(&e, count)?;
                }
            }
            Ok(Raw::Socket(e)) => {
                let record = events::enrich_socket(&e, &*self);
                self.emit(&Record::Deviation(record))?;
            }
            Ok(Raw::Device(e)) => {
                let record = events::enrich_device(&e, &*self);
                self.emit(&Record::Deviation(record))?;
            }
            Ok(Raw::ReadOnly(e)) => {
                if let Some(placed) = self.place_write(&e) {
                    let record = events::enrich_read_only(&e, placed, &*self);
                    self.emit(&Record::Deviation(record))?;
                }
            }
            Ok(Raw::Deviation(e)) => {
                let record = events::enrich_deviation(&e, &*self);
                // One report per container, uid and program: a root shell running a
                // thousand commands is one deviation, not a thousand.
                let key = (
                    e.header.cgroup_id,
                    e.header.uid,
                    record.exe.clone().unwrap_or_default(),
                );
                if self.deviations_seen.len() > 100_000 {
                    self.deviations_seen.clear();
                }
                if self.deviations_seen.insert(key) {
                    self.emit(&Record::Deviation(record))?;
                }
            }
            Ok(Raw::Creds(e)) => self.emit_creds(&e)?,
            Ok(Raw::Gate(e)) => {
                log::debug!(
                    "pid {} held at the gate in cgroup {}",
                    e.header.pid,
                    e.header.cgroup_id
                );
                self.gate_wakeup = true;
            }
            Ok(Raw::Sysctl(e)) => {
                let record = events::enrich_sysctl(&e, &*self);
                self.emit(&Record::Sysctl(record))?;
            }
            Ok(Raw::Dns(e)) => {
                let record = events::enrich_dns(&e, &*self);
                if record.capped > 0 {
                    log::warn!(
                        "cgroup {}: `{}` has more addresses than the profile's cap; {} not allowed",
                        record.header.cgroup.as_deref().unwrap_or("?"),
                        record.name,
                        record.capped
                    );
                }
                self.emit(&Record::Dns(record))?;
            }
            Err(e) => log::warn!("dropping a kernel record: {e}"),
        }
        Ok(())
    }

    pub(super) fn write_syscall(
        &mut self,
        e: &cgwarden_common::SyscallEvent,
        count: u64,
    ) -> anyhow::Result<()> {
        self.know_cgroup(e.header.cgroup_id);
        // The kernel could not decide what a failed write-open reached: decided here,
        // and only an escape file or an unknown target is reported.
        let decided = if e.reached == cgwarden_common::reached::UNDECIDED {
            let cgroup = self
                .paths
                .get(&e.header.cgroup_id)
                .map(|p| self.cgroup_root.join(p.trim_start_matches('/')));
            let others = || {
                cgroup
                    .map(|c| crate::host::procfs::pids_below(&c))
                    .unwrap_or_default()
            };
            match undecided_reach(e, others) {
                Some(reached) => Some(reached),
                None => return Ok(()),
            }
        } else {
            None
        };
        // First the containment: every process of the container, before anything else.
        let killed = (e.action == cgwarden_common::syscall_action::KILL_CONTAINER
            && e.verdict == cgwarden_common::verdict::DENY)
            .then(|| self.kill_container(e.header.cgroup_id))
            .flatten();
        let mut record = events::enrich_syscall(e, count, &*self);
        record.killed_cgroup = killed;
        if decided.is_some() {
            record.reached = decided;
        }
        if record.ppid == 0 {
            // The process entered the cgroup before it executed (so the kernel never saw
            // its fork); /proc still knows its parent while it lives.
            if let Some(p) =
                crate::host::procfs::process(std::path::Path::new("/proc"), record.header.pid)
            {
                record.ppid = p.ppid;
            }
        }
        record.ancestry = self.ancestry(record.ppid);
        self.emit(&Record::Syscall(record))
    }

    /// Kills every process of the container a cgroup belongs to (`cgroup.kill`):
    /// the nearest cgroup on its path with a profile entry of its own, or the child of
    /// a parent entry (never the parent, which holds other containers). Returns the
    /// cgroup killed.
    pub(super) fn kill_container(&mut self, task_cgroup: u64) -> Option<String> {
        let path = self.paths.get(&task_cgroup)?.clone();
        let mut at = path.as_str();
        let mut below: Option<&str> = None;
        let target = loop {
            let entry = self
                .assignments
                .iter()
                .find(|(id, _)| self.paths.get(id).is_some_and(|p| p == at));
            if let Some((_, a)) = entry {
                break if a.descendants_only { below } else { Some(at) };
            }
            below = Some(at);
            match crate::engines::parent_of(at) {
                Some("/") | None => break None,
                Some(parent) => at = parent,
            }
        }?
        .to_owned();
        let file = self
            .cgroup_root
            .join(target.trim_start_matches('/'))
            .join("cgroup.kill");
        match std::fs::write(&file, "1") {
            Ok(()) => {
                log::warn!("killed every process of cgroup {target} (kill-container)");
                Some(target)
            }
            Err(e) => {
                self.faults
                    .record("kill_container", &format!("{}: {e}", file.display()));
                None
            }
        }
    }

    pub(super) fn write_net(
        &mut self,
        e: &cgwarden_common::NetEvent,
        count: u64,
    ) -> anyhow::Result<()> {
        self.know_cgroup(e.header.cgroup_id);
        let record = events::enrich_net(e, count, &*self);
        self.emit(&Record::Net(record))
    }

    /// Sends a record to the sinks, the metrics and the followers. A sink that cannot
    /// write (a full disk) loses the record, counted as a fault; the others get it.
    pub(super) fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        if let Some(kept) = &mut self.recorded {
            kept.push(record.clone());
        }
        self.metrics.observe(record);
        self.followers.send(record);
        if let Err(e) = self.sinks.emit(record) {
            self.faults.record("sink_write", &e);
        }
        Ok(())
    }

    /// The metrics exposition, with gauges read now.
    pub fn metrics_text(&self) -> String {
        let c = self.kernel.counters().unwrap_or_default();
        // Entries by the map they are in: a profile's whole addresses are in EGRESS_HOSTS
        // when it has many (`Rules::hosts_hashed`), everything else in the trie.
        let (mut egress_entries, mut host_entries) = (0usize, 0usize);
        for rules in self
            .compiled
            .values()
            .map(|c| &c.rules)
            .chain(self.retired.iter().map(|(_, r)| r))
        {
            let hosts = if rules.hosts_hashed {
                rules.egress.iter().filter(|e| e.is_host()).count()
            } else {
                0
            };
            host_entries += hosts;
            egress_entries += rules.egress.len() - hosts;
        }
        let gauges = Gauges {
            egress_checked: c.egress_checked,
            egress_denied: c.egress_denied,
            dns_learned: c.dns_learned,
            dns_capped: c.dns_capped,
            faults: self.faults.counts(),
            sinks: self.sinks.health(),
            dns_untrusted: c.dns_untrusted,
            dns_forged: c.dns_forged,
            ringbuf_drops: c.ringbuf_drops,
            profiles: self.compiled.len() as u64,
            monitored_cgroups: self.assignments.len() as u64,
            maps: vec![
                (
                    "EGRESS",
                    egress_entries as u64,
                    u64::from(cgwarden_common::EGRESS_MAX_ENTRIES),
                ),
                (
                    "EGRESS_HOSTS",
                    host_entries as u64,
                    u64::from(cgwarden_common::EGRESS_MAX_ENTRIES),
                ),
                (
                    "CGROUP_PROFILES",
                    self.assignments.len() as u64,
                    u64::from(cgwarden_common::CGROUP_MAX_ENTRIES),
                ),
                (
                    "FLOWS",
                    self.flows_seen as u64,
                    u64::from(cgwarden_common::FLOWS_MAX_ENTRIES),
                ),
                (
                    "LEARNED",
                    self.kernel.learned().len() as u64,
                    u64::from(cgwarden_common::LEARNED_MAX_ENTRIES),
                ),
            ],
            posture: self
                .postures
                .all()
                .into_iter()
                .map(|e| {
                    let c = &e.identity.container;
                    crate::output::metrics::PostureGauge {
                        container: c.name.clone().unwrap_or_default(),
                        id: c.id.chars().take(12).collect(),
                        passed: e.posture.passed as u64,
                        failed: e.posture.failed as u64,
                        unknown: e.posture.unknown as u64,
                    }
                })
                .collect(),
            resident_bytes: crate::output::metrics::resident_bytes(),
            programs: self.kernel.program_stats(),
            bpf_stats: std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
                .is_ok_and(|v| v.trim() == "1"),
        };
        self.metrics.render(&gauges)
    }

    /// Reports repeats the kernel counted but did not send. `force` flushes now (at
    /// shutdown, after the last events were drained).
    pub fn flush_aggregates(&mut self, force: bool) -> anyhow::Result<()> {
        if !force && self.last_flush.elapsed() < FLUSH_EVERY {
            return Ok(());
        }
        // Walking the kernel's flow table is only worth it while the kernel is holding
        // back repeats: until two windows after the last one it counted.
        let held_back = self.counters.aggregated;
        if held_back != self.held_back_seen {
            self.held_back_seen = held_back;
            self.held_back_at = Some(Instant::now());
        }
        let quiet = self
            .held_back_at
            .is_none_or(|at| at.elapsed() > 2 * AGGREGATE_WINDOW);
        if !force && quiet {
            return Ok(());
        }
        self.last_flush = Instant::now();
        let flows = self.kernel.flows();
        self.flows_seen = flows.len();
        let now = if force {
            u64::MAX
        } else {
            u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
        };
        for (event, count) in self.aggregator.flush(&flows, now) {
            self.write_net(&event, count)?;
        }
        let repeats = self.kernel.syscall_repeats();
        for (event, count) in self.syscall_repeats.flush(&repeats, now) {
            self.write_syscall(&event, count)?;
        }
        Ok(())
    }

    /// Makes sure the path of the cgroup a record names is known: one created since
    /// the last walk (a nested cgroup of a monitored one) is found by walking the tree;
    /// one no walk found is not looked for again for a while ([`unknown`]).
    pub(super) fn know_cgroup(&mut self, id: u64) {
        if self.paths.contains_key(&id) {
            return;
        }
        let now = Instant::now();
        if self.unknown.recently_missed(id, now) {
            return;
        }
        for e in cgroups::walk(&self.cgroup_root) {
            self.unknown.found(e.id);
            self.set_path(e.id, e.path);
        }
        if !self.paths.contains_key(&id) {
            log::debug!("cgroup {id} is gone before its path was known");
            self.unknown.missed(id, now);
        }
    }

    /// Emits a `lost` record when the kernel counted ring-buffer drops since last time.
    pub fn check_counters(&mut self) -> anyhow::Result<()> {
        let now = self.kernel.counters()?;
        let lost = now
            .ringbuf_drops
            .saturating_sub(self.counters.ringbuf_drops);
        if lost > 0 {
            let record = LostRecord::ring_buffer_full(events::rfc3339_now(), lost);
            self.emit(&Record::Lost(record))?;
        }
        self.counters = now;
        Ok(())
    }

    /// Flushes the sinks; a sink that cannot write is a fault, not an end.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Err(e) = self.sinks.flush() {
            self.faults.record("sink_flush", &e);
        }
        Ok(())
    }
}

/// What a failed write-open the kernel could not judge reached, resolved in the
/// caller's root (see [`crate::events::reach`]; `others`: the processes of its cgroup, whose
/// root serves when it is gone, listed only then): `Some` for an escape file or an unknown target
/// (reported), `None` when it reached nothing that matters.
pub(super) fn undecided_reach(
    e: &cgwarden_common::SyscallEvent,
    others: impl FnOnce() -> Vec<u32>,
) -> Option<events::Reached> {
    use crate::events::reach::{Reach, reach};
    let unknown = |why: String| events::Reached {
        by: "agent".to_owned(),
        fs: None,
        name: None,
        path: None,
        unknown: Some(why),
        block_device: None,
    };
    if e.path_len as usize >= cgwarden_common::SYSCALL_PATH_BYTES {
        return Some(unknown(format!(
            "the path is longer than the {} bytes the kernel reads",
            cgwarden_common::SYSCALL_PATH_BYTES - 1
        )));
    }
    let Some(written) = events::written_path(e) else {
        return Some(unknown("the path could not be read".to_owned()));
    };
    // open(path, ...) has no directory; openat and openat2 name theirs first.
    let dirfd = (i64::from(e.nr) != libc::SYS_open).then_some(e.args[0] as i32);
    match reach(
        std::path::Path::new("/proc"),
        e.header.pid,
        others,
        &written,
        dirfd,
    ) {
        Reach::File { magic, name, path } => crate::policy::syscalls::is_escape_file(magic, &name)
            .then(|| events::Reached::file("agent", magic, name, Some(path))),
        Reach::Nothing => None,
        Reach::Unknown(why) => Some(unknown(why)),
    }
}
