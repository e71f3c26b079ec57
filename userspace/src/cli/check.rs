//! `cgwarden check`: validate profiles; every error as file:line:column.

use std::path::PathBuf;

use cgwarden::{error::code, policy};

/// Validate profiles; print each error as file:line:column.
#[derive(clap::Args)]
pub struct Args {
    /// Profile files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Validates profiles; 0 when all are valid.
pub fn run(args: &Args) -> i32 {
    let paths = &args.paths;
    let mut failed = false;
    for path in paths {
        match policy::load_path(path) {
            Ok(profiles) => {
                for p in profiles {
                    println!("{}: profile `{}` is valid", p.source.display(), p.name);
                    for w in policy::lint::warnings(&p) {
                        eprintln!("{}: warning: {w}", p.source.display());
                    }
                }
            }
            Err(errors) => {
                failed = true;
                eprintln!("{errors}");
            }
        }
    }
    i32::from(if failed { code::FOUND } else { code::OK })
}
