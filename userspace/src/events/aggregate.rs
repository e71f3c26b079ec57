//! Turning the kernel's per-flow and per-syscall totals into per-event counts.
//!
//! The kernel keeps, for each reported flow (and each reported syscall made again and
//! again with the same arguments), a total that only grows, and sends an event for the
//! first occurrence and at most one per window after that. Each event carries the total
//! so far; this module reports the difference to what was already reported, and the
//! agent's periodic flush reports totals that grew after the last event (the end of a
//! burst). Because totals only grow and only differences are reported, a kernel event
//! and a flush that race never count an occurrence twice.

use std::{collections::HashMap, hash::Hash};

use cgwarden_common::{
    AGGREGATE_WINDOW_NS, EventHeader, FlowKey, FlowState, NetEvent, SyscallEvent, SyscallRepeatKey,
    kind,
};

/// A kernel event that the kernel aggregates by key.
pub trait Repeated: Copy {
    /// What makes two occurrences "the same".
    type Key: Copy + Eq + Hash;
    fn key(&self) -> Self::Key;
    /// The kernel's total for the key when it sent this event.
    fn total(&self) -> u64;
    fn set_total(&mut self, total: u64);
    fn header_mut(&mut self) -> &mut EventHeader;
    /// An event rebuilt from the key alone (its first event was lost).
    fn from_key(key: &Self::Key) -> Self;

    /// This event standing for the occurrences up to `total`, the last one at `last_ns`.
    fn repeated(&self, last_ns: u64, total: u64) -> Self {
        let mut e = *self;
        e.header_mut().ts_ns = last_ns;
        e.set_total(total);
        e
    }
}

/// The header of an event rebuilt from a key: no process name, uid or time.
fn header_of(kind: u32, profile: u32, cgroup_id: u64, pid: u32) -> EventHeader {
    EventHeader {
        kind,
        profile,
        cgroup_id,
        pid,
        tid: pid,
        ..Default::default()
    }
}

/// What the agent has reported per key.
pub struct Aggregator<E: Repeated> {
    tracks: HashMap<E::Key, Track<E>>,
}

impl<E: Repeated> Default for Aggregator<E> {
    fn default() -> Self {
        Self {
            tracks: HashMap::new(),
        }
    }
}

struct Track<E> {
    reported: u64,
    /// The last full event seen for the key, to describe flushed repeats.
    last: E,
}

impl<E: Repeated> Aggregator<E> {
    /// The number of occurrences a kernel event stands for, or `None` when everything
    /// it carries was already reported by a flush.
    pub fn on_event(&mut self, event: &E) -> Option<u64> {
        let key = event.key();
        let total = event.total();
        let Some(track) = self.tracks.get_mut(&key) else {
            // Keys are tracked only once they repeat, so a million one-off flows cost
            // no memory. An untracked key's first occurrence was reported by the
            // kernel's first event (or counted as lost with it): the rest is new.
            if total > 1 {
                self.tracks.insert(
                    key,
                    Track {
                        reported: total,
                        last: *event,
                    },
                );
            }
            return Some(total.saturating_sub(1).max(u64::from(total == 1)));
        };
        // A total below what was reported means the kernel evicted and restarted the
        // key's entry: everything it carries is new.
        let count = if total >= track.reported {
            total - track.reported
        } else {
            total
        };
        track.reported = total;
        track.last = *event;
        (count > 0).then_some(count)
    }

    /// Takes the kernel's current totals as already reported (a previous agent reported
    /// them before it stopped).
    pub fn prime(&mut self, kernel: &[(E::Key, FlowState)]) {
        for (key, state) in kernel {
            self.tracks.insert(
                *key,
                Track {
                    reported: state.total,
                    last: E::from_key(key),
                },
            );
        }
    }

    /// Repeats the kernel counted but did not send, for keys quiet for a whole window:
    /// one event per key (its last event, its time set to the last occurrence) with the
    /// count to report. Forgets keys the kernel no longer tracks.
    pub fn flush(&mut self, kernel: &[(E::Key, FlowState)], now_ns: u64) -> Vec<(E, u64)> {
        let mut out = Vec::new();
        let mut live = HashMap::with_capacity(kernel.len());
        for (key, state) in kernel {
            live.insert(*key, ());
            if now_ns.saturating_sub(state.last_emit_ns) < AGGREGATE_WINDOW_NS {
                continue;
            }
            // Untracked: the first occurrence was reported (or counted as lost).
            let track = self.tracks.entry(*key).or_insert_with(|| Track {
                reported: 1,
                last: E::from_key(key),
            });
            if state.total > track.reported {
                out.push((
                    track.last.repeated(state.last_ns, state.total),
                    state.total - track.reported,
                ));
                track.reported = state.total;
            }
        }
        self.tracks.retain(|k, _| live.contains_key(k));
        out
    }
}

impl Repeated for NetEvent {
    type Key = FlowKey;

    fn key(&self) -> FlowKey {
        FlowKey {
            cgroup_id: self.header.cgroup_id,
            profile: self.header.profile,
            pid: self.header.pid,
            addr: self.addr,
            port: self.port,
            protocol: self.protocol,
            verdict: self.verdict,
            kind: self.header.kind,
            rule: self.rule,
            _pad: 0,
        }
    }

    fn total(&self) -> u64 {
        self.total
    }

    fn set_total(&mut self, total: u64) {
        self.total = total;
    }

    fn header_mut(&mut self) -> &mut EventHeader {
        &mut self.header
    }

    /// No process name or uid.
    fn from_key(key: &FlowKey) -> Self {
        NetEvent {
            header: header_of(key.kind, key.profile, key.cgroup_id, key.pid),
            addr: key.addr,
            port: key.port,
            protocol: key.protocol,
            verdict: key.verdict,
            rule: key.rule,
            family: if key.addr[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
                libc::AF_INET as u16
            } else {
                libc::AF_INET6 as u16
            },
            ..Default::default()
        }
    }
}

impl Repeated for SyscallEvent {
    type Key = SyscallRepeatKey;

    fn key(&self) -> SyscallRepeatKey {
        SyscallRepeatKey {
            cgroup_id: self.header.cgroup_id,
            profile: self.header.profile,
            pid: self.header.pid,
            nr: self.nr,
            rule: self.rule,
            verdict: self.verdict,
            action: self.action,
            _pad: [0; 6],
            args: self.args,
        }
    }

    fn total(&self) -> u64 {
        self.total
    }

    fn set_total(&mut self, total: u64) {
        self.total = total;
    }

    fn header_mut(&mut self) -> &mut EventHeader {
        &mut self.header
    }

    /// No process name, uid, executable or parent.
    fn from_key(key: &SyscallRepeatKey) -> Self {
        SyscallEvent {
            header: header_of(kind::SYSCALL, key.profile, key.cgroup_id, key.pid),
            nr: key.nr,
            action: key.action,
            verdict: key.verdict,
            path_unreadable: 0,
            unresolved: 0,
            rule: key.rule,
            path_len: 0,
            args: key.args,
            flags: 0,
            path: [0; cgwarden_common::SYSCALL_PATH_BYTES],
            ppid: 0,
            judged: 0,
            exe: [0; cgwarden_common::EXE_BYTES],
            total: 0,
            ret: 0,
            str_len: 0,
            reached: 0,
            _pad3: [0; 3],
            reached_magic: 0,
            str_val: [0; 32],
            fd_ino: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(total: u64) -> NetEvent {
        let mut e = NetEvent {
            port: 80,
            total,
            ..Default::default()
        };
        e.header.pid = 5;
        e
    }

    fn state(total: u64, last_emit_ns: u64) -> FlowState {
        FlowState {
            total,
            last_emit_ns,
            last_ns: last_emit_ns + 10,
        }
    }

    #[test]
    fn events_report_differences_and_flush_reports_the_rest() {
        let mut a = Aggregator::<NetEvent>::default();
        assert_eq!(a.on_event(&event(1)), Some(1));
        assert_eq!(a.on_event(&event(40)), Some(39));
        let key = event(0).key();
        // Inside the window: the kernel will still send, no flush.
        assert!(a.flush(&[(key, state(55, 1_000))], 1_500).is_empty());
        // After the window: the 15 unsent repeats are flushed once.
        let flushed = a.flush(&[(key, state(55, 1_000))], 1_000 + AGGREGATE_WINDOW_NS);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].1, 15);
        assert!(
            a.flush(&[(key, state(55, 1_000))], 2 * AGGREGATE_WINDOW_NS)
                .is_empty()
        );
        // A kernel event racing the flush carries nothing new.
        assert_eq!(a.on_event(&event(55)), None);
        assert_eq!(a.on_event(&event(56)), Some(1));
    }

    #[test]
    fn an_evicted_flow_starts_again_and_vanished_flows_are_forgotten() {
        let mut a = Aggregator::<NetEvent>::default();
        // Seen first at total 9: its first occurrence was reported (or counted lost).
        assert_eq!(a.on_event(&event(9)), Some(8));
        assert_eq!(a.on_event(&event(1)), Some(1));
        assert!(a.flush(&[], 10).is_empty());
        assert!(a.tracks.is_empty());
    }

    #[test]
    fn a_flow_whose_first_event_was_lost_is_still_counted() {
        // The first occurrence's record was lost and counted in a `lost` record; the
        // other six come from the kernel's total.
        let mut a = Aggregator::<NetEvent>::default();
        let key = event(0).key();
        let flushed = a.flush(&[(key, state(7, 0))], AGGREGATE_WINDOW_NS);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].1, 6);
        assert_eq!(flushed[0].0.port, 80);
    }

    #[test]
    fn one_off_flows_are_not_tracked() {
        let mut a = Aggregator::<NetEvent>::default();
        for port in 0..1000 {
            let mut e = event(1);
            e.port = port;
            assert_eq!(a.on_event(&e), Some(1));
        }
        assert!(a.tracks.is_empty());
        let key = event(0).key();
        // Its first event was seen untracked; the flush reports only the repeats.
        assert_eq!(a.on_event(&event(1)), Some(1));
        let flushed = a.flush(&[(key, state(5, 0))], AGGREGATE_WINDOW_NS);
        assert_eq!(flushed[0].1, 4);
    }

    #[test]
    fn syscalls_with_other_arguments_are_counted_apart() {
        let mut a = Aggregator::<SyscallEvent>::default();
        let call = |arg: u64, total: u64| {
            let mut e = SyscallEvent::from_key(&SyscallRepeatKey {
                pid: 9,
                nr: 110,
                ..Default::default()
            });
            e.args[0] = arg;
            e.total = total;
            e
        };
        assert_eq!(a.on_event(&call(1, 1)), Some(1));
        assert_eq!(a.on_event(&call(2, 1)), Some(1));
        assert_eq!(a.on_event(&call(1, 3)), Some(2));
        let kernel = [
            (call(1, 0).key(), state(10, 0)),
            (call(2, 0).key(), state(1, 0)),
        ];
        let flushed = a.flush(&kernel, AGGREGATE_WINDOW_NS);
        assert_eq!(flushed.len(), 1, "the call made once has nothing to flush");
        assert_eq!(flushed[0].0.args[0], 1);
        assert_eq!(flushed[0].0.total, 10);
        assert_eq!(flushed[0].1, 7);
    }
}
