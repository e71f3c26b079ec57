//! The `cgwarden` command line: parses arguments and hands each subcommand to its
//! module in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Large one-off buffers (the kernel's BTF, read once at start, ≈ 6 MB) go back to the
    // system when freed: without a fixed threshold glibc raises it after the first such
    // free and keeps the next ones in the heap for the agent's whole life.
    // SAFETY: mallopt only changes allocator tuning; called before any thread exists.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
    let args = cli::Cli::parse();
    if args.command.only_prints() {
        // A closed reader ends a printing command as it ends `cat`, not with a panic.
        // SAFETY: restores the default action of one signal before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(args.command.default_log_level()),
    )
    .format_timestamp_millis()
    .init();
    match cli::run(args.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(cgwarden::error::code::FAILED)),
        Err(e) => {
            eprintln!("cgwarden: {e:#}");
            ExitCode::from(cgwarden::error::exit_code(&e))
        }
    }
}
