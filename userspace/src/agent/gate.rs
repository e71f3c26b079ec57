//! Where the gate goes, and when a held process goes on (see
//! `cgwarden_common::profile_flags::GATE` and the kernel's `gate.rs`).
//!
//! While some profile selects containers by what their engine says (name, image,
//! Compose service, pod), every parent cgroup that holds only engines' containers gets
//! a gate entry, and every identified container below it that no profile selects gets
//! an "unmonitored" entry. A container not identified yet has no entry of its own: its
//! first process is held after its exec until the agent knows which profile it gets.
//!
//! Pure decisions over the cgroup tree and the known containers, so they are tested
//! without a kernel; the agent writes the entries and signals the processes.

use std::collections::{HashMap, HashSet};

use cgwarden_common::{
    GATE_PROFILE_ID, GatedProc, ProfileRef, UNMONITORED_PROFILE_ID, profile_flags,
};

use crate::{
    engines::{self, known::Known},
    host::cgroups::CgroupEntry as Entry,
};

/// How long a process may wait at the gate for its container to be identified. Then
/// its cgroup is treated as a container no profile selects (and said so in the log):
/// a cgroup under an engine's parent that no engine ever describes is not a container
/// of theirs.
pub const HOLD_AT_MOST_NS: u64 = 5_000_000_000;

/// The gate and "unmonitored" entries the kernel should hold: (path, level) by cgroup.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub gates: HashMap<u64, (String, u32)>,
    pub unmonitored: HashMap<u64, (String, u32)>,
}

impl Plan {
    /// Decides the entries: `active` when some profile selects by container metadata;
    /// `selected(id)` when the cgroup gets a profile entry of its own; `released` are
    /// cgroups whose held process waited too long.
    pub fn new(
        active: bool,
        entries: &[Entry],
        selected: impl Fn(u64) -> bool,
        known: &Known,
        released: &HashSet<u64>,
    ) -> Self {
        let mut plan = Self::default();
        if !active {
            return plan;
        }
        let mut parents: HashSet<String> = known
            .containers()
            .filter_map(|(path, _)| engines::parent_of(path).map(str::to_owned))
            .collect();
        // The engines' cgroupfs parents, before their first container is known.
        parents.extend(["/docker".to_owned(), "/libpod_parent".to_owned()]);
        for parent in known.dirs().namespace_parents() {
            for (dir, _) in known.dirs().state_dirs() {
                if let Ok(ns) = dir.strip_prefix(&parent) {
                    parents.insert(format!("/{}", ns.display()));
                }
            }
        }
        for e in entries {
            if parents.contains(&e.path)
                && engines::holds_only_containers(&e.path)
                && !selected(e.id)
            {
                plan.gates.insert(e.id, (e.path.clone(), e.level));
            }
        }
        let gate_paths: HashSet<&str> = plan.gates.values().map(|(p, _)| p.as_str()).collect();
        for e in entries {
            let under_gate = engines::parent_of(&e.path).is_some_and(|p| gate_paths.contains(p));
            if under_gate
                && !selected(e.id)
                && (known.own(&e.path).is_some() || released.contains(&e.id))
            {
                plan.unmonitored.insert(e.id, (e.path.clone(), e.level));
            }
        }
        plan
    }

    /// The kernel entries of this plan.
    pub fn kernel_entries(&self) -> impl Iterator<Item = (u64, ProfileRef)> + '_ {
        let gate = ProfileRef {
            id: GATE_PROFILE_ID,
            flags: profile_flags::GATE | profile_flags::DESCENDANTS_ONLY,
            ..ProfileRef::default()
        };
        let unmonitored = unmonitored_entry();
        self.gates
            .keys()
            .map(move |id| (*id, gate))
            .chain(self.unmonitored.keys().map(move |id| (*id, unmonitored)))
    }

    /// Cgroups that have an entry in `self` but not in `next`.
    pub fn dropped_in(&self, next: &Plan) -> Vec<u64> {
        self.gates
            .keys()
            .chain(self.unmonitored.keys())
            .filter(|id| !next.gates.contains_key(id) && !next.unmonitored.contains_key(id))
            .copied()
            .collect()
    }

    /// The cgroup levels that hold entries.
    pub fn levels(&self) -> u32 {
        self.gates
            .values()
            .chain(self.unmonitored.values())
            .fold(0, |acc, (_, level)| acc | (1u32 << level))
    }

    pub fn contains(&self, id: u64) -> bool {
        self.gates.contains_key(&id) || self.unmonitored.contains_key(&id)
    }
}

/// The entry of a container no profile selects.
pub fn unmonitored_entry() -> ProfileRef {
    ProfileRef {
        id: UNMONITORED_PROFILE_ID,
        flags: profile_flags::UNMONITORED,
        ..ProfileRef::default()
    }
}

/// What the agent holds of the gate between rescans.
#[derive(Debug, Default)]
pub struct Entries {
    pub plan: Plan,
    /// Cgroups whose held process waited longer than [`HOLD_AT_MOST_NS`].
    pub released: HashSet<u64>,
    /// Processes held at the last look.
    pub held: usize,
    /// Processes let go since the agent started.
    pub released_total: u64,
}

impl Entries {
    pub fn gate_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.plan.gates.values().map(|(p, _)| p.clone()).collect();
        paths.sort();
        paths
    }

    pub fn held_is_empty(&self) -> bool {
        self.held == 0
    }
}

/// Why a held process goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Its cgroup has its profile (or "unmonitored") now.
    Decided,
    /// It waited longer than [`HOLD_AT_MOST_NS`].
    TimedOut,
}

/// For each held process, whether it goes on now: `decided(cgroup)` when its cgroup has
/// an entry of its own (or no gate covers it any more).
pub fn releases(
    held: &[(u32, GatedProc)],
    now_ns: u64,
    decided: impl Fn(u64) -> bool,
) -> Vec<(u32, u64, Release)> {
    held.iter()
        .filter_map(|(pid, g)| {
            if decided(g.cgroup_id) {
                Some((*pid, g.cgroup_id, Release::Decided))
            } else if now_ns.saturating_sub(g.since_ns) > HOLD_AT_MOST_NS {
                Some((*pid, g.cgroup_id, Release::TimedOut))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::Dirs;

    fn entry(id: u64, path: &str) -> Entry {
        Entry {
            id,
            path: path.to_owned(),
            level: path.matches('/').count() as u32 - u32::from(path == "/"),
        }
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn gates_the_engine_parents_and_releases_known_containers() {
        let tree = vec![
            entry(1, "/"),
            entry(2, "/docker"),
            entry(3, &format!("/docker/{A}")),
            entry(4, &format!("/docker/{B}")),
            entry(5, "/docker/not-a-container"),
            entry(6, "/system.slice"),
            entry(7, "/system.slice/sshd.service"),
        ];
        let mut known = Known::new(Dirs::with_state_roots(Vec::new()));
        known.note_paths(tree.iter().map(|e| e.path.as_str()));
        let none = HashSet::new();
        // B gets a profile of its own; A is known and selected by nothing.
        let plan = Plan::new(true, &tree, |id| id == 4, &known, &none);
        assert_eq!(plan.gates.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(
            plan.unmonitored.keys().copied().collect::<Vec<_>>(),
            vec![3]
        );
        assert_eq!(plan.levels(), 0b110);
        // An unidentified child stays gated until it times out.
        let released = HashSet::from([5]);
        let later = Plan::new(true, &tree, |id| id == 4, &known, &released);
        assert!(later.unmonitored.contains_key(&5));
        assert_eq!(plan.dropped_in(&later), Vec::<u64>::new());
        // No profile selects by metadata: no gate at all.
        let off = Plan::new(false, &tree, |_| false, &known, &none);
        assert_eq!(off, Plan::default());
        assert_eq!(plan.dropped_in(&off).len(), 2);
        let kinds: Vec<u32> = plan.kernel_entries().map(|(_, r)| r.id).collect();
        assert!(kinds.contains(&GATE_PROFILE_ID) && kinds.contains(&UNMONITORED_PROFILE_ID));
    }

    #[test]
    fn a_selected_parent_is_not_gated() {
        let tree = vec![entry(2, "/docker"), entry(3, &format!("/docker/{A}"))];
        let mut known = Known::new(Dirs::with_state_roots(Vec::new()));
        known.note_paths(tree.iter().map(|e| e.path.as_str()));
        let plan = Plan::new(true, &tree, |id| id == 2, &known, &HashSet::new());
        assert!(plan.gates.is_empty() && plan.unmonitored.is_empty());
    }

    #[test]
    fn held_processes_go_on_when_decided_or_after_the_bound() {
        let held = [
            (
                10,
                GatedProc {
                    cgroup_id: 3,
                    since_ns: 1_000,
                },
            ),
            (
                11,
                GatedProc {
                    cgroup_id: 5,
                    since_ns: 1_000,
                },
            ),
            (
                12,
                GatedProc {
                    cgroup_id: 6,
                    since_ns: 1_000,
                },
            ),
        ];
        let now = 1_000 + HOLD_AT_MOST_NS + 1;
        let out = releases(&held, now, |id| id == 3);
        assert_eq!(
            out,
            vec![
                (10, 3, Release::Decided),
                (11, 5, Release::TimedOut),
                (12, 6, Release::TimedOut)
            ]
        );
        assert!(releases(&held, 2_000, |id| id == 3).len() == 1);
    }
}
