pub mod gfx;
pub mod nn;
pub mod scene;
pub mod xr;
