//! Shapes: impossible, overflowing or absurdly large, refused at parse time (before allocating).

use super::fixtures::*;
use std::time::{Duration, Instant};

/// Parse must refuse quickly: no allocation proportional to the absurd size.
#[track_caller]
fn refused_quickly(fx: &Fx, input_shape: &str, layers: &str, needles: &[&str]) -> String {
    let t = Instant::now();
    let e = expect_err(fx.model_layers(input_shape, layers));
    let took = t.elapsed();
    assert!(took < Duration::from_millis(200), "refusing took {took:?}");
    check_msg(&e, &fx.path("model.json"), needles)
}

#[test]
fn absurd_conv_million_channels() {
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[3, 1000, 1000]",
        r#"[{"name": "huge", "op": "conv2d", "out_channels": 1000000, "kernel": 3}]"#,
        &["`huge`", "limit"],
    );
}

#[test]
fn absurd_dense_parameters() {
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[1000000]",
        r#"[{"name": "wide", "op": "dense", "out_features": 1000000}]"#,
        &["`wide`", "wide.weight", "too large"],
    );
}

#[test]
fn input_shape_overflow() {
    let fx = Fx::new();
    // 1e15 values: fits in a usize, but far beyond any sane allocation. A global pool right after
    // it would shrink it, so the input itself must be refused.
    refused_quickly(
        &fx,
        "[100000, 100000, 100000]",
        r#"[{"name": "gap", "op": "global_avgpool2d"}]"#,
        &["input", "[100000, 100000, 100000]"],
    );
    // A dimension that does not even fit the per-dimension limit.
    refused_quickly(
        &fx,
        "[1099511627776, 1, 1]",
        r#"[{"name": "r", "op": "relu"}]"#,
        &["input", "1099511627776"],
    );
    refused_quickly(&fx, "[0, 4, 4]", r#"[{"name": "r", "op": "relu"}]"#, &["input", "0"]);
}

#[test]
fn layer_output_overflow() {
    let fx = Fx::new();
    // 1048576 * 1048576 * 1048576 channels overflow even before any size limit.
    refused_quickly(
        &fx,
        "[1048576]",
        r#"[{"name": "a", "op": "concat", "inputs": ["input", "input", "input", "input"]},
            {"name": "big", "op": "dense", "out_features": 1048576}]"#,
        &["`big`"],
    );
}

#[test]
fn absurd_pool_padding_needs_huge_scratch() {
    // The output is 1x1, but the forward pass would pad the input to 1048577 x 1048577 first.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[1, 1, 1]",
        r#"[{"name": "pool", "op": "maxpool2d", "kernel": 1048576, "padding": 524288}]"#,
        &["`pool`", "limit"],
    );
}

#[test]
fn absurd_conv_dilation_needs_huge_scratch() {
    // Unequal dilations are done by spreading the kernel out: 64 x 1 x 1048577 x 524289 values.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[1, 2, 2]",
        r#"[{"name": "dil", "op": "conv2d", "out_channels": 64, "kernel": 2,
             "dilation": [1048576, 524288], "padding": 524288}]"#,
        &["`dil`", "limit"],
    );
}

#[test]
fn absurd_conv_patch_unfolding() {
    // Small parameters and output, but unfolding 512 output pixels of a 1024x1024 kernel over
    // 128 channels at a time would take 2^36 values.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[128, 1046, 1046]",
        r#"[{"name": "unfold", "op": "conv2d", "out_channels": 1, "kernel": 1024}]"#,
        &["`unfold`", "limit"],
    );
}

#[test]
fn absurd_conv_im2col_of_a_big_image() {
    // Output [1, 2046, 2046] and input [64, 2048, 2048] are each within the per-layer limit, but
    // unfolding the 3x3 patches of 64 channels for every output pixel takes 2.4e9 values.
    let fx = Fx::new();
    refused_quickly(
        &fx,
        "[64, 2048, 2048]",
        r#"[{"name": "wide", "op": "conv2d", "out_channels": 1, "kernel": 3}]"#,
        &["`wide`", "limit"],
    );
}

#[test]
fn kernel_larger_than_input() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""kernel": 3"#, r#""kernel": 5"#));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["`conv1`", "kernel", "4x4", "does not fit"],
    );
}

#[test]
fn dense_on_an_image_without_flatten() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"{"name": "flatten", "op": "flatten"},"#, ""));
    check_msg(&e, &fx.path("model.json"), &["`fc`", "[2, 2, 2]", "flatten"]);
}

#[test]
fn add_of_mismatched_shapes() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[1, 4, 4]",
        r#"[{"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 3},
            {"name": "sum", "op": "add", "inputs": ["c", "input"]}]"#,
    ));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["`sum`", "cannot broadcast", "[2, 2, 2]", "[1, 4, 4]"],
    );
}

#[test]
fn concat_of_mismatched_sizes() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[1, 4, 4]",
        r#"[{"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 3},
            {"name": "cat", "op": "concat", "inputs": ["c", "input"]}]"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`cat`", "[1, 4, 4]"]);
}

#[test]
fn groups_do_not_divide_channels() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""kernel": 3"#, r#""kernel": 3, "groups": 2"#));
    check_msg(&e, &fx.path("model.json"), &["`conv1`", "groups"]);
}

#[test]
fn classes_count_differs_from_last_layer() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"["a", "b", "c"]"#, r#"["a", "b"]"#));
    check_msg(&e, &fx.path("model.json"), &["2 classes", "3 outputs", "`softmax`"]);
}
