//! Constant folding: nodes whose inputs are all constants (shape computations such as
//! Shape → Gather → Unsqueeze → Concat feeding a Reshape, weights reshaped or transposed in the
//! graph) are evaluated here, so the translation sees plain constants.

use candle_onnx::onnx::NodeProto;

use super::proto::{Attrs, Const, Data, element_count};

/// Most values a folded constant may have (shape computations are tiny; this bounds a hostile file).
const FOLD_LIMIT: usize = 1 << 24;

/// The node's outputs if it can be evaluated on constant inputs `ins`; `Err` with a reason when it
/// is a foldable op used in a way netwalk does not evaluate; `Ok(None)` when it is not foldable.
pub fn fold(node: &NodeProto, ins: &[Option<&Const>], opset: i64) -> Result<Option<Vec<Const>>, String> {
    let a = Attrs::new(node);
    let c = |i: usize| -> Result<&Const, String> {
        ins.get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("missing constant input {i}"))
    };
    let out = match node.op_type.as_str() {
        "Identity" | "Dropout" => c(0)?.clone(),
        "Cast" => {
            let x = c(0)?;
            match a.int("to") {
                Some(1) | Some(10) | Some(11) | Some(16) => Const::f32(x.dims.clone(), x.floats()),
                _ => Const::i64(x.dims.clone(), x.ints()),
            }
        }
        "Unsqueeze" => {
            let x = c(0)?;
            let axes = if opset >= 13 {
                c(1)?.ints()
            } else {
                a.ints("axes").unwrap_or(&[]).to_vec()
            };
            let rank = x.dims.len() + axes.len();
            let mut axes: Vec<usize> = axes.iter().map(|&ax| norm_axis(ax, rank)).collect::<Result<_, _>>()?;
            axes.sort_unstable();
            let mut dims = x.dims.clone();
            for ax in axes {
                if ax > dims.len() {
                    return Err(format!("axis {ax} out of range"));
                }
                dims.insert(ax, 1);
            }
            Const {
                dims,
                data: x.data.clone(),
            }
        }
        "Squeeze" => {
            let x = c(0)?;
            let axes = if opset >= 13 {
                ins.get(1).copied().flatten().map(Const::ints)
            } else {
                a.ints("axes").map(<[i64]>::to_vec)
            };
            let dims = match axes {
                None => x.dims.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let axes: Vec<usize> = axes
                        .iter()
                        .map(|&ax| norm_axis(ax, x.dims.len()))
                        .collect::<Result<_, _>>()?;
                    x.dims
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                }
            };
            Const {
                dims,
                data: x.data.clone(),
            }
        }
        "Concat" => {
            let parts: Vec<&Const> = (0..node.input.len()).map(c).collect::<Result<_, _>>()?;
            if parts.iter().any(|p| p.dims.len() > 1) {
                return Err("only 1-D constant concatenation is evaluated".into());
            }
            let n = parts.iter().map(|p| p.len()).sum();
            if parts.iter().all(|p| matches!(p.data, Data::I64(_))) {
                Const::i64(vec![n], parts.iter().flat_map(|p| p.ints()).collect())
            } else {
                Const::f32(vec![n], parts.iter().flat_map(|p| p.floats()).collect())
            }
        }
        "Gather" => {
            let (x, idx) = (c(0)?, c(1)?);
            if x.dims.len() != 1 || a.int("axis").unwrap_or(0) != 0 {
                return Err("only gathering from a 1-D constant is evaluated".into());
            }
            let n = x.len() as i64;
            let mut picked = Vec::new();
            for &i in &idx.ints() {
                let j = if i < 0 { i + n } else { i };
                if !(0..n).contains(&j) {
                    return Err(format!("index {i} out of range for {n} values"));
                }
                picked.push(j as usize);
            }
            let data = match &x.data {
                Data::F32(v) => Data::F32(picked.iter().map(|&j| v[j]).collect()),
                Data::I64(v) => Data::I64(picked.iter().map(|&j| v[j]).collect()),
            };
            Const {
                dims: idx.dims.clone(),
                data,
            }
        }
        "Slice" => {
            let x = c(0)?;
            let (starts, ends, axes, steps) = if opset >= 10 {
                let opt = |i: usize| ins.get(i).copied().flatten().map(Const::ints);
                (c(1)?.ints(), c(2)?.ints(), opt(3), opt(4))
            } else {
                let v = |k| a.ints(k).map(<[i64]>::to_vec);
                (
                    v("starts").unwrap_or_default(),
                    v("ends").unwrap_or_default(),
                    v("axes"),
                    None,
                )
            };
            slice(x, &starts, &ends, axes, steps)?
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let (x, y) = (c(0)?, c(1)?);
            binary(&node.op_type, x, y)?
        }
        "Reshape" => {
            let (x, shape) = (c(0)?, c(1)?);
            let dims = reshape_dims(&x.dims, &shape.ints(), a.int("allowzero").unwrap_or(0) != 0)?;
            Const {
                dims,
                data: x.data.clone(),
            }
        }
        "Transpose" => {
            let x = c(0)?;
            if x.dims.len() != 2 {
                return Err("only 2-D constant transposes are evaluated".into());
            }
            let (r, k) = (x.dims[0], x.dims[1]);
            let v = x.floats();
            let mut t = vec![0.0; v.len()];
            for i in 0..r {
                for j in 0..k {
                    t[j * r + i] = v[i * k + j];
                }
            }
            Const::f32(vec![k, r], t)
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = c(0)?
                .ints()
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| format!("bad dimension {d}")))
                .collect::<Result<_, _>>()?;
            let n = element_count(&shape)
                .filter(|&n| n <= FOLD_LIMIT)
                .ok_or("absurd shape")?;
            let fill = a.tensor("value").map(|t| {
                (
                    t.data_type,
                    t.float_data.first().copied(),
                    t.int64_data.first().copied(),
                    t.raw_data.clone(),
                )
            });
            match fill {
                Some((7, _, i, raw)) => {
                    let v = i
                        .or_else(|| raw.get(..8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))))
                        .unwrap_or(0);
                    Const::i64(shape, vec![v; n])
                }
                Some((_, f, _, raw)) => {
                    let v = f
                        .or_else(|| raw.get(..4).map(|b| f32::from_le_bytes(b.try_into().unwrap_or([0; 4]))))
                        .unwrap_or(0.0);
                    Const::f32(shape, vec![v; n])
                }
                None => Const::f32(shape, vec![0.0; n]),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

/// ONNX Slice of a constant: per axis start/end clamped as the spec says, any non-zero step.
fn slice(
    x: &Const,
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> Result<Const, String> {
    let rank = x.dims.len();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let mut picks: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts.len() {
        let ax = norm_axis(axes[k], rank)?;
        let n = x.dims[ax] as i64;
        let step = steps[k];
        if step == 0 {
            return Err("slice step 0".into());
        }
        let fix = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
        let (s, e) = if step > 0 {
            (fix(starts[k]).clamp(0, n), fix(ends[k]).clamp(0, n))
        } else {
            (fix(starts[k]).clamp(0, n - 1), fix(ends[k]).clamp(-1, n - 1))
        };
        let mut idx = Vec::new();
        let mut i = s;
        while (step > 0 && i < e) || (step < 0 && i > e) {
            idx.push(i as usize);
            i += step;
        }
        picks[ax] = idx;
    }
    let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let n = element_count(&dims)
        .filter(|&n| n <= FOLD_LIMIT)
        .ok_or("absurd shape")?;
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * x.dims[i + 1];
    }
    let mut offsets = Vec::with_capacity(n);
    for flat in 0..n {
        let (mut rem, mut off) = (flat, 0);
        for ax in (0..rank).rev() {
            off += picks[ax][rem % dims[ax]] * strides[ax];
            rem /= dims[ax];
        }
        offsets.push(off);
    }
    let data = match &x.data {
        Data::F32(v) => Data::F32(offsets.iter().map(|&o| v[o]).collect()),
        Data::I64(v) => Data::I64(offsets.iter().map(|&o| v[o]).collect()),
    };
    Ok(Const { dims, data })
}

fn norm_axis(ax: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let v = if ax < 0 { ax + r } else { ax };
    if (0..r.max(1)).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("axis {ax} out of range for rank {rank}"))
    }
}

/// ONNX Reshape's target: 0 copies the input's dimension (unless `allowzero`), -1 is inferred.
pub fn reshape_dims(input: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut dims = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            0 if !allowzero => dims.push(*input.get(i).ok_or("0 copies a dimension the input lacks")?),
            t if t >= 0 => dims.push(t as usize),
            t => return Err(format!("bad target dimension {t}")),
        }
    }
    let known = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("absurd target shape")?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {target:?}"));
        }
        dims[i] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {input:?} ({total} values) to {target:?}"));
    }
    Ok(dims)
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(x: &[usize], y: &[usize]) -> Option<Vec<usize>> {
    let r = x.len().max(y.len());
    let at = |s: &[usize], i: usize| if i + s.len() >= r { s[i + s.len() - r] } else { 1 };
    (0..r)
        .map(|i| match (at(x, i), at(y, i)) {
            (a, b) if a == b => Some(a),
            (1, b) => Some(b),
            (a, 1) => Some(a),
            _ => None,
        })
        .collect()
}

fn binary(op: &str, x: &Const, y: &Const) -> Result<Const, String> {
    let dims =
        broadcast(&x.dims, &y.dims).ok_or_else(|| format!("shapes {:?} and {:?} do not broadcast", x.dims, y.dims))?;
    let n = element_count(&dims)
        .filter(|&n| n <= FOLD_LIMIT)
        .ok_or("absurd shape")?;
    let index = |d: &[usize], mut flat: usize| -> usize {
        // The element of a broadcast operand of dims `d` at output position `flat`.
        let mut off = 0;
        let mut stride = 1;
        for (k, &od) in dims.iter().enumerate().rev() {
            let coord = flat % od;
            flat /= od;
            let dk = k as isize - (dims.len() as isize - d.len() as isize);
            if dk >= 0 {
                let dd = d[dk as usize];
                if dd != 1 {
                    off += coord * stride;
                }
                stride *= dd;
            }
        }
        off
    };
    if let (Data::I64(a), Data::I64(b)) = (&x.data, &y.data) {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let (p, q) = (a[index(&x.dims, i)], b[index(&y.dims, i)]);
            v.push(match op {
                "Add" => p.wrapping_add(q),
                "Sub" => p.wrapping_sub(q),
                "Mul" => p.wrapping_mul(q),
                _ => {
                    if q == 0 {
                        return Err("integer division by zero".into());
                    }
                    p / q
                }
            });
        }
        return Ok(Const::i64(dims, v));
    }
    let (a, b) = (x.floats(), y.floats());
    let v = (0..n)
        .map(|i| {
            let (p, q) = (a[index(&x.dims, i)], b[index(&y.dims, i)]);
            match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            }
        })
        .collect();
    Ok(Const::f32(dims, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_reverse_rows_as_torch_pad_does() {
        let x = Const::i64(vec![4, 2], vec![0, 1, 2, 3, 4, 5, 6, 7]);
        let r = slice(&x, &[-1], &[i64::MIN + 1], Some(vec![0]), Some(vec![-1])).unwrap();
        assert_eq!(r, Const::i64(vec![4, 2], vec![6, 7, 4, 5, 2, 3, 0, 1]));
        let r = slice(&Const::i64(vec![4], vec![1, 3, 8, 8]), &[2], &[i64::MAX], None, None).unwrap();
        assert_eq!(r.ints(), vec![8, 8]);
    }

    #[test]
    fn reshape_targets() {
        assert_eq!(reshape_dims(&[1, 512, 1, 1], &[1, -1], false), Ok(vec![1, 512]));
        assert_eq!(
            reshape_dims(&[1, 48, 8, 8], &[0, 2, 24, 8, 8], false),
            Ok(vec![1, 2, 24, 8, 8])
        );
        assert!(reshape_dims(&[1, 48, 8, 8], &[1, 5, -1], false).is_err());
    }

    #[test]
    fn broadcasting_binary_ops() {
        let x = Const::i64(vec![2, 1], vec![1, 2]);
        let y = Const::i64(vec![3], vec![10, 20, 30]);
        assert_eq!(
            binary("Add", &x, &y).unwrap(),
            Const::i64(vec![2, 3], vec![11, 21, 31, 12, 22, 32])
        );
        assert_eq!(
            binary("Div", &Const::i64(vec![1], vec![-7]), &Const::i64(vec![], vec![2]))
                .unwrap()
                .ints(),
            vec![-3]
        );
    }
}
