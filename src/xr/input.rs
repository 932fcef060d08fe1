//! What the controllers did this frame, as plain data: the scene's `InputSnapshot` is made from
//! it by a small adapter (no OpenXR types here).

use glam::{Quat, Vec2, Vec3};

/// A rigid transform in STAGE space (meters; +Y up, −Z forward).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub position: Vec3,
    pub orientation: Quat,
}

impl Pose {
    /// The direction the pose points along (its −Z axis): the ray of an aim pose.
    pub fn forward(&self) -> Vec3 {
        self.orientation * Vec3::NEG_Z
    }
}

/// Index into [`XrInput::hands`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hand {
    Left = 0,
    Right = 1,
}

impl Hand {
    pub const BOTH: [Hand; 2] = [Hand::Left, Hand::Right];

    pub fn name(self) -> &'static str {
        ["left", "right"][self as usize]
    }
}

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
        &self.hands[hand as usize]
    }
}
