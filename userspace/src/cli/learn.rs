//! `cgwarden learn`: the tightest profile that allows what a workload did, from an
//! events file, from a running container or cgroup watched for a while, or from the
//! containers a selector picks, each from its first process; with `--check`, what a
//! profile would deny instead.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use cgwarden::{
    control,
    dns::resolver::Resolver,
    error::code,
    host,
    learn::export::{ExportSpec, PodLabel},
    output, policy,
};

use super::{Output, report::read_records, runtime};

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("live").args(["container", "cgroup", "select"]))]
pub struct Args {
    /// The events file (JSON lines); `-` or unset: standard input.
    #[arg(long, conflicts_with_all = ["container", "cgroup", "select"])]
    pub(super) events: Option<PathBuf>,
    /// Learn the next container this selector picks, from its first process (the
    /// selector syntax of profiles, as YAML: `name: web`, `{compose: {project: shop,
    /// service: web}}`, `image: "nginx*"`, `cgroup: "/docker/*"`); the profile written
    /// carries the selector. Start the container after this.
    #[arg(long, conflicts_with_all = ["container", "cgroup", "check"])]
    pub(super) select: Option<String>,
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
    pub(super) container: Option<String>,
    /// Watch this cgroup instead (path relative to the cgroup2 mount, e.g. `/app`).
    #[arg(long)]
    pub(super) cgroup: Option<String>,
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
    pub(super) exports: Vec<ExportSpec>,
    /// With --export: a label KEY=VALUE the policy's pod selector matches
    /// (repeatable; unset: every pod of the namespace).
    #[arg(long = "pod-label", value_name = "KEY=VALUE", requires = "exports")]
    pub(super) pod_labels: Vec<PodLabel>,
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

impl Args {
    /// Whether it watches something live (a container, a cgroup, a selector) rather
    /// than reading an events file.
    pub fn is_live(&self) -> bool {
        self.container.is_some() || self.cgroup.is_some() || self.select.is_some()
    }
}

/// `learn`: from an events file, or live on a running cgroup or the containers a
/// selector picks.
pub fn run(a: Args) -> anyhow::Result<i32> {
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
        return learn_selected(
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
            Some(profile) => check_events(a.events.as_deref(), profile, a.output.into()),
            None => from_events(a.events.as_deref(), &learning),
        };
    }
    let under = match &a.check {
        Some(profile) => Under::Check(profile, a.output.into()),
        None => Under::Learn(learning),
    };
    learn_running(
        under,
        a.container.as_deref(),
        a.cgroup.as_deref(),
        a.duration.into(),
        a.resolver,
    )
}

/// `learn --container/--cgroup`: the learning profile (or the checked one, in audit
/// mode) on a running cgroup for `duration`.
fn learn_running(
    under: cgwarden::exec::Under<'_>,
    container: Option<&str>,
    cgroup: Option<&str>,
    duration: std::time::Duration,
    resolver: Option<SocketAddr>,
) -> anyhow::Result<i32> {
    let host = host::prepare()?;
    let (path, label) = match (container, cgroup) {
        (Some(id), _) => (
            cgwarden::exec::find_container(&host.cgroup2, id)?
                .display()
                .to_string(),
            format!("container {id}"),
        ),
        (None, Some(path)) => (
            format!("/{}", path.trim_start_matches('/')),
            format!("cgroup {path}"),
        ),
        (None, None) => anyhow::bail!("give --container or --cgroup"),
    };
    runtime()?.block_on(cgwarden::exec::run(
        under,
        cgwarden::exec::Target::Running {
            cgroup: &path,
            duration,
            label: &label,
        },
        output::Sinks::open(&[]).context("opening the event sinks")?,
        Resolver::system(resolver),
        // A learning run is as short-lived as an `exec`.
        cgwarden::bpf::SyscallHooks::Raw,
    ))
}

/// `learn --select`: the containers a selector picks, from their first process.
fn learn_selected(
    selected: cgwarden::learn::select::Selected<'_>,
    learning: cgwarden::exec::Learning<'_>,
    resolver: Option<SocketAddr>,
) -> anyhow::Result<i32> {
    runtime()?.block_on(cgwarden::learn::select::run(
        selected,
        learning,
        output::Sinks::open(&[]).context("opening the event sinks")?,
        Resolver::system(resolver),
    ))
}

/// Writes the profile learned from an events file (merged into an existing one when
/// asked).
fn from_events(
    events: Option<&Path>,
    learning: &cgwarden::exec::Learning<'_>,
) -> anyhow::Result<i32> {
    let records = read_records(events)?;
    let origin = events.map_or("standard input".to_owned(), |p| p.display().to_string());
    // An events file holds only what its profile reported: devices and credentials
    // outside it were never recorded, so they are not learned from it.
    cgwarden::exec::write_learned(
        learning,
        &origin,
        &records,
        cgwarden::learn::Watched::default(),
        &[],
        None,
    )?;
    Ok(0)
}

/// Lists what `profile` would deny or report for the records of an events file; 1 when
/// anything would be denied.
fn check_events(
    events: Option<&Path>,
    profile: &Path,
    format: cgwarden::learn::check::Format,
) -> anyhow::Result<i32> {
    let profiles = policy::load_path(profile).map_err(cgwarden::Error::Profile)?;
    let [p] = <[_; 1]>::try_from(profiles).map_err(|p: Vec<_>| {
        anyhow::anyhow!(
            "exactly one profile is needed; {} has {}",
            profile.display(),
            p.len()
        )
    })?;
    let records = read_records(events)?;
    let findings = cgwarden::learn::check::against(&p, &records);
    print!(
        "{}",
        cgwarden::learn::check::report(
            &findings,
            p.name.as_str(),
            profile,
            "the events file judged against it; names it lists are not resolved",
            format,
        )
    );
    Ok(i32::from(if findings.failed() {
        code::FOUND
    } else {
        code::OK
    }))
}
