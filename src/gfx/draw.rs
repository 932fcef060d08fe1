//! What the renderer draws: plain data, independent of Vulkan and of the model. A [`DrawList`] of
//! instanced tiles (feature maps) and cubes (neurons) that index one array of values; a
//! [`NetworkDraw`] holds both for a network (`crate::view::network` builds it from a layout and a
//! forward pass).

use bytemuck::{Pod, Zeroable};

use glam::Vec3;

use super::colormap::Colormap;
use super::text::GlyphInstance;

/// One textured quad: an H×W map of values starting at `offset`. Matches `Tile` in
/// shaders/common.glsl (std430).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct TileInstance {
    /// Column-major; maps the unit quad (−0.5..0.5, facing +Z, row 0 at +y) to the world.
    pub world_from_tile: [[f32; 4]; 4],
    pub offset: u32,
    pub h: u32,
    pub w: u32,
    pub colormap: u32,
    /// 1 / max |value| of the layer (0 when all values are 0).
    pub scale: f32,
    pub _pad: [u32; 3],
}

/// One cube colored by the value at `value`. Matches `Cube` in shaders/common.glsl (std430).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct CubeInstance {
    /// World center (xyz) and edge length (w).
    pub center_size: [f32; 4],
    pub value: u32,
    pub colormap: u32,
    pub scale: f32,
    pub _pad: u32,
}

/// A ribbon from `a` to `b` facing the viewer. Matches `Line` in shaders/common.glsl (std430).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct LineInstance {
    /// Start (xyz) and width in meters (w).
    pub a: [f32; 4],
    /// End (xyz; w unused).
    pub b: [f32; 4],
    /// sRGB color (alpha unused: lines are opaque).
    pub color: [f32; 4],
}

impl LineInstance {
    pub fn new(a: Vec3, b: Vec3, width: f32, color: [f32; 3]) -> LineInstance {
        LineInstance {
            a: a.extend(width).into(),
            b: b.extend(0.0).into(),
            color: [color[0], color[1], color[2], 1.0],
        }
    }
}

/// Everything one frame draws, one instanced draw call per kind however many instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrawList {
    pub tiles: Vec<TileInstance>,
    pub cubes: Vec<CubeInstance>,
    pub lines: Vec<LineInstance>,
    /// Drawn last, blended over the rest.
    pub glyphs: Vec<GlyphInstance>,
}

/// The values and draw list of a laid-out network for one input. `values` changes with the
/// input; `list` only with the layout and the value ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkDraw {
    /// The shown blocks' values, block after block. The input block holds the image as given
    /// (normalization undone), so it shows as the picture it is.
    pub values: Vec<f32>,
    pub list: DrawList,
    /// Per block (in placement order): where its values are and how they are colored.
    pub styles: Vec<BlockStyle>,
}

/// How one block's values are stored and colored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockStyle {
    /// First value of the block in [`NetworkDraw::values`] and how many there are.
    pub offset: usize,
    pub len: usize,
    pub colormap: Colormap,
    /// 1 / max |value| (0 when all are 0).
    pub scale: f32,
}

impl DrawList {
    /// Moves `other`'s instances after this list's.
    pub fn append(&mut self, mut other: DrawList) {
        self.tiles.append(&mut other.tiles);
        self.cubes.append(&mut other.cubes);
        self.lines.append(&mut other.lines);
        self.glyphs.append(&mut other.glyphs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_match_the_shader_layout() {
        // std430: mat4 (64) + 5 scalars padded to a 16-byte multiple; vec4 + 4 scalars.
        assert_eq!(size_of::<TileInstance>(), 96);
        assert_eq!(size_of::<CubeInstance>(), 32);
        assert_eq!(size_of::<LineInstance>(), 48);
        assert_eq!(size_of::<GlyphInstance>(), 80);
    }
}
