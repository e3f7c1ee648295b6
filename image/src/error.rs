//! The one error type of this crate's pixel code.

use datafusion::error::DataFusionError;

/// What can go wrong reading or working on an image, independent of SQL.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("empty file")]
    Empty,
    #[error("not an image (unrecognised content)")]
    UnknownFormat,
    #[error(
        "{format} image is {width}x{height} = {pixels} pixels, over the limit of {limit} pixels (option max_pixels)"
    )]
    TooLarge {
        format: &'static str,
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error("cannot decode {format}: {message}")]
    Decode { format: &'static str, message: String },
    #[error("invalid image value: {0}")]
    InvalidValue(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot encode {format}: {message}")]
    Encode { format: &'static str, message: String },
}

impl From<ImageError> for DataFusionError {
    fn from(e: ImageError) -> Self {
        DataFusionError::Execution(e.to_string())
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
