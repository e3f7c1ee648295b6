//! Planning an image scan: which files, in which partitions, and how much
//! of each file the query's columns and filter need read.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{internal_err, plan_err, DFSchema, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use object_store::ObjectMeta;

use super::batch::{build_batch, FileRow};

use crate::images::columns;
use crate::images::options::{ImageConfig, ImageOptions};
use crate::images::tree::{self, TreeLayout};

/// What a scan must do per file, from the columns it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Work {
    pub header: bool,
    pub content: bool,
    pub decode: bool,
    /// The query uses EXIF columns: the header's EXIF block is parsed.
    pub photo: bool,
    /// The filter reads header columns: headers come before it.
    pub filter_needs_header: bool,
}

/// Columns read from a file's header (its EXIF block included).
const HEADER_COLUMNS: [&str; 9] = [
    columns::FORMAT,
    columns::WIDTH,
    columns::HEIGHT,
    columns::TAKEN_AT,
    columns::GPS_LAT,
    columns::GPS_LON,
    columns::GPS_ALT,
    columns::CAMERA,
    columns::ORIENTATION,
];

impl Work {
    /// The work for a query that uses `columns` (its projection and its
    /// filter's columns), of which `filter_columns` are the filter's.
    pub fn for_columns(columns: &[&str], filter_columns: &[&str], drop_invalid: bool) -> Self {
        let uses = |name: &str| columns.contains(&name) || filter_columns.contains(&name);
        let decode = uses(columns::IMAGE);
        let content = decode || uses(columns::CONTENT);
        let header = content || drop_invalid || uses(columns::ERROR) || HEADER_COLUMNS.iter().any(|c| uses(c));
        let photo = columns::PHOTO.iter().any(|c| uses(c));
        let filter_needs_header = HEADER_COLUMNS.iter().any(|c| filter_columns.contains(c));
        Self {
            header,
            content,
            decode,
            photo,
            filter_needs_header,
        }
    }

    pub fn describe(&self) -> &'static str {
        match (self.decode, self.content, self.header) {
            (true, _, _) => "decode",
            (false, true, _) => "content",
            (false, false, true) => "header",
            _ => "listing",
        }
    }

    /// About how many bytes the scan makes of files of `file_bytes` bytes
    /// in all: decoded pixels are about a dozen times the JPEG bytes, and
    /// other columns are small beside them. Join planning reads this to
    /// build its hash tables on the side without pixels.
    pub fn estimated_output_bytes(&self, files: usize, file_bytes: u64) -> u64 {
        if self.decode {
            file_bytes.saturating_mul(12)
        } else if self.content {
            file_bytes
        } else {
            files as u64 * 64
        }
    }
}

/// Plan-wide settings shared by the partition streams.
#[derive(Debug, Clone)]
pub(super) struct ScanSettings {
    pub table_schema: SchemaRef,
    pub projection: Vec<usize>,
    pub projected_schema: SchemaRef,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub options: ImageConfig,
    pub work: Work,
    /// The tree the files sit in (their relative paths, labels and
    /// partition values).
    pub layout: TreeLayout,
    pub store_url: ObjectStoreUrl,
    /// Rows each partition stops after (the query's LIMIT, after the filter).
    pub limit: Option<usize>,
    pub rows_per_batch: usize,
}

impl ScanSettings {
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        state: &dyn Session,
        store_url: ObjectStoreUrl,
        layout: TreeLayout,
        options: &ImageOptions,
        table_schema: SchemaRef,
        projection: Option<Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Self> {
        let options = options.resolve(state.config_options())?;
        let projection = projection.unwrap_or_else(|| (0..table_schema.fields().len()).collect());
        let projected_schema = Arc::new(table_schema.project(&projection)?);
        let projected: Vec<&str> = projected_schema.fields().iter().map(|f| f.name().as_str()).collect();
        let filter_expr = conjunction(filters.iter().cloned());
        let filter_columns: Vec<&str> = filter_expr
            .iter()
            .flat_map(|e| e.column_refs())
            .map(|c| c.name.as_str())
            .collect();
        let work = Work::for_columns(&projected, &filter_columns, options.drop_invalid);
        let filter = match filter_expr {
            Some(expr) => {
                let df_schema = DFSchema::try_from(table_schema.as_ref().clone())?;
                Some(state.create_physical_expr(expr, &df_schema)?)
            }
            None => None,
        };
        let rows_per_batch = if work.content {
            options.batch_rows
        } else {
            state.config().batch_size().max(1)
        };
        Ok(Self {
            table_schema,
            projection,
            projected_schema,
            filter,
            options,
            work,
            layout,
            store_url,
            limit,
            rows_per_batch,
        })
    }

    /// The columns known from the listing alone: the fixed ones and the
    /// partition columns.
    pub fn is_listing_column(&self, name: &str) -> bool {
        columns::LISTING.contains(&name) || self.layout.partition_keys.iter().any(|k| k == name)
    }
}

/// The files at `location` that the query's filters can want: listed
/// below the folder that equalities on partition columns confine them to,
/// then without those that the filters on listing columns refuse, before
/// any is read.
pub(super) async fn list_files(
    state: &dyn Session,
    location: &ListingTableUrl,
    settings: &ScanSettings,
    filters: &[Expr],
) -> Result<Vec<ObjectMeta>> {
    let store = state.runtime_env().object_store(location.object_store())?;
    let folder = tree::pruned_folder(&settings.layout.partition_keys, filters);
    let files = tree::list_files(store, location, folder.as_deref()).await?;
    if files.is_empty() && folder.is_none() {
        return plan_err!("no files found at '{}'", location.as_str());
    }
    let on_listing: Vec<Expr> = filters
        .iter()
        .filter(|f| {
            f.column_refs()
                .iter()
                .all(|c| settings.is_listing_column(c.name.as_str()))
        })
        .cloned()
        .collect();
    let Some(expr) = conjunction(on_listing) else {
        return Ok(files);
    };
    let schema = &settings.table_schema;
    let predicate = state.create_physical_expr(expr, &DFSchema::try_from(schema.as_ref().clone())?)?;
    let mut rows: Vec<FileRow> = files
        .into_iter()
        .map(|m| FileRow::new(m, &settings.store_url, &settings.layout))
        .collect();
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    let batch = build_batch(schema, &all, schema, &mut rows)?;
    let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
    let Some(mask) = mask.as_any().downcast_ref::<BooleanArray>() else {
        return internal_err!("image listing filter did not return booleans");
    };
    Ok(rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask.is_valid(*i) && mask.value(*i))
        .map(|(_, row)| row.meta)
        .collect())
}

/// Deals `files` round-robin to at most `target` partitions, so that every
/// core decodes and neighbouring (often similar) files spread out.
pub(crate) fn deal(files: Vec<ObjectMeta>, target: usize) -> Vec<Arc<Vec<ObjectMeta>>> {
    let n = target.max(1).min(files.len()).max(1);
    let mut partitions: Vec<Vec<ObjectMeta>> = (0..n).map(|_| Vec::new()).collect();
    for (i, file) in files.into_iter().enumerate() {
        partitions[i % n].push(file);
    }
    partitions.into_iter().map(Arc::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;

    fn file(name: &str) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(name),
            last_modified: Default::default(),
            size: 1,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn work_follows_the_columns() {
        let listing = Work::for_columns(&["path", "name", "size"], &[], false);
        assert_eq!(listing.describe(), "listing");
        assert!(!listing.header);
        assert_eq!(Work::for_columns(&["width"], &[], false).describe(), "header");
        assert_eq!(Work::for_columns(&["error"], &[], false).describe(), "header");
        // Dropping invalid files means reading every header.
        assert_eq!(Work::for_columns(&["name"], &[], true).describe(), "header");
        assert_eq!(
            Work::for_columns(&["name", "content"], &[], false).describe(),
            "content"
        );
        assert_eq!(Work::for_columns(&["image"], &[], false).describe(), "decode");
        // A filter's columns count, and one on the header reads headers first.
        let filtered = Work::for_columns(&["image"], &["width"], false);
        assert!(filtered.decode && filtered.filter_needs_header);
        assert!(!Work::for_columns(&["image"], &["name"], false).filter_needs_header);
        assert_eq!(Work::for_columns(&["name"], &["content"], false).describe(), "content");
    }

    #[test]
    fn pixel_estimates_dwarf_header_estimates() {
        let decode = Work::for_columns(&["image"], &[], false);
        let header = Work::for_columns(&["width"], &[], false);
        assert_eq!(decode.estimated_output_bytes(2, 1000), 12_000);
        assert_eq!(header.estimated_output_bytes(2, 1000), 128);
        assert_eq!(decode.estimated_output_bytes(1, u64::MAX), u64::MAX);
    }

    #[test]
    fn files_are_dealt_round_robin() {
        let files: Vec<ObjectMeta> = (0..5).map(|i| file(&format!("{i}.jpg"))).collect();
        let dealt = deal(files.clone(), 2);
        let names = |p: &Arc<Vec<ObjectMeta>>| p.iter().map(|m| m.location.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&dealt[0]), ["0.jpg", "2.jpg", "4.jpg"]);
        assert_eq!(names(&dealt[1]), ["1.jpg", "3.jpg"]);
        // Never more partitions than files, never none.
        assert_eq!(deal(files[..2].to_vec(), 16).len(), 2);
        assert_eq!(deal(files[..1].to_vec(), 0).len(), 1);
    }
}
