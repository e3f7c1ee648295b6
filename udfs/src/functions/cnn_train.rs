//! `cnn_train(image, label [, options])`: an aggregate that trains the seed
//! CNN on its rows and writes an ONNX file.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, LargeBinaryArray, ListArray, StringArray, StructArray, UInt32Array,
};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_datafusion_err, exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

use super::train_report::{report_value, result_fields};
use crate::functions::model_rows::{Models, SqlResult};
use rookery_image::args::{coerce_args, normalized, signature, ArgKind};
use rookery_image::image_value::ImageArray;
use rookery_image::options::OptionSet;
use rookery_image::pixels;
use rookery_models::control::TrainingControl;
use rookery_models::model::Kernels;
use rookery_models::onnx::model_bytes;
use rookery_models::train::{train_until, Dataset, EpochReport, TrainOptions};

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Trains the seed CNN (conv 32/64/128 3x3 with 2x2 max pooling, dense 512-512 with dropout 0.5) on the aggregated rows and writes it as an ONNX file (NHWC float input 0..255; labels and layout in the metadata) that cnn_classify, cnn_scores and any ONNX runtime can run. With text labels it is a classifier: one class per distinct label, softmax, cross-entropy. With a struct of numbers as the label (named_struct('pups', pups, ...)) it is a count model: one output per field, trained on the squared error and written with a ReLU, whose cnn_scores are counts and which cnn_density runs over whole images. Images are made RGB and resized to input_size x input_size. Prints a line per epoch on stderr. Returns {model, classes, train_accuracy, validation_accuracy, validation_loss, epochs, seconds, train_rows, validation_rows, kept_epoch}: the accuracies (a classifier's) are of the kept epoch (the last, or the best with keep=best), train_accuracy the running accuracy of that epoch (with dropout), as Keras reports it; validation_loss is a count model's mean squared error on the validation rows; classes are a count model's field names.",
    syntax_example = "cnn_train(image, label [, options [, group]])",
    sql_example = r#"```sql
> SELECT run['model'] AS model, round(run['train_accuracy'], 3) AS train_accuracy,
         round(run['validation_accuracy'], 3) AS validation_accuracy, run['epochs'] AS epochs
  FROM (SELECT cnn_train(image, label, 'epochs=12, seed=2017, augment=flip+rotate, output=out/sealions/model.onnx') AS run
        FROM thumbnails);
+-------------------------+----------------+---------------------+--------+
| model                   | train_accuracy | validation_accuracy | epochs |
+-------------------------+----------------+---------------------+--------+
| out/sealions/model.onnx | 0.994          | 1.0                 | 12     |
+-------------------------+----------------+---------------------+--------+
```"#,
    argument(name = "image", description = "The training image."),
    argument(
        name = "label",
        description = "Its class, as text; or its counts, as a struct of numbers whose field names name the counts (every row the same fields; a NULL field counts 0). Rows with a NULL image or label are skipped."
    ),
    argument(
        name = "options",
        description = "Optional constant text 'key=value, ...'; the options are listed under Options."
    ),
    argument(
        name = "group",
        description = "Optional text per row, e.g. the frame a thumbnail was cut from: validation then holds out whole groups (drawn from the seed), so near copies never fall on both sides."
    ),
    related_udf(name = "cnn_classify"),
    related_udf(name = "cnn_scores")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnTrain {
    signature: Signature,
    control: TrainingControl,
    models: Models,
}

impl Default for CnnTrain {
    fn default() -> Self {
        Self::new(TrainingControl::default(), Models::default())
    }
}

impl CnnTrain {
    /// A `cnn_train` whose runs report to, and can be cancelled by,
    /// `control`, writing models at URLs to `models`.
    pub fn new(control: TrainingControl, models: Models) -> Self {
        Self {
            signature: signature(&REQUIRED, &OPTIONAL, Volatility::Volatile),
            control,
            models,
        }
    }
}

const REQUIRED: [ArgKind; 2] = [ArgKind::Image, ArgKind::Label];
const OPTIONAL: [ArgKind; 2] = [ArgKind::Text, ArgKind::Text];
const SYNTAX: &str = "cnn_train(image, label [, options [, group]])";

impl AggregateUDFImpl for CnnTrain {
    fn name(&self) -> &str {
        "cnn_train"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), SYNTAX, arg_types, &REQUIRED, &OPTIONAL)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(result_fields()))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CnnTrainAccumulator {
            control: self.control.clone(),
            models: self.models.clone(),
            ..Default::default()
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field =
            |name: &str, data_type: DataType| Arc::new(Field::new(format!("{}[{name}]", args.name), data_type, true));
        Ok(vec![
            field("pixels", DataType::LargeBinary),
            field("labels", DataType::new_list(DataType::Utf8, true)),
            field("side", DataType::UInt32),
            field("options", DataType::Utf8),
            field("groups", DataType::new_list(DataType::Utf8, true)),
            field("count_names", DataType::new_list(DataType::Utf8, true)),
            field("counts", DataType::new_list(DataType::Float32, true)),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Rows gathered so far (as RGB at the training size), and the options text.
#[derive(Debug, Default)]
struct CnnTrainAccumulator {
    data: Option<Dataset>,
    options_text: Option<String>,
    control: TrainingControl,
    models: Models,
}

impl CnnTrainAccumulator {
    fn options(&self) -> Result<TrainOptions> {
        Ok(TrainOptions::parse(self.options_text.as_deref().unwrap_or(""))?)
    }

    fn set_options(&mut self, text: Option<&str>) -> Result<()> {
        match (&self.options_text, text) {
            (_, None) => Ok(()),
            (None, Some(t)) => {
                TrainOptions::parse(t)?;
                self.options_text = Some(t.to_string());
                Ok(())
            }
            (Some(old), Some(t)) if old == t => Ok(()),
            (Some(_), Some(_)) => exec_err!("cnn_train options must be the same text on every row"),
        }
    }

    fn dataset(&mut self, side: usize) -> Result<&mut Dataset> {
        let data = self.data.get_or_insert_with(|| Dataset::new(side, side, 3));
        if data.height != side {
            return exec_err!(
                "cnn_train: rows were gathered at {0}x{0} and at {side}x{side}",
                data.height
            );
        }
        Ok(data)
    }
}

impl Accumulator for CnnTrainAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        // Text arrives as the planner kept it (Utf8View from Parquet, say).
        let values: Vec<ArrayRef> = values.iter().cloned().map(normalized).collect::<Result<_>>()?;
        let images = ImageArray::try_new(values[0].as_ref()).map_err(|e| exec_datafusion_err!("cnn_train: {e}"))?;
        let labels = Labels::try_new(values[1].as_ref())?;
        if let Some(options) = values.get(2) {
            let options = options
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| exec_datafusion_err!("cnn_train: options must be text"))?;
            if let Some(row) = (0..options.len()).find(|&r| options.is_valid(r)) {
                self.set_options(Some(options.value(row)))?;
            }
        }
        let groups = match values.get(3) {
            Some(g) => Some(
                g.as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| exec_datafusion_err!("cnn_train: group must be text"))?,
            ),
            None => None,
        };
        let side = self.options()?.input_size;
        for row in 0..images.len() {
            let image = images
                .get(row)
                .map_err(|e| exec_datafusion_err!("cnn_train: row {row}: {e}"))?;
            let (Some(image), true) = (image, labels.is_valid(row)) else {
                continue;
            };
            let sized = pixels::conform(image, side as u32, side as u32, 3)?;
            let group = match groups {
                Some(g) if g.is_null(row) => return exec_err!("cnn_train: row {row} has a NULL group"),
                Some(g) => Some(g.value(row).to_string()),
                None => None,
            };
            let data = self.dataset(side)?;
            match &labels {
                Labels::Classes(names) => data
                    .push_grouped(&sized.data, names.value(row).to_string(), group)
                    .sql()?,
                Labels::Counts(names, columns, _) => {
                    let counts: Vec<f32> = columns
                        .iter()
                        .map(|c| if c.is_null(row) { 0.0 } else { c.value(row) as f32 })
                        .collect();
                    data.push_counts(&sized.data, names, &counts, group).sql()?
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let data = self.data.take().unwrap_or_default();
        let texts = |values: &[String]| {
            let values: Vec<ScalarValue> = values.iter().map(|v| ScalarValue::Utf8(Some(v.clone()))).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
        };
        Ok(vec![
            ScalarValue::LargeBinary(Some(data.pixels)),
            texts(&data.labels),
            ScalarValue::UInt32(Some(data.height as u32)),
            ScalarValue::Utf8(self.options_text.clone()),
            texts(&data.groups),
            texts(&data.count_names),
            ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(DataType::Float32, true)),
                datafusion::arrow::buffer::OffsetBuffer::from_lengths([data.counts.len()]),
                Arc::new(Float32Array::from(data.counts)),
                None,
            ))),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let downcast_error = || exec_datafusion_err!("cnn_train: unexpected state types");
        let pixels = states[0]
            .as_any()
            .downcast_ref::<LargeBinaryArray>()
            .ok_or_else(downcast_error)?;
        let labels = states[1]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(downcast_error)?;
        let sides = states[2]
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(downcast_error)?;
        let options = states[3]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(downcast_error)?;
        let groups = states[4]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(downcast_error)?;
        let count_names = states[5]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(downcast_error)?;
        let counts = states[6]
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(downcast_error)?;
        for row in 0..pixels.len() {
            if options.is_valid(row) {
                self.set_options(Some(options.value(row)))?;
            }
            let side = sides.value(row) as usize;
            if side == 0 || !labels.is_valid(row) || pixels.value(row).is_empty() {
                continue;
            }
            let names = labels.value(row);
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(downcast_error)?;
            let mut part = Dataset::new(side, side, 3);
            part.pixels = pixels.value(row).to_vec();
            part.labels = (0..names.len()).map(|i| names.value(i).to_string()).collect();
            if groups.is_valid(row) {
                let list = groups.value(row);
                let list = list.as_any().downcast_ref::<StringArray>().ok_or_else(downcast_error)?;
                part.groups = (0..list.len()).map(|i| list.value(i).to_string()).collect();
            }
            if count_names.is_valid(row) && counts.is_valid(row) {
                let names = count_names.value(row);
                let names = names.as_string_opt::<i32>().ok_or_else(downcast_error)?;
                part.count_names = (0..names.len()).map(|i| names.value(i).to_string()).collect();
                let values = counts.value(row);
                let values = values
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(downcast_error)?;
                part.counts = values.values().to_vec();
            }
            if part.pixels.len() != part.len() * side * side * 3 {
                return exec_err!("cnn_train: inconsistent partial state");
            }
            match &mut self.data {
                Some(data) => data.append(part).sql()?,
                None => self.data = Some(part),
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let options = self.options()?;
        let data = self
            .data
            .take()
            .unwrap_or_else(|| Dataset::new(options.input_size, options.input_size, 3));
        let control = self.control.clone();
        let mut progress = |e: &EpochReport| control.report(e);
        let cancelled = || self.control.is_cancelled();
        let (model, report) = rookery_image::blocking::off_async_worker(|| {
            train_until(&data, &options, Kernels::Fast, &mut progress, &cancelled)
        })
        .sql()?;
        self.models
            .write(&options.output, &model_bytes(&model, &report.classes).sql()?)?;
        report_value(&options.output, &report)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.data.as_ref().map_or(0, |d| {
                d.pixels.capacity() + d.labels.iter().map(|l| l.len() + 24).sum::<usize>() + 4 * d.counts.capacity()
            })
    }
}

/// The label argument of a batch: class names, or named count columns.
enum Labels<'a> {
    Classes(&'a StringArray),
    Counts(
        Vec<String>,
        Vec<&'a datafusion::arrow::array::Float64Array>,
        &'a StructArray,
    ),
}

impl<'a> Labels<'a> {
    fn try_new(array: &'a dyn Array) -> Result<Self> {
        if let Some(names) = array.as_any().downcast_ref::<StringArray>() {
            return Ok(Self::Classes(names));
        }
        let Some(counts) = array.as_any().downcast_ref::<StructArray>() else {
            return exec_err!(
                "cnn_train: label must be text or a struct of counts, not {}",
                array.data_type()
            );
        };
        let columns = counts
            .columns()
            .iter()
            .map(|c| c.as_primitive_opt::<Float64Type>())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| exec_datafusion_err!("cnn_train: counts must be numbers"))?;
        let names = counts.fields().iter().map(|f| f.name().clone()).collect();
        Ok(Self::Counts(names, columns, counts))
    }

    fn is_valid(&self, row: usize) -> bool {
        match self {
            Self::Classes(names) => names.is_valid(row),
            Self::Counts(_, _, counts) => counts.is_valid(row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::images;
    use datafusion::arrow::datatypes::Fields;
    use rookery_image::image_value::Image;

    /// Two classes a CNN separates at once: dark and bright squares.
    fn sample(n: usize) -> (ArrayRef, ArrayRef) {
        let owned: Vec<Image> = (0..n)
            .map(|i| {
                let v = if i % 2 == 0 { 30 } else { 220 };
                let data = (0..24 * 24 * 3).map(|p| v + (p % 7) as u8).collect();
                Image {
                    width: 24,
                    height: 24,
                    channels: 3,
                    data,
                }
            })
            .collect();
        let refs: Vec<Option<&Image>> = owned.iter().map(Some).collect();
        let labels: ArrayRef = Arc::new(StringArray::from(
            (0..n)
                .map(|i| if i % 2 == 0 { "dark" } else { "bright" })
                .collect::<Vec<_>>(),
        ));
        (images(&refs), labels)
    }

    /// Two partial accumulators, of 8 rows each, merged into a final one
    /// as a two-phase aggregate runs; the final result.
    fn two_phase(images: &ArrayRef, labels: &ArrayRef, options: &ArrayRef) -> Arc<StructArray> {
        let mut partials = [CnnTrainAccumulator::default(), CnnTrainAccumulator::default()];
        for (k, acc) in partials.iter_mut().enumerate() {
            let slice = |a: &ArrayRef| a.slice(k * 8, 8);
            acc.update_batch(&[slice(images), slice(labels), slice(options)])
                .unwrap();
        }
        let mut total = CnnTrainAccumulator::default();
        for acc in &mut partials {
            let state: Vec<ArrayRef> = acc.state().unwrap().iter().map(|s| s.to_array().unwrap()).collect();
            total.merge_batch(&state).unwrap();
        }
        let ScalarValue::Struct(result) = total.evaluate().unwrap() else {
            panic!("struct")
        };
        result
    }

    #[test]
    fn trains_merges_and_writes_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("m.onnx");
        let text = format!(
            "epochs=3, input_size=24, batch_size=8, validation=0.25, output={}",
            output.display()
        );
        let options: ArrayRef = Arc::new(StringArray::from(vec![text.as_str(); 16]));
        let (images, labels) = sample(16);

        let result = two_phase(&images, &labels, &options);
        assert!(output.exists());
        let accuracy = result.column_by_name("train_accuracy").unwrap();
        assert!(accuracy.is_valid(0));
        let rows = result.column_by_name("train_rows").unwrap();
        assert_eq!(
            rows.as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap()
                .value(0),
            12
        );
    }

    /// A struct of numbers as the label trains a count model: the state
    /// carries the counts through a two-phase aggregate, and the written
    /// model outputs counts, named after the struct's fields.
    #[test]
    fn a_struct_of_counts_trains_a_count_model() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("counts.onnx");
        let text = format!(
            "epochs=2, input_size=24, batch_size=8, validation=0, output={}",
            output.display()
        );
        let options: ArrayRef = Arc::new(StringArray::from(vec![text.as_str(); 16]));
        let (images, _) = sample(16);
        let counts = |f: fn(usize) -> f64| -> ArrayRef {
            Arc::new(datafusion::arrow::array::Float64Array::from(
                (0..16).map(f).collect::<Vec<_>>(),
            ))
        };
        let labels: ArrayRef = Arc::new(
            StructArray::try_new(
                Fields::from(vec![
                    Field::new("dark", DataType::Float64, true),
                    Field::new("bright", DataType::Float64, true),
                ]),
                vec![counts(|i| (i % 2 == 0) as u8 as f64), counts(|i| (i % 2) as f64 * 2.0)],
                None,
            )
            .unwrap(),
        );
        let result = two_phase(&images, &labels, &options);
        assert!(result.column_by_name("train_accuracy").unwrap().is_null(0));
        let classes = result.column_by_name("classes").unwrap().as_list::<i32>().value(0);
        let classes = classes.as_string::<i32>();
        assert_eq!((classes.value(0), classes.value(1)), ("dark", "bright"));
        let bytes = std::fs::read(&output).unwrap();
        let (proto, _) = rookery_models::onnx::decode_model(&bytes).unwrap();
        let graph = proto.graph.unwrap();
        assert_eq!(graph.output[0].name, rookery_models::onnx::COUNTS_OUTPUT);
        assert_eq!(graph.node.last().unwrap().op_type, "Relu");

        // Coercion: text stays text, numbers become Float64, others fail.
        let train = CnnTrain::default();
        let image = rookery_image::image_type();
        let int_struct = DataType::Struct(Fields::from(vec![Field::new("pups", DataType::Int64, true)]));
        let coerced = train.coerce_types(&[image.clone(), int_struct]).unwrap();
        assert_eq!(
            coerced[1],
            DataType::Struct(Fields::from(vec![Field::new("pups", DataType::Float64, true)]))
        );
        let err = train.coerce_types(&[image, DataType::Int64]).unwrap_err().to_string();
        assert!(err.contains("text (a class) or a struct of numbers"), "{err}");
    }

    #[test]
    fn one_label_is_an_error() {
        let mut acc = CnnTrainAccumulator::default();
        let (images, _) = sample(4);
        let labels: ArrayRef = Arc::new(StringArray::from(vec!["a"; 4]));
        let options: ArrayRef = Arc::new(StringArray::from(vec!["input_size=24"; 4]));
        acc.update_batch(&[images, labels, options]).unwrap();
        let err = acc.evaluate().unwrap_err().to_string();
        assert!(err.contains("two distinct labels"), "{err}");
    }
}
