//! What the controllers did this frame, as plain data: the scene's `InputSnapshot` is made from
//! it by a small adapter (no OpenXR types here).

use glam::Vec2;

pub use crate::input::{Hand, Pose};
use crate::input::{HandInput as SnapshotHand, InputSnapshot};

/// One hand's controller this frame. Poses are `None` while not tracked (both position and
/// orientation must be valid).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HandInput {
    pub aim: Option<Pose>,
    pub grip: Option<Pose>,
    pub select: bool,
    pub grab: bool,
    pub fold: bool,
    pub layout: bool,
    pub menu: bool,
    /// −1..1 each axis (a trackpad on Vive controllers).
    pub thumbstick: Vec2,
}

/// Both hands and the head at the frame's predicted display time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct XrInput {
    pub hands: [HandInput; 2],
    /// The midpoint of the eyes.
    pub head: Option<Pose>,
}

impl XrInput {
    pub fn hand(&self, hand: Hand) -> &HandInput {
        &self.hands[hand_index(hand)]
    }

    /// The scene's input for this frame (`time`: seconds since the first frame). An untracked
    /// hand keeps its buttons but casts no ray; a missing grip pose follows the aim pose.
    pub fn to_snapshot(&self, time: f32) -> InputSnapshot {
        let mut out = InputSnapshot {
            time,
            ..InputSnapshot::default()
        };
        for hand in Hand::BOTH {
            let h = self.hand(hand);
            let s: &mut SnapshotHand = out.hand_mut(hand);
            s.tracked = h.aim.is_some();
            if let Some(aim) = h.aim {
                s.aim = aim;
                s.grip = h.grip.unwrap_or(aim);
            }
            (s.select, s.grab, s.fold, s.layout, s.menu) = (h.select, h.grab, h.fold, h.layout, h.menu);
            s.thumbstick = h.thumbstick;
        }
        out
    }
}

/// Index of `hand` in [`XrInput::hands`].
pub fn hand_index(hand: Hand) -> usize {
    match hand {
        Hand::Left => 0,
        Hand::Right => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::{Quat, Vec3};

    #[test]
    fn the_snapshot_carries_poses_buttons_and_tracking_per_hand() {
        let aim = Pose {
            position: Vec3::new(0.2, 1.3, -0.5),
            orientation: Quat::IDENTITY,
        };
        let mut input = XrInput::default();
        input.hands[1] = HandInput {
            aim: Some(aim),
            select: true,
            thumbstick: Vec2::new(0.5, -1.0),
            ..HandInput::default()
        };
        input.hands[0].grab = true;
        let s = input.to_snapshot(1.5);
        assert_eq!(s.time, 1.5);
        let right = s.hand(Hand::Right);
        assert!(right.tracked && right.select && !right.grab);
        assert_eq!((right.aim, right.grip), (aim, aim));
        assert_eq!(right.thumbstick, Vec2::new(0.5, -1.0));
        let left = s.hand(Hand::Left);
        assert!(!left.tracked && left.grab);
    }
}
