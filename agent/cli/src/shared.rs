//! The model loaded once: a running `glm-agent serve` says which model folder it holds in a
//! small file of its own, and `run`, `chat` and `eval` on the embedded engine use that server
//! (exactly, through the glm-agent dialect) instead of loading the same model again. Files of
//! servers that are gone are skipped and removed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The most server files read (a folder filled by something else costs nothing more).
const MAX_FILES: usize = 64;

/// What a serve writes of itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Its process.
    pub pid: u32,
    /// Its base URL (`http://127.0.0.1:8000/v1`).
    pub base: String,
    /// The prepared model folder it loaded, canonical.
    pub model_dir: PathBuf,
    /// Whether it asks for a key (`GLM_AGENT_API_KEY` is sent then).
    pub keyed: bool,
}

/// `$GLM_AGENT_RUN_DIR`, else `$XDG_RUNTIME_DIR/glm-agent/serve`, else
/// `~/.local/state/glm-agent/serve`.
pub fn registry_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dir) = var("GLM_AGENT_RUN_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        return Some(PathBuf::from(dir).join("glm-agent/serve"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".local/state/glm-agent/serve"))
}

/// A serve's file, removed when dropped (the server's end).
pub struct Registration(PathBuf);

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes this serve's file; `None` (and nothing written) when there is no folder for it.
pub fn register(record: &Record) -> Option<Registration> {
    let dir = registry_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{}.json", record.pid));
    let temporary = dir.join(format!(".{}.json.partial", record.pid));
    std::fs::write(&temporary, serde_json::to_vec(record).ok()?).ok()?;
    std::fs::rename(&temporary, &path).ok()?;
    Some(Registration(path))
}

/// Whether `pid` is still a `glm-agent serve` (a process id can be reused by another program).
fn alive(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|&b| b == 0);
    let program = args.next().map(String::from_utf8_lossy);
    let name = program.as_deref().and_then(|p| Path::new(p).file_name());
    name.is_some_and(|n| n.to_string_lossy().starts_with("glm-agent"))
        && args.any(|a| a == b"serve")
}

/// Whether something accepts connections at `base`'s address within 300 ms.
fn listening(base: &str) -> bool {
    use std::net::ToSocketAddrs;
    let host = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    host.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_millis(300)).is_ok()
        })
}

/// The running serves of `model_dir`, newest file first; files of processes that are gone are
/// removed.
pub fn servers_of(model_dir: &Path) -> Vec<Record> {
    registry_dir().map_or_else(Vec::new, |dir| servers_in(&dir, model_dir))
}

fn servers_in(dir: &Path, model_dir: &Path) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let want = model_dir
        .canonicalize()
        .unwrap_or_else(|_| model_dir.to_owned());
    let mut found: Vec<(std::time::SystemTime, Record)> = Vec::new();
    for entry in entries.flatten().take(MAX_FILES) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.len() > 16 << 10 {
            continue;
        }
        let Some(record) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
        else {
            continue;
        };
        if !alive(record.pid) || !listening(&record.base) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if record.model_dir == want {
            found.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), record));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_processes_that_are_not_a_serve_are_dropped_and_junk_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        let registry = dir.path().join("registry");
        std::fs::create_dir_all(&registry).unwrap();
        // This test's own process: alive, but not a glm-agent serve (as when a server's id is
        // reused by another program); and an id no process has.
        let reused = Record {
            pid: std::process::id(),
            base: "http://127.0.0.1:1/v1".into(),
            model_dir: model.canonicalize().unwrap(),
            keyed: false,
        };
        let gone = Record {
            pid: u32::MAX - 1,
            ..reused.clone()
        };
        for r in [&reused, &gone] {
            std::fs::write(
                registry.join(format!("{}.json", r.pid)),
                serde_json::to_vec(r).unwrap(),
            )
            .unwrap();
        }
        std::fs::write(registry.join("junk.json"), "{not json").unwrap();
        assert!(servers_in(&registry, &model).is_empty());
        for r in [&reused, &gone] {
            assert!(!registry.join(format!("{}.json", r.pid)).exists());
        }
        assert!(registry.join("junk.json").exists());
        // Nothing listens on port 1.
        assert!(!listening("http://127.0.0.1:1/v1"));
    }
}
