//! A rigid transform with a uniform scale: how blocks sit on the network root, and the root in
//! the stage. Compose right to left: `stage_from_block = stage_from_root * root_from_block`.

use glam::{Mat4, Quat, Vec3};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub translation: Vec3,
    pub rotation: Quat,
    pub scale: f32,
}

impl Default for Transform {
    fn default() -> Self {
        Transform::IDENTITY
    }
}

impl Transform {
    pub const IDENTITY: Transform = Transform {
        translation: Vec3::ZERO,
        rotation: Quat::IDENTITY,
        scale: 1.0,
    };

    pub fn from_translation(translation: Vec3) -> Self {
        Transform {
            translation,
            ..Transform::IDENTITY
        }
    }

    pub fn from_rotation_translation(rotation: Quat, translation: Vec3) -> Self {
        Transform {
            translation,
            rotation,
            scale: 1.0,
        }
    }

    pub fn to_mat4(&self) -> Mat4 {
        Mat4::from_scale_rotation_translation(Vec3::splat(self.scale), self.rotation, self.translation)
    }

    pub fn transform_point(&self, p: Vec3) -> Vec3 {
        self.translation + self.rotation * (self.scale * p)
    }

    pub fn transform_vector(&self, v: Vec3) -> Vec3 {
        self.rotation * (self.scale * v)
    }

    pub fn inverse(&self) -> Transform {
        let rotation = self.rotation.inverse();
        let scale = 1.0 / self.scale;
        Transform {
            translation: -(rotation * self.translation) * scale,
            rotation,
            scale,
        }
    }
}

impl std::ops::Mul for Transform {
    type Output = Transform;
    fn mul(self, rhs: Transform) -> Transform {
        Transform {
            translation: self.transform_point(rhs.translation),
            rotation: (self.rotation * rhs.rotation).normalize(),
            scale: self.scale * rhs.scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_invert_match_matrices() {
        let a = Transform {
            translation: Vec3::new(1.0, 2.0, -3.0),
            rotation: Quat::from_rotation_y(0.7) * Quat::from_rotation_x(-0.2),
            scale: 0.5,
        };
        let b = Transform {
            translation: Vec3::new(-0.4, 0.1, 2.0),
            rotation: Quat::from_rotation_z(1.1),
            scale: 3.0,
        };
        let p = Vec3::new(0.3, -0.8, 0.25);
        assert!(((a * b).transform_point(p) - (a.to_mat4() * b.to_mat4()).transform_point3(p)).length() < 1e-5);
        assert!((a.inverse().transform_point(a.transform_point(p)) - p).length() < 1e-5);
        assert!(((a * a.inverse()).translation).length() < 1e-5);
    }
}
