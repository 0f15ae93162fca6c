//! What an alloclab allocator core implements and needs, with no `std` and
//! no `alloc`: usable in a kernel, in firmware, or in a program that has no
//! allocator yet.
//!
//! - [`ArenaAllocator`]: the Rust face of a core (create over a region,
//!   alloc, free, realloc, stats, invariants), knowing nothing of C or of an
//!   OS; its errors [`BadPointer`], [`ReallocError`], [`InvariantViolation`]
//!   (a fixed-size message: no allocation);
//! - [`types`]: the C types, flags and constants of `include/allocator.h`,
//!   byte for byte (they are plain data: a core reports its
//!   [`AllocatorStats`] and describes itself with an [`AllocatorInfo`]);
//! - [`SpinLock`]: a lock that needs no OS;
//! - [`GlobalArena`] and [`global_arena!`]: any core as a Rust
//!   `#[global_allocator]`, over a static array or memory handed over later.
//!
//! The C plugin layer (`catch_unwind`, exported symbols) and the `dlopen`
//! loader need `std` and live in the `plugin-abi` crate, which re-exports all
//! of this one.
//!
//! Feature `std` (off by default): the spin lock yields the CPU under
//! contention instead of only spinning, and `GlobalArena` aborts with a
//! message when the core panics or is re-entered. Feature `allocator-api`
//! (nightly): `core::alloc::Allocator` for `GlobalArena`.
#![no_std]
#![cfg_attr(feature = "allocator-api", feature(allocator_api))]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

mod arena_allocator;
mod global;
mod spin;
pub mod types;

pub use arena_allocator::{
    AddRegionError, ArenaAllocator, BadPointer, InvariantViolation, ReallocError, whole_pages,
};
pub use global::{GlobalArena, NoMoreMemory, OomHandler, Region};
pub use spin::{SpinGuard, SpinLock};
pub use types::*;

/// Bytes the C layer of `plugin-abi` places before a core's region (its
/// `Handle`, 64-byte aligned): a core's `AllocatorInfo::min_arena` counts them.
pub const C_HANDLE_BYTES: usize = 64;
