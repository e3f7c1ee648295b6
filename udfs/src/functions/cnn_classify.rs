//! `cnn_classify(model, image [, options])`: the label an ONNX image
//! classifier gives each image.

use std::sync::Arc;

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::functions::model_rows::classify_rows;
use crate::functions::model_rows::Models;
use rookery_image::args::{signature, ArgKind};
use rookery_models::runtime::best;

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Runs an ONNX image classifier on each image and returns the label with the highest score. Any single-input classifier works: its input size and layout (NHWC or NCHW) are read from the model, images of another size are resized to it (bilinear) and made RGB or grey to match its channels, and pixel values are scaled to the model's input_range metadata or the range option (default 0..1). Labels come from the model's labels metadata (Rookery's cnn_train writes it), the labels option, or are the class indices. Each Arrow batch is one ONNX Runtime call; sessions are cached per model file and reloaded when it changes.",
    syntax_example = "cnn_classify(model, image [, options])",
    sql_example = r#"```sql
> SELECT name, cnn_classify('tests/fixtures/colour_classifier.onnx', image, 'labels=red|green|blue') AS colour
  FROM images('data/sealions/Test/') ORDER BY name LIMIT 2;
+------+--------+
| name | colour |
+------+--------+
| 0    | green  |
| 1    | green  |
+------+--------+
```"#,
    argument(name = "model", description = "Path of an .onnx file."),
    argument(name = "image", description = "An image value."),
    argument(
        name = "options",
        description = "Optional text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "cnn_scores"),
    related_udf(name = "cnn_train")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnClassify {
    signature: Signature,
    models: Models,
}

impl Default for CnnClassify {
    fn default() -> Self {
        Self::new(Models::default())
    }
}

impl CnnClassify {
    /// The function reading models at URLs from `models`.
    pub fn new(models: Models) -> Self {
        Self {
            signature: signature(&[ArgKind::Text, ArgKind::Image], &[ArgKind::Text], Volatility::Stable),
            models,
        }
    }
}

impl ScalarUDFImpl for CnnClassify {
    fn name(&self) -> &str {
        "cnn_classify"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = classify_rows(self.name(), &self.models, &args)?;
        let mut out = StringBuilder::with_capacity(rows.len(), rows.len() * 12);
        for row in rows {
            out.append_option(row.map(|(classifier, scores)| classifier.label(best(&scores))));
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
    use datafusion::arrow::array::{Array, StringArray};

    #[test]
    fn labels_each_image_and_passes_nulls() {
        let (red, blue) = (solid([200, 10, 10]), solid([10, 10, 200]));
        let out = invoke(
            &CnnClassify::default(),
            vec![
                texts(&colour_model(), 3),
                images(&[Some(&red), None, Some(&blue)]),
                texts("labels=r|g|b", 3),
            ],
        )
        .unwrap();
        let out = out.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((out.value(0), out.is_null(1), out.value(2)), ("r", true, "b"));
    }

    #[test]
    fn names_a_missing_model() {
        let red = solid([200, 10, 10]);
        let err = invoke(
            &CnnClassify::default(),
            vec![texts("no/such.onnx", 1), images(&[Some(&red)])],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cnn_classify: model file no/such.onnx does not exist"),
            "{err}"
        );
    }
}
