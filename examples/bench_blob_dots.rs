//! Benchmark (not a test): `blob_dots` on full-size pairs, one core.
//!
//! ```text
//! cargo run --example bench_blob_dots -- [--dir /tmp/rookery-bench/sealions-4992] [--pairs 3]
//! ```
//!
//! Generates `pairs` 4992x3328 training pairs once (`rookery gen-sealions`
//! code), then times the dot finder alone (decoding excluded, as it is the
//! same work in any pipeline) on one thread, and prints its counts beside
//! `train.csv`. Run `shared/bench/blob_dots_reference.py DOTTED PLAIN` on the
//! same files for the Python side; it prints counts and seconds (decoding
//! included, so the script's time is compared with decode + find here).

use std::path::PathBuf;
use std::time::Instant;

use rookery::sealions::{generate, GenOptions};
use rookery_image::codec::{decode, DEFAULT_MAX_PIXELS};
use rookery_image::dots::{find_dots, DotParams, CLASSES};

fn main() {
    let mut dir = std::env::temp_dir().join("rookery-bench/sealions-4992");
    let mut pairs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = PathBuf::from(args.next().expect("--dir DIR")),
            "--pairs" => pairs = args.next().expect("--pairs N").parse().expect("number"),
            other => panic!("unknown argument {other}"),
        }
    }
    if !dir.join("Train/train.csv").exists() {
        eprintln!("generating {pairs} 4992x3328 pairs in {} ...", dir.display());
        let options = GenOptions {
            out: dir.clone(),
            train: pairs,
            test: 0,
            width: 4992,
            height: 3328,
            seed: 4992,
            max_animals: 600,
        };
        generate(&options, 2, |line| eprintln!("  {line}")).expect("generate");
    }
    let counts = std::fs::read_to_string(dir.join("Train/train.csv")).expect("train.csv");
    let mismatched = std::fs::read_to_string(dir.join("MismatchedTrainImages.txt")).unwrap_or_default();
    println!(
        "{:<4} {:>9} {:>9} {:>7}  counts found / train.csv",
        "id", "decode s", "find s", "dots"
    );
    let (mut decode_total, mut find_total) = (0.0, 0.0);
    for (id, line) in counts.lines().skip(1).enumerate() {
        if mismatched.lines().skip(1).any(|m| m.trim() == id.to_string()) {
            continue;
        }
        let read = |folder: &str| std::fs::read(dir.join(format!("{folder}/{id}.jpg"))).expect("image");
        let (dotted_bytes, plain_bytes) = (read("TrainDotted"), read("Train"));
        let started = Instant::now();
        let (_, dotted) = decode(&dotted_bytes, DEFAULT_MAX_PIXELS).expect("decode");
        let (_, plain) = decode(&plain_bytes, DEFAULT_MAX_PIXELS).expect("decode");
        let decode_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let dots = find_dots(dotted.view(), plain.view(), &DotParams::default()).expect("dots");
        let find_secs = started.elapsed().as_secs_f64();
        let mut found = [0usize; 5];
        for dot in &dots {
            if let Some(c) = dot.class {
                found[c] += 1;
            }
        }
        let expected: Vec<&str> = line.split(',').skip(1).collect();
        println!(
            "{id:<4} {decode_secs:>9.3} {find_secs:>9.3} {:>7}  {:?} / {:?}",
            dots.len(),
            found,
            expected
        );
        decode_total += decode_secs;
        find_total += find_secs;
    }
    println!("\nclasses: {:?}", CLASSES.map(|c| c.0));
    println!("total decode {decode_total:.3} s, find {find_total:.3} s");
}
