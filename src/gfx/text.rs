//! Text in the scene: a glyph atlas rasterized once from the shipped font (DejaVu Sans, see
//! assets/fonts/LICENSE) with fontdue, and labels laid out as instanced glyph quads in 3D.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};
use glam::{Mat4, Vec3};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// Rasterization size: large enough that a label read from 30 cm stays sharp.
const ATLAS_PX: f32 = 48.0;
const ATLAS_WIDTH: usize = 1024;
/// Empty pixels around each glyph, so linear filtering never bleeds a neighbor in.
const PADDING: usize = 2;
/// Printable ASCII plus what the labels and panels use.
const EXTRA_CHARS: &str = "×·–—…±µσ°≈≤≥→←↑↓▶■";

/// One glyph quad. Matches `Glyph` in shaders/common.glsl (std430).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct GlyphInstance {
    /// World position of the quad's bottom-left corner (w unused).
    pub origin: [f32; 4],
    /// World vectors along the quad's width and height. `right`'s w: where the quad's left edge
    /// goes (in widths along `right`) when seen from behind, mirrored about its line's centre so
    /// the text reads left to right from either side.
    pub right: [f32; 4],
    pub up: [f32; 4],
    /// Atlas rectangle: u0, v0 (top), u1, v1 (bottom).
    pub uv: [f32; 4],
    /// sRGB color and opacity.
    pub color: [f32; 4],
}

/// Where a glyph is in the atlas and how it sits on the baseline, in atlas pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
    /// Offset of the bitmap's left and bottom edges from the pen position on the baseline.
    xmin: f32,
    ymin: f32,
    advance: f32,
}

/// The glyph atlas: an R8 coverage image and where each glyph is in it.
pub struct Atlas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
    entries: HashMap<char, Entry>,
    font: fontdue::Font,
    /// Distance from the baseline to the top of capitals, in atlas pixels.
    cap_height: f32,
}

/// Horizontal placement of a label relative to its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

impl Atlas {
    /// The atlas of the shipped font, made on first use.
    pub fn get() -> &'static Atlas {
        static ATLAS: OnceLock<Atlas> = OnceLock::new();
        ATLAS.get_or_init(|| Atlas::new(FONT).expect("the shipped font parses"))
    }

    fn new(font_bytes: &[u8]) -> Result<Atlas, &'static str> {
        let font = fontdue::Font::from_bytes(font_bytes, fontdue::FontSettings::default())?;
        let chars = (' '..='~')
            .chain(EXTRA_CHARS.chars())
            .filter(|&c| c == ' ' || font.has_glyph(c));
        // Shelf packing, row by row, in character order.
        let (mut x, mut y, mut row_height) = (PADDING, PADDING, 0);
        let mut bitmaps = Vec::new();
        let mut entries = HashMap::new();
        for c in chars {
            let (m, bitmap) = font.rasterize(c, ATLAS_PX);
            if x + m.width + PADDING > ATLAS_WIDTH {
                x = PADDING;
                y += row_height + PADDING;
                row_height = 0;
            }
            entries.insert(
                c,
                Entry {
                    x,
                    y,
                    width: m.width,
                    height: m.height,
                    xmin: m.xmin as f32,
                    ymin: m.ymin as f32,
                    advance: m.advance_width,
                },
            );
            bitmaps.push((x, y, m.width, bitmap));
            x += m.width + PADDING;
            row_height = row_height.max(m.height);
        }
        let height = (y + row_height + PADDING).next_power_of_two();
        let mut pixels = vec![0u8; ATLAS_WIDTH * height];
        for (x, y, w, bitmap) in bitmaps {
            for (r, row) in bitmap.chunks_exact(w.max(1)).enumerate() {
                let at = (y + r) * ATLAS_WIDTH + x;
                pixels[at..at + row.len()].copy_from_slice(row);
            }
        }
        let cap_height = font.metrics('H', ATLAS_PX).height as f32;
        Ok(Atlas {
            width: ATLAS_WIDTH as u32,
            height: height as u32,
            pixels,
            entries,
            font,
            cap_height,
        })
    }

    fn entry(&self, c: char) -> Option<&Entry> {
        self.entries.get(&c).or_else(|| self.entries.get(&'?'))
    }

    /// Width of `text` in units of the cap height.
    pub fn measure(&self, text: &str) -> f32 {
        self.pen_positions(text).last().map_or(0.0, |&(_, x, e)| x + e.advance) / self.cap_height
    }

    /// Each drawable character with its pen x (atlas pixels from the start) and atlas entry.
    fn pen_positions<'a>(&'a self, text: &'a str) -> Vec<(char, f32, &'a Entry)> {
        let mut pen = 0.0;
        let mut prev = None;
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            let Some(e) = self.entry(c) else { continue };
            if let Some(p) = prev {
                pen += self.font.horizontal_kern(p, c, ATLAS_PX).unwrap_or(0.0);
            }
            out.push((c, pen, e));
            pen += e.advance;
            prev = Some(c);
        }
        out
    }

    /// Glyph quads for one line of `text`. The label's frame: `world_from_label` maps x (right)
    /// and y (up) of the text plane, with the anchor at the origin on the baseline; `cap_height`
    /// is the height of capitals in label units (usually meters).
    pub fn layout(
        &self,
        text: &str,
        world_from_label: Mat4,
        cap_height: f32,
        align: Align,
        color: [f32; 4],
    ) -> Vec<GlyphInstance> {
        let scale = cap_height / self.cap_height;
        let width = self.measure(text) * cap_height;
        let start = match align {
            Align::Left => 0.0,
            Align::Center => -width / 2.0,
            Align::Right => -width,
        };
        let right = world_from_label.transform_vector3(Vec3::X);
        let up = world_from_label.transform_vector3(Vec3::Y);
        let (aw, ah) = (self.width as f32, self.height as f32);
        self.pen_positions(text)
            .into_iter()
            .filter(|(_, _, e)| e.width > 0 && e.height > 0)
            .map(|(_, pen, e)| {
                let x = start + (pen + e.xmin) * scale;
                let y = e.ymin * scale;
                let w = e.width as f32 * scale;
                // Seen from behind, the shader mirrors the glyph about the line's centre so the
                // label still reads left to right: its left edge then lies this many glyph widths
                // along `right` (2 × centre − 2 × x, in units of w).
                let mirror = (2.0 * (start + width / 2.0) - 2.0 * x) / w;
                GlyphInstance {
                    origin: world_from_label
                        .transform_point3(Vec3::new(x, y, 0.0))
                        .extend(1.0)
                        .into(),
                    right: (right * w).extend(mirror).into(),
                    up: (up * e.height as f32 * scale).extend(0.0).into(),
                    uv: [
                        e.x as f32 / aw,
                        e.y as f32 / ah,
                        (e.x + e.width) as f32 / aw,
                        (e.y + e.height) as f32 / ah,
                    ],
                    color,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printable_ascii_character_is_in_the_atlas_without_overlap() {
        let a = Atlas::get();
        for c in '!'..='~' {
            let e = a.entries.get(&c).unwrap_or_else(|| panic!("{c:?} missing"));
            assert!(e.width > 0 && e.height > 0, "{c:?} empty");
            assert!(e.x + e.width <= a.width as usize && e.y + e.height <= a.height as usize);
        }
        let rects: Vec<&Entry> = a.entries.values().filter(|e| e.width > 0).collect();
        for (i, p) in rects.iter().enumerate() {
            for q in &rects[i + 1..] {
                let apart =
                    p.x + p.width <= q.x || q.x + q.width <= p.x || p.y + p.height <= q.y || q.y + q.height <= p.y;
                assert!(apart, "{p:?} overlaps {q:?}");
            }
        }
        // The atlas holds real coverage: 'H' has solid stems.
        let h = a.entries[&'H'];
        let column: Vec<u8> = (0..h.height)
            .map(|r| a.pixels[(h.y + r) * a.width as usize + h.x + 2])
            .collect();
        assert!(column.iter().filter(|&&v| v > 200).count() > h.height / 2, "{column:?}");
    }

    #[test]
    fn labels_are_laid_out_left_to_right_at_the_requested_height() {
        let a = Atlas::get();
        let white = [1.0; 4];
        let quads = a.layout("HH", Mat4::IDENTITY, 0.1, Align::Left, white);
        assert_eq!(quads.len(), 2);
        // Capital H: bottom on the baseline, height = cap height.
        for q in &quads {
            assert!(q.origin[1].abs() < 0.01, "{q:?}");
            assert!((q.up[1] - 0.1).abs() < 0.005, "{q:?}");
        }
        assert!(quads[1].origin[0] > quads[0].origin[0] + quads[0].right[0]);
        // Spaces take room but make no quad; centered text straddles the anchor.
        let spaced = a.layout("H H", Mat4::IDENTITY, 0.1, Align::Center, white);
        assert_eq!(spaced.len(), 2);
        assert!(spaced[0].origin[0] < 0.0 && spaced[1].origin[0] + spaced[1].right[0] > 0.0);
        let mid = (spaced[0].origin[0] + spaced[1].origin[0] + spaced[1].right[0]) / 2.0;
        assert!(mid.abs() < 0.01, "{mid}");
        // A transform moves and turns the text plane.
        let turned =
            Mat4::from_translation(Vec3::new(1.0, 2.0, 3.0)) * Mat4::from_rotation_y(std::f32::consts::FRAC_PI_2);
        let q = a.layout("H", turned, 0.1, Align::Left, white)[0];
        assert!(q.right[2] < 0.0 && q.right[0].abs() < 1e-6, "{q:?}");
        assert!((q.origin[1] - 2.0).abs() < 0.01);
    }

    #[test]
    fn unknown_characters_show_as_a_question_mark() {
        let a = Atlas::get();
        let q = a.layout("\u{4e00}", Mat4::IDENTITY, 0.1, Align::Left, [1.0; 4]);
        let want = a.layout("?", Mat4::IDENTITY, 0.1, Align::Left, [1.0; 4]);
        assert_eq!(q, want);
        assert!((a.measure("H") - a.entries[&'H'].advance / a.cap_height).abs() < 1e-6);
    }
}
