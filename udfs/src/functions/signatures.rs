//! The argument layer (`rookery_image::args`) as the planner sees it through
//! real functions: coercion, signatures and the arrays functions receive.

use std::sync::Arc;

use crate::functions::test_util::coerced_types;
use crate::functions::{Crop, ImageDecode, ImageEncode};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::logical_expr::ScalarUDFImpl;
use datafusion::logical_expr::{ColumnarValue, TypeSignature, Volatility};
use rookery_image::args::*;
use rookery_image::{image_type, is_image_type};

fn old_image_type(data: DataType) -> DataType {
    let fields: Vec<Field> = rookery_image::image_value::image_fields()
        .iter()
        .map(|f| match f.name().as_str() {
            rookery_image::image_value::DATA => Field::new(f.name(), data.clone(), false),
            _ => f.as_ref().clone(),
        })
        .collect();
    DataType::Struct(Fields::from(fields))
}

#[test]
fn images_of_any_binary_data_pass_unchanged_and_integers_widen() {
    let crop = Crop::default();
    for image in [
        image_type(),
        old_image_type(DataType::LargeBinary),
        old_image_type(DataType::Binary),
    ] {
        let types = [
            image.clone(),
            DataType::UInt32,
            DataType::Int8,
            DataType::Int64,
            DataType::Null,
        ];
        let coerced = coerced_types(&crop, &types).unwrap();
        assert_eq!(coerced[0], image);
        assert!(coerced[1..].iter().all(|t| t == &DataType::Int64), "{coerced:?}");
    }
    // A hand-built image (fields nullable in its type) passes as it is.
    let hand_built = DataType::Struct(Fields::from(
        rookery_image::image_value::image_fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let types = [
        hand_built.clone(),
        DataType::Int64,
        DataType::Int64,
        DataType::Int64,
        DataType::Int64,
    ];
    assert_eq!(coerced_types(&crop, &types).unwrap()[0], hand_built);
    // A NULL image is an image.
    let nulls = coerced_types(
        &crop,
        &[
            DataType::Null,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
        ],
    );
    assert!(is_image_type(&nulls.unwrap()[0]));
}

#[test]
fn wrong_kinds_and_counts_are_planning_errors() {
    let crop = Crop::default();
    let err = coerced_types(
        &crop,
        &[
            image_type(),
            DataType::Utf8,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
        ],
    )
    .unwrap_err();
    assert!(err.to_string().contains("crop"), "{err}");
    let err = coerced_types(&crop, &vec![DataType::Utf8; 5]).unwrap_err();
    assert!(err.to_string().contains("image"), "{err}");
    let err = coerced_types(&crop, &[image_type()]).unwrap_err();
    assert!(err.to_string().contains("crop"), "{err}");
}

#[test]
fn optional_arguments_and_text_and_bytes() {
    let encode = ImageEncode::default();
    assert_eq!(
        coerced_types(&encode, &[image_type(), DataType::Utf8View]).unwrap()[1],
        DataType::Utf8View
    );
    assert_eq!(
        coerced_types(&encode, &[image_type(), DataType::Utf8, DataType::UInt8]).unwrap()[2],
        DataType::Int64
    );
    assert!(coerced_types(
        &encode,
        &[image_type(), DataType::Utf8, DataType::Int64, DataType::Int64]
    )
    .is_err());
    let decode = ImageDecode::default();
    for bytes in [
        DataType::Binary,
        DataType::BinaryView,
        DataType::LargeBinary,
        DataType::FixedSizeBinary(4),
    ] {
        assert!(coerced_types(&decode, std::slice::from_ref(&bytes)).is_ok(), "{bytes}");
    }
    assert!(coerced_types(&decode, &[DataType::Int64]).is_err());
}

#[test]
fn signatures_are_declarative_except_for_dots() {
    let declared = signature(
        &[ArgKind::Image, ArgKind::Integer],
        &[ArgKind::Text],
        Volatility::Immutable,
    );
    assert!(matches!(declared.type_signature, TypeSignature::OneOf(ref v) if v.len() == 2));
    assert!(matches!(
        signature(&[ArgKind::Image], &[], Volatility::Immutable).type_signature,
        TypeSignature::Coercible(_)
    ));
    assert_eq!(
        signature(&[ArgKind::Image, ArgKind::Dots], &[], Volatility::Immutable).type_signature,
        TypeSignature::UserDefined
    );
    assert_eq!(Crop::default().signature().volatility, Volatility::Immutable);
}

#[test]
fn text_and_bytes_arrive_as_utf8_and_binary_view() {
    use datafusion::arrow::array::{LargeBinaryArray, StringViewArray};
    let args = [
        ColumnarValue::Array(Arc::new(StringViewArray::from(vec!["a"]))),
        ColumnarValue::Array(Arc::new(LargeBinaryArray::from(vec![&b"x"[..]]))),
    ];
    let arrays = arg_arrays(&args, 1).unwrap();
    assert_eq!(text_arg("f", &arrays, 0).unwrap().value(0), "a");
    assert_eq!(binary_arg("f", &arrays, 1).unwrap().value(0), b"x");
}
