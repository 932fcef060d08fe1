// Colormaps shared by the tile and cube shaders. src/gfx/colormap.rs mirrors these functions on the
// CPU (tests compare rendered pixels with it): change both together.
//
// Colors are sRGB-encoded; `to_linear` converts them for the R8G8B8A8_SRGB target, whose store
// encodes them back, so the PNG holds exactly these values (±1 LSB).

const uint COLORMAP_SEQUENTIAL = 0u; // viridis over [0, 1]: non-negative layers
const uint COLORMAP_DIVERGING = 1u;  // blue-white-red over [-1, 1]: signed layers
const uint COLORMAP_GREY = 2u;       // the input image, values already in [0, 1]
const uint COLORMAP_RGB = 3u;        // the input image, 3 planes (handled by the caller)
const uint COLORMAP_SOLID = 4u;      // one color (highlights, bars): RGBA8 sRGB packed in the index

vec3 unpack_srgb(uint rgba) {
    return unpackUnorm4x8(rgba).rgb;
}

// Polynomial fit of matplotlib's viridis (Matt Zucker, CC0).
vec3 viridis(float t) {
    const vec3 c0 = vec3(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    const vec3 c1 = vec3(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    const vec3 c2 = vec3(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    const vec3 c3 = vec3(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    const vec3 c4 = vec3(6.228269936347081, 14.17993336680509, 56.69055260068105);
    const vec3 c5 = vec3(4.776384997670288, -13.74514537774601, -65.35303263337234);
    const vec3 c6 = vec3(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    t = clamp(t, 0.0, 1.0);
    return clamp(c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6))))), 0.0, 1.0);
}

vec3 diverging(float t) {
    const vec3 blue = vec3(0.230, 0.299, 0.754);
    const vec3 white = vec3(0.970, 0.970, 0.970);
    const vec3 red = vec3(0.706, 0.016, 0.150);
    t = clamp(t, -1.0, 1.0);
    return t < 0.0 ? mix(white, blue, -t) : mix(white, red, t);
}

// `value * scale` is the value normalized by the layer's max |value|.
vec3 colormap(uint map, float value, float scale) {
    float t = value * scale;
    if (map == COLORMAP_DIVERGING) {
        return diverging(t);
    }
    if (map == COLORMAP_GREY || map == COLORMAP_RGB) {
        return vec3(clamp(t, 0.0, 1.0));
    }
    return viridis(t);
}

vec3 to_linear(vec3 srgb) {
    return mix(srgb / 12.92, pow((srgb + 0.055) / 1.055, vec3(2.4)), greaterThan(srgb, vec3(0.04045)));
}
