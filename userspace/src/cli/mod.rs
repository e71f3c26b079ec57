//! Subcommands: `run` (the agent), `exec` (one command under a profile), `check`,
//! and the clients of a running agent (`reload`, `status`, `events`, `uninstall`).

mod agent;
mod client;

use std::{ffi::OsString, net::SocketAddr, path::PathBuf};

use cgwarden::{control, sinks::SinkSpec};
use clap::{Parser, Subcommand};

/// Where `run` pins its links and maps.
pub const DEFAULT_STATE_DIR: &str = "/sys/fs/bpf/cgwarden";

/// Kernel-level egress and syscall monitor for containers.
#[derive(Parser)]
#[command(version, about)]
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
        #[arg(long, required_unless_present = "learn")]
        policy: Option<PathBuf>,
        /// Learn mode: run the command with everything reported and nothing refused,
        /// then write the tightest profile that allows what it did to this file.
        #[arg(long, conflicts_with = "policy")]
        learn: Option<PathBuf>,
        /// With --learn: also write an OCI seccomp profile of every syscall it used.
        #[arg(long, requires = "learn")]
        seccomp: Option<PathBuf>,
        /// With --learn: the learned profile's name.
        #[arg(long, default_value = "learned")]
        name: String,
        /// Where to write events as JSON lines (`-` or unset: standard error).
        #[arg(long)]
        events: Option<PathBuf>,
        /// More sinks, as FORMAT:TARGET (json|falco : -|stderr|syslog|PATH).
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
    },
    /// Follow the running agent's live events as JSON lines.
    Events {
        /// Keep following (the only mode: events already written are in the sinks).
        #[arg(long)]
        follow: bool,
        /// Only events of this kind (connect, sendmsg, packet, dns, lost).
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
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the tightest profile that allows what an events file shows (record them
    /// with a profile in audit mode, `report: all` and `dns: {report: true}`).
    Learn {
        /// The events file (JSON lines); `-` or unset: standard input.
        #[arg(long)]
        events: Option<PathBuf>,
        /// The profile's name.
        #[arg(long, default_value = "learned")]
        name: String,
    },
    /// Write a profile from a container definition users already have.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Remove every pinned link and map: enforcement ends.
    Uninstall {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
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
    FromCompose { compose: PathBuf, service: String },
}

impl Command {
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
            name,
            events,
            sinks,
            resolver,
            command,
        } => {
            let under = match (&policy, &learn) {
                (Some(p), _) => cgwarden::exec::Under::Profile(p),
                (None, Some(out)) => cgwarden::exec::Under::Learn {
                    name: &name,
                    profile_out: out,
                    seccomp_out: seccomp.as_deref(),
                },
                (None, None) => anyhow::bail!("give --policy or --learn"),
            };
            agent::exec(under, events, sinks, resolver, &command)
        }
        Command::Check { paths } => Ok(client::check(&paths)),
        Command::Reload { control } => client::request(&control, control::Command::Reload),
        Command::Status { control } => client::request(&control, control::Command::Status),
        Command::Events {
            follow: _,
            kind,
            container,
            control,
        } => client::follow(&control, control::Filter { kind, container }),
        Command::Uninstall { state_dir } => client::uninstall(&state_dir),
        Command::Report { events, json } => client::report(events.as_deref(), json),
        Command::Learn { events, name } => client::learn(events.as_deref(), &name),
        Command::Profile(ProfileCommand::FromOci { config, name }) => {
            client::from_oci(&config, &name)
        }
        Command::Profile(ProfileCommand::FromCompose { compose, service }) => {
            client::from_compose(&compose, &service)
        }
    }
}
