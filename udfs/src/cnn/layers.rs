//! The two layers candle's CPU backend makes slow, as candle custom ops over
//! NHWC tensors.
//!
//! Profiling the plain candle model (`conv2d` + `max_pool2d`, NCHW) showed
//! most of a training step in the convolution's backward pass (candle runs
//! the input gradient as a direct `conv_transpose2d` loop and the kernel
//! gradient as a convolution over the whole batch) and in `max_pool2d`'s
//! backward (an upsample, a comparison and an average pool). Here a 3x3
//! convolution is `im2col` followed by candle's `matmul` (gemm), so both its
//! gradients are gemms too, and the pool's backward routes each gradient to
//! the window's maximum in one pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
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

/// `im2col` of a 3x3 valid convolution over an NHWC tensor.
pub struct Im2Col3x3;

impl CustomOp1 for Im2Col3x3 {
    fn name(&self) -> &'static str {
        "im2col3x3"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h, w, c) = dims4(layout)?;
        let data = f32_slice(storage, layout, self.name())?;
        let out = im2col3x3(data, n, h, w, c);
        Ok((
            CpuStorage::F32(out),
            Shape::from((n * conv_out(h) * conv_out(w), patch_len(c))),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, h, w, c) = arg.dims4()?;
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im3x3 {
            n,
            h,
            w,
            c,
        })?))
    }
}

/// The backward pass of [`Im2Col3x3`] (no gradient of its own).
struct Col2Im3x3 {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
}

impl CustomOp1 for Col2Im3x3 {
    fn name(&self) -> &'static str {
        "col2im3x3"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let cols = f32_slice(storage, layout, self.name())?;
        let out = col2im3x3(cols, self.n, self.h, self.w, self.c);
        Ok((CpuStorage::F32(out), Shape::from((self.n, self.h, self.w, self.c))))
    }
}

/// 2x2 max pooling with stride 2 over NHWC data (odd edges dropped, as Keras
/// and ONNX `MaxPool` do).
pub fn max_pool2(input: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f32; n * ho * wo * c];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(ho * wo * c).enumerate().for_each(|(b, dst)| {
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        for y in 0..ho {
            for x in 0..wo {
                let o = &mut dst[(y * wo + x) * c..(y * wo + x + 1) * c];
                let at = |dy: usize, dx: usize| ((2 * y + dy) * w + 2 * x + dx) * c;
                let (a, b2, c2, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                for k in 0..c {
                    o[k] = image[a + k].max(image[b2 + k]).max(image[c2 + k].max(image[d + k]));
                }
            }
        }
    });
    out
}

/// The gradient of [`max_pool2`]: each output gradient goes to the first
/// maximum of its window.
pub fn max_pool2_backward(input: &[f32], grad: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f32; n * h * w * c];
    if out.is_empty() || ho == 0 || wo == 0 {
        return out;
    }
    out.par_chunks_mut(h * w * c).enumerate().for_each(|(b, dst)| {
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        let g = &grad[b * ho * wo * c..(b + 1) * ho * wo * c];
        for y in 0..ho {
            for x in 0..wo {
                let at = |dy: usize, dx: usize| ((2 * y + dy) * w + 2 * x + dx) * c;
                let window = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                for k in 0..c {
                    let mut best = window[0] + k;
                    for &p in &window[1..] {
                        if image[p + k] > image[best] {
                            best = p + k;
                        }
                    }
                    dst[best] += g[(y * wo + x) * c + k];
                }
            }
        }
    });
    out
}

/// [`max_pool2`] as a candle op.
pub struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max_pool2_nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h, w, c) = dims4(layout)?;
        let data = f32_slice(storage, layout, self.name())?;
        Ok((
            CpuStorage::F32(max_pool2(data, n, h, w, c)),
            Shape::from((n, h / 2, w / 2, c)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad_res.contiguous()?, &MaxPool2Backward)?,
        ))
    }
}

/// The backward pass of [`MaxPool2`]: (pool input, output gradient) → input gradient.
struct MaxPool2Backward;

impl CustomOp2 for MaxPool2Backward {
    fn name(&self) -> &'static str {
        "max_pool2_nhwc_backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h, w, c) = dims4(l1)?;
        let input = f32_slice(s1, l1, self.name())?;
        let grad = f32_slice(s2, l2, self.name())?;
        if grad.len() != n * (h / 2) * (w / 2) * c {
            candle_core::bail!(
                "{}: gradient shape {:?} does not match input {:?}",
                self.name(),
                l2.shape(),
                l1.shape()
            )
        }
        Ok((
            CpuStorage::F32(max_pool2_backward(input, grad, n, h, w, c)),
            l1.shape().clone(),
        ))
    }
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` with explicit (row, column) strides, on
/// all of rayon's threads.
#[allow(clippy::too_many_arguments)]
fn matmul_into(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n && lhs.len() >= (m - 1) * lhs_rs + (k - 1) * lhs_cs + 1);
    assert!(rhs.len() >= (k - 1) * rhs_rs + (n - 1) * rhs_cs + 1);
    // SAFETY: the strides address only elements inside the slices (checked
    // above), and dst does not alias lhs or rhs (a &mut borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        )
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
        let (ph, pw) = (ho / 2, wo / 2);
        let mut pooled = vec![0f32; n * ph * pw * f];
        let mut argmax = vec![0u32; pooled.len()];
        if !pooled.is_empty() {
            pooled
                .par_chunks_mut(ph * pw * f)
                .zip(argmax.par_chunks_mut(ph * pw * f))
                .enumerate()
                .for_each(|(b, (out, arg))| {
                    for y in 0..ph {
                        for x in 0..pw {
                            let at = |dy: usize, dx: usize| ((b * ho + 2 * y + dy) * wo + 2 * x + dx) * f;
                            let window = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                            for ch in 0..f {
                                let mut best = window[0] + ch;
                                for &p in &window[1..] {
                                    if conv[p + ch] > conv[best] {
                                        best = p + ch;
                                    }
                                }
                                let o = (y * pw + x) * f + ch;
                                out[o] = conv[best];
                                arg[o] = best as u32;
                            }
                        }
                    }
                });
        }
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

    /// im2col + matmul must equal candle's own conv2d (NCHW) on the same data.
    #[test]
    fn im2col_matmul_matches_candle_conv2d() -> candle_core::Result<()> {
        let (n, h, w, c, f) = (2, 7, 6, 3, 4);
        let dev = Device::Cpu;
        let x = Tensor::from_vec(sample(n * h * w * c), (n, h, w, c), &dev)?;
        // Kernel in (ky, kx, c) x f order, and the same kernel as candle's [f, c, ky, kx].
        let k = Tensor::from_vec(sample(patch_len(c) * f), (patch_len(c), f), &dev)?;
        let ours = x.apply_op1(Im2Col3x3)?.matmul(&k)?.reshape((n, h - 2, w - 2, f))?;
        let (weights, bias) = (k.narrow(0, 0, 9 * c)?, k.narrow(0, 9 * c, 1)?);
        let k_nchw = weights.reshape((3, 3, c, f))?.permute((3, 2, 0, 1))?.contiguous()?;
        let theirs = x
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .conv2d(&k_nchw, 0, 1, 1, 1)?
            .permute((0, 2, 3, 1))?
            .broadcast_add(&bias.reshape(f)?)?;
        let diff = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max difference {diff}");
        Ok(())
    }

    /// The convolution's gradients (through im2col's backward) must equal
    /// candle's own conv2d gradients for the same loss.
    #[test]
    fn conv_gradients_match_candle() -> candle_core::Result<()> {
        let (n, h, w, c, f) = (2, 8, 8, 3, 5);
        let dev = Device::Cpu;
        let x = Var::from_vec(sample(n * h * w * c), (n, h, w, c), &dev)?;
        let k = Var::from_vec(sample(patch_len(c) * f), (patch_len(c), f), &dev)?;
        let weights = Tensor::from_vec(sample(n * 6 * 6 * f), (n, 6, 6, f), &dev)?;

        let ours = x.apply_op1(Im2Col3x3)?.matmul(&k)?.reshape((n, h - 2, w - 2, f))?;
        let grads = (ours * &weights)?.sum_all()?.backward()?;
        let (kernel, bias) = (k.narrow(0, 0, 9 * c)?, k.narrow(0, 9 * c, 1)?);
        let k_nchw = kernel.reshape((3, 3, c, f))?.permute((3, 2, 0, 1))?;
        let theirs = x
            .permute((0, 3, 1, 2))?
            .conv2d(&k_nchw.contiguous()?, 0, 1, 1, 1)?
            .permute((0, 2, 3, 1))?
            .broadcast_add(&bias.reshape(f)?)?;
        let reference = (theirs * &weights)?.sum_all()?.backward()?;
        for var in [&x, &k] {
            let a = grads.get(var).expect("gradient");
            let b = reference.get(var).expect("gradient");
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "max gradient difference {diff}");
        }
        Ok(())
    }

    /// The pool's gradient against central differences of the same loss.
    /// (candle 0.11's own max_pool2d gradient is a quarter of the true one,
    /// so it cannot be the reference here.)
    #[test]
    fn pool_gradient_matches_finite_differences() -> candle_core::Result<()> {
        let (n, h, w, c) = (2, 6, 5, 3);
        let dev = Device::Cpu;
        let values = sample(n * h * w * c);
        let weights = sample(n * 3 * 2 * c).iter().map(|v| v + 0.7).collect::<Vec<_>>();
        let loss = |x: &[f32]| -> f32 { max_pool2(x, n, h, w, c).iter().zip(&weights).map(|(a, b)| a * b).sum() };
        let x = Var::from_vec(values.clone(), (n, h, w, c), &dev)?;
        let wt = Tensor::from_vec(weights.clone(), (n, 3, 2, c), &dev)?;
        let grads = (x.apply_op1(MaxPool2)? * wt)?.sum_all()?.backward()?;
        let ours = grads.get(&x).expect("gradient").flatten_all()?.to_vec1::<f32>()?;
        let eps = 1e-3;
        for i in 0..values.len() {
            let (mut plus, mut minus) = (values.clone(), values.clone());
            plus[i] += eps;
            minus[i] -= eps;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * eps);
            assert!(
                (numeric - ours[i]).abs() < 1e-2,
                "element {i}: {numeric} vs {}",
                ours[i]
            );
        }
        Ok(())
    }

    /// The fused op gives the unfused ops' values and gradients.
    #[test]
    fn fused_conv_pool_matches_unfused() -> candle_core::Result<()> {
        let (n, h, w, c, f) = (2, 9, 8, 3, 4);
        let dev = Device::Cpu;
        let x = Var::from_vec(sample(n * h * w * c), (n, h, w, c), &dev)?;
        let k = Var::from_vec(sample(patch_len(c) * f), (patch_len(c), f), &dev)?;
        let weights = Tensor::from_vec(sample(n * 3 * 3 * f), (n, 3, 3, f), &dev)?;
        let fused = x.apply_op2(&k, ConvPool::default())?;
        let unfused = x
            .apply_op1(Im2Col3x3)?
            .matmul(&k)?
            .reshape((n, h - 2, w - 2, f))?
            .apply_op1(MaxPool2)?;
        let diff = (&fused - &unfused)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "values differ by {diff}");
        let a = (fused * &weights)?.sum_all()?.backward()?;
        let b = (unfused * &weights)?.sum_all()?.backward()?;
        for var in [&x, &k] {
            let diff = (a.get(var).expect("grad") - b.get(var).expect("grad"))?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-4, "gradients differ by {diff}");
        }
        Ok(())
    }

    #[test]
    fn max_pool_drops_odd_edges() {
        let input: Vec<f32> = (0..3 * 3).map(|v| v as f32).collect();
        assert_eq!(max_pool2(&input, 1, 3, 3, 1), vec![4.0]);
        let grad = max_pool2_backward(&input, &[1.0], 1, 3, 3, 1);
        assert_eq!(grad.iter().sum::<f32>(), 1.0);
        assert_eq!(grad[4], 1.0);
    }
}
