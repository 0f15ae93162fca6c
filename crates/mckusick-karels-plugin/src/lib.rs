//! `libmckusick_karels.so`: the C ABI of `include/allocator.h` over the McKusick-Karels
//! core, [`mckusick_karels_core::McKusickKarels`].
//!
//! The core (package `mckusick-karels`) is `no_std` and knows nothing of C; this crate
//! adds the generic C layer of `plugin-abi` (NULL rules, the `malloc`
//! rules, `ALLOCATOR_FLAG_LOCKED`, no panic across `extern "C"`), which
//! needs `std` for `catch_unwind`. Build it with `cargo build --release`
//! (or `-p mckusick-karels-plugin`): `target/release/libmckusick_karels.so`.
#![deny(unsafe_op_in_unsafe_fn)]

plugin_abi::export_plugin!(mckusick_karels_core::McKusickKarels);
