//! The wasmtime engine settings the interpreter needs, and its compiled-module cache.
//!
//! Compiling the interpreter takes about a minute and 2 GB of memory, so the compiled module
//! is stored under the cache directory (outside anything the guest can reach), keyed by the
//! module's hash and by wasmtime's own compatibility hash of the engine settings and version,
//! with a sha256 sidecar checked before every load.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::{Config, Engine, Module};

use crate::error::{Error, Result};
use crate::runtime::{MANIFEST, Runtime};

/// The wasm stack: deep enough that deep recursion is a Python `RecursionError`, not a trap.
pub const WASM_STACK_BYTES: usize = 8 << 20;

/// The native stack of the thread that runs guest code (it must hold the wasm stack).
pub const NATIVE_STACK_BYTES: usize = 64 << 20;

/// The engine every session shares.
pub fn engine() -> Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_exceptions(true)
        .epoch_interruption(true)
        .max_wasm_stack(WASM_STACK_BYTES)
        // Must exceed the wasm stack, even though guests run synchronously.
        .async_stack_size(2 * WASM_STACK_BYTES);
    Engine::new(&config).map_err(Error::wasm("creating the wasm engine"))
}

/// Where the compiled module for this engine lives.
fn compiled_path(engine: &Engine, cache: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    MANIFEST.module.1.hash(&mut hasher);
    cache
        .join("python")
        .join("compiled")
        .join(format!("{:016x}.cwasm", hasher.finish()))
}

/// The compiled interpreter: loaded from the cache, or compiled (and cached) when missing or
/// when the cached file fails its check. `on_compile` is told before a compile starts.
pub fn load_or_compile(
    engine: &Engine,
    runtime: &Runtime,
    cache: &Path,
    on_compile: &mut dyn FnMut(),
) -> Result<Module> {
    let path = compiled_path(engine, cache);
    if let Some(module) = load_verified(engine, &path, cache)? {
        return Ok(module);
    }
    on_compile();
    let wasm = runtime.module_path();
    let module =
        Module::from_file(engine, &wasm).map_err(Error::wasm("compiling the Python runtime"))?;
    store(&module, &path)?;
    Ok(module)
}

/// Where the compiled module for the sandbox's engine settings lives under `cache`.
pub fn compiled_module_path(cache: &Path) -> Result<PathBuf> {
    Ok(compiled_path(&engine()?, cache))
}

fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("cwasm.sha256")
}

/// `PREFIX-PID-N`, a name no other call of this process or another uses at the same time.
fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Writes `bytes` to a new file at `path`, readable by the user only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(Error::io(path))?;
    file.write_all(bytes).map_err(Error::io(path))
}

fn store(module: &Module, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(Error::io(dir))?;
    let bytes = module
        .serialize()
        .map_err(Error::wasm("serializing the compiled module"))?;
    let tmp = path.with_extension(unique("tmp"));
    write_private(&tmp, &bytes)?;
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    fs::rename(&tmp, path).map_err(Error::io(path))?;
    let side = sidecar(path);
    let side_tmp = side.with_extension(unique("tmp"));
    write_private(&side_tmp, hash.as_bytes())?;
    fs::rename(&side_tmp, &side).map_err(Error::io(&side))
}

/// Whether `path` is ours alone: not a link, owned by this process's user, writable by no
/// one else. `uid` is this process's user.
#[cfg(unix)]
fn ours_alone(path: &Path, uid: u32) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).map_err(Error::io(path))?;
    Ok(!meta.file_type().is_symlink() && meta.uid() == uid && meta.mode() & 0o022 == 0)
}

/// This process's user: the owner of a file it creates.
#[cfg(unix)]
fn current_uid(dir: &Path) -> Result<u32> {
    use std::os::unix::fs::MetadataExt;
    // A name of its own per call: sessions start concurrently in one process.
    let probe = dir.join(format!(".{}", unique("owner-probe")));
    write_private(&probe, b"")?;
    let uid = fs::symlink_metadata(&probe)
        .map_err(Error::io(&probe))?
        .uid();
    let _ = fs::remove_file(&probe);
    Ok(uid)
}

/// Refuses a compiled module that someone else could have written: the file, its sidecar and
/// every folder from the cache down to it must be this user's and writable by no one else.
#[cfg(unix)]
fn check_trusted(path: &Path, cache: &Path) -> Result<()> {
    let uid = current_uid(cache)?;
    let mut places = vec![path.to_path_buf(), sidecar(path)];
    let mut dir = path.parent();
    while let Some(d) = dir {
        places.push(d.to_path_buf());
        if d == cache {
            break;
        }
        dir = d.parent();
    }
    for place in places {
        if !ours_alone(&place, uid)? {
            return Err(Error::Untrusted { path: place });
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_trusted(_path: &Path, _cache: &Path) -> Result<()> {
    Ok(())
}

/// Loads the compiled module at `path` if its sidecar hash matches; `None` when absent or
/// mismatched (the caller recompiles). A module someone else could have written is an error.
#[allow(unsafe_code)]
fn load_verified(engine: &Engine, path: &Path, cache: &Path) -> Result<Option<Module>> {
    let Ok(expected) = fs::read_to_string(sidecar(path)) else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    check_trusted(path, cache)?;
    // Read once: the bytes hashed are the bytes loaded.
    let bytes = fs::read(path).map_err(Error::io(path))?;
    if hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)) != expected.trim() {
        return Ok(None);
    }
    // SAFETY: `Module::deserialize` trusts its input to be a module that this wasmtime
    // serialized; a crafted file could run arbitrary code. These bytes come from a file this
    // program wrote (`store`) into the user's cache directory, which no guest can reach (the
    // guest sees only its own /mnt/data and the read-only stdlib); the file, its sidecar and
    // every folder down to it were just checked to be this user's and writable by no one
    // else, and the bytes in hand hash to the sidecar's sum. wasmtime also checks the engine
    // compatibility header.
    let module = unsafe { Module::deserialize(engine, &bytes) };
    match module {
        Ok(module) => Ok(Some(module)),
        Err(_) => Ok(None),
    }
}
