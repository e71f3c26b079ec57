//! Reporting: aggregation of identical repeats and writing to the ring buffer.
//!
//! A reported flow is keyed by everything that makes it "the same" (cgroup, profile,
//! pid, destination, protocol, verdict, hook), a reported syscall by its process,
//! number, arguments and verdict. Its total only grows; the kernel sends
//! an event for the first occurrence and then at most one per window, each carrying the
//! total so far, and the agent flushes totals left over at the end of a burst. A full
//! ring buffer never delays or changes a verdict: the loss is counted per CPU, and the
//! flow's total still reaches the agent with the next event or flush.
//!
//! Minimum kernel: 6.16, as cgroup_skb programs write headers. The header's helpers
//! (`bpf_get_current_pid_tgid`, `bpf_get_current_uid_gid`, `bpf_get_current_comm`) are
//! old, but all three reach tracing programs in 4.2, cgroup sock_addr and sock_create
//! in 5.7, cgroup_device and cgroup_sysctl in 6.1, cgroup_skb in 6.16. The rest needs
//! 5.12 ([`repeat`]'s atomic fetch-add) and 5.8 (the ring buffer).

use aya_ebpf::maps::LruHashMap;
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_get_current_comm as get_comm_into, bpf_ktime_get_ns},
    },
};
use cgwarden_common::{
    AGGREGATE_WINDOW_NS, Asker, EventHeader, FlowKey, FlowState, NetEvent, counters,
};

use crate::maps::{EVENTS, FLOWS, atomic_add, count};

/// Fills the fields every event shares from the current task.
#[inline(always)]
pub fn header(kind: u32, profile: u32, cgroup_id: u64) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    EventHeader {
        kind,
        profile,
        // SAFETY: plain helper call without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or_default(),
    }
}

/// Writes the fields every event shares from the current task into `h` (a reserved
/// record's header): the command name goes straight there, not through the stack.
///
/// # Safety
/// `h` points to writable memory for an [`EventHeader`].
#[inline(always)]
pub unsafe fn write_header(h: *mut EventHeader, kind: u32, profile: u32, cgroup_id: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: as the caller promises; plain helper calls.
    unsafe {
        write_where(h, kind, profile, cgroup_id);
        (*h).pid = (pid_tgid >> 32) as u32;
        (*h).tid = pid_tgid as u32;
        (*h).uid = uid_gid as u32;
        (*h).gid = (uid_gid >> 32) as u32;
        // A failed read leaves the name zeroed (the helper clears it): no zeroing here,
        // which would be a byte loop the verifier walks at each call site.
        get_comm_into((&raw mut (*h).comm).cast(), 16);
    }
}

/// The header's fields that do not name a process: kind, profile, time, cgroup.
///
/// # Safety
/// `h` points to writable memory for an [`EventHeader`].
#[inline(always)]
unsafe fn write_where(h: *mut EventHeader, kind: u32, profile: u32, cgroup_id: u64) {
    // SAFETY: as the caller promises; plain helper call.
    unsafe {
        (*h).kind = kind;
        (*h).profile = profile;
        (*h).ts_ns = bpf_ktime_get_ns();
        (*h).cgroup_id = cgroup_id;
    }
}

/// The current task as a header names it, to name it later in a record written in
/// another task's context (a DNS answer names the process that sent the query).
#[inline(always)]
pub fn current_task() -> Asker {
    Asker {
        pid_tgid: bpf_get_current_pid_tgid(),
        uid_gid: bpf_get_current_uid_gid(),
        comm: bpf_get_current_comm().unwrap_or_default(),
    }
}

/// Writes a header naming `who` instead of the current task.
///
/// # Safety
/// `h` points to writable memory for an [`EventHeader`].
#[inline(always)]
pub unsafe fn write_header_as(
    h: *mut EventHeader,
    kind: u32,
    profile: u32,
    cgroup_id: u64,
    who: &Asker,
) {
    // SAFETY: as the caller promises.
    unsafe {
        write_where(h, kind, profile, cgroup_id);
        (*h).pid = (who.pid_tgid >> 32) as u32;
        (*h).tid = who.pid_tgid as u32;
        (*h).uid = who.uid_gid as u32;
        (*h).gid = (who.uid_gid >> 32) as u32;
        (*h).comm = who.comm;
    }
}

/// Counts a reported flow and sends an event unless it is a repeat inside the window.
#[inline(always)]
pub fn report_net(event: &mut NetEvent) {
    let h = &event.header;
    let key = FlowKey {
        cgroup_id: h.cgroup_id,
        profile: h.profile,
        pid: h.pid,
        addr: event.addr,
        port: event.port,
        protocol: event.protocol,
        verdict: event.verdict,
        kind: h.kind,
        rule: event.rule,
        _pad: 0,
    };
    let Some(total) = repeat(&FLOWS, &key, h.ts_ns) else {
        return;
    };
    event.total = total;
    send_net(event);
}

/// Counts one occurrence of a reported event in its repeat table and says whether to
/// send it: `Some(total so far)` for the first occurrence and then at most once per
/// window, `None` for a repeat held back (its total reaches the agent with the next
/// event or the agent's flush).
#[inline(always)]
pub fn repeat<K>(table: &LruHashMap<K, FlowState>, key: &K, now: u64) -> Option<u64> {
    match table.get_ptr_mut(key) {
        Some(state) => {
            // SAFETY: the pointer comes from the map; `total` is only changed atomically.
            let total = unsafe { atomic_add(&raw mut (*state).total, 1) } + 1;
            // SAFETY: as above; racing writes of timestamps are harmless.
            unsafe {
                (*state).last_ns = now;
                if now.wrapping_sub((*state).last_emit_ns) < AGGREGATE_WINDOW_NS {
                    count(counters::AGGREGATED);
                    return None;
                }
                (*state).last_emit_ns = now;
            }
            Some(total)
        }
        None => {
            let fresh = FlowState {
                total: 1,
                last_emit_ns: now,
                last_ns: now,
            };
            if table.insert(key, &fresh, BPF_NOEXIST as u64).is_err() {
                // Another CPU inserted it first: count this one there and let that
                // CPU's event (or the agent's flush) report it.
                if let Some(state) = table.get_ptr_mut(key) {
                    // SAFETY: as above.
                    unsafe { atomic_add(&raw mut (*state).total, 1) };
                }
                return None;
            }
            Some(1)
        }
    }
}

/// Submit flags for a record of type `T`: wake the agent once each time the backlog
/// crosses another batch boundary, so a burst costs one wake-up per batch instead of
/// one per record (the agent also drains on a short timer, so a single event waits at
/// most that long, and a backlog it is already draining adds no wake-ups).
#[inline(always)]
pub fn wakeup<T>() -> u64 {
    const BPF_RB_AVAIL_DATA: u64 = 0;
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    const BATCH_BYTES: u64 = 256 * 1024;
    // The record as the ring buffer lays it out: an 8-byte header, rounded up to 8.
    let record = ((core::mem::size_of::<T>() as u64) + 8 + 7) & !7;
    // The reserved record is already counted in the available data.
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    if avail >= BATCH_BYTES && avail % BATCH_BYTES < record {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Copies `*src` to `*dst` with one helper call. A plain assignment of an array or
/// struct is compiled into a call of a byte loop (`memmove`), which the verifier walks
/// byte by byte at every place that calls it: 30% of `sys_exit`'s verified
/// instructions were its copies of the arguments and the path into the record.
///
/// # Safety
/// `dst` is writable for a `T` (a reserved record's field); `src` readable.
#[inline(always)]
pub unsafe fn copy<T>(dst: *mut T, src: *const T) {
    // SAFETY: as the caller promises; a failed read leaves zeros.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            dst.cast(),
            core::mem::size_of::<T>() as u32,
            src.cast(),
        );
    }
}

/// Writes one record of type `T` to the ring buffer: reserved, filled by `fill` (which
/// must write every field), and submitted; a full buffer is counted as a loss. `urgent`
/// wakes the agent at once instead of with the next batch.
#[inline(always)]
pub fn emit<T: 'static>(urgent: bool, fill: impl FnOnce(*mut T)) {
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    let Some(mut slot) = EVENTS.reserve::<T>(0) else {
        count(counters::RINGBUF_DROPS);
        return;
    };
    fill(slot.as_mut_ptr());
    let flags = if urgent {
        BPF_RB_FORCE_WAKEUP
    } else {
        wakeup::<T>()
    };
    slot.submit(flags);
}

/// Sends a network event, or counts it as lost when the ring buffer is full.
#[inline(always)]
fn send_net(event: &NetEvent) {
    emit::<NetEvent>(false, |e| {
        // SAFETY: `e` is the reserved record, written whole.
        unsafe { e.write(*event) };
    });
}
