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

/// What the image scans of a plan have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    pub files_read: u64,
    pub images_decoded: u64,
}

impl ScanCounts {
    /// The sums over every operator of `plan` and its children.
    pub fn of_plan(plan: &dyn ExecutionPlan) -> Self {
        let mut counts = Self::default();
        if let Some(metrics) = plan.metrics() {
            let sum = |name: &str| metrics.sum_by_name(name).map_or(0, |v| v.as_usize() as u64);
            counts.files_read += sum("files_read");
            counts.images_decoded += sum("images_decoded");
        }
        for child in plan.children() {
            let more = Self::of_plan(child.as_ref());
            counts.files_read += more.files_read;
            counts.images_decoded += more.images_decoded;
        }
        counts
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
