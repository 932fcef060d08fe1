//! ONNX nodes that move data without computing: Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
//! Gather, Concat, Split and Slice. Most change only a value's [`Layout`] (NCHW ↔ NHWC, the steps of a
//! channel shuffle); the rest are netwalk's flatten, concat, slice and channel_shuffle layers.

use candle_onnx::onnx::NodeProto;
use serde_json::json;

use super::fold;
use super::graph::{Act, Graph, Layout, Val};
use super::proto::Attrs;
use crate::nn::error::Result;

impl Graph<'_> {
    /// A `flatten` layer (or nothing for a value already flat); channels-last only when 1×1.
    pub(super) fn flatten_act(&mut self, n: &NodeProto, x: Act) -> Result<Act> {
        match (x.layout, x.chw()) {
            (Layout::Flat, _) => Ok(x),
            (Layout::Nchw, Some(_)) | (Layout::Nhwc, Some((_, 1, 1))) => {
                let len = x.shape.iter().product();
                Ok(self.emit(n, json!({"op": "flatten"}), vec![x], vec![len], Layout::Flat, vec![]))
            }
            _ => Err(self.err(n, format!("flattening ONNX shape {:?} is not supported", x.onnx_dims()))),
        }
    }

    pub(super) fn flatten(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        if Attrs::new(n).int("axis").unwrap_or(1) != 1 {
            return Err(self.err(n, "Flatten with axis ≠ 1 is not supported"));
        }
        let out = self.flatten_act(n, x)?;
        self.pass(n, out)
    }

    pub(super) fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let target = self.constant(n, 1)?.ints();
        let from = x.onnx_dims();
        let to = fold::reshape_dims(&from, &target, Attrs::new(n).int("allowzero").unwrap_or(0) != 0)
            .map_err(|m| self.err(n, m))?;
        if to == from {
            return self.pass(n, x);
        }
        let total: usize = from.iter().product();
        match (x.layout, to.as_slice()) {
            (_, &[1, t]) if t == total => {
                let out = self.flatten_act(n, x)?;
                self.pass(n, out)
            }
            (Layout::Nchw, &[1, g, cg, h, w]) if Some((g * cg, h, w)) == x.chw() && g > 0 => {
                self.pass(n, Act { layout: Layout::Grouped(g), ..x })
            }
            (Layout::GroupedT(g), &[1, c, h, w]) if Some((c, h, w)) == x.chw() => {
                let shape = x.shape.clone();
                let out = self.emit(n, json!({"op": "channel_shuffle", "groups": g}), vec![x], shape, Layout::Nchw, vec![]);
                self.pass(n, out)
            }
            _ => Err(self.err(n, format!("reshaping ONNX shape {from:?} to {to:?} is not supported (netwalk reads flatten and channel-shuffle reshapes)"))),
        }
    }

    pub(super) fn transpose(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let perm = Attrs::new(n).ints("perm").map(<[i64]>::to_vec).unwrap_or_default();
        let layout = match (x.layout, perm.as_slice()) {
            (Layout::Nchw, [0, 2, 3, 1]) => Layout::Nhwc,
            (Layout::Nhwc, [0, 3, 1, 2]) => Layout::Nchw,
            (Layout::Grouped(g), [0, 2, 1, 3, 4]) => Layout::GroupedT(g),
            (Layout::Flat, [0, 1]) => Layout::Flat,
            _ => {
                return Err(self.err(n, format!("transposing ONNX shape {:?} by {perm:?} is not supported (netwalk reads NCHW↔NHWC and channel shuffles)", x.onnx_dims())));
            }
        };
        self.pass(n, Act { layout, ..x })
    }

    pub(super) fn squeeze(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let dims = x.onnx_dims();
        let axes = if self.opset >= 13 {
            self.opt_constant(n, 1)?.map(|c| c.ints())
        } else {
            Attrs::new(n).ints("axes").map(<[i64]>::to_vec)
        };
        let r = dims.len() as i64;
        let mut axes: Vec<i64> = match axes {
            Some(a) => a.iter().map(|&v| if v < 0 { v + r } else { v }).collect(),
            None => (1..r).filter(|&i| dims[i as usize] == 1).collect(),
        };
        axes.sort_unstable();
        match (x.layout, axes.as_slice(), x.chw()) {
            (Layout::Nchw, [2, 3], Some((_, 1, 1))) | (Layout::Nhwc, [1, 2], Some((_, 1, 1))) => {
                let out = self.flatten_act(n, x)?;
                self.pass(n, out)
            }
            _ => Err(self.err(
                n,
                format!("squeezing axes {axes:?} of ONNX shape {dims:?} is not supported"),
            )),
        }
    }

    /// `Unsqueeze(axes = [1])` of a gathered channel: the NCHW single channel again.
    pub(super) fn unsqueeze(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let axes = if self.opset >= 13 {
            self.opt_constant(n, 1)?.map(|c| c.ints())
        } else {
            Attrs::new(n).ints("axes").map(<[i64]>::to_vec)
        };
        let axes = axes.unwrap_or_default();
        match (x.layout, axes.as_slice()) {
            (Layout::Nhw, [1] | [-3]) => self.pass(
                n,
                Act {
                    layout: Layout::Nchw,
                    ..x
                },
            ),
            _ => Err(self.err(
                n,
                format!(
                    "unsqueezing ONNX shape {:?} at {axes:?} is not supported",
                    x.onnx_dims()
                ),
            )),
        }
    }

    /// `Gather` along the channel axis with a constant index (or a run of consecutive indices):
    /// a channel slice.
    pub(super) fn gather(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.chw_act(n)?;
        let idx = self.constant(n, 1)?;
        if Attrs::new(n).int("axis").unwrap_or(0) != 1 {
            return Err(self.err(
                n,
                "Gather of an activation along an axis other than the channels is not supported",
            ));
        }
        let c = x.shape[0] as i64;
        let v: Vec<i64> = idx.ints().iter().map(|&i| if i < 0 { i + c } else { i }).collect();
        let Some(&first) = v.first() else {
            return Err(self.err(n, "Gather with no index"));
        };
        let run = v.iter().enumerate().all(|(k, &i)| i == first + k as i64);
        if !run || first < 0 || first + v.len() as i64 > c || idx.dims.len() > 1 {
            return Err(self.err(
                n,
                format!("Gather of channels {v:?} of {c}: netwalk reads one channel or a run of consecutive ones"),
            ));
        }
        let (s, e) = (first as usize, first as usize + v.len());
        let mut shape = x.shape.clone();
        shape[0] = e - s;
        // A scalar index drops the channel axis: `[1, H, W]` until an Unsqueeze restores it.
        let layout = if idx.dims.is_empty() { Layout::Nhw } else { Layout::Nchw };
        let out = self.emit(
            n,
            json!({"op": "slice", "start": s, "end": e}),
            vec![x],
            shape,
            layout,
            vec![],
        );
        self.pass(n, out)
    }

    /// The channel axis of a value's ONNX layout, for Concat/Split/Slice.
    pub(super) fn channel_axis(&self, n: &NodeProto, x: &Act, axis: i64) -> Result<()> {
        let r = x.onnx_dims().len() as i64;
        let axis = if axis < 0 { axis + r } else { axis };
        let ok = match x.layout {
            Layout::Nchw | Layout::Flat => axis == 1,
            Layout::Nhwc => axis == 3,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.err(
                n,
                format!(
                    "axis {axis} of ONNX shape {:?}: netwalk joins and splits channels only",
                    x.onnx_dims()
                ),
            ))
        }
    }

    pub(super) fn concat(&mut self, n: &NodeProto) -> Result<()> {
        let ins: Vec<Act> = (0..n.input.len()).map(|i| self.act(n, i)).collect::<Result<_>>()?;
        let axis = Attrs::new(n).int("axis").unwrap_or(1);
        if ins.is_empty() {
            return Err(self.err(n, "Concat of no inputs"));
        }
        for x in &ins {
            self.channel_axis(n, x, axis)?;
            if x.layout != ins[0].layout || x.shape[1..] != ins[0].shape[1..] {
                return Err(self.err(n, "inputs of different layouts or sizes"));
            }
        }
        if ins.len() == 1 {
            return self.pass(n, ins[0].clone());
        }
        let mut shape = ins[0].shape.clone();
        shape[0] = ins.iter().map(|x| x.shape[0]).sum();
        let layout = ins[0].layout;
        let out = self.emit(n, json!({"op": "concat"}), ins, shape, layout, vec![]);
        self.pass(n, out)
    }

    pub(super) fn slice_layer(&mut self, n: &NodeProto, x: &Act, start: usize, end: usize, out_index: usize) {
        let mut shape = x.shape.clone();
        shape[0] = end - start;
        let out = self.emit(
            n,
            json!({"op": "slice", "start": start, "end": end}),
            vec![x.clone()],
            shape,
            x.layout,
            vec![],
        );
        self.set(n, out_index, Val::Act(out));
    }

    pub(super) fn split(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let a = Attrs::new(n);
        self.channel_axis(n, &x, a.int("axis").unwrap_or(0))?;
        let c = x.shape[0];
        let parts = n.output.len().max(1);
        let sizes: Vec<i64> = if self.opset >= 13 {
            self.opt_constant(n, 1)?.map(|s| s.ints()).unwrap_or_default()
        } else {
            a.ints("split").map(<[i64]>::to_vec).unwrap_or_default()
        };
        let sizes: Vec<usize> = if sizes.is_empty() {
            let each = c.div_ceil(parts);
            (0..parts).map(|i| each.min(c.saturating_sub(i * each))).collect()
        } else {
            sizes.iter().map(|&s| s.max(0) as usize).collect()
        };
        if sizes.len() != parts || sizes.iter().sum::<usize>() != c || sizes.contains(&0) {
            return Err(self.err(
                n,
                format!("split sizes {sizes:?} do not divide {c} channels into {parts} outputs"),
            ));
        }
        let mut start = 0;
        for (i, s) in sizes.iter().enumerate() {
            self.slice_layer(n, &x, start, start + s, i);
            start += s;
        }
        Ok(())
    }

    pub(super) fn slice(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.act(n, 0)?;
        let (starts, ends, axes, steps) = if self.opset >= 10 {
            let get = |g: &Self, i| g.opt_constant(n, i).map(|c| c.map(|c| c.ints()));
            (
                get(self, 1)?.unwrap_or_default(),
                get(self, 2)?.unwrap_or_default(),
                get(self, 3)?,
                get(self, 4)?,
            )
        } else {
            let a = Attrs::new(n);
            let v = |k| a.ints(k).map(<[i64]>::to_vec);
            (
                v("starts").unwrap_or_default(),
                v("ends").unwrap_or_default(),
                v("axes"),
                None,
            )
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        if starts.len() != 1 || ends.len() != 1 || axes.len() != 1 || steps.as_ref().is_some_and(|s| s != &[1]) {
            return Err(self.err(n, "netwalk reads step-1 slices along one axis"));
        }
        self.channel_axis(n, &x, axes[0])?;
        let c = x.shape[0] as i64;
        let clampi = |v: i64| (if v < 0 { v + c } else { v }).clamp(0, c) as usize;
        let (s, e) = (clampi(starts[0]), clampi(ends[0]));
        if e <= s {
            return Err(self.err(n, format!("empty channel slice {s}..{e}")));
        }
        if (s, e) == (0, c as usize) {
            return self.pass(n, x);
        }
        self.slice_layer(n, &x, s, e, 0);
        Ok(())
    }
}
