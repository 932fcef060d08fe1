pub mod app;
pub mod gfx;
pub mod input;
pub mod nn;
pub mod scene;
pub mod view;
pub mod xr;
