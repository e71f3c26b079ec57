//! The benchmark clients, `connbench`, `eventstorm` and `syscallbench` (src/bin/), that
//! the `cargo xtask bench` harnesses build and run, and what they share: the
//! `--flag value` command line, joining the cgroup under test, splitting a run into
//! rounds, the median, and printing the one JSON line (or the error and exit status 1).

use std::{
    io::{self, Write as _},
    path::Path,
};

/// An invalid-input error with the message `what`.
pub fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

/// One `--flag value` pair of a command line.
pub struct Flag {
    pub name: String,
    pub value: String,
}

impl Flag {
    /// The value as a whole number (`--flag: `x` is not a number` otherwise).
    pub fn number(&self) -> io::Result<u64> {
        self.value
            .parse::<u64>()
            .map_err(|_| bad(&format!("{}: `{}` is not a number", self.name, self.value)))
    }

    /// The error for a flag the client does not know: `unknown flag F; usage: USAGE`.
    pub fn unknown(&self, usage: &str) -> io::Error {
        bad(&format!("unknown flag {}; usage: {usage}", self.name))
    }
}

/// The command line as `--flag value` pairs, in order; a flag without a value is an
/// error (`F needs a value`) where it stands.
pub fn flags(mut it: impl Iterator<Item = String>) -> impl Iterator<Item = io::Result<Flag>> {
    std::iter::from_fn(move || {
        let name = it.next()?;
        Some(match it.next() {
            Some(value) => Ok(Flag { name, value }),
            None => Err(bad(&format!("{name} needs a value"))),
        })
    })
}

/// Moves this process into the cgroup v2 directory `join` (when given), then returns the
/// process's cgroup v2 path, with `"` and `\` replaced so it can stand in a JSON string.
pub fn enter_cgroup(join: Option<&Path>) -> io::Result<String> {
    if let Some(dir) = join {
        std::fs::write(dir.join("cgroup.procs"), b"0").map_err(|e| {
            io::Error::new(e.kind(), format!("joining cgroup {}: {e}", dir.display()))
        })?;
    }
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")?
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        .unwrap_or_default();
    Ok(cgroup.replace(['"', '\\'], "_"))
}

/// Prints the client's result line, or `NAME: error` on standard error and exits with
/// status 1.
pub fn finish(name: &str, result: io::Result<String>) {
    match result {
        Ok(line) => {
            let mut out = io::stdout().lock();
            // Nothing useful to do when stdout is gone.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
}

/// `total` split into at most `rounds` nearly equal, non-zero parts (none for 0).
pub fn split(total: u64, rounds: u64) -> Vec<u64> {
    if total == 0 {
        return Vec::new();
    }
    let rounds = rounds.clamp(1, total);
    (0..rounds)
        .map(|i| total / rounds + u64::from(i < total % rounds))
        .collect()
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `values` as the inside of a JSON array, each with `decimals` decimals.
pub fn json_list(values: impl IntoIterator<Item = f64>, decimals: usize) -> String {
    values
        .into_iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_total() {
        assert_eq!(split(0, 5), Vec::<u64>::new());
        assert_eq!(split(7, 3), [3, 2, 2]);
        assert_eq!(split(2, 10), [1, 1]);
    }

    #[test]
    fn flags_pair_up_in_order() {
        let args = ["--a", "1", "--b"].map(str::to_owned);
        let mut it = flags(args.into_iter());
        let a = it.next().unwrap().unwrap();
        assert_eq!((a.name.as_str(), a.number().unwrap()), ("--a", 1));
        assert_eq!(
            it.next().unwrap().err().unwrap().to_string(),
            "--b needs a value"
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn median_and_list() {
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(json_list([1.26, 2.0], 1), "1.3,2.0");
    }
}
