//! The `rookery` command: REPL, scripts (`-f`), statements (`-c`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use datafusion::common::Result;
use rookery::display::OutputFormat;
use rookery::session::{available_cores, new_session, parse_byte_size, EngineOptions};
use rookery::shell::{is_interactive, read_script, Flow, Shell, DEFAULT_MAX_ROWS};

/// SQL over image folders and label files.
///
/// With no -f or -c, starts the interactive REPL.
#[derive(Debug, Parser)]
#[command(name = "rookery", version, about, long_about = None)]
struct Args {
    /// Run the statements of these SQL files in order, then exit.
    #[arg(short = 'f', long = "file", num_args = 1.., action = clap::ArgAction::Append, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Run this SQL (one or more statements), then exit. May be repeated.
    #[arg(short = 'c', long = "command", action = clap::ArgAction::Append, value_name = "SQL")]
    commands: Vec<String>,

    /// Output format of query results.
    #[arg(long, default_value = "table", value_parser = parse_format)]
    format: OutputFormat,

    /// Partitions (parallel streams) per query [default: all cores].
    #[arg(long, value_name = "N")]
    partitions: Option<usize>,

    /// Memory limit for query execution, e.g. 4G or 512M; a query that needs
    /// more fails with an error instead of being killed.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<usize>,

    /// Rows per batch for ordinary operators (image scans use the
    /// batch_rows table option).
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,

    /// Print results only: no banners, row counts or progress.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_format(text: &str) -> std::result::Result<OutputFormat, String> {
    text.parse().map_err(|e: datafusion::error::DataFusionError| e.to_string())
}

fn parse_size(text: &str) -> std::result::Result<usize, String> {
    parse_byte_size(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let partitions = args.partitions.unwrap_or_else(available_cores).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions)
        .enable_all()
        .build()?;
    let options = EngineOptions {
        partitions: Some(partitions),
        memory_limit: args.memory_limit,
        batch_size: args.batch_size,
    };
    let ctx = new_session(&options)?;
    let mut shell = Shell::new(ctx);
    shell.format = args.format;
    shell.quiet = args.quiet;

    if args.files.is_empty() && args.commands.is_empty() {
        let interactive = is_interactive();
        shell.show_progress = interactive && !args.quiet;
        if interactive {
            shell.max_rows = Some(DEFAULT_MAX_ROWS);
        }
        return rookery::repl::run_repl(&runtime, &mut shell);
    }
    runtime.block_on(async {
        for command in &args.commands {
            if shell.run_text(command, None).await? == Flow::Quit {
                return Ok(());
            }
        }
        for file in &args.files {
            let text = read_script(file)?;
            if shell.run_text(&text, Some(&file.display().to_string())).await? == Flow::Quit {
                return Ok(());
            }
        }
        Ok(())
    })
}
