//! The bundled edges' pixels on a real device (lavapipe on CI) with validation on: the drawn
//! edges' colors where the projection says (mono, stereo), the level of detail (fewer segments per
//! edge past a vertex budget, the same ends and points), and the low-resolution edge pass (each
//! edge's light where its projection says, at every scale, occlusion by the scene).
//!
//! Without a Vulkan device the tests fail under CI and print a skip note elsewhere.

mod bundle_support;
mod common;

use bundle_support::{curves_at, finish, renderer, two_bundles};
use common::srgb8;
use glam::{Vec2, Vec3};
use netwalk::gfx::bundle::{self, BundleStyle, SEGMENTS};
use netwalk::gfx::{BACKGROUND_SRGB, Camera, Renderer, RgbaImage};
use netwalk::scene::edges::{EdgeLayer, PlacedEdge, SceneEdges};

fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(c: f32) -> f32 {
    if c <= 0.0031308 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

/// The background with `color` (sRGB) added at full opacity in linear light, as the additive
/// blend writes it into the sRGB target.
fn added(color: [f32; 3]) -> [u8; 3] {
    let mut out = [0.0; 3];
    for i in 0..3 {
        out[i] = linear_to_srgb((srgb_to_linear(BACKGROUND_SRGB[i]) + srgb_to_linear(color[i])).min(1.0));
    }
    srgb8(out)
}

#[track_caller]
fn assert_color(image: &RgbaImage, at: Vec2, want: [u8; 3], what: &str) {
    let got = image.pixel(at.x as u32, at.y as u32);
    let close = got[..3]
        .iter()
        .zip(want)
        .all(|(g, w)| (i16::from(*g) - i16::from(w)).abs() <= 3);
    assert!(close, "{what}: pixel at {at} is {got:?}, expected {want:?}");
}

/// Two upright edges 0.2 m apart, 0.6 m long, facing a camera 1 m in front of them: the left one
/// positive, the right one negative, both the layer's strongest (|value| 1).
fn two_edges() -> SceneEdges {
    let mut e = SceneEdges::default();
    for (k, (x, v)) in [(-0.1, 1.0), (0.1, -1.0)].into_iter().enumerate() {
        e.edges.push(PlacedEdge {
            a: Vec3::new(x, 1.1, -1.0),
            b: Vec3::new(x, 1.7, -1.0),
            group: 0,
            source: k as u32,
            target: k as u32,
        });
        e.values.push(v);
    }
    e.layers.push(EdgeLayer {
        layer: 0,
        name: "pair".into(),
        source_block: 0,
        target_block: 1,
        aggregated: false,
        total: 2,
        kept: 0..2,
    });
    e
}

#[test]
fn drawn_edges_have_their_colors_where_the_projection_says_mono_and_stereo() {
    let Some(mut r) = renderer() else { return };
    let e = two_edges();
    r.set_edges(&e).expect("upload");
    let style = BundleStyle {
        width: 0.02,
        ..BundleStyle::default()
    };
    let camera = Camera::look_at(Vec3::new(0.0, 1.4, 0.0), Vec3::new(0.0, 1.4, -1.0));
    let (w, h) = (400, 300);
    let quarter_and_middle = [SEGMENTS as usize / 4, SEGMENTS as usize / 2];
    let between = Vec3::new(0.0, 1.4, -1.0);
    for strength in [0.0, 1.0] {
        r.set_bundle_style(&BundleStyle { strength, ..style }).expect("style");
        // Where the curves are at this strength (the GPU's own points).
        let curves = r.bundle_curves().expect("curves");
        // Mono, then both eyes in one multiview pass: each eye where its own projection says.
        for views in [vec![camera], camera.stereo(0.064).to_vec()] {
            let images = r.render_offscreen(w, h, &views).expect("render");
            for (eye, (image, cam)) in images.iter().zip(&views).enumerate() {
                let what = |p: &str| format!("strength {strength}, eye {eye} of {}: {p}", views.len());
                for (curve, color) in curves.iter().zip([style.positive, style.negative]) {
                    for k in quarter_and_middle {
                        let at = cam.project(curve[k], w, h).expect("in front");
                        assert_color(image, at, added(color), &what(&format!("point {k}")));
                    }
                }
                // Between the two edges (0.2 m apart, 2 cm wide): nothing.
                let at = cam.project(between, w, h).expect("in front");
                assert_color(image, at, srgb8(BACKGROUND_SRGB), &what("between the edges"));
            }
        }
    }
    // The selected neuron's edge is drawn opaque over the bundle: its own color, not added.
    r.set_edge_highlight(&[1]).expect("highlight");
    let curves = r.bundle_curves().expect("curves");
    let image = &r.render_offscreen(w, h, &[camera]).expect("render")[0];
    let mid = SEGMENTS as usize / 2;
    let at = |c: &Vec<Vec3>, cam: &Camera| cam.project(c[mid], w, h).expect("in front");
    assert_color(
        image,
        at(&curves[1], &camera),
        srgb8(style.negative),
        "highlighted edge",
    );
    assert_color(image, at(&curves[0], &camera), added(style.positive), "the other edge");
    // Stereo: each eye sees the (opaque) highlighted edges where its own projection says.
    r.set_edge_highlight(&[0, 1]).expect("highlight");
    let eyes = camera.stereo(0.064);
    let images = r.render_offscreen(w, h, &eyes).expect("render");
    for (eye, (image, cam)) in images.iter().zip(&eyes).enumerate() {
        for (curve, color) in curves.iter().zip([style.positive, style.negative]) {
            assert_color(
                image,
                at(curve, cam),
                srgb8(color),
                &format!("eye {eye}: highlighted edge"),
            );
        }
        let at = cam.project(between, w, h).expect("in front");
        assert_color(
            image,
            at,
            srgb8(BACKGROUND_SRGB),
            &format!("eye {eye}: between the edges"),
        );
    }
    // A threshold above what an edge has hides it.
    r.set_edges(&SceneEdges {
        values: vec![1.0, -0.4],
        ..e.clone()
    })
    .expect("upload");
    r.set_bundle_style(&BundleStyle {
        threshold: 0.5,
        strength: 0.0,
        ..style
    })
    .expect("style");
    let image = &r.render_offscreen(w, h, &[camera]).expect("render")[0];
    let mid_of = |p: &PlacedEdge| camera.project((p.a + p.b) / 2.0, w, h).expect("in front");
    assert_color(
        image,
        mid_of(&e.edges[0]),
        added(style.positive),
        "edge over the threshold",
    );
    assert_color(
        image,
        mid_of(&e.edges[1]),
        srgb8(BACKGROUND_SRGB),
        "edge under the threshold",
    );
    finish(r);
}

#[test]
fn many_edges_draw_fewer_segments_with_the_same_ends_and_points() {
    use bundle::{VERTEX_BUDGET, drawn_segments, vertices_per_edge};
    // The rule: the most segments whose vertices (both sides of every point) fit the budget.
    assert_eq!([16, 8, 4].map(vertices_per_edge), [34, 18, 10]);
    let full = (VERTEX_BUDGET / vertices_per_edge(SEGMENTS)) as usize;
    assert_eq!(drawn_segments(full, VERTEX_BUDGET), SEGMENTS);
    assert_eq!(drawn_segments(full + 1, VERTEX_BUDGET), SEGMENTS / 2);
    // The benchmark's 784-81-49-10 MLP (67,963 edges) and 1024-1024-10 (1.06M): 8, then the floor.
    assert_eq!(drawn_segments(67_963, VERTEX_BUDGET), 8);
    assert_eq!(drawn_segments(1_059_840, VERTEX_BUDGET), 4);
    assert_eq!(drawn_segments(usize::MAX, VERTEX_BUDGET), 4);
    // Walked by the low-resolution edge pass: segments within its budget and the storage
    // buffers (the drawn points), 16 for the 784-81-49-10 MLP, the floor for 1.06M edges.
    use bundle::{WALK_SEGMENT_BUDGET, walked_segments};
    let most = (WALK_SEGMENT_BUDGET / u64::from(SEGMENTS)) as usize;
    assert_eq!(walked_segments(67_963, u64::MAX), 16);
    assert_eq!([most, most + 1].map(|n| walked_segments(n, u64::MAX)), [16, 8]);
    assert_eq!(walked_segments(1_058_816, u64::MAX), 4);
    assert_eq!(
        walked_segments(67_963, 67_963 * 17 * 16 - 1),
        8,
        "points of 16 segments do not fit"
    );

    // On the GPU, a small budget stands in for many edges.
    let Some(mut r) = renderer() else { return };
    let e = two_bundles();
    let n = e.edges.len() as u64;
    for (budget, want) in [(n * 34, 16), (n * 34 - 1, 8), (n * 18 - 1, 4), (0, 4)] {
        r.set_bundle_vertex_budget(budget);
        r.set_edges(&e).expect("upload");
        assert_eq!(r.bundle_drawn_segments(), want, "budget {budget}");
        let step = (SEGMENTS / want) as usize;
        for strength in [1.0, 0.5] {
            let full = curves_at(&mut r, strength);
            let drawn = r.bundle_drawn_curves().expect("drawn points");
            assert_eq!(drawn.len(), e.edges.len());
            let mut moved = 0f32;
            for ((edge, f), d) in e.edges.iter().zip(&full).zip(&drawn) {
                assert_eq!(d.len(), want as usize + 1);
                assert!(d[0].distance(edge.a) < 1e-6, "source end moved");
                assert!(d[want as usize].distance(edge.b) < 1e-5, "target end moved");
                for (j, p) in d.iter().enumerate() {
                    assert!(
                        p.distance(f[j * step]) < 1e-6,
                        "drawn point {j} is not curve point {}",
                        j * step
                    );
                    moved = moved.max(p.distance(edge.a.lerp(edge.b, (j * step) as f32 / SEGMENTS as f32)));
                }
            }
            assert!(moved > 0.01, "the drawn points are bundled ({moved} m at most)");
        }
    }
    // Through the edge pass the ribbons' vertex budget does not apply: all 16 segments.
    r.set_bundle_vertex_budget(0);
    r.set_edge_scale(Some(2));
    r.set_edges(&e).expect("upload");
    assert_eq!(r.bundle_drawn_segments(), 16, "walked");
    r.set_edge_scale(None);
    // Drawn at the coarsest level: pixels where the projection says, mono and stereo.
    let e = two_edges();
    r.set_bundle_vertex_budget(0);
    r.set_edges(&e).expect("upload");
    let style = BundleStyle {
        width: 0.02,
        strength: 1.0,
        ..BundleStyle::default()
    };
    r.set_bundle_style(&style).expect("style");
    let drawn = r.bundle_drawn_curves().expect("drawn points");
    let camera = Camera::look_at(Vec3::new(0.0, 1.4, 0.0), Vec3::new(0.0, 1.4, -1.0));
    let (w, h) = (400, 300);
    for views in [vec![camera], camera.stereo(0.064).to_vec()] {
        let images = r.render_offscreen(w, h, &views).expect("render");
        for (eye, (image, cam)) in images.iter().zip(&views).enumerate() {
            for (curve, color) in drawn.iter().zip([style.positive, style.negative]) {
                for j in [1, 2] {
                    let at = cam.project(curve[j], w, h).expect("in front");
                    assert_color(
                        image,
                        at,
                        added(color),
                        &format!("eye {eye} of {}: point {j}", views.len()),
                    );
                }
            }
            let at = cam.project(Vec3::new(0.0, 1.4, -1.0), w, h).expect("in front");
            assert_color(
                image,
                at,
                srgb8(BACKGROUND_SRGB),
                &format!("eye {eye}: between the edges"),
            );
        }
    }
    finish(r);
}

/// Linear light added over `base` in columns `columns` of `image`: per channel, summed over the
/// pixels, and the light-weighted mean column (its x, pixel centres at x + 0.5).
fn light_added(image: &RgbaImage, base: &RgbaImage, columns: std::ops::Range<u32>) -> ([f64; 3], f64) {
    let mut sum = [0f64; 3];
    let mut moment = 0f64;
    for y in 0..image.height {
        for x in columns.clone() {
            let (p, b) = (image.pixel(x, y), base.pixel(x, y));
            for c in 0..3 {
                let added =
                    f64::from(srgb_to_linear(f32::from(p[c]) / 255.0) - srgb_to_linear(f32::from(b[c]) / 255.0));
                sum[c] += added;
                moment += added * (f64::from(x) + 0.5);
            }
        }
    }
    (sum, moment / sum.iter().sum::<f64>())
}

/// The linear light an opaque-`alpha` ribbon of `color` and `width` (m) from `a` to `b`, facing
/// `camera`, adds: its projected area in pixels × alpha × color.
fn ribbon_light(
    camera: &Camera,
    (w, h): (u32, u32),
    (a, b): (Vec3, Vec3),
    width: f32,
    alpha: f32,
    color: [f32; 3],
) -> [f64; 3] {
    let p = |v: Vec3| camera.project(v, w, h).expect("in front");
    let length = p(a).distance(p(b));
    let across = p(a).distance(p(a + Vec3::new(width, 0.0, 0.0)));
    color.map(|c| f64::from(length * across * alpha * srgb_to_linear(c)))
}

/// Renders `edges` (upright, each in its own half of the image) with `views` at `scale` and
/// checks each edge's light against its projected area (per channel, within `tolerance` of the
/// edge's total) and where it is centred (within a quarter of a low-resolution pixel).
#[track_caller]
fn assert_edge_light(
    r: &mut Renderer,
    edges: &SceneEdges,
    (views, bases): (&[Camera], &[RgbaImage]),
    (w, h): (u32, u32),
    (scale, width, alpha): (u32, f32, f32),
    tolerance: f64,
) {
    let style = BundleStyle::default();
    r.set_edge_scale(Some(scale));
    let images = r.render_offscreen(w, h, views).expect("render");
    for (eye, ((image, base), cam)) in images.iter().zip(bases).zip(views).enumerate() {
        let what = format!("{w}x{h}, width {width} m at 1/{scale}, eye {eye} of {}", views.len());
        let halves = [0..w / 2, w / 2..w];
        for ((edge, columns), color) in edges.edges.iter().zip(halves).zip([style.positive, style.negative]) {
            let (got, centre) = light_added(image, base, columns);
            let want = ribbon_light(cam, (w, h), (edge.a, edge.b), width, alpha, color);
            let total: f64 = want.iter().sum();
            for c in 0..3 {
                assert!(
                    (got[c] - want[c]).abs() <= tolerance * total,
                    "{what}: edge from {} adds {got:?} of linear light, expected {want:?}",
                    edge.a
                );
            }
            let x = f64::from(cam.project((edge.a + edge.b) / 2.0, w, h).expect("in front").x);
            assert!(
                (centre - x).abs() <= 0.25 * f64::from(scale),
                "{what}: edge from {}'s light is centred at x = {centre}, its line at {x}",
                edge.a
            );
        }
        // Between the edges (0.2 m apart): nothing, however blurred.
        let at = cam.project(Vec3::new(0.0, 1.4, -1.0), w, h).expect("in front");
        assert_color(image, at, srgb8(BACKGROUND_SRGB), &format!("{what}: between the edges"));
    }
}

#[test]
fn low_resolution_edges_keep_their_light_and_hide_behind_blocks() {
    use netwalk::gfx::edge_pass::MAX_SCALE;
    use netwalk::gfx::{CubeInstance, DrawList, FULL_RESOLUTION_EDGES, auto_edge_scale};
    // The default: full resolution for the edge counts of small models, lower for big ones.
    assert_eq!(auto_edge_scale(1_664), 1);
    assert_eq!(auto_edge_scale(FULL_RESOLUTION_EDGES), 1);
    assert_eq!(auto_edge_scale(67_963), 2);
    assert_eq!(auto_edge_scale(300_000), 4);
    assert_eq!(auto_edge_scale(1_058_816), 8);
    let Some(mut r) = renderer() else { return };
    let e = two_edges();
    r.set_edges(&e).expect("upload");
    assert_eq!(r.edge_scale(), 1, "two edges: full resolution");
    r.set_edge_scale(Some(99));
    assert_eq!(r.edge_scale(), MAX_SCALE);
    let camera = Camera::look_at(Vec3::new(0.0, 1.4, 0.0), Vec3::new(0.0, 1.4, -1.0));
    // The background alone, as each view sees it.
    let base = |r: &mut Renderer, views: &[Camera], (w, h): (u32, u32)| {
        r.set_edges(&SceneEdges::default()).expect("no edges");
        let images = r.render_offscreen(w, h, views).expect("render");
        r.set_edges(&e).expect("upload");
        images
    };
    // A quarter opaque: no channel of the background plus an edge clips at 1.
    let alpha = 0.25;
    let style = |width| BundleStyle {
        strength: 0.0,
        width,
        opacity: alpha,
        ..BundleStyle::default()
    };
    // Mono and both eyes; wide ribbons (about 5 pixels here: more than a low-resolution pixel at
    // 1/2 and 1/4, spread over the pixels they cover) and thin ones (a fifth of a pixel at 1/4:
    // their light split between two pixels). At full resolution only the wide ones (thin ones
    // fall between pixel centres): the check of the expectation itself, as loose as its
    // rasterization.
    let size = (400, 300);
    for views in [vec![camera], camera.stereo(0.064).to_vec()] {
        let bases = base(&mut r, &views, size);
        for (width, scales) in [(0.02, &[1, 2, 4][..]), (0.0025, &[2, 4][..])] {
            r.set_bundle_style(&style(width)).expect("style");
            for &scale in scales {
                let tolerance = if scale == 1 { 0.15 } else { 0.05 };
                assert_edge_light(&mut r, &e, (&views, &bases), size, (scale, width, alpha), tolerance);
            }
        }
    }
    // A size the scales do not divide, at 1/8.
    let odd = (401, 301);
    let bases = base(&mut r, &[camera], odd);
    r.set_bundle_style(&style(0.02)).expect("style");
    assert_edge_light(&mut r, &e, (&[camera], &bases), odd, (MAX_SCALE, 0.02, alpha), 0.05);
    // A thin left edge on the centre of the first low-resolution pixel of one of the composite's
    // tiles (16 pixels): all its light in that pixel, an eighth of which the filter spreads over
    // the tile before, which must be drawn too. The camera moved sideways to put it there.
    r.set_bundle_style(&style(0.0025)).expect("style");
    for (scale, x) in [(2, (6.0 * 16.0 + 0.5) * 2.0), (4, (3.0 * 16.0 + 0.5) * 4.0)] {
        let left = camera.project(e.edges[0].a, size.0, size.1).expect("in front").x;
        let per_cm = camera
            .project(e.edges[0].a + Vec3::X * 0.01, size.0, size.1)
            .expect("in front")
            .x
            - left;
        let shift = Vec3::X * ((left - x) / per_cm * 0.01);
        let moved = Camera::look_at(camera.eye + shift, camera.target + shift);
        let at = moved.project(e.edges[0].a, size.0, size.1).expect("in front").x;
        assert!((at - x).abs() < 0.01, "the left edge projects to {at}, not {x}");
        let bases = base(&mut r, &[moved], size);
        assert_edge_light(&mut r, &e, (&[moved], &bases), size, (scale, 0.0025, alpha), 0.05);
    }

    // A cube between the camera and the middle of the left edge hides it there at low
    // resolution too, in each eye: the pixel shows the cube as it is without edges.
    let behind = Vec3::new(-0.1, 1.35, -1.0);
    let cube_center = camera.eye + 0.7 * (behind - camera.eye);
    let list = DrawList {
        cubes: vec![CubeInstance {
            center_size: cube_center.extend(0.1).to_array(),
            value: 0,
            colormap: 0,
            scale: 1.0,
            _pad: 0,
        }],
        ..DrawList::default()
    };
    r.set_values(&[0.5]).expect("values");
    r.set_bundle_style(&BundleStyle {
        strength: 0.0,
        width: 0.02,
        ..BundleStyle::default()
    })
    .expect("style");
    r.set_edge_scale(Some(4));
    let eyes = camera.stereo(0.064);
    let (w, h) = size;
    r.set_draw_list(&list).expect("cube");
    let with_edges = r.render_offscreen(w, h, &eyes).expect("render");
    let cube_only = base(&mut r, &eyes, size);
    r.set_draw_list(&DrawList::default()).expect("no cube");
    let open = r.render_offscreen(w, h, &eyes).expect("render");
    for (eye, cam) in eyes.iter().enumerate() {
        let at = cam.project(behind, w, h).expect("in front");
        let cube = cube_only[eye].pixel(at.x as u32, at.y as u32);
        assert!(
            cube[..3] != srgb8(BACKGROUND_SRGB)[..],
            "eye {eye}: the cube is not at {at}"
        );
        assert_color(
            &with_edges[eye],
            at,
            [cube[0], cube[1], cube[2]],
            &format!("eye {eye}: the edge behind the cube"),
        );
        // (Without the cube, the same pixel is lit by the edge: the check above can fail.)
        let lit = open[eye].pixel(at.x as u32, at.y as u32);
        assert!(
            lit[..3] != srgb8(BACKGROUND_SRGB)[..],
            "eye {eye}: the edge should light {at} without the cube: {lit:?}"
        );
    }
    finish(r);
}
