//! `cargo xtask`: everything the project needs done on a machine, in one place.
//!
//! - `setup`: install, idempotently, what building and testing need (seconds when done);
//! - `build`: the eBPF object and the agent that embeds it;
//! - `run [-- ARGS]`: the agent on the default profile (or with ARGS);
//! - `test`: every test, unit and integration (root required);
//! - `image [--tag T]`: the agent's container image, without a registry;
//! - `bench`: the benchmarks.

mod bench;
#[cfg(test)]
mod docs_links;
mod engines;
mod image;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain and test dependencies (idempotent).
    Setup,
    /// Build the eBPF object and the agent.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Run the agent; without arguments on policies/default.yaml.
    Run {
        #[arg(long)]
        release: bool,
        /// Arguments for `cgwarden` instead of `run --policy policies/default.yaml`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test: unit tests and integration tests against the real kernel.
    Test {
        /// Extra arguments passed to `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build the agent's container image (no registry, no base image).
    Image {
        #[arg(long, default_value = image::DEFAULT_TAG)]
        tag: String,
        /// From the debug build (what the tests use) instead of the release build.
        #[arg(long)]
        debug: bool,
    },
    /// Write shell completions (bash, zsh, fish) into target/completions and man pages
    /// into target/man, from the command line's own definition.
    Completions,
    /// Run benchmarks: `egress`, `events`, `syscalls` (default: all).
    Bench {
        /// Which benchmark.
        which: Option<String>,
        /// A reduced run for development (one repetition, smaller loops, one events
        /// file system: about 70 s for all three here): its reports go to
        /// target/bench/quick/, never over the committed ones in docs/bench/. Any
        /// CGWARDEN_BENCH_* variable set still wins.
        #[arg(long)]
        quick: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse().task) {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    let root = workspace_root();
    match task {
        Task::Setup => setup::setup(),
        Task::Build { release } => {
            setup::setup()?;
            build(&root, release)
        }
        Task::Run { release, args } => {
            setup::setup()?;
            build(&root, release)?;
            let bin = binary(&root, release);
            let args = if args.is_empty() {
                vec![
                    "run".to_owned(),
                    "--policy".to_owned(),
                    root.join("policies/default.yaml").display().to_string(),
                ]
            } else {
                args
            };
            let status = Command::new(&bin)
                .args(&args)
                .status()
                .with_context(|| format!("running {}", bin.display()))?;
            if !status.success() {
                bail!("cgwarden exited with {status}");
            }
            Ok(())
        }
        Task::Test { args } => {
            setup::setup()?;
            require_root("the integration tests load eBPF programs")?;
            build(&root, false)?;
            // The engines the tests run containers in, and the agent's own image.
            engines::dockerd()?;
            let image = "cgwarden:test";
            image::build(&root, &binary(&root, false), image)?;
            let mut test = cargo(&root);
            // Every test binary runs even when one fails: one failure must not hide the others.
            test.args(["test", "--workspace", "--no-fail-fast"])
                .args(&args)
                .env("CGWARDEN_BIN", binary(&root, false))
                .env("CGWARDEN_IMAGE", image)
                .env(
                    "CGWARDEN_KUBERNETES_VALIDATE",
                    setup::kubernetes_validate_path(),
                );
            run_with_deadline(&mut test, TEST_DEADLINE, "cargo test")
        }
        Task::Image { tag, debug } => {
            setup::setup()?;
            require_root("docker import needs the Docker daemon")?;
            build(&root, !debug)?;
            image::build(&root, &binary(&root, !debug), &tag)
        }
        Task::Completions => {
            setup::setup()?;
            build(&root, false)?;
            completions(&root, &binary(&root, false))
        }
        Task::Bench { which, quick } => {
            setup::setup()?;
            require_root("the benchmarks load eBPF programs")?;
            build(&root, true)?;
            if quick {
                bench::quick();
            }
            bench::run(&root, &binary(&root, true), which.as_deref())
        }
    }
}

/// A hung test must fail the run with a message, not eat CI's whole time budget.
const TEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

fn run_with_deadline(
    cmd: &mut Command,
    deadline: std::time::Duration,
    what: &str,
) -> anyhow::Result<()> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {what}"))?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{what} failed ({status})");
            }
            return Ok(());
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{what} still ran after {} s; a test hangs",
                deadline.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn build(root: &Path, release: bool) -> anyhow::Result<()> {
    let mut cmd = cargo(root);
    cmd.args(["build", "--workspace", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    cmd.status_checked("cargo build")
}

/// `cargo xtask completions`: the files packagers install, written by the binary
/// itself (`cgwarden generate`, hidden).
fn completions(root: &Path, bin: &Path) -> anyhow::Result<()> {
    let dir = root.join("target/completions");
    std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
    for (shell, file) in [
        ("bash", "cgwarden.bash"),
        ("zsh", "_cgwarden"),
        ("fish", "cgwarden.fish"),
    ] {
        let out = Command::new(bin)
            .args(["generate", "completion", shell])
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "{} generate completion {shell}: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(dir.join(file), out.stdout)?;
    }
    let man = root.join("target/man");
    let status = Command::new(bin)
        .args(["generate", "man"])
        .arg(&man)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    if !status.success() {
        bail!("{} generate man failed ({status})", bin.display());
    }
    println!(
        "completions in {} (bash: /usr/share/bash-completion/completions/cgwarden, zsh: a directory on $fpath, fish: ~/.config/fish/completions/); man pages in {} (/usr/share/man/man1/)",
        dir.display(),
        man.display()
    );
    Ok(())
}

fn binary(root: &Path, release: bool) -> PathBuf {
    root.join("target")
        .join(if release { "release" } else { "debug" })
        .join("cgwarden")
}

fn require_root(why: &str) -> anyhow::Result<()> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        bail!("this task must run as root: {why}");
    }
    Ok(())
}

/// The host cargo that runs xtask (rustup's), in the workspace root.
fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command and turns a failure into one sentence.
trait StatusChecked {
    fn status_checked(&mut self, what: &str) -> anyhow::Result<()>;
}

impl StatusChecked for Command {
    fn status_checked(&mut self, what: &str) -> anyhow::Result<()> {
        let status = self
            .status()
            .with_context(|| format!("could not start {what}"))?;
        if !status.success() {
            bail!("{what} failed ({status})");
        }
        Ok(())
    }
}
