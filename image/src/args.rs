//! Argument checking and typed access shared by the image functions.
//!
//! Each function declares what its arguments are ([`ArgKind`]); wrong
//! types fail at planning time with the function's name and syntax, and
//! NULL literals are accepted everywhere (they give NULL results).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryViewArray, Float64Array, Int64Array, ListArray, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::types::{logical_binary, logical_float64, logical_int64, logical_string, NativeType};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result};
use datafusion::logical_expr::{Coercion, ColumnarValue, Signature, TypeSignature, TypeSignatureClass, Volatility};

use crate::image_value::{hand_built_image_logical_type, image_logical_type, image_type, is_image_type, ImageArray};

/// What an argument must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// An image value.
    Image,
    /// Any integer; passed on as Int64.
    Integer,
    /// Any number; passed on as Float64.
    Float,
    /// Text; passed on as Utf8.
    Text,
    /// Bytes; passed on as BinaryView (a view array is not copied).
    Binary,
    /// A list of dots `{x, y, class}`, as `blob_dots` returns.
    Dots,
    /// A list of numbers (features, as `cnn_embed` returns); passed on as
    /// `List<Float32>`.
    Floats,
    /// A training target: text (a class), or a struct of numbers (the
    /// counts a count model learns, named by its fields), passed on as a
    /// struct of Float64.
    Label,
}

impl ArgKind {
    fn describe(&self) -> &'static str {
        match self {
            Self::Image => "an image",
            Self::Integer => "an integer",
            Self::Float => "a number",
            Self::Text => "text",
            Self::Binary => "binary",
            Self::Dots => "a list of dots {x, y, class}",
            Self::Floats => "a list of numbers",
            Self::Label => "text (a class) or a struct of numbers (counts)",
        }
    }

    fn coerce(&self, data_type: &DataType) -> Option<DataType> {
        let null = data_type == &DataType::Null;
        match self {
            // Any image struct as it is (casting a struct cannot change
            // its fields' nullability); NULL as the image type.
            Self::Image if is_image_type(data_type) => Some(data_type.clone()),
            Self::Image => null.then(image_type),
            Self::Integer => (null || data_type.is_integer()).then_some(DataType::Int64),
            Self::Float => (null || data_type.is_numeric()).then_some(DataType::Float64),
            Self::Text => (null || matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
                .then_some(DataType::Utf8),
            Self::Binary => (null
                || matches!(
                    data_type,
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_)
                ))
            .then_some(DataType::BinaryView),
            Self::Dots => {
                if null {
                    Some(dots_type())
                } else {
                    dots_coercion(data_type)
                }
            }
            Self::Floats => {
                let floats = DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)));
                match data_type {
                    DataType::Null => Some(floats),
                    DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _)
                        if item.data_type().is_numeric() || item.data_type() == &DataType::Null =>
                    {
                        Some(floats)
                    }
                    _ => None,
                }
            }
            Self::Label => match data_type {
                DataType::Struct(fields) if !fields.is_empty() && fields.iter().all(|f| f.data_type().is_numeric()) => {
                    let floats = fields
                        .iter()
                        .map(|f| Field::new(f.name(), DataType::Float64, true))
                        .collect::<Vec<_>>();
                    Some(DataType::Struct(floats.into()))
                }
                other => Self::Text.coerce(other),
            },
        }
    }

    /// How DataFusion's planner checks and casts an argument of this kind;
    /// `None` where a signature cannot say it (a list of dots with any
    /// integer widths).
    fn coercion(&self) -> Option<Coercion> {
        use TypeSignatureClass as Class;
        Some(match self {
            // Images pass as they are: the hand-built kind's cast keeps
            // the value's own types.
            Self::Image => Coercion::new_implicit(
                Class::Native(image_logical_type()),
                vec![Class::Native(hand_built_image_logical_type())],
                hand_built_image_logical_type().native().clone(),
            ),
            Self::Integer => {
                Coercion::new_implicit(Class::Native(logical_int64()), vec![Class::Integer], NativeType::Int64)
            }
            Self::Float => Coercion::new_implicit(
                Class::Native(logical_float64()),
                vec![Class::Numeric],
                NativeType::Float64,
            ),
            Self::Text => Coercion::new_exact(Class::Native(logical_string())),
            Self::Binary => {
                Coercion::new_implicit(Class::Native(logical_binary()), vec![Class::Binary], NativeType::Binary)
            }
            Self::Dots | Self::Floats | Self::Label => return None,
        })
    }
}

/// The signature of a function taking `required` arguments and then up to
/// `optional.len()` more. Declarative (DataFusion's planner checks and
/// casts the arguments, `information_schema.parameters` lists them) unless
/// an argument is a list of dots or of numbers: then user-defined, checked by the
/// function's `coerce_types` with [`coerce_args`].
pub fn signature(required: &[ArgKind], optional: &[ArgKind], volatility: Volatility) -> Signature {
    let all: Option<Vec<Coercion>> = required.iter().chain(optional).map(ArgKind::coercion).collect();
    let Some(all) = all else {
        return Signature::user_defined(volatility);
    };
    if optional.is_empty() {
        return Signature::coercible(all, volatility);
    }
    let arities = (required.len()..=all.len())
        .map(|n| TypeSignature::Coercible(all[..n].to_vec()))
        .collect();
    Signature::one_of(arities, volatility)
}

/// Checks argument types for `coerce_types`: `required` kinds first, then
/// up to `optional.len()` more.
pub fn coerce_args(
    name: &str,
    syntax: &str,
    arg_types: &[DataType],
    required: &[ArgKind],
    optional: &[ArgKind],
) -> Result<Vec<DataType>> {
    let max = required.len() + optional.len();
    if arg_types.len() < required.len() || arg_types.len() > max {
        let count = if optional.is_empty() {
            format!("{}", required.len())
        } else {
            format!("{} to {max}", required.len())
        };
        return plan_err!("{name} takes {count} arguments, got {}: {syntax}", arg_types.len());
    }
    required
        .iter()
        .chain(optional)
        .zip(arg_types)
        .enumerate()
        .map(|(i, (kind, data_type))| {
            kind.coerce(data_type).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "{name}: argument {} must be {}, not {data_type}: {syntax}",
                    i + 1,
                    kind.describe()
                ))
            })
        })
        .collect()
}

/// The arguments of one call as arrays of `number_rows` rows, text as
/// Utf8 and bytes as BinaryView whatever the planner kept (a signature
/// accepts every string and binary type as it is).
pub fn arg_arrays(args: &[ColumnarValue], number_rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| normalized(a.to_array(number_rows)?)).collect()
}

/// `array` with text as Utf8 and bytes as BinaryView; others unchanged.
pub fn normalized(array: ArrayRef) -> Result<ArrayRef> {
    let normal = match array.data_type() {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) => DataType::BinaryView,
        _ => return Ok(array),
    };
    Ok(datafusion::arrow::compute::cast(&array, &normal)?)
}

fn downcast<'a, T: 'static>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<&'a T> {
    let Some(array) = arrays.get(i) else {
        return exec_err!("{name}: missing argument {}", i + 1);
    };
    match array.as_any().downcast_ref::<T>() {
        Some(a) => Ok(a),
        None => exec_err!("{name}: argument {} has type {}", i + 1, array.data_type()),
    }
}

pub fn image_arg<'a>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<ImageArray<'a>> {
    let Some(array) = arrays.get(i) else {
        return exec_err!("{name}: missing argument {}", i + 1);
    };
    if array.data_type() == &DataType::Null {
        return exec_err!("{name}: argument {} is an untyped NULL", i + 1);
    }
    ImageArray::try_new(array.as_ref()).map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))
}

pub fn int_arg<'a>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<&'a Int64Array> {
    downcast(name, arrays, i)
}

pub fn float_arg<'a>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<&'a Float64Array> {
    downcast(name, arrays, i)
}

pub fn text_arg<'a>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<&'a StringArray> {
    downcast(name, arrays, i)
}

/// Optional text argument `i`: `None` when the call has fewer arguments.
pub fn optional_text_arg<'a>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<Option<&'a StringArray>> {
    match arrays.get(i) {
        Some(_) => Ok(Some(text_arg(name, arrays, i)?)),
        None => Ok(None),
    }
}

pub fn binary_arg<'a>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<&'a BinaryViewArray> {
    downcast(name, arrays, i)
}

pub fn list_arg<'a>(name: &str, arrays: &'a [ArrayRef], i: usize) -> Result<&'a ListArray> {
    downcast(name, arrays, i)
}

/// The bytes of row `row` of any binary array (Binary, LargeBinary,
/// BinaryView, FixedSizeBinary); `None` when NULL or not binary.
pub fn binary_value(array: &dyn Array, row: usize) -> Option<&[u8]> {
    use datafusion::arrow::array::AsArray;
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Binary => Some(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Some(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => Some(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => Some(array.as_fixed_size_binary().value(row)),
        _ => None,
    }
}

/// An optional argument: its array when given.
pub fn optional(arrays: &[ArrayRef], i: usize) -> Option<&ArrayRef> {
    arrays.get(i)
}

/// Value of row `row` of a Float64 array, `None` when NULL.
pub fn float_at(array: &Float64Array, row: usize) -> Option<f64> {
    array.is_valid(row).then(|| array.value(row))
}

/// Value of row `row` of an Int64 array, `None` when NULL.
pub fn int_at(array: &Int64Array, row: usize) -> Option<i64> {
    array.is_valid(row).then(|| array.value(row))
}

/// The fields of a dot: `{x: UInt32, y: UInt32, class: Utf8}` (class NULL
/// when the colour fits no class).
pub fn dot_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::UInt32, false),
        Field::new("y", DataType::UInt32, false),
        Field::new("class", DataType::Utf8, true),
    ])
}

/// The dots type a list of `{x, y, class}` structs with integer positions
/// and a text class is cast to (a literal built with `named_struct`, say):
/// `UInt32` positions and a `Utf8` class, keeping the fields' nullability,
/// which a cast cannot change.
fn dots_coercion(data_type: &DataType) -> Option<DataType> {
    let (DataType::List(item) | DataType::LargeList(item)) = data_type else {
        return None;
    };
    let DataType::Struct(fields) = item.data_type() else {
        return None;
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let is_text = matches!(
        fields.get(2).map(|f| f.data_type()),
        Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null)
    );
    if names != ["x", "y", "class"]
        || !fields[0].data_type().is_integer()
        || !fields[1].data_type().is_integer()
        || !is_text
    {
        return None;
    }
    let target = Fields::from(vec![
        Field::new("x", DataType::UInt32, fields[0].is_nullable()),
        Field::new("y", DataType::UInt32, fields[1].is_nullable()),
        Field::new("class", DataType::Utf8, fields[2].is_nullable()),
    ]);
    Some(DataType::List(Arc::new(Field::new(
        item.name(),
        DataType::Struct(target),
        item.is_nullable(),
    ))))
}

/// `list<{x, y, class}>`, what `blob_dots` returns and `draw_dots` takes.
pub fn dots_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(dot_fields()), true)))
}

/// A tile: `{x: UInt32, y: UInt32, tile: image}`, its top-left corner in the
/// source image and its pixels.
pub fn tile_fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::UInt32, false),
        Field::new("y", DataType::UInt32, false),
        Field::new("tile", image_type(), false),
    ])
}

/// `list<{x, y, tile}>`, what `tile64` and `tiles` return.
pub fn tiles_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(tile_fields()), true)))
}

/// One dot as read from Arrow: `(x, y, class)`.
pub type DotRow = (u32, u32, Option<String>);

/// Reads the dots of list row `row`.
pub fn dots_at(list: &ListArray, row: usize) -> Result<Option<Vec<DotRow>>> {
    if list.is_null(row) {
        return Ok(None);
    }
    let values = list.value(row);
    let Some(dots) = values.as_any().downcast_ref::<StructArray>() else {
        return exec_err!("expected a list of dots, found {}", values.data_type());
    };
    let column = |name: &str| dots.column_by_name(name).cloned();
    let (Some(xs), Some(ys), Some(classes)) = (column("x"), column("y"), column("class")) else {
        return exec_err!("dots need fields x, y and class");
    };
    let xs = xs.as_any().downcast_ref::<datafusion::arrow::array::UInt32Array>();
    let ys = ys.as_any().downcast_ref::<datafusion::arrow::array::UInt32Array>();
    let classes = classes.as_any().downcast_ref::<StringArray>();
    let (Some(xs), Some(ys), Some(classes)) = (xs, ys, classes) else {
        return exec_err!("dots must be {{x: UInt32, y: UInt32, class: Utf8}}");
    };
    Ok(Some(
        (0..dots.len())
            .filter(|&i| dots.is_valid(i) && xs.is_valid(i) && ys.is_valid(i))
            .map(|i| {
                (
                    xs.value(i),
                    ys.value(i),
                    classes.is_valid(i).then(|| classes.value(i).to_string()),
                )
            })
            .collect(),
    ))
}
