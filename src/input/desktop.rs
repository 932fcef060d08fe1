//! The desktop window's mouse and keyboard ([`DesktopInput`]: winit's window events → the
//! scene's [`InputSnapshot`], once per frame) and its camera ([`OrbitCamera`]).

use std::collections::HashSet;

use glam::{Vec2, Vec3};
use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
use winit::keyboard::{KeyCode, PhysicalKey};

use super::{Hand, InputSnapshot, Pose};
use crate::gfx::Camera;

/// A camera orbiting a target point: the desktop's view. Unmoved, it is exactly the camera it
/// started from (so the first frames match an offscreen render of that camera bit for bit).
#[derive(Debug, Clone, Copy)]
pub struct OrbitCamera {
    pub target: Vec3,
    /// The eye relative to the target.
    back: Vec3,
    /// Field of view and clip planes (its eye and target are ignored).
    lens: Camera,
    start_distance: f32,
}

impl OrbitCamera {
    pub fn from_camera(c: &Camera) -> OrbitCamera {
        let back = c.eye - c.target;
        OrbitCamera {
            target: c.target,
            back,
            lens: *c,
            start_distance: back.length(),
        }
    }

    pub fn camera(&self) -> Camera {
        Camera {
            eye: self.target + self.back,
            target: self.target,
            // Zooming out must not clip the far side of the scene.
            far: self.lens.far + (self.back.length() - self.start_distance).max(0.0),
            ..self.lens
        }
    }

    pub fn distance(&self) -> f32 {
        self.back.length()
    }

    /// Around +Y, radians; 0 looks down -Z.
    pub fn yaw(&self) -> f32 {
        self.back.x.atan2(self.back.z)
    }

    /// Turns the eye around the target: `yaw` around +Y, `pitch` up (kept short of the poles).
    pub fn orbit(&mut self, yaw: f32, pitch: f32) {
        if yaw == 0.0 && pitch == 0.0 {
            return;
        }
        let distance = self.distance().max(1e-3);
        let yaw = self.yaw() + yaw;
        let pitch = ((self.back.y / distance).clamp(-1.0, 1.0).asin() + pitch).clamp(-1.5, 1.5);
        let (sy, cy) = yaw.sin_cos();
        let (sp, cp) = pitch.sin_cos();
        self.back = Vec3::new(sy * cp, sp, cy * cp) * distance;
    }

    /// Multiplies the distance to the target by `factor` (within 5 cm..500 m).
    pub fn zoom(&mut self, factor: f32) {
        if factor == 1.0 {
            return;
        }
        let distance = self.distance().max(1e-3);
        self.back *= (distance * factor).clamp(0.05, 500.0) / distance;
    }

    /// Moves eye and target by `step`.
    pub fn walk(&mut self, step: Vec3) {
        self.target += step;
    }
}

/// Checkpoints a wheel notch scrubs the timeline by.
pub const WHEEL_SCRUB: f32 = 0.25;

/// Mouse and keyboard state of the desktop window, gathered from its events and applied once
/// per frame. The mouse is the right controller: its ray goes through the cursor; left button =
/// select, right button = grab (drag to move the layer), F = fold, L = layout, M = menu (reset
/// the layout), Backspace = trace back, Tab = walk-in/tabletop, X = expand a block into its
/// steps, the wheel or left/right arrows = scrub the training timeline, Space = play/pause it
/// (the left thumbstick's flick up), `[` / `]` = less / more edge bundling, I = edges by weight or
/// importance, T = edge threshold. The camera: middle-drag
/// (or Shift + left-drag) looks around, Ctrl + wheel zooms, W/A/S/D move, Q/E down/up, R resets
/// the view.
#[derive(Debug, Default)]
pub struct DesktopInput {
    cursor: Option<Vec2>,
    /// Looking around (middle button, or Shift with the left button).
    dragging: bool,
    left: bool,
    right: bool,
    /// Cursor movement while dragging since the last frame, pixels.
    drag: Vec2,
    /// Wheel lines since the last frame (positive: away from the user, zoom in).
    scroll: f32,
    /// Wheel lines without Ctrl since the last snapshot: timeline steps.
    scrub: f32,
    held: HashSet<KeyCode>,
    reset: bool,
}

impl DesktopInput {
    pub fn on_window_event(&mut self, event: &WindowEvent) {
        match event {
            WindowEvent::CursorMoved { position, .. } => {
                let p = Vec2::new(position.x as f32, position.y as f32);
                if self.dragging
                    && let Some(last) = self.cursor
                {
                    self.drag += p - last;
                }
                self.cursor = Some(p);
            }
            WindowEvent::CursorLeft { .. } => self.cursor = None,
            WindowEvent::MouseInput { button, state, .. } => {
                let shift = self.held.contains(&KeyCode::ShiftLeft) || self.held.contains(&KeyCode::ShiftRight);
                match button {
                    MouseButton::Middle => self.dragging = state.is_pressed(),
                    MouseButton::Left if shift || (self.dragging && !state.is_pressed()) => {
                        self.dragging = state.is_pressed();
                    }
                    MouseButton::Left => self.left = state.is_pressed(),
                    MouseButton::Right => self.right = state.is_pressed(),
                    _ => {}
                }
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let lines = match delta {
                    MouseScrollDelta::LineDelta(_, y) => *y,
                    // Touchpads: about 40 pixels a line.
                    MouseScrollDelta::PixelDelta(p) => p.y as f32 / 40.0,
                };
                // The wheel scrubs the training timeline; with Ctrl it zooms.
                if self.held.contains(&KeyCode::ControlLeft) || self.held.contains(&KeyCode::ControlRight) {
                    self.scroll += lines;
                } else {
                    self.scrub += lines * WHEEL_SCRUB;
                }
            }
            WindowEvent::KeyboardInput { event, .. } => {
                if let PhysicalKey::Code(code) = event.physical_key {
                    match event.state {
                        ElementState::Pressed => {
                            self.reset |= code == KeyCode::KeyR;
                            self.held.insert(code);
                        }
                        ElementState::Released => {
                            self.held.remove(&code);
                        }
                    }
                }
            }
            // Keys released while the window was not focused would stay held.
            WindowEvent::Focused(false) => {
                self.held.clear();
                self.dragging = false;
                self.left = false;
                self.right = false;
            }
            _ => {}
        }
    }

    /// The mouse and keys as the scene's controllers at `time` seconds: the right hand aims from
    /// the eye through the cursor (untracked when the cursor is outside the window).
    pub fn snapshot(&mut self, camera: &Camera, (width, height): (u32, u32), time: f32) -> InputSnapshot {
        let mut snap = InputSnapshot {
            time,
            scrub: std::mem::take(&mut self.scrub),
            ..InputSnapshot::default()
        };
        // Left/right arrows: the left thumbstick, which scrubs the training timeline.
        let arrows = f32::from(u8::from(self.held.contains(&KeyCode::ArrowRight)))
            - f32::from(u8::from(self.held.contains(&KeyCode::ArrowLeft)));
        let space = f32::from(u8::from(self.held.contains(&KeyCode::Space)));
        snap.hand_mut(Hand::Left).thumbstick = Vec2::new(arrows, space);
        // [ and ]: less or more edge bundling.
        snap.bundle = f32::from(u8::from(self.held.contains(&KeyCode::BracketRight)))
            - f32::from(u8::from(self.held.contains(&KeyCode::BracketLeft)));
        // I: weight or importance; T: the edge threshold.
        snap.edge_value = self.held.contains(&KeyCode::KeyI);
        snap.edge_threshold = self.held.contains(&KeyCode::KeyT);
        let Some(cursor) = self.cursor.filter(|_| width > 0 && height > 0) else {
            return snap;
        };
        let through = camera.unproject(cursor, width, height);
        let Some(aim) = Pose::looking_at(camera.eye, through) else {
            return snap;
        };
        let key = |k: KeyCode| self.held.contains(&k);
        let hand = snap.hand_mut(Hand::Right);
        hand.tracked = true;
        hand.aim = aim;
        hand.grip = aim;
        hand.select = self.left;
        hand.grab = self.right;
        hand.fold = key(KeyCode::KeyF);
        hand.layout = key(KeyCode::KeyL);
        hand.menu = key(KeyCode::KeyM);
        hand.thumbstick = if key(KeyCode::Backspace) {
            Vec2::NEG_X
        } else if key(KeyCode::Tab) {
            Vec2::X
        } else if key(KeyCode::KeyX) {
            Vec2::NEG_Y
        } else {
            Vec2::ZERO
        };
        snap
    }

    /// Moves `orbit` by the input since the last call (`dt` seconds ago) and clears the
    /// per-frame deltas. Returns true when the view should be reset to its start.
    pub fn apply(&mut self, orbit: &mut OrbitCamera, dt: f32) -> bool {
        const RADIANS_PER_PIXEL: f32 = 0.005;
        let drag = std::mem::take(&mut self.drag);
        orbit.orbit(-drag.x * RADIANS_PER_PIXEL, drag.y * RADIANS_PER_PIXEL);
        orbit.zoom(0.9f32.powf(std::mem::take(&mut self.scroll)));
        let axis = |plus: KeyCode, minus: KeyCode| {
            f32::from(u8::from(self.held.contains(&plus))) - f32::from(u8::from(self.held.contains(&minus)))
        };
        // Walking moves in the horizontal plane, relative to where the camera looks.
        let (sy, cy) = orbit.yaw().sin_cos();
        let forward = -Vec3::new(sy, 0.0, cy);
        let right = Vec3::new(cy, 0.0, -sy);
        let step = axis(KeyCode::KeyW, KeyCode::KeyS) * forward
            + axis(KeyCode::KeyD, KeyCode::KeyA) * right
            + axis(KeyCode::KeyE, KeyCode::KeyQ) * Vec3::Y;
        // Speed scales with the distance so both close-ups and the overview move usefully.
        if step != Vec3::ZERO {
            orbit.walk(step * (0.5 * orbit.distance()).max(0.5) * dt);
        }
        std::mem::take(&mut self.reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orbit_camera_round_trips_a_camera() {
        let c = Camera::look_at(Vec3::new(1.0, 2.0, 3.0), Vec3::new(0.5, 1.0, -2.0));
        let mut orbit = OrbitCamera::from_camera(&c);
        assert_eq!(orbit.camera(), c, "unmoved, it is the same camera exactly");
        orbit.orbit(0.3, -0.2);
        orbit.orbit(-0.3, 0.2);
        let o = orbit.camera();
        assert!((o.eye - c.eye).length() < 1e-4, "{} vs {}", o.eye, c.eye);
        assert_eq!(o.target, c.target);
    }

    #[test]
    fn the_mouse_is_the_right_controller_aiming_through_the_cursor() {
        let camera = Camera::look_at(Vec3::new(0.0, 1.6, 1.0), Vec3::new(0.0, 1.4, -2.0));
        let target = Vec3::new(0.3, 1.2, -1.5);
        let cursor = camera.project(target, 800, 600).expect("in front");
        let mut input = DesktopInput {
            cursor: Some(cursor),
            left: true,
            ..DesktopInput::default()
        };
        input.held.insert(KeyCode::KeyF);
        let snap = input.snapshot(&camera, (800, 600), 2.5);
        let right = snap.hand(Hand::Right);
        assert!(right.tracked && right.select && right.fold && !right.grab && !right.layout);
        assert_eq!(snap.time, 2.5);
        assert!((right.aim.position - camera.eye).length() < 1e-6);
        let to_target = (target - camera.eye).normalize();
        assert!(
            right.aim.forward().dot(to_target) > 0.99999,
            "{} vs {to_target}",
            right.aim.forward()
        );
        assert!(!snap.hand(Hand::Left).tracked);
        // Backspace traces back: a flick of the thumbstick to the left.
        input.held.insert(KeyCode::Backspace);
        assert_eq!(
            input.snapshot(&camera, (800, 600), 2.6).hand(Hand::Right).thumbstick,
            Vec2::NEG_X
        );
        // The arrows scrub the timeline: the left thumbstick, with or without the cursor.
        input.held.insert(KeyCode::ArrowLeft);
        assert_eq!(
            input.snapshot(&camera, (800, 600), 2.65).hand(Hand::Left).thumbstick,
            Vec2::NEG_X
        );
        // Space plays/pauses: the left thumbstick pushed up.
        input.held.insert(KeyCode::Space);
        assert_eq!(
            input.snapshot(&camera, (800, 600), 2.655).hand(Hand::Left).thumbstick,
            Vec2::new(-1.0, 1.0)
        );
        input.held.remove(&KeyCode::Space);
        // Wheel notches scrub once: the snapshot takes them.
        input.scrub = 2.0 * WHEEL_SCRUB;
        assert_eq!(input.snapshot(&camera, (800, 600), 2.66).scrub, 0.5);
        assert_eq!(input.snapshot(&camera, (800, 600), 2.67).scrub, 0.0);
        // No cursor in the window: no ray.
        input.cursor = None;
        assert!(!input.snapshot(&camera, (800, 600), 2.7).hand(Hand::Right).tracked);
    }

    #[test]
    fn dragging_right_orbits_and_w_walks_toward_the_view() {
        let c = Camera::look_at(Vec3::new(0.0, 0.0, 5.0), Vec3::ZERO);
        let mut orbit = OrbitCamera::from_camera(&c);
        let mut input = DesktopInput {
            dragging: true,
            cursor: Some(Vec2::ZERO),
            ..Default::default()
        };
        input.drag = Vec2::new(100.0, 0.0);
        input.apply(&mut orbit, 0.0);
        let eye = orbit.camera().eye;
        // Dragging right turns the scene right: the eye swings to -X around the target.
        assert!(eye.x < -1.0 && (eye.length() - 5.0).abs() < 1e-4, "{eye}");
        assert_eq!(input.drag, Vec2::ZERO, "deltas are consumed");

        let mut orbit = OrbitCamera::from_camera(&c);
        input.held.insert(KeyCode::KeyW);
        input.apply(&mut orbit, 1.0);
        // Looking down -Z from +Z: W moves the target toward -Z by 0.5 · distance per second.
        assert!(
            (orbit.target - Vec3::new(0.0, 0.0, -2.5)).length() < 1e-4,
            "{}",
            orbit.target
        );

        let before = orbit.distance();
        input.scroll = 1.0;
        input.held.clear();
        input.apply(&mut orbit, 0.0);
        assert!((orbit.distance() - before * 0.9).abs() < 1e-4);
    }
}
