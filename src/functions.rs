//! The functions a session knows, with their documentation, for the REPL's
//! `\df` (one line each) and `\h NAME` (the whole text).
//!
//! The text is DataFusion's `Documentation` of each function, the same that
//! `#[user_doc]` attaches to Rookery's own image functions.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::LazyLock;

use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{DocSection, Documentation, Signature, TypeSignature};
use rookery_image::options::{OptionDoc, OptionSet};

use crate::images::{ImageConfig, TileOptions};

/// The options of function `name`'s options text, from their declarations.
pub fn option_docs(name: &str) -> Vec<OptionDoc> {
    match name {
        "images" => ImageConfig::docs(),
        "image_tiles" => TileOptions::docs().into_iter().chain(ImageConfig::docs()).collect(),
        "video_frames" => crate::video::VideoOptions::docs(),
        other => rookery_udfs::function_options(other).unwrap_or_default(),
    }
}

/// What kind of SQL function a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FunctionKind {
    Scalar,
    Aggregate,
    Window,
    Table,
}

impl FunctionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Aggregate => "aggregate",
            Self::Window => "window",
            Self::Table => "table",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub kind: FunctionKind,
    pub documentation: Option<Documentation>,
    /// One of Rookery's own functions (not a DataFusion built-in).
    pub rookery: bool,
    /// The argument types the planner accepts, one line per form
    /// (`image, Int64`); empty when the function checks its own.
    pub argument_types: Vec<String>,
    /// The options of its options text, from their declaration.
    pub options: Vec<OptionDoc>,
}

impl FunctionInfo {
    /// The first sentence of the description, at most `max_chars` long.
    pub fn summary(&self, max_chars: usize) -> String {
        let sentence = self
            .documentation
            .as_ref()
            .map(|d| first_sentence(&d.description))
            .unwrap_or_default();
        if sentence.chars().count() <= max_chars {
            sentence
        } else {
            let cut: String = sentence.chars().take(max_chars.saturating_sub(1)).collect();
            format!("{}…", cut.trim_end())
        }
    }
}

fn first_sentence(text: &str) -> String {
    let text = text.trim();
    // A sentence ends at '.' before a capital letter ("Rec. 709" goes on).
    // Slices start after the whole character: descriptions hold 'π' and
    // other multi-byte characters.
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            let after = &text[i + c.len_utf8()..];
            let rest = after.trim_start();
            c == '.' && rest.len() < after.len() && rest.starts_with(|n: char| n.is_uppercase())
        })
        .map(|(i, _)| i + 1)
        .unwrap_or(text.len());
    text[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Documentation of the `images()` table function (table functions have no
/// `Documentation` slot in DataFusion, so it lives here).
pub static IMAGES_DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DocSection {
            include: true,
            label: "Image Tables",
            description: None,
        },
        "Reads a folder of images as a table, one row per file: path, name (file stem), format, size, width, height, content (encoded bytes), image (decoded pixels), error (NULL unless the file could not be read), relative_path (below the location, unique), label (the parent folder's name, NULL at the top; class-per-folder trees), taken_at, gps_lat, gps_lon, gps_alt, camera and orientation (from the EXIF header, NULL without one), then one text column per Hive-style key=value folder level. Folders are read recursively; in a glob * stays within a folder and ** spans folders. Pixels are decoded only when a query uses `image`; width, height and EXIF come from the file header; filters on the folder columns choose files before any is read. Formats are recognised by content: JPEG, PNG, TIFF, BMP, WebP, GIF.",
        "images(location [, options])",
    )
    .with_argument("location", "A folder ('data/Train/'), a glob ('data/Train/*.jpg', 'data/**/*.png') or one file; a local path or an object store URL such as 's3://bucket/prefix/'.")
    .with_argument("options", "Optional 'key=value, ...' text; the options are listed under Options. Options not given come from the session's settings of the same names: SET images.batch_rows = 8.")
    .with_sql_example(
        "```sql\n> SELECT name, width, height FROM images('data/sealions/Train/*.jpg') ORDER BY name LIMIT 2;\n+------+-------+--------+\n| name | width | height |\n+------+-------+--------+\n| 0    | 960   | 640    |\n| 1    | 960   | 640    |\n+------+-------+--------+\n```",
    )
    .build()
});

/// Documentation of the `image_tiles()` table function.
pub static IMAGE_TILES_DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DocSection {
            include: true,
            label: "Image Tables",
            description: None,
        },
        "Reads a folder of images as a table of tiles, one row per size x size tile: path and name of the image, x and y (the tile's top-left corner) and tile (its pixels, an image value). Tiles start every stride pixels, row by row; with edge=pad (the default) the last tiles at the right and bottom edges are kept and padded with zeros, with edge=drop only whole tiles are. Tiles stream: each partition decodes one image at a time and emits tile_rows tiles a batch, so a dense tiling of full-size frames runs in bounded memory, unlike unnest(tiles(...)), which holds all tiles of a frame at once. Without the tile column only the headers are read. A file that cannot be read is an error naming it unless drop_invalid=true.",
        "image_tiles(location, size, stride [, options])",
    )
    .with_argument("location", "A folder, a glob or one file, as for images().")
    .with_argument("size", "Side of each square tile in pixels, 1 to 65535.")
    .with_argument("stride", "Distance between neighbouring tiles in pixels, 1 to 65535.")
    .with_argument("options", "Optional 'key=value, ...' text; the options are listed under Options.")
    .with_sql_example(
        "```sql\n> SELECT count(*) AS tiles FROM image_tiles('data/sealions/Test/0.jpg', 64, 32);\n+-------+\n| tiles |\n+-------+\n| 551   |\n+-------+\n```",
    )
    .with_related_udf("tiles")
    .build()
});

/// Every function of the session, sorted by name.
pub fn list_functions(ctx: &SessionContext) -> Vec<FunctionInfo> {
    let models = rookery_udfs::Models::default();
    let own: HashSet<String> = rookery_udfs::scalar_functions(&rookery_image::ImageMemory::default(), &models)
        .iter()
        .map(|f| f.name().to_string())
        .chain(
            rookery_udfs::aggregate_functions(&Default::default(), &models)
                .iter()
                .map(|f| f.name().to_string()),
        )
        .chain(["images", "image_tiles", "video_frames", "read_blob"].map(String::from))
        .collect();
    let state = ctx.state();
    let mut functions = Vec::new();
    let mut push = |name: &String, kind, documentation: Option<&Documentation>, signature: Option<&Signature>| {
        let argument_types = match signature.map(|s| &s.type_signature) {
            None | Some(TypeSignature::UserDefined) => Vec::new(),
            Some(types) => types.to_string_repr(),
        };
        functions.push(FunctionInfo {
            name: name.clone(),
            kind,
            documentation: documentation.cloned(),
            rookery: own.contains(name),
            argument_types,
            options: option_docs(name),
        });
    };
    for (name, f) in state.scalar_functions() {
        // DataFusion's async wrapper does not pass its function's
        // documentation on.
        let documentation = match name.as_str() {
            "read_blob" => Some(&*crate::read_blob::DOCUMENTATION),
            _ => f.documentation(),
        };
        push(name, FunctionKind::Scalar, documentation, Some(f.signature()));
    }
    for (name, f) in state.aggregate_functions() {
        push(name, FunctionKind::Aggregate, f.documentation(), Some(f.signature()));
    }
    for (name, f) in state.window_functions() {
        push(name, FunctionKind::Window, f.documentation(), Some(f.signature()));
    }
    for name in state.table_functions().keys() {
        let documentation = match name.as_str() {
            "images" => Some(&*IMAGES_DOCUMENTATION),
            "image_tiles" => Some(&*IMAGE_TILES_DOCUMENTATION),
            "video_frames" => Some(&*crate::video::VIDEO_FRAMES_DOCUMENTATION),
            _ => None,
        };
        push(name, FunctionKind::Table, documentation, None);
    }
    functions.sort_by(|a, b| a.name.cmp(&b.name).then(a.kind.cmp(&b.kind)));
    functions
}

/// The whole help text of a function, as `\h NAME` prints it.
pub fn render_help(info: &FunctionInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({} function)", info.name, info.kind.as_str());
    let Some(doc) = &info.documentation else {
        out.push_str("No documentation.\n");
        return out;
    };
    let _ = writeln!(out, "\n{}\n", doc.description.trim());
    let _ = writeln!(out, "Syntax:\n  {}", doc.syntax_example);
    if !info.argument_types.is_empty() {
        out.push_str("\nArgument types:\n");
        for types in &info.argument_types {
            let _ = writeln!(out, "  {}({types})", info.name);
        }
    }
    if let Some(arguments) = &doc.arguments {
        out.push_str("\nArguments:\n");
        for (name, text) in arguments {
            let _ = writeln!(out, "  {name}: {text}");
        }
    }
    if !info.options.is_empty() {
        out.push_str("\nOptions:\n");
        for option in &info.options {
            let _ = writeln!(
                out,
                "  {}{}: {}",
                option.key,
                shown_default(&option.default),
                option.doc
            );
        }
    }
    if let Some(example) = &doc.sql_example {
        let example = example
            .trim()
            .trim_start_matches("```sql")
            .trim_end_matches("```")
            .trim();
        out.push_str("\nExample:\n");
        for line in example.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(related) = &doc.related_udfs {
        let _ = writeln!(out, "\nRelated: {}", related.join(", "));
    }
    out
}

fn shown_default(default: &str) -> String {
    if default.is_empty() {
        String::new()
    } else {
        format!(" (default {default})")
    }
}

/// The reference page of Rookery's own functions, in Markdown, from their
/// documentation and option declarations: `docs/src/reference/functions.md`
/// (`scripts/update-function-docs.sh` writes it; a test checks it).
pub fn reference_markdown(ctx: &SessionContext) -> String {
    let functions: Vec<FunctionInfo> = list_functions(ctx).into_iter().filter(|f| f.rookery).collect();
    let mut sections: Vec<&str> = functions
        .iter()
        .filter_map(|f| f.documentation.as_ref().map(|d| d.doc_section.label))
        .collect();
    sections.sort_unstable();
    sections.dedup();
    let mut out = String::from(
        "<!-- Generated by scripts/update-function-docs.sh from the functions' #[user_doc] and option declarations: do not edit. -->\n\n# Function reference\n\nRookery's own SQL functions, as `\\h NAME` shows them in the REPL. DataFusion's built-in functions are documented in [DataFusion's SQL reference](https://datafusion.apache.org/user-guide/sql/index.html).\n",
    );
    for section in sections {
        let _ = write!(out, "\n## {section}\n");
        for info in &functions {
            let Some(doc) = &info.documentation else { continue };
            if doc.doc_section.label != section {
                continue;
            }
            let _ = write!(
                out,
                "\n### `{}`\n\n{}\n\n```sql\n{}\n```\n",
                info.name,
                doc.description.trim(),
                doc.syntax_example
            );
            if let Some(arguments) = &doc.arguments {
                out.push_str("\n**Arguments**\n\n");
                for (name, text) in arguments {
                    let _ = writeln!(out, "- `{name}`: {text}");
                }
            }
            if !info.options.is_empty() {
                out.push_str("\n**Options**\n\n| option | default | meaning |\n|---|---|---|\n");
                for option in &info.options {
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | {} |",
                        option.key,
                        if option.default.is_empty() {
                            "—".to_string()
                        } else {
                            format!("`{}`", option.default)
                        },
                        option.doc.replace('|', "\\|")
                    );
                }
            }
            if let Some(example) = &doc.sql_example {
                let _ = write!(out, "\n**Example**\n\n{}\n", example.trim());
            }
            if let Some(related) = &doc.related_udfs {
                let links: Vec<String> = related.iter().map(|r| format!("[`{r}`](#{r})")).collect();
                let _ = writeln!(out, "\n**Related**: {}", links.join(", "));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_stop_at_the_first_sentence() {
        assert_eq!(first_sentence("Reads a folder. Then more."), "Reads a folder.");
        assert_eq!(first_sentence("Version 1.5 of\n  it"), "Version 1.5 of it");
        assert_eq!(
            first_sentence("Grey with Rec. 709 weights. More."),
            "Grey with Rec. 709 weights."
        );
        assert_eq!(first_sentence("Returns π. Or not."), "Returns π.");
        assert_eq!(first_sentence("Ends in π.Ünicode"), "Ends in π.Ünicode");
    }

    #[test]
    fn every_registered_function_has_a_summary_and_help() {
        let ctx = crate::new_session(&crate::EngineOptions::default()).unwrap();
        let functions = list_functions(&ctx);
        assert!(functions.iter().any(|f| f.name == "pi"));
        for info in &functions {
            for width in [0, 1, 5, 60, 1000] {
                assert!(info.summary(width).chars().count() <= width.max(1), "{}", info.name);
            }
            assert!(render_help(info).starts_with(&info.name));
        }
    }

    #[test]
    fn help_lists_declared_options() {
        let ctx = crate::new_session(&crate::EngineOptions::default()).unwrap();
        let functions = list_functions(&ctx);
        let help = |name: &str| render_help(functions.iter().find(|f| f.name == name).unwrap());
        assert!(help("cnn_train").contains("\nOptions:\n  epochs (default 10): Passes over the training rows."));
        assert!(
            help("images").contains("  batch_rows (default 4): "),
            "{}",
            help("images")
        );
        assert!(help("image_tiles").contains("  edge (default pad): "));
        assert!(!help("crop").contains("Options:"));
        assert!(!help("read_blob").contains("No documentation"), "{}", help("read_blob"));
    }

    /// The committed reference is what the code says; after changing a
    /// function's documentation or options, run scripts/update-function-docs.sh.
    #[test]
    fn the_committed_function_reference_is_current() {
        let ctx = crate::new_session(&crate::EngineOptions::default()).unwrap();
        let committed = include_str!("../docs/src/reference/functions.md");
        assert!(
            committed == reference_markdown(&ctx),
            "docs/src/reference/functions.md differs from the functions' documentation: run scripts/update-function-docs.sh"
        );
    }

    #[test]
    fn help_shows_the_argument_types_the_planner_accepts() {
        let ctx = crate::new_session(&crate::EngineOptions::default()).unwrap();
        let functions = list_functions(&ctx);
        let help = |name: &str| render_help(functions.iter().find(|f| f.name == name).unwrap());
        assert!(
            help("crop").contains("crop(image, Int64, Int64, Int64, Int64)"),
            "{}",
            help("crop")
        );
        let classify = help("cnn_classify");
        assert!(
            classify.contains("cnn_classify(String, image)\n  cnn_classify(String, image, String)"),
            "{classify}"
        );
        // draw_dots checks its own arguments: no types to show.
        assert!(!help("draw_dots").contains("Argument types"));
    }
}
