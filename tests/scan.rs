//! What the image scan does per query, read from its metrics: a query
//! without `image` decodes nothing, filters run before decoding, batches
//! stay small above image scans, and the memory limit is enforced.

mod common;

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::{collect, ExecutionPlan};
use rookery::exec::run_sql;
use rookery::images::ImageScanExec;
use rookery::{new_session, EngineOptions};

struct Fixture {
    _dir: tempfile::TempDir,
    root: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    common::write_fixtures(dir.path());
    Fixture {
        root: dir.path().display().to_string(),
        _dir: dir,
    }
}

fn session(options: EngineOptions) -> SessionContext {
    new_session(&EngineOptions {
        partitions: Some(2),
        ..options
    })
    .expect("session")
}

/// Runs `sql` and sums a metric over the image scans of its plan.
async fn run_and_count(ctx: &SessionContext, sql: &str, metric: &str) -> (Vec<RecordBatch>, usize) {
    let plan = ctx
        .sql(sql)
        .await
        .expect("plan")
        .create_physical_plan()
        .await
        .expect("physical plan");
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.expect("run");
    let mut total = 0;
    plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<ImageScanExec>() {
            let metrics = scan.metrics().expect("metrics");
            total += metrics.sum_by_name(metric).map(|v| v.as_usize()).unwrap_or(0);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walk plan");
    (batches, total)
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn queries_without_image_decode_nothing() {
    let f = fixture();
    let ctx = session(EngineOptions::default());
    let good = format!("images('{}/good/')", f.root);

    let (batches, decoded) = run_and_count(
        &ctx,
        &format!("SELECT name, width, height, format FROM {good}"),
        "images_decoded",
    )
    .await;
    assert_eq!((rows(&batches), decoded), (7, 0));
    let (_, whole_files) = run_and_count(&ctx, &format!("SELECT name, width FROM {good}"), "files_read").await;
    assert_eq!(whole_files, 0, "header-only queries read no whole files");
    let (_, bytes) = run_and_count(&ctx, &format!("SELECT name, size FROM {good}"), "bytes_read").await;
    assert_eq!(bytes, 0, "listing columns read no bytes at all");

    let (_, decoded) = run_and_count(&ctx, &format!("SELECT name, content FROM {good}"), "images_decoded").await;
    assert_eq!(decoded, 0, "content is read, not decoded");
    let (_, decoded) = run_and_count(&ctx, &format!("SELECT name, image FROM {good}"), "images_decoded").await;
    assert_eq!(decoded, 7);
}

#[tokio::test]
async fn filters_run_before_decoding() {
    let f = fixture();
    let ctx = session(EngineOptions::default());
    let sql = format!(
        "SELECT image FROM images('{}/good/') WHERE name = '1' OR width = 30",
        f.root
    );
    let (batches, decoded) = run_and_count(&ctx, &sql, "images_decoded").await;
    assert_eq!((rows(&batches), decoded), (2, 2));
}

#[tokio::test]
async fn batches_stay_small_above_image_scans() {
    let f = fixture();
    let ctx = session(EngineOptions::default());
    // Filters that the scan cannot take, and a join, both re-batch their
    // input: with images they must keep the scan's batch size.
    let queries = [
        format!(
            "SELECT name, image FROM images('{}/good/', 'batch_rows=2') WHERE image['channels'] = 3",
            f.root
        ),
        format!(
            "SELECT t.train_id, i.image FROM images('{root}/good/', 'batch_rows=2') i \
             JOIN (VALUES (0), (1), (2), (3), (4), (5), (6)) AS t(train_id) \
             ON i.name = CAST(t.train_id AS VARCHAR)",
            root = f.root
        ),
    ];
    for sql in queries {
        let results = run_sql(&ctx, &sql).await.expect("query");
        let batches = &results[0].batches;
        assert!(rows(batches) >= 6, "{sql}: {} rows", rows(batches));
        for batch in batches {
            assert!(batch.num_rows() <= 2, "{sql}: a batch of {} rows", batch.num_rows());
        }
    }
}

#[tokio::test]
async fn memory_limit_refuses_decoding_beyond_it() {
    let f = fixture();
    // 4 KB: the 200x150 JPEG decodes to 90,000 bytes.
    let ctx = session(EngineOptions {
        memory_limit: Some(4 * 1024),
        ..Default::default()
    });
    let sql = format!("SELECT image FROM images('{}/mixed/a.jpg')", f.root);
    let err = run_sql(&ctx, &sql).await.expect_err("over the limit");
    assert!(err.to_string().contains("Resources exhausted"), "{err}");
}

/// A join, filter and sort that repeat one decoded frame in 3,000 rows
/// share its pixels: the result holds one buffer of the frame's size, not
/// 3,000 copies (with LargeBinary pixels it held 3,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_share_pixels_instead_of_copying_them() {
    use datafusion::arrow::array::{Array, AsArray, BinaryViewArray};
    let fixture = fixture();
    let ctx = session(EngineOptions::default());
    let sql = format!(
        "SELECT d.k, i.image FROM (SELECT value AS k FROM generate_series(1, 3000)) d \
         JOIN images('{}/mixed/a.jpg') i ON d.k > 0 WHERE d.k % 1 = 0 ORDER BY d.k",
        fixture.root
    );
    let results = run_sql(&ctx, &sql).await.expect("query");
    let batches = &results[0].batches;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 3000);
    let mut buffers = std::collections::HashSet::new();
    let mut data_bytes = 0;
    for batch in batches {
        let images = batch.column(1).as_struct();
        let data: &BinaryViewArray = images.column(3).as_binary_view();
        assert_eq!(data.value(0).len(), 200 * 150 * 3);
        for buffer in data.data_buffers() {
            if buffers.insert(buffer.as_ptr() as usize) {
                data_bytes += buffer.len();
            }
        }
        assert!(images.null_count() == 0);
    }
    assert_eq!(buffers.len(), 1, "one shared buffer of pixels");
    assert_eq!(data_bytes, 200 * 150 * 3);
}
