//! Size arguments of the image functions (widths, heights, tile sides).

use datafusion::common::{exec_err, Result};

/// A size argument: 1 to 65535 pixels.
pub(crate) fn size_value(name: &str, what: &str, value: i64) -> Result<u32> {
    if (1..=65535).contains(&value) {
        Ok(value as u32)
    } else {
        exec_err!("{name}: {what} must be 1 to 65535, not {value}")
    }
}
