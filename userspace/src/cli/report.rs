//! `cgwarden report`: what an events file says, per container.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Output;

/// Summarise an events file per container: egress denials, syscall attempts with the
/// processes behind them, sysctl writes.
#[derive(clap::Args)]
pub struct Args {
    /// The events file (JSON lines); `-` or unset: standard input.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// `table` for a person, `json` for a program.
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: Output,
    /// The same as `-o json` (kept for scripts that use it).
    #[arg(long, hide = true)]
    pub json: bool,
}

/// Prints the per-container report of an events file.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let events = args.events.as_deref();
    let json = args.json || args.output == Output::Json;
    use std::io::BufReader;
    let report = match events {
        Some(path) if path != Path::new("-") => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            cgwarden::report::build(BufReader::new(file))?
        }
        _ => cgwarden::report::build(std::io::stdin().lock())?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", cgwarden::report::render(&report));
    }
    Ok(0)
}

/// Reads an events file (`-` or unset: standard input); lines that are not JSON are
/// skipped.
pub(super) fn read_records(events: Option<&Path>) -> anyhow::Result<Vec<serde_json::Value>> {
    use std::io::{BufRead, BufReader};
    let reader: Box<dyn BufRead> = match events {
        Some(path) if path != Path::new("-") => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut records = Vec::new();
    for line in reader.lines() {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line?) {
            records.push(value);
        }
    }
    Ok(records)
}
