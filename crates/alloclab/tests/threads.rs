//! One allocator created `ALLOCATOR_FLAG_LOCKED`, shared by four threads
//! hammering it with random alloc/free/realloc: every thread fills each of its
//! blocks with its own pattern and checks it before freeing, so two threads
//! given overlapping memory would see each other's bytes. At the end the
//! state is consistent and everything came back.

use std::ffi::c_void;
use std::ptr::null_mut;

use alloc_testkit::plugins::built_plugin;
use plugin_abi::loader::Plugin;
use plugin_abi::{ALLOCATOR_FLAG_LOCKED, AllocatorStats};

struct Shared(*mut plugin_abi::Allocator);
// SAFETY: the allocator is created with ALLOCATOR_FLAG_LOCKED, which makes
// every call on it thread-safe (include/allocator.h).
unsafe impl Sync for Shared {}
// SAFETY: as for `Sync`.
unsafe impl Send for Shared {}

#[test]
fn a_locked_allocator_serves_many_threads() {
    for package in ["buddy", "mckusick-karels"] {
        // SAFETY: our own plugin.
        let plugin = unsafe { Plugin::load(&built_plugin(package)) }.unwrap();
        let api = *plugin.api();
        let arena = vec![0u128; (32 << 20) / 16];
        let create = api.create_with_flags.expect("allocator_create_with_flags");
        // SAFETY: the arena outlives the allocator and is used by nothing else.
        let a = unsafe {
            create(
                arena.as_ptr().cast_mut().cast(),
                32 << 20,
                ALLOCATOR_FLAG_LOCKED,
            )
        };
        assert!(!a.is_null());
        let shared = Shared(a);
        let realloc = api.realloc.unwrap();
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let shared = &shared;
                scope.spawn(move || {
                    let a = shared.0;
                    let mut blocks: Vec<(*mut c_void, usize, u8)> = vec![(null_mut(), 0, 0); 512];
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                    for i in 0..100_000u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let k = (x % 512) as usize;
                        let size = 1 + (x >> 24) as usize % 2048;
                        let tag = (t as u8) << 6 | (i % 61) as u8;
                        let (p, n, old) = blocks[k];
                        // SAFETY: `a` is a live locked allocator; blocks are
                        // this thread's own, used within their sizes.
                        unsafe {
                            if !p.is_null() {
                                let bytes = std::slice::from_raw_parts(p.cast::<u8>(), n);
                                assert!(
                                    bytes.iter().all(|&b| b == old),
                                    "{package}: thread {t}'s block was overwritten"
                                );
                            }
                            if p.is_null() {
                                let q = (api.alloc)(a, size);
                                if !q.is_null() {
                                    q.cast::<u8>().write_bytes(tag, size);
                                    blocks[k] = (q, size, tag);
                                }
                            } else if x >> 60 == 0 {
                                let q = realloc(a, p, size);
                                if !q.is_null() {
                                    q.cast::<u8>().write_bytes(tag, size);
                                    blocks[k] = (q, size, tag);
                                }
                            } else {
                                (api.free)(a, p);
                                blocks[k] = (null_mut(), 0, 0);
                            }
                        }
                    }
                    for (p, _, _) in blocks {
                        // SAFETY: as above.
                        unsafe { (api.free)(a, p) };
                    }
                });
            }
        });
        let mut s = AllocatorStats::default();
        // SAFETY: `a` is live; all threads are joined.
        unsafe {
            assert_eq!((api.stats.unwrap())(a, &mut s), 0);
            assert_eq!(
                (api.check.unwrap())(a),
                0,
                "{package}: inconsistent after the threads"
            );
            (api.destroy)(a);
        }
        assert_eq!(
            (s.live_blocks, s.bytes_reserved, s.rejected_frees),
            (0, 0, 0),
            "{package}: {s:?}"
        );
    }
}
