//! Cgroups a record named but no walk of the cgroup tree found (gone before the agent
//! looked): remembered for a while, so a burst of records from one of them costs one
//! walk, not one per record.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// How long a cgroup no walk found is not looked for again. A cgroup the kernel has
/// just created is found by the first walk; one that is gone stays gone.
pub const FORGET_AFTER: Duration = Duration::from_secs(2);

/// At most this many are remembered; past it, the oldest half is forgotten.
const MAX: usize = 4096;

/// The negative cache: cgroup id → when it was last looked for in vain.
#[derive(Default)]
pub struct Unknown {
    missed: HashMap<u64, Instant>,
}

impl Unknown {
    /// Whether a walk for `id` found nothing less than [`FORGET_AFTER`] ago.
    pub fn recently_missed(&self, id: u64, now: Instant) -> bool {
        self.missed
            .get(&id)
            .is_some_and(|at| now.saturating_duration_since(*at) < FORGET_AFTER)
    }

    /// A walk at `now` did not find `id`.
    pub fn missed(&mut self, id: u64, now: Instant) {
        if self.missed.len() >= MAX {
            self.missed
                .retain(|_, at| now.saturating_duration_since(*at) < FORGET_AFTER);
            if self.missed.len() >= MAX {
                let mut ages: Vec<Instant> = self.missed.values().copied().collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                self.missed.retain(|_, at| *at > cut);
            }
        }
        self.missed.insert(id, now);
    }

    /// A walk found `id` after all.
    pub fn found(&mut self, id: u64) {
        self.missed.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_remembered_until_it_expires() {
        let mut u = Unknown::default();
        let t = Instant::now();
        assert!(!u.recently_missed(7, t));
        u.missed(7, t);
        assert!(u.recently_missed(7, t + Duration::from_millis(1999)));
        assert!(!u.recently_missed(7, t + FORGET_AFTER));
        assert!(!u.recently_missed(8, t));
        u.found(7);
        assert!(!u.recently_missed(7, t));
    }

    #[test]
    fn it_stays_bounded() {
        let mut u = Unknown::default();
        let t = Instant::now();
        for id in 0..(MAX as u64 * 3) {
            u.missed(id, t + Duration::from_micros(id));
        }
        assert!(u.missed.len() <= MAX, "{}", u.missed.len());
        // The latest miss is always remembered.
        assert!(u.recently_missed(MAX as u64 * 3 - 1, t + Duration::from_millis(10)));
    }
}
