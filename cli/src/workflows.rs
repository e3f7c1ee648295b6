//! `rookery augment`, `rookery train` and `rookery crops`: the engine's
//! workflows (`rookery::workflows`) with their results printed.

use std::io::Write;

use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use rookery::workflows::augment::{augment, AugmentOptions};
use rookery::workflows::crops::{crops, CropsCommand};
use rookery::workflows::train::{train, TrainCommand};

use crate::output::{write_results, Layout, OutputFormat};

pub async fn run_augment(ctx: &SessionContext, options: &AugmentOptions, out: &mut dyn Write) -> Result<()> {
    let summary = augment(ctx, options).await?;
    writeln!(
        out,
        "wrote {} images to {} ({} originals, {} augmented copies) and {}",
        summary.originals + summary.augmented,
        options.output_folder.display(),
        summary.originals,
        summary.augmented,
        options.new_label_file.display()
    )?;
    writeln!(out, "{:<24} {:>8} {:>8}", "label", "images", "weight")?;
    for (label, images, weight) in &summary.classes {
        writeln!(out, "{label:<24} {images:>8} {weight:>8.4}")?;
    }
    Ok(())
}

pub async fn run_train(
    ctx: &SessionContext,
    command: &TrainCommand,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let result = train(ctx, command).await?;
    write_results(out, &result.schema, &result.batches, Layout::new(format))
}

pub async fn run_crops(ctx: &SessionContext, command: &CropsCommand, out: &mut dyn Write) -> Result<()> {
    let counts = crops(ctx, command).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    writeln!(
        out,
        "wrote {total} crops of {0}x{0} and labels.csv to {1}",
        command.size,
        command.output_folder.display()
    )?;
    for (label, n) in counts {
        writeln!(out, "{label:<24} {n:>8}")?;
    }
    Ok(())
}
