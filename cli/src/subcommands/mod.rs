//! The `rookery` command line: the top-level flags ([`GlobalArgs`]), one
//! `clap::Args` struct per subcommand with its `run`, and [`Cli::run`], one
//! `match` over them. Without a subcommand it runs `-f` scripts and `-c`
//! statements, or the REPL. Each subcommand has its module.

mod classify;
mod cluster;
mod demo;
mod generate;
mod serve;
mod workflows;

pub use classify::ClassifyArgs;
pub use cluster::{ExecutorArgs, SchedulerArgs};
pub use demo::DemoArgs;
pub use generate::{GenFramesArgs, GenSealionsArgs};
pub use serve::ServeArgs;
pub use workflows::{AugmentArgs, CropsArgs, TrainArgs};

use std::path::PathBuf;

use clap::Parser;
use datafusion::common::Result;
use rookery::session::{available_cores, new_session, parse_byte_size, EngineOptions};
use tokio::runtime::Runtime;

use crate::output::OutputFormat;
use crate::shell::{epoch_line, is_interactive, read_script, Flow, Shell, DEFAULT_MAX_ROWS};

/// SQL over image folders and label files.
///
/// With no -f or -c, starts the interactive REPL.
#[derive(Debug, Parser)]
#[command(name = "rookery", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Subcommand>,
}

/// The flags every subcommand reads.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Run the statements of these SQL files in order, then exit.
    #[arg(short = 'f', long = "file", num_args = 1.., action = clap::ArgAction::Append, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Run this SQL (one or more statements), then exit. May be repeated.
    #[arg(short = 'c', long = "command", action = clap::ArgAction::Append, value_name = "SQL")]
    pub commands: Vec<String>,

    /// Output format of query results: table, csv, json (an array) or ndjson.
    #[arg(long, default_value = "table", value_parser = parse_format)]
    pub format: OutputFormat,

    /// Partitions (parallel streams) per query [default: all cores].
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,

    /// Memory limit for query execution, e.g. 4G or 512M; a query that needs
    /// more fails with an error instead of being killed.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,

    /// Rows per batch for ordinary operators (image scans use the
    /// batch_rows table option).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Print results only: no banners, row counts or progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Set a script variable, used as ${NAME} in statements; wins over
    /// \set in scripts. May be repeated.
    #[arg(long = "set", value_name = "NAME=VALUE", action = clap::ArgAction::Append, value_parser = parse_var)]
    pub vars: Vec<(String, String)>,

    /// Run queries on an Apache Ballista cluster: the scheduler at
    /// df://HOST:PORT (started by `rookery scheduler`).
    #[arg(long, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
}

/// Every subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Run a Ballista scheduler whose sessions are Rookery's (its tables,
    /// functions and codecs); clients connect with --cluster df://HOST:PORT.
    Scheduler(SchedulerArgs),
    /// Run a Ballista executor with Rookery's functions and codecs, joining
    /// the scheduler at HOST:PORT.
    Executor(ExecutorArgs),
    /// The sea-lion demo: runs sql/sealions/01 to 06 on a data set (dots,
    /// thumbnails, training, counting, scoring) and prints where sub.csv is,
    /// the score table and the time taken.
    Demo(DemoArgs),
    /// Generate a labelled folder of deep-sea-like video frames (frames/,
    /// labels.csv with index,filename,label), for sql/classify/.
    GenFrames(GenFramesArgs),
    /// Serve over HTTP: POST an image file to /classify for {"label",
    /// "scores"} as JSON (with --model), POST SQL to /sql for its rows
    /// (CSV, JSON or Arrow by Accept), GET /health. Ctrl-C stops it
    /// gracefully.
    Serve(ServeArgs),
    /// Classify images with an ONNX image classifier: prints ['label'] per
    /// image (or with --verbose every [label, score], highest first). With
    /// no --image, reads one image from standard input.
    Classify(ClassifyArgs),
    /// Augment a labelled image folder: writes every labelled image and
    /// --copies seeded random variants of it (PNG, NAME_augK.png) to the
    /// output folder, and a new label file filename,label,weight whose
    /// weights balance the classes. Built on image_flip_h, image_rotate,
    /// random_crop, image_adjust, image_noise and seeded_random.
    Augment(AugmentArgs),
    /// Train the CNN (cnn_train) on a labelled image folder and write the
    /// ONNX model; prints cnn_train's result.
    Train(TrainArgs),
    /// Cut one labelled crop per animal: finds the coloured dots on the
    /// dotted images (blob_dots), cuts a square centred on each from the
    /// plain image of the same name (thumbnail), and writes
    /// NAME_X_Y.png and labels.csv (filename,label,source,x,y).
    Crops(CropsArgs),
    /// Generate a sea-lion-like data set (Train/, TrainDotted/, Test/,
    /// train.csv, MismatchedTrainImages.txt, and ground truth in truth/).
    GenSealions(GenSealionsArgs),
    /// Report what can run models here: the ONNX Runtime library in use
    /// and its build, each execution provider (cpu, cuda, tensorrt) and
    /// what it misses, the CUDA libraries, NVIDIA's driver and the GPUs.
    /// Fails when ONNX Runtime itself is missing.
    Doctor,
}

/// `rookery doctor`.
fn doctor() -> Result<()> {
    let report = rookery_models::providers::doctor();
    print!("{report}");
    match report.library {
        Ok(_) => Ok(()),
        Err(_) => Err(datafusion::common::DataFusionError::Execution(
            "ONNX Runtime is missing: run scripts/setup-onnxruntime.sh".to_string(),
        )),
    }
}

impl Cli {
    /// Runs the subcommand, or the scripts, statements or REPL.
    pub fn run(self) -> Result<()> {
        let global = &self.global;
        match self.command {
            None => run_sql(global),
            Some(Subcommand::Scheduler(args)) => args.run(global),
            Some(Subcommand::Executor(args)) => args.run(global),
            Some(Subcommand::Demo(args)) => args.run(global),
            Some(Subcommand::GenFrames(args)) => args.run(global),
            Some(Subcommand::Serve(args)) => args.run(global),
            Some(Subcommand::Classify(args)) => args.run(),
            Some(Subcommand::Augment(args)) => args.run(global),
            Some(Subcommand::Train(args)) => args.run(global),
            Some(Subcommand::Crops(args)) => args.run(global),
            Some(Subcommand::GenSealions(args)) => args.run(global),
            Some(Subcommand::Doctor) => doctor(),
        }
    }
}

/// What the commands that run SQL share: a runtime with a worker per
/// partition and the session's options.
struct Engine {
    runtime: Runtime,
    options: EngineOptions,
    partitions: usize,
}

impl Engine {
    fn start(global: &GlobalArgs) -> Result<Self> {
        let partitions = global.partitions.unwrap_or_else(available_cores).max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(partitions)
            .enable_all()
            .build()?;
        let options = EngineOptions {
            partitions: Some(partitions),
            memory_limit: global.memory_limit,
            batch_size: global.batch_size,
            ..Default::default()
        };
        if !global.quiet {
            options.training.on_progress(|epoch| eprintln!("{}", epoch_line(epoch)));
        }
        Ok(Self {
            runtime,
            options,
            partitions,
        })
    }

    /// A shell on a session (local, or on the --cluster), with the global
    /// output flags and --set variables.
    fn shell(&self, global: &GlobalArgs) -> Result<Shell> {
        let ctx = match &global.cluster {
            Some(url) => self.runtime.block_on(rookery::cluster::connect(url, &self.options))?,
            None => new_session(&self.options)?,
        };
        let mut shell = Shell::new(ctx);
        shell.training = self.options.training.clone();
        shell.format = global.format;
        shell.quiet = global.quiet;
        for (name, value) in &global.vars {
            shell.pin_var(name, value);
        }
        Ok(shell)
    }
}

/// No subcommand: `-c` statements, then `-f` scripts, or the REPL.
fn run_sql(global: &GlobalArgs) -> Result<()> {
    let engine = Engine::start(global)?;
    let mut shell = engine.shell(global)?;
    if global.files.is_empty() && global.commands.is_empty() {
        let interactive = is_interactive();
        shell.show_progress = interactive && !global.quiet;
        if interactive {
            shell.max_rows = Some(DEFAULT_MAX_ROWS);
        }
        return crate::repl::run_repl(&engine.runtime, &mut shell);
    }
    engine.runtime.block_on(async {
        for command in &global.commands {
            if shell.run_text(command, None).await? == Flow::Quit {
                return Ok(());
            }
        }
        for file in &global.files {
            let text = read_script(file)?;
            if shell.run_text(&text, Some(&file.display().to_string())).await? == Flow::Quit {
                return Ok(());
            }
        }
        Ok(())
    })
}

fn parse_var(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not NAME=VALUE")),
    }
}

fn parse_format(text: &str) -> std::result::Result<OutputFormat, String> {
    text.parse()
        .map_err(|e: datafusion::error::DataFusionError| e.to_string())
}

fn parse_size(text: &str) -> std::result::Result<usize, String> {
    parse_byte_size(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_kebab_case_and_the_plans_spellings_still_work() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let cli = parse(&[
            "rookery",
            "augment",
            "--input-folder",
            "in",
            "--output_folder",
            "out",
            "--label-file",
            "labels.csv",
            "--new_label_and_weights_file",
            "new.csv",
        ])
        .unwrap();
        let Some(Subcommand::Augment(augment)) = cli.command else {
            panic!("augment")
        };
        assert_eq!(augment.input_folder, PathBuf::from("in"));
        assert_eq!(augment.output_folder, PathBuf::from("out"));
        assert!(parse(&["rookery", "serve", "--max-connections", "4", "--allow-host", "h"]).is_ok());
        assert!(parse(&["rookery", "--memory-limit", "2G", "-c", "SELECT 1"]).is_ok());
        assert!(
            parse(&["rookery", "crops", "--dotted", "d", "--plain", "p"]).is_err(),
            "--output-folder is required"
        );
    }
}
