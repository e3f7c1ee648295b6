//! The `rookery` command: REPL, scripts (`-f`), statements (`-c`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use datafusion::common::Result;
use rookery::session::{available_cores, new_session, parse_byte_size, EngineOptions};
use rookery_cli::output::OutputFormat;
use rookery_cli::serve::{serve_until_ctrl_c, Access, App, ServeLimits};
use rookery_cli::shell::{epoch_line, is_interactive, read_script, Flow, Shell, DEFAULT_MAX_ROWS};
use rookery_udfs::cnn::runtime::{threads_per_session, Classifier, ClassifyOptions};

/// mimalloc, as datafusion-cli: it reuses freed memory where glibc unmaps and
/// page-faults large buffers again (a third of training time, measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    /// Output format of query results: table, csv, json (an array) or ndjson.
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
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Set a script variable, used as ${NAME} in statements; wins over
    /// \set in scripts. May be repeated.
    #[arg(long = "set", value_name = "NAME=VALUE", action = clap::ArgAction::Append, value_parser = parse_var)]
    vars: Vec<(String, String)>,

    /// Run queries on an Apache Ballista cluster: the scheduler at
    /// df://HOST:PORT (started by `rookery scheduler`).
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,

    #[command(subcommand)]
    command: Option<Subcommand>,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Run a Ballista scheduler whose sessions are Rookery's (its tables,
    /// functions and codecs); clients connect with --cluster df://HOST:PORT.
    Scheduler {
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// Bind an address other hosts can reach. Ballista's plans are not
        /// authenticated: anyone who reaches the port runs plans with this
        /// process's rights, so use it only on a private network.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Run a Ballista executor with Rookery's functions and codecs, joining
    /// the scheduler at HOST:PORT.
    Executor {
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: std::net::SocketAddr,
        /// Where it serves shuffle data (Arrow Flight).
        #[arg(long, default_value = "127.0.0.1:50051")]
        bind: std::net::SocketAddr,
        /// Its gRPC port.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks at once (default: one per core).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Bind an address other hosts can reach (see the scheduler's).
        #[arg(long)]
        allow_remote: bool,
    },
    /// The sea-lion demo: runs sql/sealions/01 to 06 on a data set (dots,
    /// thumbnails, training, counting, scoring) and prints where sub.csv is,
    /// the score table and the time taken.
    Demo {
        /// The data set (the layout of the Kaggle competition).
        #[arg(long, default_value = "data/sealions")]
        data: PathBuf,
        /// Output folder (thumbnails, model, submissions).
        #[arg(long, default_value = "out/sealions")]
        out: PathBuf,
        /// Training epochs of both models [default: 04_train.sql's, 12 for the seed CNN and 15 for the count model].
        #[arg(long)]
        epochs: Option<usize>,
    },
    /// Generate a labelled folder of deep-sea-like video frames (frames/,
    /// labels.csv with index,filename,label), for sql/classify/.
    GenFrames {
        /// Folder to write (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of frames.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Random seed: the same seed gives the same bytes.
        #[arg(long, default_value_t = 2019)]
        seed: u64,
    },
    /// Serve over HTTP: POST an image file to /classify for {"label",
    /// "scores"} as JSON (with --model), POST SQL to /sql for its rows
    /// (CSV, JSON or Arrow by Accept), GET /health. Ctrl-C stops it
    /// gracefully.
    Serve {
        /// SQL scripts to run first, in the server's session (to define
        /// tables); may repeat.
        #[arg(long = "init")]
        init: Vec<PathBuf>,
        /// The .onnx model for /classify: a path or a URL (s3://bucket/m.onnx).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Model options, as for cnn_classify.
        #[arg(long, default_value = "")]
        options: String,
        /// Connections open at once (more wait in the listen queue).
        #[arg(long, default_value_t = 512)]
        max_connections: usize,
        /// Requests working at once (default: one per core).
        #[arg(long)]
        max_requests: Option<usize>,
        /// Largest request body, e.g. 64M (413 above it).
        #[arg(long, value_parser = parse_size, default_value = "64M")]
        max_body: usize,
        /// Seconds a client has to send its headers (and an idle
        /// keep-alive connection stays open).
        #[arg(long, default_value_t = 10)]
        header_timeout: u64,
        /// Seconds a request may take (408 after).
        #[arg(long, default_value_t = 120)]
        request_timeout: u64,
        /// Seconds a client has to send a request's body (408 after).
        #[arg(long, default_value_t = 30)]
        body_timeout: u64,
        /// Largest /sql result, e.g. 256M (413 above it: add a LIMIT).
        #[arg(long, value_parser = parse_size, default_value = "256M")]
        max_result: usize,
        /// Turn /sql on: read-only statements over the --table tables
        /// (and those --init made), with the token.
        #[arg(long)]
        sql: bool,
        /// Let /sql write and reach anything this process can: COPY, DDL,
        /// SET, images() of any folder, read_blob of any location,
        /// cnn_train. Implies --sql.
        #[arg(long)]
        sql_writes: bool,
        /// A table for /sql: NAME=LOCATION (an image folder, or a .csv,
        /// .tsv or .parquet file); may repeat. read_blob reads only under
        /// these locations unless --sql-writes.
        #[arg(long = "table", value_name = "NAME=LOCATION", value_parser = parse_table)]
        tables: Vec<(String, String)>,
        /// The token clients send as 'Authorization: Bearer TOKEN' (default:
        /// a random one, printed at start). Also read from
        /// $ROOKERY_SERVE_TOKEN, which keeps it out of the process list.
        #[arg(long)]
        token: Option<String>,
        /// A host name accepted in the Host header besides IP addresses and
        /// localhost (a name clients use for this machine); may repeat.
        #[arg(long = "allow-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
    },
    /// Classify images with an ONNX image classifier: prints ['label'] per
    /// image (or with --verbose every [label, score], highest first). With
    /// no --image, reads one image from standard input.
    Classify {
        /// The .onnx model: a path or a URL (s3://bucket/m.onnx).
        #[arg(long)]
        model: PathBuf,
        /// An image file; repeat for several (one line each).
        #[arg(long = "image", action = clap::ArgAction::Append, value_name = "FILE")]
        images: Vec<PathBuf>,
        /// Print every label with its score, highest first.
        #[arg(short, long)]
        verbose: bool,
        /// Model options, as for cnn_classify: 'layout=NCHW, range=0..1, labels=a|b, size=64x64'.
        #[arg(long, default_value = "")]
        options: String,
    },
    /// Augment a labelled image folder: writes every labelled image and
    /// --copies seeded random variants of it (PNG, NAME_augK.png) to the
    /// output folder, and a new label file filename,label,weight whose
    /// weights balance the classes. Built on image_flip_h, image_rotate,
    /// random_crop, image_adjust, image_noise and seeded_random.
    Augment {
        /// The images.
        #[arg(long = "input_folder", value_name = "DIR")]
        input_folder: PathBuf,
        /// Where to write the images (created if missing).
        #[arg(long = "output_folder", value_name = "DIR")]
        output_folder: PathBuf,
        /// CSV with a header: filename,label or index,filename,label.
        #[arg(long = "label_file", value_name = "CSV")]
        label_file: PathBuf,
        /// The CSV to write: filename,label,weight for every output image.
        #[arg(long = "new_label_and_weights_file", value_name = "CSV")]
        new_label_and_weights_file: PathBuf,
        /// Augmented copies per image (the original is written too).
        #[arg(long, default_value_t = 4)]
        copies: usize,
        /// Random seed: the same seed gives the same images.
        #[arg(long, default_value_t = 1)]
        seed: u32,
        /// Steps, in order, each drawn at random per copy: flip, flipv,
        /// rotate90, rotate, crop, jitter, noise, scale.
        #[arg(long, default_value = "flip,rotate,crop,jitter")]
        steps: String,
    },
    /// Train the CNN (cnn_train) on a labelled image folder and write the
    /// ONNX model; prints cnn_train's result.
    Train {
        /// The images.
        #[arg(long, value_name = "DIR")]
        images: PathBuf,
        /// CSV with a header: filename,label or index,filename,label.
        #[arg(long, value_name = "CSV")]
        labels: PathBuf,
        /// The model file to write.
        #[arg(long, default_value = "model.onnx")]
        output: PathBuf,
        /// Training epochs [default: cnn_train's, 10].
        #[arg(long)]
        epochs: Option<usize>,
        /// Fraction of images held out for validation [default: 0.2].
        #[arg(long)]
        validation: Option<f64>,
        /// Random seed [default: 42].
        #[arg(long)]
        seed: Option<u64>,
        /// More cnn_train options, e.g. 'augment=flip, class_weights=balanced'.
        #[arg(long, default_value = "")]
        options: String,
    },
    /// Cut one labelled crop per animal: finds the coloured dots on the
    /// dotted images (blob_dots), cuts a square centred on each from the
    /// plain image of the same name (thumbnail), and writes
    /// NAME_X_Y.png and labels.csv (filename,label,source,x,y).
    Crops {
        /// Images with coloured dots on the animals.
        #[arg(long, value_name = "DIR")]
        dotted: PathBuf,
        /// The same images without dots.
        #[arg(long, value_name = "DIR")]
        plain: PathBuf,
        /// Where to write the crops and labels.csv.
        #[arg(long = "output_folder", value_name = "DIR")]
        output_folder: PathBuf,
        /// Side of the square crops in pixels.
        #[arg(long, default_value_t = 64)]
        size: u32,
    },
    /// Generate a sea-lion-like data set (Train/, TrainDotted/, Test/,
    /// train.csv, MismatchedTrainImages.txt, and ground truth in truth/).
    GenSealions {
        /// Folder to write (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Training images.
        #[arg(long, default_value_t = 30)]
        train: usize,
        /// Test images.
        #[arg(long, default_value_t = 10)]
        test: usize,
        /// Image size, WIDTHxHEIGHT (the real frames are 4992x3328).
        #[arg(long, default_value = "960x640", value_parser = parse_dimensions)]
        size: (u32, u32),
        /// Random seed: the same seed gives the same bytes.
        #[arg(long, default_value_t = 2017)]
        seed: u64,
        /// Most animals in one image.
        #[arg(long, default_value_t = 80)]
        max_animals: usize,
    },
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
        return datafusion::common::plan_err!(
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

fn main() -> ExitCode {
    rookery_cli::tune_allocator();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn classify(model: &std::path::Path, images: Vec<PathBuf>, verbose: bool, options: &str) -> Result<bool> {
    use rookery_cli::classify::ImageSource;
    use std::io::Read;
    let sources = if images.is_empty() {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        vec![ImageSource::Stdin(bytes)]
    } else {
        images.into_iter().map(ImageSource::File).collect()
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    rookery_cli::classify::classify(&model_file(model)?, options, &sources, verbose, &mut out, &mut err)
}

/// The local file of a `--model` that may be an object store URL
/// (`s3://bucket/m.onnx`, configured by the environment as in SQL).
fn model_file(model: &std::path::Path) -> Result<PathBuf> {
    let stores = std::sync::Arc::new(rookery::stores::ObjectStoresFromEnv::default());
    rookery_udfs::ModelStore::new(stores).local_file(&model.to_string_lossy())
}

/// Runs `augment`, `train` or `crops`; `None` for other subcommands.
fn run_workflow(
    runtime: &tokio::runtime::Runtime,
    ctx: &datafusion::prelude::SessionContext,
    command: &Subcommand,
    format: OutputFormat,
) -> Option<Result<()>> {
    use rookery::workflows::{augment, crops, train};
    use rookery_cli::workflows::{run_augment, run_crops, run_train};
    let mut out = std::io::stdout().lock();
    Some(match command {
        Subcommand::Augment {
            input_folder,
            output_folder,
            label_file,
            new_label_and_weights_file,
            copies,
            seed,
            steps,
        } => augment::parse_steps(steps).and_then(|steps| {
            let options = augment::AugmentOptions {
                input_folder: input_folder.clone(),
                output_folder: output_folder.clone(),
                label_file: label_file.clone(),
                new_label_file: new_label_and_weights_file.clone(),
                copies: *copies,
                seed: *seed,
                steps,
            };
            runtime.block_on(run_augment(ctx, &options, &mut out))
        }),
        Subcommand::Train {
            images,
            labels,
            output,
            epochs,
            validation,
            seed,
            options,
        } => {
            let command = train::TrainCommand {
                images: images.clone(),
                labels: labels.clone(),
                output: output.clone(),
                epochs: *epochs,
                validation: *validation,
                seed: *seed,
                options: options.clone(),
            };
            runtime.block_on(run_train(ctx, &command, format, &mut out))
        }
        Subcommand::Crops {
            dotted,
            plain,
            output_folder,
            size,
        } => {
            let command = crops::CropsCommand {
                dotted: dotted.clone(),
                plain: plain.clone(),
                output_folder: output_folder.clone(),
                size: *size,
            };
            runtime.block_on(run_crops(ctx, &command, &mut out))
        }
        _ => return None,
    })
}

fn run(args: Args) -> Result<()> {
    if let Some(Subcommand::Classify {
        model,
        images,
        verbose,
        options,
    }) = &args.command
    {
        return match classify(model, images.clone(), *verbose, options)? {
            true => Ok(()),
            false => Err(datafusion::error::DataFusionError::Execution(
                "some images could not be classified".into(),
            )),
        };
    }
    if let Some(Subcommand::GenFrames { out, count, seed }) = &args.command {
        let options = rookery::frames::FrameOptions {
            count: *count,
            seed: *seed,
            ..Default::default()
        };
        let written = rookery::frames::generate_frames(out, &options)?;
        if !args.quiet {
            eprintln!("wrote {written} frames and labels.csv to {}", out.display());
        }
        return Ok(());
    }
    if let Some(Subcommand::GenSealions {
        out,
        train,
        test,
        size,
        seed,
        max_animals,
    }) = args.command
    {
        let options = rookery::sealions::GenOptions {
            out,
            train,
            test,
            width: size.0,
            height: size.1,
            seed,
            max_animals,
        };
        return gen_sealions(options, args.quiet);
    }
    let partitions = args.partitions.unwrap_or_else(available_cores).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions)
        .enable_all()
        .build()?;
    let options = EngineOptions {
        partitions: Some(partitions),
        memory_limit: args.memory_limit,
        batch_size: args.batch_size,
        ..Default::default()
    };
    if !args.quiet {
        options.training.on_progress(|epoch| eprintln!("{}", epoch_line(epoch)));
    }
    match &args.command {
        Some(Subcommand::Scheduler { bind, allow_remote }) => {
            check_cluster_bind("scheduler", bind, *allow_remote)?;
            return runtime.block_on(rookery::cluster::run_scheduler(*bind, options));
        }
        Some(Subcommand::Executor {
            scheduler,
            bind,
            grpc_port,
            concurrency,
            allow_remote,
        }) => {
            check_cluster_bind("executor", bind, *allow_remote)?;
            let executor = rookery::cluster::ExecutorOptions {
                scheduler: *scheduler,
                bind: *bind,
                grpc_port: *grpc_port,
                concurrency: *concurrency,
                engine: options,
            };
            return runtime.block_on(rookery::cluster::run_executor(executor));
        }
        _ => {}
    }
    let ctx = match &args.cluster {
        Some(url) => runtime.block_on(rookery::cluster::connect(url, &options))?,
        None => new_session(&options)?,
    };
    let mut shell = Shell::new(ctx);
    shell.training = options.training.clone();
    shell.format = args.format;
    shell.quiet = args.quiet;
    for (name, value) in &args.vars {
        shell.pin_var(name, value);
    }

    if let Some(Subcommand::Demo { data, out, epochs }) = &args.command {
        shell.pin_var("data", &data.display().to_string());
        shell.pin_var("out", &out.display().to_string());
        if let Some(epochs) = epochs {
            shell.pin_var("epochs", &epochs.to_string());
            shell.pin_var("count_epochs", &epochs.to_string());
        }
        shell.show_progress = !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
        return runtime.block_on(rookery_cli::demo::run_demo(&mut shell, out));
    }
    if let Some(Subcommand::Serve {
        init,
        model,
        addr,
        options,
        max_connections,
        max_requests,
        max_body,
        header_timeout,
        request_timeout,
        body_timeout,
        max_result,
        sql,
        sql_writes,
        tables,
        token,
        allowed_hosts,
    }) = &args.command
    {
        let classifier = match model {
            Some(model) => {
                let options = ClassifyOptions::parse(options)?;
                // Requests run side by side: one ONNX Runtime thread per core each may use.
                Some(Classifier::cached(
                    &model_file(model)?,
                    &options,
                    threads_per_session(partitions),
                )?)
            }
            None => None,
        };
        let defaults = ServeLimits::default();
        let limits = ServeLimits {
            max_connections: *max_connections,
            max_requests: max_requests.unwrap_or(defaults.max_requests),
            max_body: *max_body,
            header_timeout: std::time::Duration::from_secs(*header_timeout),
            request_timeout: std::time::Duration::from_secs(*request_timeout),
            body_timeout: std::time::Duration::from_secs(*body_timeout),
            max_result: *max_result,
            ..defaults
        };
        let given = token.clone().or_else(|| std::env::var("ROOKERY_SERVE_TOKEN").ok());
        let generated = given.is_none();
        let token = match given {
            Some(given) if given.trim().is_empty() => {
                return datafusion::common::plan_err!("the serve token may not be empty")
            }
            Some(given) => given,
            None => rookery_cli::serve::generate_token()?,
        };
        let access = Access {
            token: Some(token.clone()),
            sql: *sql || *sql_writes,
            sql_writes: *sql_writes,
            readable: tables.iter().map(|(_, location)| location.clone()).collect(),
            allowed_hosts: allowed_hosts.clone(),
        };
        return runtime.block_on(async {
            for (name, location) in tables {
                rookery::exec::run_sql(&shell.ctx, &table_statement(name, location))
                    .await
                    .map_err(|e| {
                        datafusion::common::DataFusionError::Plan(format!("--table {name}={location}: {e}"))
                    })?;
            }
            for file in init {
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
            serve_until_ctrl_c(app, addr, |bound| {
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
        });
    }
    if let Some(workflow) = &args.command {
        if let Some(result) = run_workflow(&runtime, &shell.ctx, workflow, args.format) {
            return result;
        }
    }
    if args.files.is_empty() && args.commands.is_empty() {
        let interactive = is_interactive();
        shell.show_progress = interactive && !args.quiet;
        if interactive {
            shell.max_rows = Some(DEFAULT_MAX_ROWS);
        }
        return rookery_cli::repl::run_repl(&runtime, &mut shell);
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
