//! The Rust API, case by case: bad pointers, edge sizes, realloc in place,
//! alignment, free-all restoring the initial free areas, and the invariant
//! check catching a corrupted state.

use std::ptr::NonNull;

use alloc_testkit::TestArena;
use buddy::{Buddy, FreeBlock, MAX_ORDER};
use plugin_abi::{ALLOCATOR_STAT_UNKNOWN, AllocatorStats, BadPointer, ReallocError};

/// A buddy allocator on a fresh test arena of `len` bytes at `misalign`.
struct Heap {
    arena: TestArena,
    buddy: NonNull<Buddy>,
}

impl Heap {
    fn new(len: usize, misalign: usize) -> Heap {
        let arena = TestArena::new(len, misalign);
        // SAFETY: the test arena is valid, ours alone, and outlives the heap.
        let buddy = unsafe { Buddy::create(arena.start(), arena.len()) }.expect("arena too small");
        Heap { arena, buddy }
    }

    fn b(&mut self) -> &mut Buddy {
        // SAFETY: created on our arena, used only through this handle.
        unsafe { self.buddy.as_mut() }
    }

    fn ptr(&self, addr: usize) -> NonNull<u8> {
        NonNull::new(self.arena.ptr_at(addr)).unwrap()
    }

    fn free_set(&mut self) -> Vec<FreeBlock> {
        let mut v: Vec<_> = self.b().free_blocks().collect();
        v.sort();
        v
    }

    fn check(&mut self) {
        self.b().check_invariants().unwrap();
        self.arena.margins_intact().unwrap();
        assert!(self.b().stats().adds_up());
    }
}

const KIB: usize = 1 << 10;

fn same_but_rejected(before: &AllocatorStats, after: &AllocatorStats, more: usize) {
    let mut b = *before;
    b.rejected_frees += more;
    assert_eq!(&b, after);
}

#[test]
fn bad_frees_are_rejected_and_change_nothing() {
    let mut h = Heap::new(64 * KIB + 7, 9);
    let small = h.b().alloc(16).unwrap();
    let big = h.b().alloc(2000).unwrap(); // order 11: WIDE and order digits
    assert_eq!(h.b().usable_size(big), Some(2048));
    let huge = h.b().alloc(10_000).unwrap(); // order 14: WIDE and order digits
    assert_eq!(h.b().usable_size(huge), Some(16384));
    let freed = h.b().alloc(100).unwrap();
    h.b().free(freed).unwrap();
    let (lo, hi) = h.arena.bounds();
    let (start, len) = h.b().managed_range();
    let before = h.b().stats();
    let free_before = h.free_set();

    let mut bad: Vec<usize> = vec![
        lo,                           // the arena's start: allocator state
        start - 16,                   // the last byte before the managed range
        hi,                           // one past the arena
        start + len,                  // one past the managed range
        lo.wrapping_sub(4096),        // before the arena
        freed.as_ptr() as usize,      // double free
        small.as_ptr() as usize + 16, // right after a 16-byte block: its free buddy
    ];
    for d in 1..16 {
        bad.push(small.as_ptr() as usize + d); // misaligned
        bad.push(big.as_ptr() as usize + d);
    }
    for d in (16..2048).step_by(16) {
        bad.push(big.as_ptr() as usize + d); // interior
    }
    for d in (16..16384).step_by(16) {
        bad.push(huge.as_ptr() as usize + d); // interior, digits included
    }
    for (n, &addr) in bad.iter().enumerate() {
        let p = h.ptr(addr);
        assert_eq!(h.b().free(p), Err(BadPointer), "{addr:#x}");
        assert_eq!(h.b().usable_size(p), None, "{addr:#x}");
        assert_eq!(
            h.b().realloc(p, 64),
            Err(ReallocError::BadPointer),
            "{addr:#x}"
        );
        same_but_rejected(&before, &h.b().stats(), 2 * (n + 1));
    }
    assert_eq!(h.free_set(), free_before);
    // A pointer from another allocation entirely.
    let other = Box::new(0u128);
    let other = NonNull::from(&*other).cast::<u8>();
    assert_eq!(h.b().free(other), Err(BadPointer));
    h.check();
    h.b().free(small).unwrap();
    h.b().free(big).unwrap();
    h.b().free(huge).unwrap();
    h.check();
}

#[test]
fn edge_sizes() {
    let mut h = Heap::new(256 * KIB, 0);
    let failed0 = h.b().stats().failed_allocs;
    // alloc(0): a unique, freeable 16-byte block.
    let a = h.b().alloc(0).unwrap();
    let b = h.b().alloc(0).unwrap();
    assert_ne!(a, b);
    assert_eq!(h.b().usable_size(a), Some(16));
    // Sizes that cannot be served fail at once and are counted.
    for size in [
        usize::MAX,
        usize::MAX - 15,
        usize::MAX / 2 + 1,
        (1 << MAX_ORDER) + 1,
        1 << 30,
        256 * KIB,
    ] {
        assert_eq!(h.b().alloc(size), None, "{size}");
        assert_eq!(h.b().alloc_aligned(size, 64), None, "{size}");
    }
    assert_eq!(h.b().stats().failed_allocs, failed0 + 12);
    // Exactly 2^k bytes take a 2^k block: no header.
    for k in 4..=16 {
        let p = h.b().alloc(1 << k).unwrap();
        assert_eq!(h.b().usable_size(p), Some(1 << k));
        assert_eq!(p.as_ptr() as usize % (1 << k), 0, "naturally aligned");
        h.b().free(p).unwrap();
    }
    h.b().free(a).unwrap();
    h.b().free(b).unwrap();
    let s = h.b().stats();
    assert_eq!(s.bytes_requested, ALLOCATOR_STAT_UNKNOWN);
    assert_eq!((s.live_blocks, s.bytes_reserved), (0, 0));
    h.check();
}

#[test]
fn realloc_shrinks_and_grows_in_place() {
    let mut h = Heap::new(64 * KIB, 0);
    let p = h.b().alloc(4096).unwrap();
    // SAFETY: a live block of 4096 bytes.
    unsafe { p.as_ptr().write_bytes(0xAB, 4096) };
    let free_before = h.b().stats().bytes_free;

    // Shrink: same pointer, the tail halves become free blocks.
    let q = h.b().realloc(p, 100).unwrap();
    assert_eq!(q, p);
    assert_eq!(h.b().usable_size(p), Some(128));
    assert_eq!(h.b().stats().bytes_free, free_before + 4096 - 128);
    let tail: Vec<_> = h
        .free_set()
        .into_iter()
        .filter(|f| f.addr > p.as_ptr() as usize && f.addr < p.as_ptr() as usize + 4096)
        .collect();
    let expect: Vec<_> = (7..12)
        .map(|k| FreeBlock {
            addr: p.as_ptr() as usize + (1 << k),
            order: k,
        })
        .collect();
    assert_eq!(tail, expect);
    h.check();

    // Grow back: the upper buddies are free and whole, so in place.
    let q = h.b().realloc(p, 3000).unwrap();
    assert_eq!(q, p);
    assert_eq!(h.b().usable_size(p), Some(4096));
    assert_eq!(h.b().stats().bytes_free, free_before);
    // SAFETY: the first 128 bytes were kept.
    assert!((0..128).all(|i| unsafe { p.as_ptr().add(i).read() } == 0xAB));
    h.check();

    // Same order: nothing moves.
    assert_eq!(h.b().realloc(p, 2049).unwrap(), p);

    // Block the growth: allocate the buddy, then grow must move and copy.
    let small = h.b().realloc(p, 16).unwrap();
    assert_eq!(small, p);
    let blocker = h.b().alloc(16).unwrap();
    assert_eq!(blocker.as_ptr() as usize, p.as_ptr() as usize + 16);
    // SAFETY: live 16-byte block.
    unsafe { p.as_ptr().write_bytes(0x5A, 16) };
    let moved = h.b().realloc(p, 64).unwrap();
    assert_ne!(moved, p);
    // SAFETY: the new block holds 64 bytes, the first 16 copied.
    assert!((0..16).all(|i| unsafe { moved.as_ptr().add(i).read() } == 0x5A));
    assert_eq!(h.b().usable_size(p), None, "the old block was freed");
    h.check();

    // Too big: refused, counted, the block untouched.
    let failed = h.b().stats().failed_allocs;
    for size in [usize::MAX, 1 << 20] {
        assert_eq!(h.b().realloc(moved, size), Err(ReallocError::OutOfMemory));
    }
    assert_eq!(h.b().stats().failed_allocs, failed + 2);
    assert_eq!(h.b().usable_size(moved), Some(64));
    h.b().free(moved).unwrap();
    h.b().free(blocker).unwrap();
    h.check();
}

#[test]
fn grow_in_place_needs_alignment_and_whole_buddies() {
    let mut h = Heap::new(64 * KIB, 0);
    // At a 64-byte boundary, whatever the layout of the state: the split
    // leaves a's buddy (16 B) and the upper 32 B free, pushed last (LIFO).
    let a = h.b().alloc_aligned(16, 64).unwrap();
    let b = h.b().alloc(16).unwrap(); // the upper buddy of a
    assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + 16);
    // b is the upper half: growing it to 32 would need a non-aligned block.
    let nb = h.b().realloc(b, 32).unwrap();
    assert_ne!(nb, b);
    // a's buddy (b's old place) is free again, and whole: a grows in place.
    assert_eq!(h.b().realloc(a, 32).unwrap(), a);
    // a (32) + next 32 = nb? nb came from the split of the 64 after a's pair,
    // so a cannot grow to 64 in place: its buddy is partly taken.
    assert_eq!(nb.as_ptr() as usize, a.as_ptr() as usize + 32);
    let a2 = h.b().realloc(a, 64).unwrap();
    assert_ne!(a2, a);
    h.b().free(a2).unwrap();
    h.b().free(nb).unwrap();
    h.check();
}

#[test]
fn alloc_aligned_takes_only_its_own_block() {
    let mut h = Heap::new(256 * KIB, 100);
    let free0 = h.b().stats().bytes_free;
    let p = h.b().alloc_aligned(16, 4096).unwrap();
    assert_eq!(p.as_ptr() as usize % 4096, 0);
    assert_eq!(h.b().usable_size(p), Some(16));
    assert_eq!(h.b().stats().bytes_free, free0 - 16);
    let q = h.b().alloc_aligned(5000, 64).unwrap();
    assert_eq!(q.as_ptr() as usize % 8192, 0);
    for bad_align in [0, 3, 24, 4097] {
        assert_eq!(h.b().alloc_aligned(16, bad_align), None);
    }
    assert_eq!(h.b().alloc_aligned(16, 1 << 40), None);
    h.b().free(p).unwrap();
    h.b().free(q).unwrap();
    h.check();
    assert_eq!(h.b().stats().bytes_free, free0);
}

/// Allocating everything of one size and freeing it all (in a scrambled
/// order) gives back exactly the initial free areas: the top blocks.
#[test]
fn free_all_restores_the_initial_free_areas() {
    let sizes: &[usize] = if cfg!(miri) {
        &[16, 100]
    } else {
        &[1, 16, 17, 48, 100, 1000, 4096, 10_000]
    };
    let arenas: &[(usize, usize)] = if cfg!(miri) {
        &[(3000, 5)]
    } else {
        &[(3000, 5), (64 * KIB, 0), (100_003, 4000), (1 << 20, 16)]
    };
    for &(len, misalign) in arenas {
        for &size in sizes {
            let mut h = Heap::new(len, misalign);
            let initial = h.free_set();
            let initial_stats = h.b().stats();
            let mut live = Vec::new();
            while let Some(p) = h.b().alloc(size) {
                live.push(p);
            }
            assert!(!live.is_empty() || size > len);
            let s = h.b().stats();
            assert!(s.largest_free_block < size.max(16), "{s:?}");
            h.check();
            let n = live.len();
            for i in 0..n {
                live.swap(i, (i * 7919 + 13) % n);
            }
            for p in live {
                h.b().free(p).unwrap();
            }
            assert_eq!(h.free_set(), initial, "len {len} size {size}");
            let mut end = h.b().stats();
            end.failed_allocs = initial_stats.failed_allocs;
            assert_eq!(end, initial_stats);
            h.check();
        }
    }
}

/// `create` zeroes the bitmaps itself (it writes only the words that are not
/// zero already, so that a fresh mapping stays untouched): a region full of
/// old data, and one where an earlier allocator left its bitmaps, serve
/// exactly as a zeroed one.
#[test]
fn creating_over_old_data_is_like_creating_over_zeroes() {
    for &(len, misalign) in &[(3000, 5), (64 * KIB, 0), (100_003, 4000)] {
        let mut h = Heap::new(len, misalign);
        let initial = h.free_set();
        let fill = |h: &mut Heap| {
            let mut live = Vec::new();
            while let Some(p) = h.b().alloc(100) {
                live.push(p);
            }
            live
        };
        let n = fill(&mut h).len();
        // An earlier allocator's state and bitmaps, and old data, everywhere.
        // SAFETY: as in `Heap::new`; the blocks of the first are dropped.
        h.buddy = unsafe { Buddy::create(h.arena.start(), h.arena.len()) }.unwrap();
        while h.b().alloc(48).is_some() {}
        // SAFETY: the region is ours; the earlier allocator is dropped here.
        unsafe { h.arena.start().write_bytes(0x5A, len / 2) };
        // SAFETY: as in `Heap::new`; the region is ours alone again.
        h.buddy = unsafe { Buddy::create(h.arena.start(), h.arena.len()) }.unwrap();
        assert_eq!(h.free_set(), initial, "len {len}");
        h.check();
        let live = fill(&mut h);
        assert_eq!(live.len(), n, "len {len}");
        h.check();
        for p in live {
            h.b().free(p).unwrap();
        }
        assert_eq!(h.free_set(), initial);
        h.check();
    }
}

/// Validity never depends on what a caller wrote: a live block that holds a
/// perfect forgery of a free-block header is still treated as allocated.
#[test]
fn forged_headers_in_live_blocks_are_ignored() {
    let mut h = Heap::new(64 * KIB, 0);
    let a = h.b().alloc(16).unwrap();
    let b = h.b().alloc(16).unwrap();
    assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + 16);
    let big = h.b().alloc(1024).unwrap();
    // Forge "free block of order 4, magic" in b and everywhere in big.
    let forge = |p: *mut u8| {
        let h: [u8; 16] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 4, 0xB5, 0, 0, 0, 0, 0, 0,
        ];
        // SAFETY: p is 16 bytes of a live block.
        unsafe { p.copy_from_nonoverlapping(h.as_ptr(), 16) };
    };
    forge(b.as_ptr());
    for off in (0..1024).step_by(16) {
        // SAFETY: inside big.
        forge(unsafe { big.as_ptr().add(off) });
    }
    h.check();
    // a's buddy b looks free of order 4 but is allocated: no merge.
    h.b().free(a).unwrap();
    assert_eq!(h.b().usable_size(b), Some(16));
    h.check();
    // Interior pointers of big stay bad whatever big holds.
    for off in (16..1024).step_by(16) {
        // SAFETY: inside big.
        let p = NonNull::new(unsafe { big.as_ptr().add(off) }).unwrap();
        assert_eq!(h.b().free(p), Err(BadPointer));
    }
    h.b().free(b).unwrap();
    h.b().free(big).unwrap();
    h.check();
}

/// The check is not a rubber stamp: a write after free into a free block's
/// header, or into the bitmaps, is reported.
#[test]
fn check_catches_corruption() {
    let mut h = Heap::new(64 * KIB, 0);
    let a = h.b().alloc(64).unwrap();
    let keep = h.b().alloc(64).unwrap();
    h.b().free(a).unwrap(); // a is now a free block (its buddy is keep)
    h.check();
    // SAFETY: a lies in the arena; this is the use-after-free under test.
    let saved = unsafe { a.as_ptr().cast::<[u8; 12]>().read() };
    // order, magic, next (a is its list's head, whose prev is not kept)
    for (off, flip) in [(8, 3u8), (9, 0xFF), (0, 0x10)] {
        // SAFETY: as above.
        unsafe { a.as_ptr().add(off).write(a.as_ptr().add(off).read() ^ flip) };
        assert!(h.b().check().is_err(), "byte {off} ^= {flip}");
        // SAFETY: as above.
        unsafe { a.as_ptr().cast::<[u8; 12]>().write(saved) };
        h.check();
    }
    // The bitmaps sit between the state and the managed range: flip a bit
    // of the first A word.
    let (start, _) = h.b().managed_range();
    let state = h.buddy.as_ptr() as usize;
    assert!(state < start);
    let first_word = (state + size_of::<Buddy>()).next_multiple_of(8);
    let p = h.arena.ptr_at(first_word).cast::<u64>();
    // SAFETY: inside the arena, 8-aligned (the A bitmap's first word).
    unsafe { p.write(p.read() ^ (1 << 63)) };
    assert!(h.b().check().is_err());
    // SAFETY: as above.
    unsafe { p.write(p.read() ^ (1 << 63)) };
    h.check();
    h.b().free(keep).unwrap();
    h.check();
}

#[test]
fn tiny_and_huge_arenas() {
    let mut region = [0u8; 200];
    assert!(Buddy::new_in(&mut region).is_none());
    let mut region = vec![0u8; 1024];
    let heap = Buddy::new_in(&mut region).unwrap();
    let s = heap.stats();
    assert!(s.adds_up() && s.bytes_free > 0);
    let p = heap.alloc(16).unwrap();
    heap.free(p).unwrap();
    heap.check_invariants().unwrap();
    // SAFETY: a null region is refused before any access.
    assert!(unsafe { Buddy::create(std::ptr::null_mut(), 1 << 20) }.is_none());
}
