//! Options of an image table: from `OPTIONS (...)`, the second argument of
//! `images()`, or the session's `images.*` settings for those not given.

use std::collections::HashMap;

use datafusion::common::config::ConfigOptions;
use datafusion::common::{plan_err, Result};
use rookery_image::codec::DEFAULT_MAX_PIXELS;
use rookery_image::options::parse::{flag, whole};
use rookery_image::options::{key_value_list, OptionSet};

/// Images per batch when a query reads content or pixels. Small, because a
/// decoded 4992x3328 frame is 50 MB; header-only queries use the session's
/// batch size instead.
pub const DEFAULT_BATCH_ROWS: usize = 4;

rookery_image::option_set! {
    /// Options of an image table, declared once: given to a table
    /// (`OPTIONS (...)`, `images(dir, '...')`) or as the session's
    /// defaults (`SET images.batch_rows = 8`), which a table's own options
    /// win over; read when a query is planned.
    pub struct ImageConfig for "image table", extension = "images" {
        /// Skip unreadable files instead of returning them with error set.
        drop_invalid: bool = false, flag("must be 'true' or 'false'");
        /// Images per batch when a query reads content or image.
        batch_rows: usize = DEFAULT_BATCH_ROWS, whole(0, usize::MAX, "must be a whole number above 0");
        /// Refuse to decode images of more pixels than this (decompression
        /// bombs); the image functions' own limit is rookery.max_pixels.
        max_pixels: u64 = DEFAULT_MAX_PIXELS, whole(0, u64::MAX, "must be a whole number above 0");
        /// Turn decoded images as their EXIF orientation says (as viewers
        /// show them); false keeps the pixels as stored.
        apply_orientation: bool = true, flag("must be 'true' or 'false'");
    }
}

impl ImageConfig {
    /// Refuses zero sizes, naming them as `{prefix}batch_rows`.
    fn check(&self, prefix: &str) -> Result<()> {
        if self.batch_rows == 0 {
            return plan_err!("{prefix}batch_rows must be a whole number above 0, not 0");
        }
        if self.max_pixels == 0 {
            return plan_err!("{prefix}max_pixels must be a whole number above 0, not 0");
        }
        Ok(())
    }
}

/// The options given to one table, checked; those not given come from the
/// session's `images.*` when a query is planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    given: Vec<(String, String)>,
}

impl ImageOptions {
    /// Reads `key -> value` pairs; keys may carry DataFusion's `format.`
    /// prefix, which the SQL planner adds to un-prefixed DDL options.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self> {
        let mut pairs: Vec<(String, String)> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.sort();
        Self::from_pairs(pairs)
    }

    /// Parses `"drop_invalid=true, batch_rows=4"`.
    pub fn parse_list(text: &str) -> Result<Self> {
        Self::from_pairs(key_value_list(ImageConfig::WHAT, &ImageConfig::known(), text)?)
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self> {
        let mut check = ImageConfig::default();
        let mut given = Vec::new();
        for (key, value) in pairs {
            let key = key.to_ascii_lowercase();
            let key = key.strip_prefix("format.").unwrap_or(&key).to_string();
            OptionSet::set(&mut check, &key, &value)?;
            given.push((key, value));
        }
        check.check("option ")?;
        Ok(Self { given })
    }

    /// The same options with `key` set to `value`.
    pub fn with(&self, key: &str, value: &str) -> Result<Self> {
        let mut pairs: Vec<(String, String)> = self.given.iter().filter(|(k, _)| k != key).cloned().collect();
        pairs.push((key.to_string(), value.to_string()));
        Self::from_pairs(pairs)
    }

    /// The value given for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.given.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The options given, as `from_map` reads them back.
    pub fn to_map(&self) -> HashMap<String, String> {
        self.given.iter().cloned().collect()
    }

    /// These options over the session's `images.*`.
    pub fn resolve(&self, config: &ConfigOptions) -> Result<ImageConfig> {
        let mut options = config.extensions.get::<ImageConfig>().cloned().unwrap_or_default();
        options.check("images.")?;
        for (key, value) in &self.given {
            OptionSet::set(&mut options, key, value)?;
        }
        options.check("option ")?;
        Ok(options)
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
        assert_eq!(options.get("drop_invalid"), Some("TRUE"));
        assert_eq!(options.get("batch_rows"), Some("3"));
        let listed = ImageOptions::parse_list("max_pixels = 100, drop_invalid=false").unwrap();
        assert_eq!(listed.get("max_pixels"), Some("100"));
        assert_eq!(listed.get("drop_invalid"), Some("false"));
        assert_eq!(listed.get("batch_rows"), None);
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
            ImageConfig {
                drop_invalid: true,
                batch_rows: 8,
                max_pixels: 1000,
                apply_orientation: true,
            }
        );
        let given =
            ImageOptions::parse_list("batch_rows=2, drop_invalid=false, max_pixels=50, apply_orientation=false")
                .unwrap();
        assert_eq!(
            given.resolve(&config).unwrap(),
            ImageConfig {
                drop_invalid: false,
                batch_rows: 2,
                max_pixels: 50,
                apply_orientation: false,
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
