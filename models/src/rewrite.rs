//! Rewriting ONNX models: exposing an inner tensor as an output (for
//! `cnn_embed`) and putting a trained linear head on a featurizer (for
//! `linear_train`), so transfer learning gives one model taking images.

use std::collections::HashSet;

use crate::error::Result;
use prost::Message;

use super::onnx::{
    decode_model, decode_rookery_model, float_tensor, float_values, int_attr, node, value_info, GraphProto, ModelProto,
    NodeProto, StringStringEntryProto, TensorProto, ValueInfoProto, COUNTS_OUTPUT, META_LABELS, OUTPUT_NAME,
};

/// A softmax regression over `inputs` features: logits = x W + b, with
/// `weights` row-major `[inputs, classes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    pub inputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The tensor a model's features are read from: `requested`, or the input
/// of its last dense layer (`Gemm` or `MatMul`) — for a Rookery CNN, the
/// 512 values after the second dense layer's ReLU.
fn feature_name(graph: &GraphProto, requested: Option<&str>) -> Result<String> {
    let produced = |name: &str| graph.node.iter().any(|n| n.output.iter().any(|o| o == name));
    match requested.filter(|r| !r.is_empty()) {
        Some(name) if produced(name) => Ok(name.to_string()),
        Some(name) => {
            let known: Vec<&str> = graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str))
                .collect();
            let shown = known
                .iter()
                .rev()
                .take(12)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            crate::invalid!("no tensor named '{name}' (the last tensors the graph makes are: {shown})")
        }
        None => match graph
            .node
            .iter()
            .rev()
            .find(|n| n.op_type == "Gemm" || n.op_type == "MatMul")
            .and_then(|n| n.input.first())
        {
            Some(name) => Ok(name.clone()),
            None => {
                crate::invalid!("the model has no dense layer (Gemm or MatMul) to take features before; name an output")
            }
        },
    }
}

/// The model with tensor `requested` (or its default, see [`feature_name`])
/// as an output too, and that tensor's name. Works on any ONNX file: an
/// extra graph output is appended as protobuf bytes, which a reader merges
/// into the graph, so nothing Rookery does not model is lost.
pub fn with_feature_output(bytes: &[u8], requested: Option<&str>) -> Result<(Vec<u8>, String)> {
    let (model, _) = decode_model(bytes)?;
    let graph = model.graph.as_ref().map_or_else(GraphProto::default, Clone::clone);
    let name = feature_name(&graph, requested)?;
    if graph.output.iter().any(|o| o.name == name) {
        return Ok((bytes.to_vec(), name));
    }
    let extra = ModelProto {
        ir_version: 0,
        producer_name: String::new(),
        producer_version: String::new(),
        doc_string: String::new(),
        graph: Some(GraphProto {
            output: vec![ValueInfoProto {
                name: name.clone(),
                r#type: None,
            }],
            ..Default::default()
        }),
        opset_import: Vec::new(),
        metadata_props: Vec::new(),
    };
    let mut out = bytes.to_vec();
    extra.encode(&mut out).map_err(|e| crate::failure!("{e}"))?;
    Ok((out, name))
}

/// One model taking images: `featurizer` up to tensor `feature` (its
/// default when `None`), then `head` and a softmax over `labels`. The
/// featurizer must be a model Rookery can rewrite whole (one `cnn_train`
/// wrote); its labels are replaced, its input layout and range kept.
pub fn chain_head(featurizer: &[u8], feature: Option<&str>, head: &LinearHead, labels: &[String]) -> Result<Vec<u8>> {
    let mut model = decode_rookery_model(
        featurizer,
        "a featurizer must be a model written by cnn_train (for another model, run cnn_embed with it and train on the features)",
    )?;
    let classes = labels.len();
    if head.weights.len() != head.inputs * classes || head.bias.len() != classes {
        return crate::failed!(
            "a linear head of {} inputs and {classes} classes has the wrong number of weights",
            head.inputs
        );
    }
    let Some(mut graph) = model.graph.take() else {
        return crate::failed!("the file holds no ONNX graph");
    };
    let feature = feature_name(&graph, feature)?;

    // Keep only what computes the feature tensor (nodes are in
    // topological order, so one backward pass finds them).
    let mut needed: HashSet<String> = HashSet::from([feature.clone()]);
    let mut kept = Vec::new();
    for n in graph.node.into_iter().rev() {
        if n.output.iter().any(|o| needed.contains(o)) {
            needed.extend(n.input.iter().cloned());
            kept.push(n);
        }
    }
    kept.reverse();
    graph.node = kept;
    graph.initializer.retain(|t| needed.contains(&t.name));

    let (flat, weights, bias, logits) = (
        "linear_head_features",
        "linear_head_weights",
        "linear_head_bias",
        "linear_head_logits",
    );
    graph
        .initializer
        .push(float_tensor(weights, &[head.inputs, classes], &head.weights));
    graph.initializer.push(float_tensor(bias, &[classes], &head.bias));
    graph
        .node
        .push(node("Flatten", &[&feature], flat, vec![int_attr("axis", 1)]));
    graph.node.push(node("Gemm", &[flat, weights, bias], logits, vec![]));
    graph
        .node
        .push(node("Softmax", &[logits], OUTPUT_NAME, vec![int_attr("axis", 1)]));
    graph.output = vec![value_info(OUTPUT_NAME, &[None, Some(classes)])];
    graph.name = format!("{}_linear_head", graph.name);
    model.graph = Some(graph);

    let labels_json = serde_json::to_string(labels).map_err(|e| crate::failure!("cannot write labels: {e}"))?;
    model.metadata_props.retain(|m| m.key != META_LABELS);
    model.metadata_props.push(StringStringEntryProto {
        key: META_LABELS.into(),
        value: labels_json,
    });
    model.doc_string = format!(
        "A linear head trained by Rookery's linear_train on the features '{feature}' of: {}",
        model.doc_string
    );
    Ok(model.encode_to_vec())
}

/// A Rookery CNN made fully convolutional, for scoring a whole frame in
/// one pass: the first dense layer (over the last pooling layer's
/// `side x side x C` output, flattened NHWC) becomes a `side x side`
/// convolution and the later dense layers 1x1 convolutions, the input's
/// height and width become free, and the output is the class
/// probabilities `[N, classes, rows, columns]` of every tile position at
/// the network's stride (2 per pooling layer). Position (i, j) computes
/// exactly what the model computes for the tile at (stride x j, stride x i).
/// `step` > 1 computes every `step`-th position only (the first dense
/// layer's convolution strides by it), for a stride of `step` x 2^pools.
pub fn fully_convolutional(bytes: &[u8], step: usize) -> Result<Vec<u8>> {
    let mut model = decode_rookery_model(bytes, "only models cnn_train wrote can be made fully convolutional")?;
    let Some(mut graph) = model.graph.take() else {
        return crate::failed!("the file holds no ONNX graph");
    };
    let not_seed = || {
        crate::invalid!(
            "it is not the seed CNN cnn_train writes (convolutions, then Transpose, Flatten and dense layers)"
        )
    };
    // The dense part starts at the Transpose back to NHWC before Flatten.
    let Some(start) = graph.node.iter().position(|n| n.op_type == "Flatten") else {
        return not_seed();
    };
    let Some(transpose) = start
        .checked_sub(1)
        .map(|i| &graph.node[i])
        .filter(|n| n.op_type == "Transpose")
    else {
        return not_seed();
    };
    let pooled = transpose.input.first().cloned().unwrap_or_default();
    let channels = graph
        .node
        .iter()
        .rfind(|n| n.op_type == "Conv")
        .and_then(|n| n.input.get(1))
        .and_then(|k| graph.initializer.iter().find(|t| &t.name == k))
        .and_then(|t| t.dims.first().copied())
        .unwrap_or(0) as usize;
    let pools = graph.node.iter().filter(|n| n.op_type == "MaxPool").count();
    let dims = graph.input.first().map(ValueInfoProto::dims).unwrap_or_default();
    let [_, h, w, _] = dims.as_slice() else {
        return not_seed();
    };
    let side = |mut s: usize| {
        for _ in 0..pools {
            s = s.saturating_sub(2) / 2;
        }
        s
    };
    let (fh, fw) = (side(*h as usize), side(*w as usize));

    let dense: Vec<NodeProto> = graph.node.split_off(start - 1);
    let initializers: std::collections::HashMap<String, TensorProto> =
        graph.initializer.iter().map(|t| (t.name.clone(), t.clone())).collect();
    let mut x = pooled;
    let mut first = true;
    let mut used = HashSet::new();
    for n in dense.iter().skip(2) {
        match n.op_type.as_str() {
            "Gemm" => {
                let (Some(wn), Some(bn)) = (n.input.get(1), n.input.get(2)) else {
                    return not_seed();
                };
                // The bias initializer goes on as it is, as the convolution's.
                let (Some(weights), true) = (initializers.get(wn), initializers.contains_key(bn)) else {
                    return not_seed();
                };
                let values = float_values(weights)?;
                let (rows, out) = match weights.dims.as_slice() {
                    [r, o] => (*r as usize, *o as usize),
                    _ => return not_seed(),
                };
                let (kh, kw, cin) = if first { (fh, fw, channels) } else { (1, 1, rows) };
                if kh * kw * cin != rows {
                    return crate::invalid!("its first dense layer takes {rows} values, not {kh}x{kw}x{cin}");
                }
                // Dense rows are (y, x, c) in NHWC order; a kernel is [out, c, y, x].
                let mut kernel = vec![0f32; out * cin * kh * kw];
                for y in 0..kh {
                    for xx in 0..kw {
                        for c in 0..cin {
                            let row = (y * kw + xx) * cin + c;
                            for o in 0..out {
                                kernel[((o * cin + c) * kh + y) * kw + xx] = values[row * out + o];
                            }
                        }
                    }
                }
                let kn = format!("{wn}_as_conv");
                graph.initializer.push(float_tensor(&kn, &[out, cin, kh, kw], &kernel));
                used.insert(wn.clone());
                let output = format!("{}_map", n.output.first().cloned().unwrap_or_default());
                let mut attributes = vec![super::onnx::ints_attr("kernel_shape", &[kh as i64, kw as i64])];
                if first && step > 1 {
                    attributes.push(super::onnx::ints_attr("strides", &[step as i64, step as i64]));
                }
                graph.node.push(node("Conv", &[&x, &kn, bn], &output, attributes));
                x = output;
                first = false;
            }
            // A count model's last ReLU gives its counts.
            "Relu" if n.output.first().map(String::as_str) == Some(COUNTS_OUTPUT) => {
                graph.node.push(node("Relu", &[&x], HEATMAP_OUTPUT, vec![]));
                x = HEATMAP_OUTPUT.to_string();
            }
            "Relu" => {
                let output = format!("{x}_relu");
                graph.node.push(node("Relu", &[&x], &output, vec![]));
                x = output;
            }
            "Softmax" => {
                graph
                    .node
                    .push(node("Softmax", &[&x], HEATMAP_OUTPUT, vec![int_attr("axis", 1)]));
                x = HEATMAP_OUTPUT.to_string();
            }
            _ => return not_seed(),
        }
    }
    if x != HEATMAP_OUTPUT {
        return not_seed();
    }
    graph.initializer.retain(|t| !used.contains(&t.name));
    let classes = graph
        .output
        .first()
        .and_then(|o| o.dims().get(1).copied())
        .filter(|c| *c > 0)
        .map(|c| c as usize);
    let mut input = graph.input.first().cloned().unwrap_or_default();
    input.free_dims(&[(1, "height"), (2, "width")]);
    graph.input = vec![input];
    let mut output = value_info(HEATMAP_OUTPUT, &[None, classes, None, None]);
    output.free_dims(&[(2, "rows"), (3, "columns")]);
    graph.output = vec![output];
    graph.name = format!("{}_fully_convolutional", graph.name);
    model.graph = Some(graph);
    model.metadata_props.push(StringStringEntryProto {
        key: META_TILE.into(),
        value: format!("{h}x{w}, stride {}", step.max(1) << pools),
    });
    Ok(model.encode_to_vec())
}

/// The output of [`fully_convolutional`] models.
pub const HEATMAP_OUTPUT: &str = "heatmap";
/// Metadata of [`fully_convolutional`] models: the tile and stride.
pub const META_TILE: &str = "heatmap_tile";
