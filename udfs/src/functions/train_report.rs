//! What the training aggregates (`cnn_train`, `linear_train`) return: a
//! struct with the model's path and the run's figures.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, ScalarValue};
use rookery_models::train::TrainReport;

/// The struct `cnn_train` and `linear_train` return.
pub(crate) fn result_fields() -> Fields {
    Fields::from(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("classes", DataType::new_list(DataType::Utf8, true), false),
        Field::new("train_accuracy", DataType::Float64, true),
        Field::new("validation_accuracy", DataType::Float64, true),
        Field::new("validation_loss", DataType::Float64, true),
        Field::new("epochs", DataType::Int64, false),
        Field::new("seconds", DataType::Float64, false),
        Field::new("train_rows", DataType::Int64, false),
        Field::new("validation_rows", DataType::Int64, false),
        Field::new("kept_epoch", DataType::Int64, false),
    ])
}

/// A training report as the struct of [`result_fields`].
pub(crate) fn report_value(model: &str, report: &TrainReport) -> Result<ScalarValue> {
    let classes: Vec<ScalarValue> = report
        .classes
        .iter()
        .map(|c| ScalarValue::Utf8(Some(c.clone())))
        .collect();
    let values: Vec<ArrayRef> = vec![
        ScalarValue::Utf8(Some(model.to_string())).to_array()?,
        ScalarValue::List(ScalarValue::new_list_nullable(&classes, &DataType::Utf8)).to_array()?,
        ScalarValue::Float64(report.train_accuracy).to_array()?,
        ScalarValue::Float64(report.validation_accuracy).to_array()?,
        ScalarValue::Float64(report.validation_loss).to_array()?,
        ScalarValue::Int64(Some(report.epochs as i64)).to_array()?,
        ScalarValue::Float64(Some(report.seconds)).to_array()?,
        ScalarValue::Int64(Some(report.train_rows as i64)).to_array()?,
        ScalarValue::Int64(Some(report.validation_rows as i64)).to_array()?,
        ScalarValue::Int64(Some(report.kept_epoch as i64)).to_array()?,
    ];
    let array = datafusion::arrow::array::StructArray::try_new(result_fields(), values, None)?;
    Ok(ScalarValue::Struct(Arc::new(array)))
}
