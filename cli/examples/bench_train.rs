//! Benchmark (not a test): training throughput of the seed CNN, samples/s.
//!
//! ```text
//! cargo run --example bench_train -- [--samples 2048] [--candle-samples 256] [--counts]
//! ```
//!
//! `--counts` trains the count model instead (the same layers, five linear
//! outputs, squared error on random counts); its Keras twin is
//! `cli/examples/keras_count_train.py`.
//!
//! The same set-up as `shared/bench/keras_train.py`: random 64x64x3 tiles
//! and 6 classes, batch 64, Adam, one epoch after a warm-up epoch on 256
//! samples. Times Rookery's kernels (im2col + gemm convolution, NHWC pool)
//! and, for comparison, candle's own conv2d/max_pool2d on fewer samples
//! (they are slow). Run `keras_train.py` in the same sitting for the ratio.

use rookery_image::rng::Rng;
use rookery_models::model::Kernels;
use rookery_models::train::{train, Dataset, TrainOptions};

/// mimalloc, as datafusion-cli: it reuses freed memory where glibc unmaps and
/// page-faults large buffers again (a third of training time, measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn dataset(samples: usize, counts: bool) -> Dataset {
    let mut rng = Rng::new(7);
    let mut data = Dataset::new(64, 64, 3);
    let mut pixels = vec![0u8; 64 * 64 * 3];
    let names: Vec<String> = (0..5).map(|k| format!("class{k}")).collect();
    for _ in 0..samples {
        pixels.iter_mut().for_each(|p| *p = (rng.next_u64() & 0xff) as u8);
        if counts {
            let values: Vec<f32> = (0..5).map(|_| rng.below(4) as f32).collect();
            data.push_counts(&pixels, &names, &values, None).expect("push");
        } else {
            data.push(&pixels, format!("class{}", rng.below(6))).expect("push");
        }
    }
    data
}

fn samples_per_second(samples: usize, kernels: Kernels, counts: bool) -> f64 {
    let options = TrainOptions {
        epochs: 1,
        validation: 0.0,
        ..Default::default()
    };
    // Warm-up: allocator, thread pool and caches, as keras_train.py does.
    train(&dataset(256, counts), &options, kernels, &mut |_| {}).expect("warm-up");
    let mut rate = 0.0;
    train(&dataset(samples, counts), &options, kernels, &mut |e| {
        rate = e.samples_per_second
    })
    .expect("train");
    rate
}

fn main() {
    rookery_cli::tune_allocator();
    let (mut samples, mut candle_samples, mut counts) = (2048usize, 256usize, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--counts" {
            counts = true;
            continue;
        }
        let mut value = || args.next().expect("a number").parse::<usize>().expect("a number");
        match arg.as_str() {
            "--samples" => samples = value(),
            "--candle-samples" => candle_samples = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    let fast = samples_per_second(samples, Kernels::Fast, counts);
    let what = if counts { "count model" } else { "classifier" };
    println!("rookery kernels (im2col + gemm), {what}: {fast:.1} samples/s ({samples} samples)");
    if candle_samples > 0 {
        let plain = samples_per_second(candle_samples, Kernels::Candle, counts);
        println!("candle conv2d/max_pool2d:        {plain:.1} samples/s ({candle_samples} samples)");
        println!("speed-up: {:.1}x", fast / plain);
    }
}
