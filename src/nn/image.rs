//! Image files as model inputs: PNG and JPEG decoded, converted to the model's channels, resized
//! and centre-cropped to its input size (torchvision's evaluation transforms:
//! `Resize(shorter side) + CenterCrop`), values in [0, 1] (the model's mean/std come later).
//!
//! - **Channels.** Grey → 3 equal channels; RGB → grey by ITU-R 601 luma (0.299 R + 0.587 G +
//!   0.114 B); alpha is ignored; 8-bit samples are scaled by 1/255, 16-bit PNG samples by 1/65535.
//! - **Resize.** Scale so the image covers the model's H×W (for a square input: the shorter side
//!   becomes H, the longer `floor(long · H / short)`), then crop H×W from the centre (offsets
//!   rounded half to even, as torchvision's `CenterCrop`). Resampling is bilinear with
//!   antialiasing: a triangle filter whose support grows with the downscale factor (PIL's
//!   `BILINEAR`, torchvision's `antialias=True`), computed in floating point.

use std::path::Path;

use super::error::{NnError, Result};

/// Images larger than this on a side are refused before their pixels are read.
pub const MAX_SIDE: usize = 16384;

/// A decoded image: planar channels (1 grey or 3 RGB), values in [0, 1].
#[derive(Debug, Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// `[channels, height, width]`.
    pub data: Vec<f32>,
    /// How it was stored, for the notice: "RGB", "16-bit grey", ...
    pub kind: String,
}

/// Whether `path` names an image file netwalk reads (by its extension).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn too_large(path: &Path, w: usize, h: usize, need: &str) -> NnError {
    NnError::input(
        path,
        format!("image is {w}x{h}: more than {MAX_SIDE} pixels on a side ({need})"),
    )
}

/// Decodes a PNG or JPEG (told apart by their first bytes; the extension names the expected
/// format in errors). `need` says what the model takes, for the messages.
pub fn decode(path: &Path, need: &str) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
    let jpeg_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
    if bytes.starts_with(&[0xFF, 0xD8]) || (jpeg_name && !bytes.starts_with(b"\x89PNG")) {
        decode_jpeg(path, &bytes, need)
    } else {
        decode_png(path, &bytes, need)
    }
}

fn decode_png(path: &Path, bytes: &[u8], need: &str) -> Result<Image> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let bad = |e: png::DecodingError| NnError::input(path, format!("not a readable PNG: {e}"));
    let mut reader = decoder.read_info().map_err(bad)?;
    // Check the size from the header before allocating a buffer for the pixels.
    let (iw, ih) = (reader.info().width as usize, reader.info().height as usize);
    if iw > MAX_SIDE || ih > MAX_SIDE {
        return Err(too_large(path, iw, ih, need));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| NnError::input(path, "PNG is too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (stored, colour, name) = match info.color_type {
        png::ColorType::Grayscale => (1, 1, "grey"),
        png::ColorType::GrayscaleAlpha => (2, 1, "grey+alpha"),
        png::ColorType::Rgb => (3, 3, "RGB"),
        png::ColorType::Rgba => (4, 3, "RGBA"),
        png::ColorType::Indexed => (3, 3, "RGB"), // expanded to RGB
    };
    let sixteen = info.bit_depth == png::BitDepth::Sixteen;
    let sample = |i: usize| -> f32 {
        if sixteen {
            u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]]) as f32 / 65535.0
        } else {
            buf[i] as f32 / 255.0
        }
    };
    let data = planar(w, h, colour, stored, sample);
    let kind = if sixteen {
        format!("16-bit {name}")
    } else {
        name.to_owned()
    };
    Ok(Image {
        width: w,
        height: h,
        channels: colour,
        data,
        kind,
    })
}

fn decode_jpeg(path: &Path, bytes: &[u8], need: &str) -> Result<Image> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let bad = |e: zune_jpeg::errors::DecodeErrors| NnError::input(path, format!("not a readable JPEG: {e}"));
    // Strict: a truncated or corrupt file is an error, not a partly grey picture.
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE);
    let mut probe = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    probe.decode_headers().map_err(|e| {
        // The decoder refuses over-large images itself; say so in the words PNGs get.
        let msg = e.to_string();
        if msg.contains("width") || msg.contains("height") {
            NnError::input(path, format!("not a readable JPEG: {msg} ({need})"))
        } else {
            bad(e)
        }
    })?;
    let grey = probe.input_colorspace() == Some(ColorSpace::Luma);
    let out = if grey { ColorSpace::Luma } else { ColorSpace::RGB };
    let mut decoder =
        zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options.jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(bad)?;
    let info = decoder
        .info()
        .ok_or_else(|| NnError::input(path, "not a readable JPEG: no header"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(too_large(path, w, h, need));
    }
    let c = if grey { 1 } else { 3 };
    if pixels.len() < w * h * c {
        return Err(NnError::input(path, "not a readable JPEG: too few pixels"));
    }
    let data = planar(w, h, c, c, |i| pixels[i] as f32 / 255.0);
    let kind = if grey { "grey" } else { "RGB" }.to_owned();
    Ok(Image {
        width: w,
        height: h,
        channels: c,
        data,
        kind,
    })
}

/// Interleaved pixels (`stored` samples each, the first `channels` used) to planar channels.
fn planar(w: usize, h: usize, channels: usize, stored: usize, sample: impl Fn(usize) -> f32) -> Vec<f32> {
    let mut out = vec![0f32; channels * h * w];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..channels {
                out[(ch * h + y) * w + x] = sample((y * w + x) * stored + ch);
            }
        }
    }
    out
}

impl Image {
    /// The image with `channels` channels (1 or 3): grey repeated, or RGB's ITU-R 601 luma.
    pub fn to_channels(self, channels: usize) -> Image {
        let plane = self.width * self.height;
        let data = match (self.channels, channels) {
            (a, b) if a == b => return self,
            (1, 3) => self.data.repeat(3),
            (3, 1) => (0..plane)
                .map(|i| {
                    let (r, g, b) = (self.data[i], self.data[plane + i], self.data[2 * plane + i]);
                    (0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64) as f32
                })
                .collect(),
            _ => unreachable!("images have 1 or 3 channels"),
        };
        Image { channels, data, ..self }
    }

    /// Resized to `w`×`h` (bilinear, antialiased when shrinking).
    pub fn resize(&self, w: usize, h: usize) -> Image {
        let xs = filter(self.width, w);
        let ys = filter(self.height, h);
        let mut data = vec![0f32; self.channels * h * w];
        let mut row = vec![0f64; self.height * w];
        for c in 0..self.channels {
            let src = &self.data[c * self.width * self.height..(c + 1) * self.width * self.height];
            // Horizontal pass, then vertical, as PIL does.
            for y in 0..self.height {
                for (x, (start, ws)) in xs.iter().enumerate() {
                    let line = &src[y * self.width + start..];
                    row[y * w + x] = ws.iter().zip(line).map(|(k, &v)| k * v as f64).sum();
                }
            }
            for (y, (start, ws)) in ys.iter().enumerate() {
                for x in 0..w {
                    let v: f64 = ws.iter().enumerate().map(|(j, k)| k * row[(start + j) * w + x]).sum();
                    data[(c * h + y) * w + x] = v as f32;
                }
            }
        }
        Image {
            width: w,
            height: h,
            channels: self.channels,
            data,
            kind: self.kind.clone(),
        }
    }

    /// The centre `w`×`h` (torchvision's `CenterCrop` offsets: half the excess, rounded to even).
    pub fn centre_crop(&self, w: usize, h: usize) -> Image {
        let half = |d: usize| if d % 4 == 1 { d / 2 } else { d.div_ceil(2) };
        let (left, top) = (half(self.width - w), half(self.height - h));
        let mut data = Vec::with_capacity(self.channels * w * h);
        for c in 0..self.channels {
            for y in 0..h {
                let at = (c * self.height + top + y) * self.width + left;
                data.extend_from_slice(&self.data[at..at + w]);
            }
        }
        Image {
            width: w,
            height: h,
            channels: self.channels,
            data,
            kind: self.kind.clone(),
        }
    }
}

/// For each output position: the first input index and the normalized weights of a triangle
/// filter whose support is scaled by the downscale factor (PIL's `ImagingResample`).
fn filter(input: usize, output: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let ss = scale.max(1.0);
    let support = ss;
    (0..output)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(input);
            let mut ws: Vec<f64> = (lo..hi)
                .map(|j| (1.0 - ((j as f64 - center + 0.5) / ss).abs()).max(0.0))
                .collect();
            let sum: f64 = ws.iter().sum();
            if sum > 0.0 {
                ws.iter_mut().for_each(|w| *w /= sum);
            }
            (lo, ws)
        })
        .collect()
}

/// The size the image is resized to before the centre crop: the smallest that covers `w`×`h`
/// keeping the aspect (the binding side exact, the other rounded down but at least its target).
pub fn cover_size(iw: usize, ih: usize, w: usize, h: usize) -> (usize, usize) {
    // h / ih >= w / iw: the height binds.
    if h * iw >= w * ih {
        ((iw * h / ih).max(w), h)
    } else {
        (w, (ih * w / iw).max(h))
    }
}

/// The image prepared for a `c`×`h`×`w` input: planar values in [0, 1], and a one-line notice
/// when it was resized, cropped or converted (`None` when it was used as it is).
pub fn prepare(path: &Path, img: Image, (c, h, w): (usize, usize, usize)) -> (Vec<f32>, Option<String>) {
    let (iw, ih, kind, from) = (img.width, img.height, img.kind.clone(), img.channels);
    let img = img.to_channels(c);
    let mut steps = Vec::new();
    let (rw, rh) = cover_size(iw, ih, w, h);
    let img = if (rw, rh) != (iw, ih) {
        steps.push(format!("resized to {rw}x{rh}"));
        img.resize(rw, rh)
    } else {
        img
    };
    let img = if (rw, rh) != (w, h) {
        steps.push(format!("centre-cropped to {w}x{h}"));
        img.centre_crop(w, h)
    } else {
        img
    };
    if from != c {
        steps.push(if c == 1 { "grey" } else { "RGB" }.to_owned());
    }
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
    let notice = (!steps.is_empty()).then(|| format!("input: {name} {iw}x{ih} {kind} → {}", steps.join(", ")));
    (img.data, notice)
}
