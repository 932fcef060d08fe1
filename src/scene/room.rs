//! Where the blocks stand in the room: a path through the play area ("walk-in" scale) or a row on
//! a table in front of the user ("tabletop" scale). The user stands at the stage origin looking
//! down −Z (OpenXR STAGE space: +Y up, meters).

use glam::{Quat, Vec2, Vec3};

use super::layout::EYE_HEIGHT;
use super::transform::Transform;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// Life-size blocks along a path through the play area, the input close to the user.
    #[default]
    WalkIn,
    /// The whole network scaled into [`TABLE_SPAN`] in front of the user, at table height.
    Tabletop,
}

/// The play area: a rectangle centered on the stage origin (half width in x, half depth in z).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub half_extents: Vec2,
}

impl Default for Stage {
    /// 3 m × 3 m, used when the XR runtime reports no bounds.
    fn default() -> Self {
        Stage {
            half_extents: Vec2::splat(1.5),
        }
    }
}

/// Distance from the user to the input block (walk-in).
pub const WALK_IN_START: f32 = 0.5;
/// Block centers keep this far from the stage edges where they can.
pub const STAGE_MARGIN: f32 = 0.15;
/// Lowest edge of a block above the floor.
pub const MIN_CLEARANCE: f32 = 0.3;
/// Tabletop: the network's width fits in this many meters...
pub const TABLE_SPAN: f32 = 0.9;
/// ...centered this far in front of the user, at this height.
pub const TABLE_DISTANCE: f32 = 0.6;
pub const TABLE_HEIGHT: f32 = 1.1;

/// Distance between consecutive blocks on the walk-in path: bigger blocks get more room.
pub fn path_spacing(prev: Vec2, next: Vec2) -> f32 {
    0.4 + 0.5 * prev.max_element().max(next.max_element())
}

/// Places blocks of the given sizes (width, height): the network root in the stage
/// (`stage_from_root`) and each block on the root (`root_from_block`).
///
/// Walk-in: the path starts [`WALK_IN_START`] in front of the user and goes away (−Z); where the
/// next step would leave the stage (less [`STAGE_MARGIN`]) it turns right, so long networks wind
/// around the user instead of leaving the room (one lap, see [`MAX_TURNS`]). Each block faces back along the path (towards
/// whoever walks it from the input). Centers are at eye height, higher for blocks too tall for it.
/// Tabletop: a left-to-right row facing the user, scaled to [`TABLE_SPAN`].
///
/// `ranks` (see [`super::layout::ranks`]) groups the blocks: blocks of one rank are parallel
/// branches and share one place, side by side across the path (walk-in) or stacked (tabletop),
/// [`BRANCH_GAP`] apart, in block order.
pub fn arrange(sizes: &[Vec2], ranks: &[usize], stage: &Stage, scale: Scale) -> (Transform, Vec<Transform>) {
    let groups = rank_groups(ranks, sizes.len());
    // Side by side across the path, or stacked on the table.
    let across = match scale {
        Scale::WalkIn => Vec2::X,
        Scale::Tabletop => Vec2::Y,
    };
    let group_sizes: Vec<Vec2> = groups
        .iter()
        .map(|g| {
            let along: f32 = g.iter().map(|&k| sizes[k].dot(across)).sum::<f32>() + BRANCH_GAP * (g.len() - 1) as f32;
            let other = g.iter().map(|&k| sizes[k].dot(Vec2::ONE - across)).fold(0.0, f32::max);
            across * along + (Vec2::ONE - across) * other
        })
        .collect();
    let (root, places) = match scale {
        Scale::WalkIn => (Transform::IDENTITY, walk_in(&group_sizes, stage)),
        Scale::Tabletop => tabletop(&group_sizes),
    };
    let mut out = vec![Transform::IDENTITY; sizes.len()];
    for ((g, place), gsize) in groups.iter().zip(places).zip(&group_sizes) {
        // From one end of the group to the other, each block centered on its own share.
        let mut at = -gsize.dot(across) / 2.0;
        for &k in g {
            let w = sizes[k].dot(across);
            let offset = (across * (at + w / 2.0)).extend(0.0);
            out[k] = place * Transform::from_translation(offset);
            at += w + BRANCH_GAP;
        }
    }
    (root, out)
}

/// Space between parallel branches of one rank.
pub const BRANCH_GAP: f32 = 0.3;

/// Block indices by rank (ranks without blocks are skipped), each group in block order. Without
/// ranks for every block, each block is its own group.
fn rank_groups(ranks: &[usize], n: usize) -> Vec<Vec<usize>> {
    if ranks.len() != n {
        return (0..n).map(|k| vec![k]).collect();
    }
    let max = ranks.iter().copied().max().unwrap_or(0);
    let mut groups = vec![Vec::new(); max + 1];
    for (k, &r) in ranks.iter().enumerate() {
        groups[r].push(k);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// Turns the walk-in path makes at most: one lap around the user. Blocks stand across the path
/// (a block is as wide as the lap is deep), so a second lap inside the first would run through
/// the first's blocks and the user; a network longer than a lap carries on out of the play area
/// past its start (where tabletop scale or a two-hand grab brings it back in).
pub const MAX_TURNS: usize = 4;

fn walk_in(sizes: &[Vec2], stage: &Stage) -> Vec<Transform> {
    let limit = (stage.half_extents - STAGE_MARGIN).max(Vec2::splat(0.1));
    // Only the coordinate along the heading changes with a step.
    let fits = |p: Vec2, heading: Vec2| (p * heading).abs().max_element() <= limit.dot(heading.abs()) + 1e-4;
    // Path positions in the floor plane: (x, z).
    let mut pos = Vec2::new(0.0, -WALK_IN_START.min(limit.y));
    let mut heading = Vec2::new(0.0, -1.0);
    let mut turns = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for (k, size) in sizes.iter().enumerate() {
        if k > 0 {
            let step = path_spacing(sizes[k - 1], *size);
            // Turn right (clockwise seen from above) where the step would leave the play area.
            while turns < MAX_TURNS && !fits(pos + heading * step, heading) {
                heading = Vec2::new(-heading.y, heading.x);
                turns += 1;
            }
            pos += heading * step;
        }
        let y = EYE_HEIGHT.max(size.y / 2.0 + MIN_CLEARANCE);
        // The block's +Z (its front) faces back along the path.
        let back = Vec3::new(-heading.x, 0.0, -heading.y);
        let rotation = Quat::from_rotation_arc(Vec3::Z, back);
        out.push(Transform::from_rotation_translation(
            rotation,
            Vec3::new(pos.x, y, pos.y),
        ));
    }
    out
}

fn tabletop(sizes: &[Vec2]) -> (Transform, Vec<Transform>) {
    let gap = 0.15;
    let mut x = 0.0;
    let mut blocks = Vec::with_capacity(sizes.len());
    for (k, size) in sizes.iter().enumerate() {
        if k > 0 {
            x += gap + 0.5 * (sizes[k - 1].x + size.x);
        }
        blocks.push(Transform::from_translation(Vec3::new(x, 0.0, 0.0)));
    }
    let (first, last) = (
        sizes.first().copied().unwrap_or(Vec2::ONE),
        sizes.last().copied().unwrap_or(Vec2::ONE),
    );
    let left = -first.x / 2.0;
    let right = x + last.x / 2.0;
    let height = sizes.iter().map(|s| s.y).fold(0.0, f32::max);
    let s = (TABLE_SPAN / (right - left).max(1e-3)).min(TABLE_SPAN / height.max(1e-3));
    let mid = (left + right) / 2.0;
    let root = Transform {
        translation: Vec3::new(-mid * s, TABLE_HEIGHT, -TABLE_DISTANCE),
        rotation: Quat::IDENTITY,
        scale: s,
    };
    (root, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_sizes() -> Vec<Vec2> {
        // Sizes like the demo network's blocks, and a long tail of more.
        let mut v = vec![Vec2::splat(0.28), Vec2::splat(1.0), Vec2::splat(0.6), Vec2::splat(0.67)];
        v.extend(std::iter::repeat_n(Vec2::new(0.04, 0.6), 4));
        v
    }

    #[test]
    fn walk_in_path_starts_near_the_user_turns_at_the_walls_and_stays_inside() {
        let stage = Stage::default();
        let sizes = demo_sizes();
        let chain: Vec<usize> = (0..sizes.len()).collect();
        let (root, blocks) = arrange(&sizes, &chain, &stage, Scale::WalkIn);
        assert_eq!(root, Transform::IDENTITY);
        assert!((blocks[0].translation - Vec3::new(0.0, EYE_HEIGHT, -WALK_IN_START)).length() < 1e-6);
        let mut turned = false;
        for (k, b) in blocks.iter().enumerate() {
            let p = b.translation;
            assert!(
                p.x.abs() <= 1.5 - STAGE_MARGIN + 1e-3 && p.z.abs() <= 1.5 - STAGE_MARGIN + 1e-3,
                "{k}: {p}"
            );
            assert!(p.y - sizes[k].y / 2.0 >= MIN_CLEARANCE - 1e-5);
            if k > 0 {
                let d = (p - blocks[k - 1].translation) * Vec3::new(1.0, 0.0, 1.0);
                assert!((d.length() - path_spacing(sizes[k - 1], sizes[k])).abs() < 1e-4);
                // Each block's front faces back towards the block before it.
                let front = b.rotation * Vec3::Z;
                assert!((front - (-d.normalize())).length() < 1e-4, "{k}: {front} vs {d}");
                turned |= d.z.abs() < 1e-4;
            }
        }
        assert!(turned, "a long network bends");
        // The first block faces the user.
        assert!((blocks[0].rotation * Vec3::Z - Vec3::Z).length() < 1e-5);
    }

    #[test]
    fn a_long_network_goes_once_round_the_user_and_never_onto_itself() {
        let sizes = vec![Vec2::splat(0.3); 30];
        let blocks = walk_in(&sizes, &Stage::default());
        let inside = blocks
            .iter()
            .take_while(|b| b.translation.x.abs() <= 1.35 + 1e-3 && b.translation.z.abs() <= 1.35 + 1e-3)
            .count();
        // One lap of a 2.7 m square, 0.55 m per step, from 0.5 m in front of the user.
        assert!(inside >= 16, "{inside} blocks fit");
        for (i, a) in blocks.iter().enumerate() {
            let p = a.translation;
            assert!(
                blocks[..i].iter().all(|b| b.translation.distance(p) > 0.5),
                "block {i} at {p}"
            );
            assert!(
                Vec2::new(p.x, p.z).length() >= 0.5 - 1e-4,
                "block {i} at {p} is on the user"
            );
        }
    }

    #[test]
    fn parallel_branches_stand_side_by_side_across_the_path() {
        // input, conv_a, conv_b (both from the input), add: ranks 0, 1, 1, 2.
        let sizes = vec![
            Vec2::splat(0.3),
            Vec2::new(0.4, 0.3),
            Vec2::new(0.2, 0.3),
            Vec2::splat(0.3),
        ];
        let (_, blocks) = arrange(&sizes, &[0, 1, 1, 2], &Stage::default(), Scale::WalkIn);
        let (a, b) = (blocks[1], blocks[2]);
        // Same distance along the path, facing the same way, apart across it by half of each
        // width plus the gap.
        assert_eq!(a.rotation, b.rotation);
        let across = a.rotation * Vec3::X;
        let d = b.translation - a.translation;
        assert!((d.dot(across) - (0.2 + BRANCH_GAP + 0.1)).abs() < 1e-5, "{d}");
        assert!((d - across * d.dot(across)).length() < 1e-5, "{d}");
        // The group's middle stands one path step from the input, as one block as wide as the
        // group would.
        let middle = ((a.translation - across * 0.2) + (b.translation + across * 0.1)) / 2.0;
        let step = path_spacing(sizes[0], Vec2::new(0.4 + BRANCH_GAP + 0.2, 0.3));
        let flat = (middle - blocks[0].translation) * Vec3::new(1.0, 0.0, 1.0);
        assert!((flat.length() - step).abs() < 1e-4, "{flat} vs {step}");
        // Tabletop: stacked in height at one place in the row.
        let (_, t) = arrange(&sizes, &[0, 1, 1, 2], &Stage::default(), Scale::Tabletop);
        assert!((t[1].translation.x - t[2].translation.x).abs() < 1e-6);
        assert!((t[2].translation.y - t[1].translation.y - (0.15 + BRANCH_GAP + 0.15)).abs() < 1e-5);
    }

    #[test]
    fn tabletop_fits_the_network_in_front_of_the_user() {
        let sizes = demo_sizes();
        let chain: Vec<usize> = (0..sizes.len()).collect();
        let (root, blocks) = arrange(&sizes, &chain, &Stage::default(), Scale::Tabletop);
        let mut lo = Vec3::splat(f32::INFINITY);
        let mut hi = Vec3::splat(f32::NEG_INFINITY);
        for (b, s) in blocks.iter().zip(&sizes) {
            for corner in [Vec3::new(-s.x, -s.y, 0.0) / 2.0, Vec3::new(s.x, s.y, 0.0) / 2.0] {
                let p = (root * *b).transform_point(corner);
                (lo, hi) = (lo.min(p), hi.max(p));
            }
        }
        assert!(hi.x - lo.x <= TABLE_SPAN + 1e-4 && hi.x - lo.x > TABLE_SPAN * 0.99);
        assert!(((lo + hi) / 2.0 - Vec3::new(0.0, TABLE_HEIGHT, -TABLE_DISTANCE)).length() < 1e-3);
        assert!(lo.distance(Vec3::new(0.0, TABLE_HEIGHT, 0.0)) < 1.0 + 1e-3);
    }
}
