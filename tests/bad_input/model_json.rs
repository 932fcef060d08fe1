//! `model.json` itself: malformed, of another format, unknown ops and attributes, bad names and
//! inputs, cycles; and the good fixture, loaded and run, as the baseline every case breaks.

use super::fixtures::*;

#[test]
fn good_fixture_loads_and_runs() {
    let fx = Fx::good();
    let model = fx.model();
    let weights = Weights::load(&model).unwrap();
    assert!(weights.warnings.is_empty());
    fx.write("in.png", png_bytes(4, 4, png::ColorType::Grayscale));
    let input = load_input(&model, &fx.path("in.png")).unwrap();
    let acts = nn::forward(&model, &weights, &input).unwrap();
    assert_eq!(acts.layers.len(), 5);
    assert!(acts.layers.iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn malformed_json() {
    let fx = Fx::new();
    let p = fx.write("model.json", "{\"format\": \"netwalk-model/1\",\n \"layers\": [\n");
    let e = expect_err(Model::load(&p));
    check_msg(&e, &p, &["malformed JSON", "line"]);
}

#[test]
fn model_json_not_utf8() {
    let fx = Fx::new();
    let p = fx.write("model.json", b"{\"format\": \"\xff\xfe\"}");
    let e = expect_err(Model::load(&p));
    check_msg(&e, &p, &[]);
}

#[test]
fn model_folder_without_model_json() {
    let fx = Fx::new();
    let e = expect_err(Model::load(fx.dir.path()));
    check_msg(&e, &fx.path("model.json"), &["cannot read"]);
}

#[test]
fn top_level_not_an_object() {
    let fx = Fx::new();
    let p = fx.write("model.json", "[1, 2, 3]");
    let e = expect_err(Model::load(&p));
    check_msg(&e, &p, &["top level", "object"]);
}

#[test]
fn wrong_format() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with("netwalk-model/1", "netwalk-model/7"));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["netwalk-model/7", "netwalk-model/1", "format"],
    );
}

#[test]
fn unknown_op() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""op": "relu""#, r#""op": "mish""#));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "unknown op", "`mish`"]);
}

/// The activations' attributes: a bad value, a missing required one, a wrong-way range.
#[test]
fn bad_activation_attributes() {
    let fx = Fx::good();
    let path = fx.path("model.json");
    for (to, words) in [
        (
            r#""op": "gelu", "approximate": "fast""#,
            &["`relu1`", "\"approximate\"", "\"tanh\"", "\"fast\""][..],
        ),
        (
            r#""op": "leaky_relu", "negative_slope": "0.1""#,
            &["`relu1`", "\"negative_slope\"", "finite number"],
        ),
        (
            r#""op": "elu", "alpha": null"#,
            &["`relu1`", "\"alpha\"", "finite number"],
        ),
        (r#""op": "clip", "min": 0"#, &["`relu1`", "missing \"max\""]),
        (
            r#""op": "clip", "min": 1, "max": 0"#,
            &["`relu1`", "\"min\"", "\"max\""],
        ),
        (r#""op": "relu6", "max": 6"#, &["`relu1`", "unknown attribute", "`max`"]),
    ] {
        let e = expect_err(fx.model_with(r#""op": "relu""#, to));
        check_msg(&e, &path, words);
    }
}

/// The pools' attributes: ceil_mode / count_include_pad not booleans, count_include_pad on a max
/// pool, adaptive pooling's output size missing or zero.
#[test]
fn bad_pool_attributes() {
    let fx = Fx::good();
    let path = fx.path("model.json");
    for (to, words) in [
        (
            r#""op": "maxpool2d", "kernel": 2, "ceil_mode": 1"#,
            &["`relu1`", "\"ceil_mode\"", "true or false", "1"][..],
        ),
        (
            r#""op": "avgpool2d", "kernel": 2, "count_include_pad": "no""#,
            &["`relu1`", "\"count_include_pad\"", "true or false"],
        ),
        (
            r#""op": "maxpool2d", "kernel": 2, "count_include_pad": false"#,
            &["`relu1`", "unknown attribute", "`count_include_pad`"],
        ),
        (r#""op": "adaptive_avgpool2d""#, &["`relu1`", "missing \"output_size\""]),
        (
            r#""op": "adaptive_avgpool2d", "output_size": [2, 0]"#,
            &["`relu1`", "\"output_size\""],
        ),
    ] {
        let e = expect_err(fx.model_with(r#""op": "relu""#, to));
        check_msg(&e, &path, words);
    }
}

#[test]
fn unknown_attribute() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""out_features": 3"#, r#""out_features": 3, "activation": "relu""#));
    check_msg(
        &e,
        &fx.path("model.json"),
        &["`fc`", "unknown attribute", "`activation`"],
    );
}

#[test]
fn missing_layer_name() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"{"name": "relu1", "op": "relu"}"#, r#"{"op": "relu"}"#));
    check_msg(&e, &fx.path("model.json"), &["layer 1", "\"name\""]);
}

#[test]
fn duplicate_layer_names() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""name": "flatten""#, r#""name": "relu1""#));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "duplicate"]);
}

#[test]
fn layer_named_like_the_input() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""name": "relu1""#, r#""name": "image""#));
    check_msg(&e, &fx.path("model.json"), &["`image`", "input"]);
}

#[test]
fn names_with_newlines_stay_on_one_line() {
    // Names and values from the file are printed inside messages: control characters are escaped.
    let fx = Fx::good();
    let e = expect_err(fx.model_with(
        r#""name": "relu1", "op": "relu""#,
        r#""name": "re\nlu1", "op": "ge\nlu""#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`re\\nlu1`", "unknown op", "`ge\\nlu`"]);
}

#[test]
fn unknown_inputs_name() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(
        r#"{"name": "relu1", "op": "relu"}"#,
        r#"{"name": "relu1", "op": "relu", "inputs": ["conv9"]}"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "unknown input", "`conv9`"]);
}

#[test]
fn inputs_not_names() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(
        r#"{"name": "relu1", "op": "relu"}"#,
        r#"{"name": "relu1", "op": "relu", "inputs": [0]}"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "\"inputs\""]);
}

#[test]
fn cycle_of_two_layers() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[4]",
        r#"[{"name": "a", "op": "relu", "inputs": ["b"]},
            {"name": "b", "op": "relu", "inputs": ["a"]}]"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["cycle", "`a`", "b"]);
}

#[test]
fn cycle_self_reference() {
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[4]",
        r#"[{"name": "a", "op": "relu"}, {"name": "b", "op": "add", "inputs": ["a", "b"]}]"#,
    ));
    check_msg(&e, &fx.path("model.json"), &["cycle", "`b`", "itself"]);
}

#[test]
fn cycle_names_a_layer_on_the_cycle_not_one_downstream_of_it() {
    // `c` only reads from the cycle b -> a -> b; it comes first in the file, yet the error must
    // point at the layers that form the cycle.
    let fx = Fx::new();
    let e = expect_err(fx.model_layers(
        "[4]",
        r#"[{"name": "c", "op": "relu", "inputs": ["b"]},
            {"name": "a", "op": "relu", "inputs": ["b"]},
            {"name": "b", "op": "relu", "inputs": ["a"]}]"#,
    ));
    let msg = check_msg(&e, &fx.path("model.json"), &["cycle", "a", "b"]);
    assert!(!msg.contains("`c`"), "names a layer that is not on the cycle: {msg}");
}

#[test]
fn missing_op() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#"{"name": "relu1", "op": "relu"}"#, r#"{"name": "relu1"}"#));
    check_msg(&e, &fx.path("model.json"), &["`relu1`", "\"op\""]);
}

#[test]
fn bad_attribute_value() {
    let fx = Fx::good();
    let e = expect_err(fx.model_with(r#""out_channels": 2"#, r#""out_channels": -2"#));
    check_msg(&e, &fx.path("model.json"), &["`conv1`", "\"out_channels\"", "-2"]);
    let e = expect_err(fx.model_with(r#""kernel": 3"#, r#""kernel": [3, 3, 3]"#));
    check_msg(&e, &fx.path("model.json"), &["`conv1`", "\"kernel\""]);
}

/// The binary ops and prelu: a constant of the wrong rank, out of range or not broadcasting; too
/// few inputs, or a constant beside two; a weight name without a constant; a prelu without weight.
#[test]
fn bad_binary_and_prelu_attributes() {
    let fx = Fx::good();
    let path = fx.path("model.json");
    for (to, words) in [
        (
            r#""op": "mul", "constant": [2, 1]"#,
            &["`relu1`", "\"constant\"", "3 integers", "[2, 2, 2]"][..],
        ),
        (
            r#""op": "add", "constant": [2, 0, 1]"#,
            &["`relu1`", "\"constant\"", "1..="],
        ),
        (r#""op": "add", "constant": 2"#, &["`relu1`", "\"constant\"", "shape"]),
        (
            r#""op": "mul", "constant": [3, 1, 1]"#,
            &["`relu1`", "cannot broadcast", "[2, 2, 2]", "[3, 1, 1]"],
        ),
        (r#""op": "sub""#, &["`relu1`", "`sub` needs 2 inputs", "got 1"]),
        (r#""op": "add""#, &["`relu1`", "`add` needs at least 2 inputs"]),
        (
            r#""op": "div", "inputs": ["conv1", "conv1"], "constant": [1, 1, 1]"#,
            &["`relu1`", "exactly one input", "got 2"],
        ),
        (
            r#""op": "div", "weight": "w""#,
            &["`relu1`", "\"weight\"", "\"constant\""],
        ),
        (r#""op": "prelu", "weight": null"#, &["`relu1`", "\"weight\"", "null"]),
        (
            r#""op": "prelu", "slope": 0.25"#,
            &["`relu1`", "unknown attribute", "`slope`"],
        ),
    ] {
        let e = expect_err(fx.model_with(r#""op": "relu""#, to));
        check_msg(&e, &path, words);
    }
}

/// Channel shuffle, slice and layer norm: groups that do not divide the channels, a slice out of
/// range or empty, a bad eps, a layer norm without bias.
#[test]
fn bad_shuffle_slice_layernorm_attributes() {
    let fx = Fx::good();
    let path = fx.path("model.json");
    for (to, words) in [
        (
            r#""op": "channel_shuffle", "groups": 3"#,
            &["`relu1`", "groups = 3", "channels (2)"][..],
        ),
        (r#""op": "channel_shuffle""#, &["`relu1`", "missing \"groups\""]),
        (
            r#""op": "slice", "start": 1, "end": 3"#,
            &["`relu1`", "\"end\" (3)", "<= 2"],
        ),
        (r#""op": "slice", "start": 1, "end": 1"#, &["`relu1`", "start < end"]),
        (
            r#""op": "slice", "start": -1, "end": 1"#,
            &["`relu1`", "\"start\"", "0..="],
        ),
        (r#""op": "slice", "start": 0"#, &["`relu1`", "missing \"end\""]),
        (r#""op": "layernorm", "eps": 0"#, &["`relu1`", "\"eps\"", "positive"]),
        (r#""op": "layernorm", "bias": null"#, &["`relu1`", "\"bias\"", "null"]),
    ] {
        let e = expect_err(fx.model_with(r#""op": "relu""#, to));
        check_msg(&e, &path, words);
    }
}

/// Pad, upsample and conv_transpose2d: padding not four non-negative integers, a bad value; scale
/// and size both or neither, a zero scale, an unknown mode, align_corners with nearest; an
/// output_padding not below the stride or dilation, padding that leaves nothing, groups that do not
/// divide.
#[test]
fn bad_pad_upsample_conv_transpose_attributes() {
    let fx = Fx::good();
    let path = fx.path("model.json");
    for (to, words) in [
        (
            r#""op": "pad", "padding": [1, 1]"#,
            &["`relu1`", "\"padding\"", "[top, left, bottom, right]"][..],
        ),
        (
            r#""op": "pad", "padding": [1, -1, 0, 0]"#,
            &["`relu1`", "\"padding\"", "0..="],
        ),
        (r#""op": "pad""#, &["`relu1`", "missing \"padding\""]),
        (
            r#""op": "pad", "padding": [1, 1, 1, 1], "value": "zero""#,
            &["`relu1`", "\"value\"", "finite number"],
        ),
        (
            r#""op": "upsample""#,
            &["`relu1`", "exactly one of \"scale\" and \"size\""],
        ),
        (
            r#""op": "upsample", "scale": 2, "size": [4, 4]"#,
            &["`relu1`", "exactly one"],
        ),
        (r#""op": "upsample", "scale": 0"#, &["`relu1`", "\"scale\"", "1..="]),
        (
            r#""op": "upsample", "size": [4, 4], "mode": "bicubic""#,
            &["`relu1`", "\"mode\"", "\"bicubic\""],
        ),
        (
            r#""op": "upsample", "scale": 2, "align_corners": true"#,
            &["`relu1`", "\"align_corners\"", "\"bilinear\" only"],
        ),
        (
            r#""op": "conv_transpose2d", "out_channels": 2, "kernel": 3, "stride": 2, "output_padding": 2"#,
            &["`relu1`", "\"output_padding\"", "smaller than the stride"],
        ),
        (
            r#""op": "conv_transpose2d", "out_channels": 2, "kernel": 1, "padding": 1"#,
            &["`relu1`", "padding", "no output", "2x2"],
        ),
        (
            r#""op": "conv_transpose2d", "out_channels": 3, "kernel": 2, "groups": 2"#,
            &["`relu1`", "groups = 2", "out_channels (3)"],
        ),
        (
            r#""op": "conv_transpose2d", "kernel": 2"#,
            &["`relu1`", "missing \"out_channels\""],
        ),
    ] {
        let e = expect_err(fx.model_with(r#""op": "relu""#, to));
        check_msg(&e, &path, words);
    }
}
