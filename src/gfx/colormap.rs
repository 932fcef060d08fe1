//! CPU copies of the shader colormaps (shaders/colormap.glsl): change both together. Tests compare
//! rendered pixels with these. Colors are sRGB-encoded, components in [0, 1]; the colour helpers
//! the rest of gfx shares (sRGB packing and decoding, the signed-value colors) live here too.

/// Colormap ids, as the shaders number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Colormap {
    /// viridis over [0, 1]: layers with no negative value.
    Sequential = 0,
    /// blue-white-red over [-1, 1]: signed layers.
    Diverging = 1,
    /// The input image, values in [0, 1].
    Grey = 2,
    /// The input image as 3 planes.
    Rgb = 3,
    /// One color, packed by [`pack_srgb`] into the instance's value index (highlights, bars).
    Solid = 4,
}

/// An sRGB color (components in [0, 1]) as the RGBA8 word `unpackUnorm4x8` reads.
pub fn pack_srgb([r, g, b]: [f32; 3]) -> u32 {
    let byte = |c: f32| (c.clamp(0.0, 1.0) * 255.0).round() as u32;
    byte(r) | byte(g) << 8 | byte(b) << 16 | 255 << 24
}

/// An sRGB-encoded component (in [0, 1]) as linear light: what a shader writing to an sRGB target
/// must output to show it.
pub fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// Connections and edges by sign of their value (sRGB).
pub const POSITIVE_COLOR: [f32; 3] = [0.95, 0.35, 0.25];
pub const NEGATIVE_COLOR: [f32; 3] = [0.3, 0.5, 1.0];

/// Polynomial fit of matplotlib's viridis (Matt Zucker, CC0).
pub fn viridis(t: f32) -> [f32; 3] {
    const C: [[f64; 3]; 7] = [
        [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
        [0.1050930431085774, 1.404613529898575, 1.384590162594685],
        [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
        [-4.634230498983486, -5.799100973351585, -19.33244095627987],
        [6.228269936347081, 14.17993336680509, 56.69055260068105],
        [4.776384997670288, -13.74514537774601, -65.35303263337234],
        [-5.435455855934631, 4.645852612178535, 26.3124352495832],
    ];
    let t = f64::from(t.clamp(0.0, 1.0));
    std::array::from_fn(|i| C.iter().rev().fold(0.0, |acc, c| acc * t + c[i]).clamp(0.0, 1.0) as f32)
}

pub fn diverging(t: f32) -> [f32; 3] {
    const BLUE: [f32; 3] = [0.230, 0.299, 0.754];
    const WHITE: [f32; 3] = [0.970, 0.970, 0.970];
    const RED: [f32; 3] = [0.706, 0.016, 0.150];
    let t = t.clamp(-1.0, 1.0);
    let (end, a) = if t < 0.0 { (BLUE, -t) } else { (RED, t) };
    std::array::from_fn(|i| WHITE[i] + (end[i] - WHITE[i]) * a)
}

/// The color of `value` normalized by `scale` (1 / max |value| of its layer). `Rgb` needs three
/// values and `Solid` none: neither is handled here.
pub fn color(map: Colormap, value: f32, scale: f32) -> [f32; 3] {
    let t = value * scale;
    match map {
        Colormap::Diverging => diverging(t),
        Colormap::Grey | Colormap::Rgb | Colormap::Solid => [t.clamp(0.0, 1.0); 3],
        Colormap::Sequential => viridis(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_match_matplotlib() {
        let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.02);
        assert!(close(viridis(0.0), [0.267, 0.005, 0.329]));
        assert!(close(viridis(1.0), [0.993, 0.906, 0.144]));
        assert_eq!(diverging(0.0), [0.97; 3]);
    }
}
