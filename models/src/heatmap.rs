//! Dense scoring: a whole frame through the fully convolutional form of a
//! Rookery CNN ([`super::rewrite::fully_convolutional`]), strip by strip,
//! giving the best class of every tile position at the network's stride
//! without cutting a single tile.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{ModelError, Result};
use ort::session::Session;
use ort::value::Tensor;

use super::model::Head;
use super::onnx::{META_LABELS, META_OUTPUT, META_RANGE};
use super::rewrite::{fully_convolutional, HEATMAP_OUTPUT};
use super::runtime::{open_session, parse_labels, parse_range, poisoned};
use rookery_image::image_value::ImageView;
use rookery_image::pixels;
use rookery_image::{ExecutionProvider, ExecutionProviders};

/// One tile position's best class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    pub x: u32,
    pub y: u32,
    pub class: usize,
    pub score: f32,
}

/// How much of a frame goes to ONNX Runtime at a time: `rows` rows of
/// positions, and across, blocks of about `width` pixels (0: the whole
/// width), so memory is a block's, not a frame's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strip {
    pub rows: usize,
    pub width: usize,
}

/// One block's outputs from ONNX Runtime, class-major: `classes` planes of
/// `out_rows` x `out_columns`, of which the first `columns` are positions
/// from column `first` of the frame on.
struct BlockScores {
    first: usize,
    columns: usize,
    out_rows: usize,
    out_columns: usize,
    classes: usize,
    scores: Vec<f32>,
}

/// Which tile positions [`HeatmapModel::scan`] visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cover {
    /// Only tiles wholly inside the image.
    Inside,
    /// Tiles covering the whole image, those over the right and bottom
    /// edges padded with black as `tiles` pads them: a count model at a
    /// stride of its tile side counts every pixel once.
    Whole,
    /// For a model that counts only the middle of its tile, `margin`
    /// pixels in from each side: the image is padded with `margin` pixels
    /// of black on the left and top (and as needed on the right and
    /// bottom) so the middles, at a stride of their side, cover every pixel
    /// once. A position (x, y) is then its middle's top-left corner.
    Middles { margin: usize },
}

/// A model loaded for dense scoring.
pub struct HeatmapModel {
    path: PathBuf,
    bytes: Vec<u8>,
    input_name: String,
    pub labels: Vec<String>,
    /// The tile side the model was trained on, and the stride of positions.
    pub tile: usize,
    pub stride: usize,
    /// A count model's (its outputs are counts, not probabilities).
    pub counts: bool,
    channels: usize,
    range: (f32, f32),
    threads: usize,
    /// The execution provider it runs on (the first asked for that loaded).
    pub provider: ExecutionProvider,
    sessions: Mutex<Vec<Session>>,
}

impl HeatmapModel {
    pub fn load(path: &Path, step: usize, threads: usize, providers: &ExecutionProviders) -> Result<Self> {
        if !path.is_file() {
            return crate::invalid!("model file {} does not exist", path.display());
        }
        let original = std::fs::read(path).map_err(|e| crate::failure!("cannot read model {}: {e}", path.display()))?;
        let bytes =
            fully_convolutional(&original, step).map_err(|e| crate::failure!("model {}: {}", path.display(), e))?;
        // The tile side is the trained input's height; the stride 2 per pool.
        let (proto, _) =
            super::onnx::decode_model(&original).map_err(|e| crate::failure!("model {}: {}", path.display(), e))?;
        let graph = proto.graph.clone().unwrap_or_default();
        let pools = graph.node.iter().filter(|n| n.op_type == "MaxPool").count();
        let dims = graph.input.first().map(|i| i.dims()).unwrap_or_default();
        let meta = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|m| m.key == key)
                .map(|m| m.value.clone())
        };
        let (session, provider) = open_session(path, Some(&bytes), threads, providers)?;
        let input_name = session
            .inputs()
            .first()
            .map(|i| i.name().to_string())
            .unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            input_name,
            labels: meta(META_LABELS).map(|t| parse_labels(&t)).unwrap_or_default(),
            tile: dims.get(1).copied().unwrap_or(0).max(1) as usize,
            stride: step.max(1) << pools,
            counts: Head::from_metadata(meta(META_OUTPUT).as_deref()) == Head::Counts,
            channels: dims.get(3).copied().unwrap_or(3).max(1) as usize,
            range: meta(META_RANGE)
                .as_deref()
                .and_then(|r| parse_range(r).ok())
                .unwrap_or((0.0, 255.0)),
            threads,
            provider,
            sessions: Mutex::new(vec![session]),
            bytes,
        })
    }

    /// The best class of every position (x, y) at the stride whose tile
    /// lies inside the image, in row order, a [`Strip`] of positions at a
    /// time.
    pub fn peaks(&self, image: ImageView<'_>, strip: Strip) -> Result<Vec<Peak>> {
        let mut peaks = Vec::new();
        self.scan(image, strip, Cover::Inside, &mut |x, y, values| {
            let mut best = (0, f32::NEG_INFINITY);
            for (k, v) in values.iter().enumerate() {
                if *v > best.1 {
                    best = (k, *v);
                }
            }
            peaks.push(Peak {
                x,
                y,
                class: best.0,
                score: best.1,
            });
        })?;
        Ok(peaks)
    }

    /// Every output of every position (x, y) at the stride, in row order;
    /// `cover` says which positions (see [`Cover`]).
    pub fn scan(
        &self,
        image: ImageView<'_>,
        strip: Strip,
        cover: Cover,
        visit: &mut dyn FnMut(u32, u32, &[f32]),
    ) -> Result<()> {
        let (w, h) = (image.width as usize, image.height as usize);
        let (tile, stride) = (self.tile, self.stride);
        let margin = match cover {
            Cover::Middles { margin } => margin,
            _ => 0,
        };
        let positions = |side: usize| match cover {
            _ if side == 0 => 0,
            Cover::Inside if side >= tile => (side - tile) / stride + 1,
            Cover::Inside => 0,
            Cover::Whole => side.saturating_sub(tile).div_ceil(stride) + 1,
            Cover::Middles { .. } => side.div_ceil(stride),
        };
        let (rows, columns) = (positions(h), positions(w));
        if rows == 0 || columns == 0 {
            return Ok(());
        }
        let converted;
        let image = if image.channels as usize == self.channels {
            image
        } else {
            converted = pixels::conform(image, image.width, image.height, self.channels as u8)?;
            converted.view()
        };
        let c = self.channels;
        // Positions per ONNX Runtime call across: a block of the frame at a
        // time, since its convolutions run faster on narrow inputs than on
        // a whole 4992 px row (README, Dense scoring).
        let block = match strip.width {
            0 => columns,
            width => (width.saturating_sub(tile) / stride + 1).clamp(1, columns),
        };
        let mut session = match self.sessions.lock().map_err(|_| poisoned())?.pop() {
            Some(s) => s,
            None => open_session(&self.path, Some(&self.bytes), self.threads, &self.provider.into())?.0,
        };
        let (lo, hi) = self.range;
        let scale = (hi - lo) / 255.0;
        let mut values = Vec::new();
        let mut result = Ok(());
        let mut row = 0;
        'strips: while row < rows {
            let n = strip.rows.max(1).min(rows - row);
            let (y0, strip_h) = (row * stride, tile + stride * (n - 1));
            let mut blocks: Vec<BlockScores> = Vec::with_capacity(columns.div_ceil(block));
            for first in (0..columns).step_by(block) {
                let m = block.min(columns - first);
                let (x0, block_w) = (first * stride, tile + stride * (m - 1));
                // The frame's columns in this block, and where they go in it
                // (the margin is black on the left).
                let (from, to) = match x0.checked_sub(margin) {
                    Some(x) => (x, 0),
                    None => (0, margin - x0),
                };
                let len = w.saturating_sub(from).min(block_w - to);
                let mut input = vec![lo; strip_h * block_w * c];
                for (dy, line) in input.chunks_mut(block_w * c).enumerate() {
                    let Some(y) = (y0 + dy).checked_sub(margin) else {
                        continue;
                    };
                    if y >= h {
                        break;
                    }
                    let source = &image.data[(y * w + from) * c..(y * w + from + len) * c];
                    for (d, s) in line[to * c..].iter_mut().zip(source) {
                        *d = *s as f32 * scale + lo;
                    }
                }
                match self.run_strip(&mut session, input, (strip_h, block_w)) {
                    Ok((out_rows, out_columns, classes, scores)) => blocks.push(BlockScores {
                        first,
                        columns: m.min(out_columns),
                        out_rows,
                        out_columns,
                        classes,
                        scores,
                    }),
                    Err(e) => {
                        result = Err(e);
                        break 'strips;
                    }
                }
            }
            // Visit in row order: row i of every block, then row i + 1.
            for i in 0..n {
                for b in blocks.iter().filter(|b| i < b.out_rows) {
                    let plane = b.out_rows * b.out_columns;
                    values.resize(b.classes, 0.0);
                    for j in 0..b.columns {
                        for (k, v) in values.iter_mut().enumerate() {
                            *v = b.scores[k * plane + i * b.out_columns + j];
                        }
                        visit(((b.first + j) * stride) as u32, ((row + i) * stride) as u32, &values);
                    }
                }
            }
            row += n;
        }
        self.sessions.lock().map_err(|_| poisoned())?.push(session);
        result
    }

    fn run_strip(
        &self,
        session: &mut Session,
        input: Vec<f32>,
        (strip_h, w): (usize, usize),
    ) -> Result<(usize, usize, usize, Vec<f32>)> {
        let fail = |e: &dyn std::fmt::Display| crate::failure!("model {}: {e}", self.path.display());
        let tensor = Tensor::from_array(([1, strip_h, w, self.channels], input)).map_err(|e| fail(&e))?;
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| fail(&e))?;
        let value = outputs
            .get(HEATMAP_OUTPUT)
            .ok_or_else(|| ModelError::Failed(format!("model {}: no heatmap output", self.path.display())))?;
        let (shape, scores) = value.try_extract_tensor::<f32>().map_err(|e| fail(&e))?;
        match shape.as_ref() {
            [1, k, r, c] if *k > 0 && *r >= 0 && *c >= 0 => {
                Ok((*r as usize, *c as usize, *k as usize, scores.to_vec()))
            }
            other => Err(crate::failure!(
                "model {} gave a heatmap of shape {other:?}",
                self.path.display()
            )),
        }
    }

    /// The label of class `index`.
    pub fn label(&self, index: usize) -> String {
        self.labels.get(index).cloned().unwrap_or_else(|| index.to_string())
    }
}
