//! The image value: how a decoded image lives in Arrow.
//!
//! An image value is a struct `{width: UInt32, height: UInt32, channels: UInt8,
//! data: BinaryView}`; `data` holds `height` rows of `width` pixels, each of
//! `channels` interleaved 8-bit samples, top row first:
//!
//! | channels | sample order |
//! |---|---|
//! | 1 | grey |
//! | 3 | R, G, B |
//! | 4 | R, G, B, A |
//!
//! Every image function takes and returns this value, so tiles, crops and
//! thumbnails are images too.
//!
//! `data` is a `BinaryView` so that the engine never copies pixels: a join,
//! filter, repartition, sort or UNNEST that repeats or moves a row copies its
//! 16-byte view and shares the buffer (Arrow's `take`, `filter` and `concat`
//! of view arrays clone buffer handles, not bytes). Each large image gets a
//! buffer of its own ([`ImageArrayBuilder::append_owned`]), so keeping one
//! row keeps one image alive, not its whole batch; small images (tiles,
//! thumbnails) share blocks. Structs whose `data` is `Binary` or
//! `LargeBinary` (older Parquet files, hand-built values) are read as images
//! too.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryViewBuilder, StructArray, UInt32Array, UInt32Builder, UInt8Array, UInt8Builder,
};
use datafusion::arrow::buffer::{Buffer, NullBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::types::{LogicalType, LogicalTypeRef, NativeType, TypeSignature as LogicalTypeSignature};

use crate::error::{ImageError, Result};

pub const WIDTH: &str = "width";
pub const HEIGHT: &str = "height";
pub const CHANNELS: &str = "channels";
pub const DATA: &str = "data";

/// The fields of the image struct, in order.
pub fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new(WIDTH, DataType::UInt32, false),
        Field::new(HEIGHT, DataType::UInt32, false),
        Field::new(CHANNELS, DataType::UInt8, false),
        Field::new(DATA, DataType::BinaryView, false),
    ])
}

/// The Arrow type of an image value.
pub fn image_type() -> DataType {
    DataType::Struct(image_fields())
}

/// The image value as a logical type for DataFusion's planner: any struct
/// of the image's fields (whatever binary type `data` has) matches it, and
/// signatures, `information_schema` and planning errors call it `image`.
#[derive(Debug)]
pub struct ImageLogicalType {
    native: NativeType,
}

impl LogicalType for ImageLogicalType {
    fn native(&self) -> &NativeType {
        &self.native
    }

    fn signature(&self) -> LogicalTypeSignature<'_> {
        LogicalTypeSignature::Extension {
            name: "image",
            parameters: &[],
        }
    }
}

static IMAGE_LOGICAL_TYPE: LazyLock<LogicalTypeRef> = LazyLock::new(|| {
    Arc::new(ImageLogicalType {
        native: NativeType::from(&image_type()),
    })
});

/// An image struct built by hand (`named_struct(...)`), whose fields may
/// be NULL as far as its type says.
static HAND_BUILT_IMAGE_LOGICAL_TYPE: LazyLock<LogicalTypeRef> = LazyLock::new(|| {
    let fields: Vec<Field> = image_fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(ImageLogicalType {
        native: NativeType::from(&DataType::Struct(Fields::from(fields))),
    })
});

/// The shared [`ImageLogicalType`] of the values image functions make.
pub fn image_logical_type() -> LogicalTypeRef {
    Arc::clone(&IMAGE_LOGICAL_TYPE)
}

/// The [`ImageLogicalType`] of image structs whose type lets fields be NULL
/// (hand-built values); functions take them as they are.
pub fn hand_built_image_logical_type() -> LogicalTypeRef {
    Arc::clone(&HAND_BUILT_IMAGE_LOGICAL_TYPE)
}

/// True when `data_type` is an image struct: the field names and types of
/// [`image_fields`], where `data` may also be `Binary` or `LargeBinary`.
pub fn is_image_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Struct(fields) => {
            let expected = image_fields();
            fields.len() == expected.len()
                && fields.iter().zip(expected.iter()).all(|(a, b)| {
                    a.name() == b.name()
                        && (a.data_type() == b.data_type()
                            || (a.name() == DATA && matches!(a.data_type(), DataType::Binary | DataType::LargeBinary)))
                })
        }
        _ => false,
    }
}

/// Images at least this large get an Arrow buffer of their own instead of
/// a share of the builder's blocks.
const OWN_BUFFER_BYTES: usize = 256 * 1024;

/// An owned pixel buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

/// A borrowed pixel buffer, as read from an Arrow array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageView<'a> {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: &'a [u8],
}

fn check_layout(width: u32, height: u32, channels: u8, len: usize) -> Result<()> {
    if !matches!(channels, 1 | 3 | 4) {
        return Err(ImageError::InvalidValue(format!(
            "{channels} channels (expected 1, 3 or 4)"
        )));
    }
    let expected = width as u64 * height as u64 * channels as u64;
    if expected != len as u64 {
        return Err(ImageError::InvalidValue(format!(
            "{width}x{height}x{channels} needs {expected} bytes of data, found {len}"
        )));
    }
    Ok(())
}

impl Image {
    /// A pixel buffer, checked: `data.len()` must be `width * height * channels`.
    pub fn new(width: u32, height: u32, channels: u8, data: Vec<u8>) -> Result<Self> {
        check_layout(width, height, channels, data.len())?;
        Ok(Self {
            width,
            height,
            channels,
            data,
        })
    }

    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: &self.data,
        }
    }
}

impl<'a> ImageView<'a> {
    pub fn new(width: u32, height: u32, channels: u8, data: &'a [u8]) -> Result<Self> {
        check_layout(width, height, channels, data.len())?;
        Ok(Self {
            width,
            height,
            channels,
            data,
        })
    }

    /// Number of bytes in one row.
    pub fn stride(&self) -> usize {
        self.width as usize * self.channels as usize
    }

    /// The samples of pixel (x, y); the caller keeps x and y inside the image.
    pub fn pixel(&self, x: u32, y: u32) -> &'a [u8] {
        let c = self.channels as usize;
        let start = y as usize * self.stride() + x as usize * c;
        &self.data[start..start + c]
    }

    pub fn to_owned_image(&self) -> Image {
        Image {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: self.data.to_vec(),
        }
    }

    /// Short text for display: `<image 4992x3328x3>`.
    pub fn describe(&self) -> String {
        format!("<image {}x{}x{}>", self.width, self.height, self.channels)
    }
}

/// Builds an image array row by row.
#[derive(Debug)]
pub struct ImageArrayBuilder {
    widths: UInt32Builder,
    heights: UInt32Builder,
    channels: UInt8Builder,
    data: BinaryViewBuilder,
    valid: Vec<bool>,
}

impl ImageArrayBuilder {
    /// Room for `capacity` rows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            widths: UInt32Builder::with_capacity(capacity),
            heights: UInt32Builder::with_capacity(capacity),
            channels: UInt8Builder::with_capacity(capacity),
            data: BinaryViewBuilder::with_capacity(capacity),
            valid: Vec::with_capacity(capacity),
        }
    }

    fn append_header(&mut self, width: u32, height: u32, channels: u8) {
        self.widths.append_value(width);
        self.heights.append_value(height);
        self.channels.append_value(channels);
        self.valid.push(true);
    }

    /// Appends a copy of `image`'s pixels (for small images; large ones are
    /// better moved in with [`Self::append_owned`]).
    pub fn append(&mut self, image: ImageView<'_>) -> Result<()> {
        view_length(image.data.len())?;
        self.append_header(image.width, image.height, image.channels);
        self.data.append_value(image.data);
        Ok(())
    }

    /// Appends `image`, moving a large pixel buffer into the array as a
    /// buffer of its own, without a copy.
    pub fn append_owned(&mut self, image: Image) -> Result<()> {
        if image.data.len() < OWN_BUFFER_BYTES {
            return self.append(image.view());
        }
        view_length(image.data.len())?;
        self.append_header(image.width, image.height, image.channels);
        append_buffer(&mut self.data, Buffer::from_vec(image.data))
    }

    pub fn append_option(&mut self, image: Option<ImageView<'_>>) -> Result<()> {
        match image {
            Some(image) => self.append(image),
            None => {
                self.append_null();
                Ok(())
            }
        }
    }

    pub fn append_owned_option(&mut self, image: Option<Image>) -> Result<()> {
        match image {
            Some(image) => self.append_owned(image),
            None => {
                self.append_null();
                Ok(())
            }
        }
    }

    pub fn append_null(&mut self) {
        // Children of a null struct slot still need a (valid, empty) value.
        self.widths.append_value(0);
        self.heights.append_value(0);
        self.channels.append_value(0);
        self.data.append_value([]);
        self.valid.push(false);
    }

    pub fn len(&self) -> usize {
        self.valid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    pub fn finish(mut self) -> StructArray {
        let nulls = if self.valid.iter().all(|v| *v) {
            None
        } else {
            Some(NullBuffer::from(std::mem::take(&mut self.valid)))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.widths.finish()),
            Arc::new(self.heights.finish()),
            Arc::new(self.channels.finish()),
            Arc::new(self.data.finish()),
        ];
        StructArray::new(image_fields(), columns, nulls)
    }
}

/// A view's length is 32 bits: one value must stay under 4 GiB.
fn view_length(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| ImageError::InvalidValue(format!("{len} bytes in one value (at most 4 GiB)")))
}

/// Appends `buffer` as one value of its own, without copying it: the
/// array shares the buffer (decoded pixels, a file's bytes as read).
pub fn append_buffer(builder: &mut BinaryViewBuilder, buffer: Buffer) -> Result<()> {
    let len = view_length(buffer.len())?;
    let block = builder.append_block(buffer);
    builder
        .try_append_view(block, 0, len)
        .map_err(|e| ImageError::InvalidValue(e.to_string()))
}

/// Typed access to an Arrow array of image values.
#[derive(Debug)]
pub struct ImageArray<'a> {
    array: &'a StructArray,
    widths: &'a UInt32Array,
    heights: &'a UInt32Array,
    channels: &'a UInt8Array,
    data: &'a dyn Array,
}

impl<'a> ImageArray<'a> {
    /// Fails when `array` is not an image struct.
    pub fn try_new(array: &'a dyn Array) -> Result<Self> {
        let invalid = || {
            ImageError::InvalidValue(format!(
                "expected an image struct {{width, height, channels, data}}, found {}",
                array.data_type()
            ))
        };
        if !is_image_type(array.data_type()) {
            return Err(invalid());
        }
        let array = array.as_any().downcast_ref::<StructArray>().ok_or_else(invalid)?;
        let column = |i: usize| array.column(i).as_any();
        Ok(Self {
            array,
            widths: column(0).downcast_ref().ok_or_else(invalid)?,
            heights: column(1).downcast_ref().ok_or_else(invalid)?,
            channels: column(2).downcast_ref().ok_or_else(invalid)?,
            data: array.column(3).as_ref(),
        })
    }

    pub fn len(&self) -> usize {
        self.array.len()
    }

    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    /// The image at row `i`, `None` when NULL; an error when its layout is
    /// inconsistent (say, a hand-built struct with too few bytes).
    pub fn get(&self, i: usize) -> Result<Option<ImageView<'a>>> {
        if self.array.is_null(i) {
            return Ok(None);
        }
        let data = match self.data.data_type() {
            DataType::BinaryView => self.data.as_binary_view().value(i),
            DataType::LargeBinary => self.data.as_binary::<i64>().value(i),
            _ => self.data.as_binary::<i32>().value(i),
        };
        ImageView::new(
            self.widths.value(i),
            self.heights.value(i),
            self.channels.value(i),
            data,
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_nulls() {
        let a = Image::new(2, 1, 3, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let b = Image::new(1, 1, 1, vec![9]).unwrap();
        let mut builder = ImageArrayBuilder::with_capacity(3);
        builder.append(a.view()).unwrap();
        builder.append_null();
        builder.append(b.view()).unwrap();
        let array = builder.finish();
        assert!(is_image_type(array.data_type()));
        let images = ImageArray::try_new(&array).unwrap();
        assert_eq!(images.len(), 3);
        assert_eq!(images.get(0).unwrap(), Some(a.view()));
        assert_eq!(images.get(1).unwrap(), None);
        assert_eq!(images.get(2).unwrap().unwrap().pixel(0, 0), &[9]);
    }

    #[test]
    fn large_images_get_their_own_buffer_and_take_shares_it() {
        use datafusion::arrow::array::{BinaryViewArray, UInt32Array as Indices};
        let big = Image::new(512, 512, 1, vec![7; 512 * 512]).unwrap();
        let mut builder = ImageArrayBuilder::with_capacity(2);
        builder.append(Image::new(1, 1, 1, vec![1]).unwrap().view()).unwrap();
        builder.append_owned(big.clone()).unwrap();
        let array = builder.finish();
        let data = array.column(3).as_any().downcast_ref::<BinaryViewArray>().unwrap();
        assert_eq!(data.data_buffers().len(), 1);
        assert_eq!(data.data_buffers()[0].len(), big.data.len());
        // A join or UNNEST repeating the big row 100 times shares its pixels.
        let taken = datafusion::arrow::compute::take(&array, &Indices::from(vec![1u32; 100]), None).unwrap();
        let taken_data = taken.as_any().downcast_ref::<StructArray>().unwrap().column(3).clone();
        let taken_data = taken_data.as_any().downcast_ref::<BinaryViewArray>().unwrap();
        assert_eq!(taken_data.data_buffers()[0].as_ptr(), data.data_buffers()[0].as_ptr());
        assert_eq!(ImageArray::try_new(&taken).unwrap().get(99).unwrap(), Some(big.view()));
    }

    #[test]
    fn reads_large_binary_structs() {
        use datafusion::arrow::array::LargeBinaryArray;
        let fields = Fields::from(vec![
            Field::new(WIDTH, DataType::UInt32, false),
            Field::new(HEIGHT, DataType::UInt32, false),
            Field::new(CHANNELS, DataType::UInt8, false),
            Field::new(DATA, DataType::LargeBinary, false),
        ]);
        let array = StructArray::new(
            fields,
            vec![
                Arc::new(UInt32Array::from(vec![1])),
                Arc::new(UInt32Array::from(vec![1])),
                Arc::new(UInt8Array::from(vec![1])),
                Arc::new(LargeBinaryArray::from(vec![&[5u8][..]])),
            ],
            None,
        );
        assert!(is_image_type(array.data_type()));
        assert_eq!(ImageArray::try_new(&array).unwrap().get(0).unwrap().unwrap().data, &[5]);
    }

    #[test]
    fn rejects_bad_layout() {
        let err = Image::new(2, 2, 3, vec![0; 11]).unwrap_err();
        assert!(err.to_string().contains("needs 12 bytes"), "{err}");
        let err = Image::new(1, 1, 2, vec![0; 2]).unwrap_err();
        assert!(err.to_string().contains("2 channels"), "{err}");
    }

    #[test]
    fn rejects_other_types() {
        let array = UInt32Array::from(vec![1]);
        let err = ImageArray::try_new(&array).unwrap_err();
        assert!(err.to_string().contains("expected an image struct"), "{err}");
    }
}
