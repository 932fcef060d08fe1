//! `netwalk snapshot`: the network rendered offscreen to a PNG.

use std::path::Path;

use anyhow::{Result, bail};

use super::{check_validation, save_png};
use crate::app::App;
use crate::gfx;
use crate::nn::Model;
use crate::scene;

/// Where a snapshot looks from.
pub enum View {
    Camera(gfx::Camera),
    /// overview, input, output or a layer name.
    Named(String),
}

/// The camera of a named view, or an error listing the names.
fn view_camera(model: &Model, placements: &[scene::LayerPlacement], name: &str, aspect: f32) -> Result<gfx::Camera> {
    crate::view::annotate::named_view(placements, name, aspect).ok_or_else(|| {
        let names: Vec<&str> = placements.iter().map(|p| p.name.as_str()).collect();
        anyhow::anyhow!(
            "--view `{name}`: no such layer in {} (overview, input, output, or one of: {})",
            model.path.display(),
            names.join(", ")
        )
    })
}

/// Renders `app` from `view` at `width`×`height` (each eye, side by side, with `stereo`) to `out`.
pub fn snapshot(
    config: &gfx::RendererConfig,
    app: &mut App,
    out: &Path,
    (width, height): (u32, u32),
    view: View,
    stereo: bool,
) -> Result<()> {
    let placements = app.placements();
    let aspect = width as f32 / height as f32;
    let camera = match view {
        View::Camera(c) if c.eye.distance(c.target) < 1e-4 => bail!("--eye and --look must be different points"),
        View::Camera(c) => c,
        View::Named(name) => view_camera(&app.model, &placements, &name, aspect)?,
    };
    let views = if stereo {
        camera.stereo(0.064).to_vec()
    } else {
        vec![camera]
    };
    let mut renderer = gfx::Renderer::new(config)?;
    tracing::info!(device = renderer.device_name(), "rendering");
    let log = renderer.validation_log();
    // Close-up neurons as voxels, for the eye (or between the eyes).
    let eye = views.iter().map(|v| v.eye).sum::<glam::Vec3>() / views.len() as f32;
    app.upload(&mut renderer, eye)?;
    let image = gfx::RgbaImage::side_by_side(&renderer.render_offscreen(width, height, &views)?);
    // Teardown is validated too (leaks are reported when the device is destroyed).
    drop(renderer);
    check_validation("Vulkan", &log.messages())?;
    save_png(&image, out)?;
    println!("wrote {}x{} snapshot to {}", image.width, image.height, out.display());
    Ok(())
}
