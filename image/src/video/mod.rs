//! Video files as frames: MP4 files with an H.264 track, decoded by Cisco's
//! OpenH264 (Baseline, Main and High profiles, CABAC, B-frames).
//!
//! - [`container`]: the file's index from its top-level boxes, read
//!   without its media data;
//! - [`VideoIndex`]: the video track's frames in display order, which of
//!   them a query wants ([`FrameSelection`]) and which samples must be
//!   decoded for them ([`VideoIndex::decode_plan`]: whole groups of
//!   pictures from their keyframe, none that no wanted frame needs);
//! - [`decode`]: samples to RGB images;
//! - [`encode`]: RGB images to an MP4 file (OpenH264's encoder writes the
//!   Constrained Baseline profile), for generated clips and tests.

pub mod container;
pub mod decode;
pub mod encode;

use std::ops::Range;

use container::{SparseFile, TopBox};

/// What can be wrong with a video file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VideoError {
    #[error("not an MP4 video: {0}")]
    NotMp4(String),
    #[error("truncated MP4: {0}")]
    Truncated(String),
    #[error("unsupported video: {0}")]
    Unsupported(String),
    #[error("cannot decode H.264: {0}")]
    Decode(String),
    #[error("cannot encode H.264: {0}")]
    Encode(String),
}

/// One frame of the video track, in display order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Its place in display order, from 0.
    pub index: u64,
    /// Seconds from the first frame shown.
    pub timestamp: f64,
    /// Its sample, in decode (file) order.
    pub sample: usize,
    /// A keyframe: decodable alone.
    pub keyframe: bool,
}

/// Where a sample's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRange {
    pub offset: u64,
    pub size: u64,
}

/// The video track of an MP4 file, as an index of its frames.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoIndex {
    pub width: u32,
    pub height: u32,
    /// Samples in decode (file) order.
    pub samples: Vec<SampleRange>,
    /// Frames in display order.
    pub frames: Vec<Frame>,
    /// The decoder's parameter sets (SPS and PPS NAL units).
    pub parameter_sets: Vec<Vec<u8>>,
    /// Bytes of each NAL unit's length prefix in a sample (1, 2 or 4).
    pub nal_length_size: usize,
    /// For each sample in decode order, its frame (display) index.
    display_of_sample: Vec<usize>,
}

/// Which frames a query wants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameSelection {
    /// Seconds; frames from this time on.
    pub start: f64,
    /// Seconds; frames before this time (all when `None`).
    pub end: Option<f64>,
    /// At most this many frames a second: the first frame of each
    /// `1/fps`-second step from `start`.
    pub fps: Option<f64>,
    /// Keyframes only (decoded alone, the cheapest to sample).
    pub keyframes_only: bool,
}

impl Default for FrameSelection {
    fn default() -> Self {
        Self {
            start: 0.0,
            end: None,
            fps: None,
            keyframes_only: false,
        }
    }
}

/// Samples to decode in one go (decode order) and the frames of them that
/// are wanted (display indexes, ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeStep {
    pub samples: Range<usize>,
    pub wanted: Vec<usize>,
}

impl VideoIndex {
    /// The index of a file of `file_size` bytes from its top-level boxes'
    /// bytes: each box's header, and the whole of index boxes
    /// ([`TopBox::is_index`]), as `(start, bytes)`.
    pub fn from_boxes(file_size: u64, boxes: Vec<(u64, Vec<u8>)>) -> Result<Self, VideoError> {
        // re_mp4 has panicking paths on malformed input; a bad file must
        // be an error row, never a crash.
        let parsed = std::panic::catch_unwind(move || {
            let file = SparseFile::new(file_size, boxes);
            re_mp4::Mp4::read(file, file_size)
        });
        let mp4 = match parsed {
            Ok(Ok(mp4)) => mp4,
            Ok(Err(e)) => return Err(VideoError::NotMp4(e.to_string())),
            Err(_) => return Err(VideoError::NotMp4("malformed index boxes".to_string())),
        };
        let Some(track) = mp4.tracks().values().find(|t| t.kind == Some(re_mp4::TrackKind::Video)) else {
            return Err(VideoError::Unsupported("the file has no video track".to_string()));
        };
        let avc = match &track.trak(&mp4).mdia.minf.stbl.stsd.contents {
            re_mp4::StsdBoxContent::Avc1(avc1) => &avc1.avcc,
            _ => {
                let codec = track.codec_string(&mp4).unwrap_or_else(|| "unknown".to_string());
                return Err(VideoError::Unsupported(format!(
                    "the video track is {codec}, not H.264 (avc1)"
                )));
            }
        };
        let nal_length_size = usize::from(avc.length_size_minus_one & 3) + 1;
        if nal_length_size == 3 {
            return Err(VideoError::Unsupported("3-byte NAL lengths".to_string()));
        }
        let parameter_sets = avc
            .sequence_parameter_sets
            .iter()
            .chain(&avc.picture_parameter_sets)
            .map(|n| n.bytes.clone())
            .collect();
        let timescale = track.timescale.max(1) as f64;
        let samples: Vec<SampleRange> = track
            .samples
            .iter()
            .map(|s| SampleRange {
                offset: s.offset,
                size: s.size,
            })
            .collect();
        for (i, s) in samples.iter().enumerate() {
            if s.offset.checked_add(s.size).is_none_or(|end| end > file_size) {
                return Err(VideoError::Truncated(format!(
                    "sample {i} lies past the end of the file ({file_size} bytes)"
                )));
            }
        }
        let mut order: Vec<usize> = (0..track.samples.len()).collect();
        order.sort_by_key(|&i| (track.samples[i].composition_timestamp, i));
        let first = order.first().map_or(0, |&i| track.samples[i].composition_timestamp);
        let mut display_of_sample = vec![0; samples.len()];
        let frames = order
            .iter()
            .enumerate()
            .map(|(index, &sample)| {
                display_of_sample[sample] = index;
                let s = &track.samples[sample];
                Frame {
                    index: index as u64,
                    timestamp: (s.composition_timestamp - first) as f64 / timescale,
                    sample,
                    keyframe: s.is_sync,
                }
            })
            .collect();
        Ok(Self {
            width: u32::from(track.width),
            height: u32::from(track.height),
            samples,
            frames,
            parameter_sets,
            nal_length_size,
            display_of_sample,
        })
    }

    /// The display indexes of the frames `selection` wants, ascending.
    pub fn select(&self, selection: &FrameSelection) -> Vec<usize> {
        let mut next_step = 0u64;
        self.frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.timestamp >= selection.start && selection.end.is_none_or(|end| f.timestamp < end))
            .filter(|(_, f)| f.keyframe || !selection.keyframes_only)
            .filter(|(_, f)| match selection.fps {
                None => true,
                Some(fps) => {
                    // The first frame at or after each step's time.
                    let step = ((f.timestamp - selection.start) * fps + 1e-9).floor().max(0.0) as u64;
                    let take = step >= next_step;
                    if take {
                        next_step = step + 1;
                    }
                    take
                }
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// What to decode for the `wanted` frames (display indexes): per group
    /// of pictures holding one, its samples from its keyframe to the last
    /// one a wanted frame needs, in file order.
    pub fn decode_plan(&self, wanted: &[usize]) -> Vec<DecodeStep> {
        // Each sample's group: the keyframe at or before it in file order.
        let mut group_start = Vec::with_capacity(self.samples.len());
        let mut start = 0;
        for (i, frame_of) in self.display_of_sample.iter().enumerate() {
            if self.frames[*frame_of].keyframe {
                start = i;
            }
            group_start.push(start);
        }
        let mut steps: Vec<DecodeStep> = Vec::new();
        let mut by_sample: Vec<(usize, usize)> = wanted
            .iter()
            .filter_map(|&f| self.frames.get(f).map(|frame| (frame.sample, f)))
            .collect();
        by_sample.sort_unstable();
        for (sample, frame) in by_sample {
            let first = group_start[sample];
            match steps.last_mut() {
                Some(step) if step.samples.start == first => {
                    step.samples.end = step.samples.end.max(sample + 1);
                    step.wanted.push(frame);
                }
                _ => steps.push(DecodeStep {
                    samples: first..sample + 1,
                    wanted: vec![frame],
                }),
            }
        }
        for step in &mut steps {
            step.wanted.sort_unstable();
        }
        steps
    }

    /// True when sample `s` (decode order) is a keyframe.
    pub fn is_keyframe_sample(&self, s: usize) -> bool {
        self.display_of_sample
            .get(s)
            .and_then(|&f| self.frames.get(f))
            .is_some_and(|f| f.keyframe)
    }

    /// The file bytes holding `samples` (decode order), as one range.
    pub fn byte_span(&self, samples: Range<usize>) -> Option<Range<u64>> {
        let slice = self.samples.get(samples)?;
        let start = slice.iter().map(|s| s.offset).min()?;
        let end = slice.iter().map(|s| s.offset + s.size).max()?;
        Some(start..end)
    }

    /// Display indexes of the frames of `samples` (decode order), ascending.
    pub fn frames_of(&self, samples: Range<usize>) -> Vec<usize> {
        let mut frames: Vec<usize> = samples.filter_map(|s| self.display_of_sample.get(s).copied()).collect();
        frames.sort_unstable();
        frames
    }
}

/// The top-level boxes whose bytes [`VideoIndex::from_boxes`] needs, found
/// by reading box headers one after the other: `read(range)` returns the
/// file's bytes in `range`.
pub async fn read_index_boxes<F, Fut, E>(
    file_size: u64,
    mut read: F,
) -> Result<Result<Vec<(u64, Vec<u8>)>, VideoError>, E>
where
    F: FnMut(Range<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, E>>,
{
    let mut boxes = Vec::new();
    let mut at = 0u64;
    let mut has_moov = false;
    while at < file_size {
        if file_size - at < 8 {
            break;
        }
        let header = read(at..(at + container::BOX_HEADER_BYTES).min(file_size)).await?;
        let top: TopBox = match container::parse_box_header(&header, at, file_size) {
            Ok(top) => top,
            Err(e) => return Ok(Err(e)),
        };
        has_moov |= &top.kind == b"moov";
        if top.is_index() {
            boxes.push((at, read(top.range()).await?));
        } else {
            boxes.push((at, header));
        }
        at += top.size;
    }
    if file_size == 0 {
        return Ok(Err(VideoError::NotMp4("empty file".to_string())));
    }
    if !has_moov {
        return Ok(Err(VideoError::Truncated(
            "no 'moov' index box (the file was cut off before its index was written)".to_string(),
        )));
    }
    Ok(Ok(boxes))
}

#[cfg(test)]
mod tests;
