//! `rookery train`: `cnn_train` over a labelled image folder.

use std::path::PathBuf;

use datafusion::common::{plan_err, Result};
use datafusion::prelude::SessionContext;

use super::{register_labelled_folder, sql_string};
use crate::exec::{run_sql, StatementResult};

#[derive(Debug, Clone)]
pub struct TrainCommand {
    pub images: PathBuf,
    /// The label file; without one, labels are the images' folder names.
    pub labels: Option<PathBuf>,
    pub output: PathBuf,
    pub epochs: Option<usize>,
    pub validation: Option<f64>,
    pub seed: Option<u64>,
    /// More `cnn_train` options, `key=value, ...`.
    pub options: String,
}

impl TrainCommand {
    /// The `cnn_train` options text.
    pub fn options_text(&self) -> Result<String> {
        let mut options = vec![format!("output={}", self.output.display())];
        if let Some(epochs) = self.epochs {
            options.push(format!("epochs={epochs}"));
        }
        if let Some(validation) = self.validation {
            options.push(format!("validation={validation}"));
        }
        if let Some(seed) = self.seed {
            options.push(format!("seed={seed}"));
        }
        if !self.options.trim().is_empty() {
            options.push(self.options.trim().to_string());
        }
        let text = options.join(", ");
        if text.contains(['\n', ';']) {
            return plan_err!("cnn_train options cannot hold ';' or line breaks: {text}");
        }
        Ok(text)
    }
}

/// Trains the seed CNN on every labelled image and writes the model;
/// returns `cnn_train`'s result row.
pub async fn train(ctx: &SessionContext, command: &TrainCommand) -> Result<StatementResult> {
    let options = command.options_text()?;
    register_labelled_folder(ctx, "train", &command.images, command.labels.as_deref()).await?;
    let mut results = run_sql(
        ctx,
        &format!(
            "SELECT run['model'] AS model, run['classes'] AS classes, round(run['train_accuracy'], 4) AS train_accuracy,
                 round(run['validation_accuracy'], 4) AS validation_accuracy, run['epochs'] AS epochs,
                 run['train_rows'] AS train_rows, run['validation_rows'] AS validation_rows, round(run['seconds'], 1) AS seconds
             FROM (SELECT cnn_train(image, label, {}) AS run FROM train_labelled);",
            sql_string(&options)
        ),
    )
    .await?;
    results
        .pop()
        .ok_or_else(|| datafusion::common::DataFusionError::Internal("cnn_train gave no result".into()))
}
