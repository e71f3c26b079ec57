//! Judging a target on a measurement, not on an estimate: a figure meets its target when
//! the 95% confidence interval of its median lies wholly on the target's side, misses it
//! when it lies wholly on the other, and is undecided while the interval spans it (more
//! repetitions narrow it). The interval is distribution-free (order statistics), so run
//! noise with outliers does not need to be normal.

/// A bound a figure must keep: at most `bound` (`at_most`), or at least.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub bound: f64,
    pub at_most: bool,
}

/// What a measurement says of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The interval spans the bound: the spread is wider than the margin.
    Undecided,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Self::Met => "yes",
            Self::Missed => "**no**",
            Self::Undecided => {
                "undecided (the interval spans the target, or too few repetitions for one)"
            }
        }
    }
}

/// The 95% confidence interval of the median of `values` (finite ones): the order
/// statistics of ranks n/2 − 0.98·√n and n/2 + 1 + 0.98·√n (1-based, clamped to the
/// sample, so at least 95%). With 10 values it is their whole range; with 30, the 9th to
/// the 22nd. Below [`MIN_VALUES`] values even their whole range covers the median with
/// less than 95%: there is no interval (NaN).
pub fn median_ci(values: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < MIN_VALUES {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let half = 0.98 * n.sqrt();
    let lo = ((n / 2.0 - half).floor() as usize).clamp(1, v.len());
    let hi = ((n / 2.0 + 1.0 + half).ceil() as usize).clamp(1, v.len());
    (v[lo - 1], v[hi - 1])
}

/// The interval as report text, each bound written by `fmt`; "none (fewer than 6
/// values)" where there is none.
pub fn interval_text(values: &[f64], fmt: impl Fn(f64) -> String) -> String {
    let (lo, hi) = median_ci(values);
    if lo.is_nan() {
        format!("none: fewer than {MIN_VALUES} values")
    } else {
        format!("{}–{}", fmt(lo), fmt(hi))
    }
}

/// The fewest values with a 95% interval of their median: the range of 6 covers it with
/// 1 − 2/2⁶ ≈ 96.9%, the range of 5 with only 93.8%.
pub const MIN_VALUES: usize = 6;

impl Target {
    pub fn judge(&self, values: &[f64]) -> Verdict {
        let (lo, hi) = median_ci(values);
        if lo.is_nan() {
            return Verdict::Undecided;
        }
        let (good, bad) = if self.at_most {
            (hi <= self.bound, lo > self.bound)
        } else {
            (lo >= self.bound, hi < self.bound)
        };
        if good {
            Verdict::Met
        } else if bad {
            Verdict::Missed
        } else {
            Verdict::Undecided
        }
    }

    /// How many of `values` (in the order measured) it took to decide: the smallest
    /// count from `min` on after which every longer prefix gives the final verdict;
    /// `None` while the final verdict is undecided.
    pub fn decided_after(&self, values: &[f64], min: usize) -> Option<usize> {
        let last = self.judge(values);
        if last == Verdict::Undecided {
            return None;
        }
        let mut at = values.len();
        for n in (min.min(values.len())..values.len()).rev() {
            if self.judge(&values[..n]) != last {
                break;
            }
            at = n;
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_narrows_with_repetitions() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(median_ci(&ten), (1.0, 10.0));
        let thirty: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(median_ci(&thirty), (9.0, 22.0));
        assert!(median_ci(&[]).0.is_nan());
        // Five values, however close, cannot give a 95% interval: undecided.
        assert!(median_ci(&[1.0; 5]).0.is_nan());
        let t = Target {
            bound: 2.0,
            at_most: true,
        };
        assert_eq!(t.judge(&[1.0; 5]), Verdict::Undecided);
        assert_eq!(t.judge(&[1.0; 6]), Verdict::Met);
    }

    #[test]
    fn a_target_is_met_missed_or_undecided_by_the_interval() {
        let at_most = Target {
            bound: 1.02,
            at_most: true,
        };
        let six = |v: [f64; 6]| at_most.judge(&v);
        assert_eq!(six([1.00, 1.01, 1.00, 1.01, 1.0, 1.01]), Verdict::Met);
        assert_eq!(six([1.03, 1.05, 1.04, 1.06, 1.1, 1.03]), Verdict::Missed);
        assert_eq!(six([1.00, 1.05, 1.01, 1.04, 1.0, 1.05]), Verdict::Undecided);
        let at_least = Target {
            bound: 0.97,
            at_most: false,
        };
        assert_eq!(
            at_least.judge(&[0.8, 0.81, 0.79, 0.8, 0.82, 0.8]),
            Verdict::Missed
        );
        assert_eq!(
            at_least.judge(&[0.98, 0.99, 1.0, 0.99, 0.98, 1.0]),
            Verdict::Met
        );
    }

    #[test]
    fn the_repetitions_it_took_are_counted_from_the_end() {
        let t = Target {
            bound: 1.02,
            at_most: true,
        };
        // Undecided while an early outlier is inside the interval, met once it is not.
        let mut v = vec![1.10, 1.00, 1.01, 1.00, 1.0, 1.01];
        v.extend(std::iter::repeat_n(1.005, 24));
        assert_eq!(t.judge(&v[..6]), Verdict::Undecided);
        let after = t.decided_after(&v, 2).unwrap();
        assert!(after > 6 && after <= v.len(), "{after}");
        assert_eq!(t.judge(&v[..after]), Verdict::Met);
        assert_eq!(t.decided_after(&[1.0, 1.05, 1.0, 1.05, 1.0, 1.05], 1), None);
    }
}
