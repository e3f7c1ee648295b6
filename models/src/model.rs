//! The seed's small CNN (sealions.md): conv 32/64/128 3x3 with 2x2 max
//! pooling, dense 512-512 with dropout 0.5, softmax over the classes. It
//! takes NHWC pixel values 0..255 and rescales them to -0.5..0.5 itself, as
//! the Keras seed's `Rescaling` layer does.

use candle_core::{DType, Device, Tensor, Var, D};

use super::layers::{ConvPool, DenseMatmul};
use rookery_image::rng::Rng;

pub const CONV_FILTERS: [usize; 3] = [32, 64, 128];
pub const DENSE_UNITS: [usize; 2] = [512, 512];
pub const DROPOUT: f32 = 0.5;

/// Which kernels run the convolutions and pools. `Candle` is candle's own
/// `conv2d`/`max_pool2d` (NCHW), kept to measure against; training uses `Fast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Fast,
    Candle,
}

/// One 3x3 convolution: kernel `[9*C_in + 1, F]`, weights in (ky, kx, c)
/// row order and the bias as the last row (see [`super::layers::patch_len`]).
pub struct Conv {
    pub kernel: Var,
    pub in_channels: usize,
    pub filters: usize,
}

/// One dense layer: weights `[in, out]`, bias `[out]`.
pub struct Dense {
    pub weights: Var,
    pub bias: Var,
}

/// What the last dense layer's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Head {
    /// Class logits; the exported model ends with a softmax.
    #[default]
    Classes,
    /// Counts (a count model); the exported model ends with a ReLU, as a
    /// count is never below 0.
    Counts,
}

impl Head {
    /// The `output` metadata value of an exported model with this head.
    pub fn metadata(self) -> &'static str {
        match self {
            Self::Classes => "probabilities",
            Self::Counts => "counts",
        }
    }

    /// The head of a model whose `output` metadata is `value` (a classifier
    /// when there is none, as models made elsewhere are).
    pub fn from_metadata(value: Option<&str>) -> Self {
        if value == Some(Self::Counts.metadata()) {
            Self::Counts
        } else {
            Self::Classes
        }
    }
}

pub struct SeedCnn {
    /// Input height, width and channels.
    pub input: (usize, usize, usize),
    pub convs: Vec<Conv>,
    pub dense: Vec<Dense>,
    pub classes: usize,
    pub head: Head,
}

/// Keras's default initialiser (Glorot uniform) from our seeded stream.
fn glorot(rng: &mut Rng, fan_in: usize, fan_out: usize, len: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..len).map(|_| rng.range(-limit, limit) as f32).collect()
}

/// Spatial side after one conv (valid 3x3) and one 2x2 pool.
fn after_block(side: usize) -> usize {
    side.saturating_sub(2) / 2
}

impl SeedCnn {
    /// The smallest input side the three conv/pool blocks accept.
    pub const MIN_SIDE: usize = 22;

    pub fn new(input: (usize, usize, usize), classes: usize, seed: u64) -> candle_core::Result<Self> {
        let (h, w, c) = input;
        if h < Self::MIN_SIDE || w < Self::MIN_SIDE {
            candle_core::bail!(
                "input {h}x{w} is too small for the CNN (at least {0}x{0})",
                Self::MIN_SIDE
            )
        }
        let device = Device::Cpu;
        let mut rng = Rng::new(seed);
        let mut convs = Vec::new();
        let mut in_channels = c;
        for filters in CONV_FILTERS {
            let fan_in = 9 * in_channels;
            let mut kernel = glorot(&mut rng, fan_in, 9 * filters, fan_in * filters);
            kernel.extend(std::iter::repeat_n(0.0, filters)); // zero bias
            convs.push(Conv {
                kernel: Var::from_vec(kernel, (fan_in + 1, filters), &device)?,
                in_channels,
                filters,
            });
            in_channels = filters;
        }
        let (mut fh, mut fw) = (h, w);
        for _ in CONV_FILTERS {
            (fh, fw) = (after_block(fh), after_block(fw));
        }
        let mut units = fh * fw * in_channels;
        let mut dense = Vec::new();
        for out in DENSE_UNITS.into_iter().chain([classes]) {
            dense.push(Dense {
                weights: Var::from_vec(glorot(&mut rng, units, out, units * out), (units, out), &device)?,
                bias: Var::zeros(out, DType::F32, &device)?,
            });
            units = out;
        }
        Ok(Self {
            input,
            convs,
            dense,
            classes,
            head: Head::Classes,
        })
    }

    pub fn vars(&self) -> Vec<Var> {
        let conv = self.convs.iter().map(|c| c.kernel.clone());
        let dense = self.dense.iter().flat_map(|d| [d.weights.clone(), d.bias.clone()]);
        conv.chain(dense).collect()
    }

    /// Logits `[N, classes]` for NHWC pixels `[N, H, W, C]` in 0..255.
    /// `dropout` is the training-time random stream; `None` for inference.
    pub fn forward(&self, pixels: &Tensor, dropout: Option<&mut Rng>, kernels: Kernels) -> candle_core::Result<Tensor> {
        let mut x = pixels.affine(1.0 / 255.0, -0.5)?;
        for conv in &self.convs {
            x = match kernels {
                // Pooling before the ReLU gives the same values (max and
                // ReLU commute) on a quarter of the data.
                Kernels::Fast => x.apply_op2(conv.kernel.as_tensor(), ConvPool::default())?.relu()?,
                Kernels::Candle => {
                    let weights = conv.kernel.as_tensor().narrow(0, 0, 9 * conv.in_channels)?;
                    let bias = conv.kernel.as_tensor().narrow(0, 9 * conv.in_channels, 1)?;
                    let kernel = weights
                        .reshape((3, 3, conv.in_channels, conv.filters))?
                        .permute((3, 2, 0, 1))?
                        .contiguous()?;
                    x.permute((0, 3, 1, 2))?
                        .contiguous()?
                        .conv2d(&kernel, 0, 1, 1, 1)?
                        .broadcast_add(&bias.reshape((1, conv.filters, 1, 1))?)?
                        .relu()?
                        .max_pool2d(2)?
                        .permute((0, 2, 3, 1))?
                        .contiguous()?
                }
            };
        }
        let n = x.dim(0)?;
        x = x.reshape((n, ()))?;
        let mut dropout = dropout;
        let last = self.dense.len() - 1;
        for (i, layer) in self.dense.iter().enumerate() {
            x = match kernels {
                Kernels::Fast => x.contiguous()?.apply_op2(layer.weights.as_tensor(), DenseMatmul)?,
                Kernels::Candle => x.matmul(layer.weights.as_tensor())?,
            }
            .broadcast_add(layer.bias.as_tensor())?;
            if i < last {
                x = x.relu()?;
                if let Some(rng) = dropout.as_deref_mut() {
                    x = apply_dropout(&x, DROPOUT, rng)?;
                }
            }
        }
        Ok(x)
    }

    /// Class probabilities for a batch of NHWC pixels, no dropout.
    pub fn predict(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::softmax(&self.forward(pixels, None, Kernels::Fast)?, D::Minus1)
    }

    /// Kernel or bias values, row-major, for export.
    pub fn values(var: &Var) -> candle_core::Result<Vec<f32>> {
        var.as_tensor().flatten_all()?.to_vec1::<f32>()
    }
}

/// Inverted dropout with a mask from our seeded stream (reproducible runs).
fn apply_dropout(x: &Tensor, p: f32, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.unit() < p as f64 { 0.0 } else { keep })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}
