//! A plan node that is its input as far as planning goes (same schema,
//! partitions, order and statistics) and only changes how the input runs:
//! the shape of the nodes Rookery's session rules put into plans.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, Result, Statistics};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream, StatisticsArgs,
};

/// What a [`PassThroughExec`] does around its input's execution.
pub trait AroundInput: fmt::Debug + Clone + Send + Sync + 'static {
    /// The node's name in plans.
    const NAME: &'static str;

    /// What EXPLAIN shows after the name.
    fn fmt_details(&self, f: &mut fmt::Formatter) -> fmt::Result;

    /// Runs `input`'s `partition`, in whatever way this node is for.
    fn execute(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream>;
}

#[derive(Debug)]
pub struct PassThroughExec<A> {
    input: Arc<dyn ExecutionPlan>,
    around: A,
}

impl<A: AroundInput> PassThroughExec<A> {
    pub fn new(input: Arc<dyn ExecutionPlan>, around: A) -> Self {
        Self { input, around }
    }

    pub fn around(&self) -> &A {
        &self.around
    }
}

impl<A: AroundInput> DisplayAs for PassThroughExec<A> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: ", A::NAME)?;
        self.around.fmt_details(f)
    }
}

impl<A: AroundInput> ExecutionPlan for PassThroughExec<A> {
    fn name(&self) -> &str {
        A::NAME
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

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self::new(input, self.around.clone()))),
            Err(_) => internal_err!("{} has one child", A::NAME),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.around.execute(&self.input, partition, context)
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
            _ => internal_err!("{} has one child", A::NAME),
        }
    }
}
