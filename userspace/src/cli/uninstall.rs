//! `cgwarden uninstall`: remove every pinned link and map; enforcement ends.

use std::path::PathBuf;

use anyhow::Context as _;
use cgwarden::{bpf, host};

use super::DEFAULT_STATE_DIR;

/// Remove every pinned link and map: enforcement ends.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// Removes every pin under the state directory.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let state_dir = args.state_dir.as_path();
    host::prepare()?;
    if bpf::uninstall(state_dir).with_context(|| format!("removing {}", state_dir.display()))? {
        println!(
            "removed every link and map pinned in {}",
            state_dir.display()
        );
    } else {
        println!("nothing is pinned in {}", state_dir.display());
    }
    Ok(0)
}
