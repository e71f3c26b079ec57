//! Installation, assignment and adoption against an in-memory kernel: what the agent
//! writes to the maps, and in which order, on a directory tree that stands in for the
//! cgroup2 mount (a cgroup's id is its directory's inode, as on cgroup2).

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use aya::maps::MapError;
use cgwarden_common::{
    Config, CredOffsets, FlowKey, FlowState, GatedProc, LearnedKey, LearnedValue, ProcInfo,
    ProfileRef, SocketFile, SyscallRepeatKey, profile_flags,
};
use syscalls::Sysno;

use super::{Agent, KernelMaps, RETIRE_AFTER, Rules};
use crate::bpf::{Counters, Hooks, LoadError, Wanted, Watch};

/// A map write, in the order the agent made it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    SetCgroup(u64, u32),
    RemoveCgroup(u64),
    InsertRules(u32),
    RemoveRules(u32),
    /// The DNS answer reader was attached.
    DnsAnswers,
}

/// The kernel's maps as plain collections.
#[derive(Default)]
struct FakeKernel {
    cgroups: BTreeMap<u64, ProfileRef>,
    /// Profile ids with rules in the maps, and how many entries each has.
    rules: BTreeMap<u32, usize>,
    config: Config,
    watched: BTreeMap<u32, Watch>,
    hooks: BTreeMap<u32, Hooks>,
    log: Vec<Op>,
    /// Rule writes fail from this many on (a full map, say).
    fail_inserts_after: Option<usize>,
}

fn entries(rules: &Rules) -> usize {
    rules.egress.len() + rules.names.len() + rules.syscalls.len() + rules.devices.len() + 1
}

impl KernelMaps for FakeKernel {
    fn set_cgroup_profile(&mut self, cgroup_id: u64, profile: ProfileRef) -> Result<(), MapError> {
        self.log.push(Op::SetCgroup(cgroup_id, profile.id));
        self.cgroups.insert(cgroup_id, profile);
        Ok(())
    }
    fn remove_cgroup_profile(&mut self, cgroup_id: u64) -> Result<(), MapError> {
        if self.cgroups.remove(&cgroup_id).is_some() {
            self.log.push(Op::RemoveCgroup(cgroup_id));
        }
        Ok(())
    }
    fn cgroup_profiles(&self) -> Vec<(u64, ProfileRef)> {
        self.cgroups.iter().map(|(k, v)| (*k, *v)).collect()
    }
    fn set_cgroup_resolvers(&mut self, _: u64, _: &[[u8; 16]]) -> Result<(), MapError> {
        Ok(())
    }
    fn remove_cgroup_resolvers(&mut self, _: u64) -> Result<(), MapError> {
        Ok(())
    }
    fn insert_rules(&mut self, rules: &Rules) -> Result<(), MapError> {
        if let Some(left) = &mut self.fail_inserts_after {
            if *left == 0 {
                return Err(MapError::KeyNotFound);
            }
            *left -= 1;
        }
        self.log.push(Op::InsertRules(rules.id));
        self.rules.insert(rules.id, entries(rules));
        Ok(())
    }
    fn remove_rules(&mut self, rules: &Rules) -> Result<(), MapError> {
        self.log.push(Op::RemoveRules(rules.id));
        self.rules.remove(&rules.id);
        Ok(())
    }
    fn sweep_rules(&mut self, keep: &dyn Fn(u32) -> bool) -> Result<usize, MapError> {
        let stale: Vec<u32> = self.rules.keys().copied().filter(|id| !keep(*id)).collect();
        let mut removed = 0;
        for id in stale {
            removed += self.rules.remove(&id).unwrap_or(0);
            self.log.push(Op::RemoveRules(id));
        }
        Ok(removed)
    }
    fn read_config(&self) -> Result<Config, MapError> {
        Ok(self.config)
    }
    fn write_config(&mut self, config: Config) -> Result<(), MapError> {
        self.config = config;
        Ok(())
    }
    fn write_escape_patterns(
        &mut self,
        _: &[cgwarden_common::PathPattern],
    ) -> Result<(), MapError> {
        Ok(())
    }
    fn write_escape_files(&mut self, _: &[cgwarden_common::EscapeFileKey]) -> Result<(), MapError> {
        Ok(())
    }
    fn write_cred_offsets(&mut self, _: CredOffsets) -> Result<(), MapError> {
        Ok(())
    }
    fn set_runtime_sockets(&mut self, _: &[SocketFile]) -> Result<(), MapError> {
        Ok(())
    }
    fn attach_programs(&mut self, wanted: &Wanted) -> Result<(), LoadError> {
        for (sysno, hooks) in wanted.syscalls {
            let nr = sysno.id() as u32;
            let had = self.hooks.get(&nr).copied().unwrap_or_default();
            self.hooks.insert(nr, had.union(*hooks));
            self.watched.insert(
                nr,
                Watch::Tracepoint {
                    arity: 6,
                    hooks: had.union(*hooks),
                },
            );
        }
        if wanted.dns_answers && !self.log.contains(&Op::DnsAnswers) {
            self.log.push(Op::DnsAnswers);
        }
        Ok(())
    }
    fn learn_syscalls(&mut self) -> Result<(), LoadError> {
        Ok(())
    }
    fn watched_syscalls(&self) -> &BTreeMap<u32, Watch> {
        &self.watched
    }
    fn sweep_late_links(&self) -> usize {
        0
    }
    fn program_stats(&self) -> Vec<(&'static str, u64, u64)> {
        Vec::new()
    }
    fn arm_process(&mut self, _: u32, _: u32, _: &str) -> Result<(), MapError> {
        Ok(())
    }
    fn process(&self, _: u32) -> Option<ProcInfo> {
        None
    }
    fn gated(&self) -> Vec<(u32, GatedProc)> {
        Vec::new()
    }
    fn forget_gated(&mut self, _: u32) -> Result<(), MapError> {
        Ok(())
    }
    fn counters(&self) -> Result<Counters, MapError> {
        Ok(Counters::default())
    }
    fn flows(&self) -> Vec<(FlowKey, FlowState)> {
        Vec::new()
    }
    fn syscall_repeats(&self) -> Vec<(SyscallRepeatKey, FlowState)> {
        Vec::new()
    }
    fn learned(&self) -> Vec<(LearnedKey, LearnedValue)> {
        Vec::new()
    }
    fn forget_learned(&mut self, _: &LearnedKey, _: &LearnedValue) -> Result<(), MapError> {
        Ok(())
    }
    fn syscalls_used(&self, _: u32, _: Option<u64>) -> Vec<u32> {
        Vec::new()
    }
}

/// A directory tree standing in for the cgroup2 mount.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(cgroups: &[&str]) -> Self {
        let tree = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for c in cgroups {
            tree.add(c);
        }
        tree
    }
    fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    fn add(&self, cgroup: &str) {
        std::fs::create_dir_all(self.path(cgroup)).unwrap();
    }
    fn remove(&self, cgroup: &str) {
        std::fs::remove_dir(self.path(cgroup)).unwrap();
    }
    fn path(&self, cgroup: &str) -> PathBuf {
        self.dir.path().join(cgroup.trim_start_matches('/'))
    }
    /// The cgroup's id: its directory's inode.
    fn id(&self, cgroup: &str) -> u64 {
        std::fs::metadata(self.path(cgroup)).unwrap().ino()
    }
}

fn profile(yaml: &str) -> crate::policy::Profile {
    crate::policy::parse_str(yaml, Path::new("test.yaml")).unwrap()
}

fn web(allow: &str) -> crate::policy::Profile {
    profile(&format!(
        "name: web\nmode: enforce\nselector:\n  cgroup: \"/app/*\"\negress:\n  default: deny\n  allow:\n    - to: [{allow}]\n"
    ))
}

fn agent(kernel: FakeKernel, tree: &Tree) -> Agent<FakeKernel> {
    let sinks = crate::output::Sinks::open(&[]).unwrap();
    let resolver = crate::dns::resolver::Resolver::new(
        Vec::new(),
        Path::new("/nonexistent/resolv.conf"),
        Path::new("/nonexistent/hosts"),
    );
    Agent::new(kernel, tree.root(), sinks, resolver).unwrap()
}

fn profile_of(agent: &Agent<FakeKernel>, id: u64) -> Option<ProfileRef> {
    agent.kernel.cgroups.get(&id).copied()
}

#[test]
fn a_reload_switches_each_cgroup_with_one_write_after_the_new_rules_are_in() {
    let tree = Tree::new(&["/app/one", "/app/two", "/other"]);
    let mut agent = agent(FakeKernel::default(), &tree);
    agent.install(vec![web("192.0.2.1")]).unwrap();
    agent.rescan().unwrap();
    let old = profile_of(&agent, tree.id("/app/one"))
        .expect("selected")
        .id;
    assert_eq!(
        profile_of(&agent, tree.id("/app/two")).map(|p| p.id),
        Some(old)
    );
    assert_eq!(profile_of(&agent, tree.id("/other")), None);

    agent.kernel.log.clear();
    agent.install(vec![web("192.0.2.2")]).unwrap();
    let new = profile_of(&agent, tree.id("/app/one")).unwrap().id;
    assert_ne!(new, old, "a reload compiles under a new id");
    let log = &agent.kernel.log;
    let inserted = log.iter().position(|o| *o == Op::InsertRules(new)).unwrap();
    for cgroup in ["/app/one", "/app/two"] {
        let id = tree.id(cgroup);
        let switched = log
            .iter()
            .position(|o| *o == Op::SetCgroup(id, new))
            .unwrap_or_else(|| panic!("{cgroup} switched: {log:?}"));
        assert!(inserted < switched, "rules before the switch: {log:?}");
        assert!(
            !log.contains(&Op::RemoveCgroup(id)),
            "{cgroup} is never left without a profile: {log:?}"
        );
    }
    // The old rules stay while a program may still be using the old id.
    assert!(agent.kernel.rules.contains_key(&old), "{log:?}");
    agent.remove_retired().unwrap();
    assert!(agent.kernel.rules.contains_key(&old));
    std::thread::sleep(RETIRE_AFTER + std::time::Duration::from_millis(50));
    agent.remove_retired().unwrap();
    assert!(!agent.kernel.rules.contains_key(&old));
    assert!(agent.kernel.rules.contains_key(&new));
}

#[test]
fn a_reload_that_fails_half_way_leaves_the_running_profiles_as_they_were() {
    let tree = Tree::new(&["/app/one", "/db/one"]);
    let mut agent = agent(FakeKernel::default(), &tree);
    let db = |allow: &str| {
        profile(&format!(
            "name: db\nmode: enforce\nselector:\n  cgroup: \"/db/*\"\negress:\n  default: deny\n  allow:\n    - to: [{allow}]\n"
        ))
    };
    agent
        .install(vec![web("192.0.2.1"), db("192.0.2.1")])
        .unwrap();
    agent.rescan().unwrap();
    let cgroups = agent.kernel.cgroups.clone();
    let rules = agent.kernel.rules.clone();
    // The second profile's rules cannot be written: the first one's are taken back,
    // and no cgroup was switched.
    agent.kernel.fail_inserts_after = Some(1);
    agent.kernel.log.clear();
    let refused = agent.install(vec![web("192.0.2.2"), db("192.0.2.2")]);
    assert!(refused.is_err());
    assert_eq!(agent.kernel.cgroups, cgroups, "{:?}", agent.kernel.log);
    assert_eq!(agent.kernel.rules, rules, "{:?}", agent.kernel.log);
    assert!(
        !agent
            .kernel
            .log
            .iter()
            .any(|o| matches!(o, Op::SetCgroup(..) | Op::RemoveCgroup(_))),
        "{:?}",
        agent.kernel.log
    );
    // The running profiles still apply to new cgroups.
    agent.kernel.fail_inserts_after = None;
    tree.add("/app/two");
    agent.rescan().unwrap();
    assert_eq!(
        profile_of(&agent, tree.id("/app/two")).map(|p| p.id),
        profile_of(&agent, tree.id("/app/one")).map(|p| p.id)
    );
}

#[test]
fn a_gone_cgroup_loses_its_entry_on_the_next_walk() {
    let tree = Tree::new(&["/app/one", "/app/two"]);
    let mut agent = agent(FakeKernel::default(), &tree);
    agent.install(vec![web("192.0.2.1")]).unwrap();
    agent.rescan().unwrap();
    let two = tree.id("/app/two");
    assert!(profile_of(&agent, two).is_some());
    tree.remove("/app/two");
    agent.rescan().unwrap();
    assert_eq!(profile_of(&agent, two), None);
    assert!(agent.kernel.log.contains(&Op::RemoveCgroup(two)));
    assert!(profile_of(&agent, tree.id("/app/one")).is_some());
}

#[test]
fn a_children_selector_covers_new_children_through_a_parent_entry() {
    let tree = Tree::new(&["/app"]);
    let mut agent = agent(FakeKernel::default(), &tree);
    agent.install(vec![web("192.0.2.1")]).unwrap();
    agent.rescan().unwrap();
    // `/app/*` also goes on /app itself, for the cgroups below it only: a container
    // created after this walk is covered from its first process.
    let parent = profile_of(&agent, tree.id("/app")).expect("a parent entry");
    assert_ne!(parent.flags & profile_flags::DESCENDANTS_ONLY, 0);
    // /app is at level 1: the kernel looks there.
    assert_ne!(agent.kernel.config.levels & (1 << 1), 0);
    tree.add("/app/new");
    agent.rescan().unwrap();
    let child = profile_of(&agent, tree.id("/app/new")).expect("the child's own entry");
    assert_eq!(child.id, parent.id);
    assert_eq!(child.flags & profile_flags::DESCENDANTS_ONLY, 0);
    assert_ne!(agent.kernel.config.levels & (1 << 2), 0);
}

#[test]
fn after_a_restart_the_old_entries_enforce_until_the_new_agent_sweeps_them() {
    let tree = Tree::new(&["/app/one"]);
    // What a previous agent left pinned: a cgroup at level 3 and its profile's rules.
    let mut kernel = FakeKernel::default();
    let left = ProfileRef {
        id: 7,
        ..Default::default()
    };
    kernel.cgroups.insert(999_999, left);
    kernel.rules.insert(7, 3);
    kernel.config = Config {
        levels: 1 << 3,
        next_profile_id: 8,
        ..Default::default()
    };
    let mut agent = agent(kernel, &tree);
    agent.install(vec![web("192.0.2.1")]).unwrap();
    agent.rescan().unwrap();
    let ours = profile_of(&agent, tree.id("/app/one")).unwrap().id;
    assert!(ours >= 8, "an id still in the maps is never reused: {ours}");
    // Until this agent's own assignments are in force, the old ones keep enforcing.
    agent.sweep_inherited().unwrap();
    assert_eq!(profile_of(&agent, 999_999), Some(left));
    assert_ne!(agent.kernel.config.levels & (1 << 3), 0);
    std::thread::sleep(RETIRE_AFTER + std::time::Duration::from_millis(50));
    agent.sweep_inherited().unwrap();
    assert_eq!(profile_of(&agent, 999_999), None);
    assert!(!agent.kernel.rules.contains_key(&7));
    assert!(agent.kernel.rules.contains_key(&ours));
    assert_eq!(agent.kernel.config.levels & (1 << 3), 0);
    assert_ne!(agent.kernel.config.levels & (1 << 2), 0);
}

#[test]
fn path_judged_syscalls_get_only_their_exit_tracepoint() {
    let tree = Tree::new(&[]);
    let mut agent = agent(FakeKernel::default(), &tree);
    agent
        .install(vec![profile(
            "name: hardened\nmode: enforce\nselector:\n  cgroup: \"/app/*\"\nruntime:\n  read_only: [/]\nsyscalls:\n  - set: escape\n    action: kill\n",
        )])
        .unwrap();
    let hooks = |s: Sysno| agent.kernel.hooks.get(&(s.id() as u32)).copied();
    // Judged by their rule at entry, and at exit when seccomp refused them first.
    for s in [Sysno::unshare, Sysno::mount, Sysno::ptrace] {
        assert_eq!(
            hooks(s),
            Some(Hooks {
                entry: true,
                exit: true,
                by_path: false
            }),
            "{s}"
        );
    }
    // Judged by their path, at exit only.
    for s in [Sysno::openat, Sysno::mkdir, Sysno::unlinkat] {
        assert_eq!(
            hooks(s),
            Some(Hooks {
                entry: false,
                exit: true,
                by_path: true
            }),
            "{s}"
        );
    }
    assert_eq!(hooks(Sysno::getppid), None);
}

#[test]
fn a_record_from_a_cgroup_no_walk_finds_does_not_walk_again_at_once() {
    let tree = Tree::new(&["/app"]);
    let mut agent = agent(FakeKernel::default(), &tree);
    agent.rescan().unwrap();
    let gone = u64::MAX - 1;
    agent.know_cgroup(gone);
    // A cgroup created after that miss is not found by a second record at once: that
    // record did not walk the tree.
    tree.add("/app/late");
    let late = tree.id("/app/late");
    agent.know_cgroup(gone);
    assert!(!agent.paths.contains_key(&late));
    // A record from a cgroup not missed before walks, and finds it.
    agent.know_cgroup(late);
    assert_eq!(
        agent.paths.get(&late).map(String::as_str),
        Some("/app/late")
    );
    // Once the miss expires, the unknown cgroup is looked for again.
    tree.add("/app/later");
    std::thread::sleep(super::unknown::FORGET_AFTER);
    agent.know_cgroup(gone);
    assert!(agent.paths.contains_key(&tree.id("/app/later")));
}

#[test]
fn the_dns_answer_reader_is_attached_only_for_a_profile_that_reads_dns_and_before_it() {
    let tree = Tree::new(&["/app/one"]);
    let mut agent = agent(FakeKernel::default(), &tree);
    agent.install(vec![web("192.0.2.1")]).unwrap();
    agent.rescan().unwrap();
    assert!(
        !agent.kernel.log.contains(&Op::DnsAnswers),
        "no profile names a DNS name: {:?}",
        agent.kernel.log
    );
    agent.install(vec![web("api.example.com")]).unwrap();
    let log = &agent.kernel.log;
    let attached = log
        .iter()
        .position(|o| *o == Op::DnsAnswers)
        .unwrap_or_else(|| panic!("a name to learn: {log:?}"));
    let id = tree.id("/app/one");
    let switched = log
        .iter()
        .rposition(|o| matches!(o, Op::SetCgroup(c, _) if *c == id))
        .unwrap();
    assert!(
        attached < switched,
        "the reader is there before the profile: {log:?}"
    );
}
