//! Peak memory and time per step of `rookery demo` on full-size generated
//! sets (4992x3328), growing the number of frames and of animals per frame,
//! to show that memory stays flat while the work grows.
//!
//! ```sh
//! cargo build --release --example bench_fullsize --bin rookery
//! target/release/examples/bench_fullsize [--epochs 1] [--memory-limit 2G] [SETS...]
//! ```
//!
//! A set is `TRAINxTESTxANIMALS` (default: `8x6x300 32x24x300 8x6x1200`, the
//! issue's set and 4x the frames or the animals). Each set is generated
//! once under `$TMPDIR/rookery-fullsize/` and reused. The demo runs in a
//! child process measured by `/usr/bin/time`; its own log gives the time of
//! each step.

use std::path::{Path, PathBuf};
use std::process::Command;

use rookery::sealions::{generate, GenOptions};

fn rookery_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/bench_fullsize -> target/<profile>/rookery
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("rookery"))
        .expect("target folder")
}

fn parse_set(text: &str) -> (usize, usize, usize) {
    let parts: Vec<usize> = text
        .split('x')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("a set is TRAINxTESTxANIMALS, not {text}"))
        })
        .collect();
    match parts.as_slice() {
        [train, test, animals] => (*train, *test, *animals),
        _ => panic!("a set is TRAINxTESTxANIMALS, not {text}"),
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take_option = |name: &str, default: &str| -> String {
        match args.iter().position(|a| a == name) {
            Some(i) if i + 1 < args.len() => {
                let value = args.remove(i + 1);
                args.remove(i);
                value
            }
            _ => default.to_string(),
        }
    };
    let epochs = take_option("--epochs", "1");
    let memory_limit = take_option("--memory-limit", "2G");
    let sets = if args.is_empty() {
        vec!["8x6x300".to_string(), "32x24x300".to_string(), "8x6x1200".to_string()]
    } else {
        args
    };
    let root = std::env::temp_dir().join("rookery-fullsize");
    let binary = rookery_binary();
    println!("| set (train x test x max animals) | peak RSS | 01 | 02 | 03 | 04 | 05 | 06 | total |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for set in sets {
        let (train, test, animals) = parse_set(&set);
        let data = root.join(&set);
        if !data.join("sample_submission.csv").exists() {
            let options = GenOptions {
                out: data.clone(),
                train,
                test,
                width: 4992,
                height: 3328,
                seed: 2017,
                max_animals: animals,
            };
            generate(&options, rookery::session::available_cores(), |_| {}).expect("generate");
        }
        let out = root.join(format!("{set}-out"));
        let output = Command::new("/usr/bin/time")
            .args(["-f", "peak_rss_kb=%M wall_s=%e"])
            .arg(&binary)
            .args(["--memory-limit", &memory_limit, "demo", "--epochs", &epochs])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run /usr/bin/time rookery demo");
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            eprintln!("{set}: demo failed\n{log}");
            continue;
        }
        let steps: Vec<String> = log
            .lines()
            .filter_map(|line| line.split(" done in ").nth(1))
            .map(|s| s.trim().to_string())
            .collect();
        let field = |key: &str| -> String {
            log.lines()
                .filter_map(|line| line.split_whitespace().find_map(|w| w.strip_prefix(key)))
                .next_back()
                .unwrap_or("?")
                .to_string()
        };
        let rss_mb = field("peak_rss_kb=")
            .parse::<f64>()
            .map_or("?".to_string(), |kb| format!("{:.0} MB", kb / 1024.0));
        println!("| {set} | {rss_mb} | {} | {} s |", steps.join(" | "), field("wall_s="));
    }
}
