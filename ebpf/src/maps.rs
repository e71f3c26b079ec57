//! The maps shared by every hook. Names match `cgwarden_common::maps`.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
};
use cgwarden_common::{
    CGROUP_MAX_ENTRIES, Config, EGRESS_MAX_ENTRIES, EgressKey, EgressValue, ProfileRef,
    RINGBUF_BYTES, counters,
};

#[map]
pub static CGROUP_PROFILES: HashMap<u64, ProfileRef> =
    HashMap::with_max_entries(CGROUP_MAX_ENTRIES, 0);

#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
pub static EGRESS: LpmTrie<EgressKey, EgressValue> =
    LpmTrie::with_max_entries(EGRESS_MAX_ENTRIES, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(RINGBUF_BYTES, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

/// Adds one to a per-CPU counter. Per-CPU slots need no atomics: a program runs to
/// completion on one CPU without being preempted by another program on that CPU.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer comes from the map and stays valid for this program run.
        unsafe { *slot += 1 };
    }
}
