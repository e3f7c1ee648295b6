//! What the image functions may allocate: every buffer of pixels they make
//! is reserved in the session's DataFusion memory pool first, and no output
//! image may have more than the session's `rookery.max_pixels` pixels.
//!
//! A reservation lives while the function builds its result and is released
//! when the function returns: the operator that then holds the batch
//! accounts for it, as DataFusion's own operators do.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::{exec_err, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation, UnboundedMemoryPool};

use crate::codec::DEFAULT_MAX_PIXELS;
use crate::image_value::ImageView;
use crate::providers::ExecutionProviders;

crate::option_set! {
    /// Rookery's session settings (`SET rookery.max_pixels = 50000000`,
    /// `SHOW rookery.execution_provider`).
    pub struct RookeryConfig for "rookery setting", extension = "rookery" {
        /// Largest image, in pixels, that a function may decode or make
        /// (width x height); larger ones are refused with an error.
        max_pixels: u64 = DEFAULT_MAX_PIXELS, crate::options::parse::whole(1, u64::MAX, "must be a whole number above 0");
        /// Where ONNX Runtime runs models: cpu, cuda, cuda:N (GPU N),
        /// tensorrt, or a list in order of preference such as
        /// tensorrt|cuda|cpu. A provider that cannot load is an error
        /// naming what it misses; only a list ending in cpu falls back.
        execution_provider: ExecutionProviders = ExecutionProviders::cpu(), crate::providers::parse_providers;
    }
}

/// The session's `rookery.max_pixels`, or the default when the session has
/// no Rookery settings.
pub fn max_pixels(config: &ConfigOptions) -> u64 {
    config
        .extensions
        .get::<RookeryConfig>()
        .map_or(DEFAULT_MAX_PIXELS, |c| c.max_pixels)
}

/// The session's `rookery.execution_provider`.
pub fn execution_providers(config: &ConfigOptions) -> ExecutionProviders {
    config
        .extensions
        .get::<RookeryConfig>()
        .map(|c| c.execution_provider.clone())
        .unwrap_or_default()
}

/// The memory pool the image functions reserve in: the session's.
#[derive(Clone)]
pub struct ImageMemory {
    pool: Arc<dyn MemoryPool>,
}

impl ImageMemory {
    pub fn new(pool: Arc<dyn MemoryPool>) -> Self {
        Self { pool }
    }

    /// A reservation for one call of function `name`, checking sizes
    /// against `max_pixels`.
    pub fn reserve(&self, name: &str, max_pixels: u64) -> PixelReservation {
        PixelReservation {
            name: name.to_string(),
            max_pixels,
            reservation: MemoryConsumer::new(name.to_string()).register(&self.pool),
        }
    }
}

/// A pool without limit, for functions built outside a session (tests).
impl Default for ImageMemory {
    fn default() -> Self {
        Self::new(Arc::new(UnboundedMemoryPool::default()))
    }
}

impl fmt::Debug for ImageMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageMemory").finish_non_exhaustive()
    }
}

/// Two functions are the same when they use the same pool.
impl PartialEq for ImageMemory {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool)
    }
}

impl Eq for ImageMemory {}

impl Hash for ImageMemory {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.pool) as *const () as usize).hash(state);
    }
}

/// What one call of an image function has reserved so far.
#[derive(Debug)]
pub struct PixelReservation {
    name: String,
    max_pixels: u64,
    reservation: MemoryReservation,
}

impl PixelReservation {
    /// Checks that a `width` x `height` image of `channels` samples a pixel
    /// is allowed and reserves its bytes; call before allocating it.
    pub fn image(&mut self, width: u64, height: u64, channels: u64) -> Result<()> {
        let pixels = width.saturating_mul(height);
        if pixels > self.max_pixels {
            return exec_err!(
                "{}: a {width}x{height} image ({pixels} pixels) is larger than rookery.max_pixels ({})",
                self.name,
                self.max_pixels
            );
        }
        self.bytes(pixels.saturating_mul(channels))
    }

    /// Reserves an image of `view`'s size and channels (a result of the
    /// same shape).
    pub fn image_like(&mut self, view: &ImageView<'_>) -> Result<()> {
        self.image(view.width as u64, view.height as u64, view.channels as u64)
    }

    /// Reserves `bytes` more (working buffers, encoded output).
    pub fn bytes(&mut self, bytes: u64) -> Result<()> {
        let Ok(bytes) = usize::try_from(bytes) else {
            return exec_err!("{}: {bytes} bytes cannot be allocated", self.name);
        };
        self.reservation.try_grow(bytes)
    }

    /// Gives back `bytes` reserved before (a buffer freed early).
    pub fn release(&mut self, bytes: usize) {
        self.reservation.shrink(bytes.min(self.reservation.size()));
    }

    pub fn size(&self) -> usize {
        self.reservation.size()
    }

    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn refuses_large_images_and_full_pools() {
        let memory = ImageMemory::new(Arc::new(GreedyMemoryPool::new(1000)));
        let mut reservation = memory.reserve("image_resize", 100);
        let err = reservation.image(60000, 60000, 3).unwrap_err();
        assert!(
            err.to_string()
                .contains("image_resize: a 60000x60000 image (3600000000 pixels)"),
            "{err}"
        );
        reservation.image(10, 10, 3).unwrap();
        assert_eq!(reservation.size(), 300);
        let err = memory.reserve("crop", 1000).image(30, 30, 3).unwrap_err();
        assert!(err.to_string().contains("Resources exhausted"), "{err}");
        drop(reservation);
        memory.reserve("crop", 1000).image(30, 30, 1).unwrap();
    }

    #[test]
    fn max_pixels_from_the_session() {
        let mut config = ConfigOptions::default();
        assert_eq!(max_pixels(&config), DEFAULT_MAX_PIXELS);
        config.extensions.insert(RookeryConfig::default());
        config.set("rookery.max_pixels", "42").unwrap();
        assert_eq!(max_pixels(&config), 42);
    }
}
