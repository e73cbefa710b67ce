//! glm-sandbox: stateful Python notebooks inside a WebAssembly sandbox.
//!
//! CPython compiled for WASI runs under wasmtime; one live instance per agent run keeps
//! notebook state across cells, and a cell that traps is rolled back to the state after the
//! last good cell.
//!
//! The design decision to know: this is the only crate that names wasmtime types, and its
//! defaults deny everything (no network, no host files but one `/mnt/data` directory, no
//! environment), each grant explicit and pinned by a test.
