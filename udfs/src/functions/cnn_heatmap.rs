//! `cnn_heatmap(model, image [, options])`: the best class of every tile
//! position of an image, from one fully convolutional pass.

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
use rookery_image::options::parse::{names, value, whole};
use rookery_image::options::OptionSet;
use rookery_image::providers::parse_providers;
use rookery_image::ExecutionProviders;
use rookery_models::heatmap::Strip;

fn position_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::UInt32, false),
        Field::new("y", DataType::UInt32, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("score", DataType::Float32, false),
    ])
}

/// `List<{x, y, label, score}>`.
pub fn heatmap_type() -> DataType {
    DataType::new_list(DataType::Struct(position_fields()), true)
}

rookery_image::option_set! {
    /// Options of `cnn_heatmap`.
    pub struct HeatmapOptions for "cnn_heatmap" {
        /// Pixels between positions: a multiple of the network's stride
        /// (default: the network's own, 8 for the seed CNN).
        stride: usize = 0, whole(1, 4096, "must be a whole number of pixels");
        /// Labels to leave out of the result, a|b.
        exclude: Vec<String> = Vec::new(), names();
        /// Leave out positions whose best score is below this (0 to 1).
        min_score: f32 = 0.0, value(|v: &f32| (0.0..=1.0).contains(v), "must be 0 to 1");
        /// Rows of positions per ONNX Runtime call.
        strip_rows: usize = 8, whole(1, 4096, STRIP_ROWS);
        /// Pixels of a frame across per ONNX Runtime call (0 for the whole
        /// width).
        strip_width: usize = DEFAULT_STRIP_WIDTH, whole(0, 1 << 20, STRIP_WIDTH);
        /// Where ONNX Runtime runs the model: cpu, cuda, cuda:N, tensorrt,
        /// or a list in order of preference such as cuda|cpu (default: the
        /// session's rookery.execution_provider).
        execution_provider: Option<ExecutionProviders> = None, some(parse_providers);
    }
}

impl HeatmapOptions {
    fn strip(&self) -> Strip {
        Strip {
            rows: self.strip_rows,
            width: self.strip_width,
        }
    }
}

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Scores every tile position of an image in one pass, as cnn_scores(model, tile)[1] would for each tile of tiles(image, S, stride, 'drop'), without cutting a tile: the model (one cnn_train wrote, trained on S x S tiles) is made fully convolutional (its dense layers become convolutions) and run over the image in strips of rows. The stride is the network's, 2 per pooling layer (8 for the seed CNN), or any multiple of it (option stride: 16 computes a quarter of the positions of the first dense layer). Returns the best label and its probability at every position, as a list of {x, y, label, score} (x, y: the tile's top-left corner), in row order.",
    syntax_example = "cnn_heatmap(model, image [, options])",
    sql_example = r#"```sql
> SELECT count(*) AS animal_positions FROM (
    SELECT unnest(cnn_heatmap('out/sealions/model.onnx', image, 'exclude=background, min_score=0.9')) AS p
    FROM images('data/sealions/Test/0.jpg'));
+------------------+
| animal_positions |
+------------------+
| 79               |
+------------------+
```"#,
    argument(name = "model", description = "Path of an .onnx model cnn_train wrote."),
    argument(name = "image", description = "An image value of any size (at least one tile)."),
    argument(
        name = "options",
        description = "Optional text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "cnn_scores"),
    related_udf(name = "tiles")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnHeatmap {
    signature: Signature,
    models: Models,
}

impl Default for CnnHeatmap {
    fn default() -> Self {
        Self::new(Models::default())
    }
}

impl CnnHeatmap {
    /// The function reading models at URLs from `models`.
    pub fn new(models: Models) -> Self {
        Self {
            signature: signature(&[ArgKind::Text, ArgKind::Image], &[ArgKind::Text], Volatility::Stable),
            models,
        }
    }
}

impl ScalarUDFImpl for CnnHeatmap {
    fn name(&self) -> &str {
        "cnn_heatmap"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(heatmap_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        position_lists(
            name,
            &args,
            position_fields(),
            &mut |location, options, image, placement, entries| {
                let options = HeatmapOptions::parse(options)?;
                let model = heatmap_model(
                    name,
                    &self.models,
                    location,
                    options.stride,
                    placement,
                    options.execution_provider.as_ref(),
                )?;
                if model.counts {
                    return plan_err!(
                    "{name}: {location} is a count model, whose outputs are counts, not scores; cnn_density runs it"
                );
                }
                let excluded: Vec<bool> = (0..model.labels.len().max(1))
                    .map(|k| options.exclude.contains(&model.label(k)))
                    .collect();
                let peaks = model
                    .peaks(image, options.strip())
                    .map_err(|e| exec_datafusion_err!("{name}: {}", message(&e)))?;
                for p in peaks {
                    if excluded.get(p.class).copied().unwrap_or(false) || p.score < options.min_score {
                        continue;
                    }
                    append_position(entries, p.x, p.y, &model.label(p.class), p.score);
                }
                Ok(())
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
    use datafusion::arrow::array::Array;
    use datafusion::arrow::array::{AsArray, Int64Array, StructArray};
    use datafusion::arrow::datatypes::{Float32Type, UInt32Type};
    use rookery_image::image_value::Image;
    use rookery_models::model::SeedCnn;
    use rookery_models::onnx::write_model;
    use std::sync::Arc;

    #[test]
    fn strip_options_are_checked_by_name() {
        let options = HeatmapOptions::parse("strip_rows=16, strip_width=1024").unwrap();
        assert_eq!((options.strip().rows, options.strip().width), (16, 1024));
        let err = HeatmapOptions::parse("strip_width=wide").unwrap_err();
        assert!(
            err.to_string()
                .contains("cnn_heatmap option strip_width must be a whole number"),
            "{err}"
        );
        let err = HeatmapOptions::parse("strip_rows=0").unwrap_err();
        assert!(
            err.to_string()
                .contains("cnn_heatmap option strip_rows must be 1 to 4096"),
            "{err}"
        );
        let err = HeatmapOptions::parse("margin=16").unwrap_err();
        assert!(err.to_string().contains("unknown cnn_heatmap option 'margin'"), "{err}");
    }

    /// Every position's label and score equal cnn_scores on the tile cut
    /// at that position (tiles at stride 8, whole tiles only).
    #[test]
    fn positions_score_as_their_tiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        write_model(&SeedCnn::new((64, 64, 3), 3, 7).unwrap(), &labels, &path).unwrap();
        let model = path.display().to_string();
        // 100x90: (100-64)/8+1 = 5 columns, (90-64)/8+1 = 4 rows, run in
        // strips of 3 rows and blocks of (80-64)/8+1 = 3 columns.
        let data: Vec<u8> = (0..100 * 90 * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let image = Image::new(100, 90, 3, data).unwrap();
        let heat = invoke(
            &CnnHeatmap::default(),
            vec![
                texts(&model, 1),
                images(&[Some(&image)]),
                texts("strip_rows=3, strip_width=80", 1),
            ],
        )
        .unwrap();
        let heat = heat.as_list::<i32>().value(0);
        let heat = heat.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(heat.len(), 20);

        let tiles = invoke(
            &Tiles::default(),
            vec![
                images(&[Some(&image)]),
                Arc::new(Int64Array::from(vec![64])),
                Arc::new(Int64Array::from(vec![8])),
                texts("drop", 1),
            ],
        )
        .unwrap();
        let tiles = tiles.as_list::<i32>().value(0);
        let tiles = tiles.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(tiles.len(), 20);
        let tile_images = tiles.column_by_name("tile").unwrap().clone();
        let scores = invoke(&CnnScores::default(), vec![texts(&model, 20), tile_images]).unwrap();
        let scores = scores.as_list::<i32>();
        for i in 0..20 {
            let col = |a: &StructArray, n: &str| a.column_by_name(n).unwrap().as_primitive::<UInt32Type>().value(i);
            assert_eq!((col(heat, "x"), col(heat, "y")), (col(tiles, "x"), col(tiles, "y")));
            let best = scores.value(i);
            let best = best.as_any().downcast_ref::<StructArray>().unwrap();
            let label = best
                .column_by_name("label")
                .unwrap()
                .as_string::<i32>()
                .value(0)
                .to_string();
            let score = best
                .column_by_name("score")
                .unwrap()
                .as_primitive::<Float32Type>()
                .value(0);
            let heat_label = heat.column_by_name("label").unwrap().as_string::<i32>().value(i);
            let heat_score = heat
                .column_by_name("score")
                .unwrap()
                .as_primitive::<Float32Type>()
                .value(i);
            assert_eq!(heat_label, label, "position {i}");
            assert!(
                (heat_score - score).abs() < 1e-4,
                "position {i}: {heat_score} vs {score}"
            );
        }

        // Every other position at stride 16: the same values.
        let sixteen = invoke(
            &CnnHeatmap::default(),
            vec![texts(&model, 1), images(&[Some(&image)]), texts("stride=16", 1)],
        )
        .unwrap();
        let sixteen = sixteen.as_list::<i32>().value(0);
        let sixteen = sixteen.as_any().downcast_ref::<StructArray>().unwrap();
        assert_eq!(sixteen.len(), 3 * 2);
        let score = |a: &StructArray, i: usize| {
            a.column_by_name("score")
                .unwrap()
                .as_primitive::<Float32Type>()
                .value(i)
        };
        // Position (x 16, y 16) is position 2 * 5 + 2 = 12 at stride 8.
        assert!((score(sixteen, 4) - score(heat, 12)).abs() < 1e-5);
        let err = invoke(
            &CnnHeatmap::default(),
            vec![texts(&model, 1), images(&[Some(&image)]), texts("stride=12", 1)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("stride 12 is not a multiple of the network's stride, 8"),
            "{err}"
        );

        let excluded = invoke(
            &CnnHeatmap::default(),
            vec![texts(&model, 1), images(&[Some(&image)]), texts("exclude=a|b|c", 1)],
        )
        .unwrap();
        assert_eq!(excluded.as_list::<i32>().value(0).len(), 0);
    }

    #[test]
    fn small_images_bad_options_and_foreign_models() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        write_model(
            &SeedCnn::new((64, 64, 3), 2, 7).unwrap(),
            &["a".into(), "b".into()],
            &path,
        )
        .unwrap();
        let model = path.display().to_string();
        let small = Image::new(32, 32, 3, vec![0; 32 * 32 * 3]).unwrap();
        let out = invoke(&CnnHeatmap::default(), vec![texts(&model, 1), images(&[Some(&small)])]).unwrap();
        assert_eq!(out.as_list::<i32>().value(0).len(), 0);
        let err = invoke(
            &CnnHeatmap::default(),
            vec![texts(&model, 1), images(&[Some(&small)]), texts("min_score=2", 1)],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("min_score must be 0 to 1"), "{err}");
        let foreign = crate::functions::test_util::colour_model();
        let err = invoke(
            &CnnHeatmap::default(),
            vec![texts(&foreign, 1), images(&[Some(&small)])],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Rookery does not rewrite"), "{err}");
    }
}
