//! What the agent needs of the kernel side, as one narrow trait: the maps it writes
//! (profiles by cgroup, rules, settings, processes), the tables it reads back (flows,
//! repeats, learned addresses, the gate), and the programs it asks to attach.
//!
//! [`crate::bpf::Kernel`] is the real one. Behind the trait, installation (profiles →
//! maps), assignment (cgroups ↔ profiles, levels, sweep) and adoption after a restart
//! are tested without root, against an in-memory kernel (`tests.rs`).

use aya::maps::MapError;
use cgwarden_common::{
    Config, CredOffsets, FlowKey, FlowState, GatedProc, LearnedKey, LearnedValue, ProcInfo,
    ProfileRef, SocketFile, SyscallRepeatKey,
};

use super::Rules;
use crate::bpf::{Counters, LoadError, Wanted, Watch};

/// The kernel side, as the agent uses it.
pub trait KernelMaps {
    // Profiles by cgroup.
    fn set_cgroup_profile(&mut self, cgroup_id: u64, profile: ProfileRef) -> Result<(), MapError>;
    fn remove_cgroup_profile(&mut self, cgroup_id: u64) -> Result<(), MapError>;
    fn cgroup_profiles(&self) -> Vec<(u64, ProfileRef)>;
    fn set_cgroup_resolvers(
        &mut self,
        cgroup_id: u64,
        servers: &[[u8; 16]],
    ) -> Result<(), MapError>;
    fn remove_cgroup_resolvers(&mut self, cgroup_id: u64) -> Result<(), MapError>;

    // A compiled profile's entries.
    fn insert_rules(&mut self, rules: &Rules) -> Result<(), MapError>;
    fn remove_rules(&mut self, rules: &Rules) -> Result<(), MapError>;
    /// Removes the rules of every profile id `keep` refuses; how many entries went.
    fn sweep_rules(&mut self, keep: &dyn Fn(u32) -> bool) -> Result<usize, MapError>;

    // Settings.
    fn read_config(&self) -> Result<Config, MapError>;
    fn write_config(&mut self, config: Config) -> Result<(), MapError>;
    fn write_escape_patterns(
        &mut self,
        patterns: &[cgwarden_common::PathPattern],
    ) -> Result<(), MapError>;
    fn write_escape_files(
        &mut self,
        files: &[cgwarden_common::EscapeFileKey],
    ) -> Result<(), MapError>;
    fn write_cred_offsets(&mut self, offsets: CredOffsets) -> Result<(), MapError>;
    fn set_runtime_sockets(&mut self, files: &[SocketFile]) -> Result<(), MapError>;

    // Programs.
    fn attach_programs(&mut self, wanted: &Wanted) -> Result<(), LoadError>;
    fn learn_syscalls(&mut self) -> Result<(), LoadError>;
    fn watched_syscalls(&self) -> &std::collections::BTreeMap<u32, Watch>;
    fn sweep_late_links(&self) -> usize;
    fn program_stats(&self) -> Vec<(&'static str, u64, u64)>;

    // Processes.
    fn arm_process(&mut self, pid: u32, ppid: u32, exe: &str) -> Result<(), MapError>;
    fn process(&self, pid: u32) -> Option<ProcInfo>;
    fn gated(&self) -> Vec<(u32, GatedProc)>;
    fn forget_gated(&mut self, pid: u32) -> Result<(), MapError>;

    // Tables read back.
    fn counters(&self) -> Result<Counters, MapError>;
    fn flows(&self) -> Vec<(FlowKey, FlowState)>;
    fn syscall_repeats(&self) -> Vec<(SyscallRepeatKey, FlowState)>;
    fn learned(&self) -> Vec<(LearnedKey, LearnedValue)>;
    fn forget_learned(&mut self, key: &LearnedKey, seen: &LearnedValue) -> Result<(), MapError>;
    fn syscalls_used(&self, profile: u32, cgroup: Option<u64>) -> Vec<u32>;
}

/// Each method is the real kernel's own of the same name.
macro_rules! delegate {
    (
        mut: [$(fn $m:ident($($ma:ident: $mt:ty),*) -> $mr:ty;)*]
        ref: [$(fn $r:ident($($ra:ident: $rt:ty),*) -> $rr:ty;)*]
    ) => {
        impl KernelMaps for crate::bpf::Kernel {
            $(fn $m(&mut self, $($ma: $mt),*) -> $mr {
                crate::bpf::Kernel::$m(self, $($ma),*)
            })*
            $(fn $r(&self, $($ra: $rt),*) -> $rr {
                crate::bpf::Kernel::$r(self, $($ra),*)
            })*
        }
    };
}

delegate! {
    mut: [
        fn set_cgroup_profile(cgroup_id: u64, profile: ProfileRef) -> Result<(), MapError>;
        fn remove_cgroup_profile(cgroup_id: u64) -> Result<(), MapError>;
        fn set_cgroup_resolvers(cgroup_id: u64, servers: &[[u8; 16]]) -> Result<(), MapError>;
        fn remove_cgroup_resolvers(cgroup_id: u64) -> Result<(), MapError>;
        fn insert_rules(rules: &Rules) -> Result<(), MapError>;
        fn remove_rules(rules: &Rules) -> Result<(), MapError>;
        fn sweep_rules(keep: &dyn Fn(u32) -> bool) -> Result<usize, MapError>;
        fn write_config(config: Config) -> Result<(), MapError>;
        fn write_escape_patterns(patterns: &[cgwarden_common::PathPattern]) -> Result<(), MapError>;
        fn write_escape_files(files: &[cgwarden_common::EscapeFileKey]) -> Result<(), MapError>;
        fn write_cred_offsets(offsets: CredOffsets) -> Result<(), MapError>;
        fn set_runtime_sockets(files: &[SocketFile]) -> Result<(), MapError>;
        fn attach_programs(wanted: &Wanted) -> Result<(), LoadError>;
        fn learn_syscalls() -> Result<(), LoadError>;
        fn arm_process(pid: u32, ppid: u32, exe: &str) -> Result<(), MapError>;
        fn forget_gated(pid: u32) -> Result<(), MapError>;
        fn forget_learned(key: &LearnedKey, seen: &LearnedValue) -> Result<(), MapError>;
    ]
    ref: [
        fn cgroup_profiles() -> Vec<(u64, ProfileRef)>;
        fn read_config() -> Result<Config, MapError>;
        fn watched_syscalls() -> &std::collections::BTreeMap<u32, Watch>;
        fn sweep_late_links() -> usize;
        fn program_stats() -> Vec<(&'static str, u64, u64)>;
        fn process(pid: u32) -> Option<ProcInfo>;
        fn gated() -> Vec<(u32, GatedProc)>;
        fn counters() -> Result<Counters, MapError>;
        fn flows() -> Vec<(FlowKey, FlowState)>;
        fn syscall_repeats() -> Vec<(SyscallRepeatKey, FlowState)>;
        fn learned() -> Vec<(LearnedKey, LearnedValue)>;
        fn syscalls_used(profile: u32, cgroup: Option<u64>) -> Vec<u32>;
    ]
}
