//! The one error type of the model layer.

use rookery_image::options::OptionError;
use rookery_image::ImageError;

/// What can go wrong training, exporting or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A bad option, argument or model for the call: the caller's to fix
    /// (SQL reports it as a planning error).
    #[error("{0}")]
    Invalid(String),
    /// Something failed while working (a file, ONNX Runtime, training).
    #[error("{0}")]
    Failed(String),
    /// The session's memory pool refused a reservation.
    #[error("Resources exhausted: {0}")]
    ResourcesExhausted(String),
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl From<OptionError> for ModelError {
    fn from(e: OptionError) -> Self {
        Self::Invalid(e.0)
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// `Err(ModelError::Invalid(format!(...)))`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { Err($crate::ModelError::Invalid(format!($($arg)*))) };
}

/// `Err(ModelError::Failed(format!(...)))`.
#[macro_export]
macro_rules! failed {
    ($($arg:tt)*) => { Err($crate::ModelError::Failed(format!($($arg)*))) };
}

/// `ModelError::Failed(format!(...))`.
#[macro_export]
macro_rules! failure {
    ($($arg:tt)*) => { $crate::ModelError::Failed(format!($($arg)*)) };
}
