//! Pinhole cameras and their transforms. Conventions: right-handed world, +Y up; Vulkan clip space
//! (y down, depth 0..1). Transforms are named `a_from_b` and compose right to left.

use glam::camera::rh::{proj, view};
use glam::{Mat4, Vec2, Vec3};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unproject_inverts_project() {
        let cam = Camera::look_at(Vec3::new(0.3, 1.6, 1.0), Vec3::new(0.0, 1.4, -2.0));
        let p = Vec3::new(0.25, 1.2, -1.5);
        let pixel = cam.project(p, 640, 480).expect("in front");
        let through = cam.unproject(pixel, 640, 480);
        let dir = (through - cam.eye).normalize();
        // p lies on the ray from the eye through the pixel.
        assert!(dir.cross((p - cam.eye).normalize()).length() < 1e-4, "{dir} vs {}", p - cam.eye);
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
