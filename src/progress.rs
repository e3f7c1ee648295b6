//! Progress of a running statement, read from its own plan's metrics, as
//! datafusion-cli's progress reads them: each image scan counts the files
//! it read and the images it decoded in its `ExecutionPlanMetricsSet`, and
//! a display polls the plan it started. Two sessions in one process (two
//! notebooks' kernels share none, but two `connect()`s do) see only their
//! own statements.

use std::sync::{Arc, Mutex};

use datafusion::common::Result;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};

/// Metric names of a resumable COPY (`crate::resume`): images the
/// statement covers, those an earlier run committed, and those committed.
pub const IMAGES_TOTAL: &str = "images_total";
pub const IMAGES_SKIPPED: &str = "images_skipped";
pub const IMAGES_COMMITTED: &str = "images_committed";

/// What the image scans of a plan have done so far, and for a resumable
/// COPY how far it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    pub files_read: u64,
    pub images_decoded: u64,
    /// Images a resumable COPY covers (0 for other statements).
    pub images_total: u64,
    /// Of those, committed by an earlier run.
    pub images_skipped: u64,
    /// Committed so far, by earlier runs and this one.
    pub images_committed: u64,
}

impl ScanCounts {
    /// The sums over every operator of `plan` and its children.
    pub fn of_plan(plan: &dyn ExecutionPlan) -> Self {
        let mut counts = Self::default();
        if let Some(metrics) = plan.metrics() {
            let sum = |name: &str| metrics.sum_by_name(name).map_or(0, |v| v.as_usize() as u64);
            counts = Self {
                files_read: sum("files_read"),
                images_decoded: sum("images_decoded"),
                images_total: sum(IMAGES_TOTAL),
                images_skipped: sum(IMAGES_SKIPPED),
                images_committed: sum(IMAGES_COMMITTED),
            };
        }
        for child in plan.children() {
            counts = counts.plus(Self::of_plan(child.as_ref()));
        }
        counts
    }

    /// Both counts added up.
    pub fn plus(self, other: Self) -> Self {
        Self {
            files_read: self.files_read + other.files_read,
            images_decoded: self.images_decoded + other.images_decoded,
            images_total: self.images_total + other.images_total,
            images_skipped: self.images_skipped + other.images_skipped,
            images_committed: self.images_committed + other.images_committed,
        }
    }

    /// For a resumable COPY: images left, and the time they will take at
    /// this run's rate so far (`None` before its first commit).
    pub fn remaining(&self, elapsed: std::time::Duration) -> Option<(u64, Option<std::time::Duration>)> {
        if self.images_total == 0 {
            return None;
        }
        let left = self.images_total.saturating_sub(self.images_committed);
        let done_here = self.images_committed.saturating_sub(self.images_skipped);
        let estimate = (done_here > 0).then(|| elapsed.mul_f64(left as f64 / done_here as f64));
        Some((left, estimate))
    }
}

/// The plan a session (or a REPL) runs now, for a progress display to
/// poll; cloned handles share it.
#[derive(Debug, Clone, Default)]
pub struct PlanProgress {
    plan: Arc<Mutex<Option<Arc<dyn ExecutionPlan>>>>,
}

impl PlanProgress {
    /// Watches `plan` from now on, instead of the plan before.
    pub fn watch(&self, plan: Arc<dyn ExecutionPlan>) {
        if let Ok(mut current) = self.plan.lock() {
            *current = Some(plan);
        }
    }

    /// The counts of the plan watched (zero before any).
    pub fn counts(&self) -> ScanCounts {
        let plan = self.plan.lock().ok().and_then(|p| p.clone());
        plan.map_or_else(ScanCounts::default, |p| ScanCounts::of_plan(p.as_ref()))
    }

    /// Plans `frame`, watches its plan and starts it.
    pub async fn execute(&self, frame: DataFrame) -> Result<SendableRecordBatchStream> {
        let task = Arc::new(frame.task_ctx());
        let plan = frame.create_physical_plan().await?;
        self.watch(Arc::clone(&plan));
        execute_stream(plan, task)
    }
}
