//! What an uploaded photo becomes before it is kept: decoded by the `image`
//! crate whatever its name or type claims (JPEG, PNG or WebP), refused
//! when its header already says it has too many pixels (a decompression
//! bomb never gets decoded), turned upright by its EXIF orientation, then
//! re-encoded as JPEG with no metadata at all (EXIF, GPS, XMP, ICC
//! dropped: a photo's position can identify a household) and shrunk into a
//! thumbnail for lists.

use std::io::Cursor;

use image::{codecs::jpeg::JpegEncoder, DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::error::{Error, Result};

/// The field every refusal of a photo names.
const FIELD: &str = "data";
/// The longest side of a thumbnail, in pixels.
pub(crate) const THUMB_SIDE: u32 = 320;
const FULL_QUALITY: u8 = 85;
const THUMB_QUALITY: u8 = 75;

/// How big an upload may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoLimits {
    /// Bytes of one upload, as sent.
    pub max_bytes: usize,
    /// Width × height, read from the header before anything is decoded.
    pub max_pixels: u64,
}

impl Default for PhotoLimits {
    fn default() -> PhotoLimits {
        PhotoLimits {
            max_bytes: 10 << 20,
            max_pixels: 40_000_000,
        }
    }
}

/// An accepted photo: the re-encoded JPEG and its thumbnail.
#[derive(Debug, Clone)]
pub struct Cleaned {
    pub full: Vec<u8>,
    pub thumb: Vec<u8>,
    /// Upright, as stored.
    pub width: u32,
    pub height: u32,
    /// What was sent: `image/jpeg`, `image/png` or `image/webp`.
    pub uploaded_type: &'static str,
}

/// Validates and re-encodes one upload (CPU-bound: call it on a blocking
/// thread).
pub fn clean(data: &[u8], limits: &PhotoLimits) -> Result<Cleaned> {
    if data.len() > limits.max_bytes {
        return Err(Error::ResourceExhausted(format!(
            "{FIELD}: the photo is {} bytes; the limit is {} bytes",
            data.len(),
            limits.max_bytes
        )));
    }
    if data.is_empty() {
        return Err(Error::invalid(
            FIELD,
            "is empty: send a JPEG, PNG or WebP photo",
        ));
    }
    let format = match image::guess_format(data) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => f,
        Ok(other) => {
            return Err(Error::invalid(
                FIELD,
                format!(
                    "unsupported image format {}: send a JPEG, PNG or WebP photo",
                    other.extensions_str().first().unwrap_or(&"?")
                ),
            ))
        }
        Err(_) => {
            return Err(Error::invalid(
                FIELD,
                "is not an image: send a JPEG, PNG or WebP photo",
            ))
        }
    };
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    image.apply_orientation(orientation);
    let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
    drop(image);
    let full = jpeg(&rgb, FULL_QUALITY)?;
    // Shrunk, never enlarged (`thumbnail` scales up a smaller image).
    let thumb = if rgb.width().max(rgb.height()) > THUMB_SIDE {
        jpeg(&rgb.thumbnail(THUMB_SIDE, THUMB_SIDE), THUMB_QUALITY)?
    } else {
        jpeg(&rgb, THUMB_QUALITY)?
    };
    Ok(Cleaned {
        full,
        thumb,
        width: rgb.width(),
        height: rgb.height(),
        uploaded_type: format.to_mime_type(),
    })
}

/// The decoder's own limits, a second line behind [`check_pixels`]: no
/// side longer than the pixel budget allows, and allocations bounded by
/// four bytes a pixel plus room for the decoder's tables.
fn decoder_limits(limits: &PhotoLimits) -> image::Limits {
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    let mut l = image::Limits::default();
    l.max_image_width = Some(side);
    l.max_image_height = Some(side);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(4).saturating_add(64 << 20));
    l
}

fn check_pixels(width: u32, height: u32, limits: &PhotoLimits) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::invalid(
            FIELD,
            format!(
                "has too many pixels: {width}×{height} is {pixels}; the limit is {}",
                limits.max_pixels
            ),
        ));
    }
    if pixels == 0 {
        return Err(Error::invalid(FIELD, "is an image of no pixels"));
    }
    Ok(())
}

/// A decoder's refusal as the caller's error.
fn refusal(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::invalid(
            FIELD,
            format!("has too many pixels for the server's limits ({l})"),
        ),
        image::ImageError::Unsupported(u) => {
            Error::invalid(FIELD, format!("unsupported image: {u}"))
        }
        image::ImageError::IoError(io) => {
            Error::invalid(FIELD, format!("is not a whole image: {io}"))
        }
        other => Error::invalid(FIELD, format!("is not a readable image: {other}")),
    }
}

fn jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .map_err(|e| Error::Internal(format!("cannot encode the photo: {e}")))?;
    Ok(out)
}

/// The fuzz target's check of one input: [`clean`] under small limits
/// never panics, and what it accepts is a JPEG that decodes again to the
/// size it reported, with a thumbnail that decodes too, neither carrying
/// EXIF.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let limits = PhotoLimits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
    };
    let Ok(kept) = clean(data, &limits) else {
        return;
    };
    let full = image::load_from_memory_with_format(&kept.full, ImageFormat::Jpeg)
        .expect("an accepted photo re-decodes");
    assert_eq!((full.width(), full.height()), (kept.width, kept.height));
    let thumb = image::load_from_memory_with_format(&kept.thumb, ImageFormat::Jpeg)
        .expect("its thumbnail decodes");
    assert!(thumb.width() <= THUMB_SIDE && thumb.height() <= THUMB_SIDE);
    assert!(!kept.full.windows(6).any(|w| w == b"Exif\0\0"));
}

/// Photos made for the tests and the fuzz target's seeds.
#[doc(hidden)]
pub mod fixtures {
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat};

    /// A `w`×`h` gradient as PNG bytes.
    pub fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    pub fn jpeg_of(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 40]));
        super::jpeg(&DynamicImage::ImageRgb8(img), 90).unwrap()
    }

    /// A JPEG carrying an EXIF block with a GPS position (latitude 34° N,
    /// the TIFF written by hand: IFD0 → GPS IFD with GPSLatitudeRef and
    /// GPSLatitude) and orientation 6 (rotate 90° clockwise).
    pub fn jpeg_with_gps(w: u32, h: u32) -> Vec<u8> {
        let plain = jpeg_of(w, h);
        let mut tiff: Vec<u8> = b"II*\0".to_vec();
        tiff.extend(8u32.to_le_bytes());
        // IFD0 at 8: two entries (Orientation, GPSInfo), then next = 0.
        let entry = |tag: u16, kind: u16, count: u32, value: [u8; 4]| {
            let mut e = tag.to_le_bytes().to_vec();
            e.extend(kind.to_le_bytes());
            e.extend(count.to_le_bytes());
            e.extend(value);
            e
        };
        let gps_ifd = 8 + 2 + 2 * 12 + 4;
        tiff.extend(2u16.to_le_bytes());
        tiff.extend(entry(0x0112, 3, 1, [6, 0, 0, 0]));
        tiff.extend(entry(0x8825, 4, 1, (gps_ifd as u32).to_le_bytes()));
        tiff.extend(0u32.to_le_bytes());
        // The GPS IFD: GPSLatitudeRef "N", GPSLatitude 34/1 30/1 0/1.
        let rationals = gps_ifd + 2 + 2 * 12 + 4;
        tiff.extend(2u16.to_le_bytes());
        tiff.extend(entry(1, 2, 2, *b"N\0\0\0"));
        tiff.extend(entry(2, 5, 3, (rationals as u32).to_le_bytes()));
        tiff.extend(0u32.to_le_bytes());
        for (n, d) in [(34u32, 1u32), (30, 1), (0, 1)] {
            tiff.extend(n.to_le_bytes());
            tiff.extend(d.to_le_bytes());
        }
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut out = plain[..2].to_vec(); // SOI
        out.extend([0xFF, 0xE1]);
        out.extend(((app1.len() + 2) as u16).to_be_bytes());
        out.extend(app1);
        out.extend(&plain[2..]);
        out
    }

    /// A `w`×`h` PNG of noise: it hardly compresses (about 3 bytes a
    /// pixel), for uploads near the size limit.
    pub fn noise_png(w: u32, h: u32) -> Vec<u8> {
        let mut x: u32 = 0x9e37_79b9;
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let [a, b, c, _] = x.to_le_bytes();
            image::Rgb([a, b, c])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{fixtures::*, *};

    fn exif_of(data: &[u8]) -> Option<Vec<u8>> {
        let reader = ImageReader::new(Cursor::new(data))
            .with_guessed_format()
            .unwrap();
        reader.into_decoder().unwrap().exif_metadata().unwrap()
    }

    fn field_and_message(e: Error) -> (String, String) {
        match e {
            Error::InvalidArgument { field, message } => (field, message),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn gps_and_exif_are_gone_from_what_is_kept() {
        let sent = jpeg_with_gps(40, 20);
        let exif = exif_of(&sent).expect("the test photo carries EXIF");
        assert!(exif.windows(4).any(|w| w == b"N\0\0\0"), "with a GPS ref");
        let kept = clean(&sent, &PhotoLimits::default()).unwrap();
        for bytes in [&kept.full, &kept.thumb] {
            assert_eq!(exif_of(bytes), None);
            assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
            assert!(!bytes.windows(4).any(|w| w == b"II*\0" || w == b"MM\0*"));
        }
        // Upright by the orientation it carried (6: a quarter turn).
        assert_eq!((kept.width, kept.height), (20, 40));
        assert_eq!(kept.uploaded_type, "image/jpeg");
    }

    #[test]
    fn png_and_webp_are_accepted_and_kept_as_jpeg() {
        let kept = clean(&png(600, 400), &PhotoLimits::default()).unwrap();
        assert_eq!(image::guess_format(&kept.full).unwrap(), ImageFormat::Jpeg);
        assert_eq!((kept.width, kept.height), (600, 400));
        let thumb = image::load_from_memory(&kept.thumb).unwrap();
        assert_eq!(thumb.width(), THUMB_SIDE);
        assert!((212..=214).contains(&thumb.height()), "{}", thumb.height());

        let img = image::RgbImage::from_fn(30, 10, |x, _| image::Rgb([x as u8, 0, 0]));
        let mut webp = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut webp), ImageFormat::WebP)
            .unwrap();
        let kept = clean(&webp, &PhotoLimits::default()).unwrap();
        assert_eq!(kept.uploaded_type, "image/webp");
        assert_eq!((kept.width, kept.height), (30, 10));
        let thumb = image::load_from_memory(&kept.thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (30, 10), "never enlarged");
    }

    #[test]
    fn a_text_file_named_jpg_and_other_formats_are_refused_naming_the_field() {
        let (field, message) = field_and_message(
            clean(b"this is not a photo.jpg", &PhotoLimits::default()).unwrap_err(),
        );
        assert_eq!(field, "data");
        assert!(message.contains("not an image"), "{message}");
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        let (_, message) = field_and_message(clean(gif, &PhotoLimits::default()).unwrap_err());
        assert!(
            message.contains("unsupported image format gif"),
            "{message}"
        );
        // A JPEG cut in the middle.
        let cut = &jpeg_of(64, 64)[..200];
        let (field, _) = field_and_message(clean(cut, &PhotoLimits::default()).unwrap_err());
        assert_eq!(field, "data");
    }

    /// A PNG whose header claims `w`×`h` pixels and whose data is a few
    /// bytes: decoding it whole would be the bomb; the header alone must
    /// be enough to refuse it.
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |out: &mut Vec<u8>, kind: &[u8], body: &[u8]| {
            out.extend((body.len() as u32).to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(body);
            out.extend(kind);
            out.extend(body);
            out.extend(crc.sum().to_be_bytes());
        };
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        let bomb = png_claiming(100_000, 100_000);
        assert!(bomb.len() < 100);
        let (field, message) =
            field_and_message(clean(&bomb, &PhotoLimits::default()).unwrap_err());
        assert_eq!(field, "data");
        assert!(message.contains("too many pixels"), "{message}");
        // Within the side limit but over the pixel budget: the same.
        let limits = PhotoLimits {
            max_pixels: 1_000_000,
            ..PhotoLimits::default()
        };
        let (_, message) =
            field_and_message(clean(&png_claiming(2_000, 1_000), &limits).unwrap_err());
        assert!(
            message.contains("2000×1000 is 2000000; the limit is 1000000"),
            "{message}"
        );
    }

    #[test]
    fn too_large_is_resource_exhausted() {
        let limits = PhotoLimits {
            max_bytes: 1000,
            ..PhotoLimits::default()
        };
        let e = clean(&noise_png(100, 100), &limits).unwrap_err();
        assert!(
            matches!(e, Error::ResourceExhausted(ref m) if m.starts_with("data: ")),
            "{e:?}"
        );
    }

    #[test]
    fn the_fuzz_check_passes_on_its_seeds() {
        for seed in [
            png(40, 30),
            jpeg_with_gps(16, 8),
            png_claiming(100_000, 100_000),
            b"not a photo".to_vec(),
            Vec::new(),
        ] {
            fuzz_one(&seed);
        }
    }
}
