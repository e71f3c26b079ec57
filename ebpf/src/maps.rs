//! The maps shared by every hook. Names match `cgwarden_common::maps`.
//!
//! Minimum kernel: 5.12, as [`atomic_add`] returns the old value (an atomic fetch-add).
//! Of the maps, the ring buffer (`EVENTS`) needs the most, 5.8; the LPM trie 4.11, the
//! LRU hashes 4.10, the per-CPU arrays 4.6.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use cgwarden_common::{
    CGROUP_MAX_ENTRIES, Config, DNS_BUF_BYTES, DeviceKey, DnsQuery, DnsQueryKey, DnsScratch,
    DnsServerKey, EGRESS_MAX_ENTRIES, EgressKey, EgressValue, EscapeFileKey, FLOWS_MAX_ENTRIES,
    FlowKey, FlowState, GATED_MAX_ENTRIES, GatedProc, LEARNED_MAX_ENTRIES, LearnedKey,
    LearnedValue, NameCountKey, NameKey, NameText, PATH_PATTERNS_MAX, PROCS_MAX_ENTRIES,
    PathPattern, PatternKey, ProcInfo, ProfileRef, RAW_SYSCALL_SLOTS, RINGBUF_BYTES,
    SYSCALL_PATH_BYTES, SYSCALL_REPEATS_MAX_ENTRIES, SyscallKey, SyscallRepeatKey, SyscallRule,
    SyscallUsedKey, counters,
};

#[map]
pub static CGROUP_PROFILES: HashMap<u64, ProfileRef> =
    HashMap::with_max_entries(CGROUP_MAX_ENTRIES, 0);

#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
pub static EGRESS: LpmTrie<EgressKey, EgressValue> =
    LpmTrie::with_max_entries(EGRESS_MAX_ENTRIES, 0);

/// Whole addresses apart from the trie (see `cgwarden_common::maps::EGRESS_HOSTS`);
/// entries are allocated as they are written, as the trie's are.
#[map]
pub static EGRESS_HOSTS: HashMap<EgressKey, EgressValue> =
    HashMap::with_max_entries(EGRESS_MAX_ENTRIES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(RINGBUF_BYTES, 0);

#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowState> =
    LruHashMap::with_max_entries(FLOWS_MAX_ENTRIES, 0);

#[map]
pub static NAMES: HashMap<NameKey, EgressValue> = HashMap::with_max_entries(16_384, 0);

#[map]
pub static LEARNED: HashMap<LearnedKey, LearnedValue> =
    HashMap::with_max_entries(LEARNED_MAX_ENTRIES, 0);

#[map]
pub static NAME_TEXT: HashMap<NameKey, NameText> = HashMap::with_max_entries(16_384, 0);

#[map]
pub static DNS_QUERIES: LruHashMap<DnsQueryKey, DnsQuery> = LruHashMap::with_max_entries(16_384, 0);

#[map]
pub static DNS_SERVERS: HashMap<DnsServerKey, u8> = HashMap::with_max_entries(4_096, 0);

#[map]
pub static DNS_REFUSALS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4_096, 0);

#[map]
pub static NAME_COUNTS: HashMap<NameCountKey, u32> = HashMap::with_max_entries(16_384, 0);

#[map]
pub static DNS_BUF: PerCpuArray<[u8; DNS_BUF_BYTES]> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static DNS_QBUF: PerCpuArray<[u8; DNS_BUF_BYTES]> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static DNS_QSCRATCH: PerCpuArray<DnsScratch> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static DNS_SCRATCH: PerCpuArray<DnsScratch> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static SYSCALL_RULES: HashMap<SyscallKey, SyscallRule> = HashMap::with_max_entries(8_192, 0);

#[map]
pub static SYSCALL_WATCH: Array<u8> = Array::with_max_entries(RAW_SYSCALL_SLOTS, 0);

#[map]
pub static SYSCALL_REPEATS: LruHashMap<SyscallRepeatKey, FlowState> =
    LruHashMap::with_max_entries(SYSCALL_REPEATS_MAX_ENTRIES, 0);

#[map]
pub static RUNTIME_SOCKETS: HashMap<cgwarden_common::SocketFile, u8> =
    HashMap::with_max_entries(64, 0);

#[map]
pub static GATED: HashMap<u32, GatedProc> = HashMap::with_max_entries(GATED_MAX_ENTRIES, 0);

#[map]
pub static PROCS: LruHashMap<u32, ProcInfo> = LruHashMap::with_max_entries(PROCS_MAX_ENTRIES, 0);

#[map]
pub static PATH_PATTERNS: Array<PathPattern> = Array::with_max_entries(PATH_PATTERNS_MAX, 0);

#[map]
pub static READ_PATTERNS: Array<PathPattern> = Array::with_max_entries(PATH_PATTERNS_MAX, 0);

/// Which second bytes the paths `READ_PATTERNS` matches can have (`read_leads`).
#[map]
pub static READ_LEADS: Array<u64> = Array::with_max_entries(1, 0);

#[map]
pub static EXE_HANDLES: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4_096, 0);

#[map]
pub static PROFILE_PATTERNS: HashMap<PatternKey, PathPattern> = HashMap::with_max_entries(8_192, 0);

#[map]
pub static PATH_SCRATCH: PerCpuArray<[u8; SYSCALL_PATH_BYTES]> =
    PerCpuArray::with_max_entries(1, 0);

/// This CPU's `/proc/<pid>/fd/<fd>` parse in progress. In a map rather than on the
/// stack so the verifier knows nothing of its values: on the stack, each step's
/// constants made a new state, and the verifier walked the step 297 times.
#[map]
pub static PROC_FD: PerCpuArray<crate::syscalls::ProcFd> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's repeat key under construction: 80 bytes that would otherwise count
/// against the 512-byte stack the verifier allows a program and its callees together.
#[map]
pub static REPEAT_KEY_SCRATCH: PerCpuArray<cgwarden_common::SyscallRepeatKey> =
    PerCpuArray::with_max_entries(1, 0);

#[map]
pub static ENTERED: PerCpuArray<cgwarden_common::EnteredMark> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's slot for a value whose range the verifier is to forget
/// (`syscalls::forget_range`).
#[map]
pub static OPAQUE: PerCpuArray<i64> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static REACHED: PerCpuArray<EscapeFileKey> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static ESCAPE_FILES: HashMap<EscapeFileKey, u8> = HashMap::with_max_entries(64, 0);

#[map]
pub static SYSCALLS_USED: HashMap<SyscallUsedKey, u8> = HashMap::with_max_entries(16_384, 0);

#[map]
pub static DEVICE_RULES: HashMap<DeviceKey, u32> = HashMap::with_max_entries(4_096, 0);

/// Slot 0: `skb_egress_dns`, tail-called by `skb_egress` while some profile reads DNS
/// (loaded only then, so an agent whose profiles read no DNS never verifies it).
#[map]
pub static DNS_EGRESS: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Slot 0: `raw_sys_enter_own`, tail-called by `raw_sys_enter` for a syscall marked
/// `syscall_watch::OWN` (loaded only where the syscalls are watched through the raw
/// tracepoints and some profile needs those checks).
#[map]
pub static OWN_CHECKS: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

/// Adds one to a per-CPU counter. The add is atomic because a program can be preempted
/// by another one on the same CPU (programs only disable migration), and the storm
/// accounting must be exact.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer comes from the map and stays valid for this program run.
        unsafe { atomic_add(slot, 1) };
    }
}

/// Atomically adds `v` to `*ptr` and returns the previous value.
///
/// # Safety
/// `ptr` must point to a live, 8-byte aligned `u64` in a map value.
#[inline(always)]
pub unsafe fn atomic_add(ptr: *mut u64, v: u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            ptr, v,
        )
    }
}

#[map]
pub static CRED_OFFSETS: Array<cgwarden_common::CredOffsets> = Array::with_max_entries(1, 0);

#[map]
pub static CRED_RULES: HashMap<u32, cgwarden_common::CredRule> =
    HashMap::with_max_entries(4_096, 0);

#[map]
pub static CREDS: LruHashMap<u32, cgwarden_common::CredState> =
    LruHashMap::with_max_entries(PROCS_MAX_ENTRIES, 0);
