//! RGB images to an MP4 file with one H.264 track, by OpenH264's encoder
//! (Constrained Baseline profile) and the `mp4` crate's writer, which puts
//! the index at the end of the file as cameras and ffmpeg do.

use std::io::{Seek, Write};

use bytes::Bytes;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode};
use openh264::formats::{RgbSliceU8, YUVBuffer};
use openh264::OpenH264API;

use super::VideoError;
use crate::ImageView;

/// Time units per second in the written track.
const TIMESCALE: u32 = 90_000;

/// Writes frames of one size as an MP4 clip.
pub struct ClipWriter<W: Write + Seek> {
    encoder: Encoder,
    writer: Option<mp4::Mp4Writer<W>>,
    width: u32,
    height: u32,
    frame_ticks: u32,
    frames: u64,
    track_added: bool,
    yuv: YUVBuffer,
}

fn encode_error(e: impl std::fmt::Display) -> VideoError {
    VideoError::Encode(e.to_string())
}

impl<W: Write + Seek> ClipWriter<W> {
    /// A clip of `width` x `height` frames (even numbers) at `fps` frames a
    /// second with a keyframe every `keyframe_interval` frames.
    pub fn new(writer: W, width: u32, height: u32, fps: f64, keyframe_interval: u32) -> Result<Self, VideoError> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(VideoError::Encode(format!(
                "frames must have even sides, not {width}x{height}"
            )));
        }
        if !(fps.is_finite() && fps > 0.0) {
            return Err(VideoError::Encode(format!("frame rate must be above 0, not {fps}")));
        }
        let pixels = f64::from(width) * f64::from(height);
        let config = EncoderConfig::new()
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .bitrate(BitRate::from_bps(
                (pixels * fps * 0.1).clamp(100_000.0, 50_000_000.0) as u32
            ))
            .rate_control_mode(RateControlMode::Off)
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(keyframe_interval.max(1)));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config).map_err(encode_error)?;
        let mp4_config = mp4::Mp4Config {
            major_brand: str::parse("isom").map_err(encode_error)?,
            minor_version: 512,
            compatible_brands: ["isom", "iso2", "avc1", "mp41"]
                .iter()
                .map(|b| str::parse(b))
                .collect::<Result<_, _>>()
                .map_err(encode_error)?,
            timescale: 1000,
        };
        let writer = mp4::Mp4Writer::write_start(writer, &mp4_config).map_err(encode_error)?;
        Ok(Self {
            encoder,
            writer: Some(writer),
            width,
            height,
            frame_ticks: (f64::from(TIMESCALE) / fps).round().max(1.0) as u32,
            frames: 0,
            track_added: false,
            yuv: YUVBuffer::new(width as usize, height as usize),
        })
    }

    /// Encodes and writes one RGB frame of the clip's size.
    pub fn push(&mut self, frame: ImageView<'_>) -> Result<(), VideoError> {
        if (frame.width, frame.height, frame.channels) != (self.width, self.height, 3) {
            return Err(VideoError::Encode(format!(
                "frame {} is {}x{}x{}, not {}x{}x3",
                self.frames, frame.width, frame.height, frame.channels, self.width, self.height
            )));
        }
        self.yuv
            .read_rgb8(RgbSliceU8::new(frame.data, (self.width as usize, self.height as usize)));
        let stream = self.encoder.encode(&self.yuv).map_err(encode_error)?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        let (mut sps, mut pps, mut sample) = (None, None, Vec::new());
        for l in 0..stream.num_layers() {
            let Some(layer) = stream.layer(l) else { continue };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n).map(strip_start_code) else {
                    continue;
                };
                match nal.first().map(|b| b & 0x1f) {
                    Some(7) => sps = Some(nal.to_vec()),
                    Some(8) => pps = Some(nal.to_vec()),
                    Some(_) => {
                        sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.extend_from_slice(nal);
                    }
                    None => {}
                }
            }
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(VideoError::Encode("the clip is finished".to_string()));
        };
        if !self.track_added {
            let (Some(sps), Some(pps)) = (sps, pps) else {
                return Err(VideoError::Encode("the first frame has no parameter sets".to_string()));
            };
            let track = mp4::TrackConfig {
                track_type: mp4::TrackType::Video,
                timescale: TIMESCALE,
                language: "und".to_string(),
                media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                    width: self.width as u16,
                    height: self.height as u16,
                    seq_param_set: sps,
                    pic_param_set: pps,
                }),
            };
            writer.add_track(&track).map_err(encode_error)?;
            self.track_added = true;
        }
        let sample = mp4::Mp4Sample {
            start_time: self.frames * u64::from(self.frame_ticks),
            duration: self.frame_ticks,
            rendering_offset: 0,
            is_sync: keyframe,
            bytes: Bytes::from(sample),
        };
        writer.write_sample(1, &sample).map_err(encode_error)?;
        self.frames += 1;
        Ok(())
    }

    /// Writes the index and returns the writer.
    pub fn finish(mut self) -> Result<W, VideoError> {
        let Some(mut writer) = self.writer.take() else {
            return Err(VideoError::Encode("the clip is finished".to_string()));
        };
        if self.frames == 0 {
            return Err(VideoError::Encode("a clip needs at least one frame".to_string()));
        }
        writer.write_end().map_err(encode_error)?;
        Ok(writer.into_writer())
    }
}

/// A NAL unit without its Annex B start code.
fn strip_start_code(nal: &[u8]) -> &[u8] {
    let zeros = nal.iter().take_while(|b| **b == 0).count();
    if zeros >= 2 && nal.get(zeros) == Some(&1) {
        &nal[zeros + 1..]
    } else {
        nal
    }
}
