//! Bad input through the Rust API and through the exported `extern "C"`
//! functions: outside, interior, misaligned and double frees, alloc(0),
//! alloc(usize::MAX), realloc of huge sizes, realloc in place.

use core::ptr::{self, NonNull};

use mckusick_karels::{Config, Heap, McKusickKarels, PageReturn, ReallocError};

// The C functions of libmckusick_karels.so, as crates/mckusick-karels-plugin
// exports them, linked into this test.
plugin_abi::export_plugin!(McKusickKarels);

const PAGE: usize = 4096;

fn region(bytes: usize) -> Vec<u8> {
    vec![0u8; bytes]
}

fn fill(p: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: callers pass live blocks of at least `len` bytes.
    unsafe { p.as_ptr().write_bytes(byte, len) };
}

fn holds(p: NonNull<u8>, len: usize, byte: u8) -> bool {
    // SAFETY: callers pass live blocks of at least `len` bytes.
    (0..len).all(|i| unsafe { p.as_ptr().add(i).read() } == byte)
}

/// A pointer `delta` bytes from `p`, with `p`'s provenance.
fn at(p: NonNull<u8>, delta: isize) -> NonNull<u8> {
    NonNull::new(p.as_ptr().wrapping_offset(delta)).unwrap()
}

#[test]
fn bad_frees_are_rejected_counted_and_change_nothing() {
    for config in [Config::FAITHFUL, Config::RETURN_PAGES] {
        let mut mem = region(128 << 10);
        let start = NonNull::new(mem.as_mut_ptr()).unwrap();
        let len = mem.len();
        let mut heap = Heap::new(&mut mem, config).unwrap();
        let small = heap.malloc(48).unwrap(); // 64-byte bucket
        let tiny = heap.malloc(10).unwrap(); // 16-byte bucket: in-page bitmap
        let two_pages = heap.malloc(5000).unwrap(); // MAXALLOCSAVE bucket: 2 pages
        let large = heap.malloc(3 * PAGE + 1).unwrap(); // 4-page run
        fill(small, 64, 1);
        fill(tiny, 16, 2);
        fill(large, 4 * PAGE, 3);
        let before = heap.stats();
        let tiny_page =
            (tiny.as_ptr().addr() & !(PAGE - 1)) as isize - tiny.as_ptr().addr() as isize;
        let bad = [
            at(start, 0),                      // the allocator's own state
            at(start, -16),                    // before the arena
            at(start, len as isize),           // just past it
            at(start, len as isize + 4096),    // far past it
            at(small, 16),                     // interior of an object
            at(small, 1),                      // misaligned
            at(small, 32),                     // interior, 32-aligned
            at(tiny, 8),                       // misaligned in the 16-byte bucket
            at(tiny, tiny_page),               // slot 0: holds the in-page bitmap
            at(tiny, tiny_page + 16),          // slot 1: holds the in-page bitmap
            at(two_pages, PAGE as isize),      // second page of a 2-page object
            at(large, PAGE as isize),          // interior page of a large run
            at(large, 16),                     // interior of the first page
            at(large, 3 * PAGE as isize + 64), // last page
        ];
        for (i, &p) in bad.iter().enumerate() {
            assert_eq!(
                heap.free(p),
                Err(mckusick_karels::BadPointer),
                "pointer {i}"
            );
            assert_eq!(heap.usable_size(p), None, "pointer {i}");
            assert_eq!(
                heap.realloc(p, 100),
                Err(ReallocError::BadPointer),
                "pointer {i}"
            );
        }
        let after = heap.stats();
        assert_eq!(after.rejected_frees, before.rejected_frees + 2 * bad.len());
        assert_eq!(
            (after.live_blocks, after.bytes_free, after.bytes_reserved),
            (before.live_blocks, before.bytes_free, before.bytes_reserved)
        );
        assert!(holds(small, 64, 1) && holds(tiny, 16, 2) && holds(large, 4 * PAGE, 3));
        heap.check_invariants().unwrap();

        // Double frees, of objects and of large runs.
        for p in [small, tiny, two_pages, large] {
            heap.free(p).unwrap();
            assert!(heap.free(p).is_err());
            assert_eq!(heap.usable_size(p), None);
        }
        assert_eq!(heap.stats().rejected_frees, after.rejected_frees + 4);
        assert_eq!(heap.stats().live_blocks, 0);
        heap.check_invariants().unwrap();
    }
}

#[test]
fn a_double_free_after_the_page_went_back_is_rejected() {
    let mut mem = region(64 << 10);
    let mut heap = Heap::new(&mut mem, Config::RETURN_PAGES).unwrap();
    let p = heap.malloc(100).unwrap();
    let pages_free = heap.stats().bytes_free;
    heap.free(p).unwrap(); // the 128-byte page goes back to the page pool
    assert!(heap.stats().bytes_free > pages_free);
    assert!(heap.free(p).is_err());
    let largest = heap.stats().largest_free_block;
    let big = heap.malloc(largest).unwrap(); // covers p's page
    assert!(heap.free(p).is_err(), "an interior pointer of a large run");
    heap.free(big).unwrap();
    heap.check_invariants().unwrap();
}

#[test]
fn zero_and_huge_sizes() {
    let mut mem = region(64 << 10);
    let mut heap = Heap::new(&mut mem, Config::default()).unwrap();
    let a = heap.malloc(0).unwrap();
    let b = heap.malloc(0).unwrap();
    assert_ne!(a, b);
    assert_eq!(heap.usable_size(a), Some(16));
    assert_eq!(a.as_ptr().addr() % 16, 0);
    for size in [usize::MAX, usize::MAX - 4095, usize::MAX / 2, 1 << 40] {
        assert_eq!(heap.malloc(size), None, "{size}");
        assert_eq!(heap.malloc_aligned(size, 64), None, "{size}");
        assert_eq!(heap.malloc_aligned(size, 1 << 20), None, "{size}");
    }
    assert_eq!(heap.malloc_aligned(16, 3), None);
    assert_eq!(heap.malloc_aligned(16, 0), None);
    assert_eq!(heap.stats().failed_allocs, 14);
    fill(a, 16, 7);
    assert_eq!(heap.realloc(a, usize::MAX), Err(ReallocError::OutOfMemory));
    assert_eq!(heap.realloc(a, 1 << 40), Err(ReallocError::OutOfMemory));
    assert!(holds(a, 16, 7));
    assert_eq!(heap.usable_size(a), Some(16));
    assert_eq!(heap.stats().failed_allocs, 16);
    heap.free(a).unwrap();
    heap.free(b).unwrap();
    heap.check_invariants().unwrap();
}

#[test]
fn alignments_up_to_a_page_are_natural_and_larger_ones_trimmed() {
    let mut mem = region(256 << 10);
    let mut heap = Heap::new(&mut mem, Config::default()).unwrap();
    for align in [32, 64, 256, 1024, 4096, 8192, 32768] {
        for size in [1, 100, 5000, 20000] {
            let p = heap.malloc_aligned(size, align).unwrap();
            assert_eq!(p.as_ptr().addr() % align, 0, "size {size} align {align}");
            assert!(heap.usable_size(p).unwrap() >= size);
            heap.free(p).unwrap();
            heap.check_invariants().unwrap();
        }
    }
}

#[test]
fn realloc_in_place_within_a_bucket_and_a_page_run() {
    let mut mem = region(256 << 10);
    let mut heap = Heap::new(&mut mem, Config::default()).unwrap();
    // Same bucket: in place, both ways.
    let p = heap.malloc(100).unwrap();
    fill(p, 100, 9);
    assert_eq!(heap.realloc(p, 128), Ok(p));
    assert_eq!(heap.realloc(p, 65), Ok(p));
    assert!(holds(p, 65, 9));
    // Smaller bucket: moves, keeps the prefix.
    let q = heap.realloc(p, 40).unwrap();
    assert_ne!(q, p);
    assert_eq!(heap.usable_size(q), Some(64));
    assert!(holds(q, 40, 9));
    assert!(heap.free(p).is_err());
    // Larger bucket: moves.
    let r = heap.realloc(q, 1000).unwrap();
    assert_eq!(heap.usable_size(r), Some(1024));
    assert!(holds(r, 40, 9));

    // A page run: shrink in place (tail pages go back), grow in place into
    // the free run after it, and move when the next page is taken.
    let big = heap.malloc(10 * PAGE).unwrap();
    fill(big, 10 * PAGE, 5);
    let free0 = heap.stats().bytes_free;
    assert_eq!(heap.realloc(big, 6 * PAGE), Ok(big));
    assert_eq!(heap.usable_size(big), Some(6 * PAGE));
    assert_eq!(heap.stats().bytes_free, free0 + 4 * PAGE);
    assert_eq!(heap.realloc(big, 12 * PAGE - 100), Ok(big));
    assert_eq!(heap.usable_size(big), Some(12 * PAGE));
    assert!(holds(big, 6 * PAGE, 5));
    let blocker = heap.malloc(3 * PAGE).unwrap(); // right after `big`
    assert_eq!(blocker.as_ptr().addr(), big.as_ptr().addr() + 12 * PAGE);
    let moved = heap.realloc(big, 13 * PAGE).unwrap();
    assert_ne!(moved, big);
    assert!(holds(moved, 6 * PAGE, 5));
    // Down to a small size: into a bucket.
    let small = heap.realloc(moved, 100).unwrap();
    assert_eq!(heap.usable_size(small), Some(128));
    assert!(holds(small, 100, 5));
    // Down to just over a page: in place, two pages.
    assert_eq!(heap.realloc(blocker, PAGE + 1), Ok(blocker));
    assert_eq!(heap.usable_size(blocker), Some(2 * PAGE));
    for p in [r, small, blocker] {
        heap.free(p).unwrap();
    }
    heap.check_invariants().unwrap();
    assert_eq!(heap.stats().live_blocks, 0);
}

#[test]
fn page_arithmetic_finds_the_size_of_every_block() {
    let mut mem = region(512 << 10);
    let mut heap = Heap::new(&mut mem, Config::default()).unwrap();
    for shift in 0..17 {
        let size = 1usize << shift;
        let p = heap.malloc(size).unwrap();
        let want = if size <= 8192 {
            size.max(16)
        } else {
            size.next_multiple_of(PAGE)
        };
        assert_eq!(heap.usable_size(p), Some(want), "size {size}");
        let q = heap.malloc(size + 1).unwrap();
        let want = if size < 8192 {
            (size + 1).next_power_of_two().max(16)
        } else {
            (size + 1).next_multiple_of(PAGE)
        };
        assert_eq!(heap.usable_size(q), Some(want), "size {}", size + 1);
        assert_eq!(q.as_ptr().addr() % 16, 0);
    }
    heap.check_invariants().unwrap();
}

#[test]
fn config_and_region_errors() {
    let mut mem = region(64 << 10);
    for page_size in [0, 100, 128, 4095, 1 << 17] {
        let e = Heap::new(
            &mut mem,
            Config {
                page_size,
                page_return: PageReturn::Never,
            },
        )
        .unwrap_err();
        assert_eq!(e, mckusick_karels::CreateError::BadPageSize, "{page_size}");
    }
    let mut small = region(4096);
    assert_eq!(
        Heap::new(&mut small, Config::default()).unwrap_err(),
        mckusick_karels::CreateError::TooSmall
    );
    // SAFETY: a null region is refused before any access.
    let e = unsafe { McKusickKarels::create(ptr::null_mut(), 1 << 20, Config::default()) };
    assert!(e.is_err());
    // Enough for one page with 256-byte pages.
    let mut tiny = region(2048);
    let heap = Heap::new(
        &mut tiny,
        Config {
            page_size: 256,
            page_return: PageReturn::Eager,
        },
    )
    .unwrap();
    assert!(heap.npages() >= 1);
}

mod c_abi {
    use super::*;
    use crate::{
        allocator_alloc, allocator_alloc_aligned, allocator_check, allocator_create,
        allocator_create_with_flags, allocator_destroy, allocator_free, allocator_info,
        allocator_realloc, allocator_stats, allocator_usable_size,
    };
    use core::ffi::c_void;
    use plugin_abi::{
        ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_LOCKED, ALLOCATOR_FLAG_RETURN_PAGES,
        ALLOCATOR_STAT_UNKNOWN, AllocatorStats,
    };

    fn stats(a: *mut plugin_abi::Allocator) -> AllocatorStats {
        let mut s = AllocatorStats::default();
        // SAFETY: a live handle and a valid out-pointer.
        assert_eq!(unsafe { allocator_stats(a, &mut s) }, 0);
        s
    }

    #[test]
    fn the_exported_functions_reject_bad_input() {
        let mut mem = vec![0u64; (96 << 10) / 8];
        let base = mem.as_mut_ptr().cast::<c_void>();
        let len = mem.len() * 8;
        // SAFETY: every call below passes this live arena's handle, NULL, or
        // pointers that the contract says must be rejected.
        unsafe {
            assert!(allocator_create(ptr::null_mut(), len).is_null());
            assert!(allocator_create(base, 100).is_null());
            assert!(allocator_create_with_flags(base, len, 0x80).is_null());
            // The two page-return modes exclude each other.
            assert!(
                allocator_create_with_flags(
                    base,
                    len,
                    ALLOCATOR_FLAG_RETURN_PAGES | ALLOCATOR_FLAG_FAITHFUL
                )
                .is_null()
            );
            let a = allocator_create_with_flags(
                base,
                len,
                ALLOCATOR_FLAG_RETURN_PAGES | ALLOCATOR_FLAG_LOCKED,
            );
            assert!(!a.is_null());
            assert_eq!(allocator_check(a), 0);

            let z = allocator_alloc(a, 0).cast::<u8>();
            assert!(!z.is_null());
            assert_eq!(allocator_usable_size(a, z.cast()), 16);
            assert!(allocator_alloc(a, usize::MAX).is_null());
            assert!(allocator_alloc_aligned(a, 64, 48).is_null());
            let al = allocator_alloc_aligned(a, 64, 4096);
            assert_eq!(al.addr() % 4096, 0);

            let p = allocator_alloc(a, 200).cast::<u8>();
            p.write_bytes(0xAB, 200);
            allocator_free(a, p.add(8).cast());
            allocator_free(a, p.add(1).cast());
            allocator_free(a, base.cast::<u8>().wrapping_add(len + 64).cast());
            allocator_free(a, base);
            assert!(allocator_realloc(a, p.add(16).cast(), 10).is_null());
            assert_eq!(allocator_usable_size(a, p.add(16).cast()), 0);
            let s = stats(a);
            assert_eq!(s.rejected_frees, 5);
            assert_eq!(s.failed_allocs, 2);
            assert_eq!(s.live_blocks, 3);
            assert_eq!(s.bytes_requested, ALLOCATOR_STAT_UNKNOWN);
            assert_eq!(s.arena_bytes, len);
            assert!(s.adds_up());

            // realloc: huge fails and keeps the block; same bucket in place.
            assert!(allocator_realloc(a, p.cast(), usize::MAX - 10).is_null());
            assert!((0..200).all(|i| p.add(i).read() == 0xAB));
            assert_eq!(allocator_realloc(a, p.cast(), 250).cast::<u8>(), p);
            let q = allocator_realloc(a, p.cast(), 3000).cast::<u8>();
            assert!(!q.is_null() && q != p);
            assert!((0..200).all(|i| q.add(i).read() == 0xAB));
            allocator_free(a, p.cast()); // freed by the move: rejected
            assert_eq!(stats(a).rejected_frees, 6);
            // realloc(NULL, n) allocates; realloc(p, 0) frees and returns NULL.
            let r = allocator_realloc(a, ptr::null_mut(), 40);
            assert!(!r.is_null());
            assert!(allocator_realloc(a, r, 0).is_null());
            assert_eq!(allocator_usable_size(a, r), 0);
            allocator_free(a, ptr::null_mut());

            allocator_free(a, q.cast());
            allocator_free(a, z.cast());
            allocator_free(a, al);
            let s = stats(a);
            assert_eq!(s.live_blocks, 0);
            assert_eq!(s.rejected_frees, 6);
            assert_eq!(allocator_check(a), 0);

            // A dead handle answers nothing.
            allocator_destroy(a);
            assert!(allocator_alloc(a, 16).is_null());
            let mut out = AllocatorStats::default();
            assert_eq!(allocator_stats(a, &mut out), -1);
            assert_eq!(allocator_check(a), -2);
            allocator_destroy(ptr::null_mut());
        }
    }

    #[test]
    fn the_info_describes_this_plugin() {
        let info = allocator_info();
        // SAFETY: `allocator_info` returns a static description.
        let info = unsafe { &*info };
        assert_eq!(info.min_block, 16);
        assert_eq!(info.alignment, 16);
        assert_eq!(
            info.supported_flags,
            ALLOCATOR_FLAG_RETURN_PAGES | ALLOCATOR_FLAG_FAITHFUL | ALLOCATOR_FLAG_LOCKED
        );
        // SAFETY: static NUL-terminated strings.
        let name = unsafe { core::ffi::CStr::from_ptr(info.name) };
        assert_eq!(name.to_str().unwrap(), "mckusick-karels");
        // min_arena is enough for any 16-byte aligned arena...
        let mut mem = vec![0u64; info.min_arena / 8 + 2];
        for shift in 0..8 {
            let base = mem.as_mut_ptr().cast::<u8>().wrapping_add(shift * 16);
            // SAFETY: `min_arena` bytes from `base` lie inside `mem`.
            let a = unsafe { allocator_create(base.cast(), info.min_arena) };
            assert!(!a.is_null(), "offset {}", shift * 16);
            // ...and holds at least one page.
            // SAFETY: a live handle.
            let p = unsafe { allocator_alloc(a, 4096) };
            assert!(!p.is_null());
            // SAFETY: as above.
            unsafe { allocator_destroy(a) };
        }
    }
}
