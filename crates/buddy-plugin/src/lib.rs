//! `libbuddy.so`: the C ABI of `include/allocator.h` over the the buddy system
//! core, [`buddy_core::Buddy`].
//!
//! The core (package `buddy`) is `no_std` and knows nothing of C; this crate
//! adds the generic C layer of `plugin-abi` (NULL rules, the `malloc`
//! rules, `ALLOCATOR_FLAG_LOCKED`, no panic across `extern "C"`), which
//! needs `std` for `catch_unwind`. Build it with `cargo build --release`
//! (or `-p buddy-plugin`): `target/release/libbuddy.so`.
#![deny(unsafe_op_in_unsafe_fn)]

plugin_abi::export_plugin!(buddy_core::Buddy);
