//! Errors the agent survives: no single error ends its loop. Each is counted by cause
//! (`cgwarden_faults_total{cause}`, and in `status`), logged the first time it happens
//! and again when it comes back after a quiet minute, and the work is retried on the
//! loop's next turn: a full disk under the events file, a full map, a cgroup deeper
//! than the kernel follows, an unreadable directory or runtime state.

use std::{
    collections::BTreeMap,
    fmt::Display,
    time::{Duration, Instant},
};

/// How long a cause must be quiet before it is logged again.
const QUIET: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Fault {
    count: u64,
    last: Instant,
}

/// The faults seen, by cause.
#[derive(Debug, Default)]
pub struct Faults {
    by_cause: BTreeMap<&'static str, Fault>,
}

impl Faults {
    /// Counts one fault; logs it when it is the first of its cause or the cause was
    /// quiet. Returns whether it was logged.
    pub fn record(&mut self, cause: &'static str, error: &dyn Display) -> bool {
        let now = Instant::now();
        let fault = self.by_cause.entry(cause).or_insert(Fault {
            count: 0,
            last: now - QUIET * 2,
        });
        let log = fault.count == 0 || now.duration_since(fault.last) >= QUIET;
        fault.count += 1;
        fault.last = now;
        if log {
            log::error!(
                "{cause}: {error:#} (counted as cgwarden_faults_total{{cause=\"{cause}\"}}; the agent goes on and retries)"
            );
        }
        log
    }

    /// Every cause seen, with its count.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        self.by_cause.iter().map(|(c, f)| (*c, f.count)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_counted_and_logged_once_while_it_repeats() {
        let mut f = Faults::default();
        assert!(f.record("sink_write", &"No space left on device"));
        assert!(!f.record("sink_write", &"No space left on device"));
        assert!(f.record("assign", &"map full"));
        assert_eq!(f.counts(), vec![("assign", 1), ("sink_write", 2)]);
    }
}
