//! An MP4 file's index (its `moov` box, read by re_mp4) without reading its
//! media data: the caller reads each top-level box's header, and the whole
//! of only the small boxes that describe the samples, through whatever
//! reads ranges of the file (a local file, an object store).

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use super::VideoError;

/// The largest index box read: a 5-minute 60 fps clip's `moov` is well under
/// 1 MB; this bound keeps a hostile size from becoming an allocation.
pub const MAX_INDEX_BOX_BYTES: u64 = 256 << 20;

/// Bytes to read at a box's start to know its type and size.
pub const BOX_HEADER_BYTES: u64 = 16;

/// One top-level box of an MP4 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopBox {
    pub kind: [u8; 4],
    /// Where it starts in the file.
    pub start: u64,
    /// Its length, header included.
    pub size: u64,
}

impl TopBox {
    /// Boxes whose content the index needs: `ftyp`, `moov` and the
    /// fragments' `moof`.
    pub fn is_index(&self) -> bool {
        matches!(&self.kind, b"ftyp" | b"moov" | b"moof")
    }

    /// Its bytes in the file.
    pub fn range(&self) -> Range<u64> {
        self.start..self.start + self.size
    }
}

/// Reads the box header at `start` from `header` (the file's bytes from
/// `start`, up to [`BOX_HEADER_BYTES`]) in a file of `file_size` bytes.
pub fn parse_box_header(header: &[u8], start: u64, file_size: u64) -> Result<TopBox, VideoError> {
    let invalid = |why: &str| VideoError::NotMp4(format!("{why} at byte {start}"));
    if header.len() < 8 {
        return Err(invalid("a box header is cut off"));
    }
    let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let kind = [header[4], header[5], header[6], header[7]];
    if !kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(invalid("no MP4 box"));
    }
    if start == 0 && &kind != b"ftyp" {
        return Err(invalid("no 'ftyp' box (not an MP4 file)"));
    }
    let (size, header_len) = match size32 {
        0 => (file_size - start, 8),
        1 => {
            let Some(large) = header.get(8..16) else {
                return Err(invalid("a large box header is cut off"));
            };
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(large);
            (u64::from_be_bytes(bytes), 16)
        }
        n => (u64::from(n), 8),
    };
    if size < header_len {
        return Err(invalid("a box shorter than its header"));
    }
    if start.checked_add(size).is_none_or(|end| end > file_size) {
        return Err(VideoError::Truncated(format!(
            "the '{}' box at byte {start} runs past the end of the file ({file_size} bytes)",
            String::from_utf8_lossy(&kind)
        )));
    }
    if matches!(&kind, b"moov" | b"moof") && size > MAX_INDEX_BOX_BYTES {
        return Err(invalid("an index box over 256 MiB"));
    }
    Ok(TopBox { kind, start, size })
}

/// A file of which only some ranges were read: enough for re_mp4, which
/// reads top-level box headers and index boxes and seeks past the rest.
pub(super) struct SparseFile {
    size: u64,
    /// (start, bytes), sorted by start.
    ranges: Vec<(u64, Vec<u8>)>,
    position: u64,
}

impl SparseFile {
    pub fn new(size: u64, mut ranges: Vec<(u64, Vec<u8>)>) -> Self {
        ranges.sort_by_key(|(start, _)| *start);
        Self {
            size,
            ranges,
            position: 0,
        }
    }
}

impl Read for SparseFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.position >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let at = self.position;
        let found = self
            .ranges
            .iter()
            .find(|(start, bytes)| *start <= at && at < start + bytes.len() as u64);
        let Some((start, bytes)) = found else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("byte {at} of the index was not read"),
            ));
        };
        let offset = (at - start) as usize;
        let n = buf.len().min(bytes.len() - offset);
        buf[..n].copy_from_slice(&bytes[offset..offset + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for SparseFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let position = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position = position.ok_or_else(|| std::io::Error::other("seek before the start of the file"))?;
        Ok(self.position)
    }
}
