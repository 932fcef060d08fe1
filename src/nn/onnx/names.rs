//! Readable layer names from ONNX node names. PyTorch's exporter names nodes by module scope,
//! `/layer1/layer1.0/conv1/Conv`: the module path is `layer1.0.conv1` (a segment that extends the one
//! before it, `layer1` → `layer1.0`, replaces it) and the last segment is the op. A module that
//! produced one layer is named by its path alone; otherwise each layer adds its op segment
//! (`layer1.0.add`, `layer1.0.relu_1`). Other exporters' names are kept, made unique.

use std::collections::{HashMap, HashSet};

/// Module path and op segment of a node (`("layer1.0.conv1", "conv")`).
pub fn split(node_name: &str, fallback: &str) -> (String, String) {
    let base = if node_name.is_empty() { fallback } else { node_name };
    if !base.contains('/') {
        return (String::new(), clean(base));
    }
    let segs: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    let Some((op, modules)) = segs.split_last() else {
        return (String::new(), clean(fallback));
    };
    let mut path: Vec<&str> = Vec::new();
    for seg in modules {
        match path.last() {
            Some(last) if seg.len() > last.len() && seg.starts_with(last) && seg[last.len()..].starts_with('.') => {
                *path.last_mut().expect("checked non-empty") = seg;
            }
            _ => path.push(seg),
        }
    }
    (path.join("."), clean(&op.to_ascii_lowercase()))
}

/// Layer names for (module, op) pairs: the module alone where it produced one layer and holds no
/// other module's layers (`layer1.0` stays a group name), else `module.op`; duplicates get `_2`,
/// `_3`, ...; `taken` (the input's name) is never used.
pub fn assign(parts: &[(String, String)], taken: &str) -> Vec<String> {
    let mut per_module: HashMap<&str, usize> = HashMap::new();
    for (m, _) in parts {
        *per_module.entry(m.as_str()).or_default() += 1;
    }
    let parents: HashSet<&str> = parts
        .iter()
        .flat_map(|(m, _)| m.match_indices('.').map(move |(i, _)| &m[..i]))
        .collect();
    let mut used: HashSet<String> = HashSet::from([taken.to_owned()]);
    parts
        .iter()
        .map(|(m, op)| {
            let base = match (m.is_empty(), per_module[m.as_str()]) {
                (true, _) => op.clone(),
                (false, 1) if !parents.contains(m.as_str()) => m.clone(),
                (false, _) => format!("{m}.{op}"),
            };
            let mut name = base.clone();
            let mut k = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}_{k}");
                k += 1;
            }
            name
        })
        .collect()
}

/// Keep names printable and free of the characters the CLI and scene treat specially.
fn clean(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() { "node".to_owned() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_scopes_become_module_paths() {
        assert_eq!(
            split("/layer1/layer1.0/conv1/Conv", "t"),
            ("layer1.0.conv1".into(), "conv".into())
        );
        assert_eq!(
            split("/stage2/stage2.0/branch1/branch1.0/Conv", "t"),
            ("stage2.0.branch1.0".into(), "conv".into())
        );
        assert_eq!(split("/Flatten", "t"), (String::new(), "flatten".into()));
        assert_eq!(split("", "onnx::Conv 3"), (String::new(), "onnx__Conv_3".into()));
        assert_eq!(split("conv2d_1/BiasAdd", "t"), ("conv2d_1".into(), "biasadd".into()));
        assert_eq!(split("dense_3", "t"), (String::new(), "dense_3".into()));
    }

    #[test]
    fn names_are_unique_and_short_where_they_can_be() {
        let parts = vec![
            ("layer1.0.conv1".to_owned(), "conv".to_owned()),
            ("layer1.0".to_owned(), "add".to_owned()),
            ("layer1.0.relu".to_owned(), "relu".to_owned()),
            ("layer1.0.relu".to_owned(), "relu_1".to_owned()),
            (String::new(), "flatten".to_owned()),
            (String::new(), "flatten".to_owned()),
            (String::new(), "input".to_owned()),
        ];
        assert_eq!(
            assign(&parts, "input"),
            vec![
                "layer1.0.conv1",
                "layer1.0.add",
                "layer1.0.relu.relu",
                "layer1.0.relu.relu_1",
                "flatten",
                "flatten_2",
                "input_2"
            ]
        );
    }
}
