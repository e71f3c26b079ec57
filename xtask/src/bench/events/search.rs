//! The search for the highest rate without loss in one place of the events file: a run
//! at full speed, offered rates up or down from the target, bisection, and the
//! confirmation runs of the rate reported.

use std::time::Instant;

use anyhow::Context;

use super::{
    Env, MAX_SEARCH, MAX_STEP_DOWNS, Place, STEP, Settings, TARGET_RATE,
    measure::{Trial, trial},
    quiet::wait_quiet,
};

/// Finds the highest rate without loss for one place of the events file.
pub(super) fn search(
    env: &Env,
    settings: &Settings,
    place: &mut Place,
    deadline: Instant,
) -> anyhow::Result<()> {
    let events = place.events();
    let trials = &mut place.trials;
    let mut cut_short = false;
    // Runs a trial (again, once, when it failed while something else used the CPUs);
    // None when the time budget is spent.
    let mut run_trial = |offered: u64, trials: &mut Vec<Trial>| -> anyhow::Result<Option<Trial>> {
        let mut attempt = 0;
        loop {
            if Instant::now() > deadline && offered != 0 {
                cut_short = true;
                return Ok(None);
            }
            attempt += 1;
            wait_quiet(env.clk_tck);
            let t = trial(env, settings, &events, offered, settings.warmup, false)?;
            // Disturbed, or the generator fell short of the rate: once more.
            let again =
                !t.passes() && (t.disturbed() || t.zero_loss()) && attempt < 2 && offered != 0;
            eprintln!(
                "[trial {}] offered {:>9}/s made {:>9.0}/s: delivered {}/{} lost {} at {:.0}/s, \
                 lag {:.0} ms, stall {:.0} ms, agent {:.2} µs/event, VmHWM {:.1} MB, others \
                 {:.2} CPU -> {}",
                trials.len() + 1,
                if offered == 0 {
                    "max".to_owned()
                } else {
                    offered.to_string()
                },
                t.generated.rate,
                t.delivered,
                t.generated.sent,
                t.lost,
                t.delivered_rate(),
                t.lag_ms,
                t.stall_ms,
                t.cpu_us_per_event().0 + t.cpu_us_per_event().1,
                t.hwm_kb as f64 / 1024.0,
                t.others_cpu,
                match (t.passes(), t.zero_loss(), again) {
                    (true, _, _) => "no loss",
                    (false, true, true) => "no loss, but the generator fell short: again",
                    (false, true, false) => "no loss, but the generator fell short",
                    (false, false, true) => "LOSS, disturbed: again",
                    (false, false, false) => "LOSS",
                }
            );
            trials.push(Trial {
                superseded: again,
                ..t.clone()
            });
            if !again {
                return Ok(Some(t));
            }
        }
    };

    // Full speed first: what the generator can make, and what the agent drains when it
    // cannot keep up.
    let full = run_trial(0, trials)?.context("no full-speed trial")?;
    let cap = ((full.generated.rate * 0.9) as u64 / STEP * STEP).max(STEP);
    let round = |x: f64| ((x / STEP as f64).round() as u64 * STEP).max(STEP);
    // Highest rate without loss, lowest with loss, and lowest the generator could not
    // keep up (no loss seen, but no answer either).
    let mut lo: Option<u64> = None;
    let mut hi: Option<u64> = None;
    let mut slow: Option<u64> = None;
    let min_some = |a: Option<u64>, b: u64| Some(a.map_or(b, |a| a.min(b)));
    let mut rate = TARGET_RATE.min(cap);
    for _ in 0..MAX_SEARCH {
        let Some(t) = run_trial(rate, trials)? else {
            break;
        };
        if t.passes() {
            lo = Some(lo.map_or(rate, |l| l.max(rate)));
        } else if t.zero_loss() {
            slow = min_some(slow, rate);
        } else {
            hi = min_some(hi, rate);
        }
        let top = match (hi, slow) {
            (Some(h), Some(s)) => Some(h.min(s)),
            (h, s) => h.or(s),
        };
        let next = match (lo, top) {
            (Some(l), None) if l >= cap => break,
            (Some(l), None) => round(l as f64 * 1.25).min(cap),
            (None, Some(h)) if h <= STEP => break,
            (None, Some(h)) => round(h as f64 * 0.8),
            (Some(l), Some(h)) if (h as f64) <= l as f64 * 1.05 || h - l <= STEP => break,
            (Some(l), Some(h)) => round((l + h) as f64 / 2.0),
            (None, None) => break,
        };
        if next == rate {
            break;
        }
        rate = next;
    }
    // Confirm: `reps` runs at the reported rate, every one without loss and at the rate,
    // or 5% lower. A rate that failed once (undisturbed) is never reported, whatever
    // passed before.
    for _ in 0..MAX_STEP_DOWNS {
        let Some(l) = lo else { break };
        let counted = |t: &&Trial| t.offered == l && !t.superseded;
        let mut failed = trials.iter().filter(counted).find(|t| !t.passes()).cloned();
        let mut passed = trials.iter().filter(counted).count();
        let mut out_of_time = false;
        while failed.is_none() && passed < settings.reps {
            match run_trial(l, trials)? {
                Some(t) if t.passes() => {}
                Some(t) => failed = Some(t),
                None => {
                    out_of_time = true;
                    break;
                }
            }
            passed += 1;
        }
        if out_of_time {
            // What passed so far at this rate still counts, marked as unconfirmed.
            if failed.is_none() && passed > 0 {
                place.max_rate = Some(l);
                place.unconfirmed = Some(passed);
            }
            break;
        }
        match failed {
            None => {
                place.max_rate = Some(l);
                break;
            }
            Some(t) if t.zero_loss() => slow = min_some(slow, l),
            Some(_) => hi = min_some(hi, l),
        }
        let lower = round(l as f64 * 0.95);
        lo = (lower < l).then_some(lower);
    }
    place.lowest_failing = hi;
    place.generator_short = slow;
    place.cut_short = cut_short;
    Ok(())
}
