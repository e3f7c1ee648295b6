//! `rookery classify`: an ONNX image classifier on image files or stdin,
//! printing Python-style lists as the seed's production script did.

use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::common::{DataFusionError, Result};
use rookery_image::codec::{decode, DEFAULT_MAX_PIXELS};
use rookery_image::options::OptionSet;
use rookery_image::Image;
use rookery_models::runtime::ranked;
use rookery_models::runtime::{best, threads_per_session, Classifier, ClassifyOptions, ModelOutput};
use rookery_udfs::functions::model_rows::SqlResult;

/// Where one image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    File(PathBuf),
    /// Bytes read from standard input.
    Stdin(Vec<u8>),
}

impl ImageSource {
    fn describe(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Stdin(_) => "standard input".to_string(),
        }
    }

    fn load(&self) -> std::result::Result<Image, String> {
        let bytes = match self {
            Self::File(path) => std::fs::read(path).map_err(|e| e.to_string())?,
            Self::Stdin(bytes) => bytes.clone(),
        };
        decode(&bytes, DEFAULT_MAX_PIXELS)
            .map(|(_, image)| image)
            .map_err(|e| e.to_string())
    }
}

/// A label as a Python string literal.
fn quoted(label: &str) -> String {
    format!("'{}'", label.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `['label']`, or with `verbose` every `['label', score]` highest first.
pub fn format_line(classifier: &Classifier, scores: &[f32], verbose: bool) -> String {
    if !verbose {
        return format!("[{}]", quoted(&classifier.label(best(scores))));
    }
    let ranked = ranked(scores);
    let items: Vec<String> = ranked
        .iter()
        .map(|(i, s)| format!("[{}, {:.2}]", quoted(&classifier.label(*i)), s))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Classifies every source (all good images in one ONNX Runtime call) and
/// writes one line per source to `out`, in order; a source that cannot be
/// read or decoded gets an error line on `err` naming it. Returns whether
/// every source succeeded.
pub fn classify(
    model: &Path,
    options: &str,
    sources: &[ImageSource],
    verbose: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool> {
    let options = ClassifyOptions::parse(options)?;
    let classifier = Classifier::load(model, &options, &ModelOutput::Classes, threads_per_session(1)).sql()?;
    let loaded: Vec<std::result::Result<Image, String>> = sources.iter().map(ImageSource::load).collect();
    let views: Vec<_> = loaded.iter().flatten().map(Image::view).collect();
    let mut scores = classifier.scores(&views).sql()?.into_iter();
    let mut all_ok = true;
    for (source, image) in sources.iter().zip(&loaded) {
        match image {
            Ok(_) => {
                let s = scores
                    .next()
                    .ok_or_else(|| DataFusionError::Internal("missing scores".into()))?;
                writeln!(out, "{}", format_line(&classifier, &s, verbose))?;
            }
            Err(e) => {
                all_ok = false;
                writeln!(err, "Error: {}: {e}", source.describe())?;
            }
        }
    }
    Ok(all_ok)
}
