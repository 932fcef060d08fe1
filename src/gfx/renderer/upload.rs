//! Handing the renderer what to draw: the values and the network's and overlay's instance lists,
//! staged between frames; each frame slot copies them into its own host-visible storage buffers.

use super::{Input, Kind, List, Renderer};
use crate::gfx::draw::{DrawList, NetworkDraw};
use crate::gfx::{GfxError, Result};

impl Renderer {
    /// Uploads the values tiles and cubes read: once per input, not per frame.
    pub fn set_values(&mut self, values: &[f32]) -> Result<()> {
        self.write(Input::Values, bytemuck::cast_slice(values))
    }

    /// Uploads the network's instances: when the layout changes, not per frame.
    pub fn set_draw_list(&mut self, list: &DrawList) -> Result<()> {
        self.write_list(List::Network, list)
    }

    /// Uploads the overlay's instances (highlights, rays, panels, voxels), drawn after the
    /// network's: small, so rebuilt every frame.
    pub fn set_overlay(&mut self, list: &DrawList) -> Result<()> {
        self.write_list(List::Overlay, list)
    }

    pub(super) fn write_list(&mut self, which: List, list: &DrawList) -> Result<()> {
        let count = |n: usize| u32::try_from(n).map_err(|_| GfxError::Invalid(format!("{n} instances")));
        self.write(Input::Instances(which, Kind::Tiles), bytemuck::cast_slice(&list.tiles))?;
        self.write(Input::Instances(which, Kind::Cubes), bytemuck::cast_slice(&list.cubes))?;
        self.write(Input::Instances(which, Kind::Lines), bytemuck::cast_slice(&list.lines))?;
        self.write(
            Input::Instances(which, Kind::Glyphs),
            bytemuck::cast_slice(&list.glyphs),
        )?;
        self.counts[which as usize] = [
            count(list.tiles.len())?,
            count(list.cubes.len())?,
            count(list.lines.len())?,
            count(list.glyphs.len())?,
        ];
        Ok(())
    }

    /// Draw calls a frame records: one per list and kind of instance present, however many
    /// instances (at most 8).
    pub fn draw_calls(&self) -> usize {
        self.counts.iter().flatten().filter(|&&n| n > 0).count()
    }

    /// Uploads a network's values and draw list.
    pub fn set_network(&mut self, draw: &NetworkDraw) -> Result<()> {
        self.set_values(&draw.values)?;
        self.set_draw_list(&draw.list)
    }

    /// Stages `bytes` as the latest of `input`: each frame slot copies them into its own buffer
    /// when it next starts a frame (`slots.rs`), so no buffer the GPU may be reading is touched.
    pub(super) fn write(&mut self, input: Input, bytes: &[u8]) -> Result<()> {
        let staged = &mut self.inputs[input.index()];
        staged.bytes.clear();
        staged.bytes.extend_from_slice(bytes);
        staged.generation += 1;
        Ok(())
    }
}
