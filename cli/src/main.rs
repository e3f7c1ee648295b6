//! The `rookery` binary: parses the command line and runs it
//! ([`rookery_cli::subcommands::Cli`]).

use std::process::ExitCode;

use clap::Parser;
use rookery_cli::subcommands::Cli;

/// mimalloc, as datafusion-cli: it reuses freed memory where glibc unmaps and
/// page-faults large buffers again (a third of training time, measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    rookery_cli::tune_allocator();
    match Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
