//! The controllers: netwalk's one action set (select, grab, fold, layout, menu, thumbstick, aim
//! and grip poses, haptics), bound from the binding files, read once per frame.

use std::path::Path;

use glam::{Quat, Vec2, Vec3};
use openxr as xr;

use super::bindings::{ActionName, load_bindings};
use super::input::{Hand, HandInput, Pose, hand_index};
use super::{XrContext, XrError};

/// The action set, its actions and the controllers' pose spaces.
pub(super) struct Actions {
    // Spaces first: they are destroyed before the actions they come from.
    aim_spaces: [xr::Space; 2],
    grip_spaces: [xr::Space; 2],
    // Kept with their spaces (which also hold them); never read directly.
    _aim: xr::Action<xr::Posef>,
    _grip: xr::Action<xr::Posef>,
    select: xr::Action<bool>,
    grab: xr::Action<bool>,
    fold: xr::Action<bool>,
    layout: xr::Action<bool>,
    menu: xr::Action<bool>,
    thumbstick: xr::Action<xr::Vector2f>,
    haptic: xr::Action<xr::Haptic>,
    set: xr::ActionSet,
    pub hands: [xr::Path; 2],
}

impl Actions {
    /// The actions, bound by the binding files (from `bindings_dir`, else the built-in ones;
    /// those needing XR_EXT_hand_interaction only with `hand_interaction`), attached to `session`.
    pub fn new(
        instance: &xr::Instance,
        session: &xr::Session<xr::Vulkan>,
        bindings_dir: Option<&Path>,
        hand_interaction: bool,
    ) -> Result<Actions, XrError> {
        let set = instance
            .create_action_set("netwalk", "netwalk", 0)
            .xr("create the action set")?;
        let hands = [
            instance.string_to_path("/user/hand/left").xr("path /user/hand/left")?,
            instance
                .string_to_path("/user/hand/right")
                .xr("path /user/hand/right")?,
        ];
        let aim = set
            .create_action::<xr::Posef>("aim_pose", "Aim pose", &hands)
            .xr("create action aim_pose")?;
        let grip = set
            .create_action::<xr::Posef>("grip_pose", "Grip pose", &hands)
            .xr("create action grip_pose")?;
        let button = |name: &str, label: &str| set.create_action::<bool>(name, label, &hands);
        let select = button("select", "Select").xr("create action select")?;
        let grab = button("grab", "Grab").xr("create action grab")?;
        let fold = button("fold", "Fold or expand").xr("create action fold")?;
        let layout = button("layout", "Switch layout").xr("create action layout")?;
        let menu = button("menu", "Menu").xr("create action menu")?;
        let thumbstick = set
            .create_action::<xr::Vector2f>("thumbstick", "Thumbstick", &hands)
            .xr("create action thumbstick")?;
        let haptic = set
            .create_action::<xr::Haptic>("haptic", "Haptic", &hands)
            .xr("create action haptic")?;

        for profile in load_bindings(bindings_dir)? {
            if let Some(ext) = &profile.requires_extension
                && !(ext == "XR_EXT_hand_interaction" && hand_interaction)
            {
                tracing::info!(file = %profile.file, extension = %ext, "skipping bindings: the runtime lacks the extension");
                continue;
            }
            let err = |problem: String| XrError::Bindings {
                file: profile.file.clone(),
                problem,
            };
            let profile_path = instance
                .string_to_path(&profile.profile)
                .map_err(|e| err(format!("field \"profile\": `{}`: {e}", profile.profile)))?;
            let mut suggested = Vec::new();
            for (action, path) in &profile.bindings {
                let p = instance
                    .string_to_path(path)
                    .map_err(|e| err(format!("field \"bindings.{}\": `{path}`: {e}", action.name())))?;
                suggested.push(match action {
                    ActionName::AimPose => xr::Binding::new(&aim, p),
                    ActionName::GripPose => xr::Binding::new(&grip, p),
                    ActionName::Select => xr::Binding::new(&select, p),
                    ActionName::Grab => xr::Binding::new(&grab, p),
                    ActionName::Fold => xr::Binding::new(&fold, p),
                    ActionName::Layout => xr::Binding::new(&layout, p),
                    ActionName::Menu => xr::Binding::new(&menu, p),
                    ActionName::Thumbstick => xr::Binding::new(&thumbstick, p),
                    ActionName::Haptic => xr::Binding::new(&haptic, p),
                });
            }
            instance
                .suggest_interaction_profile_bindings(profile_path, &suggested)
                .map_err(|e| {
                    err(format!(
                        "the runtime rejected the bindings for {}: {e}",
                        profile.profile
                    ))
                })?;
        }
        session.attach_action_sets(&[&set]).xr("attach the action set")?;
        let space =
            |action: &xr::Action<xr::Posef>, hand: xr::Path| action.create_space(session, hand, xr::Posef::IDENTITY);
        let aim_spaces = [
            space(&aim, hands[0]).xr("create the left aim space")?,
            space(&aim, hands[1]).xr("create the right aim space")?,
        ];
        let grip_spaces = [
            space(&grip, hands[0]).xr("create the left grip space")?,
            space(&grip, hands[1]).xr("create the right grip space")?,
        ];
        Ok(Actions {
            aim_spaces,
            grip_spaces,
            _aim: aim,
            _grip: grip,
            select,
            grab,
            fold,
            layout,
            menu,
            thumbstick,
            haptic,
            set,
            hands,
        })
    }

    /// Syncs the actions and reads both hands at `time` in `base`.
    pub fn read(
        &self,
        session: &xr::Session<xr::Vulkan>,
        base: &xr::Space,
        time: xr::Time,
    ) -> Result<[HandInput; 2], XrError> {
        session
            .sync_actions(&[xr::ActiveActionSet::new(&self.set)])
            .xr("sync actions")?;
        let mut hands = [HandInput::default(); 2];
        for (i, hand) in hands.iter_mut().enumerate() {
            let path = self.hands[i];
            hand.aim = locate(&self.aim_spaces[i], base, time)?;
            hand.grip = locate(&self.grip_spaces[i], base, time)?;
            let pressed = |a: &xr::Action<bool>| a.state(session, path).map(|s| s.is_active && s.current_state);
            hand.select = pressed(&self.select).xr("read select")?;
            hand.grab = pressed(&self.grab).xr("read grab")?;
            hand.fold = pressed(&self.fold).xr("read fold")?;
            hand.layout = pressed(&self.layout).xr("read layout")?;
            hand.menu = pressed(&self.menu).xr("read menu")?;
            let stick = self.thumbstick.state(session, path).xr("read thumbstick")?;
            if stick.is_active {
                hand.thumbstick = Vec2::new(stick.current_state.x, stick.current_state.y);
            }
        }
        Ok(hands)
    }

    /// A short pulse on one hand (on select).
    pub fn pulse(&self, session: &xr::Session<xr::Vulkan>, hand: Hand) -> Result<(), XrError> {
        let vibration = xr::HapticVibration::new()
            .amplitude(0.5)
            .duration(xr::Duration::from_nanos(20_000_000))
            .frequency(xr::FREQUENCY_UNSPECIFIED);
        self.haptic
            .apply_feedback(session, self.hands[hand_index(hand)], &vibration)
            .xr("apply haptic feedback")
    }
}

pub(super) fn to_pose(p: xr::Posef) -> Pose {
    let o = p.orientation;
    Pose {
        position: Vec3::new(p.position.x, p.position.y, p.position.z),
        orientation: Quat::from_xyzw(o.x, o.y, o.z, o.w).normalize(),
    }
}

/// `space`'s pose in `base` at `time`, when both position and orientation are valid.
pub(super) fn locate(space: &xr::Space, base: &xr::Space, time: xr::Time) -> Result<Option<Pose>, XrError> {
    let l = space.locate(base, time).xr("locate a space")?;
    let valid = xr::SpaceLocationFlags::POSITION_VALID | xr::SpaceLocationFlags::ORIENTATION_VALID;
    Ok(l.location_flags.contains(valid).then(|| to_pose(l.pose)))
}
