//! The library's errors at its boundary, by what could not go on, and the exit code the
//! binary gives each (docs/operations.md, "Exit codes"). Functions deep inside return
//! their own typed errors (`policy::PolicyErrors`, `bpf::LoadError`) or add context
//! with `anyhow`; [`exit_code`] finds the failure class anywhere in the chain.

use crate::{bpf::LoadError, policy};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A profile is invalid: every error, at file:line:column.
    #[error(transparent)]
    Profile(#[from] policy::PolicyErrors),
    /// The agent's config file is unreadable or invalid (at file:line:column).
    #[error("{0}")]
    Config(String),
    /// The host cannot run the kernel side: not root, no cgroup v2, no bpffs.
    #[error("{0}")]
    Host(String),
    /// The kernel refused the eBPF object, one of its programs or maps.
    #[error(transparent)]
    Kernel(#[from] LoadError),
    /// The running agent could not be reached over its control socket, or its answer
    /// was not understood.
    #[error("{0}")]
    Agent(String),
}

/// Exit codes of every command but `exec` (which gives `docker run`'s), as
/// docs/operations.md lists them.
pub mod code {
    /// Done.
    pub const OK: u8 = 0;
    /// Done, and it found something: `check` an invalid profile, `learn --check`
    /// something the profile would deny, `reload` a set the agent refused, `status` an
    /// agent that refused to answer, `posture --container` no such container.
    pub const FOUND: u8 = 1;
    /// Any other failure, and a command line clap refused.
    pub const FAILED: u8 = 2;
    /// A profile or the agent's config file is invalid.
    pub const INVALID_INPUT: u8 = 3;
    /// The host cannot run the kernel side (privileges, cgroup v2, bpffs).
    pub const HOST: u8 = 4;
    /// The kernel refused the eBPF object, a program or a map.
    pub const KERNEL: u8 = 5;
    /// The running agent could not be reached.
    pub const AGENT: u8 = 6;
}

impl Error {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Profile(_) | Self::Config(_) => code::INVALID_INPUT,
            Self::Host(_) => code::HOST,
            Self::Kernel(_) => code::KERNEL,
            Self::Agent(_) => code::AGENT,
        }
    }
}

/// The exit code for an error: the class of the first [`Error`] (or of an error one of
/// its variants wraps) in the chain; [`code::FAILED`] when none is there.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<Error>() {
                Some(e.exit_code())
            } else if cause.is::<policy::PolicyErrors>() || cause.is::<policy::PolicyError>() {
                Some(code::INVALID_INPUT)
            } else if cause.is::<LoadError>() {
                Some(code::KERNEL)
            } else {
                None
            }
        })
        .unwrap_or(code::FAILED)
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    #[test]
    fn the_class_is_found_under_any_context() {
        let host: anyhow::Result<()> = Err(Error::Host("cgroup v2 is required".into()).into());
        let e = host
            .context("starting the agent")
            .context("run")
            .unwrap_err();
        assert_eq!(exit_code(&e), code::HOST);
        let agent = anyhow::Error::from(Error::Agent("cannot reach the agent".into()));
        assert_eq!(exit_code(&agent), code::AGENT);
        let profile = policy::parse_str("name: x\negress: {default: maybe}\n", "p.yaml".as_ref())
            .unwrap_err();
        let e = anyhow::Error::from(profile).context("loading profiles");
        assert_eq!(exit_code(&e), code::INVALID_INPUT);
        assert_eq!(exit_code(&anyhow::anyhow!("something else")), code::FAILED);
    }
}
