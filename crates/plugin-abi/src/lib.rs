//! The alloclab plugin ABI, in Rust: the part that needs `std`.
//!
//! `include/allocator.h` is the contract: a plugin is a shared library that
//! manages an arena the caller got from the OS, exporting
//! `allocator_create/destroy/alloc/free` (required) and
//! `allocator_realloc/create_with_flags/alloc_aligned/usable_size/stats/check/info/add_region`
//! (optional). This crate holds:
//!
//! - everything of [`arena_api`], re-exported (the `no_std` part: the
//!   [`ArenaAllocator`] trait, the header's C types, [`GlobalArena`], the spin
//!   lock), so a user of the plugin layer needs this crate only;
//! - [`ffi`] and [`export_plugin!`]: the thin generic `extern "C"` layer every
//!   plugin exports (NULL rules, `malloc` rules, locking, no panic across the
//!   boundary: `catch_unwind`);
//! - with the `loader` feature, `loader::Plugin`: `dlopen` a plugin by path
//!   and resolve its functions.
//!
//! Why two crates: a kernel or firmware links an allocator core and
//! `arena-api` only, which need neither `std` nor `alloc`; `catch_unwind`
//! and `dlopen` need `std`, so they stay here.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ffi;
#[cfg(feature = "loader")]
pub mod loader;

pub use arena_api::*;
// The macros, at this crate's root as before the split.
pub use arena_api::{ensure, global_arena};
