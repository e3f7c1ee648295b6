//! `cnn_scores(model, image [, options])`: every label of an ONNX image
//! classifier with its probability.

use std::sync::Arc;

use datafusion::arrow::array::{Float32Builder, ListBuilder, StringBuilder, StructBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::functions::model_rows::classify_rows;
use crate::functions::model_rows::Models;
use rookery_image::args::{signature, ArgKind};
use rookery_models::runtime::ranked;

fn score_fields() -> Fields {
    Fields::from(vec![
        Field::new("label", DataType::Utf8, false),
        Field::new("score", DataType::Float32, false),
    ])
}

/// `List<{label, score}>`.
pub fn scores_type() -> DataType {
    DataType::new_list(DataType::Struct(score_fields()), true)
}

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Runs an ONNX image classifier like cnn_classify and returns every label with its probability, highest first, as a list of {label, score}. Models that output logits (rows not summing to 1) get a softmax. cnn_scores(m, i)[1]['label'] is cnn_classify(m, i).",
    syntax_example = "cnn_scores(model, image [, options])",
    sql_example = r#"```sql
> SELECT cnn_scores('tests/fixtures/colour_classifier.onnx', image, 'labels=red|green|blue')[1] AS top
  FROM images('data/sealions/Test/0.jpg');
+-----------------------------------+
| top                               |
+-----------------------------------+
| {label: green, score: 0.39030817} |
+-----------------------------------+
```"#,
    argument(name = "model", description = "Path of an .onnx file."),
    argument(name = "image", description = "An image value."),
    argument(
        name = "options",
        description = "Optional text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "cnn_classify")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnScores {
    signature: Signature,
    models: Models,
}

impl Default for CnnScores {
    fn default() -> Self {
        Self::new(Models::default())
    }
}

impl CnnScores {
    /// The function reading models at URLs from `models`.
    pub fn new(models: Models) -> Self {
        Self {
            signature: signature(&[ArgKind::Text, ArgKind::Image], &[ArgKind::Text], Volatility::Stable),
            models,
        }
    }
}

impl ScalarUDFImpl for CnnScores {
    fn name(&self) -> &str {
        "cnn_scores"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(scores_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = classify_rows(self.name(), &self.models, &args)?;
        let entry = StructBuilder::new(
            score_fields(),
            vec![Box::new(StringBuilder::new()), Box::new(Float32Builder::new())],
        );
        let mut out =
            ListBuilder::new(entry).with_field(Arc::new(Field::new_list_field(DataType::Struct(score_fields()), true)));
        for row in rows {
            let Some((classifier, scores)) = row else {
                out.append_null();
                continue;
            };
            let ranked = ranked(&scores);
            let entries = out.values();
            for (index, score) in ranked {
                entries
                    .field_builder::<StringBuilder>(0)
                    .expect("label builder")
                    .append_value(classifier.label(index));
                entries
                    .field_builder::<Float32Builder>(1)
                    .expect("score builder")
                    .append_value(score);
                entries.append(true);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::{colour_model, images, invoke, solid, texts};
    use datafusion::arrow::array::{Array, Float32Array, ListArray, StringArray, StructArray};

    #[test]
    fn every_label_with_its_probability_highest_first() {
        let green = solid([10, 200, 10]);
        let out = invoke(
            &CnnScores::default(),
            vec![texts(&colour_model(), 1), images(&[Some(&green)])],
        )
        .unwrap();
        let list = out.as_any().downcast_ref::<ListArray>().unwrap().value(0);
        let entries = list.as_any().downcast_ref::<StructArray>().unwrap();
        let labels = entries.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let scores = entries.column(1).as_any().downcast_ref::<Float32Array>().unwrap();
        // No labels in the model: the class indices; green is class 1.
        assert_eq!(labels.value(0), "1");
        assert!(scores.value(0) > scores.value(1) && scores.value(1) >= scores.value(2));
        let total: f32 = scores.values().iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "softmaxed logits sum to {total}");
    }
}
