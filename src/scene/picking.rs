//! Ray-picking with rapier3d: one box collider per block (its current bounds), the block's entity
//! in the collider's user data. Only scene queries are used; nothing is simulated.

use glam::{Quat, Vec3};
use rapier3d::prelude::{ColliderBuilder, ColliderHandle, PhysicsWorld, QueryFilter, Ray, SharedShape};

/// Colliders thinner than this (flat blocks) get this half-depth, so rays along their plane
/// still have something to hit.
pub const MIN_HALF_EXTENT: f32 = 0.005;

#[derive(Default)]
pub struct Picking {
    physics: PhysicsWorld,
    /// Colliders changed since the last [`Picking::refresh`].
    stale: bool,
}

impl Picking {
    /// A collider for `entity`; give it its box with [`Picking::set_box`].
    pub fn add(&mut self, entity: hecs::Entity) -> ColliderHandle {
        self.stale = true;
        let c = ColliderBuilder::cuboid(MIN_HALF_EXTENT, MIN_HALF_EXTENT, MIN_HALF_EXTENT)
            .user_data(entity.to_bits().get() as u128)
            .build();
        self.physics.insert_collider(c, None)
    }

    /// How many colliders there are.
    pub fn len(&self) -> usize {
        self.physics.colliders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.physics.colliders.is_empty()
    }

    /// Removes a collider (its entity is gone).
    pub fn remove(&mut self, handle: ColliderHandle) {
        if self.physics.remove_collider(handle).is_some() {
            self.stale = true;
        }
    }

    /// Makes `handle` the box centered at `center`, turned by `rotation`, with the given half extents.
    pub fn set_box(&mut self, handle: ColliderHandle, center: Vec3, rotation: Quat, half: Vec3) {
        let Some(c) = self.physics.colliders.get_mut(handle) else {
            return;
        };
        let half = half.max(Vec3::splat(MIN_HALF_EXTENT));
        let pose = rapier3d::math::Pose::from_parts(center, rotation);
        if c.position() != &pose {
            c.set_position(pose);
            self.stale = true;
        }
        let same = c
            .shape()
            .as_cuboid()
            .is_some_and(|b| (b.half_extents - half).abs().max_element() < 1e-7);
        if !same {
            c.set_shape(SharedShape::cuboid(half.x, half.y, half.z));
            self.stale = true;
        }
    }

    /// The box of `handle`: center, rotation, half extents.
    pub fn get_box(&self, handle: ColliderHandle) -> Option<(Vec3, Quat, Vec3)> {
        let c = self.physics.colliders.get(handle)?;
        let b = c.shape().as_cuboid()?;
        Some((c.position().translation, c.position().rotation, b.half_extents))
    }

    /// Brings the query structure up to date with the colliders (after moves and resizes).
    pub fn refresh(&mut self) {
        if self.stale {
            self.physics.detect_collisions(&(), &());
            self.stale = false;
        }
    }

    /// The nearest collider hit by the ray from `origin` along `dir` (unit), within `max`
    /// meters: its entity and the distance. Call [`Picking::refresh`] after changes first.
    pub fn cast(&self, origin: Vec3, dir: Vec3, max: f32) -> Option<(hecs::Entity, f32)> {
        let ray = Ray::new(origin, dir);
        let (handle, toi) = self.physics.cast_ray(&ray, max, true, QueryFilter::default())?;
        let bits = self.physics.colliders.get(handle)?.user_data as u64;
        Some((hecs::Entity::from_bits(bits)?, toi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rays_hit_the_current_box_and_name_its_entity() {
        let mut world = hecs::World::new();
        let (a, b) = (world.spawn(()), world.spawn(()));
        let mut p = Picking::default();
        let (ha, hb) = (p.add(a), p.add(b));
        p.set_box(ha, Vec3::new(0.0, 1.0, -2.0), Quat::IDENTITY, Vec3::new(0.5, 0.5, 0.01));
        p.set_box(hb, Vec3::new(0.0, 1.0, -4.0), Quat::IDENTITY, Vec3::new(1.0, 1.0, 0.01));
        p.refresh();
        let (e, d) = p.cast(Vec3::new(0.0, 1.0, 0.0), Vec3::NEG_Z, 100.0).unwrap();
        assert_eq!(e, a);
        assert!((d - 1.99).abs() < 1e-4);
        // Beside the small box, the big one behind it.
        assert_eq!(p.cast(Vec3::new(0.8, 1.0, 0.0), Vec3::NEG_Z, 100.0).unwrap().0, b);
        // Moved away: the ray now reaches the back box.
        p.set_box(ha, Vec3::new(5.0, 1.0, -2.0), Quat::IDENTITY, Vec3::new(0.5, 0.5, 0.01));
        p.refresh();
        assert_eq!(p.cast(Vec3::new(0.0, 1.0, 0.0), Vec3::NEG_Z, 100.0).unwrap().0, b);
        assert!(p.cast(Vec3::new(0.0, 1.0, 0.0), Vec3::Z, 100.0).is_none());
        assert_eq!(p.get_box(ha).unwrap().0, Vec3::new(5.0, 1.0, -2.0));
    }
}
