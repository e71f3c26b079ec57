//! Subcommands: `run` (the agent), `exec` (one command under a profile), `check`,
//! and the clients of a running agent (`reload`, `status`, `events`, `uninstall`).

mod agent;
mod client;
mod generate;

use std::{ffi::OsString, net::SocketAddr, path::PathBuf};

use cgwarden::{
    control,
    learn::export::{ExportSpec, PodLabel},
    output::SinkSpec,
};
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
    Run(agent::RunArgs),
    /// Run one command in a fresh cgroup under a profile.
    Exec {
        /// The profile file.
        #[arg(long, required_unless_present_any = ["learn", "check"])]
        policy: Option<PathBuf>,
        /// Learn mode: run the command with everything reported and nothing refused,
        /// then write the tightest profile that allows what it did to this file.
        #[arg(long, conflicts_with_all = ["policy", "check"])]
        learn: Option<PathBuf>,
        /// With --learn: also write an OCI seccomp profile of every syscall it used.
        // `requires` alone lets `--policy` through (`learn` conflicts with it): a
        // learn-only option given with a profile would be silently ignored.
        #[arg(long, requires = "learn", conflicts_with_all = ["policy", "check"])]
        seccomp: Option<PathBuf>,
        /// With --learn: learn on top of this profile: keep every line of it, add only
        /// what is new, print the lines added on standard error.
        #[arg(long, requires = "learn", conflicts_with_all = ["policy", "check"])]
        merge: Option<PathBuf>,
        /// With --learn: also write a Kubernetes network policy of the learned egress,
        /// as networkpolicy:FILE (networking.k8s.io/v1 NetworkPolicy) or cilium:FILE
        /// (cilium.io/v2 CiliumNetworkPolicy); repeatable.
        #[arg(
            long = "export",
            value_name = "FORMAT:FILE",
            requires = "learn",
            // `requires` alone lets `--policy` through: `learn` conflicts with it.
            conflicts_with_all = ["policy", "check", "merge"]
        )]
        exports: Vec<ExportSpec>,
        /// With --export: a label KEY=VALUE the policy's pod selector matches
        /// (repeatable; unset: every pod of the namespace).
        #[arg(long = "pod-label", value_name = "KEY=VALUE", requires = "exports")]
        pod_labels: Vec<PodLabel>,
        /// Run the command under this profile forced to audit mode, then list on
        /// standard error what enforce mode would have denied or reported; exit 1 when
        /// anything would have been denied.
        #[arg(long, conflicts_with_all = ["policy", "learn"])]
        check: Option<PathBuf>,
        /// With --learn: the learned profile's name.
        #[arg(long, default_value = "learned")]
        name: String,
        /// Where to write events as JSON lines (`-` or unset: standard error; with
        /// --check unset means none).
        #[arg(long)]
        events: Option<PathBuf>,
        /// More sinks, as FORMAT:TARGET (json|falco : -|stderr|syslog|PATH|http://HOST:PORT/PATH).
        #[arg(long = "sink")]
        sinks: Vec<SinkSpec>,
        /// DNS server for the names in the profile (default: /etc/resolv.conf).
        #[arg(long)]
        resolver: Option<SocketAddr>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
    /// Validate profiles; print each error as file:line:column.
    Check {
        /// Profile files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Ask the running agent to reload its profiles; a bad set keeps the running ones.
    Reload {
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        control: PathBuf,
    },
    /// Show the running agent's profiles, monitored cgroups and counters.
    Status {
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        control: PathBuf,
        /// `table` for a person, `json` for a program (every field).
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: Output,
    },
    /// Every container's configuration checked against the CIS Docker Benchmark's
    /// runtime section: a table per container (check, verdict, evidence) and its total.
    /// Asks the running agent; with no agent running, reads the host itself.
    Posture {
        /// Only this container: its id (a unique prefix is enough) or its name.
        #[arg(long)]
        container: Option<String>,
        /// `table` or `json`.
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: Output,
        /// A container runtime API socket besides the known ones (with no agent
        /// running; the agent uses its own list); repeatable.
        #[arg(long = "runtime-socket")]
        runtime_sockets: Vec<PathBuf>,
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        control: PathBuf,
    },
    /// Follow the running agent's live events as JSON lines, until interrupted (what
    /// was written before is in the agent's sinks).
    Events {
        /// Accepted for scripts written for earlier versions: `events` always follows.
        #[arg(long, hide = true)]
        follow: bool,
        /// Only events of this kind (connect, sendmsg, packet, bind, dns, syscall, sysctl,
        /// deviation, lost).
        #[arg(long)]
        kind: Option<String>,
        /// Only events of cgroups whose path contains this (a container id or name).
        #[arg(long)]
        container: Option<String>,
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        control: PathBuf,
    },
    /// Summarise an events file per container: egress denials, syscall attempts with the
    /// processes behind them, sysctl writes.
    Report {
        /// The events file (JSON lines); `-` or unset: standard input.
        #[arg(long)]
        events: Option<PathBuf>,
        /// `table` for a person, `json` for a program.
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: Output,
        /// The same as `-o json` (kept for scripts that use it).
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Write the tightest profile that allows what a workload did: from an events file
    /// (record it with a profile in audit mode, `report: all` and `dns: {report: true}`)
    /// or by watching a running container for a while. With --check, say what a
    /// profile would deny instead.
    Learn(LearnArgs),
    /// Write a profile from a container definition users already have.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Write shell completions or man pages (`cargo xtask completions` writes both).
    #[command(subcommand, hide = true)]
    Generate(generate::Generate),
    /// Remove every pinned link and map: enforcement ends.
    Uninstall {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
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

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("live").args(["container", "cgroup", "select"]))]
pub struct LearnArgs {
    /// The events file (JSON lines); `-` or unset: standard input.
    #[arg(long, conflicts_with_all = ["container", "cgroup", "select"])]
    events: Option<PathBuf>,
    /// Learn the next container this selector picks, from its first process (the
    /// selector syntax of profiles, as YAML: `name: web`, `{compose: {project: shop,
    /// service: web}}`, `image: "nginx*"`, `cgroup: "/docker/*"`); the profile written
    /// carries the selector. Start the container after this.
    #[arg(long, conflicts_with_all = ["container", "cgroup", "check"])]
    select: Option<String>,
    /// With --select: learn every matching container that starts in the window, into
    /// one profile (default: the first one only; later ones start unmonitored).
    #[arg(long, requires = "select", conflicts_with = "each")]
    merge_all: bool,
    /// With --select: learn every matching container that starts in the window, each
    /// into files of its own: `--out web.yaml` becomes `web-<container name>.yaml` (and
    /// the same for --seccomp), whose profile selects that container by name.
    #[arg(long, requires_all = ["select", "out"], conflicts_with = "merge")]
    each: bool,
    /// With --select: how long to wait for a matching container.
    #[arg(long, default_value = "10m", requires = "select")]
    wait: humantime::Duration,
    /// With --select: the running agent's control socket (learning refuses to run
    /// beside an agent).
    #[arg(long, default_value = control::DEFAULT_SOCKET, requires = "select")]
    control: PathBuf,
    /// Watch this running container instead: its id (a unique prefix is enough) as
    /// its cgroup path names it (Docker, containerd, CRI-O, Podman) or as runc knows it.
    #[arg(long, conflicts_with = "cgroup")]
    container: Option<String>,
    /// Watch this cgroup instead (path relative to the cgroup2 mount, e.g. `/app`).
    #[arg(long)]
    cgroup: Option<String>,
    /// How long to watch a container or cgroup (e.g. `30s`, `5m`; with --select, from
    /// the container's first process); it stops earlier when the cgroup is removed or
    /// on Ctrl-C.
    #[arg(long, default_value = "30s")]
    duration: humantime::Duration,
    /// Write the profile here (unset: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --select/--container/--cgroup: also write an OCI seccomp profile of every
    /// syscall used while watched, plus what the runtime needs after it installs the
    /// filter (with --container/--cgroup a window: what the container did before is not
    /// in it; --select sees it from its first process).
    #[arg(long, requires = "live")]
    seccomp: Option<PathBuf>,
    /// Like --seccomp, for Kubernetes: write the seccomp profile where kubelet looks for
    /// it, `<kubelet-root>/seccomp/profiles/NAME.json`, and print the pod's
    /// `seccompProfile: {type: Localhost, localhostProfile: profiles/NAME.json}`. Copy
    /// the file to the same place on every node the pod may run on.
    #[arg(
        long,
        value_name = "NAME",
        requires = "live",
        conflicts_with = "seccomp"
    )]
    seccomp_kubelet: Option<String>,
    /// kubelet's root directory (its `--root-dir`).
    #[arg(long, default_value = "/var/lib/kubelet", requires = "seccomp_kubelet")]
    kubelet_root: PathBuf,
    /// Learn on top of this profile: keep every line of it, add only what is new, and
    /// print the lines added on standard error.
    #[arg(long, conflicts_with = "check")]
    merge: Option<PathBuf>,
    /// Also write a Kubernetes network policy of the learned egress, as
    /// networkpolicy:FILE (networking.k8s.io/v1 NetworkPolicy: names as the addresses
    /// they resolved to) or cilium:FILE (cilium.io/v2 CiliumNetworkPolicy: names as
    /// toFQDNs); repeatable. With --each, one per container, named as the profiles are.
    #[arg(
        long = "export",
        value_name = "FORMAT:FILE",
        conflicts_with_all = ["check", "merge"]
    )]
    exports: Vec<ExportSpec>,
    /// With --export: a label KEY=VALUE the policy's pod selector matches
    /// (repeatable; unset: every pod of the namespace).
    #[arg(long = "pod-label", value_name = "KEY=VALUE", requires = "exports")]
    pod_labels: Vec<PodLabel>,
    /// Do not learn: list what this profile would deny or report in enforce mode
    /// (judging the events file, or watching the container under the profile forced
    /// to audit mode); exit 1 when anything would be denied.
    #[arg(long)]
    check: Option<PathBuf>,
    /// With --check: the findings as a table (on standard error for a live check) or
    /// as one JSON object on standard output.
    #[arg(
        short = 'o',
        long = "output",
        default_value = "table",
        requires = "check"
    )]
    output: Output,
    /// The profile's name.
    #[arg(long, default_value = "learned")]
    name: String,
    /// DNS server for the names in the profile (--check on a container).
    #[arg(long)]
    resolver: Option<SocketAddr>,
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// From an OCI runtime config (runc's config.json).
    FromOci {
        config: PathBuf,
        #[arg(long, default_value = "container")]
        name: String,
    },
    /// From one service of a Compose file.
    FromCompose {
        compose: PathBuf,
        service: String,
        /// The Compose project (`docker-compose -p`); default: the file's `name:`,
        /// `COMPOSE_PROJECT_NAME`, or the file's directory, as Compose decides it.
        #[arg(long, short = 'p')]
        project: Option<String>,
    },
}

/// `learn`: from an events file (`client`), or live on a running cgroup (`agent`).
fn learn(a: LearnArgs) -> anyhow::Result<i32> {
    use cgwarden::{
        exec::{Learning, Under},
        learn::select::Many,
    };
    let kubelet = a.kubelet_root.join("seccomp");
    let kubelet_file = match &a.seccomp_kubelet {
        Some(name) => Some(cgwarden::learn::kubelet_seccomp_file(&kubelet, name)?),
        None => None,
    };
    let learning = Learning {
        name: &a.name,
        profile_out: a.out.as_deref(),
        seccomp_out: a.seccomp.as_deref().or(kubelet_file.as_deref()),
        merge: a.merge.as_deref(),
        selector: None,
        kubelet: kubelet_file.as_ref().map(|_| kubelet.as_path()),
        exports: &a.exports,
        pod_labels: &a.pod_labels,
    };
    if let Some(selector) = &a.select {
        return agent::learn_selected(
            cgwarden::learn::select::Selected {
                selector,
                duration: a.duration.into(),
                wait: a.wait.into(),
                many: if a.each {
                    Many::Each
                } else if a.merge_all {
                    Many::Merge
                } else {
                    Many::First
                },
                control: &a.control,
            },
            learning,
            a.resolver,
        );
    }
    if a.container.is_none() && a.cgroup.is_none() {
        return match &a.check {
            Some(profile) => client::check_events(a.events.as_deref(), profile, a.output.into()),
            None => client::learn(a.events.as_deref(), &learning),
        };
    }
    let under = match &a.check {
        Some(profile) => Under::Check(profile, a.output.into()),
        None => Under::Learn(learning),
    };
    agent::learn_running(
        under,
        a.container.as_deref(),
        a.cgroup.as_deref(),
        a.duration.into(),
        a.resolver,
    )
}

impl Command {
    /// Whether the command only reads and prints, so that a reader that goes away
    /// (`cgwarden events | head`) should end it quietly, as it ends `cat`.
    /// Commands that hold the kernel's state (`run`, `exec`, a live `learn`, which
    /// releases the containers it holds at the gate when it stops) never die of it.
    pub fn only_prints(&self) -> bool {
        match self {
            Self::Check { .. }
            | Self::Reload { .. }
            | Self::Status { .. }
            | Self::Posture { .. }
            | Self::Events { .. }
            | Self::Report { .. }
            | Self::Profile(_)
            | Self::Generate(_) => true,
            Self::Learn(a) => a.container.is_none() && a.cgroup.is_none() && a.select.is_none(),
            Self::Run(_) | Self::Exec { .. } | Self::Uninstall { .. } => false,
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

pub fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => agent::run(args),
        Command::Exec {
            policy,
            learn,
            seccomp,
            merge,
            exports,
            pod_labels,
            check,
            name,
            events,
            sinks,
            resolver,
            command,
        } => {
            use cgwarden::exec::{Learning, Under};
            let under = match (&policy, &learn, &check) {
                (Some(p), _, _) => Under::Profile(p),
                (None, Some(out), _) => Under::Learn(Learning {
                    name: &name,
                    profile_out: Some(out),
                    seccomp_out: seccomp.as_deref(),
                    merge: merge.as_deref(),
                    selector: None,
                    kubelet: None,
                    exports: &exports,
                    pod_labels: &pod_labels,
                }),
                (None, None, Some(p)) => Under::Check(p, cgwarden::learn::check::Format::Table),
                (None, None, None) => {
                    eprintln!("cgwarden: give --policy, --learn or --check");
                    return Ok(cgwarden::exec::EXEC_FAILED);
                }
            };
            let quiet = check.is_some() && events.is_none() && sinks.is_empty();
            // Exit codes as `docker run` gives them: the command's own status, 126/127
            // when it could not be started, 125 when cgwarden failed.
            match agent::exec(
                under,
                cgwarden::exec::Target::Command(&command),
                if quiet { None } else { Some((events, sinks)) },
                resolver,
            ) {
                Ok(code) => Ok(code),
                Err(e) => {
                    eprintln!("cgwarden: {e:#}");
                    Ok(cgwarden::exec::exit_code_of(&e))
                }
            }
        }
        Command::Check { paths } => Ok(client::check(&paths)),
        Command::Reload { control } => client::request(&control, control::Command::Reload {}),
        Command::Status { control, output } => client::status(&control, output == Output::Json),
        Command::Events {
            follow: _,
            kind,
            container,
            control,
        } => client::follow(&control, control::Filter { kind, container }),
        Command::Posture {
            container,
            output,
            runtime_sockets,
            control,
        } => client::posture(
            &control,
            container.as_deref(),
            output == Output::Json,
            &runtime_sockets,
        ),
        Command::Uninstall { state_dir } => client::uninstall(&state_dir),
        Command::Generate(what) => generate::run(what),
        Command::Report {
            events,
            output,
            json,
        } => client::report(events.as_deref(), json || output == Output::Json),
        Command::Learn(args) => learn(args),
        Command::Profile(ProfileCommand::FromOci { config, name }) => {
            client::from_oci(&config, &name)
        }
        Command::Profile(ProfileCommand::FromCompose {
            compose,
            service,
            project,
        }) => client::from_compose(&compose, &service, project.as_deref()),
    }
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
