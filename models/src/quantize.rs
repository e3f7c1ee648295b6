//! int8 models: a trained float model rewritten in ONNX's QDQ form
//! (QuantizeLinear/DequantizeLinear around every convolution and dense
//! layer), which ONNX Runtime runs with integer kernels (QLinearConv,
//! QGemm).
//!
//! Weights are int8, symmetric, one scale per output channel; biases
//! int32 at the input scale times the weight scale; activations uint8
//! with ranges calibrated on real inputs. A ReLU after a convolution or a
//! dense layer becomes the quantisation of its output with zero point 0,
//! which clamps negatives as the ReLU did, so the runtime can fuse the
//! layer with it; max pooling then runs on the uint8 values.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use prost::Message;

use super::onnx::{
    decode_rookery_model, float_tensor, float_values, int_attr, node, GraphProto, NodeProto, TensorProto,
};

const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;

fn raw_tensor(name: &str, dims: &[usize], data_type: i32, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type,
        name: name.to_string(),
        raw_data,
    }
}

/// The observed range of one activation tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Default for Range {
    fn default() -> Self {
        Self {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl Range {
    pub fn add(&mut self, values: &[f32]) {
        for &v in values {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
        }
    }

    pub fn merge(&mut self, other: Range) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// uint8 (scale, zero point) covering the range and 0.
    fn uint8(&self) -> (f32, u8) {
        let (lo, hi) = (self.min.min(0.0), self.max.max(0.0));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero = (-lo / scale).round().clamp(0.0, 255.0) as u8;
        (scale, zero)
    }
}

/// What [`calibration_tensors`] and [`quantize_model`] take.
const ROOKERY_ONLY: &str = "only models cnn_train or linear_train wrote can be quantised";

fn is_layer(n: &NodeProto) -> bool {
    n.op_type == "Conv" || n.op_type == "Gemm"
}

/// Which tensors become uint8 in the rewritten graph, and which of them
/// need calibrating.
struct Plan {
    /// ReLUs that follow a layer: their outputs become Q/DQ pairs.
    relus: HashSet<String>,
    /// Max pools of such outputs: sandwiched between Q/DQ pairs.
    pools: HashSet<String>,
    /// Layer inputs that are not already dequantised: Q/DQ inserted.
    inputs: Vec<String>,
}

fn plan(graph: &GraphProto) -> Plan {
    let layer_outputs: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| is_layer(n))
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect();
    let relus: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Relu" && n.input.first().is_some_and(|i| layer_outputs.contains(i.as_str())))
        .filter_map(|n| n.output.first().cloned())
        .collect();
    let pools: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "MaxPool" && n.input.first().is_some_and(|i| relus.contains(i)))
        .filter_map(|n| n.output.first().cloned())
        .collect();
    let mut inputs = Vec::new();
    for n in graph.node.iter().filter(|n| is_layer(n)) {
        if let Some(a) = n.input.first() {
            if !relus.contains(a) && !pools.contains(a) && !inputs.contains(a) {
                inputs.push(a.clone());
            }
        }
    }
    Plan { relus, pools, inputs }
}

/// The tensors whose ranges [`quantize_model`] needs, in order: each
/// quantised ReLU's output, then each layer input that is not one.
pub fn calibration_tensors(model_bytes: &[u8]) -> Result<Vec<String>> {
    let model = decode_rookery_model(model_bytes, ROOKERY_ONLY)?;
    let graph = model.graph.unwrap_or_default();
    let plan = plan(&graph);
    if !graph.node.iter().any(is_layer) {
        return crate::invalid!("the model has no convolution or dense layer to quantise");
    }
    let mut names: Vec<String> = graph
        .node
        .iter()
        .filter_map(|n| n.output.first())
        .filter(|o| plan.relus.contains(*o))
        .cloned()
        .collect();
    names.extend(plan.inputs);
    Ok(names)
}

/// Per-output-channel symmetric int8 of a weight tensor whose output
/// channels lie along `axis` (0 or 1 of a 2-D view `[rows, cols]`).
fn quantize_weights(values: &[f32], rows: usize, cols: usize, axis: usize) -> (Vec<i8>, Vec<f32>) {
    let channels = if axis == 0 { rows } else { cols };
    let channel = |i: usize| if axis == 0 { i / cols } else { i % cols };
    let mut max = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = channel(i);
        max[c] = max[c].max(v.abs());
    }
    let scales: Vec<f32> = max.iter().map(|m| if *m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scales[channel(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// The QDQ int8 form of a model `cnn_train` (or `linear_train`) wrote,
/// given the calibrated range of each of [`calibration_tensors`].
pub fn quantize_model(model_bytes: &[u8], ranges: &HashMap<String, Range>) -> Result<Vec<u8>> {
    let mut model = decode_rookery_model(model_bytes, ROOKERY_ONLY)?;
    let Some(mut graph) = model.graph.take() else {
        return crate::failed!("the file holds no ONNX graph");
    };
    let plan = plan(&graph);
    let range = |name: &str| -> Result<(f32, u8)> {
        match ranges.get(name) {
            Some(r) if r.min <= r.max => Ok(r.uint8()),
            _ => crate::failed!("no calibration range for tensor '{name}'"),
        }
    };
    let initializers: HashMap<String, TensorProto> =
        graph.initializer.iter().map(|t| (t.name.clone(), t.clone())).collect();
    let mut new_init: Vec<TensorProto> = Vec::new();
    let mut nodes: Vec<NodeProto> = Vec::new();
    let mut quantised_weights: HashSet<String> = HashSet::new();
    // Tensor name -> (scale, zero point) of tensors that are DQ outputs.
    let mut dequantised: HashMap<String, (f32, u8)> = HashMap::new();

    // A Q/DQ pair from `from` to `to` with uint8 (scale, zero point).
    let qdq =
        |from: &str, to: &str, (scale, zero): (f32, u8), nodes: &mut Vec<NodeProto>, init: &mut Vec<TensorProto>| {
            let (s, z, q) = (format!("{to}_scale"), format!("{to}_zero"), format!("{to}_quantised"));
            init.push(float_tensor(&s, &[], &[scale]));
            init.push(raw_tensor(&z, &[], UINT8, vec![zero]));
            nodes.push(node("QuantizeLinear", &[from, &s, &z], &q, vec![]));
            nodes.push(node("DequantizeLinear", &[&q, &s, &z], to, vec![]));
        };

    for n in std::mem::take(&mut graph.node) {
        let output = n.output.first().cloned().unwrap_or_default();
        if is_layer(&n) {
            let (Some(a), Some(w)) = (n.input.first(), n.input.get(1)) else {
                return crate::failed!("layer {} lacks inputs", n.name);
            };
            let Some(weights) = initializers.get(w) else {
                return crate::invalid!("layer {}'s weights {w} are not constant", n.name);
            };
            let trans_b = n.attribute.iter().any(|at| at.name == "transB" && at.i == 1);
            if n.attribute.iter().any(|at| at.name == "transA" && at.i == 1) {
                return crate::invalid!("layer {} uses transA, which Rookery does not quantise", n.name);
            }
            // Input: dequantised already, or a new Q/DQ pair.
            let a_params = match dequantised.get(a) {
                Some(p) => *p,
                None => {
                    let p = range(a)?;
                    qdq(a, &format!("{a}_dq"), p, &mut nodes, &mut new_init);
                    p
                }
            };
            let a_input = if dequantised.contains_key(a) {
                a.clone()
            } else {
                format!("{a}_dq")
            };
            // Weights: int8 per output channel.
            let dims: Vec<usize> = weights.dims.iter().map(|&d| d.max(0) as usize).collect();
            let values = float_values(weights)?;
            let (rows, cols, axis) = match (n.op_type.as_str(), dims.as_slice()) {
                ("Conv", [f, rest @ ..]) => (*f, rest.iter().product::<usize>(), 0),
                ("Gemm", [r, c]) if trans_b => (*r, *c, 0),
                ("Gemm", [r, c]) => (*r, *c, 1),
                _ => return crate::invalid!("layer {} has weights of shape {dims:?}", n.name),
            };
            let (q, scales) = quantize_weights(&values, rows, cols, axis);
            let channels = scales.len();
            let (wq, ws, wz, wd) = (
                format!("{w}_quantised"),
                format!("{w}_scale"),
                format!("{w}_zero"),
                format!("{w}_dq"),
            );
            new_init.push(raw_tensor(&wq, &dims, INT8, q.iter().map(|v| *v as u8).collect()));
            new_init.push(float_tensor(&ws, &[channels], &scales));
            new_init.push(raw_tensor(&wz, &[channels], INT8, vec![0; channels]));
            nodes.push(node(
                "DequantizeLinear",
                &[&wq, &ws, &wz],
                &wd,
                vec![int_attr("axis", axis as i64)],
            ));
            quantised_weights.insert(w.clone());
            let mut inputs = vec![a_input, wd];
            // Bias: int32 at input scale x weight scale.
            if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
                let Some(bias) = initializers.get(b) else {
                    return crate::invalid!("layer {}'s bias {b} is not constant", n.name);
                };
                let bias = float_values(bias)?;
                if bias.len() != channels {
                    return crate::invalid!(
                        "layer {}'s bias has {} values for {channels} channels",
                        n.name,
                        bias.len()
                    );
                }
                let bias_scales: Vec<f32> = scales.iter().map(|s| s * a_params.0).collect();
                let bq: Vec<u8> = bias
                    .iter()
                    .zip(&bias_scales)
                    .flat_map(|(v, s)| ((v / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32).to_le_bytes())
                    .collect();
                let (bqn, bs, bz, bd) = (
                    format!("{b}_quantised"),
                    format!("{b}_scale"),
                    format!("{b}_zero"),
                    format!("{b}_dq"),
                );
                new_init.push(raw_tensor(&bqn, &[channels], INT32, bq));
                new_init.push(float_tensor(&bs, &[channels], &bias_scales));
                new_init.push(raw_tensor(&bz, &[channels], INT32, vec![0; channels * 4]));
                nodes.push(node(
                    "DequantizeLinear",
                    &[&bqn, &bs, &bz],
                    &bd,
                    vec![int_attr("axis", 0)],
                ));
                quantised_weights.insert(b.clone());
                inputs.push(bd);
            }
            let mut layer = n.clone();
            layer.input = inputs;
            nodes.push(layer);
        } else if n.op_type == "Relu" && plan.relus.contains(&output) {
            // uint8 with zero point 0 clamps at 0: the ReLU itself.
            let Some(input) = n.input.first() else {
                return crate::failed!("ReLU {} has no input", n.name);
            };
            let (scale, _) = range(&output)?;
            qdq(input, &output, (scale, 0), &mut nodes, &mut new_init);
            dequantised.insert(output, (scale, 0));
        } else if n.op_type == "MaxPool" && plan.pools.contains(&output) {
            let input = n.input.first().cloned().unwrap_or_default();
            let Some(params) = dequantised.get(&input).copied() else {
                return crate::failed!("max pool {} does not follow a quantised ReLU", n.name);
            };
            let float_out = format!("{output}_float");
            let mut pool = n.clone();
            pool.output = vec![float_out.clone()];
            pool.name = float_out.clone();
            nodes.push(pool);
            qdq(&float_out, &output, params, &mut nodes, &mut new_init);
            dequantised.insert(output, params);
        } else {
            nodes.push(n);
        }
    }
    graph.node = nodes;
    graph.initializer.retain(|t| !quantised_weights.contains(&t.name));
    graph.initializer.extend(new_init);
    graph.name = format!("{}_int8", graph.name);
    model.graph = Some(graph);
    model.doc_string = format!("int8 (QDQ) by Rookery's cnn_quantize of: {}", model.doc_string);
    Ok(model.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_symmetric_per_channel() {
        // Two output channels along axis 1 of [2, 2]: columns (1, -4) and (0.5, 0.25).
        let (q, scales) = quantize_weights(&[1.0, 0.5, -4.0, 0.25], 2, 2, 1);
        assert_eq!(scales, vec![4.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![32, 127, -127, 64]);
        let (q, _) = quantize_weights(&[0.0, 0.0], 1, 2, 0);
        assert_eq!(q, vec![0, 0]);
    }

    #[test]
    fn uint8_ranges_cover_zero() {
        let mut r = Range::default();
        r.add(&[0.5, 2.0, f32::NAN]);
        assert_eq!(r.uint8(), (2.0 / 255.0, 0));
        let mut r = Range::default();
        r.add(&[-0.5, 0.5]);
        let (scale, zero) = r.uint8();
        // 127.5 in exact arithmetic: either neighbour is right.
        assert!(scale == 1.0 / 255.0 && (127..=128).contains(&zero), "{scale} {zero}");
    }
}
