//! Folder trees: which files below a table's root it reads, and what their
//! place in the tree says about them.
//!
//! - Listing is recursive, locally and on object stores. In a glob, `*`
//!   and `?` stay within one folder and `**` spans any number of folders,
//!   as in DuckDB and shells with `globstar`.
//! - `relative_path` is the file's path below the root (unique within a
//!   table); `label` is the name of its nearest parent folder that is not a
//!   `key=value` folder, NULL at the root (the class-per-folder layout of
//!   torchvision's ImageFolder and Keras' `image_dataset_from_directory`).
//! - Hive-style `key=value` folders are partition columns, found from the
//!   first such folders below the root, as DataFusion infers them. Filters
//!   on them prune: equalities on the leading keys narrow the listing to
//!   one folder's prefix, and any filter on listing columns drops files
//!   before a byte of them is read.
//! - Files and folders whose names start with `.` are hidden.

use std::sync::Arc;

use datafusion::common::{exec_datafusion_err, Result, ScalarValue};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use futures::TryStreamExt;
use glob::MatchOptions;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

/// Folders deeper than this are not searched for partition keys.
const MAX_PARTITION_DEPTH: usize = 16;

/// `*` and `?` do not cross a `/`; `**/` crosses any number.
const GLOB_MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Where a table's files sit: the root every path is relative to and the
/// partition keys of its `key=value` folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeLayout {
    /// The root below which paths are relative (the location's prefix).
    pub root: Path,
    /// Partition keys in folder order.
    pub partition_keys: Vec<String>,
}

/// What a file's place in the tree says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreePlace {
    pub relative_path: String,
    pub label: Option<String>,
    pub partition_values: Vec<Option<String>>,
}

impl TreeLayout {
    /// The place of the file at `location` (which the listing found below
    /// the root; one file given as the location is its own name).
    pub fn place(&self, location: &Path) -> TreePlace {
        let relative = relative_to(&self.root, location)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| location.filename().unwrap_or_default().to_string());
        let folders: Vec<&str> = relative
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let label = folders
            .iter()
            .rev()
            .find(|f| hive_pair(f).is_none())
            .map(|f| f.to_string());
        let partition_values = self
            .partition_keys
            .iter()
            .map(|key| {
                folders
                    .iter()
                    .filter_map(|f| hive_pair(f))
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.to_string())
            })
            .collect();
        TreePlace {
            relative_path: relative,
            label,
            partition_values,
        }
    }
}

/// `location` below `root`, as `a/b/c.png`; `None` when it is not below.
fn relative_to(root: &Path, location: &Path) -> Option<String> {
    let root = root.as_ref();
    let rest = location.as_ref().strip_prefix(root)?;
    if root.is_empty() {
        return Some(rest.to_string());
    }
    match rest.strip_prefix('/') {
        Some(rest) => Some(rest.to_string()),
        None if rest.is_empty() => Some(String::new()),
        None => None,
    }
}

/// `("key", "value")` for a `key=value` folder name.
fn hive_pair(folder: &str) -> Option<(&str, &str)> {
    folder.split_once('=').filter(|(k, _)| !k.is_empty())
}

/// True when a file below the root is hidden: its name or a folder's
/// starts with `.` (`.DS_Store`, `.ipynb_checkpoints/`).
pub fn is_hidden(relative_path: &str) -> bool {
    relative_path.split('/').any(|s| s.starts_with('.'))
}

/// True when `relative_path` matches the location's glob (if any): as
/// written, or without its `key=value` folders (so `dir/*.png` finds the
/// files of a partitioned tree, as in DataFusion's listing tables).
pub fn matches_glob(url: &ListingTableUrl, relative_path: &str) -> bool {
    let Some(glob) = url.get_glob() else {
        return true;
    };
    if glob.matches_with(relative_path, GLOB_MATCH) {
        return true;
    }
    let without_partitions: Vec<&str> = relative_path.split('/').filter(|s| hive_pair(s).is_none()).collect();
    glob.matches_with(&without_partitions.join("/"), GLOB_MATCH)
}

/// The partition keys of the tree at `url`: the keys of the `key=value`
/// folders met going down through the first folder at each level.
pub async fn discover_partition_keys(store: &dyn ObjectStore, url: &ListingTableUrl) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    if !url.is_collection() {
        return Ok(keys);
    }
    let mut prefix = url.prefix().clone();
    for _ in 0..MAX_PARTITION_DEPTH {
        let listing = store.list_with_delimiter(Some(&prefix)).await?;
        let first = listing
            .common_prefixes
            .into_iter()
            .filter(|p| p.filename().is_some_and(|name| !name.starts_with('.')))
            .min();
        let Some(folder) = first else { break };
        let Some((key, _)) = folder.filename().and_then(hive_pair) else {
            break;
        };
        keys.push(key.to_string());
        prefix = folder;
    }
    Ok(keys)
}

/// The folder below the root that equality filters on the leading
/// partition keys confine a query to (`year = '2024' AND site = 'a'` with
/// keys `year, site` gives `year=2024/site=a`), if any.
pub fn pruned_folder(partition_keys: &[String], filters: &[Expr]) -> Option<String> {
    let equal_to = |key: &str| {
        filters.iter().find_map(|f| match f {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) if c.name == key => {
                    text_value(v)
                }
                _ => None,
            },
            _ => None,
        })
    };
    let folders: Vec<String> = partition_keys
        .iter()
        .map_while(|key| equal_to(key).map(|value| format!("{key}={value}")))
        .collect();
    (!folders.is_empty()).then(|| folders.join("/"))
}

fn text_value(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            // A value that is not one folder name cannot narrow the listing.
            (!s.is_empty() && !s.contains('/')).then(|| s.clone())
        }
        _ => None,
    }
}

/// The visible files at `url` (below `folder` of it, when given), that
/// match its glob, in path order.
pub async fn list_files(
    store: Arc<dyn ObjectStore>,
    url: &ListingTableUrl,
    folder: Option<&str>,
) -> Result<Vec<ObjectMeta>> {
    let mut files: Vec<ObjectMeta> = if url.is_collection() {
        let prefix = match folder {
            Some(folder) => Path::from(format!("{}/{folder}", url.prefix().as_ref()).trim_start_matches('/')),
            None => url.prefix().clone(),
        };
        store.list(Some(&prefix)).try_collect().await?
    } else {
        // One file, or (as DataFusion reads a location without a slash) a
        // folder when no such file exists.
        match store.head(url.prefix()).await {
            Ok(meta) => vec![meta],
            Err(object_store::Error::NotFound { .. }) => store.list(Some(url.prefix())).try_collect().await?,
            Err(e) => return Err(exec_datafusion_err!("cannot list '{}': {e}", url.as_str())),
        }
    };
    files.retain(|meta| {
        let relative = relative_to(url.prefix(), &meta.location).unwrap_or_default();
        !is_hidden(&relative) && matches_glob(url, &relative)
    });
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    fn layout(root: &str, keys: &[&str]) -> TreeLayout {
        TreeLayout {
            root: Path::from(root),
            partition_keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn places_in_a_tree() {
        let tree = layout("data/train", &["year"]);
        let place = tree.place(&Path::from("data/train/year=2024/seal/41.jpg"));
        assert_eq!(place.relative_path, "year=2024/seal/41.jpg");
        assert_eq!(place.label.as_deref(), Some("seal"));
        assert_eq!(place.partition_values, [Some("2024".to_string())]);
        // At the root: no label; a missing key is NULL.
        let place = tree.place(&Path::from("data/train/41.jpg"));
        assert_eq!(
            (place.relative_path.as_str(), place.label, place.partition_values),
            ("41.jpg", None, vec![None])
        );
        // A partition folder is not a label.
        assert_eq!(tree.place(&Path::from("data/train/year=2023/1.jpg")).label, None);
        // One file as the location: its own name.
        let one = layout("data/train/41.jpg", &[]);
        assert_eq!(one.place(&Path::from("data/train/41.jpg")).relative_path, "41.jpg");
        // A root at the store's top.
        assert_eq!(
            layout("", &[]).place(&Path::from("a/b.png")).label.as_deref(),
            Some("a")
        );
        // A sibling folder sharing the root's name as a prefix is not below it.
        assert_eq!(
            relative_to(&Path::from("data/train"), &Path::from("data/training/1.jpg")),
            None
        );
    }

    #[test]
    fn globs_keep_to_folders_unless_doubled() {
        let url = |s: &str| ListingTableUrl::parse(s).unwrap();
        let star = url("/d/*.png");
        assert!(matches_glob(&star, "1.png"));
        assert!(!matches_glob(&star, "x/1.png"));
        assert!(
            matches_glob(&star, "year=2024/1.png"),
            "partition folders are looked through"
        );
        let deep = url("/d/**/*.png");
        assert!(matches_glob(&deep, "x/y/1.png") && matches_glob(&deep, "x/1.png") && matches_glob(&deep, "1.png"));
        assert!(!matches_glob(&deep, "x/1.jpg"));
        assert!(matches_glob(&url("/d/*/*.png"), "x/1.png"));
        assert!(matches_glob(&url("/d/"), "x/y/z.bin"));
    }

    #[test]
    fn hidden_files_and_folders() {
        assert!(is_hidden(".DS_Store") && is_hidden("x/.ipynb_checkpoints/a.png"));
        assert!(!is_hidden("x/a.png"));
    }

    #[test]
    fn equalities_on_leading_keys_prune() {
        let keys = vec!["year".to_string(), "site".to_string()];
        let year = col("year").eq(lit("2024"));
        let site = lit("a").eq(col("site"));
        assert_eq!(
            pruned_folder(&keys, &[year.clone(), site.clone()]).as_deref(),
            Some("year=2024/site=a")
        );
        assert_eq!(pruned_folder(&keys, &[year]).as_deref(), Some("year=2024"));
        // Not the leading key, or not an equality: the whole tree is listed.
        assert_eq!(pruned_folder(&keys, &[site]), None);
        assert_eq!(pruned_folder(&keys, &[col("year").gt(lit("2020"))]), None);
        assert_eq!(pruned_folder(&keys, &[col("year").eq(lit("../x"))]), None);
    }

    #[tokio::test]
    async fn lists_recursively_and_finds_partition_keys() {
        let store = Arc::new(InMemory::new());
        for name in [
            "t/year=2023/site=a/1.png",
            "t/year=2024/site=b/2.png",
            "t/year=2024/site=b/.hidden.png",
            "t/.cache/x.png",
            "other/3.png",
        ] {
            store
                .put(&Path::from(name), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let url = ListingTableUrl::parse("memory:///t/").unwrap();
        let keys = discover_partition_keys(store.as_ref(), &url).await.unwrap();
        assert_eq!(keys, ["year", "site"]);
        let names = |files: Vec<ObjectMeta>| files.into_iter().map(|m| m.location.to_string()).collect::<Vec<_>>();
        let all = list_files(store.clone(), &url, None).await.unwrap();
        assert_eq!(names(all), ["t/year=2023/site=a/1.png", "t/year=2024/site=b/2.png"]);
        let pruned = list_files(store.clone(), &url, Some("year=2024")).await.unwrap();
        assert_eq!(names(pruned), ["t/year=2024/site=b/2.png"]);
    }
}
