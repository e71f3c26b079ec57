//! `learn --select`: which cgroups the learning profile went to. A selector may match
//! several containers; by default only the first one it matches is learned (the
//! others start unmonitored, as an unselected container does); with `--each` or
//! `--merge-all` every one of them (into a profile each, or into one).

/// The cgroups a selector-learning run claimed, in the order it claimed them.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// Only the first match is learned.
    pub first_only: bool,
    pub claimed: Vec<Claimed>,
    /// When the first cgroup was claimed: learning time counts from then.
    pub first_at: Option<std::time::Instant>,
}

/// One cgroup the learning profile went to.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Relative to the cgroup2 root, as records name it.
    pub path: String,
    /// The cgroup's id, which the kernel keys what it learned by.
    pub id: u64,
    /// What the engines call it, when they do.
    pub who: Option<crate::engines::Identity>,
}

impl Claims {
    pub fn new(first_only: bool) -> Self {
        Self {
            first_only,
            claimed: Vec::new(),
            first_at: None,
        }
    }

    /// Whether the learning profile may go to the cgroup at `path`.
    pub fn allows(&self, path: &str) -> bool {
        !self.first_only || self.claimed.is_empty() || self.claimed.iter().any(|c| c.path == path)
    }

    /// Records that the learning profile went to `path`.
    pub fn claim(&mut self, path: &str, id: u64, who: Option<crate::engines::Identity>) {
        if !self.claimed.iter().any(|c| c.path == path) {
            self.claimed.push(Claimed {
                path: path.to_owned(),
                id,
                who,
            });
            self.first_at.get_or_insert_with(std::time::Instant::now);
        }
    }

    /// Whether every claimed cgroup is gone (its container ended); false before any.
    pub fn all_gone(&self, cgroup2: &std::path::Path) -> bool {
        !self.claimed.is_empty()
            && self
                .claimed
                .iter()
                .all(|c| !cgroup2.join(c.path.trim_start_matches('/')).exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_match_is_claimed_unless_all_are() {
        let mut first = Claims::new(true);
        assert!(first.allows("/docker/a"));
        first.claim("/docker/a", 7, None);
        assert!(first.allows("/docker/a"));
        assert!(!first.allows("/docker/b"));
        let mut all = Claims::new(false);
        all.claim("/docker/a", 7, None);
        assert!(all.allows("/docker/b"));
        assert!(!Claims::new(true).all_gone(std::path::Path::new("/")));
        first.claimed[0].path = "/cgwarden-no-such-cgroup".into();
        assert!(first.all_gone(std::path::Path::new("/sys/fs/cgroup")));
    }
}
