//! Benchmark (not a test): an image table on s3 against the same files in a
//! local folder.
//!
//! ```text
//! scripts/setup-moto.sh
//! cargo run --example bench_object_store -- [--count 1000] [--size 1024x683] [--repeats 3]
//! ```
//!
//! Makes `count` textured JPEGs once, starts moto's S3-compatible server
//! on 127.0.0.1 (as the tests do), uploads them, and times, each run in a
//! new session:
//! - listing: `SELECT count(*) FROM images(LOCATION)`;
//! - headers: `SELECT count(*), sum(width) ...`, a ranged read of each
//!   object's first bytes, `images.*` concurrency as configured;
//! - decoding: `SELECT sum(image_width(image))` on the first 100.
//!
//! moto is a Python server on the same two cores, so the s3 figures are an
//! upper bound of the engine's own overhead, not of a real S3's latency.

#[path = "support/texture.rs"]
mod support;
use support::texture;

#[path = "../tests/common/s3.rs"]
#[allow(dead_code)]
mod s3;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rookery::{new_session, EngineOptions};
use url::Url;

const BUCKET: &str = "bench";

fn make_images(dir: &std::path::Path, count: usize, width: u32, height: u32) {
    let done = dir.join(".complete");
    if done.exists() {
        return;
    }
    std::fs::create_dir_all(dir).expect("bench folder");
    eprintln!("making {count} {width}x{height} JPEGs in {} ...", dir.display());
    for i in 0..count {
        let mut bytes = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
        texture(width, height, i as u32)
            .write_with_encoder(encoder)
            .expect("encode");
        std::fs::write(dir.join(format!("{i:05}.jpg")), bytes).expect("write");
    }
    std::fs::write(done, b"").expect("marker");
}

async fn upload(store: Arc<dyn ObjectStore>, dir: &std::path::Path) -> usize {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    let puts = files.into_iter().map(|path| {
        let store = Arc::clone(&store);
        async move {
            let name = path.file_name().expect("name").to_string_lossy().to_string();
            let bytes = std::fs::read(&path).expect("read");
            let size = bytes.len();
            store
                .put(&StorePath::from(format!("frames/{name}")), PutPayload::from(bytes))
                .await
                .expect("put");
            size
        }
    });
    futures::stream::iter(puts)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .iter()
        .sum()
}

/// The median time of `sql` over `repeats` runs, each in a new session so
/// that no listing is cached (DataFusion caches a folder's listing per
/// session), and its first result row.
async fn timed(session: impl Fn() -> SessionContext, sql: &str, repeats: usize) -> (f64, String) {
    let mut times = Vec::new();
    let mut answer = String::new();
    for _ in 0..repeats {
        let ctx = session();
        let started = Instant::now();
        let batches = ctx.sql(sql).await.expect("plan").collect().await.expect("run");
        times.push(started.elapsed().as_secs_f64());
        answer = pretty_format_batches(&batches).expect("format").to_string();
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], answer.lines().nth(3).unwrap_or("").to_string())
}

/// The floor the server sets: list, then a ranged read of each object's
/// first 64 KiB, 32 at a time, with object_store alone.
async fn raw_headers(store: &dyn ObjectStore, repeats: usize) -> f64 {
    let mut times = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let metas: Vec<_> = store
            .list(Some(&StorePath::from("frames")))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|m| m.expect("list"))
            .collect();
        let reads = metas
            .iter()
            .map(|m| store.get_range(&m.location, 0..m.size.min(64 * 1024)));
        let read: Vec<_> = futures::stream::iter(reads).buffer_unordered(32).collect().await;
        assert!(read.iter().all(|r| r.is_ok()));
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let (mut count, mut width, mut height, mut repeats) = (1000usize, 1024u32, 683u32, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--count" => count = value().parse().expect("--count N"),
            "--repeats" => repeats = value().parse().expect("--repeats N"),
            "--size" => {
                let v = value();
                let (w, h) = v.split_once('x').expect("--size WxH");
                (width, height) = (w.parse().expect("width"), h.parse().expect("height"));
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let dir = std::env::temp_dir().join(format!("rookery-bench/s3-{width}x{height}-{count}"));
    make_images(&dir, count, width, height);

    let server = s3::S3Server::start();
    server.create_bucket(BUCKET);
    let options = server.store_options();
    let url = Url::parse(&format!("s3://{BUCKET}/")).expect("url");
    let store = rookery::stores::build_store(&url, &options).expect("store");
    let started = Instant::now();
    let bytes = upload(Arc::clone(&store), &dir).await;
    eprintln!(
        "uploaded {count} objects, {:.0} MB, in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let session = || {
        let ctx = new_session(&EngineOptions::default()).expect("session");
        ctx.register_object_store(&url, Arc::clone(&store));
        ctx
    };
    let local = dir.display().to_string();
    let remote = format!("s3://{BUCKET}/frames");
    let queries = [
        ("listing", "SELECT count(*) FROM images('{}/')".to_string()),
        ("headers", "SELECT count(*), sum(width) FROM images('{}/')".to_string()),
        (
            "decode 100",
            "SELECT sum(image_width(image)) FROM (SELECT image FROM images('{}/') WHERE name < '00100')".to_string(),
        ),
    ];
    let raw = raw_headers(store.as_ref(), repeats).await;
    println!("object_store alone, list + 1,000 ranged reads of 64 KiB, 32 in flight: {raw:.3} s");
    println!("| query | local s | s3 (moto) s | s3 / local |");
    println!("|---|---|---|---|");
    for (what, sql) in queries {
        let (local_s, local_answer) = timed(session, &sql.replace("{}", &local), repeats).await;
        let (remote_s, remote_answer) = timed(session, &sql.replace("{}", &remote), repeats).await;
        assert_eq!(local_answer, remote_answer, "{what}: the same answer");
        println!("| {what} | {local_s:.3} | {remote_s:.3} | {:.1}x |", remote_s / local_s);
    }
}
