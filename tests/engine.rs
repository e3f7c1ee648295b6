//! Rookery as a library: a plain `SessionContext` with one
//! `rookery::register` call runs every feature through `ctx.sql`, with
//! no help from the CLI: COPY to images, all-or-nothing COPY, small
//! batches above image scans (CREATE TABLE AS too) and `SET rookery.*`.

mod common;

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::ExecutionPlanProperties;
use datafusion::prelude::SessionContext;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        common::write_fixtures(dir.path());
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

use common::library_session;

async fn sql(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn file_count(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_images_through_ctx_sql() {
    let fixture = Fixture::new();
    let ctx = library_session();
    let out = fixture.path("out/thumbs");
    let written = sql(
        &ctx,
        &format!(
            "COPY (SELECT name, image_grey(image) AS grey FROM images('{}/') WHERE width >= 8)
             TO '{out}' STORED AS IMAGES OPTIONS ('format' 'jpeg', 'quality' '80')",
            fixture.path("good")
        ),
    )
    .await
    .expect("COPY runs through ctx.sql");
    let count = written[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::UInt64Array>();
    let count = count.expect("a count column").value(0) as usize;
    assert!(count > 0);
    assert_eq!(file_count(&out), count);
    let reread = sql(
        &ctx,
        &format!("SELECT name FROM images('{out}/') WHERE format = 'jpeg' AND image['channels'] = 1"),
    )
    .await
    .unwrap();
    assert_eq!(rows(&reread), count);

    // Bad options are planning errors that name the option.
    let err = sql(
        &ctx,
        &format!(
            "COPY (SELECT name, content FROM images('{}/')) TO '{out}2' STORED AS IMAGES OPTIONS ('quality' '0')",
            fixture.path("good")
        ),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("quality must be 1 to 100, not '0'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_leaves_nothing() {
    let fixture = Fixture::new();
    let ctx = library_session();
    // A NULL name on the last row: the first files are written, then the
    // COPY fails and takes them (and the folder it made) away.
    let images = fixture.path("out/images");
    let err = sql(
        &ctx,
        &format!(
            "COPY (SELECT CASE WHEN name = (SELECT max(name) FROM images('{good}/')) THEN NULL ELSE name END AS name, content
                   FROM images('{good}/') ORDER BY name NULLS LAST)
             TO '{images}' STORED AS IMAGES",
            good = fixture.path("good")
        ),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("has a NULL name"), "{err}");
    assert!(!std::path::Path::new(&images).exists(), "{images} is left behind");

    // The same for DataFusion's own formats.
    let csv = fixture.path("out/partial.csv");
    let err = sql(
        &ctx,
        &format!(
            "COPY (SELECT name, 10 / (width - 8) AS x FROM images('{}/') ORDER BY name) TO '{csv}' STORED AS CSV",
            fixture.path("good")
        ),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    assert!(!std::path::Path::new(&csv).exists(), "{csv} is left behind");

    // A target that was there before is left as it was.
    let kept = fixture.path("kept");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(format!("{kept}/mine.txt"), "mine").unwrap();
    let copy = format!(
        "COPY (SELECT CAST(NULL AS VARCHAR) AS name, content FROM images('{}/')) TO '{kept}/' STORED AS IMAGES",
        fixture.path("good")
    );
    assert!(sql(&ctx, &copy).await.is_err());
    assert_eq!(std::fs::read_to_string(format!("{kept}/mine.txt")).unwrap(), "mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_images_stay_small_in_queries_and_create_table_as() {
    let fixture = Fixture::new();
    let ctx = library_session();
    let good = fixture.path("good");
    sql(
        &ctx,
        "CREATE TABLE ids AS SELECT * FROM (VALUES ('0'), ('1'), ('2'), ('3'), ('4'), ('5'), ('6')) AS t(name)",
    )
    .await
    .unwrap();
    let query = format!(
        "SELECT i.name, i.image FROM images('{good}/', 'batch_rows=2') i JOIN ids ON ids.name = i.name \
         WHERE i.image['channels'] >= 1"
    );
    let batches = sql(&ctx, &query).await.unwrap();
    assert!(rows(&batches) >= 6);
    assert!(
        batches.iter().all(|b| b.num_rows() <= 2),
        "{:?}",
        batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>()
    );

    sql(&ctx, &format!("CREATE TABLE frames AS {query}")).await.unwrap();
    let table = ctx.table_provider("frames").await.unwrap();
    let memory = table
        .downcast_ref::<datafusion::datasource::MemTable>()
        .expect("CREATE TABLE AS makes a MemTable");
    let mut stored = Vec::new();
    for partition in &memory.batches {
        stored.extend(partition.read().await.iter().map(|b| b.num_rows()));
    }
    assert!(stored.iter().sum::<usize>() >= 6);
    assert!(stored.iter().all(|&n| n <= 2), "{stored:?}");

    let plan = sql(&ctx, &format!("EXPLAIN {query}")).await.unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains("ImageBatchSizeExec: batch_rows=2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rookery_options_are_session_options() {
    let fixture = Fixture::new();
    let ctx = library_session();
    sql(&ctx, "SET rookery.max_pixels = 100").await.unwrap();
    let err = sql(
        &ctx,
        &format!(
            "SELECT image_resize(image, 20, 20) FROM images('{}/')",
            fixture.path("good")
        ),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("is larger than rookery.max_pixels (100)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_table_options_default_to_session_settings() {
    let fixture = Fixture::new();
    let ctx = library_session();
    let good = fixture.path("good");
    let sizes = |batches: &[RecordBatch]| batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>();
    let query = format!("SELECT name, content FROM images('{good}/')");

    sql(&ctx, "SET images.batch_rows = 3").await.unwrap();
    let batches = sql(&ctx, &query).await.unwrap();
    assert_eq!(rows(&batches), 7);
    assert!(batches.iter().all(|b| b.num_rows() <= 3), "{:?}", sizes(&batches));
    assert!(batches.iter().any(|b| b.num_rows() == 3), "{:?}", sizes(&batches));

    // The table's own option wins over the session's.
    let own = format!("SELECT name, content FROM images('{good}/', 'batch_rows=1')");
    assert!(sql(&ctx, &own).await.unwrap().iter().all(|b| b.num_rows() == 1));

    // A table created before the SET follows the session when queried.
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE mixed STORED AS IMAGES LOCATION '{}/'",
            fixture.path("mixed")
        ),
    )
    .await
    .unwrap();
    let all = rows(&sql(&ctx, "SELECT name FROM mixed").await.unwrap());
    sql(&ctx, "SET images.drop_invalid = true").await.unwrap();
    let valid = rows(&sql(&ctx, "SELECT name FROM mixed").await.unwrap());
    assert!(valid < all, "{valid} of {all}");

    let err = sql(&ctx, "SET images.batch_rows = 'many'").await.unwrap_err();
    assert!(err.to_string().contains("many"), "{err}");
    sql(&ctx, "SET images.batch_rows = 0").await.unwrap();
    let err = sql(&ctx, &query).await.unwrap_err();
    assert!(err.to_string().contains("images.batch_rows"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_reach_the_scan_and_counts_come_from_the_listing() {
    let fixture = Fixture::new();
    let ctx = library_session();
    let good = fixture.path("good");
    sql(
        &ctx,
        &format!("CREATE EXTERNAL TABLE good STORED AS IMAGES LOCATION '{good}/'"),
    )
    .await
    .unwrap();
    let explain = |query: &str| {
        let ctx = ctx.clone();
        let query = format!("EXPLAIN {query}");
        async move {
            let plan = sql(&ctx, &query).await.unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&plan)
                .unwrap()
                .to_string()
        }
    };
    // with_fetch: a scan told to stop after one row per partition.
    let plan = ctx
        .sql("SELECT name, content FROM good")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut scans = Vec::new();
    datafusion::common::tree_node::TreeNode::apply(&plan, |node| {
        if node.downcast_ref::<rookery::images::ImageScanExec>().is_some() {
            scans.push(Arc::clone(node));
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .unwrap();
    let [scan] = scans.as_slice() else {
        panic!("one scan expected: {scans:?}")
    };
    assert_eq!(scan.fetch(), None);
    let fetched = scan.with_fetch(Some(1)).expect("the image scan takes a fetch");
    assert_eq!(fetched.fetch(), Some(1));
    let partitions = fetched.output_partitioning().partition_count();
    let batches = datafusion::physical_plan::collect(fetched, ctx.task_ctx())
        .await
        .unwrap();
    assert_eq!(rows(&batches), partitions.min(7));

    let text = explain("SELECT name, content FROM good LIMIT 2").await;
    assert!(text.contains("limit=2"), "{text}");
    let batches = sql(&ctx, "SELECT name, content FROM good LIMIT 2").await.unwrap();
    assert_eq!(rows(&batches), 2);

    // Without a filter every listed file is a row: COUNT(*) is answered
    // from the scan's exact statistics, reading nothing.
    let text = explain("SELECT count(*) FROM good").await;
    assert!(!text.contains("ImageScanExec"), "{text}");
    let count = sql(&ctx, "SELECT count(*) AS n FROM good").await.unwrap();
    let n = count[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_reports_progress_and_stops_when_cancelled() {
    use rookery_models::control::TrainingControl;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let fixture = Fixture::new();
    let training = TrainingControl::default();
    let epochs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&epochs);
    training.on_progress(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let builder = SessionStateBuilder::new().with_default_features();
    let ctx = SessionContext::new_with_state(rookery::register_with_training(builder, &training).build());
    let model = fixture.path("never.onnx");
    // Far more epochs than the test waits for.
    let query = format!(
        "SELECT cnn_train(image, name, 'epochs=1000000, batch_size=1, validation=0, input_size=24, output={model}') FROM images('{}/')",
        fixture.path("colours")
    );
    let run = tokio::spawn(async move { sql(&ctx, &query).await });
    while epochs.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    training.cancel();
    let cancelled = std::time::Instant::now();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), run)
        .await
        .expect("training stops after a cancel")
        .expect("query task");
    let err = result.expect_err("a cancelled training is an error");
    assert!(err.to_string().contains("cnn_train cancelled in epoch"), "{err}");
    eprintln!("stopped {:.3} s after the cancel", cancelled.elapsed().as_secs_f64());
    assert!(cancelled.elapsed() < std::time::Duration::from_secs(1));
    assert!(!std::path::Path::new(&model).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trainings_to_one_model_leave_one_whole_model() {
    let fixture = Fixture::new();
    let ctx = library_session();
    let model = fixture.path("shared.onnx");
    let colours = fixture.path("colours");
    let train = |seed: u32| {
        format!(
            "SELECT cnn_train(image, name, 'epochs=1, batch_size=1, validation=0, input_size=24, seed={seed}, output={model}')
             FROM images('{colours}/')"
        )
    };
    let runs: Vec<_> = [1, 2]
        .map(|seed| {
            let (ctx, query) = (ctx.clone(), train(seed));
            tokio::spawn(async move { sql(&ctx, &query).await })
        })
        .into_iter()
        .collect();
    for run in runs {
        run.await.expect("training task").expect("training");
    }
    // One whole model that ONNX Runtime loads, and no partial file beside it.
    let check = format!("SELECT cnn_classify('{model}', image) FROM images('{colours}/')");
    assert_eq!(rows(&sql(&ctx, &check).await.unwrap()), 3);
    let beside: Vec<String> = std::fs::read_dir(fixture.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("shared"))
        .collect();
    assert_eq!(beside, ["shared.onnx"]);
}
