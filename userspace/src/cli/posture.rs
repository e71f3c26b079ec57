//! `cgwarden posture`: every container's configuration against the CIS Docker
//! Benchmark, from the running agent or, with none running, from the host.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cgwarden::{control, error::code};

use super::Output;

/// Every container's configuration checked against the CIS Docker Benchmark's
/// runtime section: a table per container (check, verdict, evidence) and its total.
/// Asks the running agent; with no agent running, reads the host itself.
#[derive(clap::Args)]
pub struct Args {
    /// Only this container: its id (a unique prefix is enough) or its name.
    #[arg(long)]
    pub container: Option<String>,
    /// `table` or `json`.
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: Output,
    /// A container runtime API socket besides the known ones (with no agent
    /// running; the agent uses its own list); repeatable.
    #[arg(long = "runtime-socket")]
    pub runtime_sockets: Vec<PathBuf>,
    #[arg(long, default_value = control::DEFAULT_SOCKET)]
    pub control: PathBuf,
}

/// Prints every container's posture (or one's): the running agent's, or with no agent
/// running, decided here from the host's engines.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let socket = args.control.as_path();
    let container = args.container.as_deref();
    let json = args.output == Output::Json;
    let runtime_sockets = &args.runtime_sockets;
    use std::io::ErrorKind;
    let agent = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => true,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => false,
        Err(e) => {
            return Err(cgwarden::Error::Agent(format!(
                "cannot reach the agent at {}: {e}",
                socket.display()
            ))
            .into());
        }
    };
    let mut containers: Vec<serde_json::Value> = if agent {
        let answer = control::request(socket, control::Command::Posture {})?;
        if answer["enabled"].as_bool() == Some(false) {
            anyhow::bail!("the running agent does not check postures (it runs with --no-posture)");
        }
        answer["containers"].as_array().cloned().unwrap_or_default()
    } else {
        local_postures(runtime_sockets)?
    };
    if let Some(wanted) = container {
        containers.retain(|c| {
            let who = &c["container"];
            who["name"].as_str() == Some(wanted)
                || who["id"].as_str().is_some_and(|id| id.starts_with(wanted))
        });
        if containers.is_empty() {
            eprintln!("no container {wanted} is known");
            return Ok(i32::from(code::FOUND));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&containers)?);
    } else {
        print!("{}", cgwarden::posture::table::render(&containers));
    }
    Ok(0)
}

/// Every container's posture, decided from the engines' state on this host.
fn local_postures(extra_sockets: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    use cgwarden::posture::{Posture, facts};
    let cgroup2 = cgwarden::host::cgroups::find_cgroup2_mount(Path::new("/proc/self/mountinfo"))
        .context("finding the cgroup2 mount")?;
    let mut known = cgwarden::engines::known::Known::new(cgwarden::engines::Dirs::default());
    known.refresh(&cgroup2);
    let mut sockets: Vec<PathBuf> = cgwarden::policy::syscalls::RUNTIME_SOCKETS
        .iter()
        .map(PathBuf::from)
        .collect();
    sockets.extend_from_slice(extra_sockets);
    let host = facts::Host::new(&sockets);
    let mut all: Vec<_> = known
        .oci()
        .map(|c| {
            let posture = Posture::evaluate(&facts::Facts::gather(c, known.dirs(), &host));
            cgwarden::posture::assessed_json(&c.identity, c.cgroup.as_deref(), &posture)
        })
        .collect();
    all.sort_by_key(|c| {
        (
            c["container"]["name"].to_string(),
            c["container"]["id"].to_string(),
        )
    });
    Ok(all)
}
