//! The C ABI that `export_plugin!` generates, called as a C program would:
//! the `extern "C"` functions of the rlib, directly, and the shadow model
//! driven through the same function pointers a `dlopen`ed plugin gives.

use std::ffi::{CStr, c_void};
use std::ptr::{self, null_mut};

use alloc_testkit::target::PluginTarget;
use alloc_testkit::{Expectations, TestArena, action::scenario_strategy};
use buddy::*;
use plugin_abi::loader::PluginApi;
use plugin_abi::{
    ALLOCATOR_ABI_VERSION, ALLOCATOR_FLAG_LOCKED, ALLOCATOR_FLAG_RETURN_PAGES,
    ALLOCATOR_PROP_NO_BLOCK_HEADER, ALLOCATOR_PROP_REJECTS_BAD_FREE, Allocator, AllocatorStats,
};
use proptest::prelude::*;

// The C functions of libbuddy.so, as crates/buddy-plugin exports them,
// linked into this test.
plugin_abi::export_plugin!(Buddy);

fn api() -> PluginApi {
    PluginApi {
        create: allocator_create,
        destroy: allocator_destroy,
        alloc: allocator_alloc,
        free: allocator_free,
        realloc: Some(allocator_realloc),
        create_with_flags: Some(allocator_create_with_flags),
        alloc_aligned: Some(allocator_alloc_aligned),
        usable_size: Some(allocator_usable_size),
        stats: Some(allocator_stats),
        check: Some(allocator_check),
        info: Some(allocator_info),
        add_region: Some(allocator_add_region),
    }
}

fn stats(a: *const Allocator) -> AllocatorStats {
    let mut s = AllocatorStats::default();
    // SAFETY: `a` is a live handle (callers' contract); `s` is writable.
    assert_eq!(unsafe { allocator_stats(a, &mut s) }, 0);
    s
}

#[test]
fn info_describes_the_plugin() {
    // SAFETY: allocator_info returns a static description.
    let info = unsafe { &*allocator_info() };
    assert_eq!(info.abi_version, ALLOCATOR_ABI_VERSION);
    // SAFETY: static NUL-terminated strings.
    unsafe {
        assert_eq!(CStr::from_ptr(info.name).to_str(), Ok("buddy"));
        assert!(!CStr::from_ptr(info.description).is_empty());
        assert!(CStr::from_ptr(info.complexity).to_bytes().contains(&b'O'));
    }
    assert_eq!((info.alignment, info.min_block), (16, 16));
    assert_eq!(info.supported_flags, ALLOCATOR_FLAG_LOCKED);
    assert!(info.properties & ALLOCATOR_PROP_NO_BLOCK_HEADER != 0);
    assert!(info.properties & ALLOCATOR_PROP_REJECTS_BAD_FREE != 0);
    assert!(info.min_arena < 512, "{}", info.min_arena);
}

#[test]
fn min_arena_is_honest_for_every_16_byte_alignment() {
    // SAFETY: as above.
    let min = unsafe { (*allocator_info()).min_arena };
    // Every 16-byte alignment within a page (a sample of them under Miri).
    for misalign in (0..4096).step_by(if cfg!(miri) { 16 * 61 } else { 16 }) {
        let arena = TestArena::new(min, misalign);
        // SAFETY: the arena is valid for `min` bytes and outlives the handle.
        unsafe {
            let a = allocator_create(arena.start().cast(), min);
            assert!(!a.is_null(), "min_arena {min} refused at {misalign}");
            let p = allocator_alloc(a, 1);
            assert!(!p.is_null());
            assert_eq!(allocator_check(a), 0);
            allocator_free(a, p);
            allocator_destroy(a);
        }
        arena.margins_intact().unwrap();
    }
    let arena = TestArena::new(64, 0);
    // SAFETY: as above.
    unsafe {
        assert!(allocator_create(arena.start().cast(), 64).is_null());
        assert!(allocator_create(null_mut(), 1 << 20).is_null());
    }
}

#[test]
fn the_malloc_rules_hold() {
    let arena = TestArena::new(256 << 10, 3);
    // SAFETY: every call below follows include/allocator.h on a live handle
    // (or on NULL / a destroyed one, which the header allows).
    unsafe {
        let a = allocator_create(arena.start().cast(), arena.len());
        assert!(!a.is_null());
        let s0 = stats(a);
        assert_eq!(s0.arena_bytes, arena.len());
        assert!(s0.adds_up());
        // 0.98 % of the arena for the bitmaps, plus the state and handle.
        assert!(s0.metadata_bytes * 100 < arena.len() + 100 * 1024, "{s0:?}");

        let p = allocator_alloc(a, 0);
        assert!(!p.is_null() && (p as usize).is_multiple_of(16));
        assert_eq!(allocator_usable_size(a, p), 16);
        allocator_free(a, null_mut()); // nothing
        assert_eq!(allocator_usable_size(a, ptr::null()), 0);
        // realloc(NULL, n) allocates; realloc(p, 0) frees and returns NULL.
        let q = allocator_realloc(a, null_mut(), 100);
        assert_eq!(allocator_usable_size(a, q), 128);
        assert!(allocator_realloc(a, q, 0).is_null());
        assert_eq!(allocator_usable_size(a, q), 0);
        // A bad pointer: rejected and counted, by free and by realloc.
        allocator_free(a, q);
        assert!(allocator_realloc(a, q, 10).is_null());
        allocator_free(a, p.cast::<u8>().add(8).cast());
        assert_eq!(stats(a).rejected_frees, 3);
        // realloc to a huge size: NULL, p intact.
        assert!(allocator_realloc(a, p, usize::MAX).is_null());
        assert_eq!(allocator_usable_size(a, p), 16);
        // alloc_aligned: exact, and NULL for a non power of two.
        let r = allocator_alloc_aligned(a, 10, 4096);
        assert_eq!(r as usize % 4096, 0);
        assert_eq!(allocator_usable_size(a, r), 16);
        assert!(allocator_alloc_aligned(a, 10, 48).is_null());
        let t = allocator_alloc_aligned(a, 10, 8);
        assert!(!t.is_null());
        assert_eq!(stats(a).failed_allocs, 2);
        assert!(allocator_alloc(a, usize::MAX).is_null());
        assert_eq!(stats(a).failed_allocs, 3);
        allocator_free(a, r);
        allocator_free(a, t);
        allocator_free(a, p);
        let s = stats(a);
        assert_eq!((s.live_blocks, s.bytes_free), (0, s0.bytes_free));
        assert_eq!(s.largest_free_block, s0.largest_free_block);
        assert_eq!(allocator_check(a), 0);
        assert_eq!(allocator_stats(a, null_mut()), -1);

        // After destroy the handle is dead.
        allocator_destroy(a);
        assert!(allocator_alloc(a, 16).is_null());
        let mut out = AllocatorStats::default();
        assert_eq!(allocator_stats(a, &mut out), -1);
        assert_eq!(allocator_check(a), -2);
        allocator_free(a, p); // nothing
        allocator_destroy(a); // nothing

        // NULL handles.
        assert!(allocator_alloc(null_mut(), 16).is_null());
        assert_eq!(allocator_check(ptr::null()), -2);
        allocator_destroy(null_mut());
    }
    arena.margins_intact().unwrap();
}

#[test]
fn flags() {
    let arena = TestArena::new(64 << 10, 0);
    // SAFETY: as in `the_malloc_rules_hold`.
    unsafe {
        let m = arena.start().cast::<c_void>();
        assert!(allocator_create_with_flags(m, arena.len(), ALLOCATOR_FLAG_RETURN_PAGES).is_null());
        assert!(allocator_create_with_flags(m, arena.len(), 0x80).is_null());
        let a = allocator_create_with_flags(m, arena.len(), ALLOCATOR_FLAG_LOCKED);
        assert!(!a.is_null());
        allocator_destroy(a);
    }
}

/// A locked allocator shared by threads: every block is private to its
/// thread (checked by a pattern), and all is well afterwards.
#[test]
fn a_locked_allocator_is_thread_safe() {
    let arena = TestArena::new(4 << 20, 0);
    // SAFETY: as in `the_malloc_rules_hold`.
    let a = unsafe {
        allocator_create_with_flags(arena.start().cast(), arena.len(), ALLOCATOR_FLAG_LOCKED)
    };
    assert!(!a.is_null());
    /// The handle, sent to the threads (no integer round trip: Miri's
    /// strict provenance stays happy).
    #[derive(Clone, Copy)]
    struct Shared(*mut Allocator);
    // SAFETY: the handle is locked: any thread may call it.
    unsafe impl Send for Shared {}
    let shared = Shared(a);
    let rounds = if cfg!(miri) { 50 } else { 20_000 };
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            std::thread::spawn(move || {
                let shared = shared;
                let a = shared.0;
                let mut live: Vec<(*mut u8, usize)> = Vec::new();
                let mut x = 0x9E37_79B9u32.wrapping_mul(u32::from(t) + 1);
                for _ in 0..rounds {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if !x.is_multiple_of(3) || live.is_empty() {
                        let size = 1 + (x as usize >> 8) % 700;
                        // SAFETY: a live, locked handle.
                        let p = unsafe { allocator_alloc(a, size) }.cast::<u8>();
                        if !p.is_null() {
                            // SAFETY: a fresh block of `size` bytes.
                            unsafe { p.write_bytes(t, size) };
                            live.push((p, size));
                        }
                    } else {
                        let (p, size) = live.swap_remove(x as usize % live.len());
                        // SAFETY: our own live block.
                        unsafe {
                            assert!((0..size).all(|i| p.add(i).read() == t));
                            allocator_free(a, p.cast());
                        }
                    }
                }
                for (p, _) in live {
                    // SAFETY: our own live block.
                    unsafe { allocator_free(a, p.cast()) };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = stats(a);
    assert_eq!(
        (s.live_blocks, s.bytes_reserved, s.rejected_frees),
        (0, 0, 0)
    );
    // SAFETY: live handle.
    unsafe {
        assert_eq!(allocator_check(a), 0);
        allocator_destroy(a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 64 },
        // Miri's isolation forbids the failure file's `getcwd`.
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    /// The shadow model, through the C functions.
    #[test]
    fn shadow_model_through_the_c_abi(s in scenario_strategy(if cfg!(miri) { 8 << 10 } else { 256 << 10 }, if cfg!(miri) { 30 } else { 300 })) {
        let api = api();
        let len = s.arena_len(if cfg!(miri) { 8 << 10 } else { 256 << 10 });
        let arena = TestArena::new(len, s.misalign as usize);
        // SAFETY: the arena is valid and outlives the handle.
        let a = unsafe { (api.create)(arena.start().cast(), len) };
        if a.is_null() {
            // SAFETY: static info.
            let min = unsafe { (*allocator_info()).min_arena };
            prop_assert!(len < min + 64, "refused {} bytes", len);
            return Ok(());
        }
        let mut target = PluginTarget { api: &api, allocator: a };
        let r = alloc_testkit::run(&mut target, &arena, &s.actions, &Expectations::default());
        // SAFETY: live handle.
        unsafe { (api.destroy)(a) };
        prop_assert!(r.is_ok(), "{:?}", r);
    }
}
