//! `cnn_embed(model, image [, output [, options]])`: the features an ONNX
//! model computes for an image, for transfer learning.

use std::sync::Arc;

use datafusion::arrow::array::{Float32Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::functions::model_rows::embed_rows;
use crate::functions::model_rows::Models;
use rookery_image::args::{signature, ArgKind};

/// `List<Float32>`.
pub fn features_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Runs an ONNX image model on each image and returns one of its tensors, flattened, as a list of floats: image features for transfer learning (as sparkdl's DeepImageFeaturizer). By default the tensor is the input of the model's last dense layer (Gemm or MatMul): for a model cnn_train wrote, the 512 values after the second dense layer. Any tensor of the graph can be named, inner ones included. Images are fitted to the model's input as in cnn_classify.",
    syntax_example = "cnn_embed(model, image [, output [, options]])",
    sql_example = r#"```sql
> SELECT cardinality(cnn_embed('out/frames/model.onnx', image)) AS features
  FROM images('data/frames/frames/0000.jpg');
+----------+
| features |
+----------+
| 512      |
+----------+
```"#,
    argument(name = "model", description = "Path of an .onnx file."),
    argument(name = "image", description = "An image value."),
    argument(
        name = "output",
        description = "Optional name of the tensor to return; NULL or '' for the input of the last dense layer."
    ),
    argument(
        name = "options",
        description = "Optional text 'key=value, ...'; the options are listed under Options."
    ),
    related_udf(name = "linear_train"),
    related_udf(name = "cnn_classify")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CnnEmbed {
    signature: Signature,
    models: Models,
}

impl Default for CnnEmbed {
    fn default() -> Self {
        Self::new(Models::default())
    }
}

impl CnnEmbed {
    /// The function reading models at URLs from `models`.
    pub fn new(models: Models) -> Self {
        Self {
            signature: signature(
                &[ArgKind::Text, ArgKind::Image],
                &[ArgKind::Text, ArgKind::Text],
                Volatility::Stable,
            ),
            models,
        }
    }
}

impl ScalarUDFImpl for CnnEmbed {
    fn name(&self) -> &str {
        "cnn_embed"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(features_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = embed_rows(self.name(), &self.models, &args)?;
        let values: usize = rows.iter().flatten().map(|(_, v)| v.len()).sum();
        let mut out = ListBuilder::with_capacity(Float32Builder::with_capacity(values), rows.len());
        for row in rows {
            match row {
                Some((_, features)) => {
                    out.values().append_slice(&features);
                    out.append(true);
                }
                None => out.append(false),
            }
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
    use crate::functions::test_util::{images, invoke, solid, texts};
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float32Type;
    use rookery_models::model::SeedCnn;
    use rookery_models::onnx::write_model;

    fn seed_model(dir: &std::path::Path) -> String {
        let model = SeedCnn::new((24, 24, 3), 2, 1).unwrap();
        let path = dir.join("seed.onnx");
        write_model(&model, &["a".into(), "b".into()], &path).unwrap();
        path.display().to_string()
    }

    #[test]
    fn gives_the_last_dense_layers_input_or_a_named_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let model = seed_model(dir.path());
        let (red, blue) = (solid([200, 10, 10]), solid([10, 10, 200]));
        let out = invoke(
            &CnnEmbed::default(),
            vec![texts(&model, 3), images(&[Some(&red), None, Some(&blue)])],
        )
        .unwrap();
        let list = out.as_list::<i32>();
        assert!(list.is_null(1));
        let first = list.value(0);
        let first = first.as_primitive::<Float32Type>();
        assert_eq!(first.len(), 512);
        assert!(first.values().iter().all(|v| *v >= 0.0), "after a ReLU");
        assert_ne!(&list.value(0), &list.value(2));

        let named = invoke(
            &CnnEmbed::default(),
            vec![texts(&model, 1), images(&[Some(&red)]), texts("pool2", 1)],
        )
        .unwrap();
        // 24 -> 11 -> 4 -> 1 after three conv/pool blocks, 128 filters.
        assert_eq!(named.as_list::<i32>().value(0).len(), 128);
    }

    #[test]
    fn names_an_unknown_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let model = seed_model(dir.path());
        let red = solid([200, 10, 10]);
        let err = invoke(
            &CnnEmbed::default(),
            vec![texts(&model, 1), images(&[Some(&red)]), texts("nope", 1)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cnn_embed: model") && err.contains("no tensor named 'nope'"),
            "{err}"
        );
        assert!(err.contains("dense1_relu"), "{err}");
    }
}
