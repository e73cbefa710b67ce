//! The serve crate's tests, in one binary.
//!
//! - `router`: what each endpoint answers, driven through the router with `oneshot` (no socket):
//!   a new endpoint or wire field gets its test here.
//! - `hostile`: the worst clients we can write, against the real server loop on loopback, with
//!   the time and memory each may cost asserted: a new limit gets its hostile client here.
//! - `common`: the scripted engine and the server both use.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod hostile;
mod router;
