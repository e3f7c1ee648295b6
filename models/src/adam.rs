//! Adam (Kingma & Ba), as Keras runs it, updating each parameter in one
//! pass over plain buffers. candle-nn's AdamW builds a dozen temporary
//! tensors per parameter and step, a visible share of a training step for
//! the 2.4M weights of the first dense layer.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rayon::prelude::*;

struct Slot {
    var: Var,
    values: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

pub struct Adam {
    slots: Vec<Slot>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: i32,
}

impl Adam {
    /// Keras's defaults but for the learning rate: beta1 0.9, beta2 0.999, epsilon 1e-7.
    pub fn new(vars: Vec<Var>, lr: f64) -> candle_core::Result<Self> {
        let slots = vars
            .into_iter()
            .map(|var| {
                let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                let len = values.len();
                Ok(Slot {
                    var,
                    values,
                    m: vec![0.0; len],
                    v: vec![0.0; len],
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            slots,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            step: 0,
        })
    }

    /// The step size from the next step on (a schedule changes it by epoch).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn backward_step(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step += 1;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        // Bias corrections folded into the step size, as Keras does.
        let lr = (self.lr * (1.0 - self.beta2.powi(self.step)).sqrt() / (1.0 - self.beta1.powi(self.step))) as f32;
        let eps = self.eps as f32;
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let grad = grad.flatten_all()?.to_vec1::<f32>()?;
            slot.values
                .par_chunks_mut(4096)
                .zip(slot.m.par_chunks_mut(4096))
                .zip(slot.v.par_chunks_mut(4096))
                .zip(grad.par_chunks(4096))
                .for_each(|(((theta, m), v), g)| {
                    for i in 0..g.len() {
                        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                        theta[i] -= lr * m[i] / (v[i].sqrt() + eps);
                    }
                });
            let shape = slot.var.as_tensor().shape().clone();
            slot.var
                .set(&Tensor::from_vec(slot.values.clone(), shape, slot.var.device())?)?;
        }
        Ok(())
    }
}
