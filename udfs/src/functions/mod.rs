//! The SQL image functions, one per module, named after the function.

/// `new(memory)` and `Default` (a pool without limit, for tests) for an
/// image function's struct of fields `signature` and `memory`.
/// The signature is [`rookery_image::args::signature`] of the required and
/// optional argument kinds given (`[Image, Integer], [Text]`): immutable,
/// declarative wherever DataFusion can say it.
macro_rules! memory_constructors {
    ($ty:ident, [$($required:ident),*], [$($optional:ident),*]) => {
        impl $ty {
            pub fn new(memory: ::rookery_image::memory::ImageMemory) -> Self {
                Self {
                    signature: ::rookery_image::args::signature(
                        &[$(::rookery_image::args::ArgKind::$required),*],
                        &[$(::rookery_image::args::ArgKind::$optional),*],
                        ::datafusion::logical_expr::Volatility::Immutable,
                    ),
                    memory,
                }
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new(::rookery_image::memory::ImageMemory::default())
            }
        }
    };
}

/// Implements `ScalarUDFImpl` (with `new(memory)` and `Default`) for an
/// image function whose first argument is an image and whose other
/// arguments are of the kinds given (as [`memory_constructors`]), returning
/// `$return_type`, computed per batch by `$compute`, a `fn(&str, &[ArrayRef],
/// &ImageArray, &mut PixelReservation) -> Result<ArrayRef>` given the
/// function's name, all its arguments as arrays (text as Utf8, see
/// `args::arg_arrays`), the images of the first and a reservation in the
/// session's pool. The function's struct, with its `#[user_doc]` and fields
/// `signature` and `memory`, stays in its own file.
macro_rules! image_function {
    ($ty:ident, $name:literal, [$($required:ident),*], [$($optional:ident),*], $return_type:expr, $compute:expr) => {
        memory_constructors!($ty, [$($required),*], [$($optional),*]);

        impl ::datafusion::logical_expr::ScalarUDFImpl for $ty {
            fn name(&self) -> &str {
                $name
            }

            fn signature(&self) -> &::datafusion::logical_expr::Signature {
                &self.signature
            }

            fn return_type(
                &self,
                _arg_types: &[::datafusion::arrow::datatypes::DataType],
            ) -> ::datafusion::common::Result<::datafusion::arrow::datatypes::DataType> {
                Ok($return_type)
            }

            fn invoke_with_args(
                &self,
                args: ::datafusion::logical_expr::ScalarFunctionArgs,
            ) -> ::datafusion::common::Result<::datafusion::logical_expr::ColumnarValue> {
                let compute: fn(
                    &str,
                    &[::datafusion::arrow::array::ArrayRef],
                    &::rookery_image::image_value::ImageArray<'_>,
                    &mut ::rookery_image::memory::PixelReservation,
                ) -> ::datafusion::common::Result<::datafusion::arrow::array::ArrayRef> = $compute;
                let mut reservation = $crate::functions::reserve(&self.memory, $name, &args);
                let arrays = ::rookery_image::args::arg_arrays(&args.args, args.number_rows)?;
                let images = ::rookery_image::args::image_arg($name, &arrays, 0)?;
                Ok(::datafusion::logical_expr::ColumnarValue::Array(compute(
                    $name,
                    &arrays,
                    &images,
                    &mut reservation,
                )?))
            }

            fn documentation(&self) -> Option<&::datafusion::logical_expr::Documentation> {
                self.doc()
            }
        }
    };
}

/// [`image_function`] for a function of one image alone: `$compute` is a
/// `fn(&str, &ImageArray, &mut PixelReservation) -> Result<ArrayRef>`.
macro_rules! single_image_function {
    ($ty:ident, $name:literal, $return_type:expr, $compute:expr) => {
        image_function!(
            $ty,
            $name,
            [Image],
            [],
            $return_type,
            |name, _, images, reservation| {
                let compute: fn(
                    &str,
                    &::rookery_image::image_value::ImageArray<'_>,
                    &mut ::rookery_image::memory::PixelReservation,
                ) -> ::datafusion::common::Result<::datafusion::arrow::array::ArrayRef> = $compute;
                compute(name, images, reservation)
            }
        );
    };
}

/// A function of one image returning the image `$op(ImageView) -> Image`,
/// whose size (width, height, channels) is `$shape(&ImageView)`.
macro_rules! image_to_image_function {
    ($ty:ident, $name:literal, $op:path, $shape:expr) => {
        single_image_function!(
            $ty,
            $name,
            ::rookery_image::image_value::image_type(),
            |name, images, reservation| {
                let shape: fn(&::rookery_image::image_value::ImageView<'_>) -> (u64, u64, u64) = $shape;
                $crate::functions::map_images(name, images, reservation, |_, view, reservation| {
                    let (w, h, c) = shape(&view);
                    reservation.image(w, h, c)?;
                    Ok(Some($op(view)))
                })
            }
        );
    };
}

/// A function of one image returning its `UInt32` field `$field`.
macro_rules! image_field_function {
    ($ty:ident, $name:literal, $field:ident) => {
        single_image_function!(
            $ty,
            $name,
            ::datafusion::arrow::datatypes::DataType::UInt32,
            |name, images, _| {
                let mut out = ::datafusion::arrow::array::UInt32Builder::with_capacity(images.len());
                for row in 0..images.len() {
                    out.append_option($crate::functions::named(name, images.get(row))?.map(|i| i.$field));
                }
                Ok(::std::sync::Arc::new(out.finish()))
            }
        );
    };
}

/// The size of an image, as `(width, height, channels)`.
pub(crate) fn same_shape(view: &ImageView<'_>) -> (u64, u64, u64) {
    (view.width as u64, view.height as u64, view.channels as u64)
}

mod blob_dots;
mod cnn_classify;
mod cnn_density;
mod cnn_embed;
mod cnn_heatmap;
mod cnn_quantize;
mod cnn_scores;
mod cnn_train;
mod crop;
mod dense_scoring;
mod draw_dots;
mod image_adjust;
mod image_decode;
mod image_encode;
mod image_flip_h;
mod image_flip_v;
mod image_grey;
mod image_grid;
mod image_height;
mod image_noise;
mod image_offset;
mod image_resize;
mod image_rotate;
mod image_rotate90;
mod image_scale;
mod image_width;
mod linear_train;
pub mod model_rows;
mod random_crop;
mod seeded_random;
mod sizes;
mod thumbnail;
mod tile64;
mod tiles;
mod train_report;

pub use blob_dots::BlobDots;
pub use cnn_classify::CnnClassify;
pub use cnn_density::{density_type, CnnDensity, DensityOptions};
pub use cnn_embed::{features_type, CnnEmbed};
pub use cnn_heatmap::{heatmap_type, CnnHeatmap, HeatmapOptions};
pub use cnn_quantize::{CnnQuantize, QuantizeOptions};
pub use cnn_scores::{scores_type, CnnScores};
pub use cnn_train::CnnTrain;
pub use crop::Crop;
pub use draw_dots::DrawDots;
pub use image_adjust::ImageAdjust;
pub use image_decode::ImageDecode;
pub use image_encode::ImageEncode;
pub use image_flip_h::ImageFlipH;
pub use image_flip_v::ImageFlipV;
pub use image_grey::ImageGrey;
pub use image_grid::ImageGrid;
pub use image_height::ImageHeight;
pub use image_noise::ImageNoise;
pub use image_offset::ImageOffset;
pub use image_resize::ImageResize;
pub use image_rotate::ImageRotate;
pub use image_rotate90::ImageRotate90;
pub use image_scale::ImageScale;
pub use image_width::ImageWidth;
pub use linear_train::LinearTrain;
pub use random_crop::RandomCrop;
pub use seeded_random::SeededRandom;
pub use thumbnail::Thumbnail;
pub use tile64::Tile64;
pub use tiles::Tiles;

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{DataFusionError, Result};

use datafusion::logical_expr::ScalarFunctionArgs;

use rookery_image::image_value::{Image, ImageArray, ImageArrayBuilder, ImageView};
use rookery_image::memory::{max_pixels, ImageMemory, PixelReservation};

/// A reservation for one call of function `name`, with the session's
/// `rookery.max_pixels`.
pub(crate) fn reserve(memory: &ImageMemory, name: &str, args: &ScalarFunctionArgs) -> PixelReservation {
    memory.reserve(name, max_pixels(&args.config_options))
}

/// Applies `f` to every non-NULL image; NULL images (and rows where `f`
/// returns `None`) give NULL. `f` reserves what it allocates in
/// `reservation` first. Errors name the function.
pub(crate) fn map_images(
    name: &str,
    images: &ImageArray<'_>,
    reservation: &mut PixelReservation,
    mut f: impl FnMut(usize, ImageView<'_>, &mut PixelReservation) -> Result<Option<Image>>,
) -> Result<ArrayRef> {
    let mut builder = ImageArrayBuilder::with_capacity(images.len());
    for row in 0..images.len() {
        let image = images
            .get(row)
            .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?;
        let out = match image {
            Some(view) => f(row, view, reservation)?,
            None => None,
        };
        named(name, builder.append_owned_option(out))?;
    }
    Ok(Arc::new(builder.finish()))
}

/// Turns a pixel-code error into an execution error naming the function.
pub(crate) fn named<T>(name: &str, result: rookery_image::error::Result<T>) -> Result<T> {
    result.map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::sync::Arc;

    use datafusion::arrow::array::ArrayRef;
    use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
    use datafusion::common::config::ConfigOptions;
    use datafusion::common::Result;
    use datafusion::logical_expr::type_coercion::functions::{fields_with_udf, UDFCoercionExt};
    use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature};

    use rookery_image::image_value::{Image, ImageArrayBuilder};

    /// A function's impl as DataFusion's planner sees it for coercion.
    struct Planned<'a>(&'a dyn ScalarUDFImpl);

    impl UDFCoercionExt for Planned<'_> {
        fn name(&self) -> &str {
            self.0.name()
        }

        fn signature(&self) -> &Signature {
            self.0.signature()
        }

        fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
            self.0.coerce_types(arg_types)
        }
    }

    /// The argument types DataFusion's planner casts `types` to for `udf`
    /// (its signature, or its `coerce_types` when user-defined), or the
    /// planning error a query would get.
    pub fn coerced_types(udf: &dyn ScalarUDFImpl, types: &[DataType]) -> Result<Vec<DataType>> {
        let fields: Vec<FieldRef> = types
            .iter()
            .map(|t| Arc::new(Field::new("a", t.clone(), true)))
            .collect();
        Ok(fields_with_udf(&fields, &Planned(udf))?
            .iter()
            .map(|f| f.data_type().clone())
            .collect())
    }

    /// Calls a function on arrays, after the planner's type coercion.
    pub fn invoke(udf: &dyn ScalarUDFImpl, args: Vec<ArrayRef>) -> Result<ArrayRef> {
        invoke_with_config(udf, args, Arc::new(ConfigOptions::default()))
    }

    /// [`invoke`] with session settings.
    pub fn invoke_with_config(
        udf: &dyn ScalarUDFImpl,
        args: Vec<ArrayRef>,
        config_options: Arc<ConfigOptions>,
    ) -> Result<ArrayRef> {
        let types: Vec<_> = args.iter().map(|a| a.data_type().clone()).collect();
        let coerced = coerced_types(udf, &types)?;
        let args: Vec<ArrayRef> = args
            .into_iter()
            .zip(&coerced)
            .map(|(a, t)| datafusion::arrow::compute::cast(&a, t).map_err(Into::into))
            .collect::<Result<_>>()?;
        let number_rows = args.first().map_or(1, |a| a.len());
        let arg_fields = coerced
            .iter()
            .map(|t| Arc::new(Field::new("a", t.clone(), true)))
            .collect();
        let return_type = udf.return_type(&coerced)?;
        let result = udf.invoke_with_args(ScalarFunctionArgs {
            args: args.into_iter().map(ColumnarValue::Array).collect(),
            arg_fields,
            number_rows,
            return_field: Arc::new(Field::new("r", return_type, true)),
            config_options,
        })?;
        result.to_array(number_rows)
    }

    /// The committed ONNX model made outside Rookery: NCHW [N, 3, 16, 16]
    /// in 0..1, logits = 10 x each channel's mean, no labels.
    pub fn colour_model() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/colour_classifier.onnx").to_string()
    }

    /// A solid 8x8 RGB image.
    pub fn solid(rgb: [u8; 3]) -> Image {
        Image {
            width: 8,
            height: 8,
            channels: 3,
            data: rgb.repeat(64),
        }
    }

    /// A text column of `n` copies of `value`.
    pub fn texts(value: &str, n: usize) -> ArrayRef {
        Arc::new(datafusion::arrow::array::StringArray::from(vec![value; n]))
    }

    /// An image array from owned images (None for NULL).
    pub fn images(images: &[Option<&Image>]) -> ArrayRef {
        let mut builder = ImageArrayBuilder::with_capacity(images.len());
        for image in images {
            builder.append_option(image.map(Image::view)).expect("small image");
        }
        Arc::new(builder.finish())
    }

    /// A 3x2 RGB image whose pixel (x, y) is (10x, 10y, 7).
    pub fn rgb3x2() -> Image {
        let mut data = Vec::new();
        for y in 0..2u8 {
            for x in 0..3u8 {
                data.extend_from_slice(&[10 * x, 10 * y, 7]);
            }
        }
        Image::new(3, 2, 3, data).expect("valid")
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod signatures;
