//! `cnn_density(model, image [, options])`: a count model's counts at every
//! tile position of an image, from one fully convolutional pass.

use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_datafusion_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::cnn_heatmap::{append_position, heatmap_model, position_lists};
use crate::args::{key_value_list, signature, ArgKind};
use crate::cnn::message;
use crate::model_store::ModelStore;

fn count_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::UInt32, false),
        Field::new("y", DataType::UInt32, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("count", DataType::Float32, false),
    ])
}

/// `List<{x, y, label, count}>`.
pub fn density_type() -> DataType {
    DataType::new_list(DataType::Struct(count_fields()), true)
}

const DENSITY_OPTIONS: &str = "stride, min_count, strip_rows";

#[derive(Debug, Clone, PartialEq)]
struct DensityOptions {
    /// In pixels; 0 for the model's tile side.
    stride: usize,
    min_count: f32,
    strip_rows: usize,
}

impl DensityOptions {
    fn parse(text: &str) -> Result<Self> {
        let mut options = Self {
            stride: 0,
            min_count: 0.0,
            strip_rows: 2,
        };
        for (key, value) in key_value_list("cnn_density", DENSITY_OPTIONS, text)? {
            match key.as_str() {
                "stride" => match value.parse::<usize>() {
                    Ok(v) if (1..=4096).contains(&v) => options.stride = v,
                    _ => return plan_err!("cnn_density option stride must be a whole number of pixels, not '{value}'"),
                },
                "min_count" => match value.parse::<f32>() {
                    Ok(v) if v >= 0.0 && v.is_finite() => options.min_count = v,
                    _ => {
                        return plan_err!("cnn_density option min_count must be a number of at least 0, not '{value}'")
                    }
                },
                "strip_rows" => match value.parse::<usize>() {
                    Ok(v) if (1..=4096).contains(&v) => options.strip_rows = v,
                    _ => return plan_err!("cnn_density option strip_rows must be 1 to 4096, not '{value}'"),
                },
                other => return plan_err!("unknown cnn_density option '{other}' (known: {DENSITY_OPTIONS})"),
            }
        }
        Ok(options)
    }
}

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Counts with a count model (one cnn_train wrote from counts, trained on S x S tiles) at every tile position of an image, in one pass: the model is made fully convolutional and run over the image in strips of rows, giving what cnn_scores(model, tile) gives for each tile of tiles(image, S, stride) (tiles over the right and bottom edges padded with black, as tiles pads them). At the default stride, S, the tiles cover the image once, so the sum of the counts is the image's count. Returns the positions and classes whose count is above min_count, as a list of {x, y, label, count} (x, y: the tile's top-left corner), in row order.",
    syntax_example = "cnn_density(model, image [, options])",
    sql_example = r#"```sql
> SELECT d['label'] AS label, round(sum(d['count'])) AS animals
  FROM (SELECT unnest(cnn_density('out/sealions/count_model.onnx', image, 'min_count=0.1')) AS d
        FROM images('data/sealions/Test/0.jpg'))
  GROUP BY d['label'] ORDER BY label;
+----------------+---------+
| label          | animals |
+----------------+---------+
| adult_females  | 2.0     |
| juveniles      | 1.0     |
| pups           | 1.0     |
| subadult_males | 1.0     |
+----------------+---------+
```"#,
    argument(
        name = "model",
        description = "Path or URL of a count model cnn_train wrote (its label argument a struct of counts)."
    ),
    argument(name = "image", description = "An image value of any size."),
    argument(
        name = "options",
        description = "Optional text 'key=value, ...': stride (pixels between positions, a multiple of the network's 8; default the tile side), min_count (leave out counts at or below it, 0), strip_rows (rows of positions per ONNX Runtime call, 2; the first convolution then holds about (strip_rows x stride + tile) x width x 128 bytes, 120 MB for a 4992 px wide frame at stride 64)."
    ),
    related_udf(name = "cnn_train"),
    related_udf(name = "cnn_heatmap")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnDensity {
    signature: Signature,
    models: ModelStore,
}

impl Default for CnnDensity {
    fn default() -> Self {
        Self::new(ModelStore::default())
    }
}

impl CnnDensity {
    /// The function reading models at URLs from `models`.
    pub fn new(models: ModelStore) -> Self {
        Self {
            signature: signature(&[ArgKind::Text, ArgKind::Image], &[ArgKind::Text], Volatility::Stable),
            models,
        }
    }
}

impl ScalarUDFImpl for CnnDensity {
    fn name(&self) -> &str {
        "cnn_density"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(density_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        position_lists(
            name,
            &args,
            count_fields(),
            &mut |location, options, image, threads, entries| {
                let options = DensityOptions::parse(options)?;
                let native = heatmap_model(name, &self.models, location, 0, threads)?;
                if !native.counts {
                    return plan_err!(
                    "{name}: {location} is a classifier, not a count model (cnn_train writes one from a struct of counts); cnn_heatmap scores a classifier"
                );
                }
                let stride = if options.stride == 0 {
                    native.tile
                } else {
                    options.stride
                };
                let model = heatmap_model(name, &self.models, location, stride, threads)?;
                let labels: Vec<String> = (0..model.labels.len().max(1)).map(|k| model.label(k)).collect();
                model
                    .scan(image, options.strip_rows, true, &mut |x, y, counts| {
                        for (k, count) in counts.iter().enumerate() {
                            if *count > options.min_count {
                                append_position(entries, x, y, labels.get(k).map_or("", String::as_str), *count);
                            }
                        }
                    })
                    .map_err(|e| exec_datafusion_err!("{name}: {}", message(&e)))
            },
        )
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::model::{Head, SeedCnn};
    use crate::cnn::onnx::write_model;
    use crate::functions::test_util::{images, invoke, texts};
    use crate::functions::{CnnScores, Tiles};
    use crate::image_value::Image;
    use datafusion::arrow::array::{Array, AsArray, Int64Array, StructArray};
    use datafusion::arrow::datatypes::Float32Type;
    use std::sync::Arc;

    fn count_model(path: &std::path::Path) -> String {
        let mut cnn = SeedCnn::new((64, 64, 3), 2, 7).unwrap();
        cnn.head = Head::Counts;
        write_model(&cnn, &["a".into(), "b".into()], path).unwrap();
        path.display().to_string()
    }

    /// Sums of a `List<{.., label, count|score}>` value per label.
    fn sums(list: &dyn Array, value: &str) -> std::collections::BTreeMap<String, f64> {
        let entries = list.as_any().downcast_ref::<StructArray>().unwrap();
        let labels = entries.column_by_name("label").unwrap().as_string::<i32>();
        let values = entries.column_by_name(value).unwrap().as_primitive::<Float32Type>();
        let mut out = std::collections::BTreeMap::new();
        for i in 0..entries.len() {
            *out.entry(labels.value(i).to_string()).or_default() += values.value(i) as f64;
        }
        out
    }

    /// The counts of the whole image equal cnn_scores' counts summed over
    /// the tiles of tiles(image, 64, 64), edge tiles padded included.
    #[test]
    fn counts_sum_as_the_tiles_do() {
        let dir = tempfile::tempdir().unwrap();
        let model = count_model(&dir.path().join("counts.onnx"));
        // 150x100: 3 x 2 tiles of 64, the last column and row padded.
        let data: Vec<u8> = (0..150 * 100 * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let image = Image::new(150, 100, 3, data).unwrap();
        let density = invoke(
            &CnnDensity::default(),
            vec![texts(&model, 1), images(&[Some(&image)]), texts("strip_rows=1", 1)],
        )
        .unwrap();
        let dense = sums(density.as_list::<i32>().value(0).as_ref(), "count");

        let tiles = invoke(
            &Tiles::default(),
            vec![
                images(&[Some(&image)]),
                Arc::new(Int64Array::from(vec![64])),
                Arc::new(Int64Array::from(vec![64])),
            ],
        )
        .unwrap();
        let tiles = tiles.as_list::<i32>().value(0);
        let tiles = tiles.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(tiles.len(), 6);
        let scores = invoke(
            &CnnScores::default(),
            vec![texts(&model, 6), tiles.column_by_name("tile").unwrap().clone()],
        )
        .unwrap();
        let mut per_tile = std::collections::BTreeMap::<String, f64>::new();
        for i in 0..6 {
            for (label, v) in sums(scores.as_list::<i32>().value(i).as_ref(), "score") {
                *per_tile.entry(label).or_default() += v;
            }
        }
        assert!(
            per_tile.values().any(|v| *v > 0.0),
            "an untrained model counts something: {per_tile:?}"
        );
        for (label, v) in &per_tile {
            let d = dense.get(label).copied().unwrap_or(0.0);
            assert!((d - v).abs() < 1e-3 * v.max(1.0), "{label}: dense {d} vs tiles {v}");
        }
    }

    #[test]
    fn classifiers_and_bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        write_model(
            &SeedCnn::new((64, 64, 3), 2, 7).unwrap(),
            &["a".into(), "b".into()],
            &path,
        )
        .unwrap();
        let image = Image::new(64, 64, 3, vec![0; 64 * 64 * 3]).unwrap();
        let err = invoke(
            &CnnDensity::default(),
            vec![texts(&path.display().to_string(), 1), images(&[Some(&image)])],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is a classifier, not a count model"), "{err}");
        let model = count_model(&dir.path().join("counts.onnx"));
        let err = invoke(
            &crate::functions::CnnHeatmap::default(),
            vec![texts(&model, 1), images(&[Some(&image)])],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is a count model"), "{err}");
        for (options, expected) in [
            ("min_count=-1", "min_count must be a number of at least 0"),
            ("stride=12", "stride 12 is not a multiple of the network's stride, 8"),
            ("colour=red", "unknown cnn_density option"),
        ] {
            let err = invoke(
                &CnnDensity::default(),
                vec![texts(&model, 1), images(&[Some(&image)]), texts(options, 1)],
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{options}: {err}");
        }
    }
}
