pub mod app;
pub mod bench;
pub mod cli;
pub mod gfx;
pub mod input;
pub mod nn;
pub mod scene;
pub mod xr;
