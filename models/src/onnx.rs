//! Writing the trained CNN as a standard ONNX file (opset 13).
//!
//! The messages below are the subset of `onnx.proto` the export needs, with
//! the field numbers of the official schema; prost encodes them.

use std::path::Path;

use crate::error::{ModelError, Result};
use prost::Message;

use super::model::{Head, SeedCnn};
use super::train::candle_error;

/// Metadata keys Rookery writes and `cnn_classify` reads.
pub const META_LABELS: &str = "labels";
pub const META_LAYOUT: &str = "input_layout";
pub const META_RANGE: &str = "input_range";
/// What the output is: `probabilities` (a classifier) or `counts`.
pub const META_OUTPUT: &str = "output";

pub const INPUT_NAME: &str = "image";
/// A count model's output.
pub const COUNTS_OUTPUT: &str = "counts";
pub const OUTPUT_NAME: &str = "probabilities";
const OPSET: i64 = 13;
const IR_VERSION: i64 = 8;
const FLOAT: i32 = 1;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// AttributeType: FLOAT = 1, INT = 2, INTS = 7.
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    #[prost(int64, tag = "1")]
    DimValue(i64),
    #[prost(string, tag = "2")]
    DimParam(String),
}

pub(crate) fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

pub(crate) fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: 2,
        ..Default::default()
    }
}

pub(crate) fn ints_attr(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: ints.to_vec(),
        r#type: 7,
        ..Default::default()
    }
}

pub(crate) fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: output.to_string(),
        op_type: op.to_string(),
        attribute,
    }
}

pub(crate) fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => DimensionValue::DimValue(*v as i64),
                None => DimensionValue::DimParam("batch".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// A model file's message, and whether the subset of `onnx.proto` above
/// holds all of it (it does for the models Rookery writes): only then can
/// a rewritten model be encoded without losing anything.
pub fn decode_model(bytes: &[u8]) -> Result<(ModelProto, bool)> {
    match ModelProto::decode(bytes) {
        Ok(model) if model.graph.is_some() => {
            let whole = model.encode_to_vec() == bytes;
            Ok((model, whole))
        }
        Ok(_) => Err(crate::failure!("the file holds no ONNX graph")),
        Err(e) => Err(crate::failure!("the file is not an ONNX model ({e})")),
    }
}

/// The model of a file Rookery wrote, to rewrite; `what` says what the
/// rewrite is for, in the error for other files.
pub fn decode_rookery_model(bytes: &[u8], what: &str) -> Result<ModelProto> {
    match decode_model(bytes)? {
        (model, true) => Ok(model),
        (_, false) => Err(ModelError::Invalid(format!(
            "it holds ONNX fields Rookery does not rewrite; {what}"
        ))),
    }
}

impl ValueInfoProto {
    /// The dimensions of a tensor's shape; -1 where not a fixed number.
    pub fn dims(&self) -> Vec<i64> {
        self.shape_dims().map_or_else(Vec::new, |dims| {
            dims.iter()
                .map(|d| match d.value {
                    Some(DimensionValue::DimValue(v)) => v,
                    _ => -1,
                })
                .collect()
        })
    }

    fn shape_dims(&self) -> Option<&Vec<Dimension>> {
        Some(&self.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?.dim)
    }

    /// Makes dimensions free (named, any size), as (index, name) pairs.
    pub fn free_dims(&mut self, dims: &[(usize, &str)]) {
        let Some(shape) = self
            .r#type
            .as_mut()
            .and_then(|t| t.tensor_type.as_mut())
            .and_then(|t| t.shape.as_mut())
        else {
            return;
        };
        for (i, name) in dims {
            if let Some(d) = shape.dim.get_mut(*i) {
                d.value = Some(DimensionValue::DimParam(name.to_string()));
            }
        }
    }
}

/// The values of a float initializer.
pub fn float_values(t: &TensorProto) -> Result<Vec<f32>> {
    if t.data_type != FLOAT || !t.raw_data.len().is_multiple_of(4) {
        return Err(crate::failure!("initializer {} is not raw float data", t.name));
    }
    Ok(t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The ONNX graph of a trained [`SeedCnn`]: NHWC float pixels 0..255 in,
/// class probabilities out, labels and layout in the metadata.
pub fn model_proto(model: &SeedCnn, labels: &[String]) -> Result<ModelProto> {
    let (h, w, c) = model.input;
    let mut nodes = Vec::new();
    let mut init = Vec::new();
    init.push(float_tensor("scale", &[], &[1.0 / 255.0]));
    init.push(float_tensor("offset", &[], &[-0.5]));
    nodes.push(node("Mul", &[INPUT_NAME, "scale"], "scaled", vec![]));
    nodes.push(node("Add", &["scaled", "offset"], "centred", vec![]));
    nodes.push(node(
        "Transpose",
        &["centred"],
        "nchw",
        vec![ints_attr("perm", &[0, 3, 1, 2])],
    ));
    let mut x = "nchw".to_string();
    for (i, conv) in model.convs.iter().enumerate() {
        // Our kernel is [(ky, kx, c) + bias row, f]; ONNX wants [f, c, ky, kx] and a bias.
        let k = SeedCnn::values(&conv.kernel).map_err(candle_error)?;
        let (cin, f) = (conv.in_channels, conv.filters);
        let (k, bias) = k.split_at(9 * cin * f);
        let mut onnx = vec![0f32; k.len()];
        for ky in 0..3 {
            for kx in 0..3 {
                for ci in 0..cin {
                    for fi in 0..f {
                        onnx[((fi * cin + ci) * 3 + ky) * 3 + kx] = k[((ky * 3 + kx) * cin + ci) * f + fi];
                    }
                }
            }
        }
        let (kn, bn) = (format!("conv{i}_kernel"), format!("conv{i}_bias"));
        init.push(float_tensor(&kn, &[f, cin, 3, 3], &onnx));
        init.push(float_tensor(&bn, &[f], bias));
        let (conv_out, relu_out, pool_out) = (format!("conv{i}"), format!("conv{i}_relu"), format!("pool{i}"));
        nodes.push(node(
            "Conv",
            &[&x, &kn, &bn],
            &conv_out,
            vec![ints_attr("kernel_shape", &[3, 3])],
        ));
        nodes.push(node("Relu", &[&conv_out], &relu_out, vec![]));
        nodes.push(node(
            "MaxPool",
            &[&relu_out],
            &pool_out,
            vec![ints_attr("kernel_shape", &[2, 2]), ints_attr("strides", &[2, 2])],
        ));
        x = pool_out;
    }
    // Back to NHWC before flattening, so dense weights keep the training order.
    nodes.push(node(
        "Transpose",
        &[&x],
        "features_nhwc",
        vec![ints_attr("perm", &[0, 2, 3, 1])],
    ));
    nodes.push(node(
        "Flatten",
        &["features_nhwc"],
        "features",
        vec![int_attr("axis", 1)],
    ));
    let mut x = "features".to_string();
    let last = model.dense.len() - 1;
    for (i, layer) in model.dense.iter().enumerate() {
        let (wn, bn) = (format!("dense{i}_weights"), format!("dense{i}_bias"));
        let dims = layer.weights.as_tensor().dims().to_vec();
        init.push(float_tensor(
            &wn,
            &dims,
            &SeedCnn::values(&layer.weights).map_err(candle_error)?,
        ));
        init.push(float_tensor(
            &bn,
            &[dims[1]],
            &SeedCnn::values(&layer.bias).map_err(candle_error)?,
        ));
        let out = format!("dense{i}");
        nodes.push(node("Gemm", &[&x, &wn, &bn], &out, vec![]));
        x = out;
        if i < last {
            let relu = format!("dense{i}_relu");
            nodes.push(node("Relu", &[&x], &relu, vec![]));
            x = relu;
        }
    }
    let (last_op, attributes, output, description) = match model.head {
        Head::Classes => (
            "Softmax",
            vec![int_attr("axis", 1)],
            OUTPUT_NAME,
            "The seed CNN (conv 32/64/128, dense 512/512, softmax), trained by Rookery's cnn_train",
        ),
        Head::Counts => (
            "Relu",
            vec![],
            COUNTS_OUTPUT,
            "A count model: the seed CNN's layers (conv 32/64/128, dense 512/512) with one ReLU output per counted class, trained by Rookery's cnn_train",
        ),
    };
    nodes.push(node(last_op, &[&x], output, attributes));

    let labels_json = serde_json::to_string(labels).map_err(|e| crate::failure!("cannot write labels: {e}"))?;
    let meta = |key: &str, value: String| StringStringEntryProto { key: key.into(), value };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        producer_name: "rookery".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: description.into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "seed_cnn".into(),
            initializer: init,
            input: vec![value_info(INPUT_NAME, &[None, Some(h), Some(w), Some(c)])],
            output: vec![value_info(output, &[None, Some(labels.len())])],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: vec![
            meta(META_LABELS, labels_json),
            meta(META_LAYOUT, "NHWC".into()),
            meta(META_RANGE, "0..255".into()),
            meta(META_OUTPUT, model.head.metadata().into()),
        ],
    })
}

/// Writes the model next to its final path and renames it into place, so a
/// failed write never leaves half a model under the name.
pub fn write_model(model: &SeedCnn, labels: &[String], path: &Path) -> Result<()> {
    write_model_bytes(&model_bytes(model, labels)?, path)
}

/// The ONNX file of a trained model with its labels.
pub fn model_bytes(model: &SeedCnn, labels: &[String]) -> Result<Vec<u8>> {
    Ok(model_proto(model, labels)?.encode_to_vec())
}

/// Writes an encoded model as [`write_model`] does.
pub fn write_model_bytes(bytes: &[u8], path: &Path) -> Result<()> {
    let mut file = PartialFile::create(path)?;
    file.write(bytes)?;
    file.commit()
}

/// A model file being written: under a hidden name of this writer's own
/// beside its final name (`.m.onnx.<pid>-<n>.partial`), so two writers of
/// one model never write into each other's file, and put in place by
/// [`PartialFile::commit`] after an fsync, so the final name never holds
/// part of a model, even after a crash. Dropped uncommitted, it is removed.
pub struct PartialFile {
    file: Option<std::fs::File>,
    partial: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl PartialFile {
    pub fn create(path: &Path) -> Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| crate::failure!("cannot create folder {} for the model: {e}", parent.display()))?;
        }
        let name = path.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy());
        let partial = path.with_file_name(format!(
            ".{name}.{}-{}.partial",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file =
            std::fs::File::create(&partial).map_err(|e| crate::failure!("cannot write {}: {e}", partial.display()))?;
        Ok(Self {
            file: Some(file),
            partial,
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(crate::failure!("{} was already put in place", self.path.display()));
        };
        std::io::Write::write_all(file, bytes)
            .map_err(|e| crate::failure!("cannot write {}: {e}", self.partial.display()))
    }

    /// Syncs the file and renames it to its final name.
    pub fn commit(mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Err(crate::failure!("{} was already put in place", self.path.display()));
        };
        file.sync_all()
            .map_err(|e| crate::failure!("cannot write {}: {e}", self.partial.display()))?;
        drop(file);
        std::fs::rename(&self.partial, &self.path)
            .map_err(|e| crate::failure!("cannot write {}: {e}", self.path.display()))?;
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Makes the rename durable where the file system can sync a folder.
            let _ = std::fs::File::open(parent).and_then(|f| f.sync_all());
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kernels;
    use crate::runtime::{best, Classifier, ClassifyOptions};
    use crate::train::{train, Dataset, TrainOptions};
    use candle_core::{Device, Tensor};
    use rookery_image::image_value::ImageView;
    use rookery_image::rng::Rng;

    /// Stripes across, stripes down, and noise: three learnable classes.
    fn patterns(n: usize, side: usize) -> Dataset {
        let mut rng = Rng::new(5);
        let mut data = Dataset::new(side, side, 3);
        for i in 0..n {
            let class = i % 3;
            let phase = rng.below(4);
            let pixels: Vec<u8> = (0..side * side * 3)
                .map(|p| {
                    let (y, x) = (p / 3 / side, p / 3 % side);
                    match class {
                        0 => {
                            if (y + phase) % 4 < 2 {
                                200
                            } else {
                                40
                            }
                        }
                        1 => {
                            if (x + phase) % 4 < 2 {
                                200
                            } else {
                                40
                            }
                        }
                        _ => (rng.next_u64() & 0xff) as u8,
                    }
                })
                .collect();
            data.push(&pixels, ["across", "down", "noise"][class].to_string())
                .unwrap();
        }
        data
    }

    /// The exported file, run by ONNX Runtime, must give the classes (and
    /// nearly the probabilities) the trained network gives in Rust.
    #[test]
    fn onnx_runtime_predicts_what_the_trained_network_does() {
        let side = 24;
        let data = patterns(48, side);
        let options = TrainOptions {
            epochs: 3,
            batch_size: 16,
            validation: 0.0,
            input_size: side,
            ..Default::default()
        };
        let (model, report) = train(&data, &options, Kernels::Fast, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patterns.onnx");
        write_model(&model, &report.classes, &path).unwrap();

        let input: Vec<f32> = data.pixels.iter().map(|&v| v as f32).collect();
        let tensor = Tensor::from_vec(input, (data.len(), side, side, 3), &Device::Cpu).unwrap();
        let in_rust = model.predict(&tensor).unwrap().to_vec2::<f32>().unwrap();

        let classifier = Classifier::load(
            &path,
            &ClassifyOptions::default(),
            &crate::runtime::ModelOutput::Classes,
            1,
        )
        .unwrap();
        assert_eq!(classifier.labels, vec!["across", "down", "noise"]);
        let len = side * side * 3;
        let views: Vec<ImageView<'_>> = (0..data.len())
            .map(|i| ImageView::new(side as u32, side as u32, 3, &data.pixels[i * len..(i + 1) * len]).unwrap())
            .collect();
        let in_onnx = classifier.scores(&views).unwrap();
        for (rust, onnx) in in_rust.iter().zip(&in_onnx) {
            assert_eq!(best(rust), best(onnx));
            for (a, b) in rust.iter().zip(onnx) {
                assert!((a - b).abs() < 1e-4, "{rust:?} vs {onnx:?}");
            }
        }
    }

    #[test]
    fn graph_has_weights_and_metadata() {
        let model = SeedCnn::new((64, 64, 3), 6, 1).unwrap();
        let labels: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
        let proto = model_proto(&model, &labels).unwrap();
        let graph = proto.graph.as_ref().unwrap();
        assert_eq!(graph.node.last().unwrap().op_type, "Softmax");
        // Conv kernels are [F, C, 3, 3]; the first dense layer takes 6*6*128 features.
        assert_eq!(
            graph
                .initializer
                .iter()
                .find(|t| t.name == "conv0_kernel")
                .unwrap()
                .dims,
            vec![32, 3, 3, 3]
        );
        assert_eq!(
            graph
                .initializer
                .iter()
                .find(|t| t.name == "dense0_weights")
                .unwrap()
                .dims,
            vec![4608, 512]
        );
        assert!(proto
            .metadata_props
            .iter()
            .any(|m| m.key == META_LABELS && m.value.contains("c5")));
        let decoded = ModelProto::decode(proto.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, proto);
    }

    #[test]
    fn concurrent_writers_of_one_model_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || write_model_bytes(&vec![i; 1 << 20], &path))
            })
            .collect();
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 1 << 20);
        assert!(bytes.iter().all(|b| *b == bytes[0]), "two writers' bytes in one file");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["m.onnx"]);
        // Dropped before it is committed: nothing is left.
        let mut partial = PartialFile::create(&dir.path().join("n.onnx")).unwrap();
        partial.write(b"half").unwrap();
        drop(partial);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
