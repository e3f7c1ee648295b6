use std::io::Cursor;

use super::decode::FrameDecoder;
use super::encode::ClipWriter;
use super::*;
use crate::Image;

/// A frame whose grey level says its number.
fn numbered_frame(width: u32, height: u32, n: usize) -> Image {
    let level = (20 + n * 9 % 220) as u8;
    Image::new(width, height, 3, vec![level; (width * height * 3) as usize]).unwrap()
}

fn level_of(image: &Image) -> u8 {
    let sum: u64 = image.data.iter().map(|b| u64::from(*b)).sum();
    (sum / image.data.len() as u64) as u8
}

/// An MP4 clip of `frames` numbered frames at `fps`.
fn clip(frames: usize, fps: f64, keyframe_interval: u32) -> Vec<u8> {
    let mut writer = ClipWriter::new(Cursor::new(Vec::new()), 64, 48, fps, keyframe_interval).unwrap();
    for n in 0..frames {
        writer.push(numbered_frame(64, 48, n).view()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The index of `file`, read box by box as from a store.
fn index_of(file: &[u8]) -> Result<VideoIndex, VideoError> {
    let read = |range: Range<u64>| {
        let bytes = file[range.start as usize..range.end as usize].to_vec();
        std::future::ready(Ok::<_, ()>(bytes))
    };
    let boxes = futures_lite_block_on(read_index_boxes(file.len() as u64, read)).unwrap()?;
    VideoIndex::from_boxes(file.len() as u64, boxes)
}

/// Runs a future that never waits (every read above is ready).
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// Decodes the `wanted` frames of `file`, as (display index, grey level).
fn decode(file: &[u8], index: &VideoIndex, wanted: &[usize]) -> Vec<(usize, u8)> {
    let mut decoder = FrameDecoder::new(index).unwrap();
    let mut out = Vec::new();
    for step in index.decode_plan(wanted) {
        let mut pictures = Vec::new();
        for s in step.samples.clone() {
            let range = index.samples[s];
            let bytes = &file[range.offset as usize..(range.offset + range.size) as usize];
            let keyframe = index.frames.iter().any(|f| f.sample == s && f.keyframe);
            pictures.extend(decoder.decode(bytes, keyframe, |p| p.to_image()).unwrap());
        }
        pictures.extend(decoder.flush(|p| p.to_image()).unwrap());
        let frames = index.frames_of(step.samples.clone());
        assert_eq!(frames.len(), pictures.len(), "one picture per sample");
        for (frame, picture) in frames.into_iter().zip(pictures) {
            if step.wanted.contains(&frame) {
                out.push((frame, level_of(&picture)));
            }
        }
    }
    out
}

#[test]
fn every_frame_in_order() {
    let file = clip(30, 10.0, 12);
    let index = index_of(&file).unwrap();
    assert_eq!((index.width, index.height, index.frames.len()), (64, 48, 30));
    assert!((index.frames[29].timestamp - 2.9).abs() < 1e-6);
    let keyframes: Vec<u64> = index.frames.iter().filter(|f| f.keyframe).map(|f| f.index).collect();
    assert_eq!(keyframes, [0, 12, 24]);
    let all: Vec<usize> = (0..30).collect();
    let decoded = decode(&file, &index, &all);
    assert_eq!(decoded.len(), 30);
    for (n, level) in decoded {
        let expected = i32::from(level_of(&numbered_frame(2, 2, n)));
        assert!(
            (i32::from(level) - expected).abs() <= 3,
            "frame {n}: {level} vs {expected}"
        );
    }
}

#[test]
fn selections_and_what_they_decode() {
    let file = clip(30, 10.0, 12);
    let index = index_of(&file).unwrap();
    let select = |selection: FrameSelection| index.select(&selection);
    // 2 frames a second from 10: every fifth frame.
    let sampled = select(FrameSelection {
        fps: Some(2.0),
        ..Default::default()
    });
    assert_eq!(sampled, [0, 5, 10, 15, 20, 25]);
    // A time range, end excluded.
    let range = select(FrameSelection {
        start: 1.25,
        end: Some(2.0),
        ..Default::default()
    });
    assert_eq!(range, [13, 14, 15, 16, 17, 18, 19]);
    // From the keyframe before the range (12) to the last wanted frame.
    let plan = index.decode_plan(&range);
    assert_eq!(plan.len(), 1);
    assert_eq!((plan[0].samples.start, plan[0].samples.end), (12, 20));
    let decoded = decode(&file, &index, &range);
    assert_eq!(decoded.iter().map(|(f, _)| *f).collect::<Vec<_>>(), range);
    // Keyframes only decode one sample each.
    let keys = select(FrameSelection {
        keyframes_only: true,
        ..Default::default()
    });
    assert_eq!(keys, [0, 12, 24]);
    let plan = index.decode_plan(&keys);
    assert!(plan.iter().all(|step| step.samples.len() == 1), "{plan:?}");
    // The last second of the clip: one group of pictures read.
    let tail = select(FrameSelection {
        start: 2.0,
        ..Default::default()
    });
    let plan = index.decode_plan(&tail);
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert_eq!(plan[0].samples, 12..24);
}

#[test]
fn bad_files_are_errors() {
    let file = clip(5, 10.0, 12);
    // The index is written last: a cut-off file has none.
    let cut = &file[..file.len() / 2];
    let err = index_of(cut).unwrap_err();
    assert!(matches!(err, VideoError::Truncated(_)), "{err}");
    let err = index_of(b"this is not a video at all").unwrap_err();
    assert!(matches!(err, VideoError::NotMp4(_)), "{err}");
    let err = index_of(b"").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    // A PNG is not an MP4.
    let png = crate::codec::encode(numbered_frame(4, 4, 1).view(), "png", 90).unwrap();
    assert!(matches!(index_of(&png).unwrap_err(), VideoError::NotMp4(_)));
    // A sample cut short is a decode error, not a crash.
    let index = index_of(&file).unwrap();
    let mut decoder = FrameDecoder::new(&index).unwrap();
    let first = index.samples[0];
    let bytes = &file[first.offset as usize..(first.offset + first.size / 2) as usize];
    assert!(decoder.decode(bytes, true, |_| ()).is_err());
}

#[test]
fn odd_sizes_and_rates_are_refused_when_writing() {
    assert!(ClipWriter::new(Cursor::new(Vec::new()), 63, 48, 10.0, 10).is_err());
    assert!(ClipWriter::new(Cursor::new(Vec::new()), 64, 48, 0.0, 10).is_err());
    let mut writer = ClipWriter::new(Cursor::new(Vec::new()), 64, 48, 10.0, 10).unwrap();
    assert!(writer.push(numbered_frame(32, 48, 0).view()).is_err());
}

#[test]
fn annex_b_from_length_prefixes() {
    let mut out = Vec::new();
    decode::append_annex_b(&[0, 0, 0, 2, 9, 9, 0, 0, 0, 1, 7], 4, &mut out).unwrap();
    assert_eq!(out, [0, 0, 0, 1, 9, 9, 0, 0, 0, 1, 7]);
    assert!(decode::append_annex_b(&[0, 0, 0, 9, 1], 4, &mut Vec::new()).is_err());
    assert!(decode::append_annex_b(&[0, 0], 4, &mut Vec::new()).is_err());
}
