//! Keeps heavy operators interruptible.
//!
//! DataFusion lets a query yield to its runtime each time a leaf produces a
//! batch. A join can produce a great many batches from a single input batch
//! (a cross join of three tables, say), and an aggregate above it consumes
//! them in one long loop that never yields: the query cannot be cancelled,
//! and other queries on the same threads wait. [`CooperativeJoins`] wraps
//! every operator that combines inputs (and `UNNEST`, which multiplies rows)
//! so each batch it produces spends scheduling budget too.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;

/// Physical optimizer rule: joins and unnests spend scheduling budget per batch.
#[derive(Debug, Default)]
pub struct CooperativeJoins;

impl PhysicalOptimizerRule for CooperativeJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let multiplies = node.children().len() >= 2 || node.name() == "UnnestExec";
            if multiplies {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "CooperativeJoins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
