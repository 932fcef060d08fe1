//! The view layer: everything that turns the scene, the model's values and the timeline into the
//! plain draw data gfx renders ([`crate::gfx::DrawList`], [`crate::gfx::NetworkDraw`], the
//! bundler's [`crate::gfx::bundle::EdgeSet`]). gfx knows nothing of `nn` or `scene`; this module
//! is where the two meet.
//!
//! - [`network`]: the network's values and instances, built from a layout and a forward pass;
//! - [`annotate`]: labels, output bars, the floor, change marks, named views;
//! - [`overlay`]: the per-frame highlights, rays, tray, inspect and timeline panels;
//! - [`lod`]: close-up voxels;
//! - [`edges`]: the dense layers' edges for the bundler, and their legend;
//! - [`tray`]: the sample tray's pictures.

pub mod annotate;
pub mod edges;
pub mod lod;
pub mod network;
pub mod overlay;
pub mod tray;

use glam::{Mat4, Vec3};

/// Where the timeline panel stands: left of the user, at chest height, turned toward them.
pub fn timeline_pose() -> Mat4 {
    let at = Vec3::new(-0.75, 1.15, -0.45);
    // Its front (+Z) toward the user standing at the origin.
    let yaw = (-at.x).atan2(-at.z);
    Mat4::from_translation(at) * Mat4::from_rotation_y(yaw)
}
