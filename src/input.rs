//! What the user does, frame by frame, independent of where it comes from: XR actions, the desktop
//! mouse/keyboard, or a script file ([`Script`]). The scene systems only ever see an
//! [`InputSnapshot`] (this frame) and the previous one (for button edges).
//!
//! Script file (JSON): `{"events": [{"t": 0.0, "hand": "right", "aim": {"origin": [x,y,z],
//! "target": [x,y,z]}}, {"t": 0.1, "hand": "right", "select": true}, ...]}`. `t` is in seconds,
//! never negative, never decreasing; `hand` is `"left"` or `"right"`. Optional fields: `aim` and
//! `grip` (`{"origin", "target"}`: the pose sits at `origin` and points at `target`), the buttons
//! `select`, `grab`, `fold`, `layout`, `menu` (booleans) and `thumbstick` (`[x, y]`, each in −1..1).
//! A state holds until an event changes it; the grip pose follows the aim pose until a `grip` is
//! given for that hand. A hand is tracked from its first `aim` or `grip`.

pub mod desktop;

use std::path::{Path, PathBuf};

use glam::{Quat, Vec2, Vec3};
use serde_json::Value;

/// A position and orientation in the stage space (meters, +Y up). Like OpenXR's aim pose, the
/// pose points down its local −Z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub position: Vec3,
    pub orientation: Quat,
}

impl Default for Pose {
    fn default() -> Self {
        Pose {
            position: Vec3::ZERO,
            orientation: Quat::IDENTITY,
        }
    }
}

impl Pose {
    /// A pose at `origin` pointing at `target` (up stays as level as possible). `None` when the
    /// points coincide or are not finite.
    pub fn looking_at(origin: Vec3, target: Vec3) -> Option<Pose> {
        let dir = (target - origin).try_normalize()?;
        if !origin.is_finite() {
            return None;
        }
        // Yaw then pitch, so the pose's x axis stays horizontal (no roll).
        let yaw = (-dir.x).atan2(-dir.z);
        let pitch = dir.y.clamp(-1.0, 1.0).asin();
        let orientation = Quat::from_rotation_y(yaw) * Quat::from_rotation_x(pitch);
        Some(Pose {
            position: origin,
            orientation,
        })
    }

    /// The unit direction the pose points to (its −Z).
    pub fn forward(&self) -> Vec3 {
        self.orientation * Vec3::NEG_Z
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hand {
    Left,
    Right,
}

impl Hand {
    pub const BOTH: [Hand; 2] = [Hand::Left, Hand::Right];

    pub fn name(self) -> &'static str {
        match self {
            Hand::Left => "left",
            Hand::Right => "right",
        }
    }

    /// This hand's index in per-hand arrays: left 0, right 1.
    pub fn slot(self) -> usize {
        match self {
            Hand::Left => 0,
            Hand::Right => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    /// Trigger: select the pointed-at neuron.
    Select,
    /// Squeeze: grab the pointed-at layer (both hands: the whole network).
    Grab,
    /// Fold/expand the pointed-at layer.
    Fold,
    /// Switch the pointed-at layer between grid and linear layout.
    Layout,
    /// Reset the layout.
    Menu,
}

/// One hand's controls in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HandInput {
    /// False until the hand has a pose (its ray is not cast then).
    pub tracked: bool,
    pub aim: Pose,
    pub grip: Pose,
    pub select: bool,
    pub grab: bool,
    pub fold: bool,
    pub layout: bool,
    pub menu: bool,
    /// x right, y up; each −1..1.
    pub thumbstick: Vec2,
}

impl HandInput {
    pub fn button(&self, b: Button) -> bool {
        match b {
            Button::Select => self.select,
            Button::Grab => self.grab,
            Button::Fold => self.fold,
            Button::Layout => self.layout,
            Button::Menu => self.menu,
        }
    }
}

/// Both hands' controls at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InputSnapshot {
    /// Seconds since the start (of the script, session, ...).
    pub time: f32,
    pub hands: [HandInput; 2],
    /// Checkpoints to step the training timeline by in this frame, on top of the left
    /// thumbstick's continuous scrub (the desktop's mouse wheel).
    pub scrub: f32,
    /// How fast to change the edge bundling strength this frame, −1..1 (full strength range in
    /// [`crate::app::BUNDLE_SWEEP_SECONDS`]): the desktop's `[` / `]` keys.
    pub bundle: f32,
    /// Held: switch the edges between weight and importance (|weight × activation|) on press
    /// (the desktop's `I`).
    pub edge_value: bool,
    /// Held: step the edge threshold (0, 10, 25, 50 % of a layer's strongest edge) on press (the
    /// desktop's `T`).
    pub edge_threshold: bool,
}

impl InputSnapshot {
    pub fn hand(&self, hand: Hand) -> &HandInput {
        &self.hands[hand.slot()]
    }

    pub fn hand_mut(&mut self, hand: Hand) -> &mut HandInput {
        &mut self.hands[hand.slot()]
    }

    /// Real controller poses with scripted buttons and thumbsticks (XR with a script): each hand
    /// keeps this snapshot's tracking and poses and takes `scripted`'s buttons and thumbstick.
    pub fn with_scripted_buttons(&self, scripted: &InputSnapshot) -> InputSnapshot {
        let mut out = *self;
        for (o, s) in out.hands.iter_mut().zip(&scripted.hands) {
            (o.select, o.grab, o.fold, o.layout, o.menu) = (s.select, s.grab, s.fold, s.layout, s.menu);
            o.thumbstick = s.thumbstick;
        }
        out
    }

    /// `b` went down between `prev` and this snapshot.
    pub fn pressed(&self, prev: &InputSnapshot, hand: Hand, b: Button) -> bool {
        self.hand(hand).button(b) && !prev.hand(hand).button(b)
    }

    /// `b` went up between `prev` and this snapshot.
    pub fn released(&self, prev: &InputSnapshot, hand: Hand, b: Button) -> bool {
        !self.hand(hand).button(b) && prev.hand(hand).button(b)
    }

    /// The thumbstick crossed `threshold` in direction `dir` (a unit axis such as `Vec2::NEG_X`)
    /// between `prev` and this snapshot: a discrete "flick".
    pub fn flicked(&self, prev: &InputSnapshot, hand: Hand, dir: Vec2, threshold: f32) -> bool {
        self.hand(hand).thumbstick.dot(dir) >= threshold && prev.hand(hand).thumbstick.dot(dir) < threshold
    }
}

/// A script file that cannot be used; always names the file, and the event and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid JSON: {source}", file.display())]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {msg}", file.display())]
    Format { file: PathBuf, msg: String },
    #[error("{}: event {event}: {msg}", file.display())]
    Event { file: PathBuf, event: usize, msg: String },
}

/// One scripted change of one hand's state; `None` fields stay as they were.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScriptEvent {
    pub t: f32,
    pub hand: Option<Hand>,
    pub aim: Option<Pose>,
    pub grip: Option<Pose>,
    pub select: Option<bool>,
    pub grab: Option<bool>,
    pub fold: Option<bool>,
    pub layout: Option<bool>,
    pub menu: Option<bool>,
    pub thumbstick: Option<Vec2>,
}

/// A parsed script: events in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub events: Vec<ScriptEvent>,
}

/// Longest script accepted (seconds): replays run every frame up to the last event.
pub const MAX_SCRIPT_SECONDS: f64 = 3600.0;

const EVENT_FIELDS: &[&str] = &[
    "t",
    "hand",
    "aim",
    "grip",
    "select",
    "grab",
    "fold",
    "layout",
    "menu",
    "thumbstick",
];

impl Script {
    pub fn load(path: &Path) -> Result<Script, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Io {
            file: path.to_owned(),
            source,
        })?;
        Script::parse(&text, path)
    }

    /// Parses a script's text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Script, ScriptError> {
        let root: Value = serde_json::from_str(text).map_err(|source| ScriptError::Json {
            file: path.to_owned(),
            source,
        })?;
        let format = |msg: &str| ScriptError::Format {
            file: path.to_owned(),
            msg: msg.to_owned(),
        };
        let obj = root
            .as_object()
            .ok_or_else(|| format("expected an object {\"events\": [...]}"))?;
        if let Some(k) = obj.keys().find(|k| k.as_str() != "events") {
            return Err(format(&format!("unknown field `{k}` (expected only `events`)")));
        }
        let list = obj
            .get("events")
            .ok_or_else(|| format("missing field `events`"))?
            .as_array()
            .ok_or_else(|| format("field `events`: expected an array"))?;
        let mut events = Vec::with_capacity(list.len());
        let mut last_t = 0f32;
        for (i, v) in list.iter().enumerate() {
            let err = |msg: String| ScriptError::Event {
                file: path.to_owned(),
                event: i,
                msg,
            };
            let ev = parse_event(v).map_err(err)?;
            if ev.t < last_t {
                return Err(err(format!(
                    "field `t`: {} is earlier than the event before it ({last_t}); events must be in time order",
                    ev.t
                )));
            }
            last_t = ev.t;
            events.push(ev);
        }
        Ok(Script { events })
    }

    /// Time of the last event (0 for an empty script).
    pub fn duration(&self) -> f32 {
        self.events.last().map_or(0.0, |e| e.t)
    }

    /// The input state after every event with `t <= time` has been applied.
    pub fn snapshot_at(&self, time: f32) -> InputSnapshot {
        let mut player = ScriptPlayer::new(self);
        player.advance(time)
    }

    /// Snapshots from 0 to the last event: one every `1/fps` s, plus one at each event's time so
    /// that no press shorter than a frame is lost. Times are strictly increasing.
    pub fn frames(&self, fps: f32) -> Vec<InputSnapshot> {
        let fps = if fps.is_finite() && fps > 0.0 { fps } else { 90.0 };
        let end = self.duration();
        let ticks = (end * fps).ceil() as usize;
        let mut times: Vec<f32> = (0..=ticks).map(|k| (k as f32 / fps).min(end)).collect();
        times.extend(self.events.iter().map(|e| e.t));
        times.sort_by(f32::total_cmp);
        times.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        let mut player = ScriptPlayer::new(self);
        times.into_iter().map(|t| player.advance(t)).collect()
    }
}

/// Applies a script's events in order; snapshots are asked for at non-decreasing times.
pub struct ScriptPlayer<'a> {
    script: &'a Script,
    next: usize,
    state: InputSnapshot,
    /// Per hand: a grip pose was given, so it no longer follows the aim.
    own_grip: [bool; 2],
    /// Live (frames at the display's pace, possibly slow): a button pressed since the last
    /// snapshot stays pressed in this one even when its release is due too.
    live: bool,
}

impl<'a> ScriptPlayer<'a> {
    pub fn new(script: &'a Script) -> Self {
        ScriptPlayer {
            script,
            next: 0,
            state: InputSnapshot::default(),
            own_grip: [false; 2],
            live: false,
        }
    }

    /// A player for a live run (XR): every press shows in at least one snapshot, however far
    /// apart they are (a frame slower than a short click must not lose it).
    pub fn live(script: &'a Script) -> Self {
        ScriptPlayer {
            live: true,
            ..ScriptPlayer::new(script)
        }
    }

    /// The state at `time` (every event with `t <= time` applied; live, up to the release of a
    /// button pressed since the last snapshot).
    pub fn advance(&mut self, time: f32) -> InputSnapshot {
        let seen = self.state;
        while let Some(ev) = self.script.events.get(self.next).filter(|e| e.t <= time) {
            if self.live
                && let Some(hand) = ev.hand
            {
                let (now, before) = (&self.state.hands[hand.slot()], &seen.hands[hand.slot()]);
                let unseen_release = |now: bool, before: bool, v: Option<bool>| now && !before && v == Some(false);
                if unseen_release(now.select, before.select, ev.select)
                    || unseen_release(now.grab, before.grab, ev.grab)
                    || unseen_release(now.fold, before.fold, ev.fold)
                    || unseen_release(now.layout, before.layout, ev.layout)
                    || unseen_release(now.menu, before.menu, ev.menu)
                {
                    break;
                }
            }
            self.next += 1;
            let Some(hand) = ev.hand else { continue };
            let slot = hand.slot();
            let h = &mut self.state.hands[slot];
            if let Some(grip) = ev.grip {
                h.grip = grip;
                h.tracked = true;
                self.own_grip[slot] = true;
            }
            if let Some(aim) = ev.aim {
                h.aim = aim;
                h.tracked = true;
                if !self.own_grip[slot] {
                    h.grip = aim;
                }
            }
            let set = |dst: &mut bool, v: Option<bool>| {
                if let Some(v) = v {
                    *dst = v;
                }
            };
            set(&mut h.select, ev.select);
            set(&mut h.grab, ev.grab);
            set(&mut h.fold, ev.fold);
            set(&mut h.layout, ev.layout);
            set(&mut h.menu, ev.menu);
            if let Some(s) = ev.thumbstick {
                h.thumbstick = s;
            }
        }
        self.state.time = time;
        self.state
    }
}

fn parse_event(v: &Value) -> Result<ScriptEvent, String> {
    let obj = v.as_object().ok_or("expected an object")?;
    if let Some(k) = obj.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field `{k}` (expected one of {})",
            EVENT_FIELDS.join(", ")
        ));
    }
    let t = obj.get("t").ok_or("missing field `t`")?;
    let t = t
        .as_f64()
        .filter(|t| t.is_finite())
        .ok_or_else(|| format!("field `t`: expected a number of seconds, got {t}"))?;
    if t < 0.0 {
        return Err(format!("field `t`: {t} is negative"));
    }
    if t > MAX_SCRIPT_SECONDS {
        return Err(format!(
            "field `t`: {t} is past the longest script ({MAX_SCRIPT_SECONDS} s)"
        ));
    }
    let mut ev = ScriptEvent {
        t: t as f32,
        ..Default::default()
    };
    let hand = obj.get("hand").ok_or("missing field `hand`")?;
    ev.hand = Some(match hand.as_str() {
        Some("left") => Hand::Left,
        Some("right") => Hand::Right,
        _ => return Err(format!("field `hand`: expected \"left\" or \"right\", got {hand}")),
    });
    ev.aim = obj.get("aim").map(|p| parse_pose(p, "aim")).transpose()?;
    ev.grip = obj.get("grip").map(|p| parse_pose(p, "grip")).transpose()?;
    let flag = |name: &str| -> Result<Option<bool>, String> {
        obj.get(name)
            .map(|b| {
                b.as_bool()
                    .ok_or_else(|| format!("field `{name}`: expected true or false, got {b}"))
            })
            .transpose()
    };
    ev.select = flag("select")?;
    ev.grab = flag("grab")?;
    ev.fold = flag("fold")?;
    ev.layout = flag("layout")?;
    ev.menu = flag("menu")?;
    if let Some(s) = obj.get("thumbstick") {
        let [x, y] = numbers::<2>(s).ok_or_else(|| format!("field `thumbstick`: expected [x, y], got {s}"))?;
        if x.abs() > 1.0 || y.abs() > 1.0 {
            return Err(format!("field `thumbstick`: [{x}, {y}] is outside -1..1"));
        }
        ev.thumbstick = Some(Vec2::new(x, y));
    }
    Ok(ev)
}

fn parse_pose(v: &Value, field: &str) -> Result<Pose, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("field `{field}`: expected {{\"origin\": [x,y,z], \"target\": [x,y,z]}}"))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "origin" | "target")) {
        return Err(format!("field `{field}.{k}`: unknown (expected `origin` and `target`)"));
    }
    let point = |name: &str| -> Result<Vec3, String> {
        let p = obj
            .get(name)
            .ok_or_else(|| format!("field `{field}`: missing `{name}`"))?;
        numbers::<3>(p)
            .map(Vec3::from_array)
            .ok_or_else(|| format!("field `{field}.{name}`: expected [x, y, z] (finite numbers), got {p}"))
    };
    let (origin, target) = (point("origin")?, point("target")?);
    Pose::looking_at(origin, target).ok_or_else(|| format!("field `{field}`: `origin` and `target` are the same point"))
}

fn numbers<const N: usize>(v: &Value) -> Option<[f32; N]> {
    let a = v.as_array().filter(|a| a.len() == N)?;
    let mut out = [0f32; N];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x.as_f64().map(|x| x as f32).filter(|x| x.is_finite())?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Script, ScriptError> {
        Script::parse(text, Path::new("s.json"))
    }

    #[test]
    fn a_live_player_shows_a_click_shorter_than_a_frame() {
        let s = parse(
            r#"{"events": [{"t": 1.0, "hand": "right", "select": true}, {"t": 1.3, "hand": "right", "select": false}]}"#,
        )
        .expect("script");
        // Replays: the state after every event (press and release both due at 1.4).
        assert!(!ScriptPlayer::new(&s).advance(1.4).hand(Hand::Right).select);
        // Live, frames at 0.9, 1.4 and 1.5 s: the press shows at 1.4, the release at 1.5.
        let mut live = ScriptPlayer::live(&s);
        let select = [0.9, 1.4, 1.5].map(|t| live.advance(t).hand(Hand::Right).select);
        assert_eq!(select, [false, true, false]);
    }

    #[test]
    fn looking_at_points_the_forward_axis_at_the_target() {
        for target in [
            Vec3::new(0.0, 1.4, -2.0),
            Vec3::new(1.0, 0.0, 0.5),
            Vec3::new(-0.3, 3.0, 0.1),
        ] {
            let origin = Vec3::new(0.1, 1.2, 0.3);
            let p = Pose::looking_at(origin, target).unwrap();
            assert!(
                (p.forward() - (target - origin).normalize()).length() < 1e-5,
                "{target}"
            );
            // No roll: the pose's x axis stays level.
            assert!((p.orientation * Vec3::X).y.abs() < 1e-5);
        }
        assert!(Pose::looking_at(Vec3::ONE, Vec3::ONE).is_none());
    }

    #[test]
    fn states_hold_until_changed_and_grip_follows_aim_until_given() {
        let s = parse(
            r#"{"events": [
                {"t": 0.0, "hand": "right", "aim": {"origin": [0, 1, 0], "target": [0, 1, -1]}},
                {"t": 0.1, "hand": "right", "select": true},
                {"t": 0.2, "hand": "right", "select": false, "grab": true},
                {"t": 0.3, "hand": "left", "grip": {"origin": [1, 1, 0], "target": [1, 1, -1]}},
                {"t": 0.4, "hand": "left", "aim": {"origin": [2, 1, 0], "target": [2, 0, 0]}, "thumbstick": [-1, 0]}
            ]}"#,
        )
        .unwrap();
        let at = |t| s.snapshot_at(t);
        assert!(!at(0.05).hand(Hand::Right).select && at(0.15).hand(Hand::Right).select);
        assert!(!at(0.25).hand(Hand::Right).select && at(0.25).hand(Hand::Right).grab);
        assert_eq!(at(0.0).hand(Hand::Right).grip, at(0.0).hand(Hand::Right).aim);
        assert!(!at(0.2).hand(Hand::Left).tracked && at(0.3).hand(Hand::Left).tracked);
        let left = *at(1.0).hand(Hand::Left);
        assert_eq!(left.grip.position, Vec3::new(1.0, 1.0, 0.0));
        assert_eq!(left.aim.position, Vec3::new(2.0, 1.0, 0.0));
        assert_eq!(left.thumbstick, Vec2::new(-1.0, 0.0));
        assert!(at(1.0).hand(Hand::Right).grab);
    }

    #[test]
    fn scripted_buttons_merge_with_real_poses() {
        let mut real = InputSnapshot::default();
        real.hand_mut(Hand::Left).tracked = true;
        real.hand_mut(Hand::Left).aim.position = Vec3::X;
        real.hand_mut(Hand::Left).select = true;
        let s = parse(r#"{"events": [{"t": 0, "hand": "left", "grab": true, "aim": {"origin": [0, 5, 0], "target": [0, 0, 0]}}]}"#)
            .unwrap()
            .snapshot_at(1.0);
        let m = real.with_scripted_buttons(&s);
        let left = m.hand(Hand::Left);
        assert_eq!((left.aim.position, left.grab, left.select), (Vec3::X, true, false));
        assert!(!m.hand(Hand::Right).tracked);
    }

    #[test]
    fn edges_and_frames_keep_short_presses() {
        let s = parse(
            r#"{"events": [{"t": 0.1, "hand": "left", "fold": true}, {"t": 0.101, "hand": "left", "fold": false}]}"#,
        )
        .unwrap();
        let frames = s.frames(10.0);
        assert!(frames.windows(2).all(|w| w[1].time > w[0].time));
        let presses = frames
            .windows(2)
            .filter(|w| w[1].pressed(&w[0], Hand::Left, Button::Fold))
            .count();
        let releases = frames
            .windows(2)
            .filter(|w| w[1].released(&w[0], Hand::Left, Button::Fold))
            .count();
        assert_eq!((presses, releases), (1, 1));
        assert!((frames.last().unwrap().time - 0.101).abs() < 1e-6);
    }

    #[test]
    fn bad_scripts_name_the_file_event_and_field() {
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "expected an object"),
            (r#"{"evnts": []}"#, "unknown field `evnts`"),
            (r#"{"events": 3}"#, "field `events`"),
            (r#"{"events": [{"hand": "left"}]}"#, "event 0: missing field `t`"),
            (r#"{"events": [{"t": "0", "hand": "left"}]}"#, "event 0: field `t`"),
            (
                r#"{"events": [{"t": -1, "hand": "left"}]}"#,
                "event 0: field `t`: -1 is negative",
            ),
            (r#"{"events": [{"t": 1e30, "hand": "left"}]}"#, "event 0: field `t`"),
            (
                r#"{"events": [{"t": 1, "hand": "left"}, {"t": 0.5, "hand": "left"}]}"#,
                "event 1: field `t`",
            ),
            (r#"{"events": [{"t": 0, "hand": "middle"}]}"#, "event 0: field `hand`"),
            (
                r#"{"events": [{"t": 0, "hand": "left", "select": 1}]}"#,
                "event 0: field `select`",
            ),
            (
                r#"{"events": [{"t": 0, "hand": "left", "aim": {"origin": [0, 0], "target": [0, 0, 1]}}]}"#,
                "field `aim.origin`",
            ),
            (
                r#"{"events": [{"t": 0, "hand": "left", "aim": {"origin": [0, 0, 1], "target": [0, 0, 1]}}]}"#,
                "same point",
            ),
            (
                r#"{"events": [{"t": 0, "hand": "left", "thumbstick": [0, 2]}]}"#,
                "field `thumbstick`",
            ),
            (
                r#"{"events": [{"t": 0, "hand": "left", "squeeze": true}]}"#,
                "event 0: unknown field `squeeze`",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.starts_with("s.json: ") && e.contains(want), "{text}: {e}");
        }
        let e = Script::load(Path::new("/nonexistent/s.json")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/s.json: cannot read"), "{e}");
    }

    /// Deterministic mutations of a valid script: every result parses or fails with one line
    /// naming the file, and whatever parses plays without panicking.
    #[test]
    fn mutated_scripts_never_panic() {
        let base = br#"{"events": [{"t": 0.0, "hand": "right", "aim": {"origin": [0, 1.2, 0], "target": [0, 1.4, -1]}},
            {"t": 0.1, "hand": "right", "select": true, "thumbstick": [0.5, -0.5]},
            {"t": 0.2, "hand": "left", "grip": {"origin": [1, 1, 0], "target": [1, 1, -1]}, "grab": true}]}"#;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let pieces: [&[u8]; 10] = [
            b"-",
            b"1e39",
            b"\"",
            b"[",
            b"}",
            b"null",
            b"\"left\"",
            b"0.05",
            b",",
            b"NaN",
        ];
        for _ in 0..3000 {
            let mut b = base.to_vec();
            for _ in 0..1 + next(3) {
                let at = next(b.len());
                match next(3) {
                    0 => b[at] = next(256) as u8,
                    1 => b.truncate(at),
                    _ => {
                        let piece = pieces[next(pieces.len())];
                        b.splice(at..at, piece.iter().copied());
                    }
                }
                if b.is_empty() {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&b);
            match Script::parse(&text, Path::new("s.json")) {
                Ok(script) => {
                    let frames = script.frames(90.0);
                    assert!(frames.windows(2).all(|w| w[1].time > w[0].time));
                }
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.starts_with("s.json: ") && !e.contains('\n'), "{e}");
                }
            }
        }
    }
}
