//! Every peer through its function table, as the runner will call it.

use std::collections::HashSet;
use std::ffi::c_void;
use std::ptr::null_mut;

use plugin_abi::{Allocator, AllocatorStats};

use super::*;
use crate::arena::Arena;

const SIZES: [usize; 6] = [0, 1, 16, 100, 4096, 65536];

/// Requests no allocator can serve.
const HUGE: [usize; 7] = [
    usize::MAX,
    usize::MAX - 1,
    usize::MAX - 15,
    usize::MAX - 16,
    usize::MAX / 2,
    isize::MAX as usize,
    isize::MAX as usize + 1,
];

fn pattern(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8
}

/// An allocator of one peer on its own mmap'd arena, destroyed on drop.
struct Instance {
    peer: Peer,
    arena: Arena,
    a: *mut Allocator,
}

impl Instance {
    fn new(peer: Peer, len: usize) -> Instance {
        let arena = Arena::map(len).unwrap();
        // SAFETY: the arena is mapped, unused, and outlives the allocator
        // (dropped after `destroy`, see `Drop`).
        let a = unsafe { (peer.api.create)(arena.as_ptr(), arena.len()) };
        assert!(!a.is_null(), "{}: create on {len} bytes", peer.name);
        let (lo, hi) = arena.bounds();
        assert!(
            (lo..hi).contains(&(a as usize)),
            "{}: handle in arena",
            peer.name
        );
        Instance { peer, arena, a }
    }

    fn name(&self) -> &'static str {
        self.peer.name
    }

    /// Checks what the ABI promises of a block of `len` bytes at `p`.
    fn check_block(&self, p: *mut c_void, len: usize) {
        assert!(!p.is_null(), "{}: block of {len} bytes", self.name());
        assert_eq!(p as usize % ALIGN, 0, "{}: alignment of {p:?}", self.name());
        if self.peer.facts.uses_arena {
            let (lo, hi) = self.arena.bounds();
            let at = p as usize;
            assert!(
                lo <= at && at + len.max(1) <= hi,
                "{}: block {p:?}+{len} outside the arena {lo:#x}..{hi:#x}",
                self.name()
            );
        }
    }

    fn alloc(&self, len: usize) -> *mut c_void {
        // SAFETY: a live handle of this peer.
        unsafe { (self.peer.api.alloc)(self.a, len) }
    }

    /// Allocates, checks and fills a block.
    fn block(&self, len: usize, seed: u8) -> Block {
        let p = self.alloc(len);
        self.check_block(p, len);
        let b = Block {
            p: p.cast(),
            len,
            seed,
        };
        b.fill();
        b
    }

    fn free(&self, p: *mut c_void) {
        // SAFETY: a live handle; `p` is NULL or a live block of it.
        unsafe { (self.peer.api.free)(self.a, p) }
    }

    fn realloc(&self, p: *mut c_void, len: usize) -> *mut c_void {
        let realloc = self.peer.api.realloc.expect("every peer has realloc");
        // SAFETY: a live handle; `p` is NULL or a live block of it.
        unsafe { realloc(self.a, p, len) }
    }

    /// Allocates `len`-byte blocks until NULL; returns them.
    fn fill_up(&self, len: usize) -> Vec<*mut c_void> {
        let mut v = Vec::new();
        loop {
            let p = self.alloc(len);
            if p.is_null() {
                return v;
            }
            self.check_block(p, len);
            v.push(p);
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: a live handle, not used afterwards.
        unsafe { (self.peer.api.destroy)(self.a) };
    }
}

/// A block and the pattern written into it.
#[derive(Clone, Copy, Debug)]
struct Block {
    p: *mut u8,
    len: usize,
    seed: u8,
}

impl Block {
    fn fill(&self) {
        for i in 0..self.len {
            // SAFETY: the block holds `len` bytes.
            unsafe { self.p.add(i).write(pattern(self.seed, i)) };
        }
    }

    /// True when the first `n` bytes still hold the pattern.
    fn intact(&self, n: usize) -> bool {
        // SAFETY: the block holds at least `n` bytes.
        (0..n).all(|i| unsafe { self.p.add(i).read() } == pattern(self.seed, i))
    }
}

fn arena_peers() -> impl Iterator<Item = Peer> {
    all().into_iter().filter(|p| p.facts.uses_arena)
}

#[test]
fn names_are_unique_and_found() {
    let peers = all();
    assert_eq!(peers.len(), 9);
    let names: HashSet<_> = peers.iter().map(|p| p.name).collect();
    assert_eq!(names.len(), peers.len(), "duplicate names");
    for p in &peers {
        assert_eq!(by_name(p.name).unwrap().name, p.name);
        assert_eq!(by_name(&p.name.to_uppercase()).unwrap().name, p.name);
        let s = crate::allocators::peer_subject(p);
        assert_eq!(s.name, p.name);
        assert_eq!(s.blocks_in_arena, p.facts.uses_arena);
        assert!(s.facts.is_some());
        // A header exactly where free needs the size.
        assert_eq!(
            p.facts.adapter_header,
            if p.facts.free_needs_size { HEADER } else { 0 },
            "{}",
            p.name
        );
        assert!(p.api.realloc.is_some(), "{}", p.name);
    }
    assert!(by_name("no such allocator").is_none());
}

#[test]
fn mixed_sizes_are_aligned_inside_disjoint_and_kept() {
    for peer in all() {
        let inst = Instance::new(peer, 4 << 20);
        let mut live = Vec::new();
        let mut seed = 0u8;
        for _round in 0..3 {
            for &len in &SIZES {
                seed = seed.wrapping_add(1);
                live.push(inst.block(len, seed));
            }
        }
        // Free every other block, then allocate into the holes.
        let mut kept = Vec::new();
        for (i, b) in live.drain(..).enumerate() {
            if i % 2 == 0 {
                assert!(b.intact(b.len), "{}: {b:?}", inst.name());
                inst.free(b.p.cast());
            } else {
                kept.push(b);
            }
        }
        for &len in SIZES.iter().rev() {
            seed = seed.wrapping_add(1);
            kept.push(inst.block(len, seed));
        }
        // No two live blocks overlap.
        let mut spans: Vec<_> = kept.iter().map(|b| (b.p as usize, b.len.max(1))).collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{}: overlap {w:x?}", inst.name());
        }
        for b in &kept {
            assert!(b.intact(b.len), "{}: {b:?}", inst.name());
        }
        for b in kept {
            inst.free(b.p.cast());
        }
        // free(NULL) does nothing.
        inst.free(null_mut());
    }
}

#[test]
fn zero_byte_blocks_are_unique_and_freeable() {
    for peer in all() {
        let inst = Instance::new(peer, 1 << 20);
        let blocks: Vec<_> = (0..200).map(|_| inst.alloc(0)).collect();
        let distinct: HashSet<_> = blocks.iter().copied().collect();
        assert_eq!(distinct.len(), blocks.len(), "{}", inst.name());
        for &p in &blocks {
            inst.check_block(p, 0);
        }
        for p in blocks {
            inst.free(p);
        }
    }
}

#[test]
fn realloc_keeps_contents() {
    for peer in all() {
        let inst = Instance::new(peer, 4 << 20);
        // realloc(NULL, n) is alloc.
        let p = inst.realloc(null_mut(), 100);
        inst.check_block(p, 100);
        let b = Block {
            p: p.cast(),
            len: 100,
            seed: 7,
        };
        b.fill();
        // A neighbour, so that growing may have to move.
        let n = inst.block(64, 9);
        let mut b = b;
        for &len in &[5000, 40, 70_000, 16, 1, 65536, 3] {
            let keep = b.len.min(len);
            let q = inst.realloc(b.p.cast(), len);
            inst.check_block(q, len);
            b.p = q.cast();
            assert!(b.intact(keep), "{}: realloc to {len}", inst.name());
            b.len = len;
            b.fill();
            assert!(n.intact(n.len), "{}: neighbour after realloc", inst.name());
        }
        // realloc(p, 0) frees and returns NULL.
        assert!(inst.realloc(b.p.cast(), 0).is_null(), "{}", inst.name());
        inst.free(n.p.cast());
    }
}

#[test]
fn huge_sizes_fail_without_harm() {
    for peer in all() {
        let inst = Instance::new(peer, 1 << 20);
        let b = inst.block(1000, 3);
        let mut huge = HUGE.to_vec();
        if peer.facts.uses_arena {
            // mimalloc and jemalloc reserve address space for these.
            huge.extend([2 << 20, 1 << 40]);
        }
        for &len in &huge {
            assert!(inst.alloc(len).is_null(), "{}: alloc({len})", inst.name());
            assert!(
                inst.realloc(b.p.cast(), len).is_null(),
                "{}: realloc({len})",
                inst.name()
            );
            assert!(b.intact(b.len), "{}: after realloc({len})", inst.name());
        }
        // Still usable.
        let c = inst.block(2000, 4);
        assert!(b.intact(b.len) && c.intact(c.len));
        inst.free(b.p.cast());
        inst.free(c.p.cast());
    }
}

#[test]
fn memory_comes_back() {
    for peer in arena_peers() {
        let arena = 1 << 20;
        let inst = Instance::new(peer, arena);
        for &len in &[1000, 24, 4096] {
            let first = inst.fill_up(len);
            assert!(
                first.len() * len >= arena / 4,
                "{}: only {} blocks of {len} bytes",
                inst.name(),
                first.len()
            );
            for p in first.iter().copied() {
                inst.free(p);
            }
            let second = inst.fill_up(len);
            if inst.name() == "bump" {
                // Free does nothing: only a new create gives memory back.
                assert!(second.is_empty());
                drop(inst);
                let inst = Instance::new(peer, arena);
                assert_eq!(inst.fill_up(len).len(), first.len());
                break;
            }
            assert_eq!(
                first.len(),
                second.len(),
                "{}: blocks of {len} bytes, twice",
                inst.name()
            );
            for p in second {
                inst.free(p);
            }
        }
    }
}

#[test]
fn create_refuses_what_it_cannot_use() {
    for peer in all() {
        // SAFETY: NULL memory is refused before anything is touched.
        assert!(unsafe { (peer.api.create)(null_mut(), 1 << 20) }.is_null());
        let arena = Arena::map(1 << 17).unwrap();
        let smallest = smallest_tried_arena(&peer, &arena);
        every_larger_arena_works(&peer, &arena, smallest);
    }
}

/// Creates `peer` on arenas of many sizes at small offsets into `arena`,
/// checking each handle and its first block; the smallest arena (at offset
/// 0) that held a block.
fn smallest_tried_arena(peer: &Peer, arena: &Arena) -> usize {
    let mut smallest = usize::MAX;
    for offset in [0usize, 1, 3, 8, 15] {
        for size in [
            0usize,
            1,
            8,
            16,
            32,
            48,
            64,
            96,
            128,
            256,
            512,
            1024,
            2048,
            4096,
            8192,
            16384,
            1 << 16,
        ] {
            // SAFETY: `[mem, mem + size)` is inside the mapped arena.
            let mem = unsafe { arena.as_ptr().cast::<u8>().add(offset) };
            // SAFETY: as above; the memory is unused.
            let a = unsafe { (peer.api.create)(mem.cast(), size) };
            if a.is_null() {
                assert!(size < 1 << 16, "{}: refused {size} bytes", peer.name);
                continue;
            }
            let (lo, hi) = (mem as usize, mem as usize + size);
            assert!((lo..hi).contains(&(a as usize)), "{}", peer.name);
            // SAFETY: a live handle.
            let p = unsafe { (peer.api.alloc)(a, 1) };
            if peer.facts.uses_arena {
                // A usable arena holds at least one smallest block.
                assert!(!p.is_null(), "{}: arena of {size} + {offset}", peer.name);
                assert!((lo..hi).contains(&(p as usize)), "{}", peer.name);
                if offset == 0 {
                    smallest = smallest.min(size);
                }
            }
            assert_eq!(p as usize % ALIGN, 0, "{}", peer.name);
            // SAFETY: a live handle and its block; then destroyed once.
            unsafe {
                p.cast::<u8>().write(1);
                (peer.api.free)(a, p);
                (peer.api.destroy)(a);
            }
        }
    }
    smallest
}

/// The smallest arena that works is at most `smallest`, and every larger
/// one works too (but for buddy-alloc's steps).
fn every_larger_arena_works(peer: &Peer, arena: &Arena, smallest: usize) {
    // The smallest arena that works, and every larger one works too.
    let works = |size: usize| {
        // SAFETY: `[arena, arena + size)` is mapped and unused.
        let a = unsafe { (peer.api.create)(arena.as_ptr(), size) };
        if a.is_null() {
            return false;
        }
        // SAFETY: a live handle, destroyed once.
        unsafe {
            let p = (peer.api.alloc)(a, 1);
            (peer.api.free)(a, p);
            (peer.api.destroy)(a);
            !p.is_null()
        }
    };
    let min = (0..=16384).step_by(16).find(|&s| works(s)).unwrap();
    assert!(min <= smallest, "{}", peer.name);
    let refused: Vec<_> = (min..16384 + 1024).filter(|&s| !works(s)).collect();
    eprintln!(
        "{}: smallest usable 16-byte aligned arena: {min} bytes; larger ones refused: {refused:?}",
        peer.name
    );
    // buddy-alloc's tables grow by a step each time the span passes a
    // power of two: just past one, a small span holds the tables and no
    // leaf (checked against the crate in `buddy_alloc_size_check_...`).
    if peer.name != "buddy-alloc" {
        assert!(refused.is_empty(), "{}", peer.name);
    }
}

#[test]
fn null_and_dead_handles_answer_nothing() {
    for peer in all() {
        // SAFETY: NULL handles are accepted by every function.
        unsafe {
            assert!((peer.api.alloc)(null_mut(), 8).is_null());
            (peer.api.free)(null_mut(), null_mut());
            assert!((peer.api.realloc.unwrap())(null_mut(), null_mut(), 8).is_null());
            (peer.api.destroy)(null_mut());
        }
        let arena = Arena::map(1 << 16).unwrap();
        // SAFETY: the arena outlives the allocator; after destroy the handle
        // is dead but its arena is still mapped.
        unsafe {
            let a = (peer.api.create)(arena.as_ptr(), arena.len());
            assert!(!a.is_null());
            let p = (peer.api.alloc)(a, 10);
            assert!(!p.is_null());
            (peer.api.free)(a, p);
            (peer.api.destroy)(a);
            assert!((peer.api.alloc)(a, 8).is_null(), "{}", peer.name);
            assert!((peer.api.realloc.unwrap())(a, null_mut(), 8).is_null());
            (peer.api.destroy)(a);
        }
    }
}

#[test]
fn large_arenas_serve_large_blocks() {
    // 256 MiB: the top of the runner's range (rlsf's one-pool limit is 512 MiB).
    let len = 256 << 20;
    for peer in arena_peers() {
        let inst = Instance::new(peer, len);
        let big = match peer.name {
            // Power-of-two blocks in a span that is not one: half of it at most.
            "buddy_system_allocator" | "buddy-alloc" => 32 << 20,
            _ => 200 << 20,
        };
        let p = inst.alloc(big);
        inst.check_block(p, big);
        inst.free(p);
    }
}

#[test]
fn system_peers_align_and_size_on_request() {
    for peer in all().into_iter().filter(|p| !p.facts.uses_arena) {
        let inst = Instance::new(peer, 4096);
        let aligned = peer.api.alloc_aligned.unwrap();
        let usable = peer.api.usable_size.unwrap();
        for align in [1usize, 8, 16, 64, 4096, 1 << 16] {
            for len in [0usize, 1, 100, 5000] {
                // SAFETY: a live handle.
                let p = unsafe { aligned(inst.a, len, align) };
                assert!(!p.is_null(), "{}", peer.name);
                assert_eq!(p as usize % align.max(ALIGN), 0, "{}", peer.name);
                // SAFETY: a live block of this peer.
                assert!(unsafe { usable(inst.a, p) } >= len, "{}", peer.name);
                inst.free(p);
            }
        }
        // SAFETY: a live handle; 3 is not a power of two.
        assert!(unsafe { aligned(inst.a, 8, 3) }.is_null());
        // Every small block is 16-byte aligned (the 8-byte classes of
        // mimalloc and jemalloc are avoided).
        let small: Vec<_> = (0..64).map(|i| inst.alloc(i % 9)).collect();
        for &p in &small {
            inst.check_block(p, 1);
        }
        for p in small {
            inst.free(p);
        }
    }
}

#[test]
fn bump_resizes_the_last_block_in_place_and_counts_exactly() {
    let inst = Instance::new(bump::peer(), 1 << 16);
    let stats = || {
        let mut s = AllocatorStats::default();
        // SAFETY: a live handle and a valid out-pointer.
        assert_eq!(unsafe { (inst.peer.api.stats.unwrap())(inst.a, &mut s) }, 0);
        assert!(s.adds_up(), "{s:?}");
        s
    };
    let empty = stats();
    assert_eq!(empty.bytes_reserved, 0);
    let a = inst.block(100, 1);
    let b = inst.block(10, 2);
    assert_eq!(stats().bytes_reserved, 112 + 16);
    // The last block grows and shrinks in place.
    assert_eq!(inst.realloc(b.p.cast(), 1000), b.p.cast());
    assert_eq!(stats().bytes_reserved, 112 + 1008);
    assert_eq!(inst.realloc(b.p.cast(), 20), b.p.cast());
    assert!(b.intact(b.len));
    // Another block moves, its contents kept.
    let q = inst.realloc(a.p.cast(), 200);
    assert_ne!(q, a.p.cast());
    let moved = Block { p: q.cast(), ..a };
    assert!(moved.intact(100));
    let s = stats();
    assert_eq!((s.live_blocks, s.bytes_reserved), (2, 112 + 32 + 208));
    inst.free(q);
    inst.free(b.p.cast());
    let s = stats();
    assert_eq!((s.live_blocks, s.bytes_reserved), (0, 112 + 32 + 208));
    assert_eq!(s.largest_free_block, s.bytes_free);
    assert!(inst.alloc(s.bytes_free + 1).is_null());
    assert_eq!(stats().failed_allocs, 1);
    let all_left = inst.alloc(s.bytes_free);
    inst.check_block(all_left, s.bytes_free);
    assert_eq!(stats().bytes_free, 0);
}

#[test]
fn buddy_alloc_size_check_matches_the_crate() {
    use ::buddy_alloc::buddy_alloc::{BuddyAlloc, BuddyAllocParam};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    // The crate itself, on spans inside a larger mapping (so that tables
    // written past a too-small span land in memory we own): does it build
    // and serve one leaf inside the span? Its debug assertions (on in tests)
    // count as "no".
    let big = Arena::map(1 << 16).unwrap();
    let base = big.as_ptr().cast::<u8>();
    let crate_serves = |len: usize| {
        catch_unwind(AssertUnwindSafe(|| {
            let param = BuddyAllocParam::new(base, len, buddy_alloc::LEAF);
            // SAFETY: the span and what the crate may write past it are
            // inside the mapping, which nothing else uses.
            let mut ba = unsafe { BuddyAlloc::new(param) };
            let p = ba.malloc(1);
            !p.is_null() && (p as usize) < base as usize + len
        }))
        .unwrap_or(false)
    };
    let mut mismatches = Vec::new();
    for len in (0..8192).step_by(8) {
        if buddy_alloc::fits(base as usize, len) != crate_serves(len) {
            mismatches.push(len);
        }
    }
    assert!(
        mismatches.is_empty(),
        "fits() differs from the crate at {mismatches:?}"
    );
}

#[test]
fn a_bad_free_that_panics_poisons_the_instance() {
    // linked_list_allocator asserts that a freed block does not alias a
    // hole: a double free panics inside the crate. The panic stops at the C
    // boundary and the instance answers nothing afterwards.
    let inst = Instance::new(linked_list::peer(), 1 << 16);
    let a = inst.block(100, 1);
    let b = inst.block(100, 2);
    let c = inst.block(100, 3);
    inst.free(b.p.cast());
    inst.free(b.p.cast());
    assert!(inst.alloc(8).is_null(), "poisoned");
    inst.free(a.p.cast());
    assert!(inst.realloc(c.p.cast(), 8).is_null());
}
