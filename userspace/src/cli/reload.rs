//! `cgwarden reload`: the running agent reloads its profiles; a bad set keeps the
//! running ones.

use std::path::{Path, PathBuf};

use cgwarden::{control, error::code};

/// Ask the running agent to reload its profiles; a bad set keeps the running ones.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = control::DEFAULT_SOCKET)]
    pub control: PathBuf,
}

/// Asks the agent to reload; [`code::FOUND`] when it refused the new set (and kept the
/// running one).
pub fn run(args: &Args) -> anyhow::Result<i32> {
    request(&args.control, control::Command::Reload {})
}

/// Sends a command to the running agent and prints its answer; 0 when it says ok.
pub(super) fn request(socket: &Path, command: control::Command) -> anyhow::Result<i32> {
    let answer = control::request(socket, command)?;
    let ok = answer["ok"].as_bool() == Some(true);
    match answer["error"].as_str() {
        Some(error) if !ok => eprintln!("{error}"),
        _ => println!("{}", serde_json::to_string_pretty(&answer)?),
    }
    Ok(i32::from(if ok { code::OK } else { code::FOUND }))
}
