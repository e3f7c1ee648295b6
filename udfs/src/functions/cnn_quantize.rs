//! `cnn_quantize(model, calibration_image [, options])`: an aggregate that
//! calibrates a model on its rows and writes its int8 (QDQ) form.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_datafusion_err, exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

use crate::functions::model_rows::message;
use crate::functions::model_rows::Models;
use rookery_image::args::{normalized, optional_text_arg, signature, ArgKind};
use rookery_image::image_value::{ImageArray, ImageView};
use rookery_image::options::parse::{some, text};
use rookery_image::options::OptionSet;
use rookery_models::quantize::{calibration_tensors, quantize_model, Range};
use rookery_models::runtime::{threads_per_session, ClassifyOptions, ModelOutput};
use rookery_models::store::with_model_suffix;

/// Images per calibration run.
const CALIBRATION_CHUNK: usize = 32;

rookery_image::option_set! {
    /// Options of `cnn_quantize`.
    pub struct QuantizeOptions for "cnn_quantize" {
        /// Where the int8 model is written (default: the model's path with
        /// .int8.onnx).
        output: Option<String> = None, some(text("must be a file path"));
    }
}

/// The output path of `options` for `model`: `output=...`, else the
/// model's path with `.int8.onnx`.
fn output_path(model: &str, options: &str) -> Result<String> {
    let output = QuantizeOptions::parse(options)?.output;
    Ok(output.unwrap_or_else(|| with_model_suffix(model, ".int8.onnx")))
}

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Writes the int8 form of a model cnn_train or linear_train wrote, for faster inference: runs the model on the aggregated calibration images to find the range of every activation, then rewrites it in ONNX's QDQ form (int8 weights with a scale per output channel, int32 biases, uint8 activations), which ONNX Runtime runs with integer kernels and any ONNX runtime can load. cnn_classify and cnn_scores run it like the float model. Returns the path written. A few hundred images like those to be classified are enough.",
    syntax_example = "cnn_quantize(model, calibration_image [, options])",
    sql_example = r#"```sql
> SELECT cnn_quantize('out/sealions/model.onnx', image) AS int8_model
  FROM (SELECT image FROM thumbnails LIMIT 500);
+------------------------------+
| int8_model                   |
+------------------------------+
| out/sealions/model.int8.onnx |
+------------------------------+
```"#,
    argument(
        name = "model",
        description = "Path of the float .onnx model; the same on every row."
    ),
    argument(
        name = "calibration_image",
        description = "An image like those the model will classify; NULL rows are skipped."
    ),
    argument(
        name = "options",
        description = "Optional constant text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "cnn_train"),
    related_udf(name = "cnn_classify")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnQuantize {
    signature: Signature,
    models: Models,
}

impl Default for CnnQuantize {
    fn default() -> Self {
        Self::new(Models::default())
    }
}

impl CnnQuantize {
    /// The function reading and writing models at URLs in `models`.
    pub fn new(models: Models) -> Self {
        Self {
            signature: signature(&[ArgKind::Text, ArgKind::Image], &[ArgKind::Text], Volatility::Volatile),
            models,
        }
    }
}

impl AggregateUDFImpl for CnnQuantize {
    fn name(&self) -> &str {
        "cnn_quantize"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CnnQuantizeAccumulator {
            models: self.models.clone(),
            ..Default::default()
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field =
            |name: &str, data_type: DataType| Arc::new(Field::new(format!("{}[{name}]", args.name), data_type, true));
        Ok(vec![
            field("model", DataType::Utf8),
            field("options", DataType::Utf8),
            field("ranges", DataType::Utf8),
            field("rows", DataType::Int64),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug, Default)]
struct CnnQuantizeAccumulator {
    model: Option<String>,
    options: Option<String>,
    tensors: Vec<String>,
    ranges: HashMap<String, Range>,
    rows: i64,
    models: Models,
}

impl CnnQuantizeAccumulator {
    fn set_constant(slot: &mut Option<String>, value: &str, what: &str) -> Result<()> {
        match slot {
            None => {
                *slot = Some(value.to_string());
                Ok(())
            }
            Some(old) if old == value => Ok(()),
            Some(_) => exec_err!("cnn_quantize: the {what} must be the same on every row"),
        }
    }

    fn calibrate(&mut self, images: &[ImageView<'_>]) -> Result<()> {
        let Some(model) = self.model.clone() else {
            return Ok(());
        };
        let fail = |e: &rookery_models::ModelError| exec_datafusion_err!("cnn_quantize: model {model}: {}", message(e));
        let file = self.models.store().local_file(&model).map_err(|e| fail(&e))?;
        let path = file.as_path();
        if self.tensors.is_empty() {
            let bytes = std::fs::read(path)
                .map_err(|e| exec_datafusion_err!("cnn_quantize: cannot read model {model}: {e}"))?;
            self.tensors = calibration_tensors(&bytes).map_err(|e| fail(&e))?;
        }
        let threads = threads_per_session(1);
        for name in &self.tensors {
            let output = ModelOutput::Features(Some(name.clone()));
            let runner = self
                .models
                .store()
                .loaded()
                .classifier(path, &ClassifyOptions::default(), &output, threads)
                .map_err(|e| fail(&e))?;
            let range = self.ranges.entry(name.clone()).or_default();
            // A few images at a time: a first convolution's output is
            // about 0.5 MB per 64x64 image.
            for chunk in images.chunks(CALIBRATION_CHUNK) {
                for values in runner.features(chunk).map_err(|e| fail(&e))? {
                    range.add(&values);
                }
            }
        }
        self.rows += images.len() as i64;
        Ok(())
    }
}

impl Accumulator for CnnQuantizeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values: Vec<ArrayRef> = values.iter().cloned().map(normalized).collect::<Result<_>>()?;
        let text = |i: usize| optional_text_arg("cnn_quantize", &values, i);
        let models = text(0)?.ok_or_else(|| exec_datafusion_err!("cnn_quantize: missing model"))?;
        let options = text(2)?;
        let images = ImageArray::try_new(values[1].as_ref()).map_err(|e| exec_datafusion_err!("cnn_quantize: {e}"))?;
        let mut views = Vec::new();
        for row in 0..images.len() {
            if models.is_null(row) {
                continue;
            }
            Self::set_constant(&mut self.model, models.value(row), "model")?;
            if let Some(o) = options.filter(|o| o.is_valid(row)) {
                Self::set_constant(&mut self.options, o.value(row), "options")?;
            }
            if let Some(view) = images
                .get(row)
                .map_err(|e| exec_datafusion_err!("cnn_quantize: row {row}: {e}"))?
            {
                views.push(view);
            }
        }
        if let Some(model) = &self.model {
            output_path(model, self.options.as_deref().unwrap_or(""))?;
        }
        self.calibrate(&views)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let ranges: HashMap<&String, [f32; 2]> = self.ranges.iter().map(|(k, r)| (k, [r.min, r.max])).collect();
        let json = serde_json::to_string(&ranges).map_err(|e| exec_datafusion_err!("cnn_quantize: {e}"))?;
        Ok(vec![
            ScalarValue::Utf8(self.model.clone()),
            ScalarValue::Utf8(self.options.clone()),
            ScalarValue::Utf8(Some(json)),
            ScalarValue::Int64(Some(self.rows)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let bad = || exec_datafusion_err!("cnn_quantize: unexpected state types");
        let text = |i: usize| states[i].as_any().downcast_ref::<StringArray>().ok_or_else(bad);
        let (models, options, ranges) = (text(0)?, text(1)?, text(2)?);
        let rows = states[3].as_any().downcast_ref::<Int64Array>().ok_or_else(bad)?;
        for row in 0..models.len() {
            if models.is_valid(row) {
                Self::set_constant(&mut self.model, models.value(row), "model")?;
            }
            if options.is_valid(row) {
                Self::set_constant(&mut self.options, options.value(row), "options")?;
            }
            if ranges.is_valid(row) {
                let parsed: HashMap<String, [f32; 2]> = serde_json::from_str(ranges.value(row)).map_err(|_| bad())?;
                for (name, [min, max]) in parsed {
                    self.ranges.entry(name).or_default().merge(Range { min, max });
                }
            }
            if rows.is_valid(row) {
                self.rows += rows.value(row);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some(model) = self.model.clone() else {
            return Ok(ScalarValue::Utf8(None));
        };
        if self.rows == 0 {
            return plan_err!("cnn_quantize needs at least one calibration image");
        }
        let output = output_path(&model, self.options.as_deref().unwrap_or(""))?;
        let file = self
            .models
            .local_file(&model)
            .map_err(|e| exec_datafusion_err!("cnn_quantize: {}", message(&e)))?;
        let bytes =
            std::fs::read(&file).map_err(|e| exec_datafusion_err!("cnn_quantize: cannot read model {model}: {e}"))?;
        let quantised = quantize_model(&bytes, &self.ranges)
            .map_err(|e| exec_datafusion_err!("cnn_quantize: model {model}: {}", message(&e)))?;
        self.models.write(&output, &quantised)?;
        Ok(ScalarValue::Utf8(Some(output)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.ranges.len() * 64 + self.tensors.len() * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, texts};
    use rookery_image::image_value::Image;
    use rookery_image::rng::Rng;
    use rookery_models::model::{Kernels, SeedCnn};
    use rookery_models::onnx::write_model;
    use rookery_models::runtime::best;
    use rookery_models::runtime::Classifier;
    use rookery_models::train::{train, Dataset, TrainOptions};
    use std::path::Path;

    /// Bright and dark noisy squares: a model trained on them, quantised,
    /// gives the same labels.
    #[test]
    fn the_int8_model_labels_as_the_float_one() {
        let side = 24;
        let mut rng = Rng::new(3);
        let owned: Vec<Image> = (0..64)
            .map(|i| {
                let base = if i % 2 == 0 { 60.0 } else { 170.0 };
                let data = (0..side * side * 3)
                    .map(|_| (base + rng.normal() * 30.0).clamp(0.0, 255.0) as u8)
                    .collect();
                Image {
                    width: side as u32,
                    height: side as u32,
                    channels: 3,
                    data,
                }
            })
            .collect();
        let mut data = Dataset::new(side, side, 3);
        for (i, image) in owned.iter().enumerate() {
            data.push(&image.data, ["dark", "bright"][i % 2].to_string()).unwrap();
        }
        let options = TrainOptions {
            epochs: 2,
            batch_size: 16,
            validation: 0.0,
            input_size: side,
            ..Default::default()
        };
        let (model, report) = train(&data, &options, Kernels::Fast, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let float_path = dir.path().join("m.onnx");
        write_model(&model, &report.classes, &float_path).unwrap();
        let _ = SeedCnn::MIN_SIDE;

        let float_model = float_path.display().to_string();
        let refs: Vec<Option<&Image>> = owned.iter().map(Some).collect();
        let mut acc = CnnQuantizeAccumulator::default();
        acc.update_batch(&[texts(&float_model, 64), images(&refs)]).unwrap();
        let ScalarValue::Utf8(Some(written)) = acc.evaluate().unwrap() else {
            panic!("a path")
        };
        assert_eq!(written, dir.path().join("m.int8.onnx").display().to_string());

        let views: Vec<ImageView<'_>> = owned.iter().map(Image::view).collect();
        let float = Classifier::load(&float_path, &ClassifyOptions::default(), &ModelOutput::Classes, 1).unwrap();
        let int8 = Classifier::load(
            Path::new(&written),
            &ClassifyOptions::default(),
            &ModelOutput::Classes,
            1,
        )
        .unwrap();
        assert_eq!(int8.labels, float.labels);
        let (a, b) = (float.scores(&views).unwrap(), int8.scores(&views).unwrap());
        let same = a.iter().zip(&b).filter(|(x, y)| best(x) == best(y)).count();
        assert!(same >= 63, "{same} of 64 labels kept");
        for (x, y) in a.iter().zip(&b) {
            assert!((x[0] - y[0]).abs() < 0.1, "{x:?} vs {y:?}");
        }
    }

    #[test]
    fn options_and_foreign_models_are_checked() {
        assert_eq!(output_path("a/m.onnx", "").unwrap(), "a/m.int8.onnx");
        let err = output_path("m.onnx", "bits=4").unwrap_err().to_string();
        assert!(err.contains("unknown cnn_quantize option 'bits'"), "{err}");
        let mut acc = CnnQuantizeAccumulator::default();
        let red = crate::functions::test_util::solid([200, 0, 0]);
        let model = crate::functions::test_util::colour_model();
        let err = acc
            .update_batch(&[texts(&model, 1), images(&[Some(&red)])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Rookery does not rewrite"), "{err}");
    }
}
