//! The `cgwarden` command line.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use cgwarden::{
    agent::Agent,
    bpf::Kernel,
    control::{self, ControlSocket},
    host, policy,
    resolver::Resolver,
    serve::{self, Options},
    sink::{self, Std},
};
use clap::{Parser, Subcommand};

/// Where `run` pins its links and maps.
const DEFAULT_STATE_DIR: &str = "/sys/fs/bpf/cgwarden";

/// Kernel-level egress and syscall monitor for containers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent in the foreground: apply profiles to the cgroups they select.
    Run {
        /// Profile file, or a directory of *.yaml profiles.
        #[arg(long)]
        policy: PathBuf,
        /// Where to write events as JSON lines (`-`: standard output).
        #[arg(long)]
        events: Option<PathBuf>,
        /// The root-only control socket `cgwarden reload` and `status` talk to.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        control: PathBuf,
        /// DNS server for the names in profiles (default: /etc/resolv.conf).
        #[arg(long)]
        resolver: Option<SocketAddr>,
        /// bpffs directory where links and maps are pinned, so enforcement stays in place
        /// when the agent stops or crashes and a restarted agent adopts it.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Pin nothing: enforcement ends when the agent exits (fail open).
        #[arg(long)]
        fail_open: bool,
    },
    /// Remove every pinned link and map: enforcement ends.
    Uninstall {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
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
    /// Run one command in a fresh cgroup under a profile.
    Exec {
        /// The profile file.
        #[arg(long)]
        policy: PathBuf,
        /// Where to write events as JSON lines (`-` or unset: standard error).
        #[arg(long)]
        events: Option<PathBuf>,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp_millis()
        .init();
    match run(cli.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("cgwarden: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Check { paths } => Ok(check(&paths)),
        Command::Run {
            policy,
            events,
            control,
            resolver,
            state_dir,
            fail_open,
        } => {
            let sink =
                sink::open(events.as_deref(), Std::Out).context("opening the events file")?;
            let state = (!fail_open).then_some(state_dir);
            runtime()?.block_on(run_agent(
                policy,
                sink,
                control,
                Resolver::system(resolver),
                state,
            ))
        }
        Command::Uninstall { state_dir } => {
            host::prepare()?;
            if cgwarden::bpf::uninstall(&state_dir)
                .with_context(|| format!("removing {}", state_dir.display()))?
            {
                println!(
                    "removed every link and map pinned in {}",
                    state_dir.display()
                );
            } else {
                println!("nothing is pinned in {}", state_dir.display());
            }
            Ok(0)
        }
        Command::Reload { control } => client(&control, control::Command::Reload),
        Command::Status { control } => client(&control, control::Command::Status),
        Command::Exec {
            policy,
            events,
            resolver,
            command,
        } => {
            let sink =
                sink::open(events.as_deref(), Std::Err).context("opening the events file")?;
            runtime()?.block_on(cgwarden::exec::exec(
                &policy,
                sink,
                Resolver::system(resolver),
                &command,
            ))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn check(paths: &[PathBuf]) -> i32 {
    let mut failed = false;
    for path in paths {
        match policy::load_path(path) {
            Ok(profiles) => {
                for p in profiles {
                    println!("{}: profile `{}` is valid", p.source.display(), p.name);
                }
            }
            Err(errors) => {
                failed = true;
                eprintln!("{errors}");
            }
        }
    }
    i32::from(failed)
}

/// Sends a command to the running agent and prints its answer; exit 0 when it says ok.
fn client(socket: &std::path::Path, command: control::Command) -> anyhow::Result<i32> {
    let answer = control::request(socket, command)?;
    let ok = answer["ok"].as_bool() == Some(true);
    match answer["error"].as_str() {
        Some(error) if !ok => eprintln!("{error}"),
        _ => println!("{}", serde_json::to_string_pretty(&answer)?),
    }
    Ok(i32::from(!ok))
}

async fn run_agent(
    policy_path: PathBuf,
    sink: Box<dyn std::io::Write + Send>,
    control_path: PathBuf,
    resolver: Resolver,
    state: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let profiles = policy::load_path(&policy_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let host = host::prepare()?;
    let control = ControlSocket::bind(&control_path)
        .with_context(|| format!("control socket {}", control_path.display()))?;
    let started = std::time::Instant::now();
    let mut kernel = Kernel::load(state.as_deref())?;
    let adopted = kernel.adopted();
    let ring = kernel.take_events().context("event ring buffer")?;
    let mut agent = Agent::new(kernel, host.cgroup2.clone(), sink, resolver)?;
    // Rules first, then the hooks: a hook attached before its rules would judge
    // monitored cgroups against an empty allowlist.
    agent.install(profiles)?;
    for p in agent.profiles() {
        let globs: Vec<&str> = p.selector.cgroup.iter().map(|g| g.as_str()).collect();
        log::info!(
            "profile `{}` ({:?} mode) selects cgroups {:?}",
            p.name,
            p.mode,
            globs
        );
        if !p.syscalls.is_empty() {
            log::warn!(
                "profile `{}`: syscall rules are validated but not yet enforced by this version",
                p.name
            );
        }
    }
    agent.rescan()?;
    agent.kernel_mut().attach(&host.cgroup2)?;
    log::info!(
        "cgwarden is enforcing ({} in {:.0} ms); cgroup2 at {}",
        match (&state, adopted) {
            (None, _) => "fail-open: nothing pinned".to_owned(),
            (Some(dir), true) => format!("adopted the pins in {}", dir.display()),
            (Some(dir), false) => format!("pinned in {}", dir.display()),
        },
        started.elapsed().as_secs_f64() * 1e3,
        host.cgroup2.display()
    );
    serve::serve(
        &mut agent,
        ring,
        Options {
            policy: &policy_path,
            rescan: true,
            child: None,
            control: Some(&control),
        },
    )
    .await?;
    match &state {
        Some(dir) => log::info!(
            "stopping; enforcement stays in place (`cgwarden uninstall --state-dir {}` removes it)",
            dir.display()
        ),
        None => log::info!("stopping; detaching from every cgroup"),
    }
    Ok(0)
}
