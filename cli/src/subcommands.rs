//! The `rookery` command line: the top-level flags ([`GlobalArgs`]), one
//! `clap::Args` struct per subcommand with its `run`, and [`Cli::run`], one
//! `match` over them. Without a subcommand it runs `-f` scripts and `-c`
//! statements, or the REPL.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use datafusion::common::{plan_err, DataFusionError, Result};
use rookery::session::{available_cores, new_session, parse_byte_size, EngineOptions};
use rookery_image::options::OptionSet;
use rookery_models::runtime::{threads_per_session, Classifier, ClassifyOptions, ModelOutput};
use rookery_udfs::functions::model_rows::SqlResult;
use tokio::runtime::Runtime;

use crate::output::OutputFormat;
use crate::serve::{serve_until_ctrl_c, Access, App, ServeLimits};
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

/// Run a Ballista scheduler whose sessions are Rookery's (its tables,
/// functions and codecs); clients connect with --cluster df://HOST:PORT.
#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: std::net::SocketAddr,
    /// Bind an address other hosts can reach. Ballista's plans are not
    /// authenticated: anyone who reaches the port runs plans with this
    /// process's rights, so use it only on a private network.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Run a Ballista executor with Rookery's functions and codecs, joining
/// the scheduler at HOST:PORT.
#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub scheduler: std::net::SocketAddr,
    /// Where it serves shuffle data (Arrow Flight).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub bind: std::net::SocketAddr,
    /// Its gRPC port.
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks at once (default: one per core).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Bind an address other hosts can reach (see the scheduler's).
    #[arg(long)]
    pub allow_remote: bool,
}

/// The sea-lion demo: runs sql/sealions/01 to 06 on a data set (dots,
/// thumbnails, training, counting, scoring) and prints where sub.csv is,
/// the score table and the time taken.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The data set (the layout of the Kaggle competition).
    #[arg(long, default_value = "data/sealions")]
    pub data: PathBuf,
    /// Output folder (thumbnails, model, submissions).
    #[arg(long, default_value = "out/sealions")]
    pub out: PathBuf,
    /// Training epochs of both models [default: 04_train.sql's, 12 for the seed CNN and 15 for the count model].
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// Generate a labelled folder of deep-sea-like video frames (frames/,
/// labels.csv with index,filename,label), for sql/classify/.
#[derive(Debug, clap::Args)]
pub struct GenFramesArgs {
    /// Folder to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of frames.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
}

/// Serve over HTTP: POST an image file to /classify for {"label",
/// "scores"} as JSON (with --model), POST SQL to /sql for its rows
/// (CSV, JSON or Arrow by Accept), GET /health. Ctrl-C stops it
/// gracefully.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// SQL scripts to run first, in the server's session (to define
    /// tables); may repeat.
    #[arg(long = "init")]
    pub init: Vec<PathBuf>,
    /// The .onnx model for /classify: a path or a URL (s3://bucket/m.onnx).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Model options, as for cnn_classify.
    #[arg(long, default_value = "")]
    pub options: String,
    /// Connections open at once (more wait in the listen queue).
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Requests working at once (default: one per core).
    #[arg(long)]
    pub max_requests: Option<usize>,
    /// Largest request body, e.g. 64M (413 above it).
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    pub max_body: usize,
    /// Seconds a client has to send its headers (and an idle
    /// keep-alive connection stays open).
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a request may take (408 after).
    #[arg(long, default_value_t = 120)]
    pub request_timeout: u64,
    /// Seconds a client has to send a request's body (408 after).
    #[arg(long, default_value_t = 30)]
    pub body_timeout: u64,
    /// Largest /sql result, e.g. 256M (413 above it: add a LIMIT).
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub max_result: usize,
    /// Turn /sql on: read-only statements over the --table tables
    /// (and those --init made), with the token.
    #[arg(long)]
    pub sql: bool,
    /// Let /sql write and reach anything this process can: COPY, DDL,
    /// SET, images() of any folder, read_blob of any location,
    /// cnn_train. Implies --sql.
    #[arg(long)]
    pub sql_writes: bool,
    /// A table for /sql: NAME=LOCATION (an image folder, or a .csv,
    /// .tsv or .parquet file); may repeat. read_blob reads only under
    /// these locations unless --sql-writes.
    #[arg(long = "table", value_name = "NAME=LOCATION", value_parser = parse_table)]
    pub tables: Vec<(String, String)>,
    /// The token clients send as 'Authorization: Bearer TOKEN' (default:
    /// a random one, printed at start). Also read from
    /// $ROOKERY_SERVE_TOKEN, which keeps it out of the process list.
    #[arg(long)]
    pub token: Option<String>,
    /// A host name accepted in the Host header besides IP addresses and
    /// localhost (a name clients use for this machine); may repeat.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
}

/// Classify images with an ONNX image classifier: prints ['label'] per
/// image (or with --verbose every [label, score], highest first). With
/// no --image, reads one image from standard input.
#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// The .onnx model: a path or a URL (s3://bucket/m.onnx).
    #[arg(long)]
    pub model: PathBuf,
    /// An image file; repeat for several (one line each).
    #[arg(long = "image", action = clap::ArgAction::Append, value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// Print every label with its score, highest first.
    #[arg(short, long)]
    pub verbose: bool,
    /// Model options, as for cnn_classify: 'layout=NCHW, range=0..1, labels=a|b, size=64x64'.
    #[arg(long, default_value = "")]
    pub options: String,
}

/// Augment a labelled image folder: writes every labelled image and
/// --copies seeded random variants of it (PNG, NAME_augK.png) to the
/// output folder, and a new label file filename,label,weight whose
/// weights balance the classes. Built on image_flip_h, image_rotate,
/// random_crop, image_adjust, image_noise and seeded_random.
#[derive(Debug, clap::Args)]
pub struct AugmentArgs {
    /// The images.
    #[arg(long = "input-folder", alias = "input_folder", value_name = "DIR")]
    pub input_folder: PathBuf,
    /// Where to write the images (created if missing).
    #[arg(long = "output-folder", alias = "output_folder", value_name = "DIR")]
    pub output_folder: PathBuf,
    /// CSV with a header: filename,label or index,filename,label.
    #[arg(long = "label-file", alias = "label_file", value_name = "CSV")]
    pub label_file: PathBuf,
    /// The CSV to write: filename,label,weight for every output image.
    #[arg(
        long = "new-label-and-weights-file",
        alias = "new_label_and_weights_file",
        value_name = "CSV"
    )]
    pub new_label_and_weights_file: PathBuf,
    /// Augmented copies per image (the original is written too).
    #[arg(long, default_value_t = 4)]
    pub copies: usize,
    /// Random seed: the same seed gives the same images.
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Steps, in order, each drawn at random per copy: flip, flipv,
    /// rotate90, rotate, crop, jitter, noise, scale.
    #[arg(long, default_value = "flip,rotate,crop,jitter")]
    pub steps: String,
}

/// Train the CNN (cnn_train) on a labelled image folder and write the
/// ONNX model; prints cnn_train's result.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The images.
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// CSV with a header: filename,label or index,filename,label.
    #[arg(long, value_name = "CSV")]
    pub labels: PathBuf,
    /// The model file to write.
    #[arg(long, default_value = "model.onnx")]
    pub output: PathBuf,
    /// Training epochs [default: cnn_train's, 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Fraction of images held out for validation [default: 0.2].
    #[arg(long)]
    pub validation: Option<f64>,
    /// Random seed [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// More cnn_train options, e.g. 'augment=flip, class_weights=balanced'.
    #[arg(long, default_value = "")]
    pub options: String,
}

/// Cut one labelled crop per animal: finds the coloured dots on the
/// dotted images (blob_dots), cuts a square centred on each from the
/// plain image of the same name (thumbnail), and writes
/// NAME_X_Y.png and labels.csv (filename,label,source,x,y).
#[derive(Debug, clap::Args)]
pub struct CropsArgs {
    /// Images with coloured dots on the animals.
    #[arg(long, value_name = "DIR")]
    pub dotted: PathBuf,
    /// The same images without dots.
    #[arg(long, value_name = "DIR")]
    pub plain: PathBuf,
    /// Where to write the crops and labels.csv.
    #[arg(long = "output-folder", alias = "output_folder", value_name = "DIR")]
    pub output_folder: PathBuf,
    /// Side of the square crops in pixels.
    #[arg(long, default_value_t = 64)]
    pub size: u32,
}

/// Generate a sea-lion-like data set (Train/, TrainDotted/, Test/,
/// train.csv, MismatchedTrainImages.txt, and ground truth in truth/).
#[derive(Debug, clap::Args)]
pub struct GenSealionsArgs {
    /// Folder to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Training images.
    #[arg(long, default_value_t = 30)]
    pub train: usize,
    /// Test images.
    #[arg(long, default_value_t = 10)]
    pub test: usize,
    /// Image size, WIDTHxHEIGHT (the real frames are 4992x3328).
    #[arg(long, default_value = "960x640", value_parser = parse_dimensions)]
    pub size: (u32, u32),
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 2017)]
    pub seed: u64,
    /// Most animals in one image.
    #[arg(long, default_value_t = 80)]
    pub max_animals: usize,
}

impl SchedulerArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        check_cluster_bind("scheduler", &self.bind, self.allow_remote)?;
        let engine = Engine::start(global)?;
        engine
            .runtime
            .block_on(rookery::cluster::run_scheduler(self.bind, engine.options))
    }
}

impl ExecutorArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        check_cluster_bind("executor", &self.bind, self.allow_remote)?;
        let engine = Engine::start(global)?;
        let executor = rookery::cluster::ExecutorOptions {
            scheduler: self.scheduler,
            bind: self.bind,
            grpc_port: self.grpc_port,
            concurrency: self.concurrency,
            engine: engine.options,
        };
        engine.runtime.block_on(rookery::cluster::run_executor(executor))
    }
}

impl DemoArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        let engine = Engine::start(global)?;
        let mut shell = engine.shell(global)?;
        shell.pin_var("data", &self.data.display().to_string());
        shell.pin_var("out", &self.out.display().to_string());
        if let Some(epochs) = self.epochs {
            shell.pin_var("epochs", &epochs.to_string());
            shell.pin_var("count_epochs", &epochs.to_string());
        }
        shell.show_progress = !global.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
        engine.runtime.block_on(crate::demo::run_demo(&mut shell, &self.out))
    }
}

impl GenFramesArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        let options = rookery::frames::FrameOptions {
            count: self.count,
            seed: self.seed,
            ..Default::default()
        };
        let written = rookery::frames::generate_frames(&self.out, &options)?;
        if !global.quiet {
            eprintln!("wrote {written} frames and labels.csv to {}", self.out.display());
        }
        Ok(())
    }
}

impl GenSealionsArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        let options = rookery::sealions::GenOptions {
            out: self.out,
            train: self.train,
            test: self.test,
            width: self.size.0,
            height: self.size.1,
            seed: self.seed,
            max_animals: self.max_animals,
        };
        gen_sealions(options, global.quiet)
    }
}

impl ClassifyArgs {
    fn run(self) -> Result<()> {
        match classify(&self.model, self.images, self.verbose, &self.options)? {
            true => Ok(()),
            false => Err(DataFusionError::Execution("some images could not be classified".into())),
        }
    }
}

impl AugmentArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        use rookery::workflows::augment;
        let engine = Engine::start(global)?;
        let shell = engine.shell(global)?;
        let options = augment::AugmentOptions {
            input_folder: self.input_folder,
            output_folder: self.output_folder,
            label_file: self.label_file,
            new_label_file: self.new_label_and_weights_file,
            copies: self.copies,
            seed: self.seed,
            steps: augment::parse_steps(&self.steps)?,
        };
        let mut out = std::io::stdout().lock();
        engine
            .runtime
            .block_on(crate::workflows::run_augment(&shell.ctx, &options, &mut out))
    }
}

impl TrainArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        let engine = Engine::start(global)?;
        let shell = engine.shell(global)?;
        let command = rookery::workflows::train::TrainCommand {
            images: self.images,
            labels: self.labels,
            output: self.output,
            epochs: self.epochs,
            validation: self.validation,
            seed: self.seed,
            options: self.options,
        };
        let mut out = std::io::stdout().lock();
        engine.runtime.block_on(crate::workflows::run_train(
            &shell.ctx,
            &command,
            global.format,
            &mut out,
        ))
    }
}

impl CropsArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        let engine = Engine::start(global)?;
        let shell = engine.shell(global)?;
        let command = rookery::workflows::crops::CropsCommand {
            dotted: self.dotted,
            plain: self.plain,
            output_folder: self.output_folder,
            size: self.size,
        };
        let mut out = std::io::stdout().lock();
        engine
            .runtime
            .block_on(crate::workflows::run_crops(&shell.ctx, &command, &mut out))
    }
}

impl ServeArgs {
    fn run(self, global: &GlobalArgs) -> Result<()> {
        let engine = Engine::start(global)?;
        let mut shell = engine.shell(global)?;
        let classifier = match &self.model {
            Some(model) => {
                let options = ClassifyOptions::parse(&self.options)?;
                // Requests run side by side: one ONNX Runtime thread per core each may use.
                let threads = threads_per_session(engine.partitions);
                let loaded = Classifier::load(&model_file(model)?, &options, &ModelOutput::Classes, threads).sql()?;
                Some(Arc::new(loaded))
            }
            None => None,
        };
        let defaults = ServeLimits::default();
        let limits = ServeLimits {
            max_connections: self.max_connections,
            max_requests: self.max_requests.unwrap_or(defaults.max_requests),
            max_body: self.max_body,
            header_timeout: std::time::Duration::from_secs(self.header_timeout),
            request_timeout: std::time::Duration::from_secs(self.request_timeout),
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
            max_result: self.max_result,
            ..defaults
        };
        let given = self.token.clone().or_else(|| std::env::var("ROOKERY_SERVE_TOKEN").ok());
        let generated = given.is_none();
        let token = match given {
            Some(given) if given.trim().is_empty() => return plan_err!("the serve token may not be empty"),
            Some(given) => given,
            None => crate::serve::generate_token()?,
        };
        let access = Access {
            token: Some(token.clone()),
            sql: self.sql || self.sql_writes,
            sql_writes: self.sql_writes,
            readable: self.tables.iter().map(|(_, location)| location.clone()).collect(),
            allowed_hosts: self.allowed_hosts.clone(),
        };
        engine.runtime.block_on(async {
            for (name, location) in &self.tables {
                rookery::exec::run_sql(&shell.ctx, &table_statement(name, location))
                    .await
                    .map_err(|e| DataFusionError::Plan(format!("--table {name}={location}: {e}")))?;
            }
            for file in &self.init {
                let text = read_script(file)?;
                shell.run_text(&text, Some(&file.display().to_string())).await?;
            }
            let what = match (classifier.is_some(), access.sql, access.sql_writes) {
                (true, true, false) => "POST an image to /classify, read-only SQL to /sql",
                (true, true, true) => "POST an image to /classify, SQL to /sql (writes allowed)",
                (true, false, _) => "POST an image to /classify; /sql is off (--sql)",
                (false, true, false) => "POST read-only SQL to /sql",
                (false, true, true) => "POST SQL to /sql (writes allowed)",
                (false, false, _) => "no /classify (--model) and no /sql (--sql): only /health",
            };
            let app = Arc::new(App::new(shell.ctx.clone(), classifier, limits, access)?);
            serve_until_ctrl_c(app, &self.addr, |bound| {
                eprintln!("rookery serve: listening on http://{bound} ({what})");
                // A generated token is shown once, as Jupyter does; a given
                // one the user has already.
                if generated {
                    eprintln!("rookery serve: send 'Authorization: Bearer {token}' with each request");
                } else {
                    eprintln!("rookery serve: send 'Authorization: Bearer' and the token you gave with each request");
                }
            })
            .await
        })
    }
}

fn parse_var(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not NAME=VALUE")),
    }
}

fn parse_dimensions(text: &str) -> std::result::Result<(u32, u32), String> {
    let parse = |s: &str| s.trim().parse::<u32>().ok().filter(|n| *n >= 64);
    match text.split_once(['x', 'X']) {
        Some((w, h)) => match (parse(w), parse(h)) {
            (Some(w), Some(h)) => Ok((w, h)),
            _ => Err(format!(
                "'{text}': width and height must be whole numbers of at least 64"
            )),
        },
        None => Err(format!("'{text}' is not WIDTHxHEIGHT (example: 4992x3328)")),
    }
}

fn gen_sealions(options: rookery::sealions::GenOptions, quiet: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let files = rookery::sealions::generate(&options, available_cores(), |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    if !quiet {
        eprintln!(
            "wrote {files} files to {} in {:.1} s",
            options.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn parse_format(text: &str) -> std::result::Result<OutputFormat, String> {
    text.parse()
        .map_err(|e: datafusion::error::DataFusionError| e.to_string())
}

/// A scheduler or executor listens on loopback unless told otherwise:
/// Ballista runs any plan it is sent, unauthenticated.
fn check_cluster_bind(what: &str, bind: &std::net::SocketAddr, allow_remote: bool) -> Result<()> {
    if bind.ip().is_loopback() {
        return Ok(());
    }
    if !allow_remote {
        return plan_err!(
            "the {what} would listen on {bind}, which other hosts can reach, and Ballista does not authenticate \
             the plans it is sent; bind 127.0.0.1, or give --allow-remote on a private network"
        );
    }
    eprintln!(
        "rookery {what}: listening on {bind} with --allow-remote: Ballista does not authenticate plans, so anyone \
         who reaches this port runs queries with this process's rights"
    );
    Ok(())
}

/// `--table NAME=LOCATION`.
fn parse_table(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, location)) if !name.trim().is_empty() && !location.trim().is_empty() => {
            Ok((name.trim().to_string(), location.trim().to_string()))
        }
        _ => Err(format!("'{text}' is not NAME=LOCATION")),
    }
}

/// The statement that makes a `--table`: by the location's extension a
/// CSV, TSV or Parquet table, else an image folder.
fn table_statement(name: &str, location: &str) -> String {
    let lower = location.to_ascii_lowercase();
    let (format, options) = if lower.ends_with(".csv") {
        ("CSV", " OPTIONS ('format.has_header' 'true')")
    } else if lower.ends_with(".tsv") {
        ("TSV", "")
    } else if lower.ends_with(".parquet") {
        ("PARQUET", "")
    } else {
        ("IMAGES", "")
    };
    let quoted_name = name.replace('"', "\"\"");
    let quoted_location = location.replace('\'', "''");
    format!("CREATE EXTERNAL TABLE \"{quoted_name}\" STORED AS {format} LOCATION '{quoted_location}'{options}")
}

fn parse_size(text: &str) -> std::result::Result<usize, String> {
    parse_byte_size(text).map_err(|e| e.to_string())
}

fn classify(model: &std::path::Path, images: Vec<PathBuf>, verbose: bool, options: &str) -> Result<bool> {
    use crate::classify::ImageSource;
    use std::io::Read;
    let sources = if images.is_empty() {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        vec![ImageSource::Stdin(bytes)]
    } else {
        images.into_iter().map(ImageSource::File).collect()
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    crate::classify::classify(&model_file(model)?, options, &sources, verbose, &mut out, &mut err)
}

/// The local file of a `--model` that may be an object store URL
/// (`s3://bucket/m.onnx`, configured by the environment as in SQL).
fn model_file(model: &std::path::Path) -> Result<PathBuf> {
    let stores = std::sync::Arc::new(rookery::stores::ObjectStoresFromEnv::default());
    rookery_udfs::Models::new(stores, Default::default()).local_file(&model.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_from_the_command_line() {
        assert_eq!(
            parse_table("frames = data/x/").unwrap(),
            ("frames".to_string(), "data/x/".to_string())
        );
        for bad in ["frames", "=data/", "frames="] {
            assert!(parse_table(bad).is_err(), "{bad}");
        }
        assert_eq!(
            table_statement("t", "labels.CSV"),
            "CREATE EXTERNAL TABLE \"t\" STORED AS CSV LOCATION 'labels.CSV' OPTIONS ('format.has_header' 'true')"
        );
        // Names and locations are quoted, so neither can end the statement.
        assert_eq!(
            table_statement("o\"k", "it's/"),
            "CREATE EXTERNAL TABLE \"o\"\"k\" STORED AS IMAGES LOCATION 'it''s/'"
        );
    }
}
