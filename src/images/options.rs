//! Options of an image table, from `OPTIONS (...)` or the second argument
//! of `images()`.

use std::collections::HashMap;

use datafusion::common::{plan_err, Result};
use rookery_udfs::codec::DEFAULT_MAX_PIXELS;

/// Images per batch when a query reads content or pixels. Small, because a
/// decoded 4992x3328 frame is 50 MB; header-only queries use the session's
/// batch size instead.
pub const DEFAULT_BATCH_ROWS: usize = 4;

/// How an image table reads its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    /// Skip unreadable files instead of returning them with `error` set.
    pub drop_invalid: bool,
    /// Images per output batch when content or pixels are read.
    pub batch_rows: usize,
    /// Refuse to decode images of more pixels than this (decompression bombs).
    pub max_pixels: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            drop_invalid: false,
            batch_rows: DEFAULT_BATCH_ROWS,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

const KNOWN: &str = "drop_invalid, batch_rows, max_pixels";

impl ImageOptions {
    /// Reads `key -> value` pairs; keys may carry DataFusion's `format.`
    /// prefix, which the SQL planner adds to un-prefixed DDL options.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self> {
        let mut options = Self::default();
        for (key, value) in map {
            options.set(key, value)?;
        }
        Ok(options)
    }

    /// Parses `"drop_invalid=true, batch_rows=4"`.
    pub fn parse_list(text: &str) -> Result<Self> {
        let mut options = Self::default();
        for (key, value) in rookery_udfs::args::key_value_list("image", KNOWN, text)? {
            options.set(&key, &value)?;
        }
        Ok(options)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let key = key.to_ascii_lowercase();
        let key = key.strip_prefix("format.").unwrap_or(&key);
        match key {
            "drop_invalid" => {
                self.drop_invalid = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return plan_err!("option drop_invalid must be 'true' or 'false', not '{value}'"),
                }
            }
            "batch_rows" => match value.parse::<usize>() {
                Ok(n) if n > 0 => self.batch_rows = n,
                _ => return plan_err!("option batch_rows must be a whole number above 0, not '{value}'"),
            },
            "max_pixels" => match value.parse::<u64>() {
                Ok(n) if n > 0 => self.max_pixels = n,
                _ => return plan_err!("option max_pixels must be a whole number above 0, not '{value}'"),
            },
            other => return plan_err!("unknown image table option '{other}' (known: {KNOWN})"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixed_and_listed_options() {
        let map = HashMap::from([
            ("format.drop_invalid".to_string(), "TRUE".to_string()),
            ("batch_rows".to_string(), "3".to_string()),
        ]);
        let options = ImageOptions::from_map(&map).unwrap();
        assert!(options.drop_invalid);
        assert_eq!(options.batch_rows, 3);
        let listed = ImageOptions::parse_list("max_pixels = 100, drop_invalid=false").unwrap();
        assert_eq!(listed.max_pixels, 100);
        assert!(!listed.drop_invalid);
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let err = ImageOptions::parse_list("dropinvalid=true").unwrap_err();
        assert!(
            err.to_string().contains("unknown image table option 'dropinvalid'"),
            "{err}"
        );
        let err = ImageOptions::parse_list("batch_rows=0").unwrap_err();
        assert!(err.to_string().contains("batch_rows"), "{err}");
        let err = ImageOptions::parse_list("drop_invalid").unwrap_err();
        assert!(err.to_string().contains("key=value"), "{err}");
    }
}
