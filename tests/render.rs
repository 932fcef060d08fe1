//! The offscreen Vulkan renderer on a real device (lavapipe on CI), with validation on: pixels land
//! where the CPU projection says, in the colormap's colors; mono and stereo (multiview); the
//! `snapshot` command end to end; the committed SPIR-V matches the GLSL.
//!
//! Without a Vulkan device these tests fail under CI and print a skip note elsewhere.

mod common;

use std::path::Path;
use std::process::Command;

use common::{decode_png, demo_app, in_ci, srgb8};
use glam::{Vec2, Vec3};
use netwalk::gfx::colormap::{diverging, viridis};
use netwalk::gfx::{BACKGROUND_SRGB, Camera, GfxError, NetworkDraw, Renderer, RendererConfig, RgbaImage};
use netwalk::nn::{Activations, Model, Shape};
use netwalk::scene::{self, LayerPlacement, LayoutKind};

/// A renderer with validation on, or `None` (after a note) when this machine has no Vulkan.
fn renderer() -> Option<Renderer> {
    match Renderer::new(&RendererConfig {
        validation: true,
        ..Default::default()
    }) {
        Ok(r) => Some(r),
        Err(e @ (GfxError::Loader(_) | GfxError::NoDevice(_) | GfxError::NoValidationLayer)) => {
            assert!(
                !in_ci(),
                "CI needs a Vulkan device for the renderer tests: {e} (scripts/test.sh installs lavapipe and the validation layer)"
            );
            eprintln!("SKIPPED (renderer test): {e}");
            None
        }
        Err(e) => panic!("cannot create the renderer: {e}"),
    }
}

/// One conv layer: 4 channels of 4×4 on a 1×4×4 input.
fn tiny_model() -> Model {
    let json = r#"{"format": "netwalk-model/1", "name": "tiny", "weights": "w.safetensors",
        "input": {"name": "image", "shape": [1, 4, 4]},
        "layers": [{"name": "conv", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1}]}"#;
    Model::parse(json, Path::new("/nonexistent/model.json")).expect("valid model")
}

/// Channel 1 has one hot neuron at (y 2, x 3); channel 3 is hot everywhere; the rest is 0.
fn tiny_activations() -> Activations {
    let mut conv = vec![0.0; 4 * 16];
    conv[16 + 2 * 4 + 3] = 1.0;
    conv[3 * 16..].fill(1.0);
    Activations {
        input: vec![0.0; 16],
        layers: vec![conv],
    }
}

fn conv_block(placements: &[LayerPlacement]) -> &LayerPlacement {
    placements.iter().find(|p| p.name == "conv").expect("conv block")
}

/// World position of the center of cell (y, x) of a tile.
fn cell_center(p: &LayerPlacement, channel: usize, y: usize, x: usize) -> Vec3 {
    let t = &p.tiles[channel];
    let local = Vec3::new(
        (x as f32 + 0.5) / t.w as f32 - 0.5,
        0.5 - (y as f32 + 0.5) / t.h as f32,
        0.0,
    );
    t.world_from_tile.transform_point3(local)
}

fn tile_center(p: &LayerPlacement, channel: usize) -> Vec3 {
    p.tiles[channel].world_from_tile.transform_point3(Vec3::ZERO)
}

fn pixel_at(image: &RgbaImage, at: Vec2) -> [u8; 4] {
    image.pixel(at.x as u32, at.y as u32)
}

#[track_caller]
fn assert_color(got: [u8; 4], want: [u8; 3], what: &str) {
    let close = got[..3]
        .iter()
        .zip(want)
        .all(|(g, w)| (i16::from(*g) - i16::from(w)).abs() <= 3);
    assert!(close && got[3] == 255, "{what}: pixel {got:?}, expected {want:?}");
}

/// A camera `distance` m in front of the conv block, looking straight at it.
fn front_camera(block: &LayerPlacement, distance: f32) -> Camera {
    Camera::look_at(block.center + Vec3::new(0.0, 0.0, distance), block.center)
}

/// Renders the tiny network; returns the images and the validation messages after teardown.
fn render_tiny(
    kind: LayoutKind,
    size: (u32, u32),
    views: impl Fn(&[LayerPlacement]) -> Vec<Camera>,
) -> Option<(Vec<LayerPlacement>, Vec<RgbaImage>)> {
    let mut r = renderer()?;
    let log = r.validation_log();
    let model = tiny_model();
    let placements = scene::layout(&model, kind);
    // Values only: these tests look at tiles and cubes (labels_bars_and_floor_are_drawn checks
    // the rest). Lavapipe (Mesa 22.3) also draws the glyphs of view 1 into layer 0 of a
    // multiview pass, which the mono/stereo comparison below would trip over.
    r.set_network(&NetworkDraw::activations_only(&model, &tiny_activations(), &placements))
        .expect("upload");
    let images = r.render_offscreen(size.0, size.1, &views(&placements)).expect("render");
    assert_eq!(
        r.validation_messages(),
        Vec::<String>::new(),
        "validation messages after rendering"
    );
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new(), "validation messages at teardown");
    Some((placements, images))
}

#[test]
fn hot_neuron_cold_neuron_and_background_have_the_expected_colors() {
    let cam = |p: &[LayerPlacement]| vec![front_camera(conv_block(p), 0.3)];
    let Some((placements, images)) = render_tiny(LayoutKind::Grid, (512, 512), cam) else {
        return;
    };
    let block = conv_block(&placements);
    let camera = cam(&placements)[0];
    let image = &images[0];
    assert_eq!((image.width, image.height), (512, 512));
    let project = |p: Vec3| camera.project(p, 512, 512).expect("in front of the camera");

    let hot = project(cell_center(block, 1, 2, 3));
    assert_color(
        pixel_at(image, hot),
        srgb8(viridis(1.0)),
        "hot neuron (top of the colormap)",
    );
    let cold = project(cell_center(block, 1, 0, 0));
    assert_color(
        pixel_at(image, cold),
        srgb8(viridis(0.0)),
        "cold neuron (bottom of the colormap)",
    );
    assert_color(image.pixel(3, 3), srgb8(BACKGROUND_SRGB), "background (clear color)");
    // Between tiles 0 and 1 there is a gap: background too.
    let gap = project((tile_center(block, 0) + tile_center(block, 1)) / 2.0);
    assert_color(pixel_at(image, gap), srgb8(BACKGROUND_SRGB), "gap between tiles");
}

#[test]
fn grid_and_linear_layouts_put_tile_k_where_they_say() {
    let model = tiny_model();
    // One camera for both layouts, so positions compare.
    let camera = front_camera(conv_block(&scene::layout(&model, LayoutKind::Grid)), 0.3);
    let tile3 = |kind| {
        let placements = scene::layout(&model, kind);
        let block = conv_block(&placements);
        let at = |k| camera.project(tile_center(block, k), 400, 400).expect("in front");
        (at(3), at(1))
    };
    let ((grid3, grid1), (linear3, linear1)) = (tile3(LayoutKind::Grid), tile3(LayoutKind::Linear));
    // 2×2 grid: tile 3 below tile 1; linear: tile 3 right of tile 1, on its row.
    assert!(
        (grid3.x - grid1.x).abs() < 1.0 && grid3.y > grid1.y + 10.0,
        "grid: {grid3} {grid1}"
    );
    assert!(
        (linear3.y - linear1.y).abs() < 1.0 && linear3.x > linear1.x + 10.0,
        "linear: {linear3} {linear1}"
    );

    let hot = srgb8(viridis(1.0));
    for (kind, here, other) in [(LayoutKind::Grid, grid3, linear3), (LayoutKind::Linear, linear3, grid3)] {
        let Some((_, images)) = render_tiny(kind, (400, 400), |_| vec![camera]) else {
            return;
        };
        // Channel 3 is hot everywhere: the renderer drew it where this layout says, not where
        // the other one would have.
        assert_color(pixel_at(&images[0], here), hot, &format!("{kind:?}: tile 3"));
        let there = pixel_at(&images[0], other);
        assert!(
            there[..3] != hot,
            "{kind:?}: tile 3 also at the other layout's place {other}"
        );
    }
}

#[test]
fn signed_layers_use_the_diverging_colormap() {
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    let model = tiny_model();
    let placements = scene::layout(&model, LayoutKind::Grid);
    let mut acts = tiny_activations();
    acts.layers[0][0] = -2.0; // channel 0, cell (0, 0): the most negative value; max |v| = 2
    let block = conv_block(&placements);
    let camera = front_camera(block, 0.3);
    r.set_network(&NetworkDraw::new(&model, &acts, &placements))
        .expect("upload");
    let image = &r.render_offscreen(300, 300, &[camera]).expect("render")[0];
    let at = |c, y, x| camera.project(cell_center(block, c, y, x), 300, 300).expect("in front");
    assert_color(pixel_at(image, at(0, 0, 0)), srgb8(diverging(-1.0)), "most negative");
    assert_color(pixel_at(image, at(3, 1, 1)), srgb8(diverging(0.5)), "1 of max 2");
    assert_color(pixel_at(image, at(2, 1, 1)), srgb8(diverging(0.0)), "zero");
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}

#[test]
fn stereo_halves_differ_by_the_expected_parallax() {
    const IPD: f32 = 0.064;
    const DISTANCE: f32 = 0.5;
    let (w, h) = (320u32, 240u32);
    let cams = |p: &[LayerPlacement]| front_camera(conv_block(p), DISTANCE).stereo(IPD).to_vec();
    let Some((placements, images)) = render_tiny(LayoutKind::Grid, (w, h), cams) else {
        return;
    };
    assert_eq!(images.len(), 2);
    let block = conv_block(&placements);
    let eyes = cams(&placements);

    // Parallax of a point at depth d: focal length in pixels × ipd / d.
    let focal = h as f32 / 2.0 / (eyes[0].fov_y / 2.0).tan();
    let expected = focal * IPD / DISTANCE;
    let center = tile_center(block, 3);
    let projected: Vec<Vec2> = eyes
        .iter()
        .map(|e| e.project(center, w, h).expect("in front"))
        .collect();
    assert!(
        (projected[0].x - projected[1].x - expected).abs() < 0.01,
        "{projected:?} vs {expected}"
    );

    // Measure it: the horizontal middle of the hot tile 3 on its center row, in each eye.
    let hot = srgb8(viridis(1.0));
    let middle = |image: &RgbaImage| {
        let y = projected[0].y as u32;
        let xs: Vec<u32> = (0..w)
            .filter(|&x| {
                image.pixel(x, y)[..3]
                    .iter()
                    .zip(hot)
                    .all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() <= 3)
            })
            .collect();
        assert!(!xs.is_empty(), "hot tile not found on row {y}");
        (xs[0] + xs[xs.len() - 1] + 1) as f32 / 2.0
    };
    let (left, right) = (middle(&images[0]), middle(&images[1]));
    assert!(
        (left - projected[0].x).abs() <= 1.0 && (right - projected[1].x).abs() <= 1.0,
        "{left}, {right} vs {projected:?}"
    );
    assert!(
        (left - right - expected).abs() <= 1.5,
        "measured parallax {} px, expected {expected:.2}",
        left - right
    );

    // Each eye is exactly a mono render from that eye (every instance in its own eye's layer).
    assert_eq!(images.len(), 2, "one image per eye");
    for (eye, image) in images.iter().enumerate() {
        let mono = |p: &[LayerPlacement]| vec![cams(p)[eye]];
        let Some((_, mono_images)) = render_tiny(LayoutKind::Grid, (w, h), mono) else {
            return;
        };
        let differing: Vec<(u32, u32)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| mono_images[0].pixel(x, y) != image.pixel(x, y))
            .collect();
        assert!(
            differing.is_empty(),
            "mono render differs from the stereo eye {eye} at {} pixels, e.g. {:?}: {:?} vs {:?}",
            differing.len(),
            differing.first(),
            differing.first().map(|&(x, y)| mono_images[0].pixel(x, y)),
            differing.first().map(|&(x, y)| image.pixel(x, y)),
        );
    }
}

#[test]
fn stereo_draws_every_instance_in_its_own_eye() {
    use netwalk::gfx::{CubeInstance, DrawList};
    let Some(mut r) = renderer() else { return };
    let camera = Camera::look_at(Vec3::new(0.0, 1.4, 0.0), Vec3::new(0.0, 1.4, -1.0));
    let eyes = camera.stereo(0.064);
    let (w, h) = (200, 150);
    r.set_values(&[0.5]).expect("values");
    let cube = |x: f32| CubeInstance {
        center_size: [x, 1.4, -0.7, 0.1],
        value: 0,
        colormap: 0,
        scale: 1.0,
        _pad: 0,
    };
    // One cube, then three (lavapipe once drew the right eye's instances into the left layer).
    for n in [1usize, 3] {
        let list = DrawList {
            cubes: (0..n)
                .map(|i| cube(0.2 * i as f32 - 0.2 * (n as f32 - 1.0) / 2.0))
                .collect(),
            ..DrawList::default()
        };
        r.set_draw_list(&list).expect("cubes");
        let stereo = r.render_offscreen(w, h, &eyes).expect("render");
        for (eye, cam) in eyes.iter().enumerate() {
            let mono = r.render_offscreen(w, h, &[*cam]).expect("render").remove(0);
            assert!(
                mono.pixels == stereo[eye].pixels,
                "{n} cube(s): eye {eye} differs from a mono render from it"
            );
            for c in &list.cubes {
                let at = cam
                    .project(Vec3::from_slice(&c.center_size[..3]), w, h)
                    .expect("in front");
                let p = stereo[eye].pixel(at.x as u32, at.y as u32);
                assert!(
                    p[..3] != srgb8(BACKGROUND_SRGB)[..],
                    "{n} cube(s): eye {eye} has no cube at {at}"
                );
            }
        }
    }
    let log = r.validation_log();
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}

#[test]
fn vector_layers_are_cubes_in_their_colors() {
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    let json = r#"{"format": "netwalk-model/1", "name": "vec", "weights": "w.safetensors",
        "input": {"name": "x", "shape": [3]}, "layers": [{"name": "fc", "op": "dense", "out_features": 4}]}"#;
    let model = Model::parse(json, Path::new("/nonexistent/model.json")).expect("valid model");
    assert_eq!(model.layers[0].shape, Shape::Flat(4));
    let acts = Activations {
        input: vec![0.0; 3],
        layers: vec![vec![0.0, 4.0, 1.0, 0.0]],
    };
    let placements = scene::layout(&model, LayoutKind::Grid);
    let block = placements.iter().find(|p| p.name == "fc").expect("fc block");
    let camera = Camera::look_at(block.center + Vec3::new(0.0, 0.0, 0.4), block.center);
    r.set_network(&NetworkDraw::new(&model, &acts, &placements))
        .expect("upload");
    let image = &r.render_offscreen(256, 256, &[camera]).expect("render")[0];
    // The front (+Z) face of each cube is unshaded: exactly the colormap color.
    let at = |i: usize| {
        camera
            .project(
                block.neurons[i].center + Vec3::Z * block.neurons[i].size / 2.0,
                256,
                256,
            )
            .expect("in front")
    };
    assert_color(pixel_at(image, at(1)), srgb8(viridis(1.0)), "neuron 1 (max)");
    assert_color(pixel_at(image, at(2)), srgb8(viridis(0.25)), "neuron 2 (a quarter)");
    assert_color(pixel_at(image, at(0)), srgb8(viridis(0.0)), "neuron 0 (zero)");
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}

#[test]
fn labels_read_left_to_right_from_behind_too() {
    use netwalk::gfx::text::{Align, Atlas};
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    // "L7", centred on the origin, facing +Z, white; seen from in front (+Z) and from behind (−Z),
    // each camera 0.5 m away looking at it: the same picture (an unmirrored label), where without
    // the mirroring the one from behind would be its mirror image.
    let list = netwalk::gfx::DrawList {
        glyphs: Atlas::get().layout("L7", glam::Mat4::IDENTITY, 0.2, Align::Center, [1.0, 1.0, 1.0, 1.0]),
        ..Default::default()
    };
    r.set_draw_list(&list).expect("upload");
    let (w, h) = (128u32, 96u32);
    let mid = Vec3::new(0.0, 0.1, 0.0);
    let front = &r
        .render_offscreen(w, h, &[Camera::look_at(mid + Vec3::Z * 0.5, mid)])
        .expect("render")[0];
    let back = &r
        .render_offscreen(w, h, &[Camera::look_at(mid - Vec3::Z * 0.5, mid)])
        .expect("render")[0];
    let lit = |img: &RgbaImage, x: u32, y: u32| img.pixel(x, y)[0] > 128;
    let (mut same, mut mirrored, mut ink) = (0, 0, 0);
    for y in 0..h {
        for x in 0..w {
            ink += usize::from(lit(front, x, y));
            same += usize::from(lit(front, x, y) == lit(back, x, y));
            mirrored += usize::from(lit(front, x, y) == lit(back, w - 1 - x, y));
        }
    }
    let all = (w * h) as usize;
    assert!(ink > 200, "the label is drawn ({ink} lit pixels)");
    // Edge pixels may round differently; the letters themselves agree.
    assert!(
        all - same < ink / 10,
        "{} of {ink} lit pixels differ from behind",
        all - same
    );
    assert!(all - mirrored > ink / 4, "the view from behind is not a mirror image");
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}

#[test]
fn labels_bars_and_floor_are_drawn() {
    use netwalk::view::annotate::{BAR_COLOR, BAR_LENGTH, LABEL_COLOR, PLAY_AREA_COLOR, PREDICTED_COLOR};
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    let json = r#"{"format": "netwalk-model/1", "name": "vec", "weights": "w.safetensors",
        "input": {"name": "x", "shape": [3]}, "classes": ["cat", "dog", "owl"],
        "layers": [{"name": "fc", "op": "dense", "out_features": 3}]}"#;
    let model = Model::parse(json, Path::new("/nonexistent/model.json")).expect("valid model");
    let acts = Activations {
        input: vec![0.0; 3],
        layers: vec![vec![0.1, 0.7, 0.2]],
    };
    let placements = scene::layout(&model, LayoutKind::Grid);
    let block = placements.iter().find(|p| p.name == "fc").expect("fc block");
    r.set_network(&NetworkDraw::new(&model, &acts, &placements))
        .expect("upload");
    let (w, h) = (512u32, 512u32);
    let camera = Camera::look_at(block.center + Vec3::new(0.1, 0.0, 0.6), block.center + Vec3::X * 0.1);
    let image = &r.render_offscreen(w, h, &[camera]).expect("render")[0];

    // Each output's bar starts right of its cube and is value × BAR_LENGTH long.
    let bar_center = |i: usize, value: f32| {
        let n = &block.neurons[i];
        let at = n.center + Vec3::X * (n.size * 0.75 + value * BAR_LENGTH / 2.0);
        camera.project(at, w, h).expect("in front")
    };
    assert_color(
        pixel_at(image, bar_center(1, 0.7)),
        srgb8(PREDICTED_COLOR),
        "predicted class bar",
    );
    assert_color(pixel_at(image, bar_center(0, 0.1)), srgb8(BAR_COLOR), "other class bar");
    // Past the end of bar 0 (0.1) but within bar 1's length: background.
    let past = camera
        .project(
            block.neurons[0].center + Vec3::X * (block.neurons[0].size * 0.75 + 0.15),
            w,
            h,
        )
        .expect("in front");
    assert_color(pixel_at(image, past), srgb8(BACKGROUND_SRGB), "beyond the short bar");

    // The block's name stands centered above it: near-white glyph pixels there, none below.
    let bright = |lo: Vec2, hi: Vec2| {
        let mut n = 0;
        for y in lo.y.max(0.0) as u32..hi.y.min(h as f32) as u32 {
            for x in lo.x.max(0.0) as u32..hi.x.min(w as f32) as u32 {
                let p = image.pixel(x, y);
                n += usize::from(p[..3].iter().zip(srgb8(LABEL_COLOR)).all(|(a, b)| a.abs_diff(b) <= 12));
            }
        }
        n
    };
    let top = block.center + Vec3::Y * (block.size.y / 2.0);
    let name_lo = camera
        .project(top + Vec3::new(-0.05, 0.09, 0.0), w, h)
        .expect("in front");
    let name_hi = camera
        .project(top + Vec3::new(0.05, 0.02, 0.0), w, h)
        .expect("in front");
    assert!(bright(name_lo, name_hi) > 20, "no label above the block");
    let below_lo = camera
        .project(block.center + Vec3::new(-0.05, -block.size.y / 2.0 - 0.02, 0.0), w, h)
        .unwrap();
    let below_hi = camera
        .project(block.center + Vec3::new(0.05, -block.size.y / 2.0 - 0.09, 0.0), w, h)
        .unwrap();
    assert_eq!(bright(below_lo, below_hi), 0, "label pixels below the block");

    // The play area's right edge (x = 1.5 m) on the floor, seen from above.
    let camera = Camera::look_at(Vec3::new(1.5, 1.0, 0.5), Vec3::new(1.5, 0.0, 0.0));
    let image = &r.render_offscreen(w, h, &[camera]).expect("render")[0];
    let edge = camera.project(Vec3::new(1.5, 0.002, 0.0), w, h).expect("in front");
    assert_color(pixel_at(image, edge), srgb8(PLAY_AREA_COLOR), "play-area outline");
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}

#[test]
fn close_up_neurons_are_voxels_standing_on_their_tile() {
    use netwalk::view::lod::{VOXEL_BUDGET, VOXEL_FILL, voxels};
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    let model = tiny_model();
    let placements = scene::layout(&model, LayoutKind::Grid);
    let block = conv_block(&placements);
    let draw = NetworkDraw::activations_only(&model, &tiny_activations(), &placements);
    // Tile 3 is hot everywhere. Look along its surface from the +X side, just above it: a flat
    // tile is edge-on (invisible) there; its voxels stand up out of the plane.
    let edge = 0.01 * VOXEL_FILL;
    let cell = cell_center(block, 3, 1, 3);
    let target = cell + Vec3::Z * (edge / 2.0);
    let camera = Camera::look_at(target + Vec3::new(0.3, 0.0, 0.0), target);
    let (w, h) = (200u32, 200u32);
    let at = camera.project(target, w, h).expect("in front");

    r.set_network(&draw).expect("upload");
    let flat = &r.render_offscreen(w, h, &[camera]).expect("render")[0];
    assert_color(
        pixel_at(flat, at),
        srgb8(BACKGROUND_SRGB),
        "no voxels: the tile is edge-on",
    );

    let mut list = draw.list.clone();
    list.cubes
        .extend(voxels(&placements, &draw.styles, camera.eye, VOXEL_BUDGET));
    r.set_draw_list(&list).expect("upload");
    let image = &r.render_offscreen(w, h, &[camera]).expect("render")[0];
    // The voxel's +X face: the colormap's color times that face's shade (0.8, in linear light).
    let shaded = viridis(1.0).map(|c| {
        let linear = if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        } * 0.8;
        if linear <= 0.0031308 {
            linear * 12.92
        } else {
            1.055 * linear.powf(1.0 / 2.4) - 0.055
        }
    });
    assert_color(pixel_at(image, at), srgb8(shaded), "the hot voxel's side");
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}

#[test]
fn render_rejects_bad_requests() {
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    let cam = Camera::look_at(Vec3::ZERO, Vec3::NEG_Z);
    assert!(matches!(r.render_offscreen(0, 10, &[cam]), Err(GfxError::Invalid(_))));
    assert!(matches!(
        r.render_offscreen(10, 10, &[cam; 3]),
        Err(GfxError::Invalid(_))
    ));
    assert!(matches!(r.render_offscreen(10, 10, &[]), Err(GfxError::Invalid(_))));
    // An empty scene renders as background only.
    let image = &r.render_offscreen(8, 8, &[cam]).expect("render")[0];
    assert!(image.pixels.chunks(4).all(|p| p[..3] == srgb8(BACKGROUND_SRGB)));
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}

#[test]
fn snapshot_command_writes_the_network_to_a_png() {
    if renderer().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
            .arg("snapshot")
            .args(args)
            .env("NETWALK_VALIDATION", "1")
            .output()
            .expect("run netwalk");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "netwalk snapshot {args:?} failed: {stderr}");
        assert!(!stderr.contains("vulkan"), "validation output: {stderr}");
    };
    let out = dir.path().join("net.png");
    let out_str = out.to_str().expect("utf-8 path");
    run(&["--out", out_str, "--size", "320x200", "--sample", "1"]);
    let image = decode_png(&out);
    assert_eq!((image.width, image.height), (320, 200));

    // The default camera frames the demo network: the input picture and the first conv block
    // cover their projected centers (whatever the values, no tile has the background color).
    // The room-scale scene `snapshot` (and `run`) shows for sample 1.
    let app = demo_app(1, scene::Stage::default());
    let placements = app.placements();
    let camera = app.overview(320.0 / 200.0);
    let background = srgb8(BACKGROUND_SRGB);
    for block in &placements[..2] {
        let at = camera.project(block.center, 320, 200).expect("in front");
        assert!(
            at.x >= 0.0 && at.x < 320.0 && at.y >= 0.0 && at.y < 200.0,
            "{} at {at}",
            block.name
        );
        // The input digit may be black at its very center: look for any non-background pixel near it.
        let seen = (-2i32..=2)
            .flat_map(|dy| (-2i32..=2).map(move |dx| (dx, dy)))
            .any(|(dx, dy)| {
                let p = image.pixel((at.x as i32 + dx) as u32, (at.y as i32 + dy) as u32);
                p[..3]
                    .iter()
                    .zip(background)
                    .any(|(a, b)| (i16::from(*a) - i16::from(b)).abs() > 3)
            });
        assert!(seen, "block {} not visible at {at}", block.name);
    }
    let share = image.pixels.chunks(4).filter(|p| p[..3] != background).count() as f64 / (320.0 * 200.0);
    assert!(
        share > 0.02,
        "only {:.1}% of the pixels show the network",
        share * 100.0
    );

    // Stereo: both eyes side by side from one pass; an explicit camera.
    let stereo = dir.path().join("stereo.png");
    run(&[
        "--out",
        stereo.to_str().expect("utf-8"),
        "--size",
        "160x120",
        "--stereo",
        "--eye",
        "0,1.4,0",
        "--look",
        "0,1.4,-3",
    ]);
    let image = decode_png(&stereo);
    assert_eq!((image.width, image.height), (320, 120));
    assert!(image.pixels != vec![0; image.pixels.len()]);
}

#[test]
fn snapshot_views_frame_one_block() {
    use netwalk::view::annotate::{BAR_LENGTH, PREDICTED_COLOR, named_view};
    if renderer().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.png");
    let snapshot = |view: &str| {
        Command::new(env!("CARGO_BIN_EXE_netwalk"))
            .args([
                "snapshot", "--size", "400x300", "--sample", "1", "--view", view, "--out",
            ])
            .arg(&out)
            .env("NETWALK_VALIDATION", "1")
            .output()
            .expect("run netwalk")
    };
    let o = snapshot("output");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let image = decode_png(&out);

    // The predicted class's bar, where the output view's camera puts it.
    let model = Model::load(&netwalk::nn::demo::demo_dir().expect("demo")).expect("demo model");
    let placements = scene::layout(&model, LayoutKind::Grid);
    let camera = named_view(&placements, "output", 400.0 / 300.0).expect("output view");
    let weights = netwalk::nn::Weights::load(&model).expect("demo weights");
    let samples_path = model.samples.clone().expect("demo samples");
    let samples = netwalk::nn::Samples::load(&model, &samples_path).expect("demo samples");
    let acts = netwalk::nn::forward(&model, &weights, samples.image(1)).expect("forward");
    let probs = acts.layers.last().expect("layers");
    let (best, p) = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("10 classes");
    let out_block = placements.last().expect("blocks");
    let n = &out_block.neurons[best];
    let bar = n.center + Vec3::X * (n.size * 0.75 + p * BAR_LENGTH / 2.0);
    let at = camera.project(bar, 400, 300).expect("in front");
    assert_color(
        pixel_at(&image, at),
        srgb8(PREDICTED_COLOR),
        "the predicted class's bar",
    );

    let o = snapshot("no-such-layer");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr.contains("no-such-layer") && stderr.contains("conv1+relu1"),
        "{stderr}"
    );
}

#[test]
fn bench_render_reports_gpu_and_cpu_times_with_constant_draw_calls() {
    if renderer().is_none() {
        return;
    }
    let bench = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
            .args(["bench", "render", "--frames", "2", "--size", "64x48"])
            .args(args)
            .env("NETWALK_VALIDATION", "1")
            .output()
            .expect("run netwalk");
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        stdout
    };
    let calls = |out: &str| -> (usize, usize) {
        let num_before = |what: &str| {
            let end = out.find(what).unwrap_or_else(|| panic!("no `{what}` in {out}"));
            let start = out[..end].trim_end().rfind(' ').map_or(0, |i| i + 1);
            out[start..end]
                .trim()
                .parse::<usize>()
                .unwrap_or_else(|e| panic!("{what}: {e} in {out}"))
        };
        (num_before(" tiles"), num_before(" draw calls"))
    };
    let demo = bench(&["--stereo"]);
    for needle in [
        "2 eyes × 64x48",
        "scene  GPU median",
        "empty  GPU median",
        "CPU record median",
        "scene / empty GPU median",
    ] {
        assert!(demo.contains(needle), "`{needle}` missing from {demo}");
    }
    let big = bench(&["--synthetic", "resnet18"]);
    let ((demo_tiles, demo_calls), (big_tiles, big_calls)) = (calls(&demo), calls(&big));
    assert!(big_tiles > 20 * demo_tiles, "{demo_tiles} vs {big_tiles} tiles");
    assert_eq!(demo_calls, 4);
    assert_eq!(big_calls, demo_calls, "draw calls grew with the feature maps");
}

#[test]
fn bench_train_reports_three_runs_and_the_checkpoints_that_arrived() {
    if renderer().is_none() {
        return;
    }
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args([
            "bench",
            "train",
            "--seconds",
            "0.5",
            "--rounds",
            "1",
            "--size",
            "64x48",
            "--every",
            "1",
        ])
        .env("NETWALK_VALIDATION", "1")
        .output()
        .expect("run netwalk");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("netwalk bench train: demo, 64x48 on "), "{out}");
    for (line, what) in lines[1..].iter().zip([
        "not training",
        "training, rerun on the worker",
        "training, rerun in the frame",
    ]) {
        assert!(
            line.trim_start().starts_with(what) && line.contains("median") && line.contains("p99"),
            "{out}"
        );
    }
    for line in &lines[2..] {
        let n = line
            .split("; ")
            .nth(1)
            .and_then(|t| t.strip_suffix(" checkpoints arrived)"));
        assert!(
            n.is_some_and(|n| n.parse::<usize>().is_ok()),
            "no checkpoint count: {line}"
        );
    }
    // Bad arguments: one line, no panic.
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(["bench", "train", "--every", "0"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--every"));
}

#[test]
fn snapshot_script_shows_the_selection_and_its_inspect_panel() {
    use netwalk::view::overlay::PANEL_COLOR;
    if renderer().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // Aim at the first conv block's center from in front of it, and pull the trigger.
    let mut app = demo_app(0, scene::Stage::default());
    let conv = app.placements()[1].clone();
    let normal = netwalk::view::annotate::block_frame(&conv).z_axis.truncate();
    let origin = conv.center + normal * 0.6;
    let script = dir.path().join("select.json");
    let text = format!(
        r#"{{"events": [{{"t": 0.0, "hand": "right", "aim": {{"origin": [{}, {}, {}], "target": [{}, {}, {}]}}}},
            {{"t": 0.1, "hand": "right", "select": true}}, {{"t": 0.2, "hand": "right", "select": false}}]}}"#,
        origin.x, origin.y, origin.z, conv.center.x, conv.center.y, conv.center.z
    );
    std::fs::write(&script, &text).expect("write script");
    // Where the panel stands after the script, by the app's own systems.
    let parsed = netwalk::input::Script::parse(&text, &script).expect("script");
    for frame in parsed.frames(90.0) {
        app.step(&frame).expect("step");
    }
    let sd = app.scene_draw();
    let panel = sd.panel.as_ref().expect("a neuron is selected");
    assert_eq!(panel.panel.neuron.block, 1);
    // Look at the panel's empty lower right from its front.
    let spot = panel.stage_from_panel.transform_point3(Vec3::new(0.13, -0.11, 0.0));
    let front = panel.stage_from_panel.transform_vector3(Vec3::Z).normalize();
    let eye = spot + front * 0.5;
    let out = dir.path().join("selected.png");
    let arg = |v: Vec3| format!("{},{},{}", v.x, v.y, v.z);
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(["snapshot", "--size", "200x200", "--script"])
        .arg(&script)
        .args(["--eye", &arg(eye), "--look", &arg(spot), "--out"])
        .arg(&out)
        .env("NETWALK_VALIDATION", "1")
        .output()
        .expect("run netwalk");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let image = decode_png(&out);
    assert_color(image.pixel(100, 100), srgb8(PANEL_COLOR), "the inspect panel");
    // A bad script fails before rendering and writes nothing.
    std::fs::write(&script, "{\"events\": [{\"t\": -1}]}").expect("write");
    let bad = dir.path().join("bad.png");
    let o = Command::new(env!("CARGO_BIN_EXE_netwalk"))
        .args(["snapshot", "--script"])
        .arg(&script)
        .arg("--out")
        .arg(&bad)
        .output()
        .expect("run netwalk");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("select.json"));
    assert!(!bad.exists());
}

#[test]
fn shaders_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    if Command::new("glslc").arg("--version").output().is_err() {
        assert!(
            !in_ci(),
            "glslc is needed under CI to check shaders/*.spv (Debian: glslc)"
        );
        eprintln!("SKIPPED: glslc not found; cannot check that shaders/*.spv match the GLSL");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let status = Command::new("bash")
        .arg(root.join("compile.sh"))
        .arg(dir.path())
        .status()
        .expect("run shaders/compile.sh");
    assert!(status.success(), "shaders/compile.sh failed");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let fresh = entry.expect("entry").path();
        let name = fresh.file_name().expect("name");
        let committed = std::fs::read(root.join(name)).unwrap_or_default();
        assert!(
            std::fs::read(&fresh).expect("read") == committed,
            "shaders/{} is stale: run shaders/compile.sh and commit the .spv",
            name.to_string_lossy()
        );
        checked += 1;
    }
    let sources = std::fs::read_dir(&root)
        .expect("list shaders")
        .filter(|e| {
            let p = e.as_ref().expect("entry").path();
            matches!(p.extension().and_then(|x| x.to_str()), Some("vert" | "frag" | "comp"))
        })
        .count();
    assert!(sources >= 8, "shaders/ lost its sources ({sources})");
    assert_eq!(checked, sources, "one compiled shader per source");
}

/// Frame `k` of the frames-in-flight test: the tiny network with its hot neuron at cell `k % 16`
/// of channel 1 (new values), only its first `k % 4 + 1` tiles (new instances, new counts), and an
/// overlay line whose height and colour follow `k`.
fn frame_k(
    renderer: &mut Renderer,
    model: &Model,
    placements: &[LayerPlacement],
    k: usize,
) -> netwalk::gfx::Result<()> {
    let mut acts = tiny_activations();
    acts.layers[0][16..32].fill(0.0);
    acts.layers[0][16 + k % 16] = 1.0;
    let mut draw = NetworkDraw::activations_only(model, &acts, placements);
    draw.list.tiles.truncate(k % 4 + 1);
    renderer.set_network(&draw)?;
    let block = conv_block(placements);
    let y = block.center.y + 0.02 * (k % 5) as f32 - 0.04;
    let colour = [(k % 3) as f32 / 2.0, 1.0 - (k % 2) as f32, 0.5];
    let mut overlay = netwalk::gfx::DrawList::default();
    overlay.lines.push(netwalk::gfx::LineInstance::new(
        Vec3::new(block.center.x - 0.2, y, block.center.z + 0.01),
        Vec3::new(block.center.x + 0.2, y, block.center.z + 0.01),
        0.01,
        colour,
    ));
    renderer.set_overlay(&overlay)
}

#[test]
fn frames_in_flight_draw_their_own_lists() {
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    let model = tiny_model();
    let placements = scene::layout(&model, LayoutKind::Grid);
    let camera = front_camera(conv_block(&placements), 0.3);
    for stereo in [false, true] {
        let views = if stereo {
            camera.stereo(0.064).to_vec()
        } else {
            vec![camera]
        };
        let mut k = 0;
        // Runs of every length up to 5, each frame different from the frames before it, so the
        // last frame shows whether its slot drew its own lists (the frames of one and two before
        // ran in other slot states).
        for frames in 1..=5 {
            let first = k;
            let images = r
                .render_offscreen_in_flight(96, 64, &views, frames, &mut |r, i| {
                    frame_k(r, &model, &placements, first + i)
                })
                .expect("render in flight");
            k += frames;
            let want = r.render_offscreen(96, 64, &views).expect("render");
            assert!(
                images == want,
                "the last of {frames} frames in flight (stereo: {stereo}) differs from the same lists rendered alone"
            );
            // And from the frame before it, so that a frame drawing its predecessor's lists fails.
            if frames > 1 {
                frame_k(&mut r, &model, &placements, k - 2).expect("upload");
                let before = r.render_offscreen(96, 64, &views).expect("render");
                assert!(images != before, "frames {} and {} look alike", k - 2, k - 1);
                frame_k(&mut r, &model, &placements, k - 1).expect("upload");
            }
        }
    }
    assert_eq!(r.frames_in_flight(), netwalk::gfx::FRAMES_IN_FLIGHT);
    assert_eq!(r.validation_messages(), Vec::<String>::new());
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new(), "validation messages at teardown");
}

#[test]
fn frames_in_flight_are_timed_with_one_and_two_slots() {
    let Some(mut r) = renderer() else { return };
    let log = r.validation_log();
    let model = tiny_model();
    let placements = scene::layout(&model, LayoutKind::Grid);
    let camera = front_camera(conv_block(&placements), 0.3);
    for in_flight in [1, 2] {
        let times = r
            .time_frames_in_flight(64, 64, &[camera], 4, in_flight, &mut |r, i| {
                frame_k(r, &model, &placements, i)
            })
            .expect("timed frames");
        assert_eq!(times.len(), 4);
        assert!(times.iter().all(|t| t.wall >= t.record && t.wall >= t.wait));
    }
    assert!(
        r.time_frames_in_flight(64, 64, &[camera], 1, 3, &mut |_, _| Ok(()))
            .is_err()
    );
    assert_eq!(r.frames_in_flight(), netwalk::gfx::FRAMES_IN_FLIGHT);
    drop(r);
    assert_eq!(log.messages(), Vec::<String>::new());
}
