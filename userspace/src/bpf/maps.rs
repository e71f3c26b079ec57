//! Typed writes to the kernel's maps: which profile a cgroup has, the monitored levels,
//! egress entries, and the counters.

use aya::maps::{MapError, lpm_trie::Key};
use cgwarden_common::{Config, FlowKey, FlowState, ProfileRef, counters};

use super::Kernel;
use crate::policy::compile::EgressEntry;

/// Counter totals summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub ringbuf_drops: u64,
    pub egress_checked: u64,
    pub egress_denied: u64,
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

    /// Sets the bit mask of cgroup levels that hold a profile.
    pub fn set_levels(&mut self, levels: u32) -> Result<(), MapError> {
        self.config.set(
            0,
            Config {
                levels,
                _reserved: 0,
            },
            0,
        )
    }

    /// Writes egress entries (new ones and replacements).
    pub fn insert_egress(&mut self, entries: &[EgressEntry]) -> Result<(), MapError> {
        for e in entries {
            self.egress
                .insert(&Key::new(e.prefix_len, e.key), e.value, 0)?;
        }
        Ok(())
    }

    /// Removes egress entries; entries already gone are not an error.
    pub fn remove_egress(&mut self, entries: &[EgressEntry]) -> Result<(), MapError> {
        for e in entries {
            ignore_missing(self.egress.remove(&Key::new(e.prefix_len, e.key)))?;
        }
        Ok(())
    }

    /// Every flow the kernel is aggregating, with its state.
    pub fn flows(&self) -> Vec<(FlowKey, FlowState)> {
        self.flows.iter().filter_map(Result::ok).collect()
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
        })
    }
}

/// Treats "no such key" as success: removing what is already gone is not an error.
fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}
