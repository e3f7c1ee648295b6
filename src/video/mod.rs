//! Video files as tables of frames: `video_frames('dives/' [, options])`,
//! one row per frame of each MP4 (H.264) file, local or on an object store.
//!
//! What a query needs decides the work, as for image tables:
//!
//! | columns used | work per file |
//! |---|---|
//! | `path`, `name`, `frame_index`, `timestamp`, `keyframe`, `width`, `height`, `error` | the index boxes only (no frame decoded) |
//! | `image` | the groups of pictures holding wanted frames, decoded from their keyframe |
//!
//! The options (`fps`, `start`, `end`, `keyframes_only`) and filters on
//! `timestamp` choose frames from the index before any media byte is
//! read; a time range reads from the keyframe before it and no further
//! than its last frame needs. A LIMIT stops reading. Each frame's pixels
//! are reserved in the memory pool before they are made. A file that is
//! not an MP4 video, or is cut off or corrupt, is a row with `error` set
//! (frames decoded before the fault stay), and the query goes on.

mod scan;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::logical_expr::{DocSection, Documentation, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use rookery_image::options::parse::{flag, some, value, whole};
use rookery_image::options::OptionSet;
use rookery_image::video::FrameSelection;

pub use scan::VideoScanExec;

/// Column names of a `video_frames` table, in schema order.
pub mod columns {
    pub const PATH: &str = "path";
    pub const NAME: &str = "name";
    pub const FRAME_INDEX: &str = "frame_index";
    pub const TIMESTAMP: &str = "timestamp";
    pub const KEYFRAME: &str = "keyframe";
    pub const WIDTH: &str = "width";
    pub const HEIGHT: &str = "height";
    pub const IMAGE: &str = "image";
    pub const ERROR: &str = "error";
}

/// The schema of a `video_frames` table.
pub fn video_table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(columns::PATH, DataType::Utf8, false),
        Field::new(columns::NAME, DataType::Utf8, false),
        Field::new(columns::FRAME_INDEX, DataType::UInt64, true),
        Field::new(columns::TIMESTAMP, DataType::Float64, true),
        Field::new(columns::KEYFRAME, DataType::Boolean, true),
        Field::new(columns::WIDTH, DataType::UInt32, true),
        Field::new(columns::HEIGHT, DataType::UInt32, true),
        Field::new(columns::IMAGE, rookery_image::image_type(), true),
        Field::new(columns::ERROR, DataType::Utf8, true),
    ]))
}

const SECONDS: &str = "must be a number of seconds of at least 0";

rookery_image::option_set! {
    /// Options of `video_frames`.
    pub struct VideoOptions for "video_frames" {
        /// Sample at most this many frames a second: the first frame of
        /// each 1/fps-second step from start (all frames when not given).
        fps: Option<f64> = None, some(value(|v: &f64| v.is_finite() && *v > 0.0, "must be a number of frames per second above 0"));
        /// Frames shown at or after this time, in seconds from the first.
        start: f64 = 0.0, value(|v: &f64| v.is_finite() && *v >= 0.0, SECONDS);
        /// Frames shown before this time, in seconds (to the end when not
        /// given).
        end: Option<f64> = None, some(value(|v: &f64| v.is_finite() && *v >= 0.0, SECONDS));
        /// Keyframes only: each decodes alone, the cheapest way to skim.
        keyframes_only: bool = false, flag("must be 'true' or 'false'");
        /// Frames per batch when a query decodes them.
        batch_rows: usize = 4, whole(1, 4096, "must be a whole number from 1 to 4096");
    }
}

impl VideoOptions {
    /// The frames these options choose.
    pub fn selection(&self) -> Result<FrameSelection> {
        if let Some(end) = self.end {
            if end <= self.start {
                return plan_err!("video_frames option end ({end}) must be after start ({})", self.start);
            }
        }
        Ok(FrameSelection {
            start: self.start,
            end: self.end,
            fps: self.fps,
            keyframes_only: self.keyframes_only,
        })
    }
}

/// Video files at a location, as frames.
#[derive(Debug)]
pub struct VideoTable {
    location: ListingTableUrl,
    options: VideoOptions,
    schema: SchemaRef,
}

impl VideoTable {
    pub fn try_new(location: &str, options: VideoOptions) -> Result<Self> {
        options.selection()?;
        Ok(Self {
            location: crate::stores::table_url(location)?,
            options,
            schema: video_table_schema(),
        })
    }
}

/// Filters on `timestamp` narrow the frames read (and are applied again
/// above the scan); others run above it.
fn pushdown(expr: &Expr) -> TableProviderFilterPushDown {
    if scan::time_bounds(expr).is_some() {
        TableProviderFilterPushDown::Inexact
    } else {
        TableProviderFilterPushDown::Unsupported
    }
}

#[async_trait]
impl TableProvider for VideoTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| pushdown(f)).collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let exec = VideoScanExec::try_new(
            state,
            &self.location,
            &self.options,
            Arc::clone(&self.schema),
            projection.cloned(),
            filters,
            limit,
        )
        .await?;
        Ok(Arc::new(exec))
    }
}

/// `video_frames('dives/' [, 'fps=5, start=10, end=20'])`.
#[derive(Debug, Default)]
pub struct VideoFramesTableFunction;

impl TableFunctionImpl for VideoFramesTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage = "video_frames('folder/' | 'clip.mp4' [, 'fps=5, start=0, end=60, keyframes_only=false'])";
        let (location, options) = crate::images::location_and_options("video_frames", args.exprs(), usage)?;
        Ok(Arc::new(VideoTable::try_new(location, VideoOptions::parse(options)?)?))
    }
}

/// Documentation of the `video_frames()` table function.
pub static VIDEO_FRAMES_DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DocSection {
            include: true,
            label: "Image Tables",
            description: None,
        },
        "Reads video files as a table, one row per frame in display order: path, name (file stem), frame_index (from 0), timestamp (seconds from the first frame), keyframe, width, height, image (the decoded frame, an image value) and error (NULL unless the file could not be read). MP4 files with an H.264 track (Baseline, Main or High profile, with B-frames) are decoded by OpenH264. Without the image column only the files' index boxes are read. Time ranges, from the options or from filters on timestamp, seek to the keyframe before them and decode no further than needed. A file that is not an MP4 video, or is cut off, is a row with error set; the query goes on.",
        "video_frames(location [, options])",
    )
    .with_argument("location", "A folder ('dives/'), a glob ('dives/**/*.mp4') or one file; a local path or an object store URL.")
    .with_argument("options", "Optional 'key=value, ...' text; the options are listed under Options.")
    .with_sql_example(
        "```sql\n> SELECT count(*) AS frames, max(timestamp) AS seconds FROM video_frames('data/dives/dives/', 'fps=1');\n+--------+---------+\n| frames | seconds |\n+--------+---------+\n| 20     | 9.0     |\n+--------+---------+\n```",
    )
    .build()
});
