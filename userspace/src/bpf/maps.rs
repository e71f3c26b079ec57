//! Typed writes to the kernel's maps: which profile a cgroup has, the monitored levels,
//! egress entries, and the counters.

use std::os::fd::AsFd;

use aya::maps::{MapError, lpm_trie::Key};
use cgwarden_common::{
    Config, EXE_BYTES, FlowKey, FlowState, LearnedKey, LearnedValue, NameCountKey, PatternKey,
    ProcInfo, ProfileRef, SyscallRepeatKey, counters, proc_flags,
};

use super::Kernel;
use crate::{agent::Rules, policy::compile::EgressEntry};

/// Counter totals summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub ringbuf_drops: u64,
    pub egress_checked: u64,
    pub egress_denied: u64,
    pub dns_learned: u64,
    pub dns_capped: u64,
    pub aggregated: u64,
    pub gate_full: u64,
    pub dns_untrusted: u64,
    pub dns_forged: u64,
}

impl Kernel {
    /// Points a cgroup (and its descendants) at a compiled profile.
    pub fn set_cgroup_profile(
        &mut self,
        cgroup_id: u64,
        profile: ProfileRef,
    ) -> Result<(), MapError> {
        self.cgroup_profiles.insert(cgroup_id, profile, 0)
    }

    /// Stops monitoring a cgroup.
    pub fn remove_cgroup_profile(&mut self, cgroup_id: u64) -> Result<(), MapError> {
        ignore_missing(self.cgroup_profiles.remove(&cgroup_id))
    }

    /// Writes the global settings (levels that hold a profile, next profile id).
    pub fn write_config(&mut self, config: Config) -> Result<(), MapError> {
        self.config.set(0, config, 0)
    }

    /// Reads the global settings (as a previous agent may have left them).
    pub fn read_config(&self) -> Result<Config, MapError> {
        self.config.get(&0, 0)
    }

    /// The cgroups that have a profile in the kernel, with it.
    pub fn cgroup_profiles(&self) -> Vec<(u64, ProfileRef)> {
        self.cgroup_profiles.iter().filter_map(Result::ok).collect()
    }

    /// Removes the rule entries (egress, names, syscalls, devices, path patterns,
    /// credentials) of profile ids for which `keep` is false: what a previous agent left
    /// behind.
    pub fn sweep_rules(&mut self, keep: &dyn Fn(u32) -> bool) -> Result<usize, MapError> {
        let stale: Vec<_> = self
            .egress
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !keep(u32::from_be(k.data().profile_be)))
            .collect();
        let mut removed = stale.len();
        for key in stale {
            ignore_missing(self.egress.remove(&key))?;
        }
        removed += sweep(&mut self.egress_hosts, |k| keep(u32::from_be(k.profile_be)))?;
        removed += sweep(&mut self.names, |k| keep(k.profile))?;
        removed += sweep(&mut self.name_text, |k| keep(k.profile))?;
        removed += sweep(&mut self.dns_servers, |k| {
            k.scope & cgwarden_common::DNS_SCOPE_PROFILE == 0
                || keep((k.scope & !cgwarden_common::DNS_SCOPE_PROFILE) as u32)
        })?;
        removed += sweep(&mut self.syscall_rules, |k| keep(k.profile))?;
        removed += sweep(&mut self.device_rules, |k| keep(k.profile))?;
        removed += sweep(&mut self.profile_patterns, |k| keep(k.set))?;
        removed += sweep(&mut self.cred_rules, |k| keep(*k))?;
        Ok(removed)
    }

    /// Writes a compiled profile's entries.
    pub fn insert_rules(&mut self, rules: &Rules) -> Result<(), MapError> {
        self.insert_egress(&rules.egress, rules.hosts_hashed)?;
        for n in &rules.names {
            // The text first: a hash without its text matches nothing.
            self.name_text.insert(n.key, n.text, 0)?;
            self.names.insert(n.key, n.value, 0)?;
        }
        for key in &rules.dns_servers {
            self.dns_servers.insert(key, 1, 0)?;
        }
        for (key, rule, _) in &rules.syscalls {
            self.syscall_rules.insert(key, rule, 0)?;
        }
        for (key, access) in &rules.devices {
            self.device_rules.insert(key, access, 0)?;
        }
        self.write_profile_patterns(rules.id, &rules.patterns)?;
        if let Some(rule) = rules.creds {
            self.set_cred_rule(rules.id, rule)?;
        }
        Ok(())
    }

    /// Removes a compiled profile's entries.
    pub fn remove_rules(&mut self, rules: &Rules) -> Result<(), MapError> {
        self.remove_egress(&rules.egress, rules.hosts_hashed)?;
        for n in &rules.names {
            ignore_missing(self.names.remove(&n.key))?;
            ignore_missing(self.name_text.remove(&n.key))?;
        }
        for key in &rules.dns_servers {
            ignore_missing(self.dns_servers.remove(key))?;
        }
        for (key, _, _) in &rules.syscalls {
            ignore_missing(self.syscall_rules.remove(key))?;
        }
        for (key, _) in &rules.devices {
            ignore_missing(self.device_rules.remove(key))?;
        }
        for index in 0..rules.patterns.len() as u32 {
            let key = PatternKey {
                set: rules.id,
                index,
            };
            ignore_missing(self.profile_patterns.remove(&key))?;
        }
        if rules.creds.is_some() {
            self.remove_cred_rule(rules.id)?;
        }
        Ok(())
    }

    /// Tells the kernel the host's container runtime API sockets, by identity.
    pub fn set_runtime_sockets(
        &mut self,
        files: &[cgwarden_common::SocketFile],
    ) -> Result<(), MapError> {
        for f in files {
            self.runtime_sockets.insert(f, 1, 0)?;
        }
        Ok(())
    }

    /// The processes held at the gate, with their container's cgroup.
    pub fn gated(&self) -> Vec<(u32, cgwarden_common::GatedProc)> {
        self.gated.iter().filter_map(Result::ok).collect()
    }

    /// Forgets a process held at the gate (after continuing it, or when it is gone).
    pub fn forget_gated(&mut self, pid: u32) -> Result<(), MapError> {
        ignore_missing(self.gated.remove(&pid))
    }

    /// Trusts `servers` as resolvers of one monitored cgroup (its own resolv.conf).
    pub fn set_cgroup_resolvers(
        &mut self,
        cgroup_id: u64,
        servers: &[[u8; 16]],
    ) -> Result<(), MapError> {
        for addr in servers {
            let key = cgwarden_common::DnsServerKey {
                scope: cgroup_id,
                addr: *addr,
            };
            self.dns_servers.insert(key, 1, 0)?;
        }
        Ok(())
    }

    /// Forgets the resolvers of a cgroup.
    pub fn remove_cgroup_resolvers(&mut self, cgroup_id: u64) -> Result<(), MapError> {
        let keys: Vec<_> = self
            .dns_servers
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.scope == cgroup_id)
            .collect();
        for key in keys {
            ignore_missing(self.dns_servers.remove(&key))?;
        }
        Ok(())
    }

    /// What the process table knows of a process.
    pub fn process(&self, pid: u32) -> Option<ProcInfo> {
        self.procs.get(&pid, 0).ok()
    }

    /// Writes the escape set's path patterns (pattern set 0).
    pub fn write_escape_patterns(
        &mut self,
        patterns: &[cgwarden_common::PathPattern],
    ) -> Result<(), MapError> {
        for (i, p) in patterns.iter().enumerate() {
            self.path_patterns.set(i as u32, p, 0)?;
        }
        // The ones a read-only open can match, in the same order, and what their paths
        // can start with.
        let read: Vec<cgwarden_common::PathPattern> = patterns
            .iter()
            .filter(|p| p.applies & cgwarden_common::pattern_applies::OPEN != 0)
            .copied()
            .collect();
        for (i, p) in read.iter().enumerate() {
            self.read_patterns.set(i as u32, p, 0)?;
        }
        self.read_leads
            .set(0, cgwarden_common::read_leads(&read), 0)?;
        Ok(())
    }

    /// Writes the escape set's files by what they are (file system magic and name).
    pub fn write_escape_files(
        &mut self,
        files: &[cgwarden_common::EscapeFileKey],
    ) -> Result<(), MapError> {
        for key in files {
            self.escape_files.insert(key, 1, 0)?;
        }
        Ok(())
    }

    /// Writes a profile's read-only and writable paths (pattern set = its id).
    fn write_profile_patterns(
        &mut self,
        set: u32,
        patterns: &[cgwarden_common::PathPattern],
    ) -> Result<(), MapError> {
        for (i, p) in patterns.iter().enumerate() {
            let key = PatternKey {
                set,
                index: i as u32,
            };
            self.profile_patterns.insert(key, p, 0)?;
        }
        Ok(())
    }

    /// Records a process that was in a monitored cgroup before the agent applied the
    /// profile, so syscall rules apply to it too.
    pub fn arm_process(&mut self, pid: u32, ppid: u32, exe: &str) -> Result<(), MapError> {
        let mut info = ProcInfo {
            ppid,
            flags: proc_flags::ARMED,
            exe: [0; EXE_BYTES],
        };
        let bytes = exe.as_bytes();
        let n = bytes.len().min(EXE_BYTES - 1);
        info.exe[..n].copy_from_slice(&bytes[..n]);
        self.procs.insert(pid, info, 0)
    }

    /// Every address containers learned from DNS answers.
    pub fn learned(&self) -> Vec<(LearnedKey, LearnedValue)> {
        self.learned.iter().filter_map(Result::ok).collect()
    }

    /// Forgets a learned address, unless the kernel refreshed it since `seen` was read,
    /// and releases its place under the name's cap.
    pub fn forget_learned(
        &mut self,
        key: &LearnedKey,
        seen: &LearnedValue,
    ) -> Result<(), MapError> {
        match self.learned.get(key, 0) {
            Ok(now) if now.expires_ns != seen.expires_ns => return Ok(()),
            Err(_) => return Ok(()),
            Ok(_) => {}
        }
        ignore_missing(self.learned.remove(key))?;
        let counter = NameCountKey {
            cgroup_id: key.cgroup_id,
            wildcard: seen.wildcard,
            _pad: 0,
            hash: seen.hash,
        };
        match self.name_counts.get(&counter, 0) {
            Ok(n) if n > 1 => self.name_counts.insert(counter, n - 1, 0),
            Ok(_) => ignore_missing(self.name_counts.remove(&counter)),
            Err(_) => Ok(()),
        }
    }

    /// Writes egress entries (new ones and replacements): with `hashed`, whole addresses
    /// to `EGRESS_HOSTS` and the rest to the trie, else all to the trie; each with one
    /// batched system call where the kernel has them (a 100,000-CIDR profile is one call,
    /// not 100,000), one call per entry for what a batch did not write.
    pub fn insert_egress(&mut self, entries: &[EgressEntry], hashed: bool) -> Result<(), MapError> {
        let (hosts, prefixes): (Vec<&EgressEntry>, Vec<&EgressEntry>) =
            entries.iter().partition(|e| hashed && e.is_host());
        let written = batch_write(self.egress_hosts_fd.as_fd(), &hosts, |e| e.key);
        for e in &hosts[written..] {
            self.egress_hosts.insert(e.key, e.value, 0)?;
        }
        let written = batch_write(self.egress_fd.as_fd(), &prefixes, |e| {
            Key::new(e.prefix_len, e.key)
        });
        for e in &prefixes[written..] {
            self.egress
                .insert(&Key::new(e.prefix_len, e.key), e.value, 0)?;
        }
        Ok(())
    }

    /// Removes egress entries; entries already gone are not an error.
    pub fn remove_egress(&mut self, entries: &[EgressEntry], hashed: bool) -> Result<(), MapError> {
        for e in entries {
            if hashed && e.is_host() {
                ignore_missing(self.egress_hosts.remove(&e.key))?;
            } else {
                ignore_missing(self.egress.remove(&Key::new(e.prefix_len, e.key)))?;
            }
        }
        Ok(())
    }

    /// Every flow the kernel is aggregating, with its state.
    pub fn flows(&self) -> Vec<(FlowKey, FlowState)> {
        self.flows.iter().filter_map(Result::ok).collect()
    }

    /// The kernel's repeat totals of reported syscalls.
    pub fn syscall_repeats(&self) -> Vec<(SyscallRepeatKey, FlowState)> {
        self.syscall_repeats.iter().filter_map(Result::ok).collect()
    }

    /// Reads the per-CPU counters and sums them.
    pub fn counters(&self) -> Result<Counters, MapError> {
        let sum = |index: u32| -> Result<u64, MapError> {
            Ok(self.counters.get(&index, 0)?.iter().sum())
        };
        Ok(Counters {
            ringbuf_drops: sum(counters::RINGBUF_DROPS)?,
            egress_checked: sum(counters::EGRESS_CHECKED)?,
            egress_denied: sum(counters::EGRESS_DENIED)?,
            dns_learned: sum(counters::DNS_LEARNED)?,
            dns_capped: sum(counters::DNS_CAPPED)?,
            aggregated: sum(counters::AGGREGATED)?,
            gate_full: sum(counters::GATE_FULL)?,
            dns_untrusted: sum(counters::DNS_UNTRUSTED)?,
            dns_forged: sum(counters::DNS_FORGED)?,
        })
    }
}

/// Treats "no such key" as success: removing what is already gone is not an error.
pub(super) fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Writes `entries` to the map behind `fd` in one batch, keyed by `key`; how many it
/// wrote (all, or those before the first the kernel refused; none where the kernel has
/// no batches: the caller writes the rest one by one).
fn batch_write<K: aya::Pod>(
    fd: std::os::fd::BorrowedFd,
    entries: &[&EgressEntry],
    key: impl Fn(&EgressEntry) -> K,
) -> usize {
    if entries.len() < 2 {
        return 0;
    }
    let keys: Vec<K> = entries.iter().map(|e| key(e)).collect();
    let values: Vec<cgwarden_common::EgressValue> = entries.iter().map(|e| e.value).collect();
    let (written, result) = super::raw::update_batch(fd, &keys, &values);
    if let Err(e) = result {
        log::debug!("batched egress write stopped after {written} entries: {e}");
    }
    written.min(entries.len())
}

/// Removes the entries of `map` whose key `keep` rejects; returns how many.
fn sweep<K: aya::Pod, V: aya::Pod>(
    map: &mut aya::maps::HashMap<aya::maps::MapData, K, V>,
    keep: impl Fn(&K) -> bool,
) -> Result<usize, MapError> {
    let stale: Vec<K> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !keep(k))
        .collect();
    for key in &stale {
        ignore_missing(map.remove(key))?;
    }
    Ok(stale.len())
}
