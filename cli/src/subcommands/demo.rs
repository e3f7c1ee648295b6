//! `rookery demo`: the sea-lion pipeline on a data set.

use std::path::PathBuf;

use datafusion::common::Result;

use super::{Engine, GlobalArgs};

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

impl DemoArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
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
