//! Keeps batches of decoded images small above the scan.
//!
//! DataFusion's filters, joins and repartitions gather rows into batches of
//! `datafusion.execution.batch_size` (8192) rows. For 50 MB decoded frames
//! that is the whole folder in memory, so a plan that reads image content
//! runs with the batch size of its image scans instead.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::ExecutionPlan;

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

/// Sets the batch size of filters above content-reading image scans to the
/// scan's (filters fix theirs at planning time; other operators read it
/// from the task context, see `exec`).
#[derive(Debug, Default)]
pub struct CapBatchesOverImages;

impl PhysicalOptimizerRule for CapBatchesOverImages {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            match image_batch_rows(filter.input()) {
                Some(rows) if rows < filter.batch_size() => Ok(Transformed::yes(
                    Arc::new(filter.with_batch_size(rows)?) as Arc<dyn ExecutionPlan>,
                )),
                _ => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "cap_batches_over_images"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
