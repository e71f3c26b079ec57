//! What a live learning run shows on a terminal while it watches: what it waits for,
//! then the time elapsed and left and the counts of what it has seen so far. One line,
//! rewritten once a second on standard error; nothing when standard error is not a
//! terminal (a log or a pipe gets the final summary only).

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use crate::agent::Agent;

/// The progress line of one learning run.
pub struct Progress {
    started: Instant,
    duration: Duration,
    /// What it waits for (`a container matching {name: "web"}`), shown until the
    /// learning profile has a cgroup.
    waiting_for: String,
    shown: Option<Instant>,
    tty: bool,
}

impl Progress {
    pub fn new(duration: Duration, waiting_for: String) -> Self {
        Self {
            started: Instant::now(),
            duration,
            waiting_for,
            shown: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Rewrites the line when a second has passed.
    pub fn tick(&mut self, agent: &Agent) {
        if !self.tty
            || self
                .shown
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.shown = Some(Instant::now());
        let line = self.line(agent);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    fn line(&self, agent: &Agent) -> String {
        let secs = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
        // Learning time counts from the first container a selector picked.
        let (claimed, since) = match agent.claims() {
            Some(c) => (c.claimed.len(), c.first_at),
            None => (1, Some(self.started)),
        };
        let Some(since) = since else {
            return format!(
                "waiting for {} ({} so far)",
                self.waiting_for,
                secs(self.started.elapsed())
            );
        };
        let elapsed = since.elapsed();
        let left = self.duration.saturating_sub(elapsed);
        let (flows, names, syscalls, deviations) = agent.learn_counts();
        format!(
            "learning {claimed} container(s): {} elapsed, {} left; {flows} flows, {names} DNS answers, {syscalls} syscalls, {deviations} deviations",
            secs(elapsed),
            secs(left)
        )
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.tty && self.shown.is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}
