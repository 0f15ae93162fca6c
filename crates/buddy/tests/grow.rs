//! Memory added at run time: `Buddy::add_region` directly, and
//! `GlobalArena` asking its out-of-memory hook for more.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use alloc_testkit::TestArena;
use buddy::Buddy;
use plugin_abi::{AddRegionError, GlobalArena, OomHandler, Region};

#[test]
fn added_regions_serve_requests_and_merge_back() {
    let first = TestArena::new(4096, 0);
    let second = TestArena::new(100_000, 3); // odd size, odd alignment
    // SAFETY: both test arenas outlive the allocator and are used only by it.
    let heap = unsafe { &mut *Buddy::create(first.start(), first.len()).unwrap().as_ptr() };
    let before = heap.stats();
    assert!(heap.alloc(16 << 10).is_none());
    // SAFETY: as above.
    unsafe { heap.add_region(second.start(), second.len()) }.unwrap();
    let after = heap.stats();
    assert_eq!(after.arena_bytes, 4096 + 100_000);
    assert_eq!(
        after.bytes_free + after.metadata_bytes,
        before.bytes_free + before.metadata_bytes + 100_000
    );
    // 100,000 bytes less ~1 % hold an aligned 32 KiB block at least
    // (64 KiB if the address allows).
    assert!(after.largest_free_block >= 32 << 10, "{after:?}");
    let big = heap.alloc(20 << 10).unwrap();
    let (lo, hi) = second.bounds();
    assert!(lo <= big.as_ptr() as usize && big.as_ptr() as usize + (20 << 10) <= hi);
    // A block in the first region still comes from there.
    let small = heap.alloc(16).unwrap();
    assert!(first.bounds().0 <= small.as_ptr() as usize);
    // realloc moves across regions when it must.
    let grown = heap.realloc(small, 8 << 10).unwrap();
    assert!(lo <= grown.as_ptr() as usize && (grown.as_ptr() as usize) < hi);
    heap.check_invariants().unwrap();
    // Overlapping memory is refused; so is a region too small for anything.
    // SAFETY: refused without being touched.
    unsafe {
        assert_eq!(
            heap.add_region(second.start().add(500), 8192),
            Err(AddRegionError::Overlaps)
        );
        assert_eq!(
            heap.add_region(first.start(), 1),
            Err(AddRegionError::Overlaps)
        );
    }
    let tiny = TestArena::new(40, 0);
    // SAFETY: as above.
    let refused = unsafe { heap.add_region(tiny.start(), tiny.len()) };
    assert_eq!(refused, Err(AddRegionError::TooSmall));
    // Frees find their region; everything merges back.
    heap.free(big).unwrap();
    heap.free(grown).unwrap();
    assert!(
        heap.free(grown).is_err(),
        "a double free in an added region"
    );
    let end = heap.stats();
    assert_eq!(end.live_blocks, 0);
    assert_eq!(end.bytes_free, after.bytes_free);
    assert_eq!(end.largest_free_block, after.largest_free_block);
    assert_eq!(end.rejected_frees, 1);
    heap.check_invariants().unwrap();
    first.margins_intact().unwrap();
    second.margins_intact().unwrap();
}

/// Hands out 64 KiB pieces of one test arena, counting the calls.
struct Pool {
    arena: TestArena,
    next: usize,
    calls: usize,
}

// SAFETY: each piece is handed out once and the arena outlives every
// `GlobalArena` of these tests (they are dropped first: see the field order).
unsafe impl OomHandler for Pool {
    fn handle_oom(&mut self, layout: Layout) -> Option<Region> {
        self.calls += 1;
        let len = 64 << 10;
        assert!(
            layout.size() <= len / 4,
            "the test asks only for small blocks"
        );
        if self.next + len > self.arena.len() {
            return None;
        }
        // SAFETY: inside the arena.
        let start = NonNull::new(unsafe { self.arena.start().add(self.next) })?;
        self.next += len;
        Some(Region { start, len })
    }
}

#[test]
fn the_oom_hook_feeds_an_empty_global_arena() {
    let pool = Pool {
        arena: TestArena::new(4 * (64 << 10), 0),
        next: 0,
        calls: 0,
    };
    let heap: GlobalArena<Buddy, Pool> = GlobalArena::empty(pool);
    let layout = Layout::from_size_align(8 << 10, 16).unwrap();
    let mut blocks = Vec::new();
    loop {
        // SAFETY: a non-zero-size layout.
        let p = unsafe { heap.alloc(layout) };
        if p.is_null() {
            break;
        }
        // SAFETY: a fresh block of `layout.size()` bytes.
        unsafe { p.write_bytes(blocks.len() as u8, layout.size()) };
        blocks.push(p);
    }
    // Four regions of 64 KiB, each 4096-aligned: its state and bitmaps
    // (about 1 %) cost it one 8 KiB block of the eight.
    assert_eq!(blocks.len(), 4 * 7);
    let s = heap.stats().unwrap();
    assert_eq!(s.arena_bytes, 4 * (64 << 10));
    assert_eq!(s.live_blocks, blocks.len());
    heap.with(|a| a.check_invariants()).unwrap().unwrap();
    for (i, &p) in blocks.iter().enumerate() {
        // SAFETY: live blocks written above.
        assert!((0..layout.size()).all(|j| unsafe { p.add(j).read() } == i as u8));
        // SAFETY: allocated with this layout.
        unsafe { heap.dealloc(p, layout) };
    }
    assert_eq!(heap.stats().unwrap().live_blocks, 0);
    // The hook was asked once per region, then once more (and said no).
    assert_eq!(heap.oom_handler(|pool| pool.calls), 5);
}

#[test]
fn regions_added_by_hand_come_before_the_hook() {
    let pool = Pool {
        arena: TestArena::new(64 << 10, 0),
        next: 0,
        calls: 0,
    };
    let own = TestArena::new(64 << 10, 0);
    let heap: GlobalArena<Buddy, Pool> = GlobalArena::empty(pool);
    // SAFETY: the test arena outlives `heap` (declared before it).
    unsafe { heap.add_region(own.start(), own.len()) }.unwrap();
    // SAFETY: a non-zero-size layout.
    let p = unsafe { heap.alloc(Layout::from_size_align(1024, 16).unwrap()) };
    let (lo, hi) = own.bounds();
    assert!(
        lo <= p as usize && (p as usize) < hi,
        "served from the region added by hand"
    );
    assert_eq!(heap.oom_handler(|pool| pool.calls), 0);
}
