//! Rewriting ONNX models: exposing an inner tensor as an output (for
//! `cnn_embed`) and putting a trained linear head on a featurizer (for
//! `linear_train`), so transfer learning gives one model taking images.

use std::collections::HashSet;

use datafusion::common::{exec_err, plan_err, Result};
use prost::Message;

use super::onnx::{
    float_tensor, int_attr, node, value_info, GraphProto, ModelProto, StringStringEntryProto, ValueInfoProto,
    META_LABELS, OUTPUT_NAME,
};

/// A softmax regression over `inputs` features: logits = x W + b, with
/// `weights` row-major `[inputs, classes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    pub inputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

fn decode(bytes: &[u8]) -> Result<ModelProto> {
    match ModelProto::decode(bytes) {
        Ok(model) if model.graph.is_some() => Ok(model),
        Ok(_) => exec_err!("the file holds no ONNX graph"),
        Err(e) => exec_err!("the file is not an ONNX model ({e})"),
    }
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
            plan_err!("no tensor named '{name}' (the last tensors the graph makes are: {shown})")
        }
        None => match graph
            .node
            .iter()
            .rev()
            .find(|n| n.op_type == "Gemm" || n.op_type == "MatMul")
            .and_then(|n| n.input.first())
        {
            Some(name) => Ok(name.clone()),
            None => plan_err!("the model has no dense layer (Gemm or MatMul) to take features before; name an output"),
        },
    }
}

/// The model with tensor `requested` (or its default, see [`feature_name`])
/// as an output too, and that tensor's name. Works on any ONNX file: an
/// extra graph output is appended as protobuf bytes, which a reader merges
/// into the graph, so nothing Rookery does not model is lost.
pub fn with_feature_output(bytes: &[u8], requested: Option<&str>) -> Result<(Vec<u8>, String)> {
    let model = decode(bytes)?;
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
    extra
        .encode(&mut out)
        .map_err(|e| datafusion::common::exec_datafusion_err!("{e}"))?;
    Ok((out, name))
}

/// One model taking images: `featurizer` up to tensor `feature` (its
/// default when `None`), then `head` and a softmax over `labels`. The
/// featurizer must be a model Rookery can rewrite whole (one `cnn_train`
/// wrote); its labels are replaced, its input layout and range kept.
pub fn chain_head(featurizer: &[u8], feature: Option<&str>, head: &LinearHead, labels: &[String]) -> Result<Vec<u8>> {
    let mut model = decode(featurizer)?;
    if model.encode_to_vec() != featurizer {
        return plan_err!(
            "it holds ONNX fields Rookery does not rewrite; a featurizer must be a model written by cnn_train \
             (for another model, run cnn_embed with it and train on the features)"
        );
    }
    let classes = labels.len();
    if head.weights.len() != head.inputs * classes || head.bias.len() != classes {
        return exec_err!(
            "a linear head of {} inputs and {classes} classes has the wrong number of weights",
            head.inputs
        );
    }
    let Some(mut graph) = model.graph.take() else {
        return exec_err!("the file holds no ONNX graph");
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

    let labels_json = serde_json::to_string(labels)
        .map_err(|e| datafusion::common::exec_datafusion_err!("cannot write labels: {e}"))?;
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
