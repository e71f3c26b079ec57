//! The one fast path every hook starts with: which profile applies to a cgroup.
//!
//! A profile is attached to a cgroup; the cgroup's descendants inherit it. The agent
//! records in `CONFIG.levels` at which cgroup levels profiles exist, so the lookup
//! touches only the ancestors at those levels, deepest first. A task in no monitored
//! cgroup costs one array read plus one hash lookup per populated level (usually one).
//!
//! Two entries are not profiles: a gate on an engine's parent cgroup (its containers are
//! not identified yet) and "unmonitored" on a container no profile selects. Every hook
//! but the exec hook sees both as "no profile" (see `profile_flags::GATE`).
//!
//! Minimum kernel: 6.1, for [`current`] in cgroup_device and cgroup_sysctl programs:
//! `bpf_get_current_ancestor_cgroup_id` reaches cgroup sock_addr and sock_create programs
//! in 5.7, tracing programs in 5.14 and those two in 6.1. [`of_skb`] needs 5.8
//! (`bpf_skb_ancestor_cgroup_id` in cgroup_skb programs).

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{bpf_get_current_ancestor_cgroup_id, bpf_skb_ancestor_cgroup_id},
};
use cgwarden_common::{MAX_CGROUP_LEVELS, ProfileRef, profile_flags};

use crate::maps::{CGROUP_PROFILES, CONFIG};

/// A profile and the monitored cgroup it is attached to (the task's own cgroup or an
/// ancestor): what a container learned from DNS is keyed by that cgroup.
pub struct Match {
    pub profile: ProfileRef,
    pub cgroup: u64,
}

impl Match {
    /// A real profile, not a gate or an "unmonitored" entry (which no hook judges).
    #[inline(always)]
    pub fn is_profile(&self) -> bool {
        self.profile.flags & (profile_flags::GATE | profile_flags::UNMONITORED) == 0
    }

    /// A gate entry: the task's container is not identified yet.
    #[inline(always)]
    pub fn is_gate(&self) -> bool {
        self.profile.flags & profile_flags::GATE != 0
    }

    /// The current task's own cgroup (which may be below the monitored one).
    #[inline(always)]
    pub fn cgroup_of_task(&self) -> u64 {
        // SAFETY: plain helper call without arguments.
        unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() }
    }
}

/// The profile of the current task's cgroup (socket-address hooks, tracepoints).
#[inline(always)]
pub fn current() -> Option<Match> {
    entry_of_current().filter(Match::is_profile)
}

/// The entry that covers the current task's cgroup, gate and "unmonitored" entries
/// included: only the exec hook acts on those.
#[inline(always)]
pub fn entry_of_current() -> Option<Match> {
    // SAFETY: a plain helper call with an integer argument.
    lookup(|level| unsafe { bpf_get_current_ancestor_cgroup_id(level) })
}

/// The profile of the cgroup of the socket that owns a packet (cgroup_skb hooks, which
/// may run outside the sender's context).
#[inline(always)]
pub fn of_skb(skb: *mut __sk_buff) -> Option<Match> {
    // SAFETY: `skb` is the context pointer the kernel passed to the program.
    lookup(|level| unsafe { bpf_skb_ancestor_cgroup_id(skb, level) }).filter(Match::is_profile)
}

/// Searches the populated levels, deepest first, with `ancestor(level)` giving the id of
/// the ancestor cgroup at that level (0 when the cgroup is not that deep).
#[inline(always)]
fn lookup(ancestor: impl Fn(i32) -> u64) -> Option<Match> {
    let levels = CONFIG.get(0)?.levels;
    if levels == 0 {
        return None;
    }
    // Only the populated levels, deepest first: one step per set bit.
    let mut remaining = levels;
    // Bounded: at most MAX_CGROUP_LEVELS iterations.
    for _ in 0..MAX_CGROUP_LEVELS {
        if remaining == 0 {
            break;
        }
        let level = 31 - remaining.leading_zeros();
        remaining &= !(1u32 << level);
        let id = ancestor(level as i32);
        if id == 0 {
            continue;
        }
        // SAFETY: values are written whole by the agent and only read here.
        if let Some(profile) = unsafe { CGROUP_PROFILES.get(&id) } {
            // A parent entry covers only the cgroups below it.
            let below = profile.flags & profile_flags::DESCENDANTS_ONLY == 0
                || ancestor(level as i32 + 1) != 0;
            if below {
                return Some(Match {
                    profile: *profile,
                    cgroup: id,
                });
            }
        }
    }
    None
}
