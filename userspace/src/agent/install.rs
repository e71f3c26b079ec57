//! Installing profiles: each profile compiled under a new id and written to the
//! kernel's maps before any cgroup switches to it, old ids retired after; DNS upkeep;
//! what a previous agent left in pinned maps.

use super::*;
use crate::bpf::{Hooks, Wanted};

impl<K: KernelMaps> Agent<K> {
    /// Installs a new set of profiles atomically: every profile is compiled under a new
    /// id and written to the kernel before any cgroup is switched to it, each cgroup is
    /// switched with one map update, and the old entries are removed last. If anything
    /// fails before the switch, the previous profiles stay in force untouched.
    pub fn install(&mut self, profiles: Vec<Profile>) -> anyhow::Result<()> {
        let mut fresh = BTreeMap::new();
        let started = Instant::now();
        for profile in &profiles {
            for name in profile.egress.rules.iter().flat_map(|r| r.to.iter()) {
                if let crate::policy::Destination::Name(name) = name {
                    self.resolver.want(name);
                }
            }
        }
        for profile in profiles {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            let context = || format!("profile `{}` ({})", profile.name, profile.source.display());
            let resolver = &self.resolver;
            let egress = compile_egress(id, &profile.egress, &|name| resolver.addresses(name))
                .with_context(context)?;
            let names = compile_names(id, &profile.egress).with_context(context)?;
            let dns_servers = trusted_resolvers(id, &profile, &self.resolver.servers());
            let mut syscalls = compile_syscalls(id, &profile.syscalls);
            let runtime = &profile.runtime;
            let patterns =
                crate::policy::paths::compile_paths(&runtime.read_only, &runtime.writable);
            if !patterns.is_empty() {
                crate::policy::paths::add_write_rules(id, &mut syscalls);
            }
            let devices = profile
                .runtime
                .devices
                .as_deref()
                .map(|d| crate::policy::devices::compile_devices(id, d))
                .unwrap_or_default();
            let hosts_hashed = crate::policy::compile::hashes_hosts(&egress);
            let mut pref = profile_ref(id, &profile);
            if hosts_hashed {
                pref.flags |= profile_flags::HOSTS_HASHED;
            }
            if profile.runtime.needs_creds()
                && let Err(why) = &self.cred_offsets
            {
                anyhow::bail!(
                    "profile `{}` ({}): `runtime.capabilities` and `runtime.no_new_privileges` need the kernel's credential layout, which is unknown: {why}",
                    profile.name,
                    profile.source.display()
                );
            }
            let creds = cred_rule(&profile.runtime, self.cred_offsets.is_ok());
            fresh.insert(
                profile.name.as_str().to_owned(),
                Compiled {
                    profile,
                    pref,
                    rules: Rules {
                        id,
                        egress,
                        hosts_hashed,
                        names,
                        dns_servers,
                        syscalls,
                        devices,
                        patterns,
                        creds,
                    },
                },
            );
        }
        log::debug!(
            "compiled in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        let mut written: Vec<&Compiled> = Vec::new();
        for c in fresh.values() {
            if let Err(e) = self.kernel.insert_rules(&c.rules) {
                for w in written.iter().chain(std::iter::once(&c)) {
                    let _ = self.kernel.remove_rules(&w.rules);
                }
                return Err(e).context("writing egress rules to the kernel");
            }
            written.push(c);
        }
        // Each watched syscall, and the programs its rules need.
        let mut wanted: BTreeMap<u32, (Sysno, Hooks)> = BTreeMap::new();
        for (_, rule, sysno) in fresh.values().flat_map(|c| c.rules.syscalls.iter()) {
            let entry = wanted
                .entry(sysno.id() as u32)
                .or_insert((*sysno, Hooks::default()));
            entry.1 = entry.1.union(Hooks::of_rule(rule));
        }
        let wanted: Vec<(Sysno, Hooks)> = wanted.into_values().collect();
        let track = !wanted.is_empty()
            || fresh.values().any(|c| {
                c.profile.runtime.user.is_some()
                    || c.rules.creds.is_some()
                    || c.profile.learn
                    // The gate holds a container's first process at its exec.
                    || c.profile.selector.selects_by_container()
            });
        if fresh.values().any(|c| c.profile.learn) {
            self.kernel
                .learn_syscalls()
                .context("attaching the syscall recorder")?;
        }
        let packet_sockets = fresh
            .values()
            .any(|c| c.pref.flags & profile_flags::DENY_RAW_SOCKETS != 0);
        let loopback_binds = fresh
            .values()
            .any(|c| c.pref.flags & profile_flags::BIND_LOOPBACK_ONLY != 0);
        let reads_dns = fresh
            .values()
            .any(|c| c.pref.flags & profile_flags::READS_DNS != 0);
        if let Err(e) = self.kernel.attach_programs(&Wanted {
            processes: track,
            syscalls: &wanted,
            packet_sockets,
            listens: loopback_binds,
            dns_answers: reads_dns,
        }) {
            for w in &written {
                let _ = self.kernel.remove_rules(&w.rules);
            }
            return Err(e).context("attaching the syscall programs");
        }
        self.update_levels()?;
        let compiled_at = Instant::now();
        for c in fresh.values() {
            let labels = c
                .profile
                .egress
                .rules
                .iter()
                .map(|r| r.label.clone())
                .collect();
            self.names
                .by_id
                .insert(c.pref.id, (c.profile.name.as_str().to_owned(), labels));
            let syscall_labels = c
                .profile
                .syscalls
                .iter()
                .enumerate()
                .map(|(i, r)| match r.set {
                    Some(crate::policy::SyscallSet::Escape) => format!("syscalls[{i}] (escape)"),
                    None => format!("syscalls[{i}]"),
                })
                .collect();
            self.names.syscall_labels.insert(c.pref.id, syscall_labels);
        }
        let old = std::mem::replace(&mut self.compiled, fresh);
        let installed: Vec<&str> = self.compiled.keys().map(String::as_str).collect();
        self.metrics.keep_rules_of(&installed);
        // Switch every assigned cgroup to its profile's new id, or drop it.
        let assigned: Vec<(u64, Assignment)> = self
            .assignments
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (cgroup, a) in assigned {
            match self.compiled.get(&a.profile) {
                Some(c) => self
                    .kernel
                    .set_cgroup_profile(cgroup, with_scope(c.pref, a.descendants_only))
                    .context("switching a cgroup to the reloaded profile")?,
                None => self.unassign(cgroup)?,
            }
        }
        self.retired
            .extend(old.into_values().map(|c| (Instant::now(), c.rules)));
        let entries: usize = self.compiled.values().map(|c| c.rules.egress.len()).sum();
        log::info!(
            "installed {} profile(s): {entries} egress entries, compiled and loaded in {:.1} ms, switched in {:.1} ms",
            self.compiled.len(),
            (compiled_at - started).as_secs_f64() * 1e3,
            compiled_at.elapsed().as_secs_f64() * 1e3,
        );
        Ok(())
    }

    /// Removes the egress entries of replaced profiles once they cannot be in use.
    pub fn remove_retired(&mut self) -> anyhow::Result<()> {
        while let Some((since, _)) = self.retired.first() {
            if since.elapsed() < RETIRE_AFTER {
                break;
            }
            let (_, rules) = self.retired.remove(0);
            self.kernel
                .remove_rules(&rules)
                .context("removing the previous egress rules")?;
        }
        Ok(())
    }

    /// Periodic DNS upkeep: re-resolves names whose TTL ran out (recompiling the
    /// profiles when addresses changed) and forgets learned addresses long expired.
    pub fn dns_upkeep(&mut self) -> anyhow::Result<()> {
        if self.resolver.refresh_due() {
            let sources = self.compiled.values().map(|c| c.profile.clone()).collect();
            self.install(sources)
                .context("recompiling profiles after a DNS change")?;
        }
        let now = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0);
        for (key, value) in self.kernel.learned() {
            if value.expires_ns.saturating_add(LEARNED_GRACE_NS) < now {
                self.kernel.forget_learned(&key, &value)?;
            }
        }
        Ok(())
    }

    /// Names of the installed profiles.
    pub fn profile_names(&self) -> Vec<String> {
        self.compiled.keys().cloned().collect()
    }

    /// The installed profiles, in name order.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.compiled.values().map(|c| &c.profile)
    }

    /// Once this agent has applied its own profiles, removes what a previous agent left
    /// in pinned maps: cgroups it no longer selects and rules of old profile ids.
    pub fn sweep_inherited(&mut self) -> anyhow::Result<()> {
        let Some(inherited) = &self.inherited else {
            return Ok(());
        };
        if inherited.sweep_at > Instant::now() {
            return Ok(());
        }
        self.inherited = None;
        for (cgroup, _) in self.kernel.cgroup_profiles() {
            if !self.assignments.contains_key(&cgroup) && !self.gates.plan.contains(cgroup) {
                self.kernel.remove_cgroup_profile(cgroup)?;
            }
        }
        self.update_levels()?;
        let live: std::collections::HashSet<u32> = self
            .compiled
            .values()
            .map(|c| c.pref.id)
            .chain(self.retired.iter().map(|(_, r)| r.id))
            .collect();
        let removed = self.kernel.sweep_rules(&|id| live.contains(&id))?;
        log::info!("removed {removed} rule entries a previous agent left");
        let unpinned = self.kernel.sweep_late_links();
        if unpinned > 0 {
            log::info!(
                "detached {unpinned} programs (syscall tracepoints, the DNS reader) no profile needs any more"
            );
        }
        Ok(())
    }
}

/// What a profile allows of credentials after an exec; `None` when it asks nothing the
/// kernel can check (`known`: the credential offsets are known).
pub(super) fn cred_rule(
    runtime: &crate::policy::Runtime,
    known: bool,
) -> Option<cgwarden_common::CredRule> {
    use cgwarden_common::cred_rule;
    if !known {
        return None;
    }
    let mut rule = cgwarden_common::CredRule::default();
    if let Some(caps) = runtime.capabilities {
        rule.flags |= cred_rule::CAPS;
        rule.allowed_caps = caps.0;
    }
    if runtime.no_new_privileges {
        rule.flags |= cred_rule::NO_NEW_PRIVS;
    }
    if let Some(uid) = runtime.user {
        rule.flags |= cred_rule::EUID;
        rule.expected_euid = uid;
    }
    (rule.flags != 0).then_some(rule)
}

/// The resolvers a profile trusts (`DNS_SERVERS` entries of its id): its own
/// `egress.dns.servers`, else the agent's resolvers (the container's own resolv.conf is
/// added per cgroup when it gets the profile).
pub(super) fn trusted_resolvers(
    id: u32,
    profile: &Profile,
    agent_resolvers: &[std::net::IpAddr],
) -> Vec<cgwarden_common::DnsServerKey> {
    let dns = &profile.egress.dns;
    if !profile.egress.has_names() && !dns.report {
        return Vec::new();
    }
    let servers = if dns.servers.is_empty() {
        agent_resolvers
    } else {
        &dns.servers
    };
    servers
        .iter()
        .map(|ip| cgwarden_common::DnsServerKey {
            scope: cgwarden_common::DNS_SCOPE_PROFILE | u64::from(id),
            addr: kernel_addr(*ip),
        })
        .collect()
}

/// An address as the kernel keys it: IPv6, or IPv4 v4-mapped.
pub(super) fn kernel_addr(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// A profile entry for a cgroup, or for the cgroups below it.
pub(super) fn with_scope(mut pref: ProfileRef, descendants_only: bool) -> ProfileRef {
    if descendants_only {
        pref.flags |= profile_flags::DESCENDANTS_ONLY;
    }
    pref
}

/// What the kernel needs to know about a profile for every hook.
pub(super) fn profile_ref(id: u32, profile: &Profile) -> ProfileRef {
    let mut flags = 0;
    if profile.mode == Mode::Enforce {
        flags |= profile_flags::ENFORCE;
    }
    if profile.egress.default == EgressDefault::Allow {
        flags |= profile_flags::EGRESS_DEFAULT_ALLOW;
    }
    if profile.egress.report == ReportLevel::All {
        flags |= profile_flags::REPORT_ALLOWED;
    }
    if profile.egress.has_names() {
        flags |= profile_flags::LEARN_DNS;
    }
    if profile.egress.dns.report {
        flags |= profile_flags::REPORT_DNS;
    }
    // The escape set also covers writes under /proc/sys, through the sysctl hook.
    for rule in &profile.syscalls {
        if rule.set == Some(crate::policy::SyscallSet::Escape) {
            flags |= profile_flags::WATCH_SYSCTL;
            if rule.action.kills() {
                flags |= profile_flags::DENY_SYSCTL;
            }
        }
    }
    if profile.runtime.binds == crate::policy::Binds::Loopback {
        flags |= profile_flags::BIND_LOOPBACK_ONLY;
    }
    if profile.raw_sockets() == crate::policy::RawSockets::Deny {
        flags |= profile_flags::DENY_RAW_SOCKETS;
    }
    if profile.learn {
        flags |= profile_flags::LEARN_SYSCALLS;
    }
    if profile.runtime.devices.is_some() {
        flags |= profile_flags::RESTRICT_DEVICES;
    }
    ProfileRef {
        id,
        flags,
        dns_cap: profile.egress.dns.max_addresses_per_name,
        expected_uid_plus_one: profile.runtime.user.map_or(0, |u| u.saturating_add(1)),
        dns_max_ttl: profile.egress.dns.max_ttl.0,
        _pad: 0,
    }
}
