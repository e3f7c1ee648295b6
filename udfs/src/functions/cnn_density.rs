//! `cnn_density(model, image [, options])`: a count model's counts at every
//! tile position of an image, from one fully convolutional pass.

use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_datafusion_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::dense_scoring::{
    append_position, heatmap_model, position_lists, DEFAULT_STRIP_WIDTH, STRIP_ROWS, STRIP_WIDTH,
};
use crate::functions::model_rows::message;
use crate::functions::model_rows::Models;
use rookery_image::args::{signature, ArgKind};
use rookery_image::options::parse::some;
use rookery_image::options::parse::{value, whole};
use rookery_image::options::OptionSet;
use rookery_image::providers::parse_providers;
use rookery_image::ExecutionProviders;
use rookery_models::heatmap::{Cover, Strip};

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

rookery_image::option_set! {
    /// Options of `cnn_density`.
    pub struct DensityOptions for "cnn_density" {
        /// Pixels between positions (default: the model's tile side less
        /// twice the margin, so the counted middles cover the image once).
        stride: usize = 0, whole(1, 4096, "must be a whole number of pixels");
        /// Pixels on each side of a tile that the model sees but does not
        /// count.
        margin: usize = 0, whole(0, 4096, "must be a whole number of pixels");
        /// Leave out positions and classes whose count is not above this.
        min_count: f32 = 0.0, value(|v: &f32| *v >= 0.0 && v.is_finite(), "must be a number of at least 0");
        /// Rows of positions per ONNX Runtime call.
        strip_rows: usize = 2, whole(1, 4096, STRIP_ROWS);
        /// Pixels of a frame across per ONNX Runtime call (0 for the whole
        /// width).
        strip_width: usize = DEFAULT_STRIP_WIDTH, whole(0, 1 << 20, STRIP_WIDTH);
        /// Where ONNX Runtime runs the model: cpu, cuda, cuda:N, tensorrt,
        /// or a list in order of preference such as cuda|cpu (default: the
        /// session's rookery.execution_provider).
        execution_provider: Option<ExecutionProviders> = None, some(parse_providers);
    }
}

impl DensityOptions {
    fn strip(&self) -> Strip {
        Strip {
            rows: self.strip_rows,
            width: self.strip_width,
        }
    }
}

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Counts with a count model (one cnn_train wrote from counts, trained on S x S tiles) at every tile position of an image, in one pass: the model is made fully convolutional and run over the image in strips of rows and blocks across, giving what cnn_scores(model, tile) gives for each tile of tiles(image, S, stride) (tiles over the right and bottom edges padded with black, as tiles pads them). At the default stride, S, the tiles cover the image once, so the sum of the counts is the image's count. A model trained to count only the animals whose centre is in the middle of its tile, M pixels in from each side (so it sees M pixels of context around what it counts), takes margin=M: the image is then padded with M pixels of black on every side and the positions step by S - 2M, so the middles cover the image once and x, y are a middle's top-left corner. Returns the positions and classes whose count is above min_count, as a list of {x, y, label, count} (x, y: the tile's top-left corner, or its middle's with a margin), in row order.",
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
        description = "Optional text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "cnn_train"),
    related_udf(name = "cnn_heatmap")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnDensity {
    signature: Signature,
    models: Models,
}

impl Default for CnnDensity {
    fn default() -> Self {
        Self::new(Models::default())
    }
}

impl CnnDensity {
    /// The function reading models at URLs from `models`.
    pub fn new(models: Models) -> Self {
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
            &mut |location, options, image, placement, entries| {
                let options = DensityOptions::parse(options)?;
                let native = heatmap_model(
                    name,
                    &self.models,
                    location,
                    0,
                    placement,
                    options.execution_provider.as_ref(),
                )?;
                if !native.counts {
                    return plan_err!(
                    "{name}: {location} is a classifier, not a count model (cnn_train writes one from a struct of counts); cnn_heatmap scores a classifier"
                );
                }
                let middle = match native.tile.checked_sub(2 * options.margin) {
                    Some(side) if side > 0 => side,
                    _ => {
                        return plan_err!(
                            "{name}: margin {} leaves no middle in the model's {} px tiles",
                            options.margin,
                            native.tile
                        )
                    }
                };
                if options.margin > 0 && options.stride != 0 && options.stride != middle {
                    return plan_err!(
                        "{name}: with margin {} the stride must be the side of the tile's middle, {middle}, not {}",
                        options.margin,
                        options.stride
                    );
                }
                let stride = if options.stride == 0 { middle } else { options.stride };
                let cover = match options.margin {
                    0 => Cover::Whole,
                    margin => Cover::Middles { margin },
                };
                let model = heatmap_model(
                    name,
                    &self.models,
                    location,
                    stride,
                    placement,
                    options.execution_provider.as_ref(),
                )?;
                let labels: Vec<String> = (0..model.labels.len().max(1)).map(|k| model.label(k)).collect();
                model
                    .scan(image, options.strip(), cover, &mut |x, y, counts| {
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
    use crate::functions::test_util::{images, invoke, texts};
    use crate::functions::{CnnScores, Tiles};
    use datafusion::arrow::array::{Array, AsArray, Int64Array, StructArray};
    use datafusion::arrow::datatypes::Float32Type;
    use rookery_image::image_value::Image;
    use rookery_models::model::{Head, SeedCnn};
    use rookery_models::onnx::write_model;
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

    /// cnn_scores' counts summed over the tiles of tiles(image, side, stride).
    fn tile_sums(model: &str, image: &Image, side: i64, stride: i64) -> std::collections::BTreeMap<String, f64> {
        let tiles = invoke(
            &Tiles::default(),
            vec![
                images(&[Some(image)]),
                Arc::new(Int64Array::from(vec![side])),
                Arc::new(Int64Array::from(vec![stride])),
            ],
        )
        .unwrap();
        let tiles = tiles.as_list::<i32>().value(0);
        let tiles = tiles.as_any().downcast_ref::<StructArray>().unwrap();
        let scores = invoke(
            &CnnScores::default(),
            vec![texts(model, tiles.len()), tiles.column_by_name("tile").unwrap().clone()],
        )
        .unwrap();
        let mut per_tile = std::collections::BTreeMap::<String, f64>::new();
        for i in 0..tiles.len() {
            for (label, v) in sums(scores.as_list::<i32>().value(i).as_ref(), "score") {
                *per_tile.entry(label).or_default() += v;
            }
        }
        per_tile
    }

    fn assert_same_sums(
        dense: &std::collections::BTreeMap<String, f64>,
        per_tile: &std::collections::BTreeMap<String, f64>,
    ) {
        assert!(
            per_tile.values().any(|v| *v > 0.0),
            "an untrained model counts something: {per_tile:?}"
        );
        for (label, v) in per_tile {
            let d = dense.get(label).copied().unwrap_or(0.0);
            assert!((d - v).abs() < 1e-3 * v.max(1.0), "{label}: dense {d} vs tiles {v}");
        }
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
            vec![
                texts(&model, 1),
                images(&[Some(&image)]),
                texts("strip_rows=1, strip_width=100", 1),
            ],
        )
        .unwrap();
        let dense = sums(density.as_list::<i32>().value(0).as_ref(), "count");

        let per_tile = tile_sums(&model, &image, 64, 64);
        assert_same_sums(&dense, &per_tile);
    }

    /// With a margin, positions step by the tile's middle and the tiles are
    /// those of the image padded with the margin of black on every side:
    /// the middles cover the image once, and x, y are a middle's corner.
    #[test]
    fn a_margin_steps_by_the_middles_of_tiles_of_the_padded_image() {
        let dir = tempfile::tempdir().unwrap();
        let model = count_model(&dir.path().join("counts.onnx"));
        let (w, h, margin) = (150usize, 100usize, 16usize);
        let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let image = Image::new(w as u32, h as u32, 3, data.clone()).unwrap();
        let density = invoke(
            &CnnDensity::default(),
            vec![
                texts(&model, 1),
                images(&[Some(&image)]),
                texts("margin=16, strip_rows=3, strip_width=100", 1),
            ],
        )
        .unwrap();
        let list = density.as_list::<i32>().value(0);
        let dense = sums(list.as_ref(), "count");
        let entries = list.as_any().downcast_ref::<StructArray>().unwrap();
        let xs = entries
            .column_by_name("x")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
        let ys = entries
            .column_by_name("y")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
        assert!(xs.values().iter().all(|x| x % 32 == 0 && (*x as usize) < w));
        assert!(ys.values().iter().all(|y| y % 32 == 0 && (*y as usize) < h));

        // 5 x 4 middles of 32 cover 150 x 100: the padded image is 192 x 160.
        let (pw, ph) = (margin + 5 * 32 + margin, margin + 4 * 32 + margin);
        let mut padded = vec![0u8; pw * ph * 3];
        for y in 0..h {
            let to = ((y + margin) * pw + margin) * 3;
            padded[to..to + w * 3].copy_from_slice(&data[y * w * 3..(y + 1) * w * 3]);
        }
        let padded = Image::new(pw as u32, ph as u32, 3, padded).unwrap();
        assert_same_sums(&dense, &tile_sums(&model, &padded, 64, 32));
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
            (
                "strip_width=wide",
                "cnn_density option strip_width must be a whole number of pixels",
            ),
            ("strip_rows=0", "cnn_density option strip_rows must be 1 to 4096"),
            ("margin=32", "margin 32 leaves no middle in the model's 64 px tiles"),
            (
                "margin=16, stride=64",
                "with margin 16 the stride must be the side of the tile's middle, 32, not 64",
            ),
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
