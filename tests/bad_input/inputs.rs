//! Inputs (PNG images, safetensors inputs) and sample sets.

use super::fixtures::*;
use std::time::{Duration, Instant};

#[test]
fn input_png_of_another_size_is_resized() {
    let fx = Fx::good();
    let p = fx.write("in.png", png_bytes(5, 3, png::ColorType::Grayscale));
    assert_eq!(load_input(&fx.model(), &p).unwrap().len(), 16);
}

#[test]
fn input_png_with_another_channel_count_is_converted() {
    let fx = Fx::good();
    let p = fx.write("in.png", png_bytes(4, 4, png::ColorType::Rgb));
    assert_eq!(load_input(&fx.model(), &p).unwrap().len(), 16);
}

#[test]
fn input_png_with_alpha_is_accepted() {
    let fx = Fx::good();
    let p = fx.write("in.png", png_bytes(4, 4, png::ColorType::GrayscaleAlpha));
    assert_eq!(load_input(&fx.model(), &p).unwrap().len(), 16);
}

#[test]
fn input_png_huge_header_is_refused_before_allocating() {
    let fx = Fx::good();
    let p = fx.write("in.png", lying_png(100_000, 100_000));
    let t = Instant::now();
    let e = expect_err(load_input(&fx.model(), &p));
    assert!(t.elapsed() < Duration::from_millis(200), "took {:?}", t.elapsed());
    check_msg(&e, &p, &["100000x100000", "4x4"]);
}

#[test]
fn input_file_is_not_a_png() {
    let fx = Fx::good();
    let p = fx.write("in.png", "this is text, not an image");
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["PNG"]);
}

#[test]
fn input_png_for_a_vector_model() {
    let fx = Fx::new();
    fx.model_layers("[16]", r#"[{"name": "r", "op": "relu"}]"#).unwrap();
    let p = fx.write("in.png", png_bytes(4, 4, png::ColorType::Grayscale));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["[16]", "image"]);
}

#[test]
fn input_missing_file() {
    let fx = Fx::good();
    for name in ["nope.png", "nope.safetensors"] {
        let p = fx.path(name);
        let e = expect_err(load_input(&fx.model(), &p));
        check_msg(&e, &p, &["cannot read"]);
    }
}

#[test]
fn input_safetensors_of_the_wrong_shape() {
    let fx = Fx::good();
    let p = fx.write("in.safetensors", st_bytes(&[f32_tensor("input", &[1, 5, 4])]));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`", "[1, 5, 4]", "[1, 4, 4]"]);
}

#[test]
fn input_safetensors_with_a_leading_batch_of_one_is_accepted() {
    let fx = Fx::good();
    let p = fx.write("in.safetensors", st_bytes(&[f32_tensor("input", &[1, 1, 4, 4])]));
    assert_eq!(load_input(&fx.model(), &p).unwrap().len(), 16);
}

#[test]
fn input_safetensors_without_input_tensor() {
    let fx = Fx::good();
    let p = fx.write("in.safetensors", st_bytes(&[f32_tensor("image", &[1, 4, 4])]));
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`"]);
}

#[test]
fn input_safetensors_with_nan() {
    let fx = Fx::good();
    let mut v = vec![0f32; 16];
    v[3] = f32::NAN;
    let p = fx.write(
        "in.safetensors",
        st_bytes(&[("input".into(), Dtype::F32, vec![1, 4, 4], f32_bytes(&v))]),
    );
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`", "NaN"]);
}

#[test]
fn input_safetensors_truncated() {
    let fx = Fx::good();
    let bytes = st_bytes(&[f32_tensor("input", &[1, 4, 4])]);
    let p = fx.write("in.safetensors", &bytes[..bytes.len() - 3]);
    let e = expect_err(load_input(&fx.model(), &p));
    check_msg(&e, &p, &["`input`", "truncated"]);
}

#[test]
fn samples_missing_labels() {
    let fx = Fx::good();
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "missing"]);
}

#[test]
fn samples_label_out_of_range() {
    let fx = Fx::good();
    let labels = ("labels".to_owned(), Dtype::U8, vec![2], vec![1u8, 3]);
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "label 3", "3 outputs"]);
}

#[test]
fn samples_negative_label() {
    let fx = Fx::good();
    let labels = (
        "labels".to_owned(),
        Dtype::I64,
        vec![2],
        [0i64, -1].iter().flat_map(|l| l.to_le_bytes()).collect(),
    );
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "-1"]);
}

#[test]
fn samples_float_labels() {
    let fx = Fx::good();
    let labels = ("labels".to_owned(), Dtype::F32, vec![2], f32_bytes(&[0.0, 1.0]));
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "F32"]);
}

#[test]
fn samples_label_count_differs_from_images() {
    let fx = Fx::good();
    let labels = ("labels".to_owned(), Dtype::U8, vec![3], vec![0u8, 1, 2]);
    let p = fx.write("samples.safetensors", samples_bytes(2, vec![labels]));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`labels`", "[3]", "[2]"]);
}

#[test]
fn samples_images_of_the_wrong_shape() {
    let fx = Fx::good();
    let t = vec![
        ("images".to_owned(), Dtype::U8, vec![2, 4, 4], vec![0u8; 32]),
        ("labels".to_owned(), Dtype::U8, vec![2], vec![0u8, 1]),
    ];
    let p = fx.write("samples.safetensors", st_bytes(&t));
    let e = expect_err(Samples::load(&fx.model(), &p));
    check_msg(&e, &p, &["`images`", "[2, 4, 4]"]);
}
