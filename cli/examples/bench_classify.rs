//! Benchmark (not a test): `cnn_classify` through SQL against ONNX Runtime
//! called directly on the same tiles.
//!
//! ```text
//! cargo run --example bench_classify -- [--model M.onnx] [--runs 3]
//! ```
//!
//! Tiles: every 64x64 tile at stride 32 of the test images of
//! data/sealions (5,510 tiles), held in memory. Model: the seed CNN (given,
//! or written with random weights: the work is the same). SQL side:
//! `SELECT cnn_classify(model, image) FROM tiles`, all partitions. Direct
//! side: one ONNX Runtime session with a thread per core, the tiles already
//! converted to float, batches of 1024 (as `shared/bench/ort_infer.py`).

use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::array::Array;
use ort::session::Session;
use ort::value::Tensor;
use rookery::session::{available_cores, new_session, EngineOptions};
use rookery_image::ImageArray;
use rookery_models::model::SeedCnn;
use rookery_models::onnx::write_model;
use rookery_models::runtime::ensure_runtime;
use rookery_udfs::functions::model_rows::SqlResult;

/// mimalloc, as datafusion-cli: it reuses freed memory where glibc unmaps and
/// page-faults large buffers again (a third of training time, measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> datafusion::common::Result<()> {
    rookery_cli::tune_allocator();
    let mut model: Option<PathBuf> = None;
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = Some(PathBuf::from(args.next().expect("--model FILE"))),
            "--runs" => runs = args.next().expect("--runs N").parse().expect("number"),
            other => panic!("unknown argument {other}"),
        }
    }
    let model = match model {
        Some(m) => m,
        None => {
            let path = std::env::temp_dir().join("rookery-bench-seed-cnn.onnx");
            let labels: Vec<String> = (0..6).map(|i| format!("class{i}")).collect();
            let cnn = SeedCnn::new((64, 64, 3), 6, 1).expect("model");
            write_model(&cnn, &labels, &path).sql()?;
            path
        }
    };
    let cores = available_cores();
    let ctx = new_session(&EngineOptions {
        partitions: Some(cores),
        ..Default::default()
    })?;
    ctx.sql(
        "CREATE TABLE tiles AS SELECT t['tile'] AS image \
         FROM (SELECT unnest(tiles(image, 64, 32)) AS t FROM images('data/sealions/Test/'))",
    )
    .await?
    .collect()
    .await?;
    let batches = ctx.sql("SELECT image FROM tiles").await?.collect().await?;
    let tiles: usize = batches.iter().map(|b| b.num_rows()).sum();

    // The direct side's input: every tile as floats 0..255, NHWC.
    let mut floats = Vec::with_capacity(tiles * 64 * 64 * 3);
    for batch in &batches {
        let images = ImageArray::try_new(batch.column(0).as_ref())
            .map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
        for row in 0..images.len() {
            let view = images.get(row).expect("tile").expect("not null");
            floats.extend(view.data.iter().map(|v| *v as f32));
        }
    }
    let mut session = Session::builder(ensure_runtime().sql()?)
        .expect("session builder")
        .with_intra_threads(cores)
        .expect("threads")
        .commit_from_file(&model)
        .expect("session");

    let sql = format!("SELECT cnn_classify('{}', image) AS label FROM tiles", model.display());
    println!("{tiles} tiles, {cores} cores, model {}", model.display());
    for run in 1..=runs {
        let started = Instant::now();
        let out = ctx.sql(&sql).await?.collect().await?;
        let sql_rate = tiles as f64 / started.elapsed().as_secs_f64();
        let labelled: usize = out.iter().map(|b| b.column(0).len() - b.column(0).null_count()).sum();
        assert_eq!(labelled, tiles);

        let started = Instant::now();
        for chunk in floats.chunks(1024 * 64 * 64 * 3) {
            let n = chunk.len() / (64 * 64 * 3);
            let input = Tensor::from_array(([n, 64, 64, 3], chunk.to_vec())).expect("tensor");
            let outputs = session.run(ort::inputs![input]).expect("run");
            let (_, scores) = outputs[0].try_extract_tensor::<f32>().expect("scores");
            assert_eq!(scores.len(), n * 6);
        }
        let direct_rate = tiles as f64 / started.elapsed().as_secs_f64();
        println!(
            "run {run}: SQL cnn_classify {sql_rate:.0} tiles/s, ONNX Runtime direct {direct_rate:.0} tiles/s, ratio {:.2}",
            sql_rate / direct_rate
        );
    }
    Ok(())
}
