//! COPY never destroys what existed: a COPY cancelled part-way or failing
//! beside another one leaves every earlier file and the other COPY's output
//! as they were, and no staging folder behind.
//!
//! The COPYs here read a table whose stream is held at a gate after its
//! first rows, so a test can act while a COPY is part-way, without timing.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{BinaryArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::exec_datafusion_err;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use tokio::sync::Notify;

use common::{library_session, listing};

/// Rows `(name, content)`, then a wait at the gate, then an error.
#[derive(Debug)]
struct GatedRows {
    schema: SchemaRef,
    batch: RecordBatch,
    gate: Arc<Notify>,
}

impl PartitionStream for GatedRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (batch, gate) = (self.batch.clone(), Arc::clone(&self.gate));
        let rows = futures::stream::once(async move { Ok(batch) }).chain(futures::stream::once(async move {
            gate.notified().await;
            Err(exec_datafusion_err!("the gate closed the stream"))
        }));
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), rows))
    }
}

use futures::StreamExt;

/// Registers `gated` on `ctx`: the PNG files of `folder` as rows, then
/// the gate.
fn register_gated(ctx: &SessionContext, folder: &Path, gate: Arc<Notify>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("content", DataType::Binary, false),
    ]));
    let mut names = Vec::new();
    let mut contents = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "png") {
            names.push(format!("new_{}", path.file_stem().unwrap().to_string_lossy()));
            contents.push(std::fs::read(&path).unwrap());
        }
    }
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(BinaryArray::from_iter_values(contents.iter())),
        ],
    )
    .unwrap();
    let partition = Arc::new(GatedRows {
        schema: Arc::clone(&schema),
        batch,
        gate,
    });
    let table = StreamingTable::try_new(schema, vec![partition]).unwrap();
    ctx.register_table("gated", Arc::new(table)).unwrap();
}

/// Waits until a staging folder in `folder` holds a file.
async fn staged_file_appears(folder: &Path) {
    for _ in 0..500 {
        let staged = listing(folder)
            .into_iter()
            .filter(|n| n.starts_with(rookery::atomic_copy::STAGING_PREFIX))
            .any(|n| !listing(&folder.join(n)).is_empty());
        if staged {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no staged file appeared in {}", folder.display());
}

/// A folder of two PNG originals, with their bytes.
fn originals(root: &Path) -> (std::path::PathBuf, Vec<(String, Vec<u8>)>) {
    let folder = root.join("t");
    std::fs::create_dir_all(&folder).unwrap();
    let mut kept = Vec::new();
    for (name, side) in [("a.png", 5u32), ("b.png", 7)] {
        let bytes = common::encode(&common::gradient(side, side).into(), image::ImageFormat::Png);
        std::fs::write(folder.join(name), &bytes).unwrap();
        kept.push((name.to_string(), bytes));
    }
    (folder, kept)
}

fn assert_intact(folder: &Path, kept: &[(String, Vec<u8>)]) {
    for (name, bytes) in kept {
        assert_eq!(&std::fs::read(folder.join(name)).unwrap(), bytes, "{name} changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_copy_leaves_the_folder_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, kept) = originals(dir.path());
    let ctx = library_session();
    register_gated(&ctx, &folder, Arc::new(Notify::new()));
    let copy = format!(
        "COPY (SELECT name, content FROM gated) TO '{}/' STORED AS IMAGES",
        folder.display()
    );
    let stream = ctx.sql(&copy).await.unwrap().execute_stream();
    let run = tokio::spawn(async move { stream.await.unwrap().next().await.map(|r| r.map(|b| b.num_rows())) });
    staged_file_appears(&folder).await;
    // The query is dropped part-way, as a REPL's Ctrl-C or a server's
    // timeout drops it.
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    for _ in 0..200 {
        if listing(&folder) == ["a.png", "b.png"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(listing(&folder), ["a.png", "b.png"], "staged files left behind");
    assert_intact(&folder, &kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_copy_keeps_a_concurrent_copys_output() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = originals(dir.path());
    let gate = Arc::new(Notify::new());
    let ctx = library_session();
    register_gated(&ctx, &source, Arc::clone(&gate));
    // Both COPYs write into a folder that does not exist yet.
    let out = dir.path().join("new");
    let failing = format!(
        "COPY (SELECT name, content FROM gated) TO '{}/' STORED AS IMAGES",
        out.display()
    );
    let failing_ctx = ctx.clone();
    let run = tokio::spawn(async move { failing_ctx.sql(&failing).await?.collect().await });
    staged_file_appears(&out).await;
    let other = format!(
        "COPY (SELECT 'other_' || name AS name, content FROM images('{}/')) TO '{}/' STORED AS IMAGES",
        source.display(),
        out.display()
    );
    ctx.sql(&other).await.unwrap().collect().await.unwrap();
    gate.notify_one();
    let err = run.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("the gate closed the stream"), "{err}");
    assert_eq!(listing(&out), ["other_a.png", "other_b.png"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_at_once_each_write_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let (source, kept) = originals(dir.path());
    let out = dir.path().join("both");
    let ctx = library_session();
    let copy = |prefix: &str| {
        format!(
            "COPY (SELECT '{prefix}' || name AS name, content FROM images('{}/')) TO '{}/' STORED AS IMAGES",
            source.display(),
            out.display()
        )
    };
    let (first, second) = (copy("x_"), copy("y_"));
    let (a, b) = tokio::join!(async { ctx.sql(&first).await?.collect().await }, async {
        ctx.sql(&second).await?.collect().await
    });
    a.unwrap();
    b.unwrap();
    assert_eq!(listing(&out), ["x_a.png", "x_b.png", "y_a.png", "y_b.png"]);
    for (name, bytes) in &kept {
        assert_eq!(&std::fs::read(out.join(format!("x_{name}"))).unwrap(), bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_writes_an_empty_folder_and_no_staging() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = originals(dir.path());
    let out = dir.path().join("csv");
    let ctx = library_session();
    let copy = format!(
        "COPY (SELECT name FROM images('{}/') WHERE name = 'none') TO '{}/' STORED AS CSV",
        source.display(),
        out.display()
    );
    ctx.sql(&copy).await.unwrap().collect().await.unwrap();
    assert!(listing(&out).iter().all(|n| !n.starts_with('.')), "{:?}", listing(&out));
}
