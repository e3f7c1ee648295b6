//! H.264 samples to RGB images, by OpenH264 (built from its source).
//!
//! Samples are fed in file order; pictures come out in display order
//! (OpenH264 reorders B-frames by picture order count), some only when the
//! decoder is flushed. The decoder never flushes on its own: that would
//! hand out pictures before the B-frames shown ahead of them.

use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::{VideoError, VideoIndex};
use crate::Image;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// A decoder for one video track.
pub struct FrameDecoder {
    decoder: Decoder,
    /// SPS and PPS in Annex B form, sent ahead of every keyframe so that
    /// decoding can start at any of them.
    parameter_sets: Vec<u8>,
    nal_length_size: usize,
    /// The sample being sent, in Annex B form.
    annex_b: Vec<u8>,
}

/// A decoded picture, valid until the decoder is used again.
pub struct Picture<'a>(DecodedYUV<'a>);

impl Picture<'_> {
    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (w, h) = self.0.dimensions();
        (w as u32, h as u32)
    }

    /// The picture as an RGB image (its bytes are `width * height * 3`).
    pub fn to_image(&self) -> Image {
        let (width, height) = self.size();
        let mut data = vec![0u8; width as usize * height as usize * 3];
        self.0.write_rgb8(&mut data);
        Image {
            width,
            height,
            channels: 3,
            data,
        }
    }
}

impl FrameDecoder {
    pub fn new(index: &VideoIndex) -> Result<Self, VideoError> {
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| VideoError::Decode(format!("cannot start the decoder: {e}")))?;
        let mut parameter_sets = Vec::new();
        for set in &index.parameter_sets {
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(set);
        }
        Ok(Self {
            decoder,
            parameter_sets,
            nal_length_size: index.nal_length_size,
            annex_b: Vec::new(),
        })
    }

    /// Sends one sample (length-prefixed NAL units); `keyframe` sends the
    /// parameter sets first. `on_picture` sees the picture it completes,
    /// if any.
    pub fn decode<T>(
        &mut self,
        sample: &[u8],
        keyframe: bool,
        on_picture: impl FnOnce(Picture<'_>) -> T,
    ) -> Result<Option<T>, VideoError> {
        self.annex_b.clear();
        if keyframe {
            self.annex_b.extend_from_slice(&self.parameter_sets);
        }
        append_annex_b(sample, self.nal_length_size, &mut self.annex_b)?;
        let picture = self
            .decoder
            .decode(&self.annex_b)
            .map_err(|e| VideoError::Decode(e.to_string()))?;
        Ok(picture.map(|p| on_picture(Picture(p))))
    }

    /// The pictures still held for reordering, in display order.
    pub fn flush<T>(&mut self, mut on_picture: impl FnMut(Picture<'_>) -> T) -> Result<Vec<T>, VideoError> {
        let pictures = self
            .decoder
            .flush_remaining()
            .map_err(|e| VideoError::Decode(e.to_string()))?;
        Ok(pictures.into_iter().map(|p| on_picture(Picture(p))).collect())
    }
}

/// Appends `sample`'s NAL units (each after a big-endian length of
/// `length_size` bytes) to `out` in Annex B form (each after a start code).
pub fn append_annex_b(sample: &[u8], length_size: usize, out: &mut Vec<u8>) -> Result<(), VideoError> {
    let mut rest = sample;
    while !rest.is_empty() {
        if rest.len() < length_size {
            return Err(VideoError::Decode("a NAL unit length is cut off".to_string()));
        }
        let (length, tail) = rest.split_at(length_size);
        let length = length.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        if length > tail.len() {
            return Err(VideoError::Decode(format!(
                "a NAL unit of {length} bytes runs past its sample ({} bytes left)",
                tail.len()
            )));
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(&tail[..length]);
        rest = &tail[length..];
    }
    Ok(())
}
