//! Turning the kernel's per-flow totals into per-event counts.
//!
//! The kernel keeps, for each reported flow, a total that only grows, and sends an
//! event for the first occurrence and at most one per window after that. Each event
//! carries the total so far; this module reports the difference to what was already
//! reported, and the agent's periodic flush reports totals that grew after the last
//! event (the end of a burst). Because totals only grow and only differences are
//! reported, a kernel event and a flush that race never count an occurrence twice.

use std::collections::HashMap;

use cgwarden_common::{AGGREGATE_WINDOW_NS, FlowKey, FlowState, NetEvent, RULE_UNKNOWN};

/// What the agent has reported per flow.
#[derive(Default)]
pub struct Aggregator {
    tracks: HashMap<FlowKey, Track>,
}

struct Track {
    reported: u64,
    /// The last full event seen for the flow, to describe flushed repeats.
    last: NetEvent,
}

impl Aggregator {
    /// The number of occurrences a kernel event stands for, or `None` when everything
    /// it carries was already reported by a flush.
    pub fn on_event(&mut self, event: &NetEvent) -> Option<u64> {
        let key = key_of(event);
        let Some(track) = self.tracks.get_mut(&key) else {
            // Flows are tracked only once they repeat, so a million one-off flows cost
            // no memory. An untracked flow's first occurrence was reported by the
            // kernel's first event (or counted as lost with it): the rest is new.
            if event.total > 1 {
                self.tracks.insert(
                    key,
                    Track {
                        reported: event.total,
                        last: *event,
                    },
                );
            }
            return Some(
                event
                    .total
                    .saturating_sub(1)
                    .max(u64::from(event.total == 1)),
            );
        };
        // A total below what was reported means the kernel evicted and restarted the
        // flow's entry: everything it carries is new.
        let count = if event.total >= track.reported {
            event.total - track.reported
        } else {
            event.total
        };
        track.reported = event.total;
        track.last = *event;
        (count > 0).then_some(count)
    }

    /// Takes the kernel's current totals as already reported (a previous agent reported
    /// them before it stopped).
    pub fn prime(&mut self, kernel: &[(FlowKey, FlowState)]) {
        for (key, state) in kernel {
            self.tracks.insert(
                *key,
                Track {
                    reported: state.total,
                    last: event_from_key(key),
                },
            );
        }
    }

    /// Repeats the kernel counted but did not send, for flows quiet for a whole window:
    /// one event per flow (the flow's last event, its time set to the last occurrence)
    /// with the count to report. Forgets flows the kernel no longer tracks.
    pub fn flush(&mut self, kernel: &[(FlowKey, FlowState)], now_ns: u64) -> Vec<(NetEvent, u64)> {
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
                last: event_from_key(key),
            });
            if state.total > track.reported {
                let mut event = track.last;
                event.header.ts_ns = state.last_ns;
                event.total = state.total;
                out.push((event, state.total - track.reported));
                track.reported = state.total;
            }
        }
        self.tracks.retain(|k, _| live.contains_key(k));
        out
    }
}

fn key_of(e: &NetEvent) -> FlowKey {
    FlowKey {
        cgroup_id: e.header.cgroup_id,
        profile: e.header.profile,
        pid: e.header.pid,
        addr: e.addr,
        port: e.port,
        protocol: e.protocol,
        verdict: e.verdict,
        kind: e.header.kind,
    }
}

/// An event rebuilt from a flow key alone (its first event was lost): no process name,
/// uid or rule.
fn event_from_key(key: &FlowKey) -> NetEvent {
    let mut e = NetEvent {
        addr: key.addr,
        port: key.port,
        protocol: key.protocol,
        verdict: key.verdict,
        rule: RULE_UNKNOWN,
        family: if key.addr[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
            libc::AF_INET as u16
        } else {
            libc::AF_INET6 as u16
        },
        ..Default::default()
    };
    e.header.kind = key.kind;
    e.header.profile = key.profile;
    e.header.cgroup_id = key.cgroup_id;
    e.header.pid = key.pid;
    e.header.tid = key.pid;
    e
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
        let mut a = Aggregator::default();
        assert_eq!(a.on_event(&event(1)), Some(1));
        assert_eq!(a.on_event(&event(40)), Some(39));
        let key = key_of(&event(0));
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
        let mut a = Aggregator::default();
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
        let mut a = Aggregator::default();
        let key = key_of(&event(0));
        let flushed = a.flush(&[(key, state(7, 0))], AGGREGATE_WINDOW_NS);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].1, 6);
        assert_eq!(flushed[0].0.port, 80);
    }

    #[test]
    fn one_off_flows_are_not_tracked() {
        let mut a = Aggregator::default();
        for port in 0..1000 {
            let mut e = event(1);
            e.port = port;
            assert_eq!(a.on_event(&e), Some(1));
        }
        assert!(a.tracks.is_empty());
        let key = key_of(&event(0));
        // Its first event was seen untracked; the flush reports only the repeats.
        assert_eq!(a.on_event(&event(1)), Some(1));
        let flushed = a.flush(&[(key, state(5, 0))], AGGREGATE_WINDOW_NS);
        assert_eq!(flushed[0].1, 4);
    }
}
