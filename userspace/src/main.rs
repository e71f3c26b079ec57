//! The `cgwarden` command line: parses arguments and hands each subcommand to its
//! module in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(args.command.default_log_level()),
    )
    .format_timestamp_millis()
    .init();
    match cli::run(args.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("cgwarden: {e:#}");
            ExitCode::from(2)
        }
    }
}
