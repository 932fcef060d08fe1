//! Pinhole cameras and their transforms. Conventions: right-handed world, +Y up; Vulkan clip space
//! (y down, depth 0..1). Transforms are named `a_from_b` and compose right to left.

use glam::camera::rh::{proj, view};
use glam::{Mat4, Quat, Vec2, Vec3, Vec4};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub eye: Vec3,
    pub target: Vec3,
    pub up: Vec3,
    /// Vertical field of view, radians.
    pub fov_y: f32,
    pub near: f32,
    pub far: f32,
}

impl Camera {
    /// A camera at `eye` looking at `target`, +Y up, 60° vertical field of view.
    pub fn look_at(eye: Vec3, target: Vec3) -> Camera {
        Camera {
            eye,
            target,
            up: Vec3::Y,
            fov_y: 60f32.to_radians(),
            near: 0.05,
            far: 200.0,
        }
    }

    /// A camera from the front left, above, looking at the center of the box `min..max` from
    /// just far enough to see all of it in an image of the given aspect (width / height).
    pub fn overview(min: Vec3, max: Vec3, aspect: f32) -> Camera {
        let center = (min + max) / 2.0;
        let back = Vec3::new(-0.5, 0.3, 0.8).normalize();
        let mut cam = Camera::look_at(center + back, center);
        let (right, up) = (cam.right(), back.cross(cam.right()).normalize());
        let tan_y = (cam.fov_y / 2.0).tan();
        let tan_x = tan_y * aspect;
        // A corner p is inside when |x| ≤ depth · tan(fov_x / 2) (and likewise y), with
        // depth = distance − (p − center) · back.
        let corners = (0..8).map(|i| Vec3::select(glam::BVec3::new(i & 1 != 0, i & 2 != 0, i & 4 != 0), max, min));
        let distance = corners
            .map(|p| {
                let d = p - center;
                d.dot(back) + (d.dot(right).abs() / tan_x).max(d.dot(up).abs() / tan_y)
            })
            .fold(0.1f32, f32::max)
            * 1.05;
        cam.eye = center + back * distance;
        cam.far = distance + (max - min).length() + 1.0;
        cam
    }

    /// A camera straight in front of a flat `width`×`height` rectangle centered at `center` and
    /// facing along `normal`, just far enough to see all of it (with a small margin) in an image
    /// of the given aspect (width / height). The near plane sits 0.25 m before the rectangle, so
    /// whatever stands between it and the viewer is cut away.
    pub fn facing(center: Vec3, normal: Vec3, width: f32, height: f32, aspect: f32) -> Camera {
        let normal = normal.normalize_or(Vec3::Z);
        let mut cam = Camera::look_at(center + normal, center);
        let tan_y = (cam.fov_y / 2.0).tan();
        let distance = (width / 2.0 / (tan_y * aspect)).max(height / 2.0 / tan_y) * 1.1;
        let distance = distance.max(cam.near * 2.0);
        cam.eye = center + normal * distance;
        cam.near = (distance - 0.25).max(cam.near);
        cam
    }

    /// Right-hand direction of the view.
    pub fn right(&self) -> Vec3 {
        (self.target - self.eye).cross(self.up_vector()).normalize_or_zero()
    }

    /// `up`, or another axis when the view looks straight along it (which would be degenerate).
    fn up_vector(&self) -> Vec3 {
        let forward = (self.target - self.eye).normalize_or_zero();
        if forward.cross(self.up).length_squared() < 1e-10 {
            Vec3::Z
        } else {
            self.up
        }
    }

    pub fn view_from_world(&self) -> Mat4 {
        view::look_at_mat4(self.eye, self.target, self.up_vector())
    }

    pub fn clip_from_view(&self, aspect: f32) -> Mat4 {
        // Vulkan's convention: y down, depth 0..1.
        proj::vulkan::perspective(self.fov_y, aspect, self.near, self.far)
    }

    pub fn clip_from_world(&self, aspect: f32) -> Mat4 {
        self.clip_from_view(aspect) * self.view_from_world()
    }

    /// Pixel position (x right, y down, pixel centers at .5) of a world point in a
    /// `width`×`height` image, or `None` when it is behind the camera.
    pub fn project(&self, world: Vec3, width: u32, height: u32) -> Option<Vec2> {
        let clip = self.clip_from_world(width as f32 / height as f32) * world.extend(1.0);
        (clip.w > 0.0).then(|| {
            let ndc = clip.truncate().truncate() / clip.w;
            (ndc + Vec2::ONE) / 2.0 * Vec2::new(width as f32, height as f32)
        })
    }

    /// The world point at pixel `pixel` (as [`Camera::project`] gives it) halfway into the depth
    /// range: with the eye, it makes the ray through that pixel.
    pub fn unproject(&self, pixel: Vec2, width: u32, height: u32) -> Vec3 {
        let size = Vec2::new(width as f32, height as f32);
        let ndc = pixel / size * 2.0 - Vec2::ONE;
        let world_from_clip = self.clip_from_world(size.x / size.y).inverse();
        world_from_clip.project_point3(ndc.extend(0.5))
    }

    /// Left and right eye of a viewer with interpupillary distance `ipd` (parallel view axes).
    pub fn stereo(&self, ipd: f32) -> [Camera; 2] {
        let half = self.right() * (ipd / 2.0);
        let shifted = |d: Vec3| Camera {
            eye: self.eye + d,
            target: self.target + d,
            ..*self
        };
        [shifted(-half), shifted(half)]
    }
}

/// Half-angles of an asymmetric view frustum (radians; left and down are usually negative), as
/// an OpenXR runtime gives them per eye.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fov {
    pub left: f32,
    pub right: f32,
    pub up: f32,
    pub down: f32,
}

/// One eye of a head-mounted display: its pose in the world (STAGE space) and its frustum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EyeView {
    pub position: Vec3,
    pub orientation: Quat,
    pub fov: Fov,
    pub near: f32,
    pub far: f32,
}

impl EyeView {
    pub fn new(position: Vec3, orientation: Quat, fov: Fov) -> EyeView {
        EyeView {
            position,
            orientation,
            fov,
            near: 0.05,
            far: 200.0,
        }
    }

    pub fn view_from_world(&self) -> Mat4 {
        Mat4::from_rotation_translation(self.orientation, self.position).inverse()
    }

    /// Vulkan clip space (y down, depth 0..1) of the asymmetric frustum; no aspect: the angles
    /// fix it.
    pub fn clip_from_view(&self) -> Mat4 {
        let (l, r) = (self.fov.left.tan(), self.fov.right.tan());
        let (u, d) = (self.fov.up.tan(), self.fov.down.tan());
        let (n, f) = (self.near, self.far);
        // x_ndc = (2·x/−z − (r+l)) / (r−l); y flipped for Vulkan; z from 0 (near) to 1 (far).
        Mat4::from_cols(
            Vec4::new(2.0 / (r - l), 0.0, 0.0, 0.0),
            Vec4::new(0.0, -2.0 / (u - d), 0.0, 0.0),
            Vec4::new((r + l) / (r - l), -(u + d) / (u - d), f / (n - f), -1.0),
            Vec4::new(0.0, 0.0, n * f / (n - f), 0.0),
        )
    }

    pub fn clip_from_world(&self) -> Mat4 {
        self.clip_from_view() * self.view_from_world()
    }

    /// Pixel position (x right, y down) of a world point in a `width`×`height` eye image, or
    /// `None` when it is behind the eye.
    pub fn project(&self, world: Vec3, width: u32, height: u32) -> Option<Vec2> {
        let clip = self.clip_from_world() * world.extend(1.0);
        (clip.w > 0.0).then(|| {
            let ndc = clip.truncate().truncate() / clip.w;
            (ndc + Vec2::ONE) / 2.0 * Vec2::new(width as f32, height as f32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symmetric_eye_view_projects_like_the_pinhole_camera() {
        let cam = Camera::look_at(Vec3::new(0.0, 1.6, 0.0), Vec3::new(0.0, 1.6, -1.0));
        let half_y = cam.fov_y / 2.0;
        let half_x = (half_y.tan() * 2.0).atan();
        let fov = Fov {
            left: -half_x,
            right: half_x,
            up: half_y,
            down: -half_y,
        };
        let eye = EyeView::new(cam.eye, Quat::IDENTITY, fov);
        for p in [
            Vec3::new(0.3, 1.2, -2.0),
            Vec3::new(-1.0, 2.0, -3.0),
            Vec3::new(0.0, 1.6, -0.5),
        ] {
            let a = cam.project(p, 200, 100).expect("in front");
            let b = eye.project(p, 200, 100).expect("in front");
            assert!((a - b).length() < 1e-2, "{p}: {a} vs {b}");
        }
        let clip = eye.clip_from_world() * Vec3::new(0.0, 1.6, -eye.near).extend(1.0);
        assert!((clip.z / clip.w).abs() < 1e-5, "near plane at depth 0");
    }

    #[test]
    fn an_asymmetric_eye_view_puts_the_forward_axis_off_center_and_follows_the_head() {
        // Wider to the left than to the right: straight ahead lands right of the center.
        let fov = Fov {
            left: -0.8,
            right: 0.4,
            up: 0.5,
            down: -0.5,
        };
        let turned = Quat::from_rotation_y(std::f32::consts::FRAC_PI_2); // looking along −X
        let eye = EyeView::new(Vec3::new(0.0, 1.6, 0.0), turned, fov);
        let ahead = eye.project(Vec3::new(-2.0, 1.6, 0.0), 400, 200).expect("in front");
        let want = 400.0 * 0.8f32.tan() / (0.8f32.tan() + 0.4f32.tan());
        assert!((ahead.x - want).abs() < 0.5 && (ahead.y - 100.0).abs() < 0.5, "{ahead}");
        let above = eye.project(Vec3::new(-2.0, 1.8, 0.0), 400, 200).expect("in front");
        assert!(above.y < 100.0);
        assert!(eye.project(Vec3::new(2.0, 1.6, 0.0), 400, 200).is_none());
    }

    #[test]
    fn unproject_inverts_project() {
        let cam = Camera::look_at(Vec3::new(0.3, 1.6, 1.0), Vec3::new(0.0, 1.4, -2.0));
        let p = Vec3::new(0.25, 1.2, -1.5);
        let pixel = cam.project(p, 640, 480).expect("in front");
        let through = cam.unproject(pixel, 640, 480);
        let dir = (through - cam.eye).normalize();
        // p lies on the ray from the eye through the pixel.
        assert!(
            dir.cross((p - cam.eye).normalize()).length() < 1e-4,
            "{dir} vs {}",
            p - cam.eye
        );
    }

    #[test]
    fn a_facing_camera_sees_the_whole_rectangle_just_inside_the_frame() {
        let (w, h) = (640, 480);
        let center = Vec3::new(1.0, 1.4, -3.0);
        let cam = Camera::facing(center, Vec3::Z, 2.0, 0.5, w as f32 / h as f32);
        let left = cam.project(center - Vec3::X, w, h).expect("in front");
        let right = cam.project(center + Vec3::X, w, h).expect("in front");
        // Width-limited: the edges sit 1/1.1 of the way out from the image center.
        let half = w as f32 / 2.0 / 1.1;
        assert!((right.x - left.x - 2.0 * half).abs() < 0.5, "{left} {right}");
        assert!((cam.project(center, w, h).expect("in front") - Vec2::new(320.0, 240.0)).length() < 1e-3);
    }

    #[test]
    fn projection_puts_the_target_at_the_center_and_up_at_the_top() {
        let cam = Camera::look_at(Vec3::new(0.0, 1.4, 0.0), Vec3::new(0.0, 1.4, -2.0));
        let c = cam.project(Vec3::new(0.0, 1.4, -2.0), 200, 100).expect("in front");
        assert!((c - Vec2::new(100.0, 50.0)).length() < 1e-3);
        let above = cam.project(Vec3::new(0.0, 1.6, -2.0), 200, 100).expect("in front");
        assert!(above.y < 50.0);
        let right = cam.project(Vec3::new(0.3, 1.4, -2.0), 200, 100).expect("in front");
        assert!(right.x > 100.0);
        assert!(cam.project(Vec3::new(0.0, 1.4, 2.0), 200, 100).is_none());
    }

    #[test]
    fn stereo_eyes_are_an_ipd_apart_along_right() {
        let cam = Camera::look_at(Vec3::ZERO, Vec3::NEG_Z);
        let [l, r] = cam.stereo(0.064);
        assert!((l.eye - Vec3::new(-0.032, 0.0, 0.0)).length() < 1e-6);
        assert!((r.eye - Vec3::new(0.032, 0.0, 0.0)).length() < 1e-6);
    }

    #[test]
    fn overview_sees_every_corner() {
        let (min, max) = (Vec3::new(-1.0, 0.5, -12.0), Vec3::new(1.0, 2.0, -1.5));
        let cam = Camera::overview(min, max, 16.0 / 9.0);
        let mut outermost = 0f32;
        for i in 0..8 {
            let p = Vec3::select(glam::BVec3::new(i & 1 != 0, i & 2 != 0, i & 4 != 0), max, min);
            let px = cam.project(p, 1600, 900).expect("in front");
            assert!(
                px.x >= 0.0 && px.x <= 1600.0 && px.y >= 0.0 && px.y <= 900.0,
                "{p} at {px}"
            );
            let ndc = (px / Vec2::new(1600.0, 900.0) * 2.0 - Vec2::ONE).abs();
            outermost = outermost.max(ndc.max_element());
        }
        // Tight: some corner is close to the image border.
        assert!(outermost > 0.9, "{outermost}");
    }
}
