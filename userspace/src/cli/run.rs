//! `cgwarden run`: the agent in the foreground, on the profiles of a file or directory,
//! with its config file, sinks, metrics and control socket.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;
use cgwarden::{
    agent::Agent,
    bpf::Kernel,
    config::AgentConfig,
    control::ControlSocket,
    dns::resolver::Resolver,
    host,
    output::{Format, SinkSpec, Sinks, Target},
    policy,
    serve::{self, Options},
};

use super::{DEFAULT_STATE_DIR, runtime};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Profile file, or a directory of *.yaml profiles.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The agent's config file (YAML); flags given here override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write events as JSON lines (`-`: standard output).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Sinks, as FORMAT:TARGET (json|falco : -|stderr|syslog|syslog=SOCKET|PATH|http://HOST:PORT/PATH);
    /// repeatable. Default: json:-.
    #[arg(long = "sink")]
    sinks: Vec<SinkSpec>,
    /// The root-only control socket `reload`, `status` and `events` talk to.
    #[arg(long)]
    control: Option<PathBuf>,
    /// DNS server for the names in profiles (default: /etc/resolv.conf).
    #[arg(long)]
    resolver: Option<SocketAddr>,
    /// bpffs directory where links and maps are pinned, so enforcement stays in place
    /// when the agent stops or crashes and a restarted agent adopts it.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Pin nothing: enforcement ends when the agent exits (fail open).
    #[arg(long)]
    fail_open: bool,
    /// Prometheus metrics address (loopback by default).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Serve no metrics.
    #[arg(long, conflicts_with = "metrics")]
    no_metrics: bool,
    /// Give each container its own metrics series (labels `cgroup` and `container`),
    /// gone when its cgroup goes. Off by default: series are by kind, verdict and
    /// profile, however many containers come and go.
    #[arg(long, conflicts_with = "no_metrics")]
    metrics_per_container: bool,
    /// An OCI runtime state directory (runc's `--root`) where containers' state.json
    /// leads to their config.json; repeatable. Default: Docker's, containerd's (every
    /// namespace), Podman's and CRI-O's (runc's and crun's) state directories.
    #[arg(long = "runc-root")]
    runc_roots: Vec<PathBuf>,
    /// A container runtime API socket besides the known ones (Docker's, containerd's,
    /// CRI-O's, Podman's); repeatable. A connect that reaches it, by whatever path, is
    /// an escape attempt.
    #[arg(long = "runtime-socket")]
    runtime_sockets: Vec<PathBuf>,
    /// Do not check containers' configurations against the CIS Docker Benchmark
    /// (`posture` events, `cgwarden posture`); profiles' `runtime.posture` then cannot
    /// be judged and is reported as unknown.
    #[arg(long)]
    no_posture: bool,
    /// Find new cgroups only by walking the tree every 100 ms, without inotify.
    #[arg(long)]
    no_watch: bool,
    /// With inotify: how often the whole cgroup tree is walked anyway, as a backstop
    /// for anything the watches missed.
    #[arg(long, default_value = "1s", conflicts_with = "no_watch")]
    walk_every: humantime::Duration,
    /// The host name events carry (Falco's `hostname`). Default: the kernel's host
    /// name, which in a Kubernetes pod is the pod's: the DaemonSet passes the node's
    /// name in CGWARDEN_HOSTNAME.
    #[arg(long, env = "CGWARDEN_HOSTNAME")]
    hostname: Option<String>,
}

/// Sinks from `--events` and `--sink`, or `default` when neither is given.
pub(super) fn sink_specs(
    events: Option<PathBuf>,
    mut specs: Vec<SinkSpec>,
    default: Target,
) -> Vec<SinkSpec> {
    if let Some(path) = events {
        let target = if path == Path::new("-") {
            default.clone()
        } else {
            Target::File {
                path,
                max_bytes: 0,
                keep: 0,
            }
        };
        specs.insert(
            0,
            SinkSpec {
                format: Format::Json,
                target,
            },
        );
    }
    if specs.is_empty() {
        specs.push(SinkSpec {
            format: Format::Json,
            target: default,
        });
    }
    specs
}

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let config = match &args.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::default(),
    };
    let policy_path = args
        .policy
        .or_else(|| config.policy.clone())
        .context("no profiles: give --policy (or `policy:` in the config file)")?;
    let mut specs = args.sinks;
    if specs.is_empty() && args.events.is_none() {
        specs = config.sink_specs();
    }
    let specs = sink_specs(args.events, specs, Target::Stdout);
    let metrics = if args.no_metrics {
        None
    } else {
        match args.metrics {
            Some(addr) => Some(addr),
            None => config.metrics_addr()?,
        }
    };
    let settings = Settings {
        policy: policy_path,
        sinks: specs,
        control: args
            .control
            .or(config.control.clone())
            .unwrap_or_else(|| PathBuf::from(cgwarden::control::DEFAULT_SOCKET)),
        resolver: args.resolver.or(config.resolver),
        state: (!(args.fail_open || config.fail_open == Some(true))).then(|| {
            args.state_dir
                .or(config.state_dir.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
        }),
        metrics,
        watch: (!args.no_watch).then(|| args.walk_every.into()),
        runtime_sockets: args.runtime_sockets,
        posture: !(args.no_posture || config.posture == Some(false)),
        metrics_per_container: args.metrics_per_container
            || config.metrics_per_container == Some(true),
        hostname: args
            .hostname
            .filter(|h| !h.trim().is_empty())
            .or(config.hostname.clone()),
        engines: if args.runc_roots.is_empty() {
            cgwarden::engines::Dirs::default()
        } else {
            cgwarden::engines::Dirs::with_state_roots(args.runc_roots)
        },
    };
    runtime()?.block_on(run_agent(settings))
}

/// Everything `run` needs, after flags and config file are merged.
struct Settings {
    policy: PathBuf,
    sinks: Vec<SinkSpec>,
    control: PathBuf,
    resolver: Option<SocketAddr>,
    state: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    engines: cgwarden::engines::Dirs,
    runtime_sockets: Vec<PathBuf>,
    /// Check every container's posture.
    posture: bool,
    /// Discovery by inotify, with the backstop walk's period; `None`: walk every tick.
    watch: Option<std::time::Duration>,
    /// The host name events carry, when not the kernel's.
    hostname: Option<String>,
    /// Per-container metrics series.
    metrics_per_container: bool,
}

async fn run_agent(s: Settings) -> anyhow::Result<i32> {
    let started = Instant::now();
    let profiles = policy::load_path(&s.policy).map_err(cgwarden::Error::Profile)?;
    policy::lint::log_warnings(&profiles);
    let host = host::prepare()?;
    let mut sinks = Sinks::open(&s.sinks).context("opening the event sinks")?;
    if let Some(name) = &s.hostname {
        sinks.set_hostname(name);
    }
    let control = ControlSocket::bind(&s.control)
        .with_context(|| format!("control socket {}", s.control.display()))?;
    let metrics = match s.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics listener on {addr}"))?,
        ),
        None => None,
    };
    let mut kernel = Kernel::load(s.state.as_deref())?;
    let adopted = kernel.adopted();
    let ring = kernel.take_events().context("event ring buffer")?;
    let mut agent = Agent::new(
        kernel,
        host.cgroup2.clone(),
        sinks,
        Resolver::system(s.resolver),
    )?;
    agent.set_engine_dirs(s.engines.clone());
    agent.set_posture(s.posture);
    agent.set_metrics_per_container(s.metrics_per_container);
    agent.set_runtime_sockets(&s.runtime_sockets)?;
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
    }
    agent.rescan()?;
    agent.kernel_mut().attach(&host.cgroup2)?;
    // Before "enforcing" is said: a supervisor may signal the agent from then on.
    let signals = serve::Signals::install()?;
    log::info!(
        "cgwarden is enforcing ({} in {:.0} ms); cgroup2 at {}{}",
        match (&s.state, adopted) {
            (None, _) => "fail-open: nothing pinned".to_owned(),
            (Some(dir), true) => format!("adopted the pins in {}", dir.display()),
            (Some(dir), false) => format!("pinned in {}", dir.display()),
        },
        started.elapsed().as_secs_f64() * 1e3,
        host.cgroup2.display(),
        match &metrics {
            Some(l) => format!("; metrics on http://{}/metrics", l.local_addr()?),
            None => String::new(),
        }
    );
    // Loading peaks far above what the agent keeps while it runs.
    cgwarden::host::release_free_memory();
    // systemd's `Type=notify`: ready once enforcing.
    if let Err(e) = cgwarden::host::notify::notify("READY=1") {
        log::warn!("cannot tell the supervisor the agent is ready: {e}");
    }
    let served = serve::serve(
        &mut agent,
        ring,
        Options {
            policy: &s.policy,
            rescan: true,
            watch: s.watch,
            child: None,
            control: Some(&control),
            metrics: metrics.as_ref(),
            signals,
            deadline: None,
            while_exists: None,
            until_claims_gone: false,
            learn_for: None,
            progress: None,
        },
    )
    .await;
    let _ = cgwarden::host::notify::notify("STOPPING=1");
    served?;
    match &s.state {
        Some(dir) => {
            let gates = agent.gate_paths();
            log::info!(
                "stopping; enforcement stays in place (`cgwarden uninstall --state-dir {}` removes it)",
                dir.display()
            );
            if !gates.is_empty() {
                log::warn!(
                    "new containers below {} wait at their first exec until an agent runs again (or `cgwarden uninstall` lets them go)",
                    gates.join(", ")
                );
            }
        }
        None => {
            log::info!("stopping; detaching from every cgroup");
            agent.release_all_held();
        }
    }
    Ok(0)
}
