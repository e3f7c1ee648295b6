//! Resumable COPY (`OPTIONS ('resume' 'key')`): a run stopped part-way
//! (here by a failing row; `kill -9` is in `cli/tests/cli.rs`, object
//! stores in `tests/object_stores.rs`) leaves its committed parts, the same
//! statement run again skips their images, and the file written is byte
//! for byte a plain COPY's.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, UInt64Array};
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use image::{DynamicImage, ImageFormat};

use common::{encode, gradient, library_session, listing, register_stop_at};

/// A session with `stop_at` (failing at `img4` while armed), and its switch.
fn session() -> (SessionContext, Arc<AtomicBool>) {
    let ctx = library_session();
    let armed = register_stop_at(&ctx, "img4");
    (ctx, armed)
}

/// Seven PNGs `img0`..`img6`, of sizes all different.
fn images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..7u32 {
        let png = encode(&DynamicImage::ImageRgb8(gradient(8 + i, 5 + 2 * i)), ImageFormat::Png);
        std::fs::write(dir.join(format!("img{i}.png")), png).unwrap();
    }
}

const QUERY: &str =
    "SELECT stop_at(name) AS name, image_width(image) * height AS pixels, width FROM images('{dir}/') ORDER BY name DESC";

fn copy(dir: &Path, target: &Path, options: &str) -> String {
    format!(
        "COPY ({}) TO '{}' STORED AS CSV OPTIONS ('format.has_header' 'true'{options})",
        QUERY.replace("{dir}", &dir.display().to_string()),
        target.display()
    )
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches
        .iter()
        .map(|b| {
            let counts: &UInt64Array = b.column(0).as_primitive();
            counts.iter().flatten().sum::<u64>()
        })
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_copy_resumes_and_writes_what_one_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    images(&photos);
    let (ctx, armed) = session();

    armed.store(false, Ordering::SeqCst);
    let plain = dir.path().join("plain.csv");
    assert_eq!(run(&ctx, &copy(&photos, &plain, "")).await.unwrap(), 7);
    let whole = dir.path().join("whole.csv");
    let resumable = ", 'resume' 'name', 'resume_every' '2'";
    assert_eq!(run(&ctx, &copy(&photos, &whole, resumable)).await.unwrap(), 7);
    let expected = std::fs::read(&plain).unwrap();
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        expected,
        "an uninterrupted resumable COPY"
    );
    assert_eq!(
        listing(dir.path()),
        vec!["photos", "plain.csv", "whole.csv"],
        "no journal left"
    );

    // Stopped at img4: img0-img3 are committed in two parts, nothing else
    // is written, and what was there stays.
    armed.store(true, Ordering::SeqCst);
    let target = dir.path().join("sub.csv");
    std::fs::write(&target, "an earlier result").unwrap();
    let statement = copy(&photos, &target, resumable);
    let e = run(&ctx, &statement).await.unwrap_err().to_string();
    assert!(e.contains("stopped at img4"), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "an earlier result");
    let journal = dir.path().join(".sub.csv.rookery-resume");
    assert_eq!(listing(&journal), vec!["part-00001.arrow", "part-00002.arrow"]);

    // Another statement does not mix with the journal.
    armed.store(false, Ordering::SeqCst);
    let other = statement.replace("* height", "+ height");
    let e = run(&ctx, &other).await.unwrap_err().to_string();
    assert!(
        e.contains("different statement") && e.contains(".sub.csv.rookery-resume"),
        "{e}"
    );

    // The same statement again reads only img4-img6.
    let frame = ctx.sql(&statement).await.unwrap();
    let plan = frame.create_physical_plan().await.unwrap();
    let task = ctx.task_ctx();
    datafusion::physical_plan::collect(Arc::clone(&plan), task)
        .await
        .unwrap();
    let counts = rookery::progress::ScanCounts::of_plan(plan.as_ref());
    assert_eq!(
        (
            counts.images_total,
            counts.images_skipped,
            counts.images_committed,
            counts.images_decoded
        ),
        (7, 4, 7, 3)
    );
    assert_eq!(std::fs::read(&target).unwrap(), expected, "resumed = one run");
    assert!(!journal.exists(), "the journal goes once the target is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_copy_of_no_rows_writes_what_a_plain_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    images(&photos);
    let (ctx, armed) = session();
    armed.store(false, Ordering::SeqCst);
    let copy = |target: &str, options: &str| {
        format!(
            "COPY (SELECT name FROM images('{}/') WHERE width > 1000 ORDER BY name) TO '{}' STORED AS CSV OPTIONS ('format.has_header' 'true'{options})",
            photos.display(),
            dir.path().join(target).display()
        )
    };
    assert_eq!(run(&ctx, &copy("plain.csv", "")).await.unwrap(), 0);
    assert_eq!(
        run(&ctx, &copy("none.csv", ", 'resume' 'name', 'resume_every' '3'"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        std::fs::read(dir.path().join("none.csv")).ok(),
        std::fs::read(dir.path().join("plain.csv")).ok()
    );
    assert!(!dir.path().join(".none.csv.rookery-resume").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_what_it_cannot_do_right() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    images(&photos);
    // Two images of each width: a key per width mixes images.
    for i in 0..3u32 {
        let png = encode(&DynamicImage::ImageRgb8(gradient(8 + i, 40)), ImageFormat::Png);
        std::fs::write(photos.join(format!("same{i}.png")), png).unwrap();
    }
    let (ctx, armed) = session();
    armed.store(false, Ordering::SeqCst);
    let target = dir.path().join("t.csv");
    let at = target.display();
    let dirs = photos.display();
    for (sql, why) in [
        (
            format!("COPY (SELECT width, count(*) AS n FROM images('{dirs}/') GROUP BY width ORDER BY width) TO '{at}' OPTIONS ('resume' 'width', 'resume_every' '1')"),
            "came from two parts",
        ),
        (
            format!("COPY (SELECT name FROM images('{dirs}/') ORDER BY name LIMIT 3) TO '{at}' OPTIONS ('resume' 'name')"),
            "LIMIT",
        ),
        (
            format!("COPY (SELECT name FROM images('{dirs}/')) TO '{at}' OPTIONS ('resume' 'label')"),
            "'label', which is not a column",
        ),
        (
            format!("COPY (SELECT name FROM images('{dirs}/')) TO '{at}' OPTIONS ('resume' 'name', 'resume_every' '0')"),
            "resume_every must be",
        ),
        (
            format!("COPY (SELECT 1 AS k) TO '{at}' OPTIONS ('resume' 'k')"),
            "reads none",
        ),
    ] {
        let e = run(&ctx, &sql).await.unwrap_err().to_string();
        assert!(e.contains(why), "{sql}: {e}");
        assert!(!target.exists(), "{sql}: nothing written");
    }
}
