//! `cgwarden exec` and the live modes of `cgwarden learn`: one profile (or the learning
//! profile) on one cgroup with an embedded agent, either a fresh cgroup for a command
//! that is removed afterwards, or a running container's cgroup for a while, left as it
//! was.

use std::{
    ffi::OsString,
    fs::File,
    os::{fd::AsRawFd, unix::process::ExitStatusExt},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    agent::Agent,
    bpf::{Kernel, SyscallHooks},
    dns::resolver::Resolver,
    host,
    host::cgroups::OwnedCgroup,
    learn,
    output::Sinks,
    policy::{self, Mode, Profile},
    serve::{self, Options, Stop},
};

/// What the cgroup runs under.
pub enum Under<'a> {
    /// The single profile in this file.
    Profile(&'a Path),
    /// Learn mode: write the learned profile (and optionally an OCI seccomp profile).
    Learn(Learning<'a>),
    /// The single profile in this file, forced to audit mode; afterwards, list what
    /// enforce mode would have denied or reported (a table on standard error, or JSON
    /// on standard output).
    Check(&'a Path, learn::check::Format),
}

/// Where a learning run writes what it learned.
pub struct Learning<'a> {
    /// The learned profile's name (a merged profile keeps the existing one's).
    pub name: &'a str,
    /// The profile file; `None`: standard output.
    pub profile_out: Option<&'a Path>,
    pub seccomp_out: Option<&'a Path>,
    /// Learn on top of this profile: keep it, add only what is new.
    pub merge: Option<&'a Path>,
    /// The selector the learned profile carries (`learn --select`), as one line of
    /// YAML; `None`: no selector.
    pub selector: Option<&'a str>,
    /// kubelet's seccomp root (`/var/lib/kubelet/seccomp`) when the seccomp profile is
    /// written under it for pods (`--seccomp-kubelet`): the pod spec names the file
    /// relative to it.
    pub kubelet: Option<&'a Path>,
    /// Kubernetes network policies of the learned egress to write (`--export`).
    pub exports: &'a [learn::export::ExportSpec],
    /// The labels those policies' pod selectors match (`--pod-label`).
    pub pod_labels: &'a [learn::export::PodLabel],
}

/// The command could not be started: not found (`exec` exits 127 for it, as a shell
/// and `docker run` do) or not executable (126).
#[derive(Debug, thiserror::Error)]
#[error("cannot run {program}")]
pub struct CannotRun {
    pub program: String,
    #[source]
    pub source: std::io::Error,
}

impl CannotRun {
    /// The exit code `exec` gives for it.
    pub fn exit_code(&self) -> i32 {
        if self.source.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

/// The exit code `exec` gives when cgwarden itself fails (`docker run`'s 125), so a
/// command's own status is never mistaken for cgwarden's.
pub const EXEC_FAILED: i32 = 125;

/// `exec`'s exit code for an error: 126/127 when the command could not be started,
/// 125 for everything else.
pub fn exit_code_of(error: &anyhow::Error) -> i32 {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<CannotRun>())
        .map_or(EXEC_FAILED, CannotRun::exit_code)
}

/// The cgroup a run applies to.
pub enum Target<'a> {
    /// A fresh cgroup for this command, removed when it ends.
    Command(&'a [OsString]),
    /// A running container's cgroup (path relative to the cgroup2 root), for this long
    /// or until the cgroup is removed; the cgroup and its processes are left alone.
    Running {
        cgroup: &'a str,
        duration: Duration,
        /// For messages and the learned profile's header (`container 3f2a…`).
        label: &'a str,
    },
}

/// Runs a target under a profile (or learns one, or checks one); returns the exit code
/// to exit with: the command's (128 + signal when it was killed), 0 for a running
/// cgroup; with `Check`, 1 when enforce mode would have denied anything.
pub async fn run(
    under: Under<'_>,
    target: Target<'_>,
    sinks: Sinks,
    resolver: Resolver,
    hooks: SyscallHooks,
) -> anyhow::Result<i32> {
    let policy_file = match &under {
        Under::Profile(file) | Under::Check(file, _) => *file,
        Under::Learn(_) => Path::new("/dev/null"),
    };
    if let Under::Learn(Learning {
        merge: Some(base), ..
    }) = &under
    {
        let text =
            std::fs::read_to_string(base).with_context(|| format!("reading {}", base.display()))?;
        learn::merge::preflight(&text, base)
            .map_err(|e| anyhow::anyhow!("cannot merge into {}: {e}", base.display()))?;
    }
    // The profile is parsed while the kernel side loads: a large allowlist takes as
    // long to parse as the programs take to verify. A profile that does not parse is
    // the error reported, whatever the loading did (nothing is pinned or attached yet).
    let (profile, prepared) = std::thread::scope(|s| {
        let parsing = s.spawn(|| the_profile(&under));
        let prepared = prepare(&target, hooks);
        let profile = parsing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (profile, prepared)
    });
    let profile = profile?;
    let Prepared {
        host,
        owned,
        path,
        relative,
        id,
        level,
        mut kernel,
    } = prepared?;
    let name = profile.name.as_str().to_owned();
    kernel.attach(&path)?;
    let ring = kernel.take_events().context("event ring buffer")?;
    let mut agent = Agent::new(kernel, host.cgroup2.clone(), sinks, resolver)?;
    agent.set_runtime_sockets(&[])?;
    let mut profile = profile;
    let mut watched = learn::Watched::default();
    if let Under::Learn(l) = &under {
        watched.devices = true;
        if learns_credentials(&agent) {
            watched.creds = true;
            profile =
                learn::learning_profile(l.name, true, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    agent.install(vec![profile])?;
    if !matches!(under, Under::Profile(_)) {
        agent.record_all();
    }
    // uids of the processes already there (a running container's programs may never
    // execute again while it is watched).
    let uids_before: Vec<u32> = crate::host::procfs::pids_below(&path)
        .into_iter()
        .filter(|pid| {
            crate::host::procfs::process(Path::new("/proc"), *pid)
                .is_some_and(|p| !crate::host::procfs::is_runtime_init(&p))
        })
        .filter_map(|pid| crate::host::procfs::uid(Path::new("/proc"), pid))
        .collect();
    agent.assign(id, &relative, level, &name)?;

    let (stop, origin) = match target {
        Target::Command(command) => {
            let signals = serve::Signals::install()?;
            let mut child = spawn_in(&path, command)?;
            let stop = serve::serve(
                &mut agent,
                ring,
                one_cgroup(policy_file, signals, Some(&mut child), None, None),
            )
            .await?;
            let origin = format!(
                "`{}`",
                command
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            (stop, origin)
        }
        Target::Running {
            duration, label, ..
        } => {
            let place = if label.ends_with(relative.as_str()) {
                label.to_owned()
            } else {
                format!("{label} (cgroup {relative})")
            };
            log::warn!(
                "watching {place} for {}",
                humantime::format_duration(duration)
            );
            let mut options = one_cgroup(
                policy_file,
                serve::Signals::install()?,
                None,
                Some(tokio::time::Instant::now() + duration),
                Some(&path),
            );
            if matches!(under, Under::Learn(_)) {
                options.progress = Some(learn::progress::Progress::new(duration, place.clone()));
            }
            let stop = serve::serve(&mut agent, ring, options).await?;
            match stop {
                Stop::Signal => log::warn!("interrupted: writing what was seen so far"),
                Stop::Gone => log::warn!("cgroup {relative} was removed: the container ended"),
                _ => {}
            }
            let watched = humantime::format_duration(duration);
            (stop, format!("{place}, watched for up to {watched}"))
        }
    };
    let mut code = match stop {
        Stop::Exited(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1),
        Stop::Signal if owned.is_some() => 130,
        Stop::Signal | Stop::Deadline | Stop::Gone => 0,
    };
    let records: Vec<serde_json::Value> = agent
        .recorded()
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    match under {
        Under::Learn(learning) => {
            let used = agent.syscalls_used(&name, None);
            write_learned(
                &learning,
                &origin,
                &records,
                watched,
                &uids_before,
                Some(&used),
            )?;
        }
        Under::Check(file, format) => {
            let findings = learn::check::from_audit_run(&records);
            let text = learn::check::report(
                &findings,
                &name,
                file,
                &format!("profile `{name}` forced to audit mode, the kernel judged"),
                format,
            );
            match format {
                learn::check::Format::Table => eprint!("{text}"),
                learn::check::Format::Json => print!("{text}"),
            }
            if findings.failed() {
                code = 1;
            }
        }
        Under::Profile(_) => {}
    }
    drop(agent);
    if let Some(cgroup) = owned {
        cgroup.remove().context("removing the command's cgroup")?;
    }
    Ok(code)
}

/// Whether a learning run can learn capabilities and no-new-privileges (the kernel's
/// credential layout is known); says why not when it cannot.
pub fn learns_credentials(agent: &Agent) -> bool {
    match agent.credential_layout() {
        Ok(()) => true,
        Err(why) => {
            log::warn!(
                "capabilities and no-new-privileges are not learned: the kernel's credential layout is unknown: {why}"
            );
            false
        }
    }
}

/// Writes what a learning run (or an events file) shows: the learned profile, or the
/// existing profile with what is new merged in (the diff goes to standard error), and
/// the seccomp profile when asked for and `syscalls_used` is known, and the network
/// policies asked for (`--export`, from what was learned). `watched` says
/// whether the records hold every device access and every program's credentials (a
/// live learning run), so the profile may have `devices`, `capabilities` and
/// `no_new_privileges` lines.
pub fn write_learned(
    learning: &Learning<'_>,
    origin: &str,
    records: &[serde_json::Value],
    watched: learn::Watched,
    extra_uids: &[u32],
    syscalls_used: Option<&[u32]>,
) -> anyhow::Result<()> {
    let mut observed = learn::observe(records);
    observed.watched = watched;
    observed.uids.extend(extra_uids);
    let text = match learning.merge {
        Some(base) => {
            let existing = std::fs::read_to_string(base)
                .with_context(|| format!("reading {}", base.display()))?;
            let merged = learn::merge::merge(&existing, base, &observed)
                .map_err(|e| anyhow::anyhow!("cannot merge into {}: {e}", base.display()))?;
            eprint!("{}", merged.render_diff(base));
            merged.text
        }
        None => {
            let text = learn::profile_yaml(learning.name, origin, &observed);
            match learning.selector {
                // Right after `mode:`, where a profile's selector usually sits.
                Some(selector) => text.replacen(
                    "\nmode: enforce\n",
                    &format!("\nmode: enforce\nselector: {selector}\n"),
                    1,
                ),
                None => text,
            }
        }
    };
    match learning.profile_out {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?
        }
        None => print!("{text}"),
    }
    learn::export::write_all(
        learning.exports,
        &learn::export::Meta {
            name: learning.name,
            origin,
            namespaces: learn::export::namespaces(records),
            pod_labels: learning.pod_labels,
        },
        &observed,
    )?;
    if let (Some(out), Some(used)) = (learning.seccomp_out, syscalls_used) {
        let text = serde_json::to_string_pretty(&learn::seccomp(used))?;
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
        if let Some(relative) = learning
            .kubelet
            .and_then(|root| out.strip_prefix(root).ok())
        {
            eprintln!(
                "kubelet loads {} for a pod whose securityContext says: seccompProfile: {{type: Localhost, localhostProfile: {}}}",
                out.display(),
                relative.display()
            );
        }
    }
    Ok(())
}

/// The profile `exec` runs under: the file's, in audit mode for `--check`, or a
/// learning profile.
fn the_profile(under: &Under) -> anyhow::Result<Profile> {
    Ok(match under {
        Under::Profile(file) => one_profile(file)?,
        Under::Check(file, _) => {
            let mut p = one_profile(file)?;
            p.mode = Mode::Audit;
            p
        }
        // Credentials are added once the agent knows whether it can read them.
        Under::Learn(l) => {
            learn::learning_profile(l.name, false, None).map_err(|e| anyhow::anyhow!("{e}"))?
        }
    })
}

/// The host, the cgroup `exec` watches and the loaded kernel side, before any profile.
struct Prepared {
    host: host::HostInfo,
    /// The command's own cgroup, removed when dropped (`None` for a running one).
    owned: Option<OwnedCgroup>,
    path: PathBuf,
    relative: String,
    id: u64,
    level: u32,
    kernel: Kernel,
}

/// Prepares the host, makes (or finds) the cgroup and loads the kernel side.
fn prepare(target: &Target, hooks: SyscallHooks) -> anyhow::Result<Prepared> {
    let host = host::prepare()?;
    // The cgroup: a fresh one for a command, or the running one.
    let (owned, path, relative) = match target {
        Target::Command(_) => {
            let cgroup = OwnedCgroup::create(
                &host.cgroup2,
                &format!("cgwarden-exec-{}-{}", std::process::id(), unique()),
            )
            .context("creating the command's cgroup")?;
            let (path, relative) = (cgroup.path().to_path_buf(), cgroup.relative().to_owned());
            (Some(cgroup), path, relative)
        }
        Target::Running { cgroup, .. } => {
            let path = host.cgroup2.join(cgroup.trim_start_matches('/'));
            anyhow::ensure!(path.is_dir(), "cgroup {cgroup} does not exist");
            (None, path, (*cgroup).to_owned())
        }
    };
    let id = crate::host::cgroups::cgroup_id(&path)
        .with_context(|| format!("reading the id of {}", path.display()))?;
    let level = relative.split('/').filter(|p| !p.is_empty()).count() as u32;
    let mut kernel = Kernel::load(None)?;
    kernel.set_syscall_hooks(hooks);
    Ok(Prepared {
        host,
        owned,
        path,
        relative,
        id,
        level,
        kernel,
    })
}

fn one_profile(file: &Path) -> anyhow::Result<Profile> {
    let profiles = policy::load_path(file).map_err(crate::Error::Profile)?;
    <[_; 1]>::try_from(profiles)
        .map(|[p]| p)
        .map_err(|p: Vec<_>| {
            anyhow::anyhow!(
                "exactly one profile is needed; {} has {}",
                file.display(),
                p.len()
            )
        })
}

/// The serve loop's options for the one cgroup `exec` watches (its command's, or a
/// running container's): no rescan, inotify watch, control socket or metrics.
fn one_cgroup<'a>(
    policy: &'a Path,
    signals: serve::Signals,
    child: Option<&'a mut tokio::process::Child>,
    deadline: Option<tokio::time::Instant>,
    while_exists: Option<&'a Path>,
) -> Options<'a> {
    Options {
        policy,
        rescan: false,
        watch: None,
        child,
        control: None,
        metrics: None,
        signals,
        deadline,
        while_exists,
        until_claims_gone: false,
        learn_for: None,
        progress: None,
    }
}

/// Starts `command` inside the cgroup at `path` (it joins before exec).
fn spawn_in(path: &Path, command: &[OsString]) -> anyhow::Result<tokio::process::Child> {
    let (program, args) = command.split_first().context("no command given")?;
    let procs = File::options()
        .write(true)
        .open(path.join("cgroup.procs"))
        .context("opening cgroup.procs")?;
    let procs_fd = procs.as_raw_fd();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    // SAFETY: the closure runs in the forked child before exec and only calls write(2)
    // on an fd opened above; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let rc = libc::write(procs_fd, b"0".as_ptr().cast(), 1);
            if rc == 1 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let child = cmd.spawn().map_err(|source| CannotRun {
        program: program.to_string_lossy().into_owned(),
        source,
    })?;
    drop(procs);
    Ok(child)
}

/// Finds the cgroup (relative to `cgroup2`) of a running container: by the id its
/// cgroup path names (Docker, containerd, CRI-O, Podman; a unique prefix is enough),
/// else by asking runc for the container's init process and reading its cgroup.
pub fn find_container(cgroup2: &Path, id: &str) -> anyhow::Result<PathBuf> {
    match crate::engines::cgroup_path::find_cgroup(cgroup2, id) {
        Ok(path) => return Ok(PathBuf::from(path)),
        Err(crate::engines::cgroup_path::FindError::Ambiguous(paths)) => {
            anyhow::bail!("`{id}` names several containers: {}", paths.join(", "))
        }
        Err(crate::engines::cgroup_path::FindError::NotFound) => {}
    }
    let out = std::process::Command::new("runc")
        .args(["state", id])
        .output();
    if let Ok(out) = out
        && out.status.success()
        && let Ok(state) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        && let Some(pid) = state["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
        && pid != 0
        && let Some(path) = crate::host::procfs::cgroup_path(Path::new("/proc"), pid)
    {
        return Ok(PathBuf::from(path));
    }
    anyhow::bail!(
        "no running container `{id}`: no cgroup below {} names it and `runc state {id}` knows none",
        cgroup2.display()
    )
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
