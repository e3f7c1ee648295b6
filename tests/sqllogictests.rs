//! Runs the `.slt` files in `tests/slt/` against Rookery's own session.
//!
//! `cargo test --test sqllogictests` runs them all; extra arguments keep the
//! files whose name contains one of them (`cargo test --test sqllogictests
//! -- images`). Each file gets a fresh session; `$FIXTURES` is the folder of
//! generated test images (see `tests/common`), `$__TEST_DIR__` a scratch
//! folder of its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use rookery::display::batch_to_strings;
use rookery::{new_session, EngineOptions};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

struct RookeryDb {
    ctx: SessionContext,
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) => {
            DefaultColumnType::FloatingPoint
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

#[async_trait]
impl AsyncDB for RookeryDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    /// Through `SessionContext::sql` itself, as a library user runs SQL:
    /// every feature the files test must work without the CLI.
    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let frame = self.ctx.sql(sql).await?;
        let schema = frame.schema().as_arrow().clone();
        let batches = frame.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema.fields().iter().map(|f| column_type(f.data_type())).collect();
        let mut rows = Vec::new();
        for batch in &batches {
            for row in batch_to_strings(batch, "NULL")? {
                // An empty string prints as (empty), as in DataFusion's own tests.
                rows.push(
                    row.into_iter()
                        .map(|c| if c.is_empty() { "(empty)".to_string() } else { c })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "rookery"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn slt_files(filters: &[String]) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "slt"))
        .filter(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
        })
        .collect();
    files.sort();
    files
}

fn main() -> ExitCode {
    // cargo passes its own flags (--nocapture, --test-threads, ...): keep
    // only plain words as file filters.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let fixtures = tempfile::tempdir().expect("temp dir");
    common::write_fixtures(fixtures.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let (mut passed, mut failed) = (0, 0);
    for file in slt_files(&filters) {
        let fixtures_dir = fixtures.path().display().to_string();
        let mut runner = sqllogictest::Runner::new(|| async {
            // Two partitions whatever the machine, so plans and batch
            // boundaries are the same everywhere.
            let options = EngineOptions {
                partitions: Some(2),
                ..Default::default()
            };
            Ok(RookeryDb {
                ctx: new_session(&options)?,
            })
        });
        runner.set_var("FIXTURES".to_string(), fixtures_dir);
        // `query IT` must name the columns' types, as in DataFusion's own files.
        runner.with_column_validator(sqllogictest::strict_column_validator);
        let name = file.file_name().unwrap_or_default().to_string_lossy().to_string();
        match runtime.block_on(runner.run_file_async(&file)) {
            Ok(()) => {
                println!("ok      {name}");
                passed += 1;
            }
            Err(e) => {
                println!("FAILED  {name}\n{e}\n");
                failed += 1;
            }
        }
    }
    println!("\nsqllogictest: {passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
