//! `rookery demo`: the sea-lion pipeline, scripts 01 to 06 of
//! `sql/sealions/`, on one session, with progress and a closing summary.
//! The scripts are compiled in, so the demo runs from any folder.

use std::path::Path;
use std::time::Instant;

use datafusion::common::Result;

use crate::shell::{Flow, Shell};

/// (file name, what it does, text) of each step.
pub const STEPS: [(&str, &str, &str); 6] = [
    (
        "01_tables.sql",
        "the data set as tables",
        include_str!("../../sql/sealions/01_tables.sql"),
    ),
    (
        "02_dots.sql",
        "dots found on the dotted images",
        include_str!("../../sql/sealions/02_dots.sql"),
    ),
    (
        "03_thumbnails.sql",
        "64x64 training thumbnails and count tiles",
        include_str!("../../sql/sealions/03_thumbnails.sql"),
    ),
    (
        "04_train.sql",
        "training the seed CNN and the count model, exported to ONNX",
        include_str!("../../sql/sealions/04_train.sql"),
    ),
    (
        "05_count.sql",
        "counting the test images to sub.csv, sub_peaks.csv and sub_counts.csv",
        include_str!("../../sql/sealions/05_count.sql"),
    ),
    (
        "06_score.sql",
        "scoring the submissions",
        include_str!("../../sql/sealions/06_score.sql"),
    ),
];

/// Runs every step on `shell` (whose pinned variables `data`, `out` and
/// `epochs` choose the folders and training length), showing each step's
/// results; the last step's is the score table. Then prints where the
/// submissions are and the time taken.
pub async fn run_demo(shell: &mut Shell, out: &Path) -> Result<()> {
    let started = Instant::now();
    // Results only: no "OK" after every CREATE, no row counts.
    shell.quiet = true;
    for (i, (file, what, text)) in STEPS.iter().enumerate() {
        eprintln!("[{}/{}] {file}: {what}", i + 1, STEPS.len());
        let step_started = Instant::now();
        if shell.run_text(text, Some(&format!("sql/sealions/{file}"))).await? == Flow::Quit {
            return Ok(());
        }
        eprintln!(
            "[{}/{}] {file} done in {:.1} s",
            i + 1,
            STEPS.len(),
            step_started.elapsed().as_secs_f64()
        );
    }
    println!();
    println!(
        "Submission (the seed's non-overlapping tiles):   {}",
        out.join("sub.csv").display()
    );
    println!(
        "Submission (one count per animal, peaks):        {}",
        out.join("sub_peaks.csv").display()
    );
    println!(
        "Submission (the count model's counts per tile):  {}",
        out.join("sub_counts.csv").display()
    );
    println!(
        "Models: {} (seed CNN), {} (count model)",
        out.join("model.onnx").display(),
        out.join("count_model.onnx").display()
    );
    println!("Scores above: the mean over the five classes of the RMSE of per-image counts (lower is better).");
    println!("Demo took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
