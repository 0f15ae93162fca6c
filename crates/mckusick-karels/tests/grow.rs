//! Memory added at run time: more pages for McKusick-Karels, by hand and
//! through `GlobalArena`'s out-of-memory hook.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use mckusick_karels::{AddRegionError, Config, Heap, McKusickKarels};
use plugin_abi::{GlobalArena, OomHandler, Region};

#[test]
fn more_pages_serve_buckets_and_page_runs() {
    for config in [Config::FAITHFUL, Config::RETURN_PAGES] {
        let mut first = vec![0u8; 16 << 10];
        let mut second = vec![0u8; 200_001];
        let mut heap = Heap::new(&mut first, config).unwrap();
        let before = heap.stats();
        // Fill the first region with small objects.
        let mut small = Vec::new();
        while let Some(p) = heap.malloc(100) {
            small.push(p);
        }
        assert!(heap.malloc(40_000).is_none());
        heap.add_region(&mut second).unwrap();
        let after = heap.stats();
        assert_eq!(after.arena_bytes, (16 << 10) + 200_001);
        // Both a page run and a new bucket page come from the new pages.
        let large = heap.malloc(40_000).unwrap();
        let more = heap.malloc(100).unwrap();
        let grown = heap.realloc(small[0], 30_000).unwrap();
        heap.check_invariants().unwrap();
        for p in [large, more, grown] {
            assert!(heap.usable_size(p).is_some());
        }
        heap.free(large).unwrap();
        heap.free(more).unwrap();
        heap.free(grown).unwrap();
        assert!(
            heap.free(grown).is_err(),
            "a double free in an added region"
        );
        for &p in &small[1..] {
            heap.free(p).unwrap();
        }
        let end = heap.stats();
        assert_eq!(end.live_blocks, 0);
        assert_eq!(end.rejected_frees, 1);
        assert_eq!(
            end.bytes_free + end.metadata_bytes,
            before.bytes_free + before.metadata_bytes + 200_001
        );
        heap.check_invariants().unwrap();
    }
}

#[test]
fn overlapping_or_tiny_regions_are_refused() {
    let mut first = vec![0u8; 64 << 10];
    let base = first.as_mut_ptr();
    let len = first.len();
    // SAFETY: `first` outlives the allocator, used only through it.
    let a = unsafe {
        &mut *McKusickKarels::create(base, len, Config::default())
            .unwrap()
            .as_ptr()
    };
    // SAFETY: refused without being touched.
    unsafe {
        assert_eq!(
            a.add_region(base.add(4096), 8192),
            Err(AddRegionError::Overlaps)
        );
        let mut tiny = [0u8; 512];
        assert_eq!(
            a.add_region(tiny.as_mut_ptr(), tiny.len()),
            Err(AddRegionError::TooSmall)
        );
    }
    assert_eq!(a.stats().arena_bytes, 64 << 10);
    a.check_invariants().unwrap();
}

/// Hands out 32 KiB pieces of one buffer.
struct Pool {
    buf: Vec<u64>,
    next: usize,
}

// SAFETY: each piece is handed out once; the buffer lives in the handler,
// inside the `GlobalArena`, as long as the allocator.
unsafe impl OomHandler for Pool {
    fn handle_oom(&mut self, _layout: Layout) -> Option<Region> {
        let len = 32 << 10;
        if (self.next + len) / 8 > self.buf.len() {
            return None;
        }
        // SAFETY: inside the buffer.
        let start = NonNull::new(unsafe { self.buf.as_mut_ptr().cast::<u8>().add(self.next) })?;
        self.next += len;
        Some(Region { start, len })
    }
}

#[test]
fn the_oom_hook_feeds_a_global_arena() {
    let heap: GlobalArena<McKusickKarels, Pool> = GlobalArena::empty(Pool {
        buf: vec![0; (8 * (32 << 10)) / 8],
        next: 0,
    });
    let layout = Layout::from_size_align(3000, 16).unwrap();
    let mut blocks = Vec::new();
    loop {
        // SAFETY: a non-zero-size layout.
        let p = unsafe { heap.alloc(layout) };
        if p.is_null() {
            break;
        }
        blocks.push(p);
    }
    let s = heap.stats().unwrap();
    assert_eq!(s.arena_bytes, 8 * (32 << 10));
    // Each 32 KiB region: 8 pages less the state and table's, one 4 KiB
    // object per page (3000 B rounds up to 4096).
    assert!(blocks.len() >= 8 * 6, "{} blocks", blocks.len());
    heap.with(|a| a.check_invariants()).unwrap().unwrap();
    for p in blocks {
        // SAFETY: allocated with this layout.
        unsafe { heap.dealloc(p, layout) };
    }
    assert_eq!(heap.stats().unwrap().live_blocks, 0);
}
