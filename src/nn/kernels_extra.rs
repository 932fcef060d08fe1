//! The engine's loops for the ops real CNNs add to the plain conv stack (channel shuffle,
//! layer norm, ...): plain loops over whole planes, parallel per channel where a layer is big.

use rayon::prelude::*;

use super::kernels::PAR_MIN;

/// ShuffleNet's shuffle of `c` planes of `plane` values: out plane `j * groups + i` is in plane
/// `i * (c / groups) + j`.
pub(super) fn channel_shuffle(x: &[f32], c: usize, plane: usize, groups: usize) -> Vec<f32> {
    let per = c / groups;
    let mut y = Vec::with_capacity(x.len());
    for oc in 0..c {
        let ic = (oc % groups) * per + oc / groups;
        y.extend_from_slice(&x[ic * plane..(ic + 1) * plane]);
    }
    y
}

/// Layer norm over the `c` channels at each of `plane` positions (`[N]`: one position of `c`
/// features), then `* weight[c] + bias[c]`; the variance biased, as PyTorch's.
pub(super) fn layernorm(x: &[f32], c: usize, plane: usize, eps: f32, weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut mean = vec![0f32; plane];
    for ch in x.chunks_exact(plane) {
        mean.iter_mut().zip(ch).for_each(|(m, &v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= c as f32);
    let mut var = vec![0f32; plane];
    for ch in x.chunks_exact(plane) {
        var.iter_mut()
            .zip(ch)
            .zip(&mean)
            .for_each(|((s, &v), &m)| *s += (v - m) * (v - m));
    }
    let inv: Vec<f32> = var.iter().map(|s| 1.0 / (s / c as f32 + eps).sqrt()).collect();
    let mut y = vec![0f32; x.len()];
    let channel = |(k, (dst, src)): (usize, (&mut [f32], &[f32]))| {
        for (((o, &v), &m), &i) in dst.iter_mut().zip(src).zip(&mean).zip(&inv) {
            *o = (v - m) * i * weight[k] + bias[k];
        }
    };
    if x.len() >= PAR_MIN {
        y.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(channel);
    } else {
        y.chunks_mut(plane).zip(x.chunks(plane)).enumerate().for_each(channel);
    }
    y
}
