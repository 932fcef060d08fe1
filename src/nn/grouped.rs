//! Grouped and depthwise convolutions. The one-group path ([`super::kernels`]) is im2col + gemm
//! over the whole input; with groups, that became one small gemm per group in turn, each too small
//! to split across threads (a depthwise 3×3 is a 1×9 by 9×HW product), so MobileNet's and
//! EfficientNet's depthwise layers ran on one core at a fraction of its speed. Here the work is
//! split by output channel instead:
//!
//! - depthwise (one input channel per group): each output plane is accumulated directly, one
//!   kernel tap at a time as a strided multiply-add along output rows (contiguous for stride 1,
//!   which the compiler vectorises), the padding handled by clipping each tap's range;
//! - other groups (ResNeXt's 32, RegNet's group widths): the groups run in parallel, each
//!   unfolding its own input channels into a per-thread buffer and multiplying it single-threaded.
//!
//! Either way the fused epilogue ([`Post`]: bias, batchnorm, relu) runs on each plane while it is
//! in cache, in the same task that computed it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::kernels::{ConvGeometry, PAR_MIN, Post, gemm_block, im2col_cols};

#[derive(Clone, Copy)]
struct Dst(*mut f32);
// SAFETY: tasks write disjoint channel planes of the output buffer it points into.
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}
impl Dst {
    fn get(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// Each worker's unfolded group input, kept between layers and forwards.
    static GROUP_COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each worker's channel-interleaved block of depthwise input planes.
    static BLOCK: std::cell::RefCell<Vec<[f32; LANES]>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each worker's padded, phase-split depthwise input plane.
    static PLANE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A convolution with `geo.groups > 1`: writes every element of `out[..oc * oh * ow]` and of
/// `post`'s outputs (`weight` as `[oc, c / groups, kh, kw]`).
pub(super) fn conv2d_grouped(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    weight: &[f32],
    (oc, oh, ow): (usize, usize, usize),
    geo: ConvGeometry,
    post: &Post,
    out: &mut [MaybeUninit<f32>],
) {
    let n = oh * ow;
    let (cin_g, cout_g) = (c / geo.groups, oc / geo.groups);
    let taps = geo.kernel.0 * geo.kernel.1;
    assert!(out.len() >= oc * n && weight.len() >= oc * cin_g * taps && x.len() >= c * h * w);
    let dst = Dst(out.as_mut_ptr().cast());
    let parallel = oc * n * cin_g * taps >= PAR_MIN;
    if cin_g == 1 && cout_g == 1 && oc % LANES == 0 {
        // Plain depthwise (MobileNet, EfficientNet, ConvNeXt): blocks of LANES channels at once.
        let body = |b: usize| {
            let o = b * LANES;
            // SAFETY: planes [o, o + LANES) of the output, written by this task only, inside the
            // asserted size.
            let planes = unsafe { std::slice::from_raw_parts_mut(dst.get().add(o * n), LANES * n) };
            depthwise_block(
                &x[o * h * w..(o + LANES) * h * w],
                (h, w),
                &weight[o * taps..(o + LANES) * taps],
                (oh, ow),
                geo,
                planes,
            );
            // SAFETY: those planes were just written; no other task touches them.
            unsafe { post.finish(dst.get(), n, o..o + LANES, 0..n) };
        };
        if parallel {
            (0..oc / LANES).into_par_iter().for_each(body);
        } else {
            (0..oc / LANES).for_each(body);
        }
        return;
    }
    if cin_g == 1 {
        let body = |o: usize| {
            // SAFETY: output plane o, written by this task only, inside the asserted size.
            let plane = unsafe { std::slice::from_raw_parts_mut(dst.get().add(o * n), n) };
            let ic = o / cout_g;
            depthwise_plane(
                &x[ic * h * w..(ic + 1) * h * w],
                (h, w),
                &weight[o * taps..(o + 1) * taps],
                (oh, ow),
                geo,
                plane,
            );
            // SAFETY: plane o was just written; no other task touches it.
            unsafe { post.finish(dst.get(), n, o..o + 1, 0..n) };
        };
        if parallel {
            (0..oc).into_par_iter().for_each(body);
        } else {
            (0..oc).for_each(body);
        }
        return;
    }
    let k = cin_g * taps;
    let pointwise = geo.kernel == (1, 1) && geo.stride == (1, 1) && geo.padding == (0, 0);
    let body = |g: usize| {
        let xg = &x[g * cin_g * h * w..(g + 1) * cin_g * h * w];
        let wg = &weight[g * cout_g * k..(g + 1) * cout_g * k];
        // SAFETY: planes [g * cout_g, (g + 1) * cout_g) of the output, this task's only; the
        // operands are inside the asserted sizes.
        let mul = |rhs: *const f32| unsafe {
            gemm_block(dst.get().add(g * cout_g * n), wg.as_ptr(), rhs, cout_g, n, k, n, n);
            post.finish(dst.get(), n, g * cout_g..(g + 1) * cout_g, 0..n);
        };
        if pointwise {
            mul(xg.as_ptr());
            return;
        }
        GROUP_COL.with_borrow_mut(|col| {
            col.resize(col.len().max(k * n), 0.0);
            im2col_cols(xg, (cin_g, h, w), (oh, ow), geo, 0..n, as_uninit(&mut col[..k * n]));
            mul(col.as_ptr());
        });
    };
    if parallel {
        (0..geo.groups).into_par_iter().for_each(body);
    } else {
        (0..geo.groups).for_each(body);
    }
}

fn as_uninit(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the callee only writes initialized values.
    unsafe { &mut *(v as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// One depthwise output plane `out` (`oh × ow`, row-major) from input plane `x` (`h × w`) and the
/// `kh × kw` kernel `k`. The input is first copied into a zero-padded plane split into its `sx`
/// column phases (phase p holds padded columns p, p + sx, ...; one phase when sx = 1), so every
/// tap of every output row is one contiguous, branch-free multiply-add of `ow` values; three taps
/// of a row go in one pass over the output row.
fn depthwise_plane(
    x: &[f32],
    (h, w): (usize, usize),
    k: &[f32],
    (oh, ow): (usize, usize),
    geo: ConvGeometry,
    out: &mut [f32],
) {
    let ConvGeometry {
        kernel: (kh, kw),
        stride: (sy, sx),
        padding: (py, px),
        dilation: (dy, dx),
        ..
    } = geo;
    // The padded rows and columns any output reads.
    let ph = (oh - 1) * sy + (kh - 1) * dy + 1;
    let pw = (ow - 1) * sx + (kw - 1) * dx + 1;
    let phw = pw.div_ceil(sx);
    PLANE.with_borrow_mut(|buf| {
        buf.clear();
        buf.resize(sx * ph * phw, 0.0);
        // Input columns 0..wn land in padded columns px..px + wn.
        let wn = w.min(pw.saturating_sub(px));
        for iy in 0..h.min(ph.saturating_sub(py)) {
            let (r, src) = (iy + py, &x[iy * w..iy * w + wn]);
            for p in 0..sx {
                // Padded column c = px + ix is in phase c % sx at c / sx.
                let first = (p + sx - px % sx) % sx;
                let dst = &mut buf[(p * ph + r) * phw..(p * ph + r + 1) * phw];
                let at = (px + first) / sx;
                for (d, &v) in dst[at.min(phw)..].iter_mut().zip(src.iter().skip(first).step_by(sx)) {
                    *d = v;
                }
            }
        }
        let tap = |row: usize, kx: usize| {
            let c = kx * dx;
            let start = ((c % sx) * ph + row) * phw + c / sx;
            &buf[start..start + ow]
        };
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            orow.fill(0.0);
            for ky in 0..kh {
                let row = oy * sy + ky * dy;
                let wk = &k[ky * kw..(ky + 1) * kw];
                let mut kx = 0;
                while kx + 3 <= kw {
                    let (w0, w1, w2) = (wk[kx], wk[kx + 1], wk[kx + 2]);
                    let (a, b, c) = (tap(row, kx), tap(row, kx + 1), tap(row, kx + 2));
                    for ((o, &a), (&b, &c)) in orow.iter_mut().zip(a).zip(b.iter().zip(c)) {
                        *o += w0 * a + w1 * b + w2 * c;
                    }
                    kx += 3;
                }
                for (kx, &wv) in wk.iter().enumerate().skip(kx) {
                    for (o, &v) in orow.iter_mut().zip(tap(row, kx)) {
                        *o += wv * v;
                    }
                }
            }
        }
    });
}

/// Channels a depthwise block computes together, one per SIMD lane.
const LANES: usize = 8;

/// `LANES` depthwise output planes (`out`: `LANES × oh × ow`) from as many input planes (`x`) and
/// `kh × kw` kernels (`k`). The inputs are interleaved into a zero-padded `[row][column][lane]`
/// block, so each tap of each output pixel is one multiply-add across the lanes: wide vectors even
/// for 7×7 planes, where row-at-a-time loops are mostly overhead. Compiled twice, the AVX2 + FMA
/// copy chosen at run time where the CPU has them.
fn depthwise_block(x: &[f32], hw: (usize, usize), k: &[f32], ohw: (usize, usize), geo: ConvGeometry, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { depthwise_block_avx2(x, hw, k, ohw, geo, out) };
        return;
    }
    depthwise_block_any::<false>(x, hw, k, ohw, geo, out);
}

/// [`depthwise_block_any`] compiled for AVX2 and FMA, with fused multiply-adds.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_block_avx2(
    x: &[f32],
    hw: (usize, usize),
    k: &[f32],
    ohw: (usize, usize),
    geo: ConvGeometry,
    out: &mut [f32],
) {
    depthwise_block_any::<true>(x, hw, k, ohw, geo, out);
}

/// `FMA`: multiply-adds fused (one rounding; only where the CPU has them, else a libm call).
#[inline(always)]
fn depthwise_block_any<const FMA: bool>(
    x: &[f32],
    (h, w): (usize, usize),
    k: &[f32],
    (oh, ow): (usize, usize),
    geo: ConvGeometry,
    out: &mut [f32],
) {
    let ConvGeometry {
        kernel: (kh, kw),
        stride: (sy, sx),
        padding: (py, px),
        dilation: (dy, dx),
        ..
    } = geo;
    let taps = kh * kw;
    let ph = (oh - 1) * sy + (kh - 1) * dy + 1;
    let pw = (ow - 1) * sx + (kw - 1) * dx + 1;
    // The kernels lane by lane: wl[t][l] = tap t of channel l.
    let mut wl = vec![[0f32; LANES]; taps];
    for (l, kl) in k.chunks_exact(taps).enumerate() {
        for (t, &v) in kl.iter().enumerate() {
            wl[t][l] = v;
        }
    }
    BLOCK.with_borrow_mut(|buf| {
        buf.clear();
        buf.resize(ph * pw, [0.0; LANES]);
        for (l, plane) in x.chunks_exact(h * w).enumerate() {
            for iy in 0..h.min(ph.saturating_sub(py)) {
                let row = &mut buf[(iy + py) * pw..(iy + py + 1) * pw];
                let src = &plane[iy * w..(iy + 1) * w];
                for (d, &v) in row.iter_mut().skip(px).zip(src) {
                    d[l] = v;
                }
            }
        }
        let n = oh * ow;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = [0f32; LANES];
                for ky in 0..kh {
                    let base = (oy * sy + ky * dy) * pw + ox * sx;
                    for kx in 0..kw {
                        let v = &buf[base + kx * dx];
                        let wt = &wl[ky * kw + kx];
                        for l in 0..LANES {
                            acc[l] = if FMA {
                                wt[l].mul_add(v[l], acc[l])
                            } else {
                                acc[l] + wt[l] * v[l]
                            };
                        }
                    }
                }
                for (l, &a) in acc.iter().enumerate() {
                    out[l * n + oy * ow + ox] = a;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane-blocked kernel, both builds (plain and fused multiply-add, whichever the CPU
    /// running the test would not pick is exercised too), against the per-plane one.
    #[test]
    fn blocked_depthwise_matches_the_per_plane_kernel() {
        let geos = [
            ((3, 3), (1, 1), (1, 1), (1, 1)),
            ((3, 3), (2, 2), (1, 1), (1, 1)),
            ((5, 5), (2, 1), (2, 2), (1, 1)),
            ((3, 3), (1, 1), (2, 2), (2, 2)),
            ((1, 7), (1, 1), (0, 3), (1, 1)),
        ];
        let (h, w) = (11, 9);
        let x: Vec<f32> = (0..LANES * h * w)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        for (kernel, stride, padding, dilation) in geos {
            let geo = ConvGeometry {
                kernel,
                stride,
                padding,
                dilation,
                groups: LANES,
            };
            let taps = kernel.0 * kernel.1;
            let k: Vec<f32> = (0..LANES * taps).map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0).collect();
            let out = |size: usize, k: usize, s: usize, p: usize, d: usize| (size + 2 * p - d * (k - 1) - 1) / s + 1;
            let (oh, ow) = (
                out(h, kernel.0, stride.0, padding.0, dilation.0),
                out(w, kernel.1, stride.1, padding.1, dilation.1),
            );
            let n = oh * ow;
            let mut want = vec![0f32; LANES * n];
            for l in 0..LANES {
                depthwise_plane(
                    &x[l * h * w..(l + 1) * h * w],
                    (h, w),
                    &k[l * taps..(l + 1) * taps],
                    (oh, ow),
                    geo,
                    &mut want[l * n..(l + 1) * n],
                );
            }
            let (mut plain, mut fused) = (vec![0f32; LANES * n], vec![0f32; LANES * n]);
            depthwise_block_any::<false>(&x, (h, w), &k, (oh, ow), geo, &mut plain);
            depthwise_block_any::<true>(&x, (h, w), &k, (oh, ow), geo, &mut fused);
            for (i, &v) in want.iter().enumerate() {
                assert!(
                    (plain[i] - v).abs() < 1e-5 && (fused[i] - v).abs() < 1e-5,
                    "{kernel:?} {stride:?} {padding:?} {dilation:?} at {i}: {v} {} {}",
                    plain[i],
                    fused[i]
                );
            }
        }
    }
}
