//! Suggested bindings: one JSON file per interaction profile in `xr-config/`, e.g.
//!
//! ```json
//! { "profile": "/interaction_profiles/khr/simple_controller",
//!   "requires_extension": "XR_EXT_hand_interaction",        (optional)
//!   "bindings": { "select": ["/user/hand/left/input/select/click", ...], ... } }
//! ```
//!
//! The files are built into the binary; `--xr-config DIR` (or `NETWALK_XR_CONFIG`) loads them
//! from a folder instead, so bindings can be changed without rebuilding.

use std::path::{Path, PathBuf};

use super::XrError;

/// The actions of netwalk's one action set, by their names in the binding files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionName {
    AimPose,
    GripPose,
    Select,
    Grab,
    Fold,
    Layout,
    Menu,
    Thumbstick,
    Haptic,
}

impl ActionName {
    pub const ALL: [ActionName; 9] = [
        ActionName::AimPose,
        ActionName::GripPose,
        ActionName::Select,
        ActionName::Grab,
        ActionName::Fold,
        ActionName::Layout,
        ActionName::Menu,
        ActionName::Thumbstick,
        ActionName::Haptic,
    ];

    pub fn name(self) -> &'static str {
        [
            "aim_pose",
            "grip_pose",
            "select",
            "grab",
            "fold",
            "layout",
            "menu",
            "thumbstick",
            "haptic",
        ][self as usize]
    }

    fn from_name(name: &str) -> Option<ActionName> {
        ActionName::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The binding files, one per interaction profile.
pub const PROFILE_FILES: [&str; 6] = [
    "khr_simple_controller.json",
    "oculus_touch_controller.json",
    "valve_index_controller.json",
    "htc_vive_controller.json",
    "microsoft_motion_controller.json",
    "ext_hand_interaction_ext.json",
];

const BUILT_IN: [&str; 6] = [
    include_str!("../../xr-config/khr_simple_controller.json"),
    include_str!("../../xr-config/oculus_touch_controller.json"),
    include_str!("../../xr-config/valve_index_controller.json"),
    include_str!("../../xr-config/htc_vive_controller.json"),
    include_str!("../../xr-config/microsoft_motion_controller.json"),
    include_str!("../../xr-config/ext_hand_interaction_ext.json"),
];

/// One profile's suggested bindings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileBindings {
    /// Where they came from (a path, or `built-in:NAME`), for error messages.
    pub file: String,
    pub profile: String,
    /// The instance extension the profile needs; skipped when the runtime lacks it.
    pub requires_extension: Option<String>,
    pub bindings: Vec<(ActionName, String)>,
}

/// The bindings of every profile: from `dir` when given (each file of [`PROFILE_FILES`] must be
/// there), else the built-in copies.
pub fn load_bindings(dir: Option<&Path>) -> Result<Vec<ProfileBindings>, XrError> {
    PROFILE_FILES
        .iter()
        .zip(BUILT_IN)
        .map(|(name, built_in)| match dir {
            Some(dir) => {
                let path: PathBuf = dir.join(name);
                let text = std::fs::read_to_string(&path).map_err(|e| XrError::Bindings {
                    file: path.display().to_string(),
                    problem: format!("cannot read it: {e}"),
                })?;
                parse_bindings(&path.display().to_string(), &text)
            }
            None => parse_bindings(&format!("built-in:{name}"), built_in),
        })
        .collect()
}

/// Parses one binding file (`file` names it in errors).
pub fn parse_bindings(file: &str, text: &str) -> Result<ProfileBindings, XrError> {
    let err = |problem: String| XrError::Bindings {
        file: file.to_string(),
        problem,
    };
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| err("the top level must be an object".into()))?;
    for key in obj.keys() {
        if !["profile", "requires_extension", "bindings"].contains(&key.as_str()) {
            return Err(err(format!("unknown field \"{key}\"")));
        }
    }
    let profile = obj
        .get("profile")
        .and_then(|p| p.as_str())
        .ok_or_else(|| err("field \"profile\" is missing or not a string".into()))?;
    if !profile.starts_with("/interaction_profiles/") {
        return Err(err(format!(
            "field \"profile\": `{profile}` is not an /interaction_profiles/... path"
        )));
    }
    let requires_extension = match obj.get("requires_extension") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(err("field \"requires_extension\" must be a string".into())),
    };
    let map = obj
        .get("bindings")
        .and_then(|b| b.as_object())
        .ok_or_else(|| err("field \"bindings\" is missing or not an object".into()))?;
    let mut bindings = Vec::new();
    for (key, paths) in map {
        let action = ActionName::from_name(key).ok_or_else(|| {
            let names: Vec<&str> = ActionName::ALL.iter().map(|a| a.name()).collect();
            err(format!(
                "field \"bindings.{key}\": unknown action (known: {})",
                names.join(", ")
            ))
        })?;
        let paths = paths
            .as_array()
            .ok_or_else(|| err(format!("field \"bindings.{key}\" must be a list of paths")))?;
        for (i, p) in paths.iter().enumerate() {
            let p = p
                .as_str()
                .filter(|p| p.starts_with("/user/"))
                .ok_or_else(|| err(format!("field \"bindings.{key}[{i}]\" must be a /user/... path")))?;
            bindings.push((action, p.to_string()));
        }
    }
    if bindings.is_empty() {
        return Err(err("field \"bindings\" binds nothing".into()));
    }
    Ok(ProfileBindings {
        file: file.to_string(),
        profile: profile.to_string(),
        requires_extension,
        bindings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_parses_and_binds_both_aim_poses() {
        let all = load_bindings(None).expect("built-in bindings");
        assert_eq!(all.len(), PROFILE_FILES.len());
        for p in &all {
            for hand in ["left", "right"] {
                let aim = format!("/user/hand/{hand}/input/aim/pose");
                assert!(
                    p.bindings.contains(&(ActionName::AimPose, aim.clone())),
                    "{}: no {aim}",
                    p.file
                );
            }
        }
        assert!(
            all.iter()
                .any(|p| p.profile == "/interaction_profiles/khr/simple_controller")
        );
    }

    #[test]
    fn the_files_in_xr_config_are_the_built_in_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("xr-config");
        let from_disk = load_bindings(Some(&dir)).expect("xr-config");
        let built_in = load_bindings(None).expect("built-in");
        for (a, b) in from_disk.iter().zip(&built_in) {
            assert_eq!((&a.profile, &a.bindings), (&b.profile, &b.bindings), "{}", a.file);
        }
    }

    #[test]
    fn broken_and_missing_files_are_named_in_the_error() {
        let e = parse_bindings("x.json", "{\"profile\": 3}").unwrap_err().to_string();
        assert!(e.contains("x.json") && e.contains("\"profile\""), "{e}");
        let e = parse_bindings(
            "y.json",
            "{\"profile\": \"/interaction_profiles/a/b\", \"bindings\": {\"jump\": []}}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("y.json") && e.contains("bindings.jump"), "{e}");
        let e = parse_bindings("z.json", "{").unwrap_err().to_string();
        assert!(e.contains("z.json") && e.contains("JSON"), "{e}");
        let dir = tempfile::tempdir().expect("temp dir");
        let e = load_bindings(Some(dir.path())).unwrap_err().to_string();
        assert!(
            e.contains("khr_simple_controller.json") && e.contains("cannot read"),
            "{e}"
        );
    }
}
