//! `cgwarden exec`: one command in a fresh cgroup under a profile, learning one, or
//! checking one in audit mode. Exit codes are `docker run`'s: the command's own status,
//! 126/127 when it could not be started, 125 when cgwarden failed.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use cgwarden::{
    bpf::SyscallHooks,
    dns::resolver::Resolver,
    learn::export::{ExportSpec, PodLabel},
    output::{self, SinkSpec, Target},
};

use super::{run::sink_specs, runtime};

/// Run one command in a fresh cgroup under a profile.
#[derive(clap::Args)]
pub struct Args {
    /// The profile file.
    #[arg(long, required_unless_present_any = ["learn", "check"])]
    pub policy: Option<PathBuf>,
    /// Learn mode: run the command with everything reported and nothing refused,
    /// then write the tightest profile that allows what it did to this file.
    #[arg(long, conflicts_with_all = ["policy", "check"])]
    pub learn: Option<PathBuf>,
    /// With --learn: also write an OCI seccomp profile of every syscall it used.
    // `requires` alone lets `--policy` through (`learn` conflicts with it): a
    // learn-only option given with a profile would be silently ignored.
    #[arg(long, requires = "learn", conflicts_with_all = ["policy", "check"])]
    pub seccomp: Option<PathBuf>,
    /// With --learn: learn on top of this profile: keep every line of it, add only
    /// what is new, print the lines added on standard error.
    #[arg(long, requires = "learn", conflicts_with_all = ["policy", "check"])]
    pub merge: Option<PathBuf>,
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
    pub exports: Vec<ExportSpec>,
    /// With --export: a label KEY=VALUE the policy's pod selector matches
    /// (repeatable; unset: every pod of the namespace).
    #[arg(long = "pod-label", value_name = "KEY=VALUE", requires = "exports")]
    pub pod_labels: Vec<PodLabel>,
    /// Run the command under this profile forced to audit mode, then list on
    /// standard error what enforce mode would have denied or reported; exit 1 when
    /// anything would have been denied.
    #[arg(long, conflicts_with_all = ["policy", "learn"])]
    pub check: Option<PathBuf>,
    /// With --learn: the learned profile's name.
    #[arg(long, default_value = "learned")]
    pub name: String,
    /// Where to write events as JSON lines (`-` or unset: standard error; with
    /// --check unset means none).
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// More sinks, as FORMAT:TARGET (json|falco : -|stderr|syslog|PATH|http://HOST:PORT/PATH).
    #[arg(long = "sink")]
    pub sinks: Vec<SinkSpec>,
    /// DNS server for the names in the profile (default: /etc/resolv.conf).
    #[arg(long)]
    pub resolver: Option<SocketAddr>,
    /// How watched syscalls (and the process table, packet sockets and listens) are
    /// hooked: `raw`, raw tracepoints only, two for the whole syscall set (attached and
    /// detached at once; every syscall on the host runs two small programs meanwhile),
    /// or `tracepoints`, one per watched syscall (nothing runs for the others; each
    /// takes tens of ms to detach), as the agent does.
    #[arg(long, value_enum, default_value = "raw")]
    pub syscall_hooks: SyscallHooks,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let Args {
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
        syscall_hooks,
        command,
    } = args;
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
    match exec_under(
        under,
        cgwarden::exec::Target::Command(&command),
        if quiet { None } else { Some((events, sinks)) },
        resolver,
        syscall_hooks,
    ) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("cgwarden: {e:#}");
            Ok(cgwarden::exec::exit_code_of(&e))
        }
    }
}

/// The command under `under`: `sinks` are `--events` and `--sink` (default: JSON on
/// standard error), or `None` for no sink at all.
fn exec_under(
    under: cgwarden::exec::Under<'_>,
    target: cgwarden::exec::Target<'_>,
    sinks: Option<(Option<PathBuf>, Vec<SinkSpec>)>,
    resolver: Option<SocketAddr>,
    hooks: SyscallHooks,
) -> anyhow::Result<i32> {
    let specs = match sinks {
        Some((events, sinks)) => sink_specs(events, sinks, Target::Stderr),
        None => Vec::new(),
    };
    let sinks = output::Sinks::open(&specs).context("opening the event sinks")?;
    runtime()?.block_on(cgwarden::exec::run(
        under,
        target,
        sinks,
        Resolver::system(resolver),
        hooks,
    ))
}
