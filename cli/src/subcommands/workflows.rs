//! `rookery augment`, `rookery train` and `rookery crops`: the labelled-folder
//! workflows, whose SQL lives in the engine (`rookery::workflows`).

use std::path::PathBuf;

use datafusion::common::Result;

use super::{Engine, GlobalArgs};

/// Augment a labelled image folder: writes every labelled image and
/// --copies seeded random variants of it (PNG, NAME_augK.png) to the
/// output folder, and a new label file filename,label,weight whose
/// weights balance the classes. Built on image_flip_h, image_rotate,
/// random_crop, image_adjust, image_noise and seeded_random.
#[derive(Debug, clap::Args)]
pub struct AugmentArgs {
    /// The images.
    #[arg(long = "input-folder", alias = "input_folder", value_name = "DIR")]
    pub input_folder: PathBuf,
    /// Where to write the images (created if missing).
    #[arg(long = "output-folder", alias = "output_folder", value_name = "DIR")]
    pub output_folder: PathBuf,
    /// CSV with a header: filename,label or index,filename,label. Without
    /// it, the input is a class-per-folder tree (each image's label is its
    /// folder's name) and the output has the same folders.
    #[arg(long = "label-file", alias = "label_file", value_name = "CSV")]
    pub label_file: Option<PathBuf>,
    /// The CSV to write: filename,label,weight for every output image.
    #[arg(
        long = "new-label-and-weights-file",
        alias = "new_label_and_weights_file",
        value_name = "CSV"
    )]
    pub new_label_and_weights_file: PathBuf,
    /// Augmented copies per image (the original is written too).
    #[arg(long, default_value_t = 4)]
    pub copies: usize,
    /// Random seed: the same seed gives the same images.
    #[arg(long, default_value_t = 1)]
    pub seed: u32,
    /// Steps, in order, each drawn at random per copy: flip, flipv,
    /// rotate90, rotate, crop, jitter, noise, scale.
    #[arg(long, default_value = "flip,rotate,crop,jitter")]
    pub steps: String,
}

impl AugmentArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        use rookery::workflows::augment;
        let engine = Engine::start(global)?;
        let shell = engine.shell(global)?;
        let options = augment::AugmentOptions {
            input_folder: self.input_folder,
            output_folder: self.output_folder,
            label_file: self.label_file,
            new_label_file: self.new_label_and_weights_file,
            copies: self.copies,
            seed: self.seed,
            steps: augment::parse_steps(&self.steps)?,
        };
        let mut out = std::io::stdout().lock();
        engine
            .runtime
            .block_on(crate::workflows::run_augment(&shell.ctx, &options, &mut out))
    }
}

/// Train the CNN (cnn_train) on a labelled image folder and write the
/// ONNX model; prints cnn_train's result.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The images.
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// CSV with a header: filename,label or index,filename,label. Without
    /// it, the images are a class-per-folder tree: each image's label is
    /// its folder's name.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// The model file to write.
    #[arg(long, default_value = "model.onnx")]
    pub output: PathBuf,
    /// Training epochs [default: cnn_train's, 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Fraction of images held out for validation [default: 0.2].
    #[arg(long)]
    pub validation: Option<f64>,
    /// Random seed [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// More cnn_train options, e.g. 'augment=flip, class_weights=balanced'.
    #[arg(long, default_value = "")]
    pub options: String,
}

impl TrainArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        let engine = Engine::start(global)?;
        let shell = engine.shell(global)?;
        let command = rookery::workflows::train::TrainCommand {
            images: self.images,
            labels: self.labels,
            output: self.output,
            epochs: self.epochs,
            validation: self.validation,
            seed: self.seed,
            options: self.options,
        };
        let mut out = std::io::stdout().lock();
        engine.runtime.block_on(crate::workflows::run_train(
            &shell.ctx,
            &command,
            global.format,
            &mut out,
        ))
    }
}

/// Cut one labelled crop per animal: finds the coloured dots on the
/// dotted images (blob_dots), cuts a square centred on each from the
/// plain image of the same name (thumbnail), and writes
/// NAME_X_Y.png and labels.csv (filename,label,source,x,y).
#[derive(Debug, clap::Args)]
pub struct CropsArgs {
    /// Images with coloured dots on the animals.
    #[arg(long, value_name = "DIR")]
    pub dotted: PathBuf,
    /// The same images without dots.
    #[arg(long, value_name = "DIR")]
    pub plain: PathBuf,
    /// Where to write the crops and labels.csv.
    #[arg(long = "output-folder", alias = "output_folder", value_name = "DIR")]
    pub output_folder: PathBuf,
    /// Side of the square crops in pixels.
    #[arg(long, default_value_t = 64)]
    pub size: u32,
}

impl CropsArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        let engine = Engine::start(global)?;
        let shell = engine.shell(global)?;
        let command = rookery::workflows::crops::CropsCommand {
            dotted: self.dotted,
            plain: self.plain,
            output_folder: self.output_folder,
            size: self.size,
        };
        let mut out = std::io::stdout().lock();
        engine
            .runtime
            .block_on(crate::workflows::run_crops(&shell.ctx, &command, &mut out))
    }
}
