//! The fixtures every bad-input case starts from: a small valid model and its weights in a
//! temporary folder ([`Fx`]), hand-made safetensors and PNG bytes, and the checks every error
//! message must pass ([`check_msg`]).

pub use std::path::{Path, PathBuf};

pub use netwalk::nn::{self, Model, NnError, Samples, Weights, load_input};
pub use safetensors::Dtype;
use safetensors::tensor::TensorView;
use tempfile::TempDir;

/// A small valid model: [1, 4, 4] -> conv1 [2, 2, 2] -> relu1 -> flatten [8] -> fc [3] -> softmax.
pub const GOOD_MODEL: &str = r#"{
  "format": "netwalk-model/1",
  "name": "tiny",
  "input": {"name": "image", "shape": [1, 4, 4], "mean": [0.5], "std": [0.25]},
  "classes": ["a", "b", "c"],
  "weights": "weights.safetensors",
  "samples": "samples.safetensors",
  "layers": [
    {"name": "conv1", "op": "conv2d", "out_channels": 2, "kernel": 3},
    {"name": "relu1", "op": "relu"},
    {"name": "flatten", "op": "flatten"},
    {"name": "fc", "op": "dense", "out_features": 3},
    {"name": "softmax", "op": "softmax"}
  ]
}"#;

/// A tensor for [`st_bytes`]: name, dtype, shape, raw little-endian data.
pub type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn f32_tensor(name: &str, shape: &[usize]) -> RawTensor {
    let n: usize = shape.iter().product();
    let vals: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    (name.to_owned(), Dtype::F32, shape.to_vec(), f32_bytes(&vals))
}

/// The weights of [`GOOD_MODEL`].
pub fn good_tensors() -> Vec<RawTensor> {
    vec![
        f32_tensor("conv1.weight", &[2, 1, 3, 3]),
        f32_tensor("conv1.bias", &[2]),
        f32_tensor("fc.weight", &[3, 8]),
        f32_tensor("fc.bias", &[3]),
    ]
}

/// Serialize tensors with the `safetensors` crate (always a well-formed file).
pub fn st_bytes(tensors: &[RawTensor]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::tensor::serialize(views, None).unwrap()
}

/// A safetensors file written by hand: 8-byte LE header length, the header, then `data`.
pub fn raw_st(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

pub struct Fx {
    pub dir: TempDir,
}

impl Fx {
    pub fn new() -> Fx {
        Fx {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    /// The good model with its weights, ready to be broken one file at a time.
    pub fn good() -> Fx {
        let fx = Fx::new();
        fx.write("model.json", GOOD_MODEL);
        fx.write("weights.safetensors", st_bytes(&good_tensors()));
        fx
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    pub fn model(&self) -> Model {
        Model::load(&self.path("model.json")).unwrap()
    }
    /// Replace model.json by GOOD_MODEL with one substring swapped, then load it.
    pub fn model_with(&self, from: &str, to: &str) -> Result<Model, NnError> {
        assert!(GOOD_MODEL.contains(from), "fixture text `{from}` not in GOOD_MODEL");
        let p = self.write("model.json", GOOD_MODEL.replace(from, to));
        Model::load(&p)
    }
    /// Write the given layers (JSON array text) into a model of the given input shape and load it.
    pub fn model_layers(&self, input_shape: &str, layers: &str) -> Result<Model, NnError> {
        let text = format!(
            r#"{{"format": "netwalk-model/1", "input": {{"shape": {input_shape}}},
               "weights": "weights.safetensors", "layers": {layers}}}"#
        );
        let p = self.write("model.json", text);
        Model::load(&p)
    }
    pub fn weights_with(&self, tensors: &[RawTensor]) -> Result<Weights, NnError> {
        let p = self.write("weights.safetensors", st_bytes(tensors));
        Weights::load_file(&self.model(), &p)
    }
}

/// The checks every error must pass: one line, names `file`, and contains every `needle`.
#[track_caller]
pub fn check_msg(err: &NnError, file: &Path, needles: &[&str]) -> String {
    let msg = err.to_string();
    println!("{msg}"); // shown with --nocapture: the messages a user would see
    assert!(!msg.is_empty(), "empty error message");
    assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "error is not one line: {msg:?}"
    );
    let f = file.display().to_string();
    assert!(msg.contains(&f), "error does not name the file {f}: {msg}");
    for n in needles {
        assert!(msg.contains(n), "error does not mention {n:?}: {msg}");
    }
    msg
}

#[track_caller]
pub fn expect_err<T>(r: Result<T, NnError>) -> NnError {
    match r {
        Ok(_) => panic!("expected an error, got Ok({})", std::any::type_name::<T>()),
        Err(e) => e,
    }
}

pub fn png_bytes(w: u32, h: u32, color: png::ColorType) -> Vec<u8> {
    let channels = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => unreachable!(),
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..(w * h) as usize * channels).map(|i| (i * 37) as u8).collect();
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
    }
    out
}

pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose IHDR claims `w` x `h` pixels but which holds (almost) no image data.
pub fn lying_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], body: &[u8]| {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(body);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

pub fn samples_bytes(n: usize, labels: Vec<RawTensor>) -> Vec<u8> {
    let mut t = vec![("images".to_owned(), Dtype::U8, vec![n, 1, 4, 4], vec![128u8; n * 16])];
    t.extend(labels);
    st_bytes(&t)
}
