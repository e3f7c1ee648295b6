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
use datafusion::common::{internal_err, Result, Statistics};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream, StatisticsArgs,
};

use super::{ImageScanExec, TileExec};

/// The smallest batch size of the scans in `plan` that read image content
/// (`content` or `image`); `None` when there are none. A tile table counts
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
            Some(rows) => Ok(Arc::new(ImageBatchSizeExec::new(plan, rows))),
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
#[derive(Debug)]
pub struct ImageBatchSizeExec {
    input: Arc<dyn ExecutionPlan>,
    batch_rows: usize,
}

impl ImageBatchSizeExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, batch_rows: usize) -> Self {
        Self {
            input,
            batch_rows: batch_rows.max(1),
        }
    }

    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }
}

impl DisplayAs for ImageBatchSizeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ImageBatchSizeExec: batch_rows={}", self.batch_rows)
    }
}

impl ExecutionPlan for ImageBatchSizeExec {
    fn name(&self) -> &str {
        "ImageBatchSizeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self::new(input, self.batch_rows))),
            Err(_) => internal_err!("ImageBatchSizeExec has one child"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let config = context.session_config();
        if config.batch_size() <= self.batch_rows {
            return self.input.execute(partition, context);
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
        self.input.execute(partition, Arc::new(capped))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        match input_stats {
            [input] => Ok(Arc::clone(input)),
            _ => internal_err!("ImageBatchSizeExec has one child"),
        }
    }
}
