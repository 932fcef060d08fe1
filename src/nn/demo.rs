//! The bundled MNIST demo, embedded in the binary and unpacked on first use into a cache folder
//! named by its content hash (so a rebuilt binary never reads stale files).

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use super::error::{NnError, Result};

include!(concat!(env!("OUT_DIR"), "/demo_files.rs"));

pub(crate) fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("NETWALK_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("netwalk");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/netwalk"),
        None => std::env::temp_dir().join("netwalk-cache"),
    }
}

fn content_hash() -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (name, bytes) in DEMO_FILES {
        name.hash(&mut h);
        bytes.len().hash(&mut h);
        // Sampling keeps start-up fast; sizes and names catch nearly every change, the samples the rest.
        for chunk in bytes.chunks(4096) {
            chunk[0].hash(&mut h);
            chunk[chunk.len() - 1].hash(&mut h);
        }
        bytes[..bytes.len().min(65536)].hash(&mut h);
    }
    DEMO_TRAIN.len().hash(&mut h);
    h.finish()
}

/// Folder holding the demo's model.json (unpacked if needed).
pub fn demo_dir() -> Result<PathBuf> {
    let dir = cache_root().join(format!("mnist-cnn-{:016x}", content_hash()));
    if dir.join("model.json").exists() {
        return Ok(dir);
    }
    // Unpack into a private folder, then rename: concurrent first runs never see partial files.
    // Private to this call, not just this process: tests call this from several threads at once.
    static UNPACKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = UNPACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache_root().join(format!(".unpack-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (rel, bytes) in DEMO_FILES {
        let p = tmp.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| NnError::io(parent, e))?;
        }
        std::fs::write(&p, bytes).map_err(|e| NnError::io(&p, e))?;
    }
    let train = tmp.join("train.safetensors");
    std::fs::write(&train, DEMO_TRAIN).map_err(|e| NnError::io(&train, e))?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if dir.join("model.json").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(NnError::io(&dir, e)),
    }
}

/// The demo's training digits (train split), unpacked beside the model.
pub fn demo_train_data() -> Result<PathBuf> {
    Ok(demo_dir()?.join("train.safetensors"))
}
