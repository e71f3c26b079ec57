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

/// Runs `command` under the single profile in `policy_file`; returns the exit code to
/// exit with (the command's, or 128 + signal when it was killed).
pub async fn exec(
    policy_file: &Path,
    sinks: Sinks,
    resolver: Resolver,
    command: &[OsString],
) -> anyhow::Result<i32> {
    let profiles = policy::load_path(policy_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let [profile] = <[_; 1]>::try_from(profiles).map_err(|p: Vec<_>| {
        anyhow::anyhow!(
            "exec takes exactly one profile; {} has {}",
            policy_file.display(),
            p.len()
        )
    })?;
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
    drop(agent);
    cgroup.remove().context("removing the command's cgroup")?;
    Ok(code)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
