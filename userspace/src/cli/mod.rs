//! The command line: one module per subcommand, each with its arguments and what it
//! does. `run`, `exec` and a live `learn` load the kernel side; the others read files
//! or ask the running agent over its control socket.

mod check;
mod events;
mod exec;
mod generate;
mod learn;
mod posture;
mod profile;
mod reload;
mod report;
mod run;
mod status;
mod uninstall;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Where `run` pins its links and maps.
pub const DEFAULT_STATE_DIR: &str = "/sys/fs/bpf/cgwarden";

/// `--version`: the version and the build id the pins are checked against.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (build {})",
        env!("CARGO_PKG_VERSION"),
        cgwarden::bpf::build_id()
    )
});

/// Kernel-level egress and syscall monitor for containers.
#[derive(Parser)]
#[command(version = VERSION.as_str(), about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the agent in the foreground: apply profiles to the cgroups they select.
    Run(run::RunArgs),
    /// Run one command in a fresh cgroup under a profile.
    Exec(exec::Args),
    /// Validate profiles; print each error as file:line:column.
    Check(check::Args),
    /// Ask the running agent to reload its profiles; a bad set keeps the running ones.
    Reload(reload::Args),
    /// Show the running agent's profiles, monitored cgroups and counters.
    Status(status::Args),
    /// Every container's configuration checked against the CIS Docker Benchmark's
    /// runtime section: a table per container (check, verdict, evidence) and its total.
    /// Asks the running agent; with no agent running, reads the host itself.
    Posture(posture::Args),
    /// Follow the running agent's live events as JSON lines, until interrupted (what
    /// was written before is in the agent's sinks).
    Events(events::Args),
    /// Summarise an events file per container: egress denials, syscall attempts with the
    /// processes behind them, sysctl writes.
    Report(report::Args),
    /// Write the tightest profile that allows what a workload did: from an events file
    /// (record it with a profile in audit mode, `report: all` and `dns: {report: true}`)
    /// or by watching a running container for a while. With --check, say what a
    /// profile would deny instead.
    Learn(learn::Args),
    /// Write a profile from a container definition users already have.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Write shell completions or man pages (`cargo xtask completions` writes both).
    #[command(subcommand, hide = true)]
    Generate(generate::Generate),
    /// Remove every pinned link and map: enforcement ends.
    Uninstall(uninstall::Args),
}

/// How a command prints its answer.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl From<Output> for cgwarden::learn::check::Format {
    fn from(o: Output) -> Self {
        match o {
            Output::Table => Self::Table,
            Output::Json => Self::Json,
        }
    }
}

impl Command {
    /// Whether the command only reads and prints, so that a reader that goes away
    /// (`cgwarden events | head`) should end it quietly, as it ends `cat`.
    /// Commands that hold the kernel's state (`run`, `exec`, a live `learn`, which
    /// releases the containers it holds at the gate when it stops) never die of it.
    pub fn only_prints(&self) -> bool {
        match self {
            Self::Check(_)
            | Self::Reload(_)
            | Self::Status(_)
            | Self::Posture(_)
            | Self::Events(_)
            | Self::Report(_)
            | Self::Profile(_)
            | Self::Generate(_) => true,
            Self::Learn(a) => !a.is_live(),
            Self::Run(_) | Self::Exec(_) | Self::Uninstall(_) => false,
        }
    }

    /// The agent logs what it does; one-shot commands only warnings.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Self::Run(_) => "info",
            _ => "warn",
        }
    }
}

/// Runs a subcommand; its exit code.
pub fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => run::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Check(args) => Ok(check::run(&args)),
        Command::Reload(args) => reload::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Posture(args) => posture::run(&args),
        Command::Events(args) => events::run(args),
        Command::Report(args) => report::run(&args),
        Command::Learn(args) => learn::run(args),
        Command::Profile(what) => profile::run(what),
        Command::Generate(what) => generate::run(what),
        Command::Uninstall(args) => uninstall::run(&args),
    }
}

/// The async runtime the commands that load the kernel side run on.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("cgwarden").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn exports_go_with_learning_only() {
        let cli = parse(&[
            "learn",
            "--events",
            "e.jsonl",
            "--export",
            "networkpolicy:np.yaml",
            "--export",
            "cilium:c.yaml",
            "--pod-label",
            "app=web",
        ])
        .unwrap();
        let Command::Learn(a) = cli.command else {
            panic!("not learn")
        };
        assert_eq!(a.exports.len(), 2);
        assert_eq!(a.pod_labels[0].key, "app");
        for bad in [
            &[
                "exec",
                "--policy",
                "p.yaml",
                "--export",
                "cilium:c.yaml",
                "--",
                "true",
            ][..],
            &[
                "exec",
                "--learn",
                "l.yaml",
                "--merge",
                "m.yaml",
                "--export",
                "cilium:c.yaml",
                "--",
                "true",
            ],
            &["learn", "--events", "e", "--pod-label", "app=web"],
            &[
                "learn",
                "--events",
                "e",
                "--check",
                "p.yaml",
                "--export",
                "cilium:c.yaml",
            ],
            &["learn", "--events", "e", "--export", "calico:c.yaml"],
            // Learn-only options next to a profile would be silently ignored.
            &[
                "exec",
                "--policy",
                "p.yaml",
                "--seccomp",
                "s.json",
                "--",
                "true",
            ],
            &[
                "exec", "--policy", "p.yaml", "--merge", "m.yaml", "--", "true",
            ],
            &[
                "exec",
                "--check",
                "p.yaml",
                "--seccomp",
                "s.json",
                "--",
                "true",
            ],
            &["learn", "--events", "e", "-o", "json"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(
            parse(&[
                "exec",
                "--learn",
                "l.yaml",
                "--seccomp",
                "s.json",
                "--export",
                "cilium:c.yaml",
                "--",
                "true"
            ])
            .is_ok()
        );
    }
}
