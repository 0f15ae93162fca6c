//! `core::alloc::Allocator` (nightly, feature `allocator-api`): the
//! standard collections over this core, through `GlobalArena` (the tests
//! are the testkit's, shared by both cores).
//!
//! `cargo +nightly test -p mckusick-karels --features allocator-api --test allocator_api`
#![cfg(feature = "allocator-api")]
#![feature(allocator_api)]

alloc_testkit::allocator_api_tests!(mckusick_karels::McKusickKarels);
