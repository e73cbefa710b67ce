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
use crate::runtime::{MANIFEST, Runtime, sha256_file};

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
    if let Some(module) = load_verified(engine, &path)? {
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

fn sidecar_matches(path: &Path) -> Result<bool> {
    let Ok(expected) = fs::read_to_string(sidecar(path)) else {
        return Ok(false);
    };
    if !path.exists() {
        return Ok(false);
    }
    Ok(sha256_file(path)? == expected.trim())
}

fn store(module: &Module, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let bytes = module
        .serialize()
        .map_err(Error::wasm("serializing the compiled module"))?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, &bytes).map_err(Error::io(&tmp))?;
    let hash = sha256_file(&tmp)?;
    fs::rename(&tmp, path).map_err(Error::io(path))?;
    fs::write(sidecar(path), hash).map_err(Error::io(sidecar(path)))
}

/// Loads the compiled module at `path` if its sidecar hash matches; `None` when absent or
/// mismatched (the caller recompiles).
#[allow(unsafe_code)]
fn load_verified(engine: &Engine, path: &Path) -> Result<Option<Module>> {
    if !sidecar_matches(path)? {
        return Ok(None);
    }
    // SAFETY: `Module::deserialize_file` trusts its input to be a module that this wasmtime
    // serialized; a crafted file could run arbitrary code. The file is one this program wrote
    // (`store`) into the user's cache directory, which no guest can reach (the guest sees only
    // its own /mnt/data and the read-only stdlib), and its sha256 was just checked against the
    // sidecar written with it. wasmtime also checks the engine compatibility header.
    let module = unsafe { Module::deserialize_file(engine, path) };
    match module {
        Ok(module) => Ok(Some(module)),
        Err(_) => Ok(None),
    }
}
