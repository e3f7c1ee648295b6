//! `linear_train(features, label [, options])`: an aggregate that trains a
//! softmax regression on feature vectors and writes it, on top of the model
//! that made the features, as one ONNX classifier of images.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, LargeBinaryArray, ListArray, StringArray, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float32Type};
use datafusion::common::{exec_datafusion_err, exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility};
use datafusion_macros::user_doc;

use super::train_report::{report_value, result_fields};
use crate::functions::model_rows::message;
use crate::functions::model_rows::{Models, SqlResult};
use rookery_image::args::{coerce_args, normalized, signature, ArgKind};
use rookery_image::image_value::Image;
use rookery_image::options::OptionSet;
use rookery_models::linear::{train_linear, Features, LinearOptions};
use rookery_models::rewrite::chain_head;
use rookery_models::runtime::{ClassifyOptions, ModelOutput};
use rookery_models::ModelError;

const SYNTAX: &str = "linear_train(features, label [, options])";
const REQUIRED: [ArgKind; 2] = [ArgKind::Floats, ArgKind::Text];
const OPTIONAL: [ArgKind; 1] = [ArgKind::Text];

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Transfer learning's second half (as sparkdl's LogisticRegression on DeepImageFeaturizer features): trains a softmax regression on the aggregated feature vectors, one class per distinct label, and writes it on top of the featurizer model as one ONNX file that takes images, which cnn_classify, cnn_scores and any ONNX runtime run. Features are standardised on the training rows (folded into the written weights) and the weights fitted by full-batch Adam on the cross-entropy plus an L2 penalty, in f64 on one thread: the same rows, options and seed give the same model on any machine. Returns {model, classes, train_accuracy, validation_accuracy, epochs, seconds, train_rows, validation_rows, kept_epoch} (kept_epoch is epochs: a convex fit keeps its last step).",
    syntax_example = "linear_train(features, label [, options])",
    sql_example = r#"```sql
> SELECT run['validation_accuracy'] AS validation_accuracy
  FROM (SELECT linear_train(cnn_embed('out/frames/model.onnx', image), label,
            'featurizer=out/frames/model.onnx, output=out/transfer/head.onnx') AS run
        FROM labelled_frames WHERE split = 'train');
+---------------------+
| validation_accuracy |
+---------------------+
| 1.0                 |
+---------------------+
```"#,
    argument(
        name = "features",
        description = "A list of numbers per row, as cnn_embed returns; every row the same length."
    ),
    argument(
        name = "label",
        description = "Its class, as text. Rows with NULL features or label are skipped."
    ),
    argument(
        name = "options",
        description = "Constant text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "cnn_embed"),
    related_udf(name = "cnn_train")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LinearTrain {
    signature: Signature,
    models: Models,
}

impl Default for LinearTrain {
    fn default() -> Self {
        Self::new(Models::default())
    }
}

impl LinearTrain {
    /// The function reading and writing models at URLs in `models`.
    pub fn new(models: Models) -> Self {
        Self {
            signature: signature(&REQUIRED, &OPTIONAL, Volatility::Volatile),
            models,
        }
    }
}

impl AggregateUDFImpl for LinearTrain {
    fn name(&self) -> &str {
        "linear_train"
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
        Ok(Box::new(LinearTrainAccumulator {
            models: self.models.clone(),
            ..Default::default()
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field =
            |name: &str, data_type: DataType| Arc::new(Field::new(format!("{}[{name}]", args.name), data_type, true));
        Ok(vec![
            field("features", DataType::LargeBinary),
            field("labels", DataType::new_list(DataType::Utf8, true)),
            field("dim", DataType::UInt32),
            field("options", DataType::Utf8),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug, Default)]
struct LinearTrainAccumulator {
    data: Features,
    options_text: Option<String>,
    models: Models,
}

impl LinearTrainAccumulator {
    fn set_options(&mut self, text: &str) -> Result<()> {
        match &self.options_text {
            None => {
                LinearOptions::parse(text)?;
                self.options_text = Some(text.to_string());
                Ok(())
            }
            Some(old) if old == text => Ok(()),
            Some(_) => exec_err!("linear_train options must be the same text on every row"),
        }
    }
}

impl Accumulator for LinearTrainAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values: Vec<ArrayRef> = values.iter().cloned().map(normalized).collect::<Result<_>>()?;
        let features = values[0]
            .as_list_opt::<i32>()
            .ok_or_else(|| exec_datafusion_err!("linear_train: features must be a list of numbers"))?;
        let labels = values[1]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| exec_datafusion_err!("linear_train: label must be text"))?;
        if let Some(options) = values.get(2) {
            let options = options
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| exec_datafusion_err!("linear_train: options must be text"))?;
            if let Some(row) = (0..options.len()).find(|&r| options.is_valid(r)) {
                self.set_options(options.value(row))?;
            }
        }
        for row in 0..features.len() {
            if features.is_null(row) || labels.is_null(row) {
                continue;
            }
            let list = features.value(row);
            let numbers = list
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| exec_datafusion_err!("linear_train: features must be a list of Float32"))?;
            if numbers.null_count() > 0 {
                return exec_err!("linear_train: row {row}'s features hold a NULL");
            }
            self.data.push(numbers.values(), labels.value(row)).sql()?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let data = std::mem::take(&mut self.data);
        let labels: Vec<ScalarValue> = data.labels.iter().map(|l| ScalarValue::Utf8(Some(l.clone()))).collect();
        Ok(vec![
            ScalarValue::LargeBinary(Some(data.values.iter().flat_map(|v| v.to_le_bytes()).collect())),
            ScalarValue::List(ScalarValue::new_list_nullable(&labels, &DataType::Utf8)),
            ScalarValue::UInt32(Some(data.dim as u32)),
            ScalarValue::Utf8(self.options_text.clone()),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let bad = || exec_datafusion_err!("linear_train: unexpected state types");
        let values = states[0].as_any().downcast_ref::<LargeBinaryArray>().ok_or_else(bad)?;
        let labels = states[1].as_any().downcast_ref::<ListArray>().ok_or_else(bad)?;
        let dims = states[2].as_any().downcast_ref::<UInt32Array>().ok_or_else(bad)?;
        let options = states[3].as_any().downcast_ref::<StringArray>().ok_or_else(bad)?;
        for row in 0..values.len() {
            if options.is_valid(row) {
                self.set_options(options.value(row))?;
            }
            let dim = dims.value(row) as usize;
            if dim == 0 || !labels.is_valid(row) {
                continue;
            }
            let names = labels.value(row);
            let names = names.as_any().downcast_ref::<StringArray>().ok_or_else(bad)?;
            let floats: Vec<f32> = values
                .value(row)
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if floats.len() != names.len() * dim {
                return exec_err!("linear_train: inconsistent partial state");
            }
            let part = Features {
                dim,
                values: floats,
                labels: (0..names.len()).map(|i| names.value(i).to_string()).collect(),
            };
            self.data.append(part).sql()?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let options = LinearOptions::parse(self.options_text.as_deref().unwrap_or(""))?;
        let Some(featurizer) = options.featurizer.clone() else {
            return plan_err!(
                "linear_train needs the option featurizer=MODEL.onnx, the model whose cnn_embed features the rows hold: \
                 the head is written on top of it as one model taking images"
            );
        };
        let data = std::mem::take(&mut self.data);
        let (head, report) = train_linear(&data, &options).sql()?;

        // The featurizer's tensor must be as long as the rows' features.
        let fail = |e: &ModelError| exec_datafusion_err!("linear_train: {e}");
        let output = ModelOutput::Features(options.feature.clone());
        let featurizer_file = self.models.store().local_file(&featurizer).map_err(|e| fail(&e))?;
        let model = self
            .models
            .store()
            .loaded()
            .classifier(&featurizer_file, &ClassifyOptions::default(), &output, 1)
            .map_err(|e| fail(&e))?;
        let blank = Image {
            width: model.width as u32,
            height: model.height as u32,
            channels: model.channels as u8,
            data: vec![0; model.width * model.height * model.channels],
        };
        let made = model.features(&[blank.view()]).map_err(|e| fail(&e))?;
        let feature = model.feature_name.clone().unwrap_or_default();
        let length = made.first().map_or(0, Vec::len);
        if length != head.inputs {
            return plan_err!(
                "linear_train: the rows' features have {} values but tensor '{feature}' of featurizer {} has {length}; \
                 give the featurizer (and feature) cnn_embed read",
                head.inputs,
                featurizer
            );
        }
        let bytes = std::fs::read(&featurizer_file)
            .map_err(|e| exec_datafusion_err!("linear_train: cannot read featurizer {featurizer}: {e}"))?;
        let chained = chain_head(&bytes, Some(&feature), &head, &report.classes)
            .map_err(|e| exec_datafusion_err!("linear_train: featurizer {featurizer}: {}", message(&e)))?;
        self.models.write(&options.output, &chained)?;
        report_value(&options.output, &report)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.data.values.capacity() * 4
            + self.data.labels.iter().map(|l| l.len() + 24).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{images, invoke, solid, texts};
    use crate::functions::{CnnClassify, CnnEmbed};
    use rookery_models::model::SeedCnn;
    use rookery_models::onnx::write_model;

    /// An untrained seed CNN of 24x24 input, written to `dir`.
    fn random_featurizer(dir: &std::path::Path) -> String {
        let path = dir.join("cnn.onnx");
        write_model(
            &SeedCnn::new((24, 24, 3), 2, 3).unwrap(),
            &["x".into(), "y".into()],
            &path,
        )
        .unwrap();
        path.display().to_string()
    }

    /// Red-ish and blue-ish squares, and a random featurizer.
    #[test]
    fn a_head_on_a_featurizer_classifies_images() {
        let dir = tempfile::tempdir().unwrap();
        let featurizer = random_featurizer(dir.path());
        let owned: Vec<Image> = (0..24)
            .map(|i| {
                let v = (i * 7 % 40) as u8;
                if i % 2 == 0 {
                    solid([180 + v, 20, 30])
                } else {
                    solid([30, 20, 180 + v])
                }
            })
            .collect();
        let refs: Vec<Option<&Image>> = owned.iter().map(Some).collect();
        let labels: ArrayRef = Arc::new(StringArray::from(
            (0..24)
                .map(|i| if i % 2 == 0 { "red" } else { "blue" })
                .collect::<Vec<_>>(),
        ));
        let features = invoke(&CnnEmbed::default(), vec![texts(&featurizer, 24), images(&refs)]).unwrap();
        let head = dir.path().join("head.onnx");
        let options = format!("featurizer={featurizer}, output={}, validation=0.25", head.display());

        // Two partial accumulators merged, as a two-phase aggregate runs.
        let mut partials = [LinearTrainAccumulator::default(), LinearTrainAccumulator::default()];
        for (k, acc) in partials.iter_mut().enumerate() {
            let slice = |a: &ArrayRef| a.slice(k * 12, 12);
            acc.update_batch(&[slice(&features), slice(&labels), texts(&options, 12)])
                .unwrap();
        }
        let mut total = LinearTrainAccumulator::default();
        for acc in &mut partials {
            let state: Vec<ArrayRef> = acc.state().unwrap().iter().map(|s| s.to_array().unwrap()).collect();
            total.merge_batch(&state).unwrap();
        }
        let ScalarValue::Struct(result) = total.evaluate().unwrap() else {
            panic!("struct")
        };
        let validation = result.column_by_name("validation_accuracy").unwrap();
        assert_eq!(
            validation
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(0),
            1.0
        );

        let head = head.display().to_string();
        let predicted = invoke(
            &CnnClassify::default(),
            vec![
                texts(&head, 2),
                images(&[Some(&solid([230, 20, 30])), Some(&solid([30, 20, 230]))]),
            ],
        )
        .unwrap();
        let predicted = predicted.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((predicted.value(0), predicted.value(1)), ("red", "blue"));
    }

    #[test]
    fn needs_a_featurizer_of_the_same_width() {
        let mut acc = LinearTrainAccumulator::default();
        let features: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(0.0)]),
            Some(vec![Some(0.0), Some(1.0)]),
        ]));
        let labels: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        acc.update_batch(&[features.clone(), labels.clone(), texts("validation=0", 2)])
            .unwrap();
        let err = acc.evaluate().unwrap_err().to_string();
        assert!(err.contains("needs the option featurizer=MODEL.onnx"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let featurizer = random_featurizer(dir.path());
        let mut acc = LinearTrainAccumulator::default();
        let options = format!("validation=0, featurizer={featurizer}");
        acc.update_batch(&[features, labels, texts(&options, 2)]).unwrap();
        let err = acc.evaluate().unwrap_err().to_string();
        assert!(
            err.contains("have 2 values but tensor 'dense1_relu'") && err.contains("has 512"),
            "{err}"
        );
    }
}
