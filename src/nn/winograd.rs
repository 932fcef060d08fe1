//! 3x3, stride-1, padding-1 convolution by Winograd F(4x4, 3x3) (Lavin & Gray, 2015): each 4x4
//! output tile costs 36 multiply-adds per input/output channel pair instead of 144, as 36
//! independent `[out_ch x in_ch] * [in_ch x tiles]` products. These convolutions are most of a
//! ResNet's work, and the engine's im2col + gemm path spent its time there. F(2x2, 3x3) (16
//! products, 2.25x fewer multiply-adds) serves smaller planes, where 4x4 tiles would be too few.
//!
//! Layouts (row-major, for F(4x4, 3x3); 16 points for F(2x2, 3x3)): transformed weights
//! `u[36][oc][c]`, transformed input `v[36][c][tiles]` (the input transform is parallel over
//! channels), and per task of the second section a block of the products `m[36][oc block][tile
//! block]`, one gemm per point, which the same task turns into output pixels.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::kernels::Post;

/// F(4x4, 3x3): output tile edge, input tile edge.
const TILE: usize = 4;
const ALPHA: usize = TILE + 2;

/// Transformed weights of one convolution, computed once per model.
#[derive(Debug, Clone)]
pub struct Winograd {
    oc: usize,
    c: usize,
    /// Output tile edge: 4 (F(4x4, 3x3)) or 2 (F(2x2, 3x3)).
    tile: usize,
    u: Vec<f32>,
}

/// `G` (6x3), the filter transform.
const G4: [[f64; 3]; ALPHA] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `G` of F(2x2, 3x3) (4x3).
const G2: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// `B^T d` of F(2x2, 3x3).
#[inline(always)]
fn bt2(d: [f32; 4]) -> [f32; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// `A^T m` of F(2x2, 3x3).
#[inline(always)]
fn at2(m: [f32; 4]) -> [f32; 2] {
    [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
}

/// `B^T d` for one column of six input values.
#[inline(always)]
fn bt(d: [f32; ALPHA]) -> [f32; ALPHA] {
    [
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * (d[1] + d[2]) + d[3] + d[4],
        4.0 * (d[1] - d[2]) - d[3] + d[4],
        2.0 * (d[3] - d[1]) - d[2] + d[4],
        2.0 * (d[1] - d[3]) - d[2] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5],
    ]
}

/// `A^T m` for one column of six products.
#[inline(always)]
fn at(m: [f32; ALPHA]) -> [f32; TILE] {
    let (s12, d12, s34, d34) = (m[1] + m[2], m[1] - m[2], m[3] + m[4], m[3] - m[4]);
    [
        m[0] + s12 + s34,
        d12 + 2.0 * d34,
        s12 + 4.0 * s34,
        d12 + 8.0 * d34 + m[5],
    ]
}

impl Winograd {
    /// `weight` is `[oc][c][3][3]`. The transform runs in f64 so it adds no rounding of its own
    /// beyond the final cast.
    pub fn new(weight: &[f32], oc: usize, c: usize, tile: usize) -> Winograd {
        assert_eq!(weight.len(), oc * c * 9);
        let g_rows: &[[f64; 3]] = match tile {
            4 => &G4,
            2 => &G2,
            _ => panic!("Winograd tile must be 4 or 2, not {tile}"),
        };
        let alpha = tile + 2;
        let mut u = vec![0f32; alpha * alpha * oc * c];
        for o in 0..oc {
            for ci in 0..c {
                let g = &weight[(o * c + ci) * 9..][..9];
                // G g: 6x3, then (G g) G^T: 6x6.
                let mut gg = [[0f64; 3]; ALPHA];
                for (i, row) in gg.iter_mut().enumerate().take(alpha) {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|k| g_rows[i][k] * g[k * 3 + j] as f64).sum();
                    }
                }
                for i in 0..alpha {
                    for j in 0..alpha {
                        let v: f64 = (0..3).map(|k| gg[i][k] * g_rows[j][k]).sum();
                        u[((i * alpha + j) * oc + o) * c + ci] = v as f32;
                    }
                }
            }
        }
        Winograd { oc, c, tile, u }
    }

    /// `out[oc][h][w]` = this convolution (stride 1, zero padding 1) of `x[c][h][w]`, with
    /// `post` (bias, fused batchnorm / relu) applied. Writes every element of `out[..oc * h * w]`
    /// and of `post`'s outputs.
    pub(super) fn run(&self, x: &[f32], hw: (usize, usize), post: &Post, out: &mut [MaybeUninit<f32>]) {
        if self.tile == 4 {
            self.run_impl::<TILE, ALPHA>(x, hw, post, out, bt, at);
        } else {
            self.run_impl::<2, 4>(x, hw, post, out, bt2, at2);
        }
    }

    /// [`Winograd::run`] for output tiles `T` wide (input tiles `A = T + 2`), with that size's
    /// 1-D input and output transforms.
    ///
    /// Two parallel sections: the input transform, parallel over channels, into
    /// `v[point][c][tiles]`; then one task per block of tiles x block of output channels doing
    /// that block's products (one gemm per point, into a per-thread buffer that stays in cache),
    /// its output transform and `post`. Blocks are sized by [`blocks`].
    #[allow(clippy::too_many_arguments)]
    fn run_impl<const T: usize, const A: usize>(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        post: &Post,
        out: &mut [MaybeUninit<f32>],
        bt: impl Fn([f32; A]) -> [f32; A] + Copy + Sync,
        at: impl Fn([f32; A]) -> [f32; T] + Copy + Sync,
    ) {
        const { assert!(A == T + 2) };
        let (oc, c) = (self.oc, self.c);
        let points = A * A;
        assert!(x.len() >= c * h * w && out.len() >= oc * h * w);
        let (th, tw) = (h.div_ceil(T), w.div_ceil(T));
        let tiles = th * tw;
        // The padded plane: one zero row/column before, enough after to fill the last tiles.
        let (ph, pw) = (th * T + 2, tw * T + 2);

        // Both transforms gather each tile's points into rows over the tiles, so every
        // arithmetic pass below runs along contiguous rows (vectorized), not within one tile.
        let mut v: Vec<f32> = Vec::with_capacity(points * c * tiles);
        let vp = Ptr(v.as_mut_ptr());
        (0..c).into_par_iter().for_each(|ci| {
            INPUT.with_borrow_mut(|buf| {
                buf.resize(buf.len().max(ph * pw + 2 * points * tiles), 0.0);
                let (pad, rest) = buf.split_at_mut(ph * pw);
                let (d, t) = rest.split_at_mut(points * tiles);
                let (d, t) = (&mut d[..points * tiles], &mut t[..points * tiles]);
                // The padded plane, zero borders included (the buffer is shared by all layers).
                let src = &x[ci * h * w..(ci + 1) * h * w];
                pad[..pw].fill(0.0);
                for (y, row) in src.chunks_exact(w).enumerate() {
                    let prow = &mut pad[(y + 1) * pw..][..pw];
                    prow[0] = 0.0;
                    prow[1..=w].copy_from_slice(row);
                    prow[w + 1..].fill(0.0);
                }
                pad[(h + 1) * pw..].fill(0.0);
                for k in 0..A {
                    for l in 0..A {
                        let drow = &mut d[(k * A + l) * tiles..][..tiles];
                        for ty in 0..th {
                            let prow = &pad[(ty * T + k) * pw + l..];
                            for (tx, dv) in drow[ty * tw..(ty + 1) * tw].iter_mut().enumerate() {
                                *dv = prow[tx * T];
                            }
                        }
                    }
                }
                // B^T d along the columns, then (B^T d) B along the rows, into v's rows
                // (point, ci): distinct for each channel.
                for l in 0..A {
                    apply(rows(d, tiles, |k| k * A + l), rows_mut(t, tiles, |i| i * A + l), bt);
                }
                for i in 0..A {
                    // SAFETY: rows (i * A + j, ci) of v, inside its capacity, written by this
                    // channel's task alone.
                    let dst: [&mut [f32]; A] = std::array::from_fn(|j| unsafe {
                        std::slice::from_raw_parts_mut(vp.get().add(((i * A + j) * c + ci) * tiles), tiles)
                    });
                    apply(rows(t, tiles, |l| i * A + l), dst, bt);
                }
            });
        });
        // SAFETY: every (point, channel) row was written above.
        unsafe { v.set_len(points * c * tiles) };

        let (nb, no) = blocks(tiles, oc, c, points, rayon::current_num_threads());
        let (tbs, obs) = (tiles.div_ceil(nb), oc.div_ceil(no));
        let (up, vp, conv) = (
            Ptr(self.u.as_ptr() as *mut f32),
            Ptr(v.as_ptr() as *mut f32),
            Ptr(out.as_mut_ptr().cast()),
        );
        (0..tbs * obs).into_par_iter().for_each(|task| {
            let (t0, o0) = ((task % tbs) * nb, (task / tbs) * no);
            let (nt, nco) = (nb.min(tiles - t0), no.min(oc - o0));
            SCRATCH.with_borrow_mut(|s| {
                s.resize(s.len().max(points * nco * nt + (T * A + 2 * T * T) * nt), 0.0);
                let (m, rest) = s.split_at_mut(points * nco * nt);
                let (tt, rest) = rest.split_at_mut(T * A * nt);
                let (y, row) = rest.split_at_mut(T * T * nt);
                for p in 0..points {
                    // SAFETY: u[p] rows o0.. (nco x c, row stride c), v[p] columns t0.. (c x nt,
                    // row stride tiles) and m[p] (nco x nt), all inside their buffers.
                    unsafe {
                        gemm::gemm(
                            nco,
                            nt,
                            c,
                            m.as_mut_ptr().add(p * nco * nt),
                            1,
                            nt as isize,
                            false,
                            up.get().add((p * oc + o0) * c),
                            1,
                            c as isize,
                            vp.get().add(p * c * tiles + t0),
                            1,
                            tiles as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                }
                for o in 0..nco {
                    // A^T m along the columns, then (A^T m) A along the rows.
                    for j in 0..A {
                        apply(
                            rows(m, nt, |i| (i * A + j) * nco + o),
                            rows_mut(tt, nt, |i| i * A + j),
                            at,
                        );
                    }
                    for i in 0..T {
                        apply(rows(tt, nt, |j| i * A + j), rows_mut(y, nt, |j| i * T + j), at);
                    }
                    // Out to the planes one output row of a run of tiles at a time, so that
                    // `post` works along contiguous rows.
                    let ch = o0 + o;
                    let plane = ch * h * w;
                    let mut q = 0;
                    while q < nt {
                        let (ty, tx0) = ((t0 + q) / tw, (t0 + q) % tw);
                        let run = (tw - tx0).min(nt - q);
                        let (x0, x1) = (tx0 * T, ((tx0 + run) * T).min(w));
                        for i in 0..T.min(h - ty * T) {
                            let r = &mut row[..x1 - x0];
                            for (kk, v) in r.iter_mut().enumerate() {
                                *v = y[(i * T + kk % T) * nt + q + kk / T];
                            }
                            // SAFETY: row ty * T + i, columns [x0, x1) of channel ch, inside the
                            // outputs; each task writes its own channels' pixels of its own tiles.
                            unsafe { post.store_row(conv.get(), ch, plane + (ty * T + i) * w + x0, r) };
                        }
                        q += run;
                    }
                }
            });
        });
    }
}

thread_local! {
    /// Each worker's input-transform buffers (padded plane, gathered and half-transformed
    /// points), kept between layers and forwards.
    static INPUT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each worker's product and output-transform buffers, kept between layers and forwards.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Block sizes (tiles, output channels) for the products and output transform. A block's products
/// are `points` gemms of `no x nb x c`; the blocks are spread over `threads` workers, so the cost
/// is the number of rounds times a block's cost: its multiply-adds, with the tile count rounded up
/// to the kernels' 16 lanes, plus a fixed cost per gemm call. Blocks are kept small enough that
/// their products stay in a core's cache.
fn blocks(tiles: usize, oc: usize, c: usize, points: usize, threads: usize) -> (usize, usize) {
    /// A gemm call's fixed cost, in multiply-adds (about a microsecond).
    const CALL: usize = 40_000;
    /// Largest per-block product buffer, in values (512 KiB).
    const MAX_M: usize = 128 << 10;
    let mut best = (tiles, oc, usize::MAX);
    for tb in 1..=tiles.div_ceil(8).min(64) {
        let nb = tiles.div_ceil(tb);
        for ob in 1..=oc.div_ceil(8).min(64) {
            let no = oc.div_ceil(ob);
            if points * nb * no > MAX_M && (nb > 8 || no > 8) {
                continue;
            }
            let tasks = tiles.div_ceil(nb) * oc.div_ceil(no);
            let cost = tasks.div_ceil(threads) * points * (nb.div_ceil(16) * 16 * no * c + CALL);
            if cost < best.2 {
                best = (nb, no, cost);
            }
        }
    }
    (best.0, best.1)
}

/// Rows `row(0..A)` of a buffer of rows `n` long.
fn rows<const A: usize>(buf: &[f32], n: usize, row: impl Fn(usize) -> usize) -> [&[f32]; A] {
    std::array::from_fn(|k| &buf[row(k) * n..][..n])
}

/// Rows `row(0..N)` (distinct) of a buffer of rows `n` long, for writing.
fn rows_mut<const N: usize>(buf: &mut [f32], n: usize, row: impl Fn(usize) -> usize) -> [&mut [f32]; N] {
    buf.get_disjoint_mut(std::array::from_fn::<_, N, _>(|k| row(k) * n..(row(k) + 1) * n))
        .expect("distinct rows inside the buffer")
}

/// `dst[.][q] = f(src[.][q])` for every column q: one 1-D transform per tile, along the rows.
#[inline(always)]
fn apply<const A: usize, const N: usize>(src: [&[f32]; A], mut dst: [&mut [f32]; N], f: impl Fn([f32; A]) -> [f32; N]) {
    let n = dst[0].len();
    let src = src.map(|s| &s[..n]);
    for q in 0..n {
        let r = f(std::array::from_fn(|k| src[k][q]));
        for (d, v) in dst.iter_mut().zip(r) {
            d[q] = v;
        }
    }
}

/// A raw pointer shared by parallel tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: used only in `Winograd::run`, whose tasks read shared inputs and write disjoint parts.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}
impl Ptr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(x: &[f32], wt: &[f32], bias: &[f32], (oc, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
        let mut out = vec![0f32; oc * h * w];
        for o in 0..oc {
            for y in 0..h {
                for xx in 0..w {
                    let mut acc = bias[o] as f64;
                    for ci in 0..c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += (wt[((o * c + ci) * 3 + ky) * 3 + kx]
                                        * x[(ci * h + iy as usize) * w + ix as usize])
                                        as f64;
                                }
                            }
                        }
                    }
                    out[(o * h + y) * w + xx] = acc as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution_on_ragged_sizes() {
        let mut seed = 1u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
        };
        // Sizes that are and are not multiples of the tile, and one smaller than a tile.
        for (oc, c, h, w) in [(5, 3, 8, 8), (4, 7, 13, 10), (3, 2, 3, 2), (16, 32, 14, 14)] {
            let x: Vec<f32> = (0..c * h * w).map(|_| rnd()).collect();
            let wt: Vec<f32> = (0..oc * c * 9).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..oc).map(|_| rnd()).collect();
            let want = direct(&x, &wt, &bias, (oc, c, h, w));
            for tile in [4, 2] {
                let mut got = vec![MaybeUninit::new(f32::NAN); oc * h * w];
                Winograd::new(&wt, oc, c, tile).run(&x, (h, w), &Post::bias(Some(&bias)), &mut got);
                // SAFETY: initialized above (NaN, so an element `run` skipped would fail the check).
                let got: Vec<f32> = got.into_iter().map(|v| unsafe { v.assume_init() }).collect();
                let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(
                    worst <= 1e-5 * scale,
                    "F({tile},3) {oc}x{c}x{h}x{w}: worst {worst} of {scale}"
                );
            }
        }
    }
}
