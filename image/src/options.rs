//! Option sets: the `'key=value, key=value'` text that table functions,
//! image tables and model functions take, declared once.
//!
//! [`option_set!`](crate::option_set) declares a struct whose fields are
//! the options, each with its type, default, parser and doc comment. The
//! declaration gives:
//! - `parse` of the text, with errors naming the function, the key and
//!   what the value must be, and for an unknown key the known ones;
//! - [`OptionSet::docs`], which `\h` and the generated function reference
//!   show;
//! - with `extension = "prefix"`, DataFusion's `ConfigExtension`, so the
//!   same options are session settings (`SET images.batch_rows = 8`).
//!
//! Adding an option is one field in its declaration.

use std::fmt::Display;
use std::str::FromStr;

use datafusion::common::DataFusionError;

/// A bad options text: an unknown key, a bad value, or an item that is not
/// `key=value`. SQL reports it as a planning error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionError(pub String);

impl From<OptionError> for DataFusionError {
    fn from(e: OptionError) -> Self {
        DataFusionError::Plan(e.0)
    }
}

pub type Result<T, E = OptionError> = std::result::Result<T, E>;

/// One option of a set, as `\h` and the docs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDoc {
    pub key: &'static str,
    /// The default, as it would be written in the options text.
    pub default: String,
    pub doc: String,
}

/// A declared option set; see [`option_set!`](crate::option_set).
pub trait OptionSet: Default + Sized {
    /// What errors call the options (`cnn_train`, `image table`).
    const WHAT: &'static str;

    /// Every option with its default and doc line, in declaration order.
    fn docs() -> Vec<OptionDoc>;

    /// Sets option `key` (lower case) from its text.
    fn set(&mut self, key: &str, value: &str) -> Result<()>;

    /// The options' current values as text, in declaration order.
    fn values(&self) -> Vec<(&'static str, String)>;

    /// The option names, for errors.
    fn known() -> String {
        Self::docs().iter().map(|d| d.key).collect::<Vec<_>>().join(", ")
    }

    /// The defaults with the options of `text` (`"a=1, b=x"`) set.
    fn parse(text: &str) -> Result<Self> {
        let mut options = Self::default();
        options.apply(text)?;
        Ok(options)
    }

    /// Sets the options of `text` over the current values.
    fn apply(&mut self, text: &str) -> Result<()> {
        for (key, value) in key_value_list(Self::WHAT, &Self::known(), text)? {
            self.set(&key, &value)?;
        }
        Ok(())
    }
}

/// Splits an options string `"key=value, key=value"` into trimmed pairs with
/// lower-case keys; `what` and `known` name the options in errors.
pub fn key_value_list(what: &str, known: &str, text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(OptionError(format!(
                "{what} option '{item}' is not of the form key=value (known: {known})"
            )));
        };
        pairs.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(pairs)
}

/// The error for a value its option's parser refused: `expected` says what
/// the value must be ("must be a whole number of at least 1").
pub fn bad_value(what: &str, key: &str, expected: &str, value: &str) -> OptionError {
    OptionError(format!("{what} option {key} {expected}, not '{value}'"))
}

/// The error for a key the set does not declare.
pub fn unknown_key<T: OptionSet>(key: &str) -> OptionError {
    OptionError(format!("unknown {} option '{key}' (known: {})", T::WHAT, T::known()))
}

/// How an option's value is written back as text (defaults in the docs,
/// session settings in `SHOW`).
pub trait OptionText {
    fn option_text(&self) -> String;
}

macro_rules! display_option_text {
    ($($ty:ty),*) => {
        $(impl OptionText for $ty {
            fn option_text(&self) -> String {
                self.to_string()
            }
        })*
    };
}
display_option_text!(bool, u32, u64, usize, f32, f64, String);

impl<T: OptionText> OptionText for Option<T> {
    fn option_text(&self) -> String {
        self.as_ref().map(OptionText::option_text).unwrap_or_default()
    }
}

/// A range of numbers, `lo..hi`.
impl OptionText for (f32, f32) {
    fn option_text(&self) -> String {
        format!("{}..{}", self.0, self.1)
    }
}

/// A size held as (height, width), written WIDTHxHEIGHT.
impl OptionText for (usize, usize) {
    fn option_text(&self) -> String {
        format!("{}x{}", self.1, self.0)
    }
}

impl OptionText for Vec<String> {
    fn option_text(&self) -> String {
        self.join("|")
    }
}

/// Parsers for [`option_set!`](crate::option_set) fields. Each gives a
/// `Fn(&str) -> Result<T, String>` whose error is what the value must be.
pub mod parse {
    use super::*;

    /// A value of `T` that `check` accepts; `expected` says which.
    pub fn value<T: FromStr>(check: impl Fn(&T) -> bool, expected: &'static str) -> impl Fn(&str) -> Result<T, String> {
        move |text| match text.trim().parse::<T>() {
            Ok(v) if check(&v) => Ok(v),
            _ => Err(expected.to_string()),
        }
    }

    /// A whole number in `min..=max`.
    pub fn whole<T: FromStr + PartialOrd + Copy + Display>(
        min: T,
        max: T,
        expected: &'static str,
    ) -> impl Fn(&str) -> Result<T, String> {
        value(move |v: &T| *v >= min && *v <= max, expected)
    }

    /// `true` or `false`, in any case.
    pub fn flag(expected: &'static str) -> impl Fn(&str) -> Result<bool, String> {
        move |text| match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(expected.to_string()),
        }
    }

    /// One of the named values, in any case.
    pub fn choice<T: Copy>(
        names: &'static [(&'static str, T)],
        expected: &'static str,
    ) -> impl Fn(&str) -> Result<T, String> {
        move |text| {
            let text = text.trim().to_ascii_lowercase();
            names
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&text))
                .map(|(_, v)| *v)
                .ok_or_else(|| expected.to_string())
        }
    }

    /// Any text that is not empty.
    pub fn text(expected: &'static str) -> impl Fn(&str) -> Result<String, String> {
        move |text| match text.trim() {
            "" => Err(expected.to_string()),
            t => Ok(t.to_string()),
        }
    }

    /// Names separated by `|`, trimmed (`labels=a|b|c`).
    pub fn names() -> impl Fn(&str) -> Result<Vec<String>, String> {
        |text| Ok(text.split('|').map(|s| s.trim().to_string()).collect())
    }

    /// The value of `inner`, as `Some`: for options whose default is
    /// "not given".
    pub fn some<T>(inner: impl Fn(&str) -> Result<T, String>) -> impl Fn(&str) -> Result<Option<T>, String> {
        move |text| inner(text).map(Some)
    }
}

/// Declares an option set: a struct of options with their defaults,
/// parsers (see [`parse`]) and doc comments, implementing [`OptionSet`].
///
/// ```ignore
/// option_set! {
///     /// Options of image_grid.
///     pub struct GridOptions for "image_grid" {
///         /// Cell side, in pixels.
///         cell: u32 = 96, parse::whole(8, 1024, "must be a whole number from 8 to 1024");
///     }
/// }
/// ```
///
/// With `extension = "prefix"` after the name, the set is also a DataFusion
/// session extension: `SET prefix.key = value` and `SHOW prefix.key`.
#[macro_export]
macro_rules! option_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident for $what:literal $(, extension = $prefix:literal)? {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr, $parser:expr;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $name {
            $($(#[doc = $doc])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl $crate::options::OptionSet for $name {
            const WHAT: &'static str = $what;

            fn docs() -> Vec<$crate::options::OptionDoc> {
                let defaults = Self::default();
                vec![$($crate::options::OptionDoc {
                    key: stringify!($field),
                    default: $crate::options::OptionText::option_text(&defaults.$field),
                    doc: concat!($($doc),*).split_whitespace().collect::<Vec<_>>().join(" "),
                },)*]
            }

            fn set(&mut self, key: &str, value: &str) -> $crate::options::Result<()> {
                match key {
                    $(stringify!($field) => {
                        self.$field = ($parser)(value)
                            .map_err(|expected| $crate::options::bad_value($what, key, &expected, value))?;
                    })*
                    other => return Err($crate::options::unknown_key::<Self>(other)),
                }
                Ok(())
            }

            fn values(&self) -> Vec<(&'static str, String)> {
                vec![$((stringify!($field), $crate::options::OptionText::option_text(&self.$field)),)*]
            }
        }

        $crate::option_set!(@extension $name [$($prefix)?] $(concat!($($doc),*)),*);
    };
    (@extension $name:ident [] $($doc:expr),*) => {};
    (@extension $name:ident [$prefix:literal] $($doc:expr),*) => {
        impl ::datafusion::config::ConfigExtension for $name {
            const PREFIX: &'static str = $prefix;
        }

        impl ::datafusion::config::ExtensionOptions for $name {
            fn as_any(&self) -> &dyn ::std::any::Any {
                self
            }

            fn as_any_mut(&mut self) -> &mut dyn ::std::any::Any {
                self
            }

            fn cloned(&self) -> Box<dyn ::datafusion::config::ExtensionOptions> {
                Box::new(self.clone())
            }

            fn set(&mut self, key: &str, value: &str) -> ::datafusion::common::Result<()> {
                Ok($crate::options::OptionSet::set(self, &key.to_ascii_lowercase(), value)?)
            }

            fn entries(&self) -> Vec<::datafusion::config::ConfigEntry> {
                let docs: &[&'static str] = &[$($doc),*];
                $crate::options::OptionSet::values(self)
                    .into_iter()
                    .zip(docs)
                    .map(|((key, value), doc)| ::datafusion::config::ConfigEntry {
                        key: format!("{}.{key}", $prefix),
                        value: Some(value),
                        description: doc.trim(),
                    })
                    .collect()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::parse::*;
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Keep {
        Last,
        Best,
    }

    impl OptionText for Keep {
        fn option_text(&self) -> String {
            format!("{self:?}").to_ascii_lowercase()
        }
    }

    crate::option_set! {
        /// A test set.
        struct TestOptions for "test_fn", extension = "testing" {
            /// Passes over the rows.
            epochs: usize = 10, whole(1, usize::MAX, "must be a whole number of at least 1");
            /// Which model to keep:
            /// the last or the best.
            keep: Keep = Keep::Last, choice(&[("last", Keep::Last), ("best", Keep::Best)], "takes last or best");
            /// Class names.
            labels: Option<Vec<String>> = None, some(names());
        }
    }

    #[test]
    fn parses_over_defaults_and_names_bad_input() {
        let o = TestOptions::parse(" EPOCHS = 3 , keep=Best, labels=a|b").unwrap();
        assert_eq!(o.epochs, 3);
        assert_eq!(o.keep, Keep::Best);
        assert_eq!(o.labels, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(TestOptions::parse("").unwrap(), TestOptions::default());

        let err = |text: &str| TestOptions::parse(text).unwrap_err().to_string();
        assert!(err("epochs=0").contains("test_fn option epochs must be a whole number of at least 1, not '0'"));
        assert!(err("keep=first").contains("test_fn option keep takes last or best, not 'first'"));
        assert!(err("colour=red").contains("unknown test_fn option 'colour' (known: epochs, keep, labels)"));
        assert!(err("epochs").contains("test_fn option 'epochs' is not of the form key=value"));
    }

    #[test]
    fn docs_come_from_the_declaration() {
        let docs = TestOptions::docs();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].key, "epochs");
        assert_eq!(docs[0].default, "10");
        assert_eq!(docs[1].doc, "Which model to keep: the last or the best.");
        assert_eq!(docs[1].default, "last");
        assert_eq!(docs[2].default, "");
    }

    #[test]
    fn an_extension_set_is_a_session_setting() {
        use datafusion::config::{ConfigOptions, ExtensionOptions};
        let mut config = ConfigOptions::new();
        config.extensions.insert(TestOptions::default());
        config.set("testing.epochs", "7").unwrap();
        assert_eq!(config.extensions.get::<TestOptions>().unwrap().epochs, 7);
        assert!(config.set("testing.epochs", "0").is_err());
        let entries = TestOptions::default().entries();
        assert_eq!(entries[0].key, "testing.epochs");
        assert_eq!(entries[0].value.as_deref(), Some("10"));
        assert_eq!(entries[1].description, "Which model to keep: the last or the best.");
    }
}
