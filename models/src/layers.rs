//! The convolution and pooling layers of the seed CNN as one candle custom
//! op over NHWC tensors.
//!
//! Profiling the plain candle model (`conv2d` + `max_pool2d`, NCHW) showed
//! most of a training step in the convolution's backward pass (candle runs
//! the input gradient as a direct `conv_transpose2d` loop and the kernel
//! gradient as a convolution over the whole batch), in `max_pool2d`'s
//! backward (an upsample, a comparison and an average pool), and in
//! zero-filling and adding the gradients of the large intermediate tensors.
//! Here a 3x3 convolution is `im2col` and one gemm, its gradients are two
//! gemms, and the 2x2 pool that follows is fused in, so the intermediates
//! never enter candle's graph.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Contiguous f32 data of a custom op's input.
fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32 data")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: expected a contiguous tensor"),
    }
}

fn dims4(layout: &Layout) -> candle_core::Result<(usize, usize, usize, usize)> {
    layout.shape().dims4()
}

/// Output side of a valid 3x3 convolution.
fn conv_out(side: usize) -> usize {
    side.saturating_sub(2)
}

/// Columns of a patch row: the 3x3xC window, then a constant 1 that
/// multiplies the bias row of the kernel (so the bias needs no separate
/// broadcast add, and its gradient comes out of the same matmul).
pub fn patch_len(c: usize) -> usize {
    9 * c + 1
}

/// The 3x3 patches of an NHWC batch as rows: `[N*(H-2)*(W-2), 9*C+1]`,
/// columns ordered (ky, kx, c) then the constant 1, so a kernel stored as
/// `[9*C+1, F]` (weights in that order, bias last) turns the convolution
/// into one matmul whose result is already NHWC.
pub fn im2col3x3(input: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let (ho, wo) = (conv_out(h), conv_out(w));
    let row = patch_len(c);
    let mut out = vec![0f32; n * ho * wo * row];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(ho * wo * row).enumerate().for_each(|(b, dst)| {
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        for y in 0..ho {
            for x in 0..wo {
                let patch = &mut dst[(y * wo + x) * row..(y * wo + x + 1) * row];
                for ky in 0..3 {
                    // Three neighbouring pixels of one image row are contiguous in NHWC.
                    let src = ((y + ky) * w + x) * c;
                    patch[ky * 3 * c..(ky + 1) * 3 * c].copy_from_slice(&image[src..src + 3 * c]);
                }
                patch[9 * c] = 1.0;
            }
        }
    });
    out
}

/// The adjoint of [`im2col3x3`]: adds each patch row back onto the pixels it
/// came from, giving the gradient of the NHWC input (the constant column has
/// no input to go to).
pub fn col2im3x3(cols: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let (ho, wo) = (conv_out(h), conv_out(w));
    let row = patch_len(c);
    let mut out = vec![0f32; n * h * w * c];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(h * w * c).enumerate().for_each(|(b, image)| {
        let src = &cols[b * ho * wo * row..(b + 1) * ho * wo * row];
        for y in 0..ho {
            for x in 0..wo {
                let patch = &src[(y * wo + x) * row..(y * wo + x + 1) * row];
                for ky in 0..3 {
                    let dst = ((y + ky) * w + x) * c;
                    for (d, s) in image[dst..dst + 3 * c]
                        .iter_mut()
                        .zip(&patch[ky * 3 * c..(ky + 1) * 3 * c])
                    {
                        *d += s;
                    }
                }
            }
        }
    });
    out
}

/// 2x2 max pooling with stride 2 over NHWC data `[n, h, w, c]` (odd edges
/// dropped, as Keras and ONNX `MaxPool` do): the pooled values, and for each
/// the index of its maximum in `input` (the first on ties).
pub fn max_pool2(input: &[f32], n: usize, h: usize, w: usize, c: usize) -> (Vec<f32>, Vec<u32>) {
    let (ph, pw) = (h / 2, w / 2);
    let mut pooled = vec![0f32; n * ph * pw * c];
    let mut argmax = vec![0u32; pooled.len()];
    if pooled.is_empty() {
        return (pooled, argmax);
    }
    let per_image = ph * pw * c;
    pooled
        .par_chunks_mut(per_image)
        .zip(argmax.par_chunks_mut(per_image))
        .enumerate()
        .for_each(|(b, (out, arg))| {
            for y in 0..ph {
                for x in 0..pw {
                    let at = |dy: usize, dx: usize| ((b * h + 2 * y + dy) * w + 2 * x + dx) * c;
                    let window = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                    for ch in 0..c {
                        let mut best = window[0] + ch;
                        for &p in &window[1..] {
                            if input[p + ch] > input[best] {
                                best = p + ch;
                            }
                        }
                        let o = (y * pw + x) * c + ch;
                        out[o] = input[best];
                        arg[o] = best as u32;
                    }
                }
            }
        });
    (pooled, argmax)
}

/// The longest stretch of the inner dimension one gemm call sums. gemm
/// picks its own block along k from the CPU's L1 cache geometry (at least
/// 512), and the block is where the order of the float sums changes: with
/// at most 512 per call, each output is a fixed sequence of fused
/// multiply-adds, chunk after chunk, on every CPU with FMA (training's
/// reproducibility depends on it).
pub const K_BLOCK: usize = 512;

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` with explicit (row, column) strides, on
/// all of rayon's threads, in chunks of [`K_BLOCK`] along k.
#[allow(clippy::too_many_arguments)]
fn matmul_into(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n && lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    for start in (0..k).step_by(K_BLOCK) {
        let len = K_BLOCK.min(k - start);
        // SAFETY: the strides address only elements inside the slices
        // (checked above for the whole k), and dst does not alias lhs or
        // rhs (a &mut borrow).
        unsafe {
            gemm::gemm(
                m,
                n,
                len,
                dst.as_mut_ptr(),
                1,
                n as isize,
                // The first chunk writes, later ones add.
                start > 0,
                lhs.as_ptr().add(start * lhs_cs),
                lhs_cs as isize,
                lhs_rs as isize,
                rhs.as_ptr().add(start * rhs_rs),
                rhs_cs as isize,
                rhs_rs as isize,
                if start > 0 { 1.0 } else { 0.0 },
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            )
        }
    }
}

/// A dense layer's product `x[N, K] · W[K, F]` as a candle op whose
/// forward and backward gemms all go through [`matmul_into`], so their
/// sums have a fixed order (candle's own matmul lets gemm pick its block
/// along k from the cache size, which differs between CPUs).
#[derive(Debug, Default, Clone, Copy)]
pub struct DenseMatmul;

impl CustomOp2 for DenseMatmul {
    fn name(&self) -> &'static str {
        "dense_matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, k) = l1.shape().dims2()?;
        let (k2, f) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("{}: [{n}, {k}] by [{k2}, {f}]", self.name())
        }
        let (x, w) = (f32_slice(s1, l1, self.name())?, f32_slice(s2, l2, self.name())?);
        let mut out = vec![0f32; n * f];
        if n > 0 && f > 0 && k > 0 {
            matmul_into(&mut out, (n, f, k), x, (k, 1), w, (f, 1));
        }
        Ok((CpuStorage::F32(out), Shape::from((n, f))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, k) = x.dims2()?;
        let f = w.dim(1)?;
        let grad = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let ws = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        // dW[K, F] = xᵀ · grad, dx[N, K] = grad · Wᵀ.
        let mut d_w = vec![0f32; k * f];
        let mut d_x = vec![0f32; n * k];
        if n > 0 && f > 0 && k > 0 {
            matmul_into(&mut d_w, (k, f, n), &xs, (1, k), &grad, (f, 1));
            matmul_into(&mut d_x, (n, k, f), &grad, (f, 1), &ws, (1, f));
        }
        Ok((
            Some(Tensor::from_vec(d_x, (n, k), x.device())?),
            Some(Tensor::from_vec(d_w, (k, f), w.device())?),
        ))
    }
}

/// What the forward pass of [`ConvPool`] keeps for its backward pass.
struct ConvPoolCache {
    patches: Vec<f32>,
    /// For every pooled value, the index of its maximum in the conv output.
    argmax: Vec<u32>,
}

/// A 3x3 valid convolution (kernel `[9*C+1, F]`, bias last) followed by a
/// 2x2 max pool, NHWC, as one candle op: `im2col`, one gemm and the pool in
/// the forward pass; in the backward pass the pool's gradient is scattered
/// to the maxima and the kernel and input gradients are two gemms. Keeping
/// the patches and the maxima from the forward pass, and not handing the
/// large intermediate tensors to candle's graph, saves the zero-filling and
/// adding candle does for every node's gradient.
#[derive(Default)]
pub struct ConvPool {
    cache: std::sync::Mutex<Option<ConvPoolCache>>,
}

impl CustomOp2 for ConvPool {
    fn name(&self) -> &'static str {
        "conv3x3_maxpool2_nhwc"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h, w, c) = dims4(l1)?;
        let (k, f) = l2.shape().dims2()?;
        if k != patch_len(c) {
            candle_core::bail!(
                "{}: kernel {:?} does not fit {c} input channels",
                self.name(),
                l2.shape()
            )
        }
        let input = f32_slice(s1, l1, self.name())?;
        let kernel = f32_slice(s2, l2, self.name())?;
        let (ho, wo) = (conv_out(h), conv_out(w));
        let patches = im2col3x3(input, n, h, w, c);
        let mut conv = vec![0f32; n * ho * wo * f];
        if !conv.is_empty() {
            matmul_into(&mut conv, (n * ho * wo, f, k), &patches, (k, 1), kernel, (f, 1));
        }
        let (pooled, argmax) = max_pool2(&conv, n, ho, wo, f);
        let (ph, pw) = (ho / 2, wo / 2);
        *self
            .cache
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned conv cache".into()))? =
            Some(ConvPoolCache { patches, argmax });
        Ok((CpuStorage::F32(pooled), Shape::from((n, ph, pw, f))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let cache = self
            .cache
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned conv cache".into()))?
            .take();
        let Some(ConvPoolCache { patches, argmax }) = cache else {
            candle_core::bail!("{}: backward pass without a forward pass", self.name())
        };
        let (n, h, w, c) = x.dims4()?;
        let (k, f) = kernel.dims2()?;
        let (ho, wo) = (conv_out(h), conv_out(w));
        let rows = n * ho * wo;
        let grad = grad_res.flatten_all()?.to_vec1::<f32>()?;
        // The pool's gradient: each pooled gradient to its window's maximum.
        let mut d_conv = vec![0f32; rows * f];
        for (g, &i) in grad.iter().zip(&argmax) {
            d_conv[i as usize] += g;
        }
        let mut d_kernel = vec![0f32; k * f];
        matmul_into(&mut d_kernel, (k, f, rows), &patches, (1, k), &d_conv, (f, 1));
        drop(patches);
        let d_kernel = Tensor::from_vec(d_kernel, (k, f), kernel.device())?;
        // The input's gradient only when something before needs it (not for pixels).
        let d_x = if x.track_op() {
            let kernel_values = kernel.flatten_all()?.to_vec1::<f32>()?;
            let mut d_patches = vec![0f32; rows * k];
            matmul_into(&mut d_patches, (rows, k, f), &d_conv, (f, 1), &kernel_values, (1, f));
            Some(Tensor::from_vec(
                col2im3x3(&d_patches, n, h, w, c),
                (n, h, w, c),
                x.device(),
            )?)
        } else {
            None
        };
        Ok((d_x, Some(d_kernel)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn sample(len: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect()
    }

    /// The dense op and its gradients are candle's matmul and autograd's.
    #[test]
    fn dense_matmul_matches_candle() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_vec(sample(5 * 700), (5, 700), &dev)?;
        let w = Var::from_vec(sample(700 * 3), (700, 3), &dev)?;
        let ours = x.as_tensor().apply_op2(w.as_tensor(), DenseMatmul)?;
        let theirs = x.as_tensor().matmul(w.as_tensor())?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-3, "{diff}");
        let weights = Tensor::from_vec(sample(15), (5, 3), &dev)?;
        let g_ours = (ours * &weights)?.sum_all()?.backward()?;
        let g_theirs = (theirs * &weights)?.sum_all()?.backward()?;
        for var in [&x, &w] {
            let (a, b) = (g_ours.get(var).unwrap(), g_theirs.get(var).unwrap());
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-3, "{diff}");
        }
        Ok(())
    }

    /// Each output is the fused multiply-adds of its row and column in k
    /// order, restarted at every K_BLOCK and added chunk after chunk: a
    /// formula with no room for the CPU's cache sizes or thread count.
    #[test]
    fn matmul_sums_in_a_fixed_order() {
        if !std::arch::is_x86_feature_detected!("fma") {
            return; // gemm's scalar kernel multiplies and adds separately
        }
        let (m, n, k) = (37, 19, 2 * K_BLOCK + 233);
        let lhs: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.0).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 991) as f32 / 89.0 - 5.5).collect();
        let mut dst = vec![f32::NAN; m * n];
        matmul_into(&mut dst, (m, n, k), &lhs, (k, 1), &rhs, (n, 1));
        for i in 0..m {
            for j in 0..n {
                let mut total = 0f32;
                for start in (0..k).step_by(K_BLOCK) {
                    let mut chunk = 0f32;
                    for p in start..(start + K_BLOCK).min(k) {
                        chunk = lhs[i * k + p].mul_add(rhs[p * n + j], chunk);
                    }
                    total = if start == 0 { chunk } else { total + chunk };
                }
                assert_eq!(dst[i * n + j].to_bits(), total.to_bits(), "({i}, {j})");
            }
        }
    }

    /// The fused op gives candle's conv2d + bias + max_pool2d (NCHW).
    #[test]
    fn conv_pool_matches_candle_conv2d_and_pool() -> candle_core::Result<()> {
        let (n, h, w, c, f) = (2, 9, 8, 3, 4);
        let dev = Device::Cpu;
        let x = Tensor::from_vec(sample(n * h * w * c), (n, h, w, c), &dev)?;
        let k = Tensor::from_vec(sample(patch_len(c) * f), (patch_len(c), f), &dev)?;
        let ours = x.apply_op2(&k, ConvPool::default())?;
        let (weights, bias) = (k.narrow(0, 0, 9 * c)?, k.narrow(0, 9 * c, 1)?);
        let k_nchw = weights.reshape((3, 3, c, f))?.permute((3, 2, 0, 1))?.contiguous()?;
        let theirs = x
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .conv2d(&k_nchw, 0, 1, 1, 1)?
            .broadcast_add(&bias.reshape((1, f, 1, 1))?)?
            .max_pool2d(2)?
            .permute((0, 2, 3, 1))?;
        assert_eq!(ours.dims(), &[n, 3, 3, f]);
        let diff = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max difference {diff}");
        Ok(())
    }

    /// The op's gradients (input and kernel) against central differences of
    /// the same loss. (candle 0.11's own max_pool2d gradient is a quarter of
    /// the true one, so candle cannot be the reference here.)
    #[test]
    fn conv_pool_gradients_match_finite_differences() -> candle_core::Result<()> {
        let (n, h, w, c, f) = (2, 8, 7, 2, 3);
        let dev = Device::Cpu;
        let xs = sample(n * h * w * c);
        let ks: Vec<f32> = sample(patch_len(c) * f).iter().map(|v| v * 0.7).collect();
        let weights: Vec<f32> = sample(n * 3 * 2 * f).iter().map(|v| v + 0.9).collect();
        let loss = |xs: &[f32], ks: &[f32]| -> candle_core::Result<f32> {
            let x = Tensor::from_vec(xs.to_vec(), (n, h, w, c), &dev)?;
            let k = Tensor::from_vec(ks.to_vec(), (patch_len(c), f), &dev)?;
            let out = x
                .apply_op2_no_bwd(&k, &ConvPool::default())?
                .flatten_all()?
                .to_vec1::<f32>()?;
            Ok(out.iter().zip(&weights).map(|(a, b)| a * b).sum())
        };
        // x is a Var, so the op computes its gradient as for an inner layer.
        let x = Var::from_vec(xs.clone(), (n, h, w, c), &dev)?;
        let k = Var::from_vec(ks.clone(), (patch_len(c), f), &dev)?;
        let wt = Tensor::from_vec(weights.clone(), (n, 3, 2, f), &dev)?;
        let grads = (x.apply_op2(&k, ConvPool::default())? * wt)?.sum_all()?.backward()?;
        let dx = grads.get(&x).expect("input gradient").flatten_all()?.to_vec1::<f32>()?;
        let dk = grads
            .get(&k)
            .expect("kernel gradient")
            .flatten_all()?
            .to_vec1::<f32>()?;
        let eps = 1e-3;
        let central = |plus: f32, minus: f32| (plus - minus) / (2.0 * eps);
        for i in 0..xs.len() {
            let (mut plus, mut minus) = (xs.clone(), xs.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let numeric = central(loss(&plus, &ks)?, loss(&minus, &ks)?);
            assert!((numeric - dx[i]).abs() < 2e-2, "input {i}: {numeric} vs {}", dx[i]);
        }
        for i in 0..ks.len() {
            let (mut plus, mut minus) = (ks.clone(), ks.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let numeric = central(loss(&xs, &plus)?, loss(&xs, &minus)?);
            assert!((numeric - dk[i]).abs() < 2e-2, "kernel {i}: {numeric} vs {}", dk[i]);
        }
        Ok(())
    }

    #[test]
    fn pool_drops_odd_edges_and_points_at_maxima() {
        let input: Vec<f32> = (0..3 * 3).map(|v| v as f32).collect();
        assert_eq!(max_pool2(&input, 1, 3, 3, 1), (vec![4.0], vec![4]));
    }

    /// <im2col(x), y> = <x, col2im(y)>: the two are adjoint, as a gradient needs.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let (n, h, w, c) = (1, 5, 4, 2);
        let x = sample(n * h * w * c);
        let cols = im2col3x3(&x, n, h, w, c);
        let y: Vec<f32> = (0..cols.len())
            .map(|i| {
                if i % patch_len(c) == 9 * c {
                    0.0
                } else {
                    (i % 13) as f32
                }
            })
            .collect();
        let lhs: f32 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(col2im3x3(&y, n, h, w, c)).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-2, "{lhs} vs {rhs}");
    }
}
