//! Writing events to the ring buffer. A full buffer never delays or changes a verdict:
//! the loss is counted per CPU and the agent reports it.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
};
use cgwarden_common::{EventHeader, NetEvent, counters};

use crate::maps::{EVENTS, count};

/// Fills the fields every event shares from the current task.
#[inline(always)]
pub fn header(kind: u32, profile: u32) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    EventHeader {
        kind,
        profile,
        // SAFETY: plain helper calls without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or_default(),
    }
}

/// Sends a network event, or counts it as lost when the ring buffer is full.
#[inline(always)]
pub fn send_net(event: &NetEvent) {
    match EVENTS.reserve::<NetEvent>(0) {
        Some(mut slot) => {
            slot.write(*event);
            slot.submit(0);
        }
        None => count(counters::RINGBUF_DROPS),
    }
}
