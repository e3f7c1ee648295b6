//! `rookery augment`: seeded random copies of labelled images, and a new
//! label file with a weight per class that balances the classes.

use std::path::PathBuf;
use std::str::FromStr;

use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::prelude::SessionContext;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};

use super::{register_labelled_folder, single_count, sql_path};
use crate::exec::run_sql;

/// One augmentation step; each draws its own numbers from the row's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Mirror left-right, half the time.
    Flip,
    /// Mirror top-bottom, half the time.
    FlipV,
    /// 0 to 3 quarter turns (square images keep their shape).
    Rotate90,
    /// Any angle within ±15°, same size, corners filled black.
    Rotate,
    /// A random window of 85 % of each side, resized back to the image's size.
    Crop,
    /// Brightness, contrast and saturation each by a factor in 0.8..1.2.
    Jitter,
    /// Gaussian noise of sigma 6.
    Noise,
    /// Resized by a factor in 0.8..1.2 (the size changes).
    Scale,
}

pub const STEP_NAMES: &str = "flip, flipv, rotate90, rotate, crop, jitter, noise, scale";

impl FromStr for Step {
    type Err = DataFusionError;

    fn from_str(text: &str) -> Result<Self> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "flip" => Self::Flip,
            "flipv" => Self::FlipV,
            "rotate90" => Self::Rotate90,
            "rotate" => Self::Rotate,
            "crop" => Self::Crop,
            "jitter" => Self::Jitter,
            "noise" => Self::Noise,
            "scale" => Self::Scale,
            other => return plan_err!("unknown augmentation step '{other}' (known: {STEP_NAMES})"),
        })
    }
}

/// Steps from `flip,rotate,...`.
pub fn parse_steps(text: &str) -> Result<Vec<Step>> {
    let steps: Vec<Step> = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Step::from_str)
        .collect::<Result<_>>()?;
    if steps.is_empty() {
        return plan_err!("give at least one augmentation step ({STEP_NAMES})");
    }
    Ok(steps)
}

impl Step {
    /// The step as SQL over column `image`, with `seed` the row's seed
    /// expression; `k` numbers the step so each draws its own numbers.
    fn sql(&self, k: usize) -> String {
        let r = |j: usize| format!("seeded_random(seed * 64 + {})", k * 8 + j);
        match self {
            Self::Flip => format!("CASE WHEN {} < 0.5 THEN image_flip_h(image) ELSE image END", r(0)),
            Self::FlipV => format!("CASE WHEN {} < 0.5 THEN image_flip_v(image) ELSE image END", r(0)),
            Self::Rotate90 => format!("image_rotate90(image, CAST(floor({} * 4) AS BIGINT))", r(0)),
            Self::Rotate => format!("image_rotate(image, ({} * 2 - 1) * 15)", r(0)),
            Self::Crop => format!(
                "image_resize(random_crop(image, CAST(greatest(image_width(image) * 0.85, 1) AS BIGINT), \
                 CAST(greatest(image_height(image) * 0.85, 1) AS BIGINT), seed * 64 + {}), image_width(image), image_height(image))",
                k * 8
            ),
            Self::Jitter => format!(
                "image_adjust(image, 0.8 + 0.4 * {}, 0.8 + 0.4 * {}, 0.8 + 0.4 * {})",
                r(0),
                r(1),
                r(2)
            ),
            Self::Noise => format!("image_noise(image, 6, seed * 64 + {})", k * 8),
            Self::Scale => format!("image_scale(image, 0.8 + 0.4 * {})", r(0)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AugmentOptions {
    pub input_folder: PathBuf,
    pub output_folder: PathBuf,
    /// The label file; without one, labels are the images' folder names.
    pub label_file: Option<PathBuf>,
    pub new_label_file: PathBuf,
    /// Augmented copies per image, besides the original.
    pub copies: usize,
    pub seed: u32,
    pub steps: Vec<Step>,
}

/// What `augment` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentSummary {
    pub originals: i64,
    pub augmented: i64,
    /// (label, images written, weight).
    pub classes: Vec<(String, i64, f64)>,
}

/// `(1), (2), ... (copies)`: the copy numbers as SQL `VALUES` rows.
fn copy_numbers(copies: usize) -> String {
    (1..=copies).map(|c| format!("({c})")).collect::<Vec<_>>().join(", ")
}

/// The SQL that writes the augmented copies (after
/// [`register_labelled_folder`] with prefix `augment`): one step after the
/// other, each a layer of the query, so an image is computed once per step.
pub fn augment_copy_sql(options: &AugmentOptions) -> String {
    let mut layers = vec![format!(
        "s0 AS (
            SELECT stem || '_aug' || c.copy AS name, label,
                -- One seed per (run seed, image, copy); each step derives its own from it.
                ({seed} * 1000003 + n * 1009 + c.copy) AS seed, image
            FROM (SELECT stem, label, image, CAST(row_number() OVER (ORDER BY stem) AS BIGINT) AS n FROM augment_labelled) l
            CROSS JOIN (VALUES {values}) AS c(copy)
        )",
        seed = options.seed,
        values = copy_numbers(options.copies)
    )];
    for (k, step) in options.steps.iter().enumerate() {
        layers.push(format!(
            "s{} AS (SELECT name, label, seed, {} AS image FROM s{k})",
            k + 1,
            step.sql(k)
        ));
    }
    format!(
        "COPY (WITH {} SELECT name, image FROM s{}) TO {} STORED AS IMAGES",
        layers.join(",\n"),
        options.steps.len(),
        sql_path(&options.output_folder, true)
    )
}

/// Writes every labelled image of the input folder (as it is) and
/// `copies` augmented copies of it (PNG, `<stem>_aug<k>.png`) to the
/// output folder, and the new label file `filename,label,weight`, where
/// a class's weight is `images / (classes x images of the class)` (as
/// scikit-learn's `class_weight='balanced'`).
pub async fn augment(ctx: &SessionContext, options: &AugmentOptions) -> Result<AugmentSummary> {
    if options.copies == 0 {
        return plan_err!("--copies must be at least 1");
    }
    let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(&options.input_folder, &options.output_folder) {
        return plan_err!(
            "the output folder must not be the input folder ({})",
            options.input_folder.display()
        );
    }
    register_labelled_folder(ctx, "augment", &options.input_folder, options.label_file.as_deref()).await?;
    let originals = single_count(ctx, "SELECT count(*) FROM augment_labelled;").await?;
    if originals == 0 {
        let source = match &options.label_file {
            Some(file) => format!("label file {}", file.display()),
            None => "the folder tree".to_string(),
        };
        return plan_err!("{source} names no image of {}", options.input_folder.display());
    }
    let folder = sql_path(&options.output_folder, true);
    // The originals as they are: their bytes, under their own name.
    run_sql(
        ctx,
        &format!("COPY (SELECT stem AS name, content FROM augment_labelled) TO {folder} STORED AS IMAGES;"),
    )
    .await?;
    run_sql(ctx, &format!("{};", augment_copy_sql(options))).await?;
    // Every file written, and each class's weight: images / (classes x
    // images of the class), as scikit-learn's class_weight='balanced'.
    run_sql(
        ctx,
        &format!(
            "CREATE VIEW augment_written AS
             SELECT stem || '.' || CASE format WHEN 'jpeg' THEN 'jpg' ELSE format END AS filename, label FROM augment_labelled
             UNION ALL
             SELECT stem || '_aug' || c.copy || '.png' AS filename, label
             FROM augment_labelled CROSS JOIN (VALUES {values}) AS c(copy);
             CREATE VIEW augment_weights AS
             WITH counts AS (SELECT label, count(*) AS images FROM augment_written GROUP BY label)
             SELECT c.label, c.images,
                 CAST((SELECT sum(images) FROM counts) AS DOUBLE) / ((SELECT count(*) FROM counts) * c.images) AS weight
             FROM counts c;
             COPY (
                 SELECT w.filename, w.label, c.weight
                 FROM augment_written w JOIN augment_weights c ON c.label = w.label
                 ORDER BY w.filename
             ) TO {} STORED AS CSV OPTIONS ('format.has_header' 'true');",
            sql_path(&options.new_label_file, false),
            values = copy_numbers(options.copies)
        ),
    )
    .await?;
    let weights = run_sql(ctx, "SELECT label, images, weight FROM augment_weights ORDER BY label;").await?;
    let mut classes = Vec::new();
    for batch in weights.iter().flat_map(|r| &r.batches) {
        // Text may come as any string type (VARCHAR is Utf8View).
        let labels = cast(batch.column(0), &DataType::Utf8)?;
        let (labels, images, weight) = (
            labels.as_string::<i32>(),
            batch.column(1).as_primitive::<Int64Type>(),
            batch.column(2).as_primitive::<Float64Type>(),
        );
        for i in 0..batch.num_rows() {
            classes.push((labels.value(i).to_string(), images.value(i), weight.value(i)));
        }
    }
    Ok(AugmentSummary {
        originals,
        augmented: originals * options.copies as i64,
        classes,
    })
}
