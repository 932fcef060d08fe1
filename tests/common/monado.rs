//! The headless Monado 25 runtime for the XR tests (tests/xr.rs, tests/xr_session.rs): set up by
//! xr-config/setup-monado.sh, started as monado-service (null compositor, simulated HMD, two
//! khr/simple_controller) in a private XDG_RUNTIME_DIR, waited for until it listens.
//!
//! The unpacked runtime (Debian trixie: glibc 2.41, libstdc++ GLIBCXX_3.4.33) only runs through its
//! own dynamic loader ([`RuntimeEnv::ldso_command`]): so do its clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::in_ci;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The environment printed by the setup script.
pub struct RuntimeEnv {
    vars: Vec<(String, String)>,
}

impl RuntimeEnv {
    pub fn get(&self, key: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("setup-monado.sh printed no {key}"))
    }

    /// Sets the runtime's variables (and validation) on `cmd`.
    pub fn apply(&self, cmd: &mut Command) {
        for (k, v) in &self.vars {
            if !k.starts_with("NETWALK_XR_") {
                cmd.env(k, v);
            }
        }
        cmd.env("NETWALK_VALIDATION", "1");
    }

    /// `program` run through the unpacked tree's dynamic loader, on its libraries.
    pub fn ldso_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(self.get("NETWALK_XR_LDSO"));
        cmd.arg("--library-path")
            .arg(self.get("NETWALK_XR_LIBRARY_PATH"))
            .arg(program);
        cmd
    }
}

/// Sets up (or finds cached) Monado, or `None` after a skip note outside CI.
pub fn runtime_env() -> Option<RuntimeEnv> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("xr-config/setup-monado.sh");
    let out = Command::new(&script).output().expect("run xr-config/setup-monado.sh");
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(!in_ci(), "CI needs the headless OpenXR runtime: {why}");
        eprintln!("SKIPPED (XR test): the OpenXR runtime could not be set up: {why}");
        return None;
    }
    let vars = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(RuntimeEnv { vars })
}

/// A running monado-service in a private XDG_RUNTIME_DIR; killed on drop. One at a time per test
/// binary (a lock held while it lives): the machine has few cores.
pub struct Monado {
    pub child: Child,
    runtime_dir: tempfile::TempDir,
    log: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

/// How long monado-service may take to listen on its socket. It is up in about 0.3 s on an idle
/// machine; generous, because a loaded 2-core machine (the whole suite, lavapipe compiling
/// pipelines) has been seen to take far longer, and a slow start is not what these tests test.
/// The states of a whole session that starts, is focused and is ended through the runtime.
pub const SESSION_STATES: [&str; 10] = [
    "IDLE",
    "READY",
    "SYNCHRONIZED",
    "VISIBLE",
    "FOCUSED",
    "VISIBLE",
    "SYNCHRONIZED",
    "STOPPING",
    "IDLE",
    "EXITING",
];

pub const RUNTIME_START: Duration = Duration::from_secs(90);

impl Monado {
    /// Starts the runtime and waits until it listens on its IPC socket; one retry (a fresh
    /// runtime dir) if the first one exits or never gets there.
    pub fn start(env: &RuntimeEnv) -> Monado {
        let lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (child, runtime_dir, log) = match spawn_runtime(env) {
            Ok(parts) => parts,
            Err(first) => {
                eprintln!("monado-service did not come up, starting it once more: {first}");
                spawn_runtime(env).unwrap_or_else(|second| {
                    panic!("monado-service did not come up twice:\n1st: {first}\n2nd: {second}")
                })
            }
        };
        Monado {
            child,
            runtime_dir,
            log,
            _lock: lock,
        }
    }

    /// The XDG_RUNTIME_DIR its clients need (the IPC socket is in it).
    pub fn runtime_dir(&self) -> &Path {
        self.runtime_dir.path()
    }

    /// What the service printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Monado {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the runtime said.
        if std::thread::panicking() {
            eprintln!("monado-service's log:\n{}", self.log());
        }
    }
}

/// One monado-service in a fresh runtime dir, listening (see [`listening`]), or why not (with its
/// log); one that did not come up is killed.
fn spawn_runtime(env: &RuntimeEnv) -> Result<(Child, tempfile::TempDir, PathBuf), String> {
    let runtime_dir = tempfile::tempdir().expect("runtime dir");
    let log = runtime_dir.path().join("monado.log");
    let mut cmd = env.ldso_command(env.get("NETWALK_XR_MONADO_SERVICE"));
    env.apply(&mut cmd);
    let mut child = cmd
        .env("XDG_RUNTIME_DIR", runtime_dir.path())
        .env("XRT_COMPOSITOR_NULL", "1")
        .env("SIMULATED_ENABLE", "1")
        .env("SIMULATED_LEFT", "simple")
        .env("SIMULATED_RIGHT", "simple")
        .env("XRT_NO_STDIN", "1")
        .env("IPC_EXIT_ON_DISCONNECT", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("monado log"))
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).expect("monado log"),
        ))
        .spawn()
        .expect("start monado-service");
    let deadline = Instant::now() + RUNTIME_START;
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    loop {
        if listening(runtime_dir.path()) {
            return Ok((child, runtime_dir, log));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status}) before listening:\n{}", text()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("not listening after {RUNTIME_START:?}:\n{}", text()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a runtime listens on `runtime_dir/monado_comp_ipc`: the socket is in the kernel's
/// table in the listening state, so a client's connect is queued until the service accepts it.
/// Read from /proc/net/unix rather than by connecting: with IPC_EXIT_ON_DISCONNECT a probe's
/// disconnect would end the service.
fn listening(runtime_dir: &Path) -> bool {
    let socket = runtime_dir.join("monado_comp_ipc");
    let socket = socket.to_string_lossy();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = __SO_ACCEPTCON (listening).
    table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8 && f[3] == "00010000" && f[7] == socket
    })
}
