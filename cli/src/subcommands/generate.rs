//! `rookery gen-sealions` and `rookery gen-frames`: the generated data sets.

use std::path::PathBuf;

use datafusion::common::Result;
use rookery::session::available_cores;

use super::GlobalArgs;

/// Generate a sea-lion-like data set (Train/, TrainDotted/, Test/,
/// train.csv, MismatchedTrainImages.txt, and ground truth in truth/).
#[derive(Debug, clap::Args)]
pub struct GenSealionsArgs {
    /// Folder to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Training images.
    #[arg(long, default_value_t = 30)]
    pub train: usize,
    /// Test images.
    #[arg(long, default_value_t = 10)]
    pub test: usize,
    /// Image size, WIDTHxHEIGHT (the real frames are 4992x3328).
    #[arg(long, default_value = "960x640", value_parser = parse_dimensions)]
    pub size: (u32, u32),
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 2017)]
    pub seed: u64,
    /// Most animals in one image.
    #[arg(long, default_value_t = 80)]
    pub max_animals: usize,
}

impl GenSealionsArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        let options = rookery::sealions::GenOptions {
            out: self.out,
            train: self.train,
            test: self.test,
            width: self.size.0,
            height: self.size.1,
            seed: self.seed,
            max_animals: self.max_animals,
        };
        gen_sealions(options, global.quiet)
    }
}

fn gen_sealions(options: rookery::sealions::GenOptions, quiet: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let files = rookery::sealions::generate(&options, available_cores(), |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    if !quiet {
        eprintln!(
            "wrote {files} files to {} in {:.1} s",
            options.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn parse_dimensions(text: &str) -> std::result::Result<(u32, u32), String> {
    let parse = |s: &str| s.trim().parse::<u32>().ok().filter(|n| *n >= 64);
    match text.split_once(['x', 'X']) {
        Some((w, h)) => match (parse(w), parse(h)) {
            (Some(w), Some(h)) => Ok((w, h)),
            _ => Err(format!(
                "'{text}': width and height must be whole numbers of at least 64"
            )),
        },
        None => Err(format!("'{text}' is not WIDTHxHEIGHT (example: 4992x3328)")),
    }
}

/// Generate a labelled folder of deep-sea-like video frames (frames/,
/// labels.csv with index,filename,label), for sql/classify/. With --tree,
/// a class-per-folder tree (frames/interesting/, frames/not_interesting/)
/// instead; with --video, ROV-like dive clips (dives/dive_N.mp4, H.264)
/// and labels.csv naming each frame dive_N.mp4_FRAME.png.
#[derive(Debug, clap::Args)]
pub struct GenFramesArgs {
    /// Folder to write (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of frames.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 2019)]
    pub seed: u64,
    /// Frame size, WIDTHxHEIGHT (even numbers for --video).
    #[arg(long, value_parser = parse_dimensions, default_value = "128x96")]
    pub size: (u32, u32),
    /// Write a class-per-folder tree, one folder per label, and no label file.
    #[arg(long, conflicts_with = "video")]
    pub tree: bool,
    /// Write dive videos (MP4, H.264) instead of image files.
    #[arg(long)]
    pub video: bool,
    /// With --video: the number of clips.
    #[arg(long, default_value_t = 2, requires = "video")]
    pub clips: usize,
    /// With --video: seconds per clip.
    #[arg(long, default_value_t = 10.0, requires = "video")]
    pub seconds: f64,
    /// With --video: frames per second.
    #[arg(long, default_value_t = 10.0, requires = "video")]
    pub fps: f64,
}

impl GenFramesArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        let options = rookery::frames::FrameOptions {
            count: self.count,
            seed: self.seed,
            width: self.size.0,
            height: self.size.1,
            ..Default::default()
        };
        let written = if self.video {
            let clips = rookery::frames::ClipOptions {
                clips: self.clips,
                seconds: self.seconds,
                fps: self.fps,
                ..Default::default()
            };
            let frames = rookery::frames::generate_clips(&self.out, &options, &clips)?;
            format!("{frames} frames in {} clips (dives/) and labels.csv", self.clips)
        } else if self.tree {
            let frames = rookery::frames::generate_frame_tree(&self.out, &options)?;
            format!("{frames} frames in one folder per label (frames/)")
        } else {
            let frames = rookery::frames::generate_frames(&self.out, &options)?;
            format!("{frames} frames and labels.csv")
        };
        if !global.quiet {
            eprintln!("wrote {written} to {}", self.out.display());
        }
        Ok(())
    }
}
