//! Rookery's image layer, below SQL functions and models: the image value
//! and its Arrow type ([`image_value`]), decoding and encoding
//! ([`codec`]), pixel maths as plain functions over [`ImageView`] buffers
//! ([`pixels`], [`augment`], [`dots`], [`align`], [`grid`]), what image
//! work may allocate ([`memory`]), how functions check their arguments
//! ([`args`]) and how `key=value` option sets are declared ([`options`]).

pub mod align;
pub mod args;
pub mod augment;
pub mod blocking;
pub mod codec;
pub mod dots;
pub mod error;
pub mod exif;
pub mod grid;
pub mod image_value;
pub mod memory;
pub mod options;
pub mod pixels;
pub mod providers;
pub mod rng;
pub mod video;

pub use error::ImageError;
pub use image_value::{image_type, is_image_type, Image, ImageArray, ImageArrayBuilder, ImageView};
pub use memory::{ImageMemory, RookeryConfig};
pub use providers::{ExecutionProvider, ExecutionProviders};
