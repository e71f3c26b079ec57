//! Helpers shared by the benchmarks: guards that undo what a benchmark created (also
//! when it fails), running, signalling and stopping commands and reading settings,
//! mounts and /proc, reading JSON (the clients' result lines and the agent's event
//! records, with serde_json), statistics, machine description and load, number
//! formatting, the date, and the report's head and verdicts.

use std::{
    borrow::Cow,
    fmt::Write as _,
    io::{BufRead as _, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output},
    sync::mpsc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

/// A scratch directory, removed with everything in it when dropped.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn create(path: PathBuf) -> anyhow::Result<Self> {
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("bench: could not remove {}: {e}", self.path.display());
        }
    }
}

/// A cgroup v2 directory made by the benchmark; removed when dropped, after killing
/// anything still in it.
pub struct Cgroup {
    path: PathBuf,
    /// The path relative to the cgroup2 mount, with a leading `/`.
    relative: String,
}

impl Cgroup {
    pub fn create(cgroup2: &Path, name: &str) -> anyhow::Result<Self> {
        let path = cgroup2.join(name);
        if path.exists() {
            remove_cgroup(&path);
        }
        std::fs::create_dir(&path)
            .with_context(|| format!("creating cgroup {}", path.display()))?;
        Ok(Self {
            path,
            relative: format!("/{name}"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn relative(&self) -> &str {
        &self.relative
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.path);
    }
}

/// Removes a (leaf) cgroup directory, killing its processes first if it has any.
pub fn remove_cgroup(path: &Path) {
    let busy = std::fs::read_to_string(path.join("cgroup.procs"))
        .map(|p| !p.trim().is_empty())
        .unwrap_or(false);
    if busy {
        let _ = std::fs::write(path.join("cgroup.kill"), b"1");
    }
    for attempt in 0..50 {
        match std::fs::remove_dir(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                if attempt == 49 {
                    eprintln!("bench: could not remove cgroup {}: {e}", path.display());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Whether `pid` is a process id whose process is gone: what a killed run left under
/// that id is stale.
pub fn dead_pid(pid: &str) -> bool {
    pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists()
}

/// The entries of the directory `dir` as (file name, path); none when it cannot be read.
pub fn dir_entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// Removes a scratch directory an earlier, killed run left, saying so.
pub fn remove_stale_dir(path: &Path) {
    eprintln!("bench: removing stale {}", path.display());
    let _ = std::fs::remove_dir_all(path);
}

/// Removes the cgroup `name` (at `path`) an earlier, killed run left, saying so.
pub fn remove_stale_cgroup(name: &str, path: &Path) {
    eprintln!("bench: removing stale cgroup {name}");
    remove_cgroup(path);
}

/// The mounts in /proc/self/mountinfo, as (mount point, filesystem type).
fn mounts() -> anyhow::Result<Vec<(PathBuf, String)>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let (left, right) = line.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?;
            let fs = right.split_whitespace().next()?;
            Some((PathBuf::from(unescape_mountinfo(mount)), fs.to_owned()))
        })
        .collect())
}

/// The cgroup2 mount point, from /proc/self/mountinfo (never assumed).
pub fn cgroup2_mount() -> anyhow::Result<PathBuf> {
    mounts()?
        .into_iter()
        .find_map(|(mount, fs)| (fs == "cgroup2").then_some(mount))
        .context("no cgroup2 mount in /proc/self/mountinfo")
}

/// The filesystem type of the mount holding `path` (the longest mount point it is
/// under, the last such mount when several are stacked); `?` when unknown.
pub fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut best: Option<(usize, String)> = None;
    for (mount, fs) in mounts().unwrap_or_default() {
        let len = mount.as_os_str().len();
        if path.starts_with(&mount) && best.as_ref().is_none_or(|(l, _)| len >= *l) {
            best = Some((len, fs));
        }
    }
    best.map_or_else(|| "?".to_owned(), |(_, fs)| fs)
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Finds an executable in $PATH or the sbin directories.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a command quietly; Ok when it exited 0, Err with its stderr otherwise.
pub fn run_quiet(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    checked(cmd, what, |out| {
        format!(" {}", String::from_utf8_lossy(&out.stderr).trim())
    })
    .map(drop)
}

/// Runs a command (a benchmark client, `cgwarden exec`) to completion; its output, or an
/// error with its standard output and error.
pub fn output(cmd: &mut Command, what: &str) -> anyhow::Result<Output> {
    checked(cmd, what, |out| {
        format!(
            "\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `cmd` to completion; its output when it exited 0, else the error
/// `WHAT failed (STATUS):` followed by what `failure` says of the output.
fn checked(
    cmd: &mut Command,
    what: &str,
    failure: impl FnOnce(&Output) -> String,
) -> anyhow::Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}):{}", out.status, failure(&out));
    }
    Ok(out)
}

/// Waits up to `timeout` for the child to exit, looking every `poll`: its status, or
/// None when it still runs (the caller decides whether to kill it).
pub fn wait_for(
    child: &mut Child,
    timeout: Duration,
    poll: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(poll);
    }
}

/// Sends each line read from `from` (a child's stdout or stderr), as `wrap` makes it, to
/// `to`, from a thread of its own, until the stream ends or fails or the receiver is
/// gone.
pub fn forward_lines<R, T>(
    from: R,
    to: mpsc::Sender<T>,
    wrap: impl Fn(String) -> T + Send + 'static,
) where
    R: Read + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(wrap(line)).is_err() {
                break;
            }
        }
    });
}

/// The whole number in the environment variable `name` (a benchmark setting), or
/// `default` when it is not set.
pub fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}=`{v}` is not a number")),
        Err(_) => Ok(default),
    }
}

/// `CGWARDEN_BENCH_REPS`, the number of repetitions (at least 1; `default` when not set).
pub fn env_reps(default: u64) -> anyhow::Result<usize> {
    usize::try_from(env_u64("CGWARDEN_BENCH_REPS", default)?.max(1)).context("CGWARDEN_BENCH_REPS")
}

/// The fields of a /proc/PID/stat text after the command name (which may hold spaces
/// and parentheses, so fields are counted after its last `)`): element 0 is field 3 of
/// stat(5), the state; field N is element N - 3.
pub fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when unknown), the unit of the CPU
/// times in /proc/PID/stat.
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The machine's CPU time in ticks, from the `cpu ` line of /proc/stat: user, nice,
/// system, idle, iowait, irq, softirq, steal, ... (None when it cannot be read).
pub fn cpu_ticks() -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect(),
    )
}

/// Sends the signal `sig` (`TERM`, `INT`, `KILL`) to one process by pid with the `kill`
/// command `kill`; errors are ignored (the process may be gone).
pub fn signal(kill: impl AsRef<std::ffi::OsStr>, pid: u32, sig: &str) {
    let _ = Command::new(kill)
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Stops a child of ours: the signal `sig` (with the `kill` command `kill`), then up to
/// `timeout` for it to exit, looking every `poll`, then SIGKILL. Its exit status when it
/// exited within `timeout`, None when it had to be killed.
pub fn stop_child(
    kill: impl AsRef<std::ffi::OsStr>,
    child: &mut Child,
    sig: &str,
    timeout: Duration,
    poll: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    signal(kill, child.id(), sig);
    let status = wait_for(child, timeout, poll)?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(status)
}

/// How a report's `met` column says whether a target was met.
pub fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// `BIN exec --policy POLICY [--events EVENTS] --`: `cgwarden exec`, which runs the
/// command the caller appends under the profile, in a cgroup of its own.
pub fn cgwarden_exec(bin: &Path, policy: &Path, events: Option<&Path>) -> Command {
    cgwarden_exec_with(bin, policy, events, &[])
}

/// As [`cgwarden_exec`], with more `cgwarden exec` options.
pub fn cgwarden_exec_with(
    bin: &Path,
    policy: &Path,
    events: Option<&Path>,
    options: &[&str],
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("exec").arg("--policy").arg(policy).args(options);
    if let Some(events) = events {
        cmd.arg("--events").arg(events);
    }
    cmd.arg("--");
    cmd
}

/// The client program `name` (a binary of the benchmark clients' package,
/// benchclients/src/bin/) next to the `cgwarden` binary `bin`, in the same cargo profile
/// directory; an error saying how to build it when it is missing.
pub fn client_binary(bin: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = bin.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} is missing (it is built by `cargo build --release -p {}`)",
            path.display(),
            super::CLIENTS_PACKAGE
        );
    }
    Ok(path)
}

/// Warns on stderr (`bench NAME: warning: …`) when the 1-minute load average before a
/// run says something else is running.
pub fn warn_if_busy(name: &str, load: (f64, f64)) {
    if load.0 > 0.5 {
        eprintln!(
            "bench {name}: warning: load average {:.2}: something else is running, expect \
             noisy numbers",
            load.0
        );
    }
}

/// One run of a benchmark, from its start to its report: when it began and how loaded
/// the machine was then.
pub struct Run {
    date: String,
    started: Instant,
    load_before: (f64, f64),
}

impl Run {
    /// Notes the date, the time and the load average at the start of the bench.
    pub fn begin() -> Self {
        Self {
            started: Instant::now(),
            date: now_utc(),
            load_before: loadavg(),
        }
    }

    /// The 1- and 5-minute load averages at the start.
    pub fn load_before(&self) -> (f64, f64) {
        self.load_before
    }

    /// The time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The facts for the report, taken now: the machine, how long the bench took and the
    /// load averages after it.
    pub fn end(self) -> RunFacts {
        RunFacts {
            date: self.date,
            machine: machine(),
            took: self.started.elapsed(),
            load: (self.load_before, loadavg()),
        }
    }
}

/// What a report says about its run (see [`Run::end`]).
pub struct RunFacts {
    pub date: String,
    pub machine: String,
    pub took: Duration,
    /// 1- and 5-minute load averages before and after.
    pub load: ((f64, f64), (f64, f64)),
}

impl RunFacts {
    /// The first lines of a report: the `### TITLE` heading and the `- date:` and
    /// `- machine:` lines.
    pub fn head(&self, o: &mut String, title: &str) {
        let _ = writeln!(o, "### {title}\n");
        let _ = writeln!(o, "- date: {}", self.date);
        let _ = writeln!(o, "- machine: {}", self.machine);
    }

    /// The report's `- load average` line, before and after the run; `remark` (empty, or
    /// starting with a space) ends it.
    pub fn load_line(&self, o: &mut String, remark: &str) {
        let ((b1, b5), (a1, a5)) = self.load;
        let _ = writeln!(
            o,
            "- load average (1 min, 5 min): {b1:.2}, {b5:.2} before; {a1:.2}, {a5:.2} after{remark}"
        );
    }
}

/// Prints the report and writes it to `target/bench/NAME.md`.
/// Set for a quick run (`cargo xtask bench --quick`): its reports are not the record.
pub const QUICK_ENV: &str = "CGWARDEN_BENCH_QUICK";

pub fn publish(root: &Path, name: &str, report: &str) -> anyhow::Result<()> {
    println!("{report}");
    // Reports live with the documentation they back (docs/bench/), so a run's numbers
    // are committed with the change they measure; a quick run's stay in target/.
    let quick = std::env::var_os(QUICK_ENV).is_some();
    let out_dir = if quick {
        root.join("target/bench/quick")
    } else {
        root.join("docs/bench")
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join(format!("{name}.md"));
    let report = if quick {
        format!(
            "> A quick run (`cargo xtask bench --quick`): fewer repetitions and smaller \
             loops, for development. Not the record; the full run writes docs/bench/.\n\n{report}"
        )
    } else {
        report.to_owned()
    };
    std::fs::write(&out, report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench {name}: written to {}", out.display());
    Ok(())
}

/// The 1- and 5-minute load averages (NaN when unknown).
pub fn loadavg() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN));
    (it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN))
}

/// A number for the reports, rounded, with thousands separators: 381234.5 -> "381,235"
/// ("n/a" when not finite).
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_owned();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::min)
}

pub fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

/// `uname -r`, CPU count and CPU model, in one line.
pub fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown kernel".to_owned());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("Linux {kernel}, {cpus} CPUs (nproc), {model}")
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Checks that a client ran in the cgroup `expected` (its path below the cgroup2 mount)
/// or, for `None`, in a cgroup of `cgwarden exec`; `actual` is where it says it ran.
pub fn check_cgroup(actual: &str, expected: Option<&str>) -> anyhow::Result<()> {
    let ok = match expected {
        Some(expected) => actual == expected,
        None => actual.starts_with("/cgwarden-exec-"),
    };
    if !ok {
        bail!(
            "the client ran in cgroup `{actual}`, expected {}",
            expected.unwrap_or("/cgwarden-exec-*")
        );
    }
    Ok(())
}

/// A client's result: the first line of its output `out` that is a JSON object with the
/// top-level key `key`, read into `T` (the fields the bench uses; the others are
/// ignored). None when no line is such an object; an error, naming the line, when it
/// does not fit `T`.
pub fn result_line<T: DeserializeOwned>(out: &str, key: &str) -> Option<anyhow::Result<T>> {
    out.lines().filter(|l| l.starts_with('{')).find_map(|line| {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
        object.contains_key(key).then(|| {
            serde_json::from_value(serde_json::Value::Object(object))
                .with_context(|| format!("reading the result line {line}"))
        })
    })
}

/// The fields of one of the agent's event records (a line of its JSON file sink) that
/// the benches read. Lines are read by the million, so the strings are borrowed from
/// the line, and copied only when they hold escapes.
#[derive(Debug, Deserialize)]
pub struct EventLine<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub kind: Option<Cow<'a, str>>,
    pub pid: Option<u64>,
    /// How many identical calls or sends the record stands for; the number of records
    /// dropped, in a `lost` record.
    pub count: Option<u64>,
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub process: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    pub syscall: Option<Cow<'a, str>>,
}

impl<'a> EventLine<'a> {
    pub fn parse(line: &'a [u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(line)
            .with_context(|| format!("reading the event {}", String::from_utf8_lossy(line)))
    }

    /// Whether the record is of the kind `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

/// An optional string field, borrowed from the input where it holds no escapes (serde
/// borrows a `Cow` only when it is the field's own type, not inside an `Option`).
fn borrowed_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(381_234.6), "381,235");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(100_000.0), "100,000");
    }

    #[test]
    fn report_lines() {
        let mut o = String::new();
        let run = RunFacts {
            date: "d".to_owned(),
            machine: "m".to_owned(),
            took: Duration::ZERO,
            load: ((1.0, 2.0), (3.0, 4.5)),
        };
        run.head(&mut o, "T: `x`");
        run.load_line(&mut o, " (r)");
        assert_eq!(
            o,
            "### T: `x`\n\n- date: d\n- machine: m\n- load average (1 min, 5 min): 1.00, \
             2.00 before; 3.00, 4.50 after (r)\n"
        );
    }

    #[test]
    fn stat_fields_follow_the_command_name() {
        let f = stat_fields("42 (a b) c) S 1 42 0").expect("fields");
        assert_eq!(f, ["S", "1", "42", "0"]);
        assert!(stat_fields("no paren").is_none());
    }

    #[test]
    fn client_results() {
        #[derive(Deserialize)]
        struct Sent {
            sent: u64,
            cgroup: String,
        }
        let out = "noise\n{\"a\":1}\n{not json, \"sent\"}\n{\"sent\":5,\"cgroup\":\"/x\"}\n";
        let r: Sent = result_line(out, "sent").expect("line").expect("fits");
        assert_eq!((r.sent, r.cgroup.as_str()), (5, "/x"));
        assert!(result_line::<Sent>(out, "b").is_none());
        // The key must be the object's own, not a nested one's or a string's.
        let nested = "{\"x\":{\"sent\":1},\"y\":\"\\\"sent\\\"\"}\n";
        assert!(result_line::<Sent>(nested, "sent").is_none());
        // A line with the key that does not fit is an error naming the line.
        let bad = result_line::<Sent>("{\"sent\":\"five\"}", "sent").expect("line");
        assert!(format!("{:#}", bad.err().expect("error")).contains("{\"sent\":\"five\"}"));
        assert!(check_cgroup("/x", Some("/x")).is_ok());
        assert!(check_cgroup("/cgwarden-exec-7", None).is_ok());
        assert_eq!(
            check_cgroup("/y", None).unwrap_err().to_string(),
            "the client ran in cgroup `/y`, expected /cgwarden-exec-*"
        );
    }

    #[test]
    fn reads_event_lines() {
        // The fields of the record itself, in any order, not those of nested objects.
        let l = br#"{"args":{"pid":1,"kind":"x","count":9},"count":2,"pid":7,"kind":"syscall","syscall":"getppid"}"#;
        let e = EventLine::parse(l).expect("parsed");
        assert!(e.is("syscall") && !e.is("lost"));
        assert_eq!((e.pid, e.count), (Some(7), Some(2)));
        assert_eq!(e.syscall.as_deref(), Some("getppid"));
        assert!(e.process.is_none());
        // Strings are borrowed from the line unless they hold escapes, which are read.
        assert!(matches!(e.kind, Some(Cow::Borrowed("syscall"))));
        let l = br#"{"kind":"sendmsg","process":"a \"b\" \\ c","pid":null}"#;
        let e = EventLine::parse(l).expect("parsed");
        assert!(matches!(e.process.as_ref(), Some(Cow::Owned(p)) if p == r#"a "b" \ c"#));
        assert_eq!((e.pid, e.count), (None, None));
        assert!(EventLine::parse(b"{\"kind\":\"sendmsg\",").is_err());
        assert!(EventLine::parse(b"{\"pid\":\"7\"}").is_err());
    }

    #[test]
    fn waits_for_a_child_and_forwards_its_lines() {
        let mut child = Command::new("sh")
            .args(["-c", "echo a; echo b"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let (tx, rx) = mpsc::channel();
        forward_lines(child.stdout.take().expect("stdout"), tx, |l| l);
        let status = wait_for(
            &mut child,
            Duration::from_secs(10),
            Duration::from_millis(5),
        );
        assert!(status.expect("wait").is_some_and(|s| s.success()));
        assert_eq!(rx.iter().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn mounts_and_their_types() {
        assert_eq!(fs_type(Path::new("/proc/self")), "proc");
        assert!(cgroup2_mount().is_ok_and(|m| fs_type(&m) == "cgroup2"));
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), "/a b\\c");
    }

    #[test]
    fn stops_a_child() {
        use std::os::unix::process::ExitStatusExt as _;
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let status = stop_child(
            "kill",
            &mut child,
            "TERM",
            Duration::from_secs(10),
            Duration::from_millis(5),
        )
        .expect("wait");
        assert_eq!(status.and_then(|s| s.signal()), Some(15));
    }

    #[test]
    fn reads_the_machines_cpu_ticks() {
        assert!(cpu_ticks().is_some_and(|v| v.len() >= 8));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
