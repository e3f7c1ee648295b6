//! Keeps batches of decoded images small above the scan.
//!
//! DataFusion's filters, joins and repartitions gather rows into batches of
//! `datafusion.execution.batch_size` (8192) rows. For 50 MB decoded frames
//! that is the whole folder in memory, so a plan that reads image content
//! runs with the batch size of its image scans instead. This is a rule of
//! the session, so `SessionContext::sql`, CREATE TABLE AS and COPY all get
//! it.

use std::sync::Arc;

use std::fmt;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};

use super::{ImageScanExec, TileExec};
use crate::pass_through::{AroundInput, PassThroughExec};

/// The smallest batch size of the scans in `plan` that read image content
/// (`content` or `image`, or decode video frames); `None` when there are
/// none. A tile table counts
/// with its tiles per batch (`tile_rows`): what leaves it are tiles, not the
/// frames its own scan reads one at a time.
pub fn image_batch_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    let mut smallest: Option<usize> = None;
    let _ = plan.apply(|node| {
        if let Some(tiles) = node.downcast_ref::<TileExec>() {
            let rows = tiles.rows_per_batch();
            smallest = Some(smallest.map_or(rows, |s| s.min(rows)));
            return Ok(TreeNodeRecursion::Jump);
        }
        if let Some(scan) = node.downcast_ref::<ImageScanExec>() {
            if scan.reads_content() {
                let rows = scan.rows_per_batch();
                smallest = Some(smallest.map_or(rows, |s| s.min(rows)));
            }
        }
        if let Some(scan) = node.downcast_ref::<crate::video::VideoScanExec>() {
            if let Some(rows) = scan.frames_per_batch() {
                smallest = Some(smallest.map_or(rows, |s| s.min(rows)));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    smallest
}

/// Caps batches above image scans, for the whole session: filters above a
/// content-reading scan get the scan's batch size (they fix theirs at
/// planning time), and the plan's root becomes an [`ImageBatchSizeExec`],
/// which runs everything below it with that batch size (joins,
/// repartitions and sinks read theirs from the task context at execution).
#[derive(Debug, Default)]
pub struct CapBatchesOverImages;

impl PhysicalOptimizerRule for CapBatchesOverImages {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = plan
            .transform_up(|node| {
                let Some(filter) = node.downcast_ref::<FilterExec>() else {
                    return Ok(Transformed::no(node));
                };
                match image_batch_rows(filter.input()) {
                    Some(rows) if rows < filter.batch_size() => Ok(Transformed::yes(Arc::new(
                        filter.with_batch_size(rows)?,
                    )
                        as Arc<dyn ExecutionPlan>)),
                    _ => Ok(Transformed::no(node)),
                }
            })?
            .data;
        if plan.downcast_ref::<ImageBatchSizeExec>().is_some() {
            return Ok(plan);
        }
        match image_batch_rows(&plan) {
            Some(rows) => Ok(Arc::new(ImageBatchSizeExec::new(plan, BatchSizeCap::new(rows)))),
            None => Ok(plan),
        }
    }

    fn name(&self) -> &str {
        "cap_batches_over_images"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Runs its input with `datafusion.execution.batch_size` at most
/// `batch_rows`; otherwise transparent (same schema, partitions, order).
pub type ImageBatchSizeExec = PassThroughExec<BatchSizeCap>;

/// The batch size an [`ImageBatchSizeExec`] runs its input with.
#[derive(Debug, Clone, Copy)]
pub struct BatchSizeCap {
    batch_rows: usize,
}

impl BatchSizeCap {
    pub fn new(batch_rows: usize) -> Self {
        Self {
            batch_rows: batch_rows.max(1),
        }
    }

    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }
}

impl AroundInput for BatchSizeCap {
    const NAME: &'static str = "ImageBatchSizeExec";

    fn fmt_details(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "batch_rows={}", self.batch_rows)
    }

    fn execute(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let config = context.session_config();
        if config.batch_size() <= self.batch_rows {
            return input.execute(partition, context);
        }
        let capped = TaskContext::new(
            context.task_id(),
            context.session_id(),
            config.clone().with_batch_size(self.batch_rows),
            context.scalar_functions().clone(),
            context.higher_order_functions().clone(),
            context.aggregate_functions().clone(),
            context.window_functions().clone(),
            context.runtime_env(),
        );
        input.execute(partition, Arc::new(capped))
    }
}
