//! The one fast path every hook starts with: which profile applies to the current task.
//!
//! A profile is attached to a cgroup; the cgroup's descendants inherit it. The agent
//! records in `CONFIG.levels` at which cgroup levels profiles exist, so the lookup
//! touches only the task's ancestors at those levels, deepest first. A task in no
//! monitored cgroup costs one array read plus one hash lookup per populated level.

use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;
use cgwarden_common::{MAX_CGROUP_LEVELS, ProfileRef};

use crate::maps::{CGROUP_PROFILES, CONFIG};

/// The profile that applies to the current task, with the id of the cgroup it is
/// attached to, or `None` when the task is not monitored.
#[inline(always)]
pub fn current() -> Option<ProfileRef> {
    let levels = CONFIG.get(0)?.levels;
    if levels == 0 {
        return None;
    }
    let mut level = MAX_CGROUP_LEVELS;
    // Bounded: at most MAX_CGROUP_LEVELS iterations, deepest level first.
    for _ in 0..MAX_CGROUP_LEVELS {
        level -= 1;
        if levels & (1u32 << level) != 0 {
            // SAFETY: a plain helper call with an integer argument.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
            if id != 0 {
                // SAFETY: values are written whole by the agent and only read here.
                if let Some(profile) = unsafe { CGROUP_PROFILES.get(&id) } {
                    return Some(*profile);
                }
            }
        }
        if level == 0 {
            break;
        }
    }
    None
}
