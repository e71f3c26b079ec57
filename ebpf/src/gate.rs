//! The gate: a container whose profile depends on what its engine says about it (its
//! name, image, compose service or pod) cannot be judged by the kernel, which sees only
//! a new cgroup. Its first process is held right after it executes the entry point,
//! before it runs any of it: stopped with SIGSTOP and written to `GATED`. The agent
//! identifies the container, gives its cgroup a profile (or "unmonitored") and
//! continues it, so the container is covered from its first instruction.
//!
//! The runtime's set-up before that exec (runc's init writing sysctls, mounting) is not
//! held: it is the configuration, not the container. Minimum kernel: 5.3
//! (`bpf_send_signal`).
//! Its record goes to the ring buffer (through `event`): 5.8 for the module as a whole.

use aya_ebpf::helpers::generated::{bpf_ktime_get_ns, bpf_send_signal};
use cgwarden_common::{GATE_PROFILE_ID, GateEvent, GatedProc, counters, kind};

use crate::{
    event,
    maps::{GATED, count},
};

const SIGSTOP: u32 = 19;

/// Holds the calling process (`tgid`) at the gate and tells the agent.
#[inline(always)]
pub fn hold(tgid: u32) {
    // SAFETY: plain helper calls.
    let cgroup_id = unsafe { aya_ebpf::helpers::generated::bpf_get_current_cgroup_id() };
    let since_ns = unsafe { bpf_ktime_get_ns() };
    // Written before the signal: an agent that sees the process stopped finds it here.
    if GATED
        .insert(
            &tgid,
            &GatedProc {
                cgroup_id,
                since_ns,
            },
            0,
        )
        .is_err()
    {
        count(counters::GATE_FULL);
    }
    // SAFETY: a plain helper call; the signal goes to the current thread group.
    unsafe { bpf_send_signal(SIGSTOP) };
    // Urgent: the container waits for the agent.
    event::emit::<GateEvent>(true, |e| {
        // SAFETY: `e` is the reserved record; its one field is written here.
        unsafe {
            event::write_header(&raw mut (*e).header, kind::GATE, GATE_PROFILE_ID, cgroup_id);
        }
    });
}
