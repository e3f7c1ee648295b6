//! Options of an image table: from `OPTIONS (...)`, the second argument of
//! `images()`, or the session's `images.*` settings for those not given.

use std::collections::HashMap;

use datafusion::common::config::ConfigOptions;
use datafusion::common::{extensions_options, plan_err, Result};
use datafusion::config::ConfigExtension;
use rookery_udfs::codec::DEFAULT_MAX_PIXELS;

/// Images per batch when a query reads content or pixels. Small, because a
/// decoded 4992x3328 frame is 50 MB; header-only queries use the session's
/// batch size instead.
pub const DEFAULT_BATCH_ROWS: usize = 4;

extensions_options! {
    /// Session defaults of the image table options (`SET images.batch_rows
    /// = 8`). An option given to a table (`OPTIONS (...)`, `images(dir,
    /// '...')`) wins over these; they are read when a query is planned.
    pub struct ImageConfig {
        /// Skip unreadable files instead of returning them with `error` set.
        pub drop_invalid: bool, default = false
        /// Images per batch when a query reads `content` or `image`.
        pub batch_rows: usize, default = DEFAULT_BATCH_ROWS
        /// Refuse to decode images of more pixels than this (decompression
        /// bombs); the image functions' own limit is `rookery.max_pixels`.
        pub max_pixels: u64, default = DEFAULT_MAX_PIXELS
    }
}

impl ConfigExtension for ImageConfig {
    const PREFIX: &'static str = "images";
}

/// The options given to one table; those left `None` come from the
/// session when a query is planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    pub drop_invalid: Option<bool>,
    pub batch_rows: Option<usize>,
    pub max_pixels: Option<u64>,
}

/// What one scan runs with: the table's options over the session's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    pub drop_invalid: bool,
    pub batch_rows: usize,
    pub max_pixels: u64,
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

    /// The options given, as `from_map` reads them back.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        if let Some(v) = self.drop_invalid {
            map.insert("drop_invalid".to_string(), v.to_string());
        }
        if let Some(v) = self.batch_rows {
            map.insert("batch_rows".to_string(), v.to_string());
        }
        if let Some(v) = self.max_pixels {
            map.insert("max_pixels".to_string(), v.to_string());
        }
        map
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let key = key.to_ascii_lowercase();
        let key = key.strip_prefix("format.").unwrap_or(&key);
        match key {
            "drop_invalid" => {
                self.drop_invalid = Some(match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return plan_err!("option drop_invalid must be 'true' or 'false', not '{value}'"),
                })
            }
            "batch_rows" => self.batch_rows = Some(positive("batch_rows", value)?),
            "max_pixels" => self.max_pixels = Some(positive("max_pixels", value)? as u64),
            other => return plan_err!("unknown image table option '{other}' (known: {KNOWN})"),
        }
        Ok(())
    }

    /// These options over the session's `images.*`.
    pub fn resolve(&self, config: &ConfigOptions) -> Result<ScanOptions> {
        let defaults = config.extensions.get::<ImageConfig>().cloned().unwrap_or_default();
        let batch_rows = self.batch_rows.unwrap_or(defaults.batch_rows);
        if batch_rows == 0 {
            return plan_err!("images.batch_rows must be a whole number above 0, not 0");
        }
        let max_pixels = self.max_pixels.unwrap_or(defaults.max_pixels);
        if max_pixels == 0 {
            return plan_err!("images.max_pixels must be a whole number above 0, not 0");
        }
        Ok(ScanOptions {
            drop_invalid: self.drop_invalid.unwrap_or(defaults.drop_invalid),
            batch_rows,
            max_pixels,
        })
    }
}

fn positive(name: &str, value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => plan_err!("option {name} must be a whole number above 0, not '{value}'"),
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
        assert_eq!(options.drop_invalid, Some(true));
        assert_eq!(options.batch_rows, Some(3));
        let listed = ImageOptions::parse_list("max_pixels = 100, drop_invalid=false").unwrap();
        assert_eq!(listed.max_pixels, Some(100));
        assert_eq!(listed.drop_invalid, Some(false));
        assert_eq!(listed.batch_rows, None);
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

    #[test]
    fn table_options_win_over_session_settings() {
        let mut config = ConfigOptions::new();
        config.extensions.insert(ImageConfig::default());
        config.set("images.batch_rows", "8").unwrap();
        config.set("images.drop_invalid", "true").unwrap();
        config.set("images.max_pixels", "1000").unwrap();

        let from_session = ImageOptions::default().resolve(&config).unwrap();
        assert_eq!(
            from_session,
            ScanOptions {
                drop_invalid: true,
                batch_rows: 8,
                max_pixels: 1000
            }
        );
        let given = ImageOptions::parse_list("batch_rows=2, drop_invalid=false, max_pixels=50").unwrap();
        assert_eq!(
            given.resolve(&config).unwrap(),
            ScanOptions {
                drop_invalid: false,
                batch_rows: 2,
                max_pixels: 50
            }
        );
    }

    #[test]
    fn zero_batch_rows_from_the_session_is_refused() {
        let mut config = ConfigOptions::new();
        config.extensions.insert(ImageConfig::default());
        config.set("images.batch_rows", "0").unwrap();
        let err = ImageOptions::default().resolve(&config).unwrap_err();
        assert!(err.to_string().contains("images.batch_rows"), "{err}");
    }

    #[test]
    fn without_settings_the_defaults_apply() {
        let resolved = ImageOptions::default().resolve(&ConfigOptions::new()).unwrap();
        assert_eq!(resolved.batch_rows, DEFAULT_BATCH_ROWS);
        assert!(!resolved.drop_invalid);
        assert_eq!(resolved.max_pixels, DEFAULT_MAX_PIXELS);
    }
}
