//! Files as rows: what is known of each file as the scan reads it, and the
//! record batch built from those rows for the query's columns.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, BinaryViewBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{internal_err, DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::ObjectMeta;
use rookery_image::codec::ImageHeader;
use rookery_image::exif::PhotoMetadata;
use rookery_image::image_value::append_buffer;
use rookery_image::{Image, ImageArrayBuilder};

use crate::images::columns;
use crate::images::tree::{TreeLayout, TreePlace};

/// One file on its way to becoming a row.
pub(super) struct FileRow {
    pub meta: ObjectMeta,
    pub path: String,
    pub name: String,
    /// Its relative path, label and partition values.
    pub place: TreePlace,
    pub header: Option<ImageHeader>,
    /// What its EXIF block says, when the query asks.
    pub photo: Option<PhotoMetadata>,
    pub content: Option<Bytes>,
    /// The decoded pixels, until they move into the batch.
    pub image: Option<Image>,
    pub error: Option<String>,
}

impl FileRow {
    pub fn new(meta: ObjectMeta, store_url: &ObjectStoreUrl, layout: &TreeLayout) -> Self {
        let (path, name) = path_and_name(&meta, store_url);
        Self {
            place: layout.place(&meta.location),
            meta,
            path,
            name,
            header: None,
            photo: None,
            content: None,
            image: None,
            error: None,
        }
    }

    /// The header, unless the file turned out to be unreadable.
    fn valid_header(&self) -> Option<&ImageHeader> {
        self.header.as_ref().filter(|_| self.error.is_none())
    }

    /// The EXIF metadata, unless the file turned out to be unreadable.
    fn valid_photo(&self) -> Option<&PhotoMetadata> {
        self.photo.as_ref().filter(|_| self.error.is_none())
    }
}

/// A listed file's `path` (a local path, or the store's URL) and `name`
/// (its file name without the extension).
pub(crate) fn path_and_name(meta: &ObjectMeta, store_url: &ObjectStoreUrl) -> (String, String) {
    let path = if store_url.as_str().starts_with("file://") {
        format!("/{}", meta.location)
    } else {
        format!("{}{}", store_url.as_str(), meta.location)
    };
    let file_name = meta.location.filename().unwrap_or_default();
    let name = match file_name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => file_name.to_string(),
    };
    (path, name)
}

/// Builds the projected columns from the rows as they stand; what has not
/// been read yet (content, pixels) is NULL. Decoded images move into the
/// batch.
pub(super) fn build_batch(
    table_schema: &SchemaRef,
    projection: &[usize],
    projected_schema: &SchemaRef,
    rows: &mut [FileRow],
) -> Result<RecordBatch> {
    let columns = projection
        .iter()
        .map(|&i| match table_schema.field(i).name().as_str() {
            columns::IMAGE => image_column(rows),
            name => match build_column(name, rows)? {
                Some(column) => Ok(column),
                None => partition_column(table_schema, i, name, rows),
            },
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(Arc::clone(projected_schema), columns, &options).map_err(DataFusionError::from)
}

/// The image column, each decoded image's buffer moved in without a copy.
fn image_column(rows: &mut [FileRow]) -> Result<ArrayRef> {
    let mut images = ImageArrayBuilder::with_capacity(rows.len());
    for row in rows.iter_mut() {
        images
            .append_owned_option(row.image.take())
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", row.path)))?;
    }
    Ok(Arc::new(images.finish()))
}

fn string_column(rows: &[FileRow], value: impl Fn(&FileRow) -> Option<&str>) -> ArrayRef {
    let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
    for row in rows {
        builder.append_option(value(row));
    }
    Arc::new(builder.finish())
}

fn dimension_column(rows: &[FileRow], value: impl Fn(&ImageHeader) -> u32) -> ArrayRef {
    let mut builder = UInt32Builder::with_capacity(rows.len());
    for row in rows {
        builder.append_option(row.valid_header().map(&value));
    }
    Arc::new(builder.finish())
}

/// A partition column: the value of its key in each file's folders.
fn partition_column(table_schema: &SchemaRef, index: usize, name: &str, rows: &[FileRow]) -> Result<ArrayRef> {
    // Partition columns follow the fixed ones, in key order.
    let fixed = table_schema.fields().len() - rows.first().map_or(0, |r| r.place.partition_values.len());
    match index.checked_sub(fixed) {
        Some(key) if rows.iter().all(|r| key < r.place.partition_values.len()) => {
            Ok(string_column(rows, |r| r.place.partition_values[key].as_deref()))
        }
        _ if rows.is_empty() => Ok(datafusion::arrow::array::new_empty_array(
            table_schema.field(index).data_type(),
        )),
        _ => internal_err!("image tables have no column '{name}'"),
    }
}

fn float_column(rows: &[FileRow], value: impl Fn(&PhotoMetadata) -> Option<f64>) -> ArrayRef {
    let mut builder = Float64Builder::with_capacity(rows.len());
    for row in rows {
        builder.append_option(row.valid_photo().and_then(&value));
    }
    Arc::new(builder.finish())
}

/// A fixed column of the image table, or `None` for a partition column.
fn build_column(name: &str, rows: &[FileRow]) -> Result<Option<ArrayRef>> {
    Ok(Some(match name {
        columns::RELATIVE_PATH => string_column(rows, |r| Some(r.place.relative_path.as_str())),
        columns::LABEL => string_column(rows, |r| r.place.label.as_deref()),
        columns::CAMERA => string_column(rows, |r| r.valid_photo().and_then(|p| p.camera.as_deref())),
        columns::GPS_LAT => float_column(rows, |p| p.gps_lat),
        columns::GPS_LON => float_column(rows, |p| p.gps_lon),
        columns::GPS_ALT => float_column(rows, |p| p.gps_alt),
        columns::TAKEN_AT => {
            let mut builder = TimestampMicrosecondBuilder::with_capacity(rows.len());
            for row in rows {
                builder.append_option(row.valid_photo().and_then(|p| p.taken_at));
            }
            Arc::new(builder.finish())
        }
        columns::ORIENTATION => {
            let mut builder = UInt16Builder::with_capacity(rows.len());
            for row in rows {
                builder.append_option(row.valid_photo().and_then(|p| p.orientation));
            }
            Arc::new(builder.finish())
        }
        columns::PATH => string_column(rows, |r| Some(r.path.as_str())),
        columns::NAME => string_column(rows, |r| Some(r.name.as_str())),
        columns::FORMAT => string_column(rows, |r| r.valid_header().map(|h| h.format)),
        columns::ERROR => string_column(rows, |r| r.error.as_deref()),
        columns::SIZE => {
            let mut builder = UInt64Builder::with_capacity(rows.len());
            for row in rows {
                builder.append_value(row.meta.size);
            }
            Arc::new(builder.finish())
        }
        columns::WIDTH => dimension_column(rows, |h| h.width),
        columns::HEIGHT => dimension_column(rows, |h| h.height),
        columns::CONTENT => {
            // The bytes as read, shared with the reader's buffers (no copy).
            let mut builder = BinaryViewBuilder::with_capacity(rows.len());
            for row in rows {
                match row.content.as_ref().filter(|_| row.error.is_none()) {
                    Some(bytes) => append_buffer(&mut builder, Buffer::from(bytes.clone()))
                        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", row.path)))?,
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::image_table_schema;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::UInt32Type;
    use object_store::path::Path;

    fn meta(location: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(location),
            last_modified: Default::default(),
            size,
            e_tag: None,
            version: None,
        }
    }

    fn local() -> ObjectStoreUrl {
        ObjectStoreUrl::local_filesystem()
    }

    fn flat() -> TreeLayout {
        TreeLayout {
            root: Path::from(""),
            partition_keys: vec![],
        }
    }

    #[test]
    fn paths_and_names_from_locations() {
        let row = FileRow::new(meta("data/train/41.jpg", 10), &local(), &flat());
        assert_eq!((row.path.as_str(), row.name.as_str()), ("/data/train/41.jpg", "41"));
        let s3 = ObjectStoreUrl::parse("s3://bucket").unwrap();
        let row = FileRow::new(meta("frames/a.b.png", 10), &s3, &flat());
        assert_eq!(
            (row.path.as_str(), row.name.as_str()),
            ("s3://bucket/frames/a.b.png", "a.b")
        );
        // No stem before the dot, or no dot: the whole file name.
        assert_eq!(FileRow::new(meta("x/.jpg", 1), &local(), &flat()).name, ".jpg");
        assert_eq!(FileRow::new(meta("x/README", 1), &local(), &flat()).name, "README");
    }

    #[test]
    fn unreadable_files_have_no_header_columns() {
        let header = ImageHeader {
            format: "png",
            width: 40,
            height: 30,
            turned: false,
        };
        let mut good = FileRow::new(meta("d/good.png", 100), &local(), &flat());
        good.header = Some(header);
        good.content = Some(Bytes::from_static(b"pixels"));
        let mut bad = FileRow::new(meta("d/bad.png", 100), &local(), &flat());
        bad.header = Some(header);
        bad.content = Some(Bytes::from_static(b"broken"));
        bad.error = Some("truncated".to_string());

        let schema = image_table_schema();
        let names = [
            columns::NAME,
            columns::WIDTH,
            columns::FORMAT,
            columns::CONTENT,
            columns::ERROR,
        ];
        let projection: Vec<usize> = names.iter().map(|n| schema.index_of(n).unwrap()).collect();
        let projected = Arc::new(schema.project(&projection).unwrap());
        let batch = build_batch(&schema, &projection, &projected, &mut [good, bad]).unwrap();

        assert_eq!(batch.num_rows(), 2);
        let width = batch.column(1).as_primitive::<UInt32Type>();
        assert_eq!((width.value(0), width.is_null(1)), (40, true));
        assert!(batch.column(2).is_null(1) && batch.column(3).is_null(1));
        assert_eq!(batch.column(3).as_binary_view().value(0), b"pixels");
        assert_eq!(batch.column(4).as_string::<i32>().value(1), "truncated");
        assert!(batch.column(4).is_null(0));
    }

    #[test]
    fn an_empty_projection_keeps_the_row_count() {
        let schema = image_table_schema();
        let projected = Arc::new(schema.project(&[]).unwrap());
        let mut rows = [
            FileRow::new(meta("a.jpg", 1), &local(), &flat()),
            FileRow::new(meta("b.jpg", 1), &local(), &flat()),
        ];
        let batch = build_batch(&schema, &[], &projected, &mut rows).unwrap();
        assert_eq!((batch.num_rows(), batch.num_columns()), (2, 0));
    }
}
