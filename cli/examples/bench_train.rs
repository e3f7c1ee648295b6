//! Benchmark (not a test): training throughput of the seed CNN, samples/s.
//!
//! ```text
//! cargo run --example bench_train -- [--samples 2048] [--candle-samples 256]
//! ```
//!
//! The same set-up as `shared/bench/keras_train.py`: random 64x64x3 tiles
//! and 6 classes, batch 64, Adam, one epoch after a warm-up epoch on 256
//! samples. Times Rookery's kernels (im2col + gemm convolution, NHWC pool)
//! and, for comparison, candle's own conv2d/max_pool2d on fewer samples
//! (they are slow). Run `keras_train.py` in the same sitting for the ratio.

use rookery_udfs::cnn::model::Kernels;
use rookery_udfs::cnn::train::{train, Dataset, TrainOptions};
use rookery_udfs::rng::Rng;

/// mimalloc, as datafusion-cli: it reuses freed memory where glibc unmaps and
/// page-faults large buffers again (a third of training time, measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn dataset(samples: usize) -> Dataset {
    let mut rng = Rng::new(7);
    let mut data = Dataset::new(64, 64, 3);
    let mut pixels = vec![0u8; 64 * 64 * 3];
    for _ in 0..samples {
        pixels.iter_mut().for_each(|p| *p = (rng.next_u64() & 0xff) as u8);
        data.push(&pixels, format!("class{}", rng.below(6))).expect("push");
    }
    data
}

fn samples_per_second(samples: usize, kernels: Kernels) -> f64 {
    let options = TrainOptions {
        epochs: 1,
        validation: 0.0,
        ..Default::default()
    };
    // Warm-up: allocator, thread pool and caches, as keras_train.py does.
    train(&dataset(256), &options, kernels, &mut |_| {}).expect("warm-up");
    let mut rate = 0.0;
    train(&dataset(samples), &options, kernels, &mut |e| {
        rate = e.samples_per_second
    })
    .expect("train");
    rate
}

fn main() {
    rookery_cli::tune_allocator();
    let (mut samples, mut candle_samples) = (2048usize, 256usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a number").parse::<usize>().expect("a number");
        match arg.as_str() {
            "--samples" => samples = value(),
            "--candle-samples" => candle_samples = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    let fast = samples_per_second(samples, Kernels::Fast);
    println!("rookery kernels (im2col + gemm): {fast:.1} samples/s ({samples} samples)");
    if candle_samples > 0 {
        let plain = samples_per_second(candle_samples, Kernels::Candle);
        println!("candle conv2d/max_pool2d:        {plain:.1} samples/s ({candle_samples} samples)");
        println!("speed-up: {:.1}x", fast / plain);
    }
}
