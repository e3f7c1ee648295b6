//! Benchmark (not a test): `video_frames` against OpenH264's own decoding
//! loop on the same MP4 file.
//!
//! ```text
//! cargo run -p rookery-cli --example bench_video -- CLIP.mp4 [--runs 3]
//! ```
//!
//! With the `rookery` binary's allocator (mimalloc, tuned the same way).
//!
//! - library loop: the whole file read, its samples found by the same
//!   index (re_mp4), each sent to `openh264::decoder::Decoder` as Annex B
//!   and every picture converted to RGB (`write_rgb8`), as a program using
//!   the library alone would;
//! - Rookery: `SELECT sum(image_width(image)) FROM video_frames(CLIP)` in
//!   this process, which decodes every frame into an image value.
//!
//! Both on one core (one file is one partition), run alternately. Prints
//! frames per second, the median of `--runs`, and the ratio.

use std::time::Instant;

use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use rookery::exec::run_sql;
use rookery_image::video::decode::append_annex_b;
use rookery_image::video::{read_index_boxes, VideoIndex};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn library_loop(file: &[u8]) -> usize {
    let size = file.len() as u64;
    let read =
        |r: std::ops::Range<u64>| std::future::ready(Ok::<_, ()>(file[r.start as usize..r.end as usize].to_vec()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let boxes = runtime
        .block_on(read_index_boxes(size, read))
        .expect("read")
        .expect("index");
    let index = VideoIndex::from_boxes(size, boxes).expect("index");
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), config).expect("decoder");
    let mut annex_b = Vec::new();
    for set in &index.parameter_sets {
        annex_b.extend_from_slice(&[0, 0, 0, 1]);
        annex_b.extend_from_slice(set);
    }
    let mut rgb = vec![0u8; index.width as usize * index.height as usize * 3];
    let mut frames = 0;
    for sample in &index.samples {
        let bytes = &file[sample.offset as usize..(sample.offset + sample.size) as usize];
        append_annex_b(bytes, index.nal_length_size, &mut annex_b).expect("sample");
        if let Some(picture) = decoder.decode(&annex_b).expect("decode") {
            let (w, h) = picture.dimensions();
            rgb.resize(w * h * 3, 0);
            picture.write_rgb8(&mut rgb);
            frames += 1;
        }
        annex_b.clear();
    }
    for picture in decoder.flush_remaining().expect("flush") {
        picture.write_rgb8(&mut rgb);
        frames += 1;
    }
    frames
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rookery_cli::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let clip = args.first().ok_or("usage: bench_video CLIP.mp4 [--runs N]")?.clone();
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).ok_or("--runs N")?.parse()?,
        None => 3,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let options = rookery::session::EngineOptions {
        partitions: Some(1),
        ..Default::default()
    };
    let ctx = rookery::session::new_session(&options)?;
    let sql = format!("SELECT count(*), sum(image_width(image)) FROM video_frames('{clip}')");
    // Alternating runs, so that the machine's slow spells fall on both.
    let (mut library, mut ours, mut frames) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let started = Instant::now();
        let file = std::fs::read(&clip)?;
        frames = library_loop(&file);
        library.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        runtime.block_on(run_sql(&ctx, &sql))?;
        ours.push(started.elapsed().as_secs_f64());
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let (best_library, best_rookery) = (median(&mut library), median(&mut ours));
    let (lib_fps, rookery_fps) = (frames as f64 / best_library, frames as f64 / best_rookery);
    println!("frames: {frames}");
    println!("OpenH264 loop: {best_library:.2} s, {lib_fps:.1} frames/s");
    println!("video_frames:  {best_rookery:.2} s, {rookery_fps:.1} frames/s");
    println!("ratio (video_frames / loop): {:.3}", rookery_fps / lib_fps);
    Ok(())
}
