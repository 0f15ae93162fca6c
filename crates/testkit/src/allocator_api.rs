//! The standard collections over a core through `GlobalArena`, as
//! `core::alloc::Allocator` (nightly, `#![feature(allocator_api)]`): one
//! set of tests for every core, expanded in the core's own test crate (which
//! turns the feature on) by [`allocator_api_tests!`](crate::allocator_api_tests).

/// Expands to the `allocator_api` tests of the core type `$core` (an
/// `arena_api::ArenaAllocator`): collections live in the arena and are
/// returned to it, blocks grow and shrink keeping their contents and the
/// new alignment, and a request too large is an error. The calling test
/// crate needs `#![feature(allocator_api)]` and `plugin_abi` as a
/// dependency.
#[macro_export]
macro_rules! allocator_api_tests {
    ($core:ty) => {
        use ::std::alloc::Allocator as _;

        fn heap(arena: &$crate::TestArena) -> ::plugin_abi::GlobalArena<$core> {
            let heap = ::plugin_abi::GlobalArena::empty(::plugin_abi::NoMoreMemory);
            // SAFETY: the test arena outlives the heap (the callers keep it) and is
            // used by nothing else.
            unsafe { heap.add_region(arena.start(), arena.len()) }.unwrap();
            heap
        }

        #[test]
        fn collections_live_in_the_arena() {
            let arena = $crate::TestArena::new(1 << 20, 0);
            let heap = heap(&arena);
            let (lo, hi) = arena.bounds();
            {
                let mut v: ::std::vec::Vec<u64, &::plugin_abi::GlobalArena<$core>> =
                    ::std::vec::Vec::new_in(&heap);
                for i in 0..10_000 {
                    v.push(i);
                }
                let p = v.as_ptr() as usize;
                assert!(
                    lo <= p && p + v.len() * 8 <= hi,
                    "the vector's buffer is in the arena"
                );
                assert_eq!(v.iter().sum::<u64>(), 10_000 * 9_999 / 2);
                v.truncate(10);
                v.shrink_to_fit();
                assert_eq!(v, (0..10).collect::<Vec<u64>>());
                let b = ::std::boxed::Box::new_in([7u8; 1000], &heap);
                let mut q = ::std::collections::VecDeque::new_in(&heap);
                q.extend(0..1000u32);
                assert_eq!(heap.stats().unwrap().live_blocks, 3);
                assert_eq!(b.iter().map(|&x| x as usize).sum::<usize>(), 7000);
                assert_eq!(q.iter().sum::<u32>(), 999 * 500);
            }
            assert_eq!(heap.stats().unwrap().live_blocks, 0);
            heap.with(|a| a.check_invariants()).unwrap().unwrap();
        }

        #[test]
        fn blocks_grow_shrink_and_keep_their_alignment() {
            let arena = $crate::TestArena::new(1 << 20, 0);
            let heap = heap(&arena);
            let a = ::std::alloc::Layout::from_size_align(100, 16).unwrap();
            let block = heap.allocate(a).unwrap();
            assert!(
                block.len() >= 100,
                "at least the size asked: {}",
                block.len()
            );
            let p = block.cast::<u8>();
            // SAFETY: a live block of at least 100 bytes.
            unsafe { p.as_ptr().write_bytes(0x42, 100) };
            let big = ::std::alloc::Layout::from_size_align(5000, 16).unwrap();
            // SAFETY: `p` was allocated for `a`; `big` is larger.
            let grown = unsafe { heap.grow(p, a, big) }.unwrap();
            assert!(grown.len() >= 5000);
            let g = grown.cast::<u8>();
            // SAFETY: the first 100 bytes were kept.
            assert!((0..100).all(|i| unsafe { g.as_ptr().add(i).read() } == 0x42));
            let aligned = ::std::alloc::Layout::from_size_align(64, 4096).unwrap();
            // SAFETY: `g` was allocated for `big`; `aligned` is smaller.
            let shrunk = unsafe { heap.shrink(g, big, aligned) }.unwrap();
            let s = shrunk.cast::<u8>();
            assert_eq!(
                s.as_ptr() as usize % 4096,
                0,
                "the new alignment is honoured"
            );
            // SAFETY: the first 64 bytes were kept.
            assert!((0..64).all(|i| unsafe { s.as_ptr().add(i).read() } == 0x42));
            // SAFETY: allocated for `aligned`.
            unsafe { heap.deallocate(s, aligned) };
            assert_eq!(heap.stats().unwrap().live_blocks, 0);
            // Too large: an error, not a panic.
            assert!(
                heap.allocate(::std::alloc::Layout::from_size_align(2 << 20, 16).unwrap())
                    .is_err()
            );
        }
    };
}
