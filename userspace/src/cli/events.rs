//! `cgwarden events`: follow the running agent's live events as JSON lines.

use std::path::PathBuf;

use cgwarden::control;

/// Follow the running agent's live events as JSON lines, until interrupted (what
/// was written before is in the agent's sinks).
#[derive(clap::Args)]
pub struct Args {
    /// Accepted for scripts written for earlier versions: `events` always follows.
    #[arg(long, hide = true)]
    pub follow: bool,
    /// Only events of this kind (connect, sendmsg, packet, bind, dns, syscall, sysctl,
    /// deviation, lost).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events of cgroups whose path contains this (a container id or name).
    #[arg(long)]
    pub container: Option<String>,
    #[arg(long, default_value = control::DEFAULT_SOCKET)]
    pub control: PathBuf,
}

/// Copies the live event stream to standard output.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let socket = &args.control;
    let filter = control::Filter {
        kind: args.kind,
        container: args.container,
    };
    control::follow(socket, filter, &mut std::io::stdout())?;
    Ok(0)
}
