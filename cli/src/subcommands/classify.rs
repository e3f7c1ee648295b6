//! `rookery classify`: images through an ONNX classifier, without SQL.

use std::path::PathBuf;

use datafusion::common::{DataFusionError, Result};
use rookery_image::ExecutionProviders;

/// Classify images with an ONNX image classifier: prints ['label'] per
/// image (or with --verbose every [label, score], highest first). With
/// no --image, reads one image from standard input.
#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// The .onnx model: a path or a URL (s3://bucket/m.onnx).
    #[arg(long)]
    pub model: PathBuf,
    /// An image file; repeat for several (one line each).
    #[arg(long = "image", action = clap::ArgAction::Append, value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// Print every label with its score, highest first.
    #[arg(short, long)]
    pub verbose: bool,
    /// Model options, as for cnn_classify: 'layout=NCHW, range=0..1, labels=a|b, size=64x64'.
    #[arg(long, default_value = "")]
    pub options: String,
    /// Where ONNX Runtime runs the model: cpu, cuda, cuda:N, tensorrt, or
    /// a list in order of preference (tensorrt|cuda|cpu); a provider that
    /// cannot load is an error (`rookery doctor` says what it misses).
    #[arg(long, value_name = "PROVIDERS")]
    pub execution_provider: Option<ExecutionProviders>,
}

/// Model options with `--execution-provider`, when given, set in them.
pub(super) fn with_provider(options: &str, provider: Option<&ExecutionProviders>) -> String {
    match provider {
        Some(provider) if options.trim().is_empty() => format!("execution_provider={provider}"),
        Some(provider) => format!("{options}, execution_provider={provider}"),
        None => options.to_string(),
    }
}

impl ClassifyArgs {
    pub fn run(self) -> Result<()> {
        let options = with_provider(&self.options, self.execution_provider.as_ref());
        match classify(&self.model, self.images, self.verbose, &options)? {
            true => Ok(()),
            false => Err(DataFusionError::Execution("some images could not be classified".into())),
        }
    }
}

fn classify(model: &std::path::Path, images: Vec<PathBuf>, verbose: bool, options: &str) -> Result<bool> {
    use crate::classify::ImageSource;
    use std::io::Read;
    let sources = if images.is_empty() {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        vec![ImageSource::Stdin(bytes)]
    } else {
        images.into_iter().map(ImageSource::File).collect()
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    crate::classify::classify(&model_file(model)?, options, &sources, verbose, &mut out, &mut err)
}

/// The local file of a `--model` that may be an object store URL
/// (`s3://bucket/m.onnx`, configured by the environment as in SQL).
pub(super) fn model_file(model: &std::path::Path) -> Result<PathBuf> {
    let stores = std::sync::Arc::new(rookery::stores::ObjectStoresFromEnv::default());
    rookery_udfs::Models::new(stores, Default::default()).local_file(&model.to_string_lossy())
}
