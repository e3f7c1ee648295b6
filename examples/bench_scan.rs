//! Benchmark (not a test): image table scans against a plain Rust loop.
//!
//! ```text
//! cargo run --example bench_scan -- [--count 100] [--size 4992x3328] [--dir /tmp/rookery-bench]
//! ```
//!
//! Makes `count` textured JPEGs (quality 90) once, then measures, each in a
//! child process of its own so that peak RSS belongs to one measurement:
//! - header-only: `SELECT count(*) ... WHERE width > 0` vs a loop that reads
//!   each file's first 64 KiB and asks the `image` crate for its dimensions;
//! - decode: `SELECT sum(octet_length(image['data']))` vs a loop that reads
//!   and decodes each file with the same decoder;
//! - peak RSS of the decode query on a quarter, half and all of the files.
//!
//! Both sides use all cores: the loop splits the files over one thread per
//! core, as the scan splits them over partitions. Both sides' times include
//! listing the folder.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use datafusion::arrow::array::{Array, Int64Array, UInt64Array};
use image::ImageReader;
use rookery::exec::run_sql;

#[path = "support/texture.rs"]
mod support;
use rookery::session::available_cores;
use rookery::{new_session, EngineOptions};
use support::texture;

struct Settings {
    count: usize,
    width: u32,
    height: u32,
    dir: PathBuf,
}

fn parse_args() -> (Settings, Option<String>, Option<usize>) {
    let mut settings = Settings {
        count: 100,
        width: 4992,
        height: 3328,
        dir: std::env::temp_dir().join("rookery-bench"),
    };
    let mut mode = None;
    let mut limit = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--count" => settings.count = value().parse().expect("--count N"),
            "--size" => {
                let v = value();
                let (w, h) = v.split_once('x').expect("--size WxH");
                settings.width = w.parse().expect("width");
                settings.height = h.parse().expect("height");
            }
            "--dir" => settings.dir = PathBuf::from(value()),
            "--mode" => mode = Some(value()),
            "--files" => limit = Some(value().parse().expect("--files N")),
            other => panic!("unknown argument {other}"),
        }
    }
    (settings, mode, limit)
}

fn folder(settings: &Settings) -> PathBuf {
    settings
        .dir
        .join(format!("{}x{}-{}", settings.width, settings.height, settings.count))
}

fn make_images(settings: &Settings) -> PathBuf {
    let dir = folder(settings);
    let done = dir.join(".complete");
    if done.exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("bench folder");
    eprintln!(
        "making {} {}x{} JPEGs in {} ...",
        settings.count,
        settings.width,
        settings.height,
        dir.display()
    );
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..available_cores() {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= settings.count {
                    break;
                }
                let image = texture(settings.width, settings.height, i as u32);
                let mut bytes = Vec::new();
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
                image.write_with_encoder(encoder).expect("encode");
                std::fs::write(dir.join(format!("{i}.jpg")), bytes).expect("write");
            });
        }
    });
    std::fs::write(&done, b"").expect("marker");
    eprintln!("made in {:.1} s", started.elapsed().as_secs_f64());
    dir
}

fn files(dir: &Path, limit: Option<usize>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    files.truncate(limit.unwrap_or(usize::MAX));
    files
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The plain loop: files split over one thread per core.
fn plain_loop(files: &[PathBuf], work: impl Fn(&Path) -> u64 + Sync) -> u64 {
    let cores = available_cores();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|t| {
                let work = &work;
                scope.spawn(move || files.iter().skip(t).step_by(cores).map(|f| work(f)).sum::<u64>())
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    })
}

fn header_dimensions(path: &Path) -> u64 {
    let mut prefix = Vec::with_capacity(64 * 1024);
    std::fs::File::open(path)
        .expect("open")
        .take(64 * 1024)
        .read_to_end(&mut prefix)
        .expect("read");
    let (w, h) = ImageReader::new(Cursor::new(prefix))
        .with_guessed_format()
        .expect("format")
        .into_dimensions()
        .expect("dimensions");
    (w > 0 && h > 0) as u64
}

fn decode_file(path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("read");
    let image = image::load_from_memory(&bytes).expect("decode");
    image.as_bytes().len() as u64
}

/// Runs `sql` `repeats` times in one session; returns the best time (the
/// query alone: runtime and session start-up are once per process) and
/// the value.
fn sql_value(sql: &str, repeats: usize) -> (f64, u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(available_cores())
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = new_session(&EngineOptions::default()).expect("session");
    let mut best = (f64::MAX, 0);
    for _ in 0..repeats {
        let started = Instant::now();
        let value = runtime.block_on(query_value(&ctx, sql));
        let secs = started.elapsed().as_secs_f64();
        if secs < best.0 {
            best = (secs, value);
        }
    }
    best
}

async fn query_value(ctx: &datafusion::prelude::SessionContext, sql: &str) -> u64 {
    {
        let results = run_sql(ctx, sql).await.expect("query");
        let column = results[0].batches[0].column(0).clone();
        if let Some(a) = column.as_any().downcast_ref::<Int64Array>() {
            a.value(0) as u64
        } else if let Some(a) = column.as_any().downcast_ref::<UInt64Array>() {
            a.value(0)
        } else {
            panic!("unexpected result type {}", column.data_type())
        }
    }
}

/// Best of `repeats` runs of the plain loop.
fn loop_value(repeats: usize, run: impl Fn() -> u64) -> (f64, u64) {
    let mut best = (f64::MAX, 0);
    for _ in 0..repeats {
        let started = Instant::now();
        let value = run();
        let secs = started.elapsed().as_secs_f64();
        if secs < best.0 {
            best = (secs, value);
        }
    }
    best
}

/// Runs one measurement in this process and prints `seconds value rss_kb`.
fn run_mode(settings: &Settings, mode: &str, limit: Option<usize>) {
    let dir = folder(settings);
    let files = files(&dir, limit);
    let glob = match limit {
        // A glob that matches the first `limit` files is awkward; list them.
        Some(_) => None,
        None => Some(format!("{}/*.jpg", dir.display())),
    };
    // Sums width x height x channels, so every image is decoded.
    let decode_sql = |from: &str| {
        format!(
            "SELECT sum(CAST(image_width(image) AS BIGINT) * image_height(image) * image['channels']) FROM images('{from}')"
        )
    };
    let (secs, value) = match (mode, &glob) {
        // The loop lists the folder inside its timing, as a query must.
        ("loop-header", _) => loop_value(5, || plain_loop(&self::files(&dir, limit), header_dimensions)),
        ("loop-decode", _) => loop_value(1, || plain_loop(&self::files(&dir, limit), decode_file)),
        ("sql-header", Some(glob)) => sql_value(&format!("SELECT count(*) FROM images('{glob}') WHERE width > 0"), 5),
        ("sql-decode", Some(glob)) => sql_value(&decode_sql(glob), 1),
        ("sql-decode", None) => {
            // Link the first `limit` files into a folder of their own.
            let sub = dir.join(format!("first-{}", files.len()));
            if !sub.exists() {
                std::fs::create_dir_all(&sub).expect("subfolder");
                for f in &files {
                    std::fs::hard_link(f, sub.join(f.file_name().expect("name"))).expect("link");
                }
            }
            sql_value(&decode_sql(&format!("{}/", sub.display())), 1)
        }
        _ => panic!("unknown mode {mode}"),
    };
    println!("{secs} {value} {}", peak_rss_kb());
}

fn measure(settings: &Settings, mode: &str, limit: Option<usize>) -> (f64, u64, u64) {
    let exe = std::env::current_exe().expect("exe");
    let mut command = Command::new(exe);
    command.args([
        "--count",
        &settings.count.to_string(),
        "--size",
        &format!("{}x{}", settings.width, settings.height),
        "--dir",
        &settings.dir.display().to_string(),
        "--mode",
        mode,
    ]);
    if let Some(limit) = limit {
        command.args(["--files", &limit.to_string()]);
    }
    let output = command.output().expect("child");
    assert!(
        output.status.success(),
        "{mode}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let parts: Vec<&str> = text.split_whitespace().collect();
    (
        parts[0].parse().expect("secs"),
        parts[1].parse().expect("value"),
        parts[2].parse().expect("rss"),
    )
}

fn best_of(settings: &Settings, mode: &str, runs: usize) -> (f64, u64, u64) {
    (0..runs)
        .map(|_| measure(settings, mode, None))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .expect("runs")
}

fn main() {
    let (settings, mode, limit) = parse_args();
    if let Some(mode) = mode {
        run_mode(&settings, &mode, limit);
        return;
    }
    make_images(&settings);
    let n = settings.count as f64;
    println!(
        "{} JPEGs of {}x{}, {} cores; best of 3 fresh processes (header-only: best of 5 runs in each)\n",
        settings.count,
        settings.width,
        settings.height,
        available_cores()
    );
    println!(
        "{:<14} {:>10} {:>12} {:>12}",
        "measurement", "seconds", "images/s", "peak RSS MB"
    );
    let mut rates = std::collections::HashMap::new();
    for mode in ["loop-header", "sql-header", "loop-decode", "sql-decode"] {
        let (secs, value, rss) = best_of(&settings, mode, 3);
        if mode.ends_with("header") {
            assert_eq!(value, settings.count as u64, "{mode} saw every file");
        } else {
            let pixels = settings.count as u64 * settings.width as u64 * settings.height as u64 * 3;
            assert_eq!(value, pixels, "{mode} decoded every pixel");
        }
        rates.insert(mode, n / secs);
        println!(
            "{mode:<14} {secs:>10.3} {:>12.1} {:>12.1}",
            n / secs,
            rss as f64 / 1024.0
        );
    }
    println!(
        "\nratio SQL / loop: header-only {:.2}, decode {:.2}",
        rates["sql-header"] / rates["loop-header"],
        rates["sql-decode"] / rates["loop-decode"]
    );
    println!("\npeak RSS of the decode query as the folder grows:");
    for files in [settings.count / 4, settings.count / 2, settings.count] {
        let (secs, _, rss) = measure(&settings, "sql-decode", Some(files.max(1)));
        println!("  {files:>5} files: {:>8.1} MB ({secs:.1} s)", rss as f64 / 1024.0);
    }
}
