//! The dense layers' edges as the renderer takes them: the scene's [`SceneEdges`] as the bundler's
//! plain [`EdgeSet`], and the legend drawn under the first layer with edges.

use glam::{Mat4, Vec3};

use crate::gfx::DrawList;
use crate::gfx::bundle::{BundleStyle, EdgeInstance, EdgeSet};
use crate::gfx::text::{Align, Atlas};
use crate::nn::edges::EdgeValue;
use crate::scene::SceneDraw;
use crate::scene::edges::SceneEdges;
use crate::view::annotate::block_frame;

impl EdgeSet for SceneEdges {
    fn edge_count(&self) -> usize {
        self.edges.len()
    }

    fn edge_instances(&self) -> Vec<EdgeInstance> {
        self.edges
            .iter()
            .map(|e| EdgeInstance::new(e.a, e.b, e.group))
            .collect()
    }

    fn group_count(&self) -> usize {
        self.layers.len()
    }

    fn edge_values(&self) -> &[f32] {
        &self.values
    }

    fn group_max_abs(&self) -> Vec<f32> {
        self.max_abs()
    }
}

/// Over the first layer with edges: what they show (`value`) and the keys that change it, and
/// how many were dropped for speed, if any.
pub fn legend(edges: &SceneEdges, sd: &SceneDraw, value: EdgeValue, style: &BundleStyle, overlay: &mut DrawList) {
    let Some(block) = edges.layers.iter().filter_map(|l| sd.blocks.get(l.target_block)).next() else {
        return;
    };
    // Under the block (its lowest point), upright and turned like its label over it.
    let mut under = block_frame(&block.placement);
    under.w_axis.y = block.bounds.0.y - 0.04;
    let value = match value {
        EdgeValue::Weight => "weight",
        EdgeValue::Importance => "weight x activation",
    };
    let mut lines = vec![(
        format!(
            "edges: {value} (I) - bundling {:.0}% ([ ]) - threshold {:.0}% (T)",
            style.strength * 100.0,
            style.threshold * 100.0
        ),
        [0.85, 0.85, 0.9, 1.0],
    )];
    if edges.dropped > 0 {
        let text = format!(
            "{} of {} edges dropped for speed (the weakest)",
            edges.dropped,
            edges.dropped + edges.edges.len()
        );
        lines.push((text, [1.0, 0.8, 0.3, 1.0]));
    }
    for (k, (text, color)) in lines.iter().enumerate() {
        let down = Vec3::Y * (0.035 * k as f32);
        overlay.glyphs.extend(Atlas::get().layout(
            text,
            under * Mat4::from_translation(-down),
            0.018,
            Align::Center,
            *color,
        ));
    }
}
