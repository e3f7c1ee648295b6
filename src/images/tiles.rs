//! `image_tiles(location, size, stride [, options])`: every tile of every
//! image of a folder as a row, streamed.
//!
//! `unnest(tiles(image, 64, 16))` builds the list of all tiles of a frame
//! before UNNEST sees it: 63,345 tiles (780 MB) for one 4992x3328 frame.
//! This table decodes one frame at a time per partition (an image scan of
//! one row per batch) and cuts it into batches of `tile_rows` tiles (64 by
//! default, one `cnn_scores` call), so memory holds one frame and
//! one batch of tiles per partition whatever the frame size or stride.
//! Without the `tile` column (positions only) it reads headers, not pixels.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_err, plan_datafusion_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use futures::StreamExt;
use rookery_image::options::parse::{choice, whole};
use rookery_image::options::{key_value_list, OptionSet};
use rookery_image::pixels::{crop, TileEdge, TileGrid};
use rookery_image::{ImageArray, ImageArrayBuilder};

use super::options::{ImageConfig, ImageOptions};
use super::{columns, image_table_schema, pushdown, string_literal, ImageScanExec};

/// Tiles per batch unless `tile_rows` says otherwise: one ONNX Runtime
/// call. 64 holds the seed CNN's activations to ~50 MB a partition, where
/// 256 needed ~200 MB (peak RSS of the seed count on 6 full-size frames:
/// 0.52 GB against 0.88 GB), and runs as fast.
pub const DEFAULT_TILE_ROWS: usize = 64;

/// Columns of a tile table.
pub mod tile_columns {
    pub const X: &str = "x";
    pub const Y: &str = "y";
    pub const TILE: &str = "tile";
}

/// The schema of a tile table: the frame's `path` and `name`, the tile's
/// top-left corner (`x`, `y`) and its pixels (`tile`).
pub fn tile_table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(columns::PATH, DataType::Utf8, false),
        Field::new(columns::NAME, DataType::Utf8, false),
        Field::new(tile_columns::X, DataType::UInt32, false),
        Field::new(tile_columns::Y, DataType::UInt32, false),
        Field::new(tile_columns::TILE, rookery_image::image_type(), false),
    ]))
}

/// How a folder is cut into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileSpec {
    pub size: u32,
    pub stride: u32,
    pub edge: TileEdge,
    /// Tiles per output batch.
    pub rows: usize,
}

/// The tiles of every image of a folder (or glob).
#[derive(Debug)]
pub struct ImageTileTable {
    /// The location as given, glob included (what a cluster's codec sends).
    source: String,
    location: ListingTableUrl,
    options: ImageOptions,
    spec: TileSpec,
    schema: SchemaRef,
}

impl ImageTileTable {
    pub fn try_new(location: &str, options: ImageOptions, spec: TileSpec) -> Result<Self> {
        Ok(Self {
            source: location.to_string(),
            location: crate::stores::table_url(location)?,
            options,
            spec,
            schema: tile_table_schema(),
        })
    }

    /// The location as given to [`ImageTileTable::try_new`].
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn options(&self) -> &ImageOptions {
        &self.options
    }

    pub fn spec(&self) -> TileSpec {
        self.spec
    }
}

/// Filters on `path` and `name` choose frames before any is read.
fn frame_filter(expr: &Expr) -> bool {
    !expr.is_volatile()
        && expr
            .column_refs()
            .iter()
            .all(|c| [columns::PATH, columns::NAME].contains(&c.name.as_str()))
}

#[async_trait]
impl TableProvider for ImageTileTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(filters, frame_filter))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = projection
            .cloned()
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let pixels = projection
            .iter()
            .any(|&i| self.schema.field(i).name() == tile_columns::TILE);
        let frames = image_table_schema();
        let wanted: &[&str] = if pixels {
            &[columns::PATH, columns::NAME, columns::IMAGE, columns::ERROR]
        } else {
            &[
                columns::PATH,
                columns::NAME,
                columns::WIDTH,
                columns::HEIGHT,
                columns::ERROR,
            ]
        };
        let frame_projection = wanted
            .iter()
            .map(|name| frames.index_of(name))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // One frame per batch: the tiles of a frame are cut from it alone.
        let options = self.options.with("batch_rows", "1")?;
        let scan = ImageScanExec::try_new(
            state,
            &self.location,
            &[],
            &options,
            frames,
            Some(frame_projection),
            filters,
            None,
        )
        .await?;
        let drop_invalid = scan.drops_invalid();
        Ok(Arc::new(TileExec::new(
            Arc::new(scan),
            self.spec,
            drop_invalid,
            Arc::new(self.schema.project(&projection)?),
            projection,
        )))
    }
}

/// Cuts the frames of its input (an image scan) into tiles, a batch of at
/// most `spec.rows` tiles at a time.
#[derive(Debug)]
pub struct TileExec {
    input: Arc<dyn ExecutionPlan>,
    spec: TileSpec,
    drop_invalid: bool,
    schema: SchemaRef,
    /// Columns of [`tile_table_schema`] to emit.
    projection: Vec<usize>,
    properties: Arc<PlanProperties>,
}

impl TileExec {
    pub fn spec(&self) -> TileSpec {
        self.spec
    }

    pub fn drops_invalid(&self) -> bool {
        self.drop_invalid
    }

    /// Columns of [`tile_table_schema`] it emits.
    pub fn projection(&self) -> &[usize] {
        &self.projection
    }

    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        spec: TileSpec,
        drop_invalid: bool,
        schema: SchemaRef,
        projection: Vec<usize>,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            input,
            spec,
            drop_invalid,
            schema,
            projection,
            properties: Arc::new(properties),
        }
    }

    /// Tiles per output batch.
    pub fn rows_per_batch(&self) -> usize {
        self.spec.rows
    }
}

impl DisplayAs for TileExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<&str> = self.schema.fields().iter().map(|f| f.name().as_str()).collect();
        write!(
            f,
            "TileExec: size={}, stride={}, edge={:?}, tile_rows={}, projection=[{}]",
            self.spec.size,
            self.spec.stride,
            self.spec.edge,
            self.spec.rows,
            columns.join(", ")
        )
    }
}

impl ExecutionPlan for TileExec {
    fn name(&self) -> &str {
        "TileExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match children.as_slice() {
            [input] => Ok(Arc::new(TileExec::new(
                Arc::clone(input),
                self.spec,
                self.drop_invalid,
                Arc::clone(&self.schema),
                self.projection.clone(),
            ))),
            _ => internal_err!("TileExec takes one input"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("TileExec[{partition}]")).register(context.memory_pool());
        let cutter = TileCutter {
            input,
            frames: None,
            spec: self.spec,
            drop_invalid: self.drop_invalid,
            schema: Arc::clone(&self.schema),
            projection: self.projection.clone(),
            reservation,
        };
        let stream = futures::stream::try_unfold(cutter, |mut cutter| async move {
            Ok(cutter.next_batch().await?.map(|batch| (batch, cutter)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// A batch of frames being cut, and where the cutting is.
struct Frames {
    batch: RecordBatch,
    row: usize,
    grid: Option<TileGrid>,
    next_tile: u64,
}

struct TileCutter {
    input: SendableRecordBatchStream,
    frames: Option<Frames>,
    spec: TileSpec,
    drop_invalid: bool,
    schema: SchemaRef,
    projection: Vec<usize>,
    reservation: MemoryReservation,
}

impl TileCutter {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // The previous batch is downstream's to account for now.
        self.reservation.free();
        loop {
            if self.frames.is_none() {
                match self.input.next().await {
                    None => return Ok(None),
                    Some(batch) => {
                        self.frames = Some(Frames {
                            batch: batch?,
                            row: 0,
                            grid: None,
                            next_tile: 0,
                        })
                    }
                }
            }
            let positions = self.next_positions()?;
            if positions.is_empty() {
                self.frames = None;
                continue;
            }
            return self.build(positions).map(Some);
        }
    }

    /// Up to `spec.rows` (frame row, x, y) of the current frames; empty
    /// when they are all cut.
    fn next_positions(&mut self) -> Result<Vec<(u32, u32, u32)>> {
        let spec = self.spec;
        let drop_invalid = self.drop_invalid;
        let Some(frames) = self.frames.as_mut() else {
            return Ok(Vec::new());
        };
        let mut positions = Vec::with_capacity(spec.rows);
        while positions.len() < spec.rows && frames.row < frames.batch.num_rows() {
            let grid = match &frames.grid {
                Some(grid) => grid,
                None => {
                    let grid = frame_grid(&frames.batch, frames.row, spec, drop_invalid)?;
                    frames.grid.insert(grid)
                }
            };
            while positions.len() < spec.rows && frames.next_tile < grid.len() {
                let (x, y) = grid.origin(frames.next_tile);
                positions.push((frames.row as u32, x, y));
                frames.next_tile += 1;
            }
            if frames.next_tile >= grid.len() {
                frames.row += 1;
                frames.grid = None;
                frames.next_tile = 0;
            }
        }
        Ok(positions)
    }

    fn build(&mut self, positions: Vec<(u32, u32, u32)>) -> Result<RecordBatch> {
        let Some(frames) = &self.frames else {
            return internal_err!("TileExec: no frames to cut");
        };
        let batch = &frames.batch.clone();
        let rows = UInt32Array::from_iter_values(positions.iter().map(|p| p.0));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &i in &self.projection {
            let column: ArrayRef = match tile_table_schema().field(i).name().as_str() {
                name @ (columns::PATH | columns::NAME) => take(frame_column(batch, name)?.as_ref(), &rows, None)?,
                tile_columns::X => Arc::new(UInt32Array::from_iter_values(positions.iter().map(|p| p.1))),
                tile_columns::Y => Arc::new(UInt32Array::from_iter_values(positions.iter().map(|p| p.2))),
                tile_columns::TILE => cut(batch, &positions, self.spec.size, &mut self.reservation)?,
                other => return internal_err!("tile tables have no column '{other}'"),
            };
            columns.push(column);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(positions.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}

/// The pixels of the tiles at `positions` (frame row, x, y), reserved
/// before they are made.
fn cut(
    batch: &RecordBatch,
    positions: &[(u32, u32, u32)],
    size: u32,
    reservation: &mut MemoryReservation,
) -> Result<ArrayRef> {
    let images = ImageArray::try_new(frame_column(batch, columns::IMAGE)?.as_ref())?;
    let mut tiles = ImageArrayBuilder::with_capacity(positions.len());
    for &(row, x, y) in positions {
        let Some(frame) = images.get(row as usize)? else {
            return internal_err!("TileExec: tile of a frame without pixels");
        };
        reservation.try_grow(size as usize * size as usize * frame.channels as usize)?;
        tiles
            .append(crop(frame, x as i64, y as i64, size, size).view())
            .map_err(DataFusionError::from)?;
    }
    Ok(Arc::new(tiles.finish()))
}

fn frame_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("TileExec: input has no column '{name}'")))
}

/// The tiles of frame `row`: none for a file that could not be read (an
/// error naming it, unless `drop_invalid`).
fn frame_grid(batch: &RecordBatch, row: usize, spec: TileSpec, drop_invalid: bool) -> Result<TileGrid> {
    let path = frame_column(batch, columns::PATH)?
        .as_string::<i32>()
        .value(row)
        .to_string();
    let errors = frame_column(batch, columns::ERROR)?;
    let errors: &StringArray = errors.as_string();
    if errors.is_valid(row) {
        if drop_invalid {
            return Ok(TileGrid::new(0, 0, spec.size, spec.stride, spec.edge));
        }
        return exec_err!(
            "image_tiles: {path}: {} (drop_invalid=true skips such files)",
            errors.value(row).trim()
        );
    }
    let (width, height) = match batch.column_by_name(columns::IMAGE) {
        Some(images) => {
            let images = ImageArray::try_new(images.as_ref())?;
            match images.get(row)? {
                Some(frame) => (frame.width, frame.height),
                None => return exec_err!("image_tiles: {path}: no pixels"),
            }
        }
        None => {
            let dimension = |name: &str| -> Result<u32> {
                let column = frame_column(batch, name)?.as_primitive::<UInt32Type>();
                if column.is_valid(row) {
                    Ok(column.value(row))
                } else {
                    exec_err!("image_tiles: {path}: no {name} in its header")
                }
            };
            (dimension(columns::WIDTH)?, dimension(columns::HEIGHT)?)
        }
    };
    Ok(TileGrid::new(width, height, spec.size, spec.stride, spec.edge))
}

/// `image_tiles('dir/', size, stride [, 'edge=pad, tile_rows=64, ...'])`.
#[derive(Debug, Default)]
pub struct ImageTilesTableFunction;

const USAGE: &str =
    "image_tiles('folder/' | 'folder/*.jpg', size, stride [, 'edge=pad|drop, tile_rows=64, drop_invalid=true, max_pixels=N'])";

fn integer_literal(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => Some(*v),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => Some(*v as i64),
        Expr::Literal(ScalarValue::UInt32(Some(v)), _) => Some(*v as i64),
        Expr::Literal(ScalarValue::UInt64(Some(v)), _) => i64::try_from(*v).ok(),
        _ => None,
    }
}

rookery_image::option_set! {
    /// Options of `image_tiles` besides the image table's.
    pub struct TileOptions for "image_tiles" {
        /// pad or drop: keep the tiles over the right and bottom edges,
        /// padded with black, or only whole tiles.
        edge: TileEdge = TileEdge::Pad, choice(&[("pad", TileEdge::Pad), ("drop", TileEdge::Drop)], "must be 'pad' or 'drop'");
        /// Tiles per output batch.
        tile_rows: usize = DEFAULT_TILE_ROWS, whole(1, 1 << 20, "must be 1 to 1048576");
    }
}

/// Reads the arguments of `image_tiles`.
pub fn parse_tile_args(exprs: &[Expr]) -> Result<(String, ImageOptions, TileSpec)> {
    let (location, size, stride, options) = match exprs {
        [l, s, t] => (l, s, t, None),
        [l, s, t, o] => (l, s, t, Some(o)),
        _ => return plan_err!("image_tiles() takes 3 or 4 arguments: {USAGE}"),
    };
    let Some(location) = string_literal(location) else {
        return plan_err!("image_tiles(): the location must be a string literal: {USAGE}");
    };
    let side = |what: &str, expr: &Expr| -> Result<u32> {
        match integer_literal(expr) {
            Some(v) if (1..=65535).contains(&v) => Ok(v as u32),
            Some(v) => plan_err!("image_tiles(): {what} must be 1 to 65535, not {v}"),
            None => plan_err!("image_tiles(): {what} must be an integer literal: {USAGE}"),
        }
    };
    let (size, stride) = (side("size", size)?, side("stride", stride)?);
    let text = match options {
        None => "",
        Some(expr) => match string_literal(expr) {
            Some(text) => text,
            None => return plan_err!("image_tiles(): options must be a string literal: {USAGE}"),
        },
    };
    // Tiling's own options, then the image table's.
    let mut tiling = TileOptions::default();
    let mut image_options = Vec::new();
    let known = format!("{}, {}", TileOptions::known(), ImageConfig::known());
    for (key, value) in key_value_list(TileOptions::WHAT, &known, text)? {
        if key == "batch_rows" {
            return plan_err!("image_tiles(): frames are read one at a time; use tile_rows");
        } else if TileOptions::docs().iter().any(|d| d.key == key) {
            // Worded as the function's other argument errors.
            tiling.set(&key, &value).map_err(|e| {
                let what = e.0.strip_prefix("image_tiles option ").unwrap_or(&e.0);
                plan_datafusion_err!("image_tiles(): {what}")
            })?;
        } else if ImageConfig::docs().iter().any(|d| d.key == key) {
            image_options.push((key, value));
        } else {
            return plan_err!("unknown image_tiles option '{key}' (known: {known})");
        }
    }
    let spec = TileSpec {
        size,
        stride,
        edge: tiling.edge,
        rows: tiling.tile_rows,
    };
    let options = ImageOptions::from_map(&image_options.into_iter().collect())?;
    Ok((location.to_string(), options, spec))
}

impl TableFunctionImpl for ImageTilesTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (location, options, spec) = parse_tile_args(args.exprs())?;
        Ok(Arc::new(ImageTileTable::try_new(&location, options, spec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::lit;

    #[test]
    fn arguments() {
        let (location, options, spec) = parse_tile_args(&[
            lit("data/"),
            lit(64i64),
            lit(16i64),
            lit("edge=drop, tile_rows=8, drop_invalid=true"),
        ])
        .unwrap();
        assert_eq!(location, "data/");
        assert_eq!(options.get("drop_invalid"), Some("true"));
        assert_eq!(
            spec,
            TileSpec {
                size: 64,
                stride: 16,
                edge: TileEdge::Drop,
                rows: 8
            }
        );
        for (args, message) in [
            (vec![lit("d/"), lit(0i64), lit(16i64)], "size must be 1 to 65535, not 0"),
            (vec![lit("d/"), lit(64i64), lit(i64::MAX)], "stride must be 1 to 65535"),
            (
                vec![lit("d/"), lit("64"), lit(16i64)],
                "size must be an integer literal",
            ),
            (vec![lit("d/"), lit(64i64)], "takes 3 or 4 arguments"),
            (
                vec![lit("d/"), lit(64i64), lit(16i64), lit("tile_rows=0")],
                "tile_rows must be",
            ),
            (
                vec![lit("d/"), lit(64i64), lit(16i64), lit("edge=round")],
                "edge must be",
            ),
            (vec![lit("d/"), lit(64i64), lit(16i64), lit("colour=red")], "colour"),
        ] {
            let err = parse_tile_args(&args).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
    }
}
