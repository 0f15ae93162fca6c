//! The alloclab plugin ABI, in Rust.
//!
//! `include/allocator.h` is the contract: a plugin is a shared library that
//! manages an arena the caller got from the OS, exporting
//! `allocator_create/destroy/alloc/free` (required) and
//! `allocator_realloc/create_with_flags/alloc_aligned/usable_size/stats/check/info`
//! (optional). This crate holds:
//!
//! - [`types`]: the header's C types, byte for byte (checked by a test that
//!   compiles C against the header);
//! - [`ArenaAllocator`]: what an allocator core implements, knowing nothing of
//!   C or of the OS;
//! - [`ffi`] and [`export_plugin!`]: the thin generic `extern "C"` layer every
//!   plugin exports (NULL rules, `malloc` rules, locking, no panic across the
//!   boundary);
//! - [`GlobalArena`] and [`global_arena!`]: any core as a Rust
//!   `#[global_allocator]`;
//! - with the `loader` feature, `loader::Plugin`: `dlopen` a plugin by path
//!   and resolve its functions.
#![deny(unsafe_op_in_unsafe_fn)]

mod arena_allocator;
pub mod ffi;
mod global;
#[cfg(feature = "loader")]
pub mod loader;
mod spin;
pub mod types;

pub use arena_allocator::{
    ArenaAllocator, BadPointer, InvariantViolation, ReallocError, whole_pages,
};
pub use global::GlobalArena;
pub use spin::{SpinGuard, SpinLock};
pub use types::*;
