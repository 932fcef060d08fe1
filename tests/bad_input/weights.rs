//! The weights file: missing or misshapen tensors, wrong dtypes, truncated or lying safetensors.

use super::fixtures::*;

#[test]
fn missing_tensor() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t.retain(|(n, ..)| n != "fc.weight");
    let e = expect_err(fx.weights_with(&t));
    check_msg(&e, &fx.path("weights.safetensors"), &["`fc.weight`", "`fc`", "missing"]);
}

#[test]
fn missing_bias_hints_at_null() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t.retain(|(n, ..)| n != "conv1.bias");
    let e = expect_err(fx.weights_with(&t));
    check_msg(
        &e,
        &fx.path("weights.safetensors"),
        &["`conv1.bias`", "`conv1`", "missing", "null"],
    );
}

#[test]
fn missing_weights_file() {
    let fx = Fx::good();
    std::fs::remove_file(fx.path("weights.safetensors")).unwrap();
    let model = fx.model();
    let e = expect_err(Weights::load(&model));
    check_msg(&e, &fx.path("weights.safetensors"), &["cannot read"]);
}

#[test]
fn tensor_of_the_wrong_shape() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[2] = f32_tensor("fc.weight", &[3, 9]);
    let e = expect_err(fx.weights_with(&t));
    check_msg(
        &e,
        &fx.path("weights.safetensors"),
        &["`fc.weight`", "`fc`", "[3, 9]", "[3, 8]"],
    );
}

#[test]
fn tensor_of_the_wrong_dtype_i64() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[0] = ("conv1.weight".into(), Dtype::I64, vec![2, 1, 3, 3], vec![0u8; 18 * 8]);
    let e = expect_err(fx.weights_with(&t));
    check_msg(
        &e,
        &fx.path("weights.safetensors"),
        &["`conv1.weight`", "`conv1`", "I64"],
    );
}

#[test]
fn tensor_of_the_wrong_dtype_f64() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[3] = ("fc.bias".into(), Dtype::F64, vec![3], vec![0u8; 3 * 8]);
    let e = expect_err(fx.weights_with(&t));
    check_msg(&e, &fx.path("weights.safetensors"), &["`fc.bias`", "`fc`", "F64"]);
}

#[test]
fn half_precision_weights_are_accepted() {
    let fx = Fx::good();
    let mut t = good_tensors();
    let h: Vec<u8> = (0..3)
        .flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes())
        .collect();
    t[3] = ("fc.bias".into(), Dtype::F16, vec![3], h);
    fx.weights_with(&t).unwrap();
}

#[test]
fn truncated_safetensors_cut_in_half() {
    let fx = Fx::good();
    let bytes = st_bytes(&good_tensors());
    let p = fx.write("weights.safetensors", &bytes[..bytes.len() / 2]);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["truncated"]);
}

#[test]
fn truncated_safetensors_cut_in_the_data() {
    let fx = Fx::good();
    let bytes = st_bytes(&good_tensors());
    let p = fx.write("weights.safetensors", &bytes[..bytes.len() - 10]);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    // The last tensor in the file (by offset) is the one cut short.
    check_msg(&e, &p, &["truncated", "tensor `"]);
}

#[test]
fn trailing_garbage_after_the_data() {
    let fx = Fx::good();
    let mut bytes = st_bytes(&good_tensors());
    bytes.extend_from_slice(b"garbage");
    let p = fx.write("weights.safetensors", &bytes);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["7"]);
}

#[test]
fn empty_safetensors_file() {
    let fx = Fx::good();
    let p = fx.write("weights.safetensors", b"");
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["safetensors"]);
}

#[test]
fn header_offsets_past_the_end() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &[0u8; 4],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`conv1.bias`", "truncated"]);
}

#[test]
fn header_offsets_disagree_with_shape() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,400]}}"#,
            &[0u8; 400],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`conv1.bias`", "400", "8"]);
}

#[test]
fn header_offsets_overlap() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                "fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[4,16]}}"#,
            &[0u8; 16],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.bias`", "overlap"]);
}

#[test]
fn header_offsets_leave_a_gap() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                "fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[12,24]}}"#,
            &[0u8; 24],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.bias`", "gap", "[12, 24]"]);
}

#[test]
fn header_offsets_end_before_they_start() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                   "fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[8,4]}}"#,
            &[0u8; 20],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.bias`", "[8, 4]"]);
}

#[test]
fn header_shape_overflows() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"fc.weight":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
            &[0u8; 8],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["`fc.weight`"]);
}

#[test]
fn header_length_bigger_than_the_file() {
    let fx = Fx::good();
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let p = fx.write("weights.safetensors", &bytes);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["1000", "header"]);
}

#[test]
fn header_length_absurd() {
    let fx = Fx::good();
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let p = fx.write("weights.safetensors", &bytes);
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["header"]);
}

#[test]
fn garbage_header_json() {
    let fx = Fx::good();
    let p = fx.write("weights.safetensors", raw_st("{\"a\": [1, 2", &[]));
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["header", "JSON"]);
    let p = fx.write("weights.safetensors", raw_st("\u{1}\u{2}\u{3}", &[]));
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["header"]);
}

#[test]
fn header_unknown_dtype() {
    let fx = Fx::good();
    let p = fx.write(
        "weights.safetensors",
        raw_st(
            r#"{"conv1.bias":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#,
            &[0u8; 8],
        ),
    );
    let e = expect_err(Weights::load_file(&fx.model(), &p));
    check_msg(&e, &p, &["Q4"]);
}

#[test]
fn nan_and_inf_weights_warn_and_are_still_shown() {
    let fx = Fx::good();
    let mut t = good_tensors();
    t[1] = (
        "conv1.bias".into(),
        Dtype::F32,
        vec![2],
        f32_bytes(&[f32::NAN, f32::INFINITY]),
    );
    let weights = fx.weights_with(&t).unwrap();
    assert_eq!(weights.warnings.len(), 1, "{:?}", weights.warnings);
    let w = &weights.warnings[0];
    assert!(!w.contains('\n'), "{w:?}");
    for needle in ["`conv1.bias`", "`conv1`", "2 NaN/Inf"] {
        assert!(w.contains(needle), "warning lacks {needle}: {w}");
    }
    let model = fx.model();
    let acts = nn::forward(&model, &weights, &[0.5; 16]).unwrap();
    let conv1 = &acts.layers[0];
    assert_eq!(conv1.len(), 8);
    assert!(
        conv1[..4].iter().all(|v| v.is_nan()),
        "channel 0 should be NaN: {conv1:?}"
    );
    assert!(
        conv1[4..].iter().all(|v| *v == f32::INFINITY),
        "channel 1 should be +inf: {conv1:?}"
    );
}

/// A prelu's weight: one slope per channel, or one shared ([1]); any other shape is refused.
#[test]
fn prelu_weight_per_channel_or_shared() {
    let fx = Fx::good();
    fx.model_with(r#""op": "relu""#, r#""op": "prelu""#).unwrap();
    for shape in [[2], [1]] {
        let mut t = good_tensors();
        t.push(f32_tensor("relu1.weight", &shape));
        let w = fx.weights_with(&t).unwrap();
        assert_eq!(w.layers[1].weight.as_ref().unwrap().dims(), [2], "{shape:?}");
    }
    let mut t = good_tensors();
    t.push(f32_tensor("relu1.weight", &[3]));
    let e = expect_err(fx.weights_with(&t));
    check_msg(
        &e,
        &fx.path("weights.safetensors"),
        &["`relu1.weight`", "`relu1`", "[3]", "[2]"],
    );
}
