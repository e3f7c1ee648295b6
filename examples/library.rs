//! Rookery as a library: a plain DataFusion `SessionContext`, one
//! `rookery::register` call, then every image feature through `ctx.sql`,
//! `COPY ... STORED AS IMAGES` included. No CLI involved.
//!
//! `cargo run --example library [OUTPUT_DIR]` (run from the repository
//! root: it reads `data/`). Trains a tiny model for 1 epoch, so it needs
//! ONNX Runtime's library (`scripts/setup-onnxruntime.sh`).

use datafusion::arrow::util::pretty::print_batches;
use datafusion::error::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;

#[tokio::main]
async fn main() -> Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| {
        std::env::temp_dir()
            .join("rookery-library-example")
            .display()
            .to_string()
    });
    let _ = std::fs::remove_dir_all(&out);

    // The three lines a library user writes.
    let state = rookery::register(SessionStateBuilder::new().with_default_features()).build();
    let ctx = SessionContext::new_with_state(state);

    let statements = [
        "CREATE EXTERNAL TABLE dotted STORED AS IMAGES LOCATION 'data/sealions/TrainDotted/'".to_string(),
        "CREATE EXTERNAL TABLE plain STORED AS IMAGES LOCATION 'data/sealions/Train/'".to_string(),
        "CREATE EXTERNAL TABLE labels STORED AS CSV LOCATION 'data/frames/labels.csv' OPTIONS ('format.has_header' 'true')"
            .to_string(),
        // Dots, and a thumbnail around each, written as PNG files.
        "CREATE TABLE dots AS SELECT d.name, unnest(blob_dots(d.image, p.image)) AS dot
         FROM dotted d JOIN plain p ON d.name = p.name WHERE d.name IN ('0', '1')"
            .to_string(),
        format!(
            "COPY (SELECT p.name || '_' || CAST(dot['x'] AS VARCHAR) || '_' || CAST(dot['y'] AS VARCHAR) AS name,
                    thumbnail(p.image, dot['x'], dot['y'], 64) AS thumb
             FROM dots JOIN plain p ON dots.name = p.name)
             TO '{out}/thumbs/' STORED AS IMAGES"
        ),
        // The image operations on one frame.
        "SELECT image_width(image) AS w, image_height(image) AS h,
                image_width(image_resize(image, 96, 64)) AS resized_w,
                image_width(image_rotate90(image)) AS turned_w,
                image_width(crop(image, 0, 0, 32, 16)) AS crop_w,
                image_width(image_grey(image_flip_h(image_flip_v(image)))) AS grey_w,
                cardinality(tile64(image)) AS tiles64,
                cardinality(tiles(image, 128, 128)) AS tiles128,
                image_width(image_decode(image_encode(draw_dots(image, [named_struct('x', 10, 'y', 10, 'class', 'pups')]), 'png'))) AS drawn_w,
                image_width(image_decode(read_blob(path))) AS decoded_w
         FROM images('data/sealions/Train/0.jpg')"
            .to_string(),
        // Augmentation: seeded, so the same query gives the same pixels.
        "SELECT image_width(image_rotate(image, 12.5, 255)) AS rotated_w,
                image_width(image_scale(image, 0.5)) AS scaled_w,
                image_width(random_crop(image, 64, 48, 7)) AS random_crop_w,
                image_width(image_adjust(image, 1.2, 0.9, 1.1)) AS adjusted_w,
                image_width(image_noise(image, 8, 1)) AS noisy_w
         FROM images('data/sealions/Train/0.jpg')"
            .to_string(),
        // Tiles as rows (header-only listing: no decode without the tile column).
        "SELECT count(*) AS tiles FROM image_tiles('data/sealions/Test/', 64, 64)".to_string(),
        // Train a model on frame labels, then classify with ONNX Runtime.
        format!(
            "SELECT run['classes'] AS classes FROM (
               SELECT cnn_train(i.image, l.label, 'epochs=1, input_size=32, validation=0, output={out}/frames.onnx') AS run
               FROM images('data/frames/frames/') i JOIN labels l ON i.name || '.jpg' = l.filename)"
        ),
        format!(
            "SELECT cnn_classify('{out}/frames.onnx', image) AS label, count(*) AS frames,
                    max(cardinality(cnn_scores('{out}/frames.onnx', image))) AS classes
             FROM images('data/frames/frames/') GROUP BY 1 ORDER BY 1"
        ),
        format!("SELECT count(*) AS thumbnails_written FROM images('{out}/thumbs/')"),
    ];
    for sql in statements {
        println!("> {}", sql.split_whitespace().collect::<Vec<_>>().join(" "));
        let batches = ctx.sql(&sql).await?.collect().await?;
        print_batches(&batches)?;
    }
    Ok(())
}
