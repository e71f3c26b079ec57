//! The client of `cargo xtask bench syscalls`: times syscall loops and a benign workload
//! in one process and prints one JSON line, so process start-up is never part of a
//! measurement.
//!
//! ```text
//! syscallbench [--getppid N] [--mix N] [--gcc N] [--rounds K] [--pause-ms MS]
//!              [--scratch DIR] [--join-cgroup DIR] [--hold-ms MS] [--spread-cpus 1]
//! ```
//! - `--getppid N`: a tight loop of N `getppid()` calls (a direct syscall in glibc, never
//!   cached); result `getppid_ns`, ns per call;
//! - `--mix N`: N iterations of a syscall-heavy benign mix, 11 syscalls each: `openat`,
//!   `read` (4 KiB), `close` of a file in the scratch directory, `stat` of it, `pread`
//!   of a file kept open, a 64-byte `write` to /dev/null, a 64-byte `write` into a pipe
//!   and the `read` back, `getpid`, `mmap` of 64 KiB anonymous memory (one page
//!   touched) and its `munmap`, plus a `clock_gettime` (vDSO, no syscall); result
//!   `mix_ns`, ns per iteration;
//! - `--gcc N`: N compilations of a small C file (`gcc -O2 -c`, standard headers
//!   included) in the scratch directory, each one `gcc` process with its `cc1` and `as`
//!   children; result `gcc_ms`, wall time per compilation;
//! - `--rounds K` (default 20): every workload is timed in K rounds (of N/K iterations;
//!   gcc: of N/K compilations, at least one when N > 0), the rounds of the workloads
//!   interleaved, each round after an untimed warm-up (a tenth of a round, one
//!   compilation); a workload's result is its median round, and every round is printed
//!   too;
//! - `--pause-ms MS` (default 0): sleep between rounds, e.g. so an agent reporting every
//!   call drains its ring buffer before the next round;
//! - `--scratch DIR` (default: the current directory): where the mix's files and the
//!   compiler's input, output and temporary files go (removed at the end);
//! - `--join-cgroup DIR`: move this process into the cgroup v2 directory DIR first;
//! - `--hold-ms MS`: after printing the result, stay alive MS milliseconds (so the
//!   harness can read a monitor's per-program counters before it is torn down);
//! - `--spread-cpus 1`: run round i on the i-th allowed CPU (round-robin, gcc's
//!   processes included); a workload's result is then the mean over the CPUs of its
//!   median round on each, so where the scheduler happens to put the process does not
//!   decide the result (some tracers cost more on one CPU than on another). The
//!   getppid medians per CPU are printed too (`getppid_ns_by_cpu`, for `cpus`).
//!
//! `getppid_calls` counts every `getppid` made, warm-up included, so the harness can
//! check that a monitor saw all of them; `elapsed_ms` is the time from start to the
//! result, so the harness can tell a monitor's own start and stop from the workload.

use cgwarden_benchclients::{bad, enter_cgroup, finish, flags, json_list, median, split};
use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

struct Args {
    getppid: u64,
    mix: u64,
    gcc: u64,
    rounds: u64,
    pause: Duration,
    scratch: PathBuf,
    join: Option<PathBuf>,
    hold: Duration,
    spread: bool,
}

fn main() {
    let started = Instant::now();
    let mut hold = Duration::ZERO;
    let result = parse(std::env::args().skip(1)).and_then(|a| {
        hold = a.hold;
        run(&a, started)
    });
    finish("syscallbench", result);
    if !hold.is_zero() {
        std::thread::sleep(hold);
    }
}

fn parse(it: impl Iterator<Item = String>) -> io::Result<Args> {
    let mut args = Args {
        getppid: 0,
        mix: 0,
        gcc: 0,
        rounds: 20,
        pause: Duration::ZERO,
        scratch: PathBuf::from("."),
        join: None,
        hold: Duration::ZERO,
        spread: false,
    };
    for flag in flags(it) {
        let flag = flag?;
        match flag.name.as_str() {
            "--getppid" => args.getppid = flag.number()?,
            "--mix" => args.mix = flag.number()?,
            "--gcc" => args.gcc = flag.number()?,
            "--rounds" => args.rounds = flag.number()?.max(1),
            "--pause-ms" => args.pause = Duration::from_millis(flag.number()?),
            "--scratch" => args.scratch = PathBuf::from(&flag.value),
            "--join-cgroup" => args.join = Some(PathBuf::from(&flag.value)),
            "--hold-ms" => args.hold = Duration::from_millis(flag.number()?),
            "--spread-cpus" => args.spread = flag.number()? != 0,
            _ => {
                return Err(flag.unknown(
                    "syscallbench [--getppid N] [--mix N] [--gcc N] [--rounds K] \
                     [--pause-ms MS] [--scratch DIR] [--join-cgroup DIR] [--hold-ms MS] \
                     [--spread-cpus 1]",
                ));
            }
        }
    }
    Ok(args)
}

fn run(args: &Args, started: Instant) -> io::Result<String> {
    let cgroup = enter_cgroup(args.join.as_deref())?;

    let pid = std::process::id();
    let dir = args.scratch.join(format!("syscallbench-{pid}"));
    std::fs::create_dir_all(&dir)?;
    let result = measure(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let m = result?;

    let list = |v: &[(usize, f64)]| json_list(v.iter().map(|(_, x)| *x), 1);
    let opt = |v: &[(usize, f64)]| {
        if v.is_empty() {
            "null".to_owned()
        } else {
            format!("{:.2}", spread_median(v, m.cpus.len()))
        }
    };
    let by_cpu = (0..m.cpus.len())
        .map(|slot| {
            slot_median(&m.getppid, slot).map_or_else(|| "null".to_owned(), |x| format!("{x:.2}"))
        })
        .collect::<Vec<_>>()
        .join(",");
    let cpus = m
        .cpus
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    Ok(format!(
        "{{\"pid\":{pid},\"cgroup\":\"{}\",\"rounds\":{},\"getppid_calls\":{},\
         \"getppid_ns\":{},\"mix_iters\":{},\"mix_ns\":{},\"gcc_runs\":{},\"gcc_ms\":{},\
         \"elapsed_ms\":{:.1},\"cpus\":[{cpus}],\"getppid_ns_by_cpu\":[{by_cpu}],\
         \"getppid_ns_rounds\":[{}],\"mix_ns_rounds\":[{}],\
         \"gcc_ms_rounds\":[{}]}}",
        cgroup,
        args.rounds,
        m.getppid_calls,
        opt(&m.getppid),
        m.mix_iters,
        opt(&m.mix),
        m.gcc_runs,
        opt(&m.gcc),
        started.elapsed().as_secs_f64() * 1e3,
        list(&m.getppid),
        list(&m.mix),
        list(&m.gcc),
    ))
}

/// Rounds as (CPU slot, value); `cpus` the CPUs the slots stand for.
#[derive(Default)]
struct Measured {
    cpus: Vec<usize>,
    getppid: Vec<(usize, f64)>,
    getppid_calls: u64,
    mix: Vec<(usize, f64)>,
    mix_iters: u64,
    gcc: Vec<(usize, f64)>,
    gcc_runs: u64,
}

/// The mean over CPU slots of each slot's median.
fn spread_median(v: &[(usize, f64)], slots: usize) -> f64 {
    let medians: Vec<f64> = (0..slots.max(1))
        .filter_map(|slot| slot_median(v, slot))
        .collect();
    medians.iter().sum::<f64>() / medians.len() as f64
}

/// The median of the rounds on CPU slot `slot`; None when it had none.
fn slot_median(v: &[(usize, f64)], slot: usize) -> Option<f64> {
    let x: Vec<f64> = v
        .iter()
        .filter(|(s, _)| *s == slot)
        .map(|(_, x)| *x)
        .collect();
    (!x.is_empty()).then(|| median(&x))
}

/// The CPUs this process may run on.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size is that of `set`.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return Err(os_error("sched_getaffinity"));
    }
    // SAFETY: CPU_ISSET reads the set filled above.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Moves this process to one CPU (its children inherit it).
fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`; CPU_SET writes into the local set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is this thread; the size is that of `set`.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(os_error("sched_setaffinity"));
    }
    Ok(())
}

fn measure(args: &Args, dir: &Path) -> io::Result<Measured> {
    let mut m = Measured::default();
    let allowed = allowed_cpus()?;
    m.cpus = if args.spread && allowed.len() > 1 {
        allowed.clone()
    } else {
        vec![allowed.first().copied().unwrap_or(0)]
    };
    let mix = if args.mix > 0 {
        Some(Mix::new(dir)?)
    } else {
        None
    };
    let gcc = if args.gcc > 0 {
        Some(Gcc::new(dir)?)
    } else {
        None
    };
    let getppid_rounds = split(args.getppid, args.rounds);
    let mix_rounds = split(args.mix, args.rounds);
    let gcc_rounds = split(args.gcc, args.rounds);

    // Untimed warm-up on every CPU used: page in the code, the files, the compiler.
    for &cpu in &m.cpus {
        if m.cpus.len() > 1 {
            pin(cpu)?;
        }
        if let Some(&n) = getppid_rounds.first() {
            m.getppid_calls += getppid_loop((n / 10).max(1));
        }
        if let (Some(mix), Some(&n)) = (&mix, mix_rounds.first()) {
            mix.run((n / 10).max(1))?;
        }
    }
    if let Some(gcc) = &gcc {
        gcc.run()?;
    }

    for round in 0..args.rounds as usize {
        let slot = round % m.cpus.len();
        if m.cpus.len() > 1 {
            pin(m.cpus[slot])?;
        }
        if round > 0 && !args.pause.is_zero() {
            std::thread::sleep(args.pause);
        }
        if let Some(&n) = getppid_rounds.get(round) {
            let start = Instant::now();
            m.getppid_calls += getppid_loop(n);
            m.getppid
                .push((slot, start.elapsed().as_nanos() as f64 / n as f64));
        }
        if let (Some(mix), Some(&n)) = (&mix, mix_rounds.get(round)) {
            let start = Instant::now();
            mix.run(n)?;
            m.mix
                .push((slot, start.elapsed().as_nanos() as f64 / n as f64));
            m.mix_iters += n;
        }
        if let (Some(gcc), Some(&n)) = (&gcc, gcc_rounds.get(round)) {
            let start = Instant::now();
            for _ in 0..n {
                gcc.run()?;
            }
            m.gcc
                .push((slot, start.elapsed().as_secs_f64() * 1e3 / n as f64));
            m.gcc_runs += n;
        }
    }
    Ok(m)
}

/// `n` getppid calls; returns `n`.
fn getppid_loop(n: u64) -> u64 {
    for _ in 0..n {
        // SAFETY: getppid has no arguments and cannot fail.
        std::hint::black_box(unsafe { libc::getppid() });
    }
    n
}

fn os_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| bad("path with a NUL byte"))
}

/// The syscall mix: its files and descriptors, closed when dropped.
struct Mix {
    file: CString,
    kept: libc::c_int,
    null: libc::c_int,
    pipe: [libc::c_int; 2],
}

const MIX_FILE_BYTES: usize = 4096;
const MIX_MAP_BYTES: usize = 64 * 1024;

impl Mix {
    fn new(dir: &Path) -> io::Result<Self> {
        let path = dir.join("mix.dat");
        let data: Vec<u8> = (0..MIX_FILE_BYTES).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, data)?;
        let file = c_path(&path)?;
        let mut mix = Self {
            file,
            kept: -1,
            null: -1,
            pipe: [-1, -1],
        };
        // SAFETY: plain syscalls on valid NUL-terminated paths and a 2-int array; the
        // descriptors are owned by `mix` and closed in Drop.
        unsafe {
            mix.kept = libc::open(mix.file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if mix.kept < 0 {
                return Err(os_error("open mix.dat"));
            }
            mix.null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if mix.null < 0 {
                return Err(os_error("open /dev/null"));
            }
            if libc::pipe2(mix.pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err(os_error("pipe2"));
            }
        }
        Ok(mix)
    }

    fn run(&self, n: u64) -> io::Result<()> {
        let mut buf = [0u8; MIX_FILE_BYTES];
        let small = [0x5au8; 64];
        let mut sum = 0u64;
        for _ in 0..n {
            // SAFETY: plain syscalls on descriptors owned by `self`, buffers of the sizes
            // passed, a valid path, and an anonymous mapping unmapped before the end of
            // the iteration.
            unsafe {
                let fd = libc::openat(
                    libc::AT_FDCWD,
                    self.file.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    return Err(os_error("openat"));
                }
                let got = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                libc::close(fd);
                if got != MIX_FILE_BYTES as isize {
                    return Err(os_error("read"));
                }
                sum += u64::from(buf[17]);
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(self.file.as_ptr(), &mut st) != 0 {
                    return Err(os_error("stat"));
                }
                sum += st.st_size as u64;
                if libc::pread(self.kept, buf.as_mut_ptr().cast(), 512, 1024) != 512 {
                    return Err(os_error("pread"));
                }
                if libc::write(self.null, small.as_ptr().cast(), small.len()) != 64 {
                    return Err(os_error("write /dev/null"));
                }
                if libc::write(self.pipe[1], small.as_ptr().cast(), small.len()) != 64 {
                    return Err(os_error("write pipe"));
                }
                if libc::read(self.pipe[0], buf.as_mut_ptr().cast(), small.len()) != 64 {
                    return Err(os_error("read pipe"));
                }
                sum += libc::getpid() as u64;
                let map = libc::mmap(
                    std::ptr::null_mut(),
                    MIX_MAP_BYTES,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if map == libc::MAP_FAILED {
                    return Err(os_error("mmap"));
                }
                map.cast::<u8>().write_volatile(1);
                libc::munmap(map, MIX_MAP_BYTES);
                let mut ts: libc::timespec = std::mem::zeroed();
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
                sum += ts.tv_nsec as u64;
            }
        }
        std::hint::black_box(sum);
        Ok(())
    }
}

impl Drop for Mix {
    fn drop(&mut self) {
        for fd in [self.kept, self.null, self.pipe[0], self.pipe[1]] {
            if fd >= 0 {
                // SAFETY: descriptors owned by `self`, closed once.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// A small C file and how to compile it.
struct Gcc {
    dir: PathBuf,
    src: PathBuf,
    out: PathBuf,
}

const C_SOURCE: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

struct entry { char key[32]; uint64_t value; struct entry *next; };

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ULL; }
    return h;
}

struct table { struct entry **slots; size_t n; };

static int put(struct table *t, const char *key, uint64_t value) {
    size_t i = hash(key) % t->n;
    for (struct entry *e = t->slots[i]; e; e = e->next)
        if (strcmp(e->key, key) == 0) { e->value = value; return 0; }
    struct entry *e = calloc(1, sizeof *e);
    if (!e) return -1;
    snprintf(e->key, sizeof e->key, "%s", key);
    e->value = value;
    e->next = t->slots[i];
    t->slots[i] = e;
    return 1;
}

static int compare(const void *a, const void *b) {
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    return x->value < y->value ? -1 : x->value > y->value;
}

int main(int argc, char **argv) {
    struct table t = { calloc(1024, sizeof(struct entry *)), 1024 };
    char line[256];
    uint64_t n = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (put(&t, line, n++) < 0) return 1;
    }
    struct entry **all = malloc(n * sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < t.n; i++)
        for (struct entry *e = t.slots[i]; e; e = e->next) all[k++] = e;
    qsort(all, k, sizeof *all, compare);
    for (size_t i = 0; i < k && i < (size_t)(argc > 1 ? atoi(argv[1]) : 10); i++)
        printf("%s %llu\n", all[i]->key, (unsigned long long)all[i]->value);
    return 0;
}
"#;

impl Gcc {
    fn new(dir: &Path) -> io::Result<Self> {
        let src = dir.join("bench.c");
        std::fs::write(&src, C_SOURCE)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            src,
            out: dir.join("bench.o"),
        })
    }

    fn run(&self) -> io::Result<()> {
        let out = Command::new("gcc")
            .args(["-O2", "-Wall", "-c"])
            .arg(&self.src)
            .arg("-o")
            .arg(&self.out)
            .env("TMPDIR", &self.dir)
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("running gcc: {e}")))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "gcc failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }
}
