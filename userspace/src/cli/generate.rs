//! `cgwarden generate`: shell completions and man pages, from the command line's own
//! definition, so they never drift from it. Hidden: `cargo xtask completions` writes
//! both into `target/`, and packagers install them from there.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;

use super::Cli;

#[derive(clap::Subcommand)]
pub enum Generate {
    /// A completion script for one shell, on standard output.
    Completion { shell: clap_complete::Shell },
    /// Man pages (`cgwarden.1` and one per subcommand) into a directory.
    Man { dir: PathBuf },
}

pub fn run(what: Generate) -> anyhow::Result<i32> {
    match what {
        Generate::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cgwarden",
                &mut std::io::stdout(),
            );
        }
        Generate::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
    }
    Ok(0)
}
