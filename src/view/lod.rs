//! Level of detail: close to the viewer, each neuron of a feature map is a voxel standing on its
//! tile, so a single neuron is a thing one can see and point at; farther away only the tile's
//! texture is drawn. The voxels join the cube instances: no extra draw call.

use std::borrow::Borrow;

use glam::Vec3;

use crate::gfx::{BlockStyle, CubeInstance};
use crate::scene::LayerPlacement;

/// Tiles whose nearest point is within this distance of the eye get voxels.
pub const VOXEL_DISTANCE: f32 = 1.2;
/// Voxel edge as a share of the cell: the gaps keep neighbors apart.
pub const VOXEL_FILL: f32 = 0.8;
/// Most voxels made per frame; the tiles nearest the eye go first.
pub const VOXEL_BUDGET: usize = 65_536;

/// Voxels for the tiles near `eye`, nearest tiles first, at most `budget` in all (whole tiles
/// only). `styles` are the blocks' value offsets and colors, in placement order. Placements may be
/// given by reference, so a frame need not copy them.
pub fn voxels<P: Borrow<LayerPlacement>>(
    placements: &[P],
    styles: &[BlockStyle],
    eye: Vec3,
    budget: usize,
) -> Vec<CubeInstance> {
    let mut near: Vec<(f32, usize, usize)> = Vec::new();
    for (b, p) in placements.iter().map(Borrow::borrow).enumerate() {
        // A picture input (one tile, several channels) stays a texture.
        if p.tiles.len() == 1 && p.tiles[0].h * p.tiles[0].w < styles.get(b).map_or(0, |s| s.len) {
            continue;
        }
        for (k, t) in p.tiles.iter().enumerate() {
            let local = t.world_from_tile.inverse().transform_point3(eye);
            // Nearest point of the unit quad, back in the world.
            let nearest =
                t.world_from_tile
                    .transform_point3(Vec3::new(local.x.clamp(-0.5, 0.5), local.y.clamp(-0.5, 0.5), 0.0));
            let d = nearest.distance(eye);
            if d <= VOXEL_DISTANCE {
                near.push((d, b, k));
            }
        }
    }
    near.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = Vec::new();
    for (_, b, k) in near {
        let (p, Some(style)) = (placements[b].borrow(), styles.get(b)) else {
            continue;
        };
        let t = &p.tiles[k];
        if out.len() + t.h * t.w > budget {
            break;
        }
        let x_axis = t.world_from_tile.x_axis.truncate();
        let y_axis = t.world_from_tile.y_axis.truncate();
        let edge = x_axis.length() / t.w as f32;
        let normal = x_axis.cross(y_axis).normalize_or(Vec3::Z);
        let size = edge * VOXEL_FILL;
        let base = style.offset + t.channel * t.h * t.w;
        for y in 0..t.h {
            for x in 0..t.w {
                let u = (x as f32 + 0.5) / t.w as f32 - 0.5;
                let v = 0.5 - (y as f32 + 0.5) / t.h as f32;
                // Standing on the tile, toward the side the tile faces.
                let center = t.world_from_tile.transform_point3(Vec3::new(u, v, 0.0)) + normal * (size / 2.0);
                out.push(CubeInstance {
                    center_size: center.extend(size).to_array(),
                    value: (base + y * t.w + x) as u32,
                    colormap: style.colormap as u32,
                    scale: style.scale,
                    _pad: 0,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gfx::colormap::Colormap;
    use crate::nn::Model;
    use crate::scene::{LayoutKind, layout};
    use std::path::Path;

    fn setup() -> (Vec<LayerPlacement>, Vec<BlockStyle>) {
        let json = r#"{"format": "netwalk-model/1", "name": "t", "weights": "w.safetensors",
            "input": {"name": "image", "shape": [1, 8, 8]},
            "layers": [{"name": "conv", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1}]}"#;
        let model = Model::parse(json, Path::new("/x/model.json")).expect("valid");
        let p = layout(&model, LayoutKind::Grid);
        let styles = vec![
            BlockStyle {
                offset: 0,
                len: 64,
                colormap: Colormap::Grey,
                scale: 1.0,
            },
            BlockStyle {
                offset: 64,
                len: 256,
                colormap: Colormap::Sequential,
                scale: 0.5,
            },
        ];
        (p, styles)
    }

    #[test]
    fn near_tiles_get_one_voxel_per_neuron_on_their_cells() {
        let (p, styles) = setup();
        let conv = &p[1];
        let t = &conv.tiles[2];
        // From behind the block, so the input (in front of it) is farther than the conv tiles.
        let eye = t.world_from_tile.transform_point3(Vec3::ZERO) - Vec3::Z * 0.3;
        let v = voxels(&p, &styles, eye, VOXEL_BUDGET);
        // Every conv tile is within reach (the block is 0.25 m wide), the input too.
        assert_eq!(v.len(), 4 * 64 + 64);
        // Nearest first: tile 2's cell (0, 0) comes first, on the cell, half its size out front.
        let first = v[0];
        assert_eq!(first.value, 64 + 2 * 64);
        assert_eq!(first.colormap, Colormap::Sequential as u32);
        assert_eq!(first.scale, 0.5);
        let cell = t
            .world_from_tile
            .transform_point3(Vec3::new(-0.5 + 1.0 / 16.0, 0.5 - 1.0 / 16.0, 0.0));
        let size = 0.01 * VOXEL_FILL;
        assert!((Vec3::from_slice(&first.center_size[..3]) - (cell + Vec3::Z * size / 2.0)).length() < 1e-6);
        assert!((first.center_size[3] - size).abs() < 1e-7);
    }

    #[test]
    fn far_tiles_stay_textures_and_the_budget_keeps_the_nearest_whole_tiles() {
        let (p, styles) = setup();
        let conv = &p[1];
        assert!(voxels(&p, &styles, conv.center + Vec3::Z * 5.0, VOXEL_BUDGET).is_empty());
        let eye = conv.tiles[3].world_from_tile.transform_point3(Vec3::ZERO) - Vec3::Z * 0.05;
        let v = voxels(&p, &styles, eye, 100);
        assert_eq!(v.len(), 64, "one whole tile fits 100");
        assert!(
            v.iter()
                .all(|c| (64 + 3 * 64..64 + 4 * 64).contains(&(c.value as usize)))
        );
    }
}
