//! The sample tray's pictures: each tray sample's image (normalization undone) after the
//! network's values, and one tile per sample showing it.

use crate::gfx::colormap::Colormap;
use crate::gfx::{NetworkDraw, TileInstance};
use crate::nn::{Model, Samples, Shape};
use crate::scene::SceneDraw;
use crate::view::network::denormalized_input;

/// Appends the tray's sample images to `draw`'s values; returns where each one starts.
pub fn append_images(model: &Model, samples: Option<&Samples>, sd: &SceneDraw, draw: &mut NetworkDraw) -> Vec<u32> {
    let Some(s) = samples else { return Vec::new() };
    let mut offsets = Vec::with_capacity(sd.tray.len());
    for t in &sd.tray {
        offsets.push(draw.values.len() as u32);
        let image = s.image(t.sample.min(s.count.saturating_sub(1)));
        draw.values.extend(denormalized_input(model, image));
    }
    offsets
}

/// The tray's tiles, their images at `offsets` (from [`append_images`]), for the overlay.
pub fn tiles(model: &Model, sd: &SceneDraw, offsets: &[u32]) -> Vec<TileInstance> {
    let Shape::Chw(c, h, w) = model.input.shape else {
        return Vec::new();
    };
    let colormap = if c == 3 { Colormap::Rgb } else { Colormap::Grey };
    sd.tray
        .iter()
        .zip(offsets)
        .map(|(t, &offset)| TileInstance {
            world_from_tile: t.stage_from_tile.to_cols_array_2d(),
            offset,
            h: h as u32,
            w: w as u32,
            colormap: colormap as u32,
            scale: 1.0,
            _pad: [0; 3],
        })
        .collect()
}
