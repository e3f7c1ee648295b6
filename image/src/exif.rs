//! Where and when a photo was taken, from its EXIF header (kamadak-exif):
//! read from the first bytes of a file without decoding pixels, and written
//! into generated JPEGs.
//!
//! A file without EXIF, or with a block that cannot be parsed, has no
//! metadata (every field `None`); a bad header never fails a query.

use std::io::Cursor;

use exif::{Field, In, Rational, Tag, Value};

use crate::ImageError;

/// What an EXIF header says about a photo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhotoMetadata {
    /// DateTimeOriginal, as microseconds since 1970-01-01 in the camera's
    /// own clock (EXIF times carry no time zone unless OffsetTimeOriginal
    /// is set, which is then applied to give UTC).
    pub taken_at: Option<i64>,
    /// Degrees north (negative: south).
    pub gps_lat: Option<f64>,
    /// Degrees east (negative: west).
    pub gps_lon: Option<f64>,
    /// Metres above sea level (negative: below).
    pub gps_alt: Option<f64>,
    /// Make and model, as `Make Model`.
    pub camera: Option<String>,
    /// The EXIF orientation, 1 to 8 (1: as stored).
    pub orientation: Option<u16>,
}

impl PhotoMetadata {
    /// The metadata of the file whose first bytes (or all) are `bytes`:
    /// JPEG, PNG, TIFF, WebP or HEIF.
    pub fn read(bytes: &[u8]) -> Self {
        match exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) {
            Ok(exif) => Self::from_exif(&exif),
            Err(_) => Self::default(),
        }
    }

    fn from_exif(exif: &exif::Exif) -> Self {
        let field = |tag: Tag| exif.get_field(tag, In::PRIMARY);
        let text = |tag: Tag| {
            field(tag).and_then(|f| match &f.value {
                Value::Ascii(parts) => parts
                    .first()
                    .map(|p| String::from_utf8_lossy(p).trim_end_matches('\0').trim().to_string())
                    .filter(|s| !s.is_empty()),
                _ => None,
            })
        };
        let camera = match (text(Tag::Make), text(Tag::Model)) {
            (Some(make), Some(model)) if model.starts_with(&make) => Some(model),
            (Some(make), Some(model)) => Some(format!("{make} {model}")),
            (make, model) => make.or(model),
        };
        let signed = |tag: Tag, reference: Tag, negative: &str| {
            let degrees = field(tag).and_then(|f| degrees(&f.value))?;
            let sign = if text(reference).is_some_and(|r| r.eq_ignore_ascii_case(negative)) {
                -1.0
            } else {
                1.0
            };
            Some(sign * degrees).filter(|d| d.is_finite())
        };
        let gps_alt = field(Tag::GPSAltitude)
            .and_then(|f| first_rational(&f.value))
            .map(|alt| {
                let below = field(Tag::GPSAltitudeRef).and_then(|f| f.value.get_uint(0)) == Some(1);
                if below {
                    -alt
                } else {
                    alt
                }
            });
        Self {
            taken_at: taken_at(exif),
            gps_lat: signed(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S").filter(|d| d.abs() <= 90.0),
            gps_lon: signed(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W").filter(|d| d.abs() <= 180.0),
            gps_alt: gps_alt.filter(|a| a.is_finite()),
            camera,
            orientation: field(Tag::Orientation)
                .and_then(|f| f.value.get_uint(0))
                .and_then(|o| u16::try_from(o).ok())
                .filter(|o| (1..=8).contains(o)),
        }
    }
}

fn first_rational(value: &Value) -> Option<f64> {
    match value {
        Value::Rational(r) => r.first().filter(|r| r.denom != 0).map(|r| r.to_f64()),
        _ => None,
    }
}

/// Degrees from EXIF's degrees, minutes and seconds.
fn degrees(value: &Value) -> Option<f64> {
    let Value::Rational(parts) = value else { return None };
    if parts.is_empty() || parts.iter().any(|r| r.denom == 0) {
        return None;
    }
    let part = |i: usize| parts.get(i).map_or(0.0, |r| r.to_f64());
    Some(part(0) + part(1) / 60.0 + part(2) / 3600.0)
}

fn taken_at(exif: &exif::Exif) -> Option<i64> {
    let field = exif
        .get_field(Tag::DateTimeOriginal, In::PRIMARY)
        .or_else(|| exif.get_field(Tag::DateTime, In::PRIMARY))?;
    let Value::Ascii(parts) = &field.value else { return None };
    let mut time = exif::DateTime::from_ascii(parts.first()?).ok()?;
    if let Some(Field {
        value: Value::Ascii(offset),
        ..
    }) = exif.get_field(Tag::OffsetTimeOriginal, In::PRIMARY)
    {
        if let Some(offset) = offset.first() {
            // Ignored when malformed: the local time stands.
            let _ = time.parse_offset(offset);
        }
    }
    let date = chrono::NaiveDate::from_ymd_opt(time.year.into(), time.month.into(), time.day.into())?;
    let local = date.and_hms_nano_opt(
        time.hour.into(),
        time.minute.into(),
        time.second.into(),
        time.nanosecond.unwrap_or(0),
    )?;
    let micros = local.and_utc().timestamp_micros();
    let offset_micros = i64::from(time.offset.unwrap_or(0)) * 60 * 1_000_000;
    micros.checked_sub(offset_micros)
}

/// The EXIF a generated survey frame carries: when and where it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoStamp {
    /// `YYYY:MM:DD HH:MM:SS`, EXIF's format.
    pub taken_at: String,
    pub gps_lat: f64,
    pub gps_lon: f64,
    pub gps_alt: f64,
    pub make: String,
    pub model: String,
}

/// EXIF degrees, minutes and seconds of `degrees` (its absolute value).
fn dms(degrees: f64) -> Vec<Rational> {
    let total = (degrees.abs() * 3600.0 * 1000.0).round() as u64;
    let (whole_seconds_milli, d) = (total % (3600 * 1000), total / (3600 * 1000));
    let (m, s_milli) = (whole_seconds_milli / 60_000, whole_seconds_milli % 60_000);
    vec![
        Rational::from((d as u32, 1)),
        Rational::from((m as u32, 1)),
        Rational::from((s_milli as u32, 1000)),
    ]
}

/// `jpeg` with an EXIF block (APP1) saying `stamp`, right after its
/// start-of-image marker.
pub fn add_exif_to_jpeg(jpeg: &[u8], stamp: &PhotoStamp) -> Result<Vec<u8>, ImageError> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(ImageError::Unsupported("EXIF can only be added to a JPEG".to_string()));
    }
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let field = |tag: Tag, value: Value| Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    };
    let fields = [
        field(Tag::Make, ascii(&stamp.make)),
        field(Tag::Model, ascii(&stamp.model)),
        field(Tag::DateTimeOriginal, ascii(&stamp.taken_at)),
        field(Tag::GPSLatitudeRef, ascii(if stamp.gps_lat < 0.0 { "S" } else { "N" })),
        field(Tag::GPSLatitude, Value::Rational(dms(stamp.gps_lat))),
        field(Tag::GPSLongitudeRef, ascii(if stamp.gps_lon < 0.0 { "W" } else { "E" })),
        field(Tag::GPSLongitude, Value::Rational(dms(stamp.gps_lon))),
        field(Tag::GPSAltitudeRef, Value::Byte(vec![u8::from(stamp.gps_alt < 0.0)])),
        field(
            Tag::GPSAltitude,
            Value::Rational(vec![Rational::from((
                (stamp.gps_alt.abs() * 100.0).round() as u32,
                100,
            ))]),
        ),
    ];
    let mut writer = exif::experimental::Writer::new();
    for f in &fields {
        writer.push_field(f);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer
        .write(&mut tiff, false)
        .map_err(|e| ImageError::Unsupported(format!("cannot write EXIF: {e}")))?;
    let tiff = tiff.into_inner();
    let length =
        u16::try_from(2 + 6 + tiff.len()).map_err(|_| ImageError::Unsupported("EXIF block over 64 KiB".into()))?;
    let mut out = Vec::with_capacity(jpeg.len() + tiff.len() + 10);
    out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let image = crate::Image::new(8, 6, 3, vec![120; 8 * 6 * 3]).unwrap();
        crate::codec::encode(image.view(), "jpeg", 90).unwrap()
    }

    fn stamp() -> PhotoStamp {
        PhotoStamp {
            taken_at: "2017:06:01 10:30:05".to_string(),
            gps_lat: 56.2545,
            gps_lon: -168.4521,
            gps_alt: 120.5,
            make: "Rookery".to_string(),
            model: "Survey 1".to_string(),
        }
    }

    #[test]
    fn written_stamps_read_back() {
        let stamped = add_exif_to_jpeg(&jpeg(), &stamp()).unwrap();
        let meta = PhotoMetadata::read(&stamped);
        let taken = chrono::NaiveDate::from_ymd_opt(2017, 6, 1)
            .unwrap()
            .and_hms_opt(10, 30, 5)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        assert_eq!(meta.taken_at, Some(taken));
        assert!((meta.gps_lat.unwrap() - 56.2545).abs() < 1e-6, "{meta:?}");
        assert!((meta.gps_lon.unwrap() + 168.4521).abs() < 1e-6, "{meta:?}");
        assert_eq!(meta.gps_alt, Some(120.5));
        assert_eq!(meta.camera.as_deref(), Some("Rookery Survey 1"));
        assert_eq!(meta.orientation, None);
        // Still a JPEG that decodes, at its size.
        let (_, image) = crate::codec::decode(&stamped, 1 << 20).unwrap();
        assert_eq!((image.width, image.height), (8, 6));
        // The first bytes of the file are enough.
        assert_eq!(
            PhotoMetadata::read(&stamped[..stamped.len().min(400)]).camera,
            meta.camera
        );
    }

    #[test]
    fn files_without_exif_have_no_metadata() {
        assert_eq!(PhotoMetadata::read(&jpeg()), PhotoMetadata::default());
        assert_eq!(PhotoMetadata::read(b"not an image"), PhotoMetadata::default());
        assert_eq!(PhotoMetadata::read(&[]), PhotoMetadata::default());
        assert!(add_exif_to_jpeg(b"\x89PNG", &stamp()).is_err());
    }

    #[test]
    fn southern_and_below_sea_level() {
        let low = PhotoStamp {
            gps_lat: -33.5,
            gps_alt: -10.0,
            ..stamp()
        };
        let meta = PhotoMetadata::read(&add_exif_to_jpeg(&jpeg(), &low).unwrap());
        assert_eq!((meta.gps_lat, meta.gps_alt), (Some(-33.5), Some(-10.0)));
    }
}
