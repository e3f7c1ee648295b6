//! `STORED AS TSV`: CSV with a tab delimiter, for label files such as
//! `index<TAB>filename<TAB>label`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::Result;
use datafusion::datasource::listing_table_factory::ListingTableFactory;
use datafusion::logical_expr::CreateExternalTable;

/// Rewrites the command to `STORED AS CSV` with `format.delimiter` set to a
/// tab (unless given) and hands it to DataFusion's own CSV tables.
#[derive(Debug, Default)]
pub struct TsvTableFactory {
    csv: ListingTableFactory,
}

#[async_trait]
impl TableProviderFactory for TsvTableFactory {
    async fn create(&self, state: &dyn Session, cmd: &CreateExternalTable) -> Result<Arc<dyn TableProvider>> {
        let mut csv = cmd.clone();
        csv.file_type = "CSV".to_string();
        csv.options
            .entry("format.delimiter".to_string())
            .or_insert_with(|| "\t".to_string());
        self.csv.create(state, &csv).await
    }
}
