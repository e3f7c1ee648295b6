//! `s3://` locations through `ctx.sql`, against moto's S3-compatible server
//! on 127.0.0.1: tables and globs of images (listing, header-only scans,
//! decoding, `drop_invalid`), label files, `read_blob`, `COPY` to s3 (CSV,
//! Parquet, images) with nothing left after a failed one, and models read
//! from and written to s3. Each result is compared with the same query on
//! the local copy of the files.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::s3::S3Server;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

const BUCKET: &str = "rookery-test";

/// A moto server with a bucket holding a copy of the test fixtures, and
/// the same files on disk.
struct Setup {
    server: S3Server,
    local: tempfile::TempDir,
    store: Arc<dyn ObjectStore>,
}

impl Setup {
    async fn new() -> Self {
        let server = S3Server::start();
        server.create_bucket(BUCKET);
        let local = tempfile::tempdir().expect("temp dir");
        common::write_fixtures(local.path());
        let options = server.store_options();
        let url = Url::parse(&format!("s3://{BUCKET}/")).unwrap();
        let store = rookery::stores::build_store(&url, &options).expect("an S3 store for moto");
        upload(store.as_ref(), local.path(), local.path()).await;
        Self { server, local, store }
    }

    fn local(&self, name: &str) -> String {
        self.local.path().join(name).display().to_string()
    }

    /// A session whose `s3://BUCKET` store comes from a table's options,
    /// as a user would write them.
    async fn session(&self) -> SessionContext {
        let ctx = library_session();
        let create = format!(
            "CREATE EXTERNAL TABLE labels STORED AS CSV LOCATION 's3://{BUCKET}/train.csv'
             OPTIONS ('format.has_header' 'true', {})",
            self.server.table_options()
        );
        sql(&ctx, &create).await.expect("an s3 label table");
        ctx
    }

    async fn objects(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .list(Some(&StorePath::from(prefix)))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list");
        names.sort();
        names
    }

    async fn object(&self, path: &str) -> Vec<u8> {
        let got = self.store.get(&StorePath::from(path)).await.expect("get");
        got.bytes().await.expect("bytes").to_vec()
    }
}

/// Puts every file under `dir` at its path relative to `root`.
async fn upload(store: &dyn ObjectStore, root: &Path, dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            Box::pin(upload(store, root, &path)).await;
        } else {
            let relative = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .to_string();
            let bytes = std::fs::read(&path).expect("read fixture");
            store
                .put(&StorePath::from(relative.as_str()), PutPayload::from(bytes))
                .await
                .expect("upload");
        }
    }
}

use common::library_session;

async fn sql(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

async fn text(ctx: &SessionContext, query: &str) -> String {
    let batches = sql(ctx, query).await.unwrap_or_else(|e| panic!("{query}: {e}"));
    pretty_format_batches(&batches).expect("format").to_string()
}

/// The same query on the local files and on s3 gives the same table.
async fn same_as_local(setup: &Setup, ctx: &SessionContext, query: &str) -> String {
    let local = text(ctx, &query.replace("{root}", &setup.local.path().display().to_string())).await;
    let remote = text(ctx, &query.replace("{root}", &format!("s3://{BUCKET}"))).await;
    assert_eq!(local, remote, "{query}");
    remote
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_and_label_tables_on_s3() {
    let setup = Setup::new().await;
    let ctx = setup.session().await;

    // Listing and header-only scans, a glob, and decoding.
    let headers = same_as_local(
        &setup,
        &ctx,
        "SELECT name, format, width, height, size FROM images('{root}/good/') ORDER BY name",
    )
    .await;
    assert_eq!(headers.lines().count(), 7 + 4, "{headers}");
    same_as_local(&setup, &ctx, "SELECT count(*) FROM images('{root}/good/*.png')").await;
    same_as_local(
        &setup,
        &ctx,
        "SELECT name, image_width(image) AS w, image_height(image_grey(image)) AS h
         FROM images('{root}/colours/') ORDER BY name",
    )
    .await;
    // Bad files: errors per row, or dropped.
    same_as_local(
        &setup,
        &ctx,
        "SELECT name, error IS NULL AS ok FROM images('{root}/mixed/') ORDER BY name",
    )
    .await;
    let create = |name: &str, location: String| {
        format!("CREATE EXTERNAL TABLE {name} STORED AS IMAGES LOCATION '{location}' OPTIONS ('drop_invalid' 'true')")
    };
    sql(&ctx, &create("mixed_s3", format!("s3://{BUCKET}/mixed/")))
        .await
        .unwrap();
    sql(&ctx, &create("mixed_local", format!("{}/", setup.local("mixed"))))
        .await
        .unwrap();
    assert_eq!(
        text(&ctx, "SELECT name, image_width(image) AS w FROM mixed_s3 ORDER BY name").await,
        text(
            &ctx,
            "SELECT name, image_width(image) AS w FROM mixed_local ORDER BY name"
        )
        .await
    );

    // The label table made with the store's options, and read_blob.
    let labels = text(&ctx, "SELECT count(*) AS n, sum(adult_females) AS f FROM labels").await;
    assert!(labels.contains("| 5 | 10 |"), "{labels}");
    let blobs = same_as_local(
        &setup,
        &ctx,
        "SELECT name, read_blob(path) = content AS same FROM images('{root}/colours/') ORDER BY name",
    )
    .await;
    assert_eq!(blobs.matches("| true |").count(), 3, "{blobs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_photos_and_videos_on_s3() {
    let setup = Setup::new().await;
    let ctx = setup.session().await;
    // Recursive listing, labels, ** globs and the hidden folder.
    let tree = same_as_local(
        &setup,
        &ctx,
        "SELECT relative_path, label FROM images('{root}/tree/') ORDER BY relative_path",
    )
    .await;
    assert_eq!(tree.lines().count(), 4 + 4, "{tree}");
    same_as_local(
        &setup,
        &ctx,
        "SELECT relative_path FROM images('{root}/tree/**/1.png') ORDER BY 1",
    )
    .await;
    // Partition columns found and pruned the same way, and EXIF headers.
    let survey = same_as_local(
        &setup,
        &ctx,
        "SELECT name, year, site, taken_at, gps_lat, camera FROM images('{root}/survey/')
         WHERE year = '2024' ORDER BY name",
    )
    .await;
    assert!(
        survey.contains("| b    | 2024 | north | 2024-06-02T11:30:00 | 57.5"),
        "{survey}"
    );
    // Video frames: the index from ranges, frames decoded, bad files as rows.
    same_as_local(
        &setup,
        &ctx,
        "SELECT name, frame_index, timestamp, image_width(image) AS w FROM video_frames('{root}/videos/', 'start=2.5')
         ORDER BY name, frame_index",
    )
    .await;
    same_as_local(
        &setup,
        &ctx,
        "SELECT name, error FROM video_frames('{root}/broken/') ORDER BY name",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_s3_and_nothing_left_after_a_failure() {
    let setup = Setup::new().await;
    let ctx = setup.session().await;
    let local_csv = setup.local("out/sizes.csv");
    let query = |target: &str, format: &str| {
        format!(
            "COPY (SELECT name, width, height FROM images('{}/') ORDER BY name) TO '{target}' STORED AS {format}
             OPTIONS ('format.has_header' 'true')",
            setup.local("good")
        )
    };
    sql(&ctx, &query(&local_csv, "CSV")).await.unwrap();
    sql(&ctx, &query(&format!("s3://{BUCKET}/out/sizes.csv"), "CSV"))
        .await
        .unwrap();
    assert_eq!(setup.object("out/sizes.csv").await, std::fs::read(&local_csv).unwrap());

    let parquet = format!(
        "COPY (SELECT name, width FROM images('{}/')) TO 's3://{BUCKET}/out/sizes.parquet' STORED AS PARQUET",
        setup.local("good")
    );
    sql(&ctx, &parquet).await.unwrap();
    let table = format!("CREATE EXTERNAL TABLE sizes STORED AS PARQUET LOCATION 's3://{BUCKET}/out/sizes.parquet'");
    sql(&ctx, &table).await.unwrap();
    let reread = text(&ctx, "SELECT count(*) AS n FROM sizes").await;
    assert!(reread.contains("| 7 |"), "{reread}");

    let thumbs = format!(
        "COPY (SELECT name, image_resize(image, 8, 8) AS t FROM images('s3://{BUCKET}/colours/'))
         TO 's3://{BUCKET}/out/thumbs/' STORED AS IMAGES OPTIONS ('format' 'png')"
    );
    sql(&ctx, &thumbs).await.unwrap();
    assert_eq!(
        setup.objects("out/thumbs").await,
        ["out/thumbs/blue.png", "out/thumbs/green.png", "out/thumbs/red.png"]
    );

    // Failures: images written before a NULL name, and a CSV whose query
    // fails, leave no object behind.
    let failing_images = format!(
        "COPY (SELECT CASE WHEN name = 'red' THEN NULL ELSE name END AS name, content
               FROM images('s3://{BUCKET}/colours/') ORDER BY name NULLS LAST)
         TO 's3://{BUCKET}/out/failed/' STORED AS IMAGES"
    );
    let err = sql(&ctx, &failing_images).await.unwrap_err();
    assert!(err.to_string().contains("has a NULL name"), "{err}");
    assert!(setup.objects("out/failed").await.is_empty());
    let failing_csv = format!(
        "COPY (SELECT name, 10 / (width - 8) AS x FROM images('s3://{BUCKET}/good/') ORDER BY name)
         TO 's3://{BUCKET}/out/failed.csv' STORED AS CSV"
    );
    let err = sql(&ctx, &failing_csv).await.unwrap_err();
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    assert!(setup.objects("out").await.iter().all(|o| !o.starts_with("out/failed")));
    // What was there before a failed COPY stays.
    setup
        .store
        .put(&StorePath::from("out/kept/mine.txt"), PutPayload::from_static(b"mine"))
        .await
        .unwrap();
    let failing_again = failing_images.replace("out/failed/", "out/kept/");
    assert!(sql(&ctx, &failing_again).await.is_err());
    assert_eq!(setup.objects("out/kept").await, ["out/kept/mine.txt"]);

    // A failed COPY over objects of the same names leaves them as they
    // were (its rows are staged, and the staging is gone); a good one
    // replaces them.
    let original = PutPayload::from_static(b"original");
    for name in ["blue", "green"] {
        let path = StorePath::from(format!("out/over/{name}.png"));
        setup.store.put(&path, original.clone()).await.unwrap();
    }
    let failing_over = failing_images.replace("out/failed/", "out/over/");
    assert!(sql(&ctx, &failing_over).await.is_err());
    assert_eq!(
        setup.objects("out/over").await,
        ["out/over/blue.png", "out/over/green.png"]
    );
    assert_eq!(setup.object("out/over/blue.png").await, b"original");
    let good_over = failing_over.replace("CASE WHEN name = 'red' THEN NULL ELSE name END", "name");
    sql(&ctx, &good_over).await.unwrap();
    // (green is a JPEG, so its copy is green.jpg beside the original.)
    assert_eq!(
        setup.objects("out/over").await,
        [
            "out/over/blue.png",
            "out/over/green.jpg",
            "out/over/green.png",
            "out/over/red.png"
        ]
    );
    assert_ne!(setup.object("out/over/blue.png").await, b"original");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_copy_on_s3_stops_and_resumes() {
    let setup = Setup::new().await;
    let ctx = setup.session().await;
    let armed = common::register_stop_at(&ctx, "4");
    let statement = |target: &str, options: &str| {
        format!(
            "COPY (SELECT stop_at(name) AS name, width, height FROM images('s3://{BUCKET}/good/') ORDER BY name)
             TO '{target}' STORED AS CSV OPTIONS ('format.has_header' 'true'{options})"
        )
    };
    armed.store(false, std::sync::atomic::Ordering::SeqCst);
    sql(&ctx, &statement(&format!("s3://{BUCKET}/out/plain.csv"), ""))
        .await
        .unwrap();
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let resumable = statement(
        &format!("s3://{BUCKET}/out/sub.csv"),
        ", 'resume' 'name', 'resume_every' '2'",
    );
    let e = sql(&ctx, &resumable).await.unwrap_err().to_string();
    assert!(e.contains("stopped at 4"), "{e}");
    // Files 0-3 committed in two parts, on the store; no target yet.
    assert_eq!(
        setup.objects("out").await,
        [
            "out/.sub.csv.rookery-resume/part-00001.arrow",
            "out/.sub.csv.rookery-resume/part-00002.arrow",
            "out/plain.csv"
        ]
    );
    armed.store(false, std::sync::atomic::Ordering::SeqCst);
    sql(&ctx, &resumable).await.unwrap();
    assert_eq!(setup.objects("out").await, ["out/plain.csv", "out/sub.csv"]);
    assert_eq!(setup.object("out/sub.csv").await, setup.object("out/plain.csv").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_on_s3() {
    let setup = Setup::new().await;
    let ctx = setup.session().await;
    let classify = |model: &str| {
        format!(
            "SELECT name, cnn_classify('{model}', image, 'labels=red|green|blue') AS colour
             FROM images('s3://{BUCKET}/colours/') ORDER BY name"
        )
    };
    let local = text(&ctx, &classify(&setup.local("models/colour_classifier.onnx"))).await;
    let remote = text(&ctx, &classify(&format!("s3://{BUCKET}/models/colour_classifier.onnx"))).await;
    assert_eq!(local, remote);
    assert!(remote.contains("| red   | red    |"), "{remote}");

    // cnn_train writes its model to s3, and cnn_scores reads it back.
    let train = format!(
        "SELECT run['model'] AS model FROM (
            SELECT cnn_train(image, name, 'epochs=2, input_size=24, batch_size=4, validation=0, output=s3://{BUCKET}/models/trained.onnx') AS run
            FROM images('s3://{BUCKET}/colours/'))"
    );
    let trained = text(&ctx, &train).await;
    assert!(
        trained.contains(&format!("s3://{BUCKET}/models/trained.onnx")),
        "{trained}"
    );
    assert!(setup.object("models/trained.onnx").await.len() > 1000);
    let scores = text(
        &ctx,
        &format!(
            "SELECT name, array_length(cnn_scores('s3://{BUCKET}/models/trained.onnx', image), 1) AS n
             FROM images('s3://{BUCKET}/colours/') ORDER BY name"
        ),
    )
    .await;
    assert!(scores.contains("| red   | 3 |"), "{scores}");

    // Errors name the location.
    let err = sql(&ctx, &classify(&format!("s3://{BUCKET}/models/none.onnx")))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("cannot read model s3://{BUCKET}/models/none.onnx")),
        "{err}"
    );
    let err = sql(&ctx, &classify("memory://nowhere/m.onnx")).await.unwrap_err();
    assert!(err.to_string().contains("memory://nowhere"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_and_unreachable_stores_are_named() {
    let ctx = library_session();
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        let err = sql(&ctx, "SELECT count(*) FROM images('s3://some-bucket/frames/')")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no AWS region for s3://some-bucket/"), "{err}");
    }
    let create = "CREATE EXTERNAL TABLE t STORED AS IMAGES LOCATION 's3://other-bucket/frames/'
        OPTIONS ('aws.region' 'us-east-1', 'aws.bad_key' 'x')";
    let err = sql(&ctx, create).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown option 'aws.bad_key' for s3://other-bucket/"),
        "{err}"
    );
    let err = sql(
        &ctx,
        "CREATE EXTERNAL TABLE l STORED AS CSV LOCATION 'labels.csv' OPTIONS ('aws.region' 'eu-west-1')",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not in one"), "{err}");
}
