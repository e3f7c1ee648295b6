//! Encoded bytes to pixels and back, as plain functions.
//!
//! The format is recognised from the content (magic bytes), never from a
//! file name. EXIF orientation is applied, so `width` and `height` are those
//! of the image as it is meant to be seen.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::{ImageError, Result};
use crate::image_value::{Image, ImageView};

/// Default pixel limit: 200 megapixels, ten times a 5616x3744 aerial frame.
pub const DEFAULT_MAX_PIXELS: u64 = 200_000_000;

/// What the header of an encoded image says, without decoding pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Lower-case format name: `jpeg`, `png`, `tiff`, `bmp`, `webp`, `gif`.
    pub format: &'static str,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// The EXIF orientation turns the image a quarter: stored, its width
    /// and height are the other way round.
    pub turned: bool,
}

impl ImageHeader {
    /// Width and height as decoded: after EXIF orientation when
    /// `apply_orientation`, else as stored.
    pub fn size(&self, apply_orientation: bool) -> (u32, u32) {
        if self.turned && !apply_orientation {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Lower-case name of a format, as shown in the `format` column.
pub fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Tiff => "tiff",
        ImageFormat::Bmp => "bmp",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        other => other.extensions_str().first().copied().unwrap_or("unknown"),
    }
}

/// The format of encoded bytes, from their magic numbers; `None` when the
/// bytes are no image format this build reads.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    let format = image::guess_format(bytes).ok()?;
    format.reading_enabled().then_some(format)
}

fn reader(bytes: &[u8]) -> Result<(ImageReader<Cursor<&[u8]>>, ImageFormat)> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = sniff_format(bytes).ok_or(ImageError::UnknownFormat)?;
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(format);
    Ok((reader, format))
}

fn decode_error(format: ImageFormat, e: image::ImageError) -> ImageError {
    ImageError::Decode {
        format: format_name(format),
        message: e.to_string(),
    }
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

fn header_of(decoder: &mut impl ImageDecoder, format: ImageFormat) -> ImageHeader {
    let (w, h) = decoder.dimensions();
    // A missing or unreadable EXIF block means "as stored".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let turned = swaps_axes(orientation);
    let (width, height) = if turned { (h, w) } else { (w, h) };
    ImageHeader {
        format: format_name(format),
        width,
        height,
        turned,
    }
}

/// Reads the header only. `bytes` may be just the start of the file; an
/// error then can mean the header lies further in.
pub fn read_header(bytes: &[u8]) -> Result<ImageHeader> {
    let (reader, format) = reader(bytes)?;
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(format, e))?;
    Ok(header_of(&mut decoder, format))
}

fn check_pixels(header: &ImageHeader, max_pixels: u64) -> Result<()> {
    let pixels = header.width as u64 * header.height as u64;
    if pixels > max_pixels {
        return Err(ImageError::TooLarge {
            format: header.format,
            width: header.width,
            height: header.height,
            pixels,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// True when a JPEG's last scan is followed by the end-of-image marker.
/// The decoder fills a cut-off scan with grey instead of failing, so a
/// truncated file is caught here. Markers cannot occur inside entropy-coded
/// data (0xFF there is always followed by 0x00 or a restart marker), so the
/// first of EOI (FFD9) or SOS (FFDA) met going back from the end decides;
/// for a whole file that is within its last bytes.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    for i in (0..bytes.len().saturating_sub(1)).rev() {
        if bytes[i] == 0xFF {
            match bytes[i + 1] {
                0xD9 => return true,
                0xDA => return false,
                _ => {}
            }
        }
    }
    false
}

/// Opens a decoder with limits, reads the header and checks the pixel
/// limit and (for JPEG) that the file is whole.
fn prepare(bytes: &[u8], max_pixels: u64) -> Result<(impl ImageDecoder + '_, ImageHeader, Orientation)> {
    let (mut reader, format) = reader(bytes)?;
    let mut limits = Limits::default();
    // The decoder's own allocation cap must not be lower than our pixel cap
    // (8 bytes a pixel covers 16-bit RGBA), or big legal images would fail.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(512 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(format, e))?;
    let header = header_of(&mut decoder, format);
    check_pixels(&header, max_pixels)?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(ImageError::Decode {
            format: "jpeg",
            message: "truncated file (no end-of-image marker after the last scan)".to_string(),
        });
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok((decoder, header, orientation))
}

/// Decodes to 8-bit grey, RGB or RGBA (16-bit and float images are scaled
/// to 8 bits; grey+alpha becomes RGBA), with EXIF orientation applied.
/// Refuses images of more than `max_pixels` pixels before allocating them.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<(ImageHeader, Image)> {
    decode_oriented(bytes, max_pixels, true)
}

/// [`decode`], with EXIF orientation applied only when `apply_orientation`
/// (else the pixels as stored).
pub fn decode_oriented(bytes: &[u8], max_pixels: u64, apply_orientation: bool) -> Result<(ImageHeader, Image)> {
    let (decoder, header, orientation) = prepare(bytes, max_pixels)?;
    let format = header.format;
    let mut dynamic = DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Decode {
        format,
        message: e.to_string(),
    })?;
    if apply_orientation {
        dynamic.apply_orientation(orientation);
    }
    Ok((header, from_dynamic(dynamic)))
}

/// Converts any decoded image to the 8-bit layouts of an image value.
pub fn from_dynamic(dynamic: DynamicImage) -> Image {
    let (width, height) = (dynamic.width(), dynamic.height());
    let (channels, data) = match dynamic {
        DynamicImage::ImageLuma8(buf) => (1, buf.into_raw()),
        DynamicImage::ImageRgb8(buf) => (3, buf.into_raw()),
        DynamicImage::ImageRgba8(buf) => (4, buf.into_raw()),
        DynamicImage::ImageLuma16(_) => (1, dynamic.into_luma8().into_raw()),
        other if other.color().has_alpha() => (4, other.into_rgba8().into_raw()),
        other => (3, other.into_rgb8().into_raw()),
    };
    Image {
        width,
        height,
        channels,
        data,
    }
}

/// Converts an image value to the `image` crate's type, for its encoders and
/// resamplers.
pub fn to_dynamic(view: ImageView<'_>) -> Result<DynamicImage> {
    let (w, h, data) = (view.width, view.height, view.data.to_vec());
    let bad = || ImageError::InvalidValue(format!("{}x{}x{}", w, h, view.channels));
    Ok(match view.channels {
        1 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, data).ok_or_else(bad)?),
        3 => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, data).ok_or_else(bad)?),
        4 => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, data).ok_or_else(bad)?),
        _ => return Err(bad()),
    })
}

/// Encodes an image value as PNG (lossless) or JPEG of `quality` 1-100
/// (alpha is dropped for JPEG, which has none).
pub fn encode(view: ImageView<'_>, format: &str, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let encode_err = |format: &'static str, e: image::ImageError| ImageError::Encode {
        format,
        message: e.to_string(),
    };
    if view.width == 0 || view.height == 0 {
        return Err(ImageError::Encode {
            format: "image",
            message: format!("{}x{} image has no pixels", view.width, view.height),
        });
    }
    match format.to_ascii_lowercase().as_str() {
        "png" => {
            to_dynamic(view)?
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
                .map_err(|e| encode_err("png", e))?;
        }
        "jpeg" | "jpg" => {
            let dynamic = to_dynamic(view)?;
            let dynamic = if view.channels == 4 {
                DynamicImage::ImageRgb8(dynamic.into_rgb8())
            } else {
                dynamic
            };
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
            dynamic.write_with_encoder(encoder).map_err(|e| encode_err("jpeg", e))?;
        }
        other => {
            return Err(ImageError::Encode {
                format: "image",
                message: format!("unsupported format '{other}' (expected 'png' or 'jpeg')"),
            })
        }
    }
    Ok(out)
}

/// Helpers for tests of this crate and of the engine.
#[doc(hidden)]
pub mod test_support {
    /// Inserts an EXIF block with `orientation` after a JPEG's SOI marker.
    pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"MM\0\x2A\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes());
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0; 6]); // padding, next IFD = 0
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> Image {
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&[(x * 10) as u8, (y * 10) as u8, 128]);
            }
        }
        Image::new(width, height, 3, data).unwrap()
    }

    #[test]
    fn png_round_trip_is_exact() {
        let image = gradient(7, 5);
        let png = encode(image.view(), "png", 90).unwrap();
        assert_eq!(sniff_format(&png), Some(ImageFormat::Png));
        let header = read_header(&png).unwrap();
        assert_eq!((header.format, header.width, header.height), ("png", 7, 5));
        let (_, decoded) = decode(&png, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(decoded, image);
    }

    #[test]
    fn jpeg_header_without_decoding() {
        let jpeg = encode(gradient(40, 30).view(), "jpeg", 90).unwrap();
        let header = read_header(&jpeg[..jpeg.len() / 2]).unwrap();
        assert_eq!((header.format, header.width, header.height), ("jpeg", 40, 30));
    }

    #[test]
    fn bad_input_errors() {
        assert!(matches!(read_header(b""), Err(ImageError::Empty)));
        assert!(matches!(
            read_header(b"train_id,adult_males\n1,2\n"),
            Err(ImageError::UnknownFormat)
        ));
        let jpeg = encode(gradient(40, 30).view(), "jpeg", 90).unwrap();
        let err = decode(&jpeg[..jpeg.len() / 3], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(err.to_string().starts_with("cannot decode jpeg"), "{err}");
    }

    #[test]
    fn truncated_jpeg_is_refused() {
        let jpeg = encode(gradient(40, 30).view(), "jpeg", 90).unwrap();
        let err = decode(&jpeg[..jpeg.len() - 2], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn pixel_limit_refuses_before_decoding() {
        let png = encode(gradient(100, 100).view(), "png", 90).unwrap();
        let err = decode(&png, 9_999).unwrap_err();
        assert!(err.to_string().contains("100x100"), "{err}");
        assert!(decode(&png, 10_000).is_ok());
    }

    #[test]
    fn grey_and_alpha_layouts() {
        let grey = Image::new(3, 2, 1, vec![0, 50, 100, 150, 200, 250]).unwrap();
        let png = encode(grey.view(), "png", 90).unwrap();
        assert_eq!(decode(&png, DEFAULT_MAX_PIXELS).unwrap().1, grey);
        let rgba = Image::new(1, 1, 4, vec![1, 2, 3, 4]).unwrap();
        let png = encode(rgba.view(), "png", 90).unwrap();
        assert_eq!(decode(&png, DEFAULT_MAX_PIXELS).unwrap().1, rgba);
    }

    #[test]
    fn exif_orientation_is_applied() {
        let jpeg = encode(gradient(40, 30).view(), "jpeg", 95).unwrap();
        let rotated = test_support::with_exif_orientation(&jpeg, 6); // rotate 90 clockwise
        let header = read_header(&rotated).unwrap();
        assert_eq!((header.width, header.height), (30, 40));
        let (_, image) = decode(&rotated, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((image.width, image.height), (30, 40));
        // Top-left of the turned image is the stored bottom-left pixel
        // (0, 29): red 0, green 290 mod 256 = 34.
        let view = image.view();
        let px = view.pixel(0, 0);
        assert!(px[0] < 8 && px[1].abs_diff(34) < 8, "{px:?}");
    }
}
