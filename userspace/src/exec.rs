//! `cgwarden exec`: run one command in a fresh cgroup under one profile, with an
//! embedded agent, and clean everything up afterwards.

use std::{
    ffi::OsString,
    fs::File,
    os::{fd::AsRawFd, unix::process::ExitStatusExt},
    path::Path,
};

use anyhow::Context as _;

use crate::{
    agent::Agent,
    bpf::Kernel,
    cgroups::OwnedCgroup,
    host, policy,
    resolver::Resolver,
    serve::{self, Options, Stop},
    sinks::Sinks,
};

/// What `exec` runs the command under.
pub enum Under<'a> {
    /// The single profile in this file.
    Profile(&'a Path),
    /// Learn mode: write the learned profile (and optionally an OCI seccomp profile).
    Learn {
        name: &'a str,
        profile_out: &'a Path,
        seccomp_out: Option<&'a Path>,
    },
}

/// Runs `command` under a profile (or learns one); returns the exit code to exit with
/// (the command's, or 128 + signal when it was killed).
pub async fn exec(
    under: Under<'_>,
    sinks: Sinks,
    resolver: Resolver,
    command: &[OsString],
) -> anyhow::Result<i32> {
    let (profile, policy_file) = match &under {
        Under::Profile(policy_file) => {
            let profiles = policy::load_path(policy_file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let [profile] = <[_; 1]>::try_from(profiles).map_err(|p: Vec<_>| {
                anyhow::anyhow!(
                    "exec takes exactly one profile; {} has {}",
                    policy_file.display(),
                    p.len()
                )
            })?;
            (profile, *policy_file)
        }
        Under::Learn { name, .. } => (
            crate::learn::learning_profile(name).map_err(|e| anyhow::anyhow!("{e}"))?,
            Path::new("/dev/null"),
        ),
    };
    let name = profile.name.as_str().to_owned();
    let (program, args) = command.split_first().context("no command given")?;

    let host = host::prepare()?;
    let cgroup = OwnedCgroup::create(
        &host.cgroup2,
        &format!("cgwarden-exec-{}-{}", std::process::id(), unique()),
    )
    .context("creating the command's cgroup")?;
    let mut kernel = Kernel::load(None)?;
    kernel.attach(cgroup.path())?;
    let ring = kernel.take_events().context("event ring buffer")?;
    let mut agent = Agent::new(kernel, host.cgroup2.clone(), sinks, resolver)?;
    agent.install(vec![profile])?;
    agent.assign(cgroup.id(), cgroup.relative(), cgroup.level(), &name)?;
    if matches!(under, Under::Learn { .. }) {
        agent.record_all();
    }

    let procs = File::options()
        .write(true)
        .open(cgroup.path().join("cgroup.procs"))
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
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    drop(procs);

    let stop = serve::serve(
        &mut agent,
        ring,
        Options {
            policy: policy_file,
            rescan: false,
            watch: false,
            child: Some(&mut child),
            control: None,
            metrics: None,
        },
    )
    .await?;
    let code = match stop {
        Stop::Exited(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1),
        Stop::Signal => 130,
    };
    if let Under::Learn {
        profile_out,
        seccomp_out,
        name,
    } = under
    {
        let records: Vec<serde_json::Value> = agent
            .recorded()
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        let observed = crate::learn::observe(&records);
        let origin = format!(
            "`{}`",
            command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        std::fs::write(
            profile_out,
            crate::learn::profile_yaml(name, &origin, &observed),
        )
        .with_context(|| format!("writing {}", profile_out.display()))?;
        if let Some(out) = seccomp_out {
            let used = agent.syscalls_used(name);
            let text = serde_json::to_string_pretty(&crate::learn::seccomp(&used))?;
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
        }
    }
    drop(agent);
    cgroup.remove().context("removing the command's cgroup")?;
    Ok(code)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
