//! A binary buddy allocator over a region the caller gives it.
//!
//! # The algorithm, in its own words
//!
//! The memory is cut into **blocks** of `2^k` bytes; `k` is the block's
//! **order**, from 4 (16 bytes) up. A block of order `k` starts at an
//! address that is a multiple of `2^k`. Two blocks of order `k` that are the
//! two halves of one block of order `k + 1` are **buddies**; a block's buddy
//! is found by flipping one address bit.
//!
//! ```text
//!   order 7   [                     128 B                      ]
//!   split     [         64 B          |         64 B           ]  buddies
//!   split     [   32 B    |   32 B    ]                           buddies
//!                 ^ allocated  ^ free, in the free area of order 5
//!   free of the 32 B block: its buddy is free and whole -> merge into 64 B,
//!   whose buddy (the right 64 B) is free and whole -> merge into 128 B.
//! ```
//!
//! - **Free area** of order `k`: the list of free blocks of order `k`.
//! - **alloc(n)**: take a free block of the smallest order that holds `n`;
//!   if there is none, take the smallest larger one and **split** it in
//!   halves, keeping the lower half and putting the upper halves in their
//!   free areas, until it has the right order.
//! - **free(p)**: while the block's buddy is free and of the same order,
//!   **merge** them into their parent; put the result in its free area.
//!
//! # What this one adds
//!
//! - **No header in a block**: `alloc(2^k)` takes exactly a `2^k` block,
//!   naturally aligned (so 16-byte aligned, and `alloc_aligned` costs only
//!   the block it returns).
//! - **All state inside the arena** ([`layout`]): the [`Buddy`] struct
//!   (under 300 bytes), then two bitmaps holding a 5-bit [quad code](crate::quad)
//!   per 64 bytes (0.98 % of the arena), then the managed range. No system
//!   call, ever.
//! - **Any arena size and alignment**: the managed range is covered by the
//!   largest naturally aligned blocks that fit ([`order::covering`]), as
//!   Linux frees memory into its zones; no block crosses either end, and
//!   merging stops at those *top blocks*.
//! - **Bad pointers are rejected deterministically**: whether `p` starts a
//!   live block, and its order, is read from the bitmaps only, never from
//!   memory a caller may have written (`bitmap.rs`). A free block's in-block
//!   header is read only where the bitmaps prove a free block starts
//!   (`free.rs`).
//! - **Hardened free areas** (`harden.rs`): no link read from a free
//!   block's header is followed or written through before the bitmaps
//!   confirm a free block of that order starts where it points and its
//!   header has the magic and the order (plus `prev.next == self &&
//!   next.prev == self` for an unlink); a link is checked before it
//!   becomes a list head, so a `free` pushes without reading the head. A
//!   link that fails (a write into a freed block) is not followed: the free
//!   areas are rebuilt from the bitmaps, nothing is lost, the repair is
//!   counted ([`Buddy::free_list_repairs`]) and `allocator_check` answers
//!   `ALLOCATOR_CHECK_REPAIRED`. In release builds too; what it costs is
//!   under *Cost per call*.
//! - **O(log) worst case, O(1) per step**: the order of a block, its
//!   buddy, "is the buddy free and whole" (up to 4 KiB: one bitmap word)
//!   and removal from a free area (doubly linked) are O(1); `alloc` does
//!   at most `MAX_ORDER - 4` splits, `free` at most as many merges.
//!
//! # The metadata, and where it departs from the first design
//!
//! The first design kept one bit per 16 bytes ("an allocated block starts
//! here") plus one bit per 32 bytes of order markers, probed upwards on
//! free: 1.5 bits per granule (1.17 % of the arena) and O(k) probes to
//! find an order. This crate instead codes the state of each aligned 64
//! bytes *as a whole* (see `quad.rs`): which order-4 and order-5 blocks
//! start in it, or that a block of order 6, 7, 8 or more starts at it — 30
//! states in 5 bits, 1.25 bits per granule (0.98 %), close to the 1.18
//! bits per granule any exact code of the allocated set needs. The order of
//! a block of 512 bytes or more is written in the Q bits of the five quads
//! after its start, which lie inside it and in the same word: every order
//! is decoded from the two words of the block's first quad. Since no code
//! but the order digits has a zero nibble while having Q set, "no
//! allocated block starts in this aligned region" is a test of A-bitmap
//! words only, and (with the invariant that free buddies are always
//! merged) it is exactly "the buddy is free and whole": up to order 12 a
//! merge decision reads no block at all.
//!
//! The `fill` example measures what this costs against the same buddy
//! algorithm with zero metadata in the arena, allocating until the first
//! failure. At 1 MiB the state and bitmaps take 10,416 bytes (0.99 %) and
//! the loss is 0.99 % to 1.07 % of the arena for requests of 16 to 1000
//! bytes, 1.17 % for 4096-byte ones (the metadata spans three pages), 1.27 %
//! for random sizes 1..=4096; at 64 MiB it is 0.97 % for every workload.
//!
//! # Using it from Rust
//!
//! ```
//! use buddy::Buddy;
//!
//! let mut region = vec![0u8; 1 << 20];
//! let heap = Buddy::new_in(&mut region).expect("1 MiB holds the state");
//! let p = heap.alloc(100).expect("room");
//! assert_eq!(heap.usable_size(p), Some(128)); // no header: 100 -> 128
//! assert_eq!(p.as_ptr() as usize % 128, 0); // naturally aligned
//! let p = heap.realloc(p, 120).unwrap(); // same order: in place
//! heap.free(p).unwrap();
//! assert!(heap.free(p).is_err()); // a double free is rejected
//! assert_eq!(heap.stats().rejected_frees, 1);
//! heap.check_invariants().unwrap();
//! ```
//!
//! The crate is `#![no_std]` and uses no `alloc`: it depends on `arena-api`
//! alone and builds for bare targets (`x86_64-unknown-none`,
//! `thumbv7em-none-eabihf`). The C plugin `libbuddy.so` (the ABI of
//! `include/allocator.h`) is the `buddy-plugin` crate; as a Rust global
//! allocator, use `arena_api::global_arena!(#[global_allocator] static A:
//! buddy::Buddy = N)`, or `arena_api::GlobalArena::empty(handler)` to start
//! with no memory and take regions at run time ([`Buddy::add_region`], an
//! `OomHandler`). With the `allocator-api` feature (nightly),
//! `GlobalArena<Buddy>` is a `core::alloc::Allocator`.
//!
//! # Numbers that depend on choices
//!
//! - Free areas are LIFO: the most recently freed block is reused first
//!   (its cache lines are warm; and for a split, the halves pushed last are
//!   the nearest).
//! - A split keeps the lower half and frees the upper halves, so blocks are
//!   taken from low addresses and a `realloc` that grows finds its upper
//!   buddies free more often.
//! - A free area's head keeps no `prev` link, so taking the head (every
//!   `alloc`) writes no other free block (it reads the next one's header,
//!   to check it before it becomes the head).
//! - Granule 16 bytes (the ABI's alignment), minimum order 4.
//! - At most `2^32 - 64` granules (64 GiB less 1 KiB) are managed: a larger
//!   arena's tail is counted as metadata. The largest block is 32 GiB.
//!
//! # Cost per call
//!
//! | path | loads | stores | cache lines |
//! |------|-------|--------|-------------|
//! | `alloc`, a free block of the order | mask, list head, the block's header (order and magic, `next`), the next block's bitmap word and header (checked before it becomes the head), the block's A/Q words | header magic, list head, A/Q words, two counters | state, header, next header, bitmap (1–2): 4–5 |
//! | `alloc`, per split | nothing more: the smaller lists were empty | the half's header, the list head | +1 per split (the half's header) |
//! | `free`, no merge | A/Q words of the block, of its buddy's region (the same word up to 4 KiB), the list head | A/Q words, the header, the old head's back link (written, never read: a head is checked when it becomes one), two counters | state, bitmap, block, old head: 4 |
//! | `free`, per merge | the buddy's header (the bitmaps already proved it free: only its order and magic are compared); if it is its list's head, the next block's bitmap word and header, else both neighbours' headers and bitmap words (safe unlink) | the neighbours' links | +2 or +3 per merge |
//!
//! Branches: the size class, the non-empty mask, then per checked link five
//! predictable ones (range, alignment, bitmap, order and magic as one
//! 16-bit compare, the link back). None depends on the order in which the
//! calls came: every head is checked when it becomes the head (`pop`, or
//! an unlink of the head), so `push` never needs to ask whether its list's
//! head was checked (`harden.rs`).
//!
//! Through the C ABI, `libbuddy.so` runs `alloc` and `free` of the first
//! region directly ([`ArenaAllocator::alloc_fast`] and
//! [`ArenaAllocator::free_fast`]); only what they hand back (another
//! region, a pointer to reject, a corrupt list, a failure to count) takes
//! the generic layer's path inside `catch_unwind`.
//!
//! Counted by cachegrind (`examples/cost_per_call.rs`, which gives the
//! commands; `--branch-sim=yes` for the mispredicts), per call, this
//! allocator against `buddy-alloc` 0.6 (no check of any kind) on the same
//! inputs:
//!
//! | workload | call | instructions | L1 read misses | L1 write misses | mispredicts |
//! |----------|------|--------------|----------------|-----------------|-------------|
//! | `small` (20 rounds of 10,000 × 16..=128 B in 4 MiB) | alloc | 162 (buddy-alloc 140) | 0.02 (0.03) | 0.92 (0.92) | 1.34 (1.98) |
//! | | free | 334 (206) | 2.65 (1.18) | 0.70 (2.36) | 1.15 (1.15) |
//! | `churn` (half of 16 MiB live, 16..=4096 B) | alloc | 169 (108) | 0.35 (0.07) | 0.04 (0.30) | 0.69 (0.63) |
//! | | free | 212 (221) | 1.51 (1.99) | 1.00 (1.04) | 0.69 (1.04) |
//!
//! (Before heads were checked when they become heads: `small` 174 and
//! 349 instructions, `churn` 158 and 243 with 0.81 and 1.45
//! mispredicts.)
//!
//! (Before the safe unlink checked the buddy's two neighbours side by
//! side and a checked link skipped the NIL test and the range's start
//! when it leads into the range, `small` took 164 and 346 instructions
//! with 1.29 mispredicts per `free`, `churn` 180 and 208 with 0.70 and
//! 0.68.)
//!
//! What each check costs, from builds without them (experiments
//! for issue #12, not kept): with no check on
//! the free-area paths at all (no head check on pop, no header or
//! neighbour check on unlink), `small` `alloc` takes 139 instructions,
//! `free` 244 with 1.03 read and 2.33 write misses, `churn` `alloc` 101
//! with 0.15 mispredicts; without the safe unlink alone, `small` `free`
//! takes 251; with the neighbours' links compared (`prev.next`,
//! `next.prev`) but the neighbours themselves not checked against the
//! bitmaps and their headers, 258 with the same misses as the full
//! check. Timed (`compare --only buddy,buddy-alloc,rlsf --workloads
//! small-random,small-aged,churn,churn-aged --reps 11`, five runs of each
//! build alternated, medians of the per-run ratios to `buddy-alloc`):
//! unchecked, `free` 0.93× on `small-random` and `small-aged`, `alloc`
//! 0.80× and 0.87×, `churn` 0.93× and `churn-aged` 0.84× (checked, in the
//! same runs: 1.19×, 1.17×, 0.92×, 0.94×, 1.28×, 1.32×); without the safe
//! unlink, `free` 0.98× and 0.96×, `churn` 1.22×; links compared only,
//! `free` 1.01× on both (checked 1.23× and 1.20× beside it; `churn`
//! ratios of these runs varied by more than 0.3 with the machine's load). So the
//! safe unlink's time in a small `free` is mostly the instructions and
//! branches of checking the two neighbours, not their read misses, and
//! in `churn` it is the check of the new head on pop.
//!
//! A merge costs this allocator a *read* of both neighbours of the buddy
//! (the safe-unlink check) where `buddy-alloc` only writes them: read
//! misses hold the pipeline, write misses mostly do not. That is where
//! `free` of small blocks loses. Since whether the next level merges is
//! decided by the bitmaps alone, each merge first prefetches the next
//! level's buddy header (x86_64), so the header misses of a free that
//! merges twice or more overlap: about 10 instructions more per small
//! `free` for no measurable change in its time, and 3 % less time per
//! `churn` operation (ten paired runs side by side, 64 MiB arena).
//! Prefetching the two neighbours as soon as the buddy's header gives
//! their links did not help.
//!
//! In `alloclab compare --quick --only buddy,buddy-alloc,rlsf --workloads
//! small-random,small-aged,churn,churn-aged,fill --reps 11` (two sets of
//! six runs, each run beside one of the build before this section's
//! changes, 12:13 and 12:19 UTC on the busy 2-core test machine; medians
//! of the per-run ratios, the two sets' range) `alloc` costs 0.86× to
//! 0.96× `buddy-alloc`'s on `small-random` and `small-aged` (before: 0.99×
//! to 1.01×), `free` 1.15× to 1.21× (1.24× to 1.30×), and an operation of
//! `churn` and `churn-aged` 1.20× to 1.25× `buddy-alloc`'s (1.38× to
//! 1.43×) and 0.90× to 0.99× `rlsf`'s (1.04× to 1.13×). The `fill`
//! workload's usage is unchanged (99.03 % of the power-of-two bound).
//!
//! On `churn` at 64 MiB (`ARENA_MIB=64` in `examples/cost_per_call.rs`)
//! about 1 % of frees merge and 3 % of allocations split (as in
//! `buddy-alloc`), so the safe unlink is not on its path: a call is a pop
//! and a bitmap mark, or a bitmap clear, one buddy test and a push.
//! cachegrind counts 179 instructions per `alloc` and 206 per `free`
//! (`buddy-alloc` 111 and 220), fewer L1 read misses per `free` (2.1
//! against 4.6; `alloc` 0.54 against 0.11), the same misses of a
//! simulated 512 KiB second level (per `free` 0.13 read and 0.93 write
//! against 0.23 and 0.94), as many mispredicts per `alloc` (0.73 against
//! 0.71) and fewer per `free` (0.63 against 1.03; before heads were
//! checked when they become heads, 0.88 and 1.41). That branch made the
//! difference (the C-layer fast paths alone moved `churn` by less than the
//! noise): a `churn` operation took 1.3× to 1.5× `buddy-alloc`'s before,
//! 1.2× to 1.25× now; what remains is not in the simulation's counts (how
//! the misses overlap, the real branch predictor).
//!
//! Tried and not kept (`INTERLEAVED=11` of `vs_peers`, medians of six
//! runs, the base side by side): `no_start_in` without a loop for orders
//! 11 and 12 (cachegrind's mispredicts per churn `free` 1.41 to 1.15; time
//! within the noise: a churn operation 1.31× to 1.49× `buddy-alloc`'s,
//! small `free` 1.21× to 1.24×), and checking every list head when it is
//! used instead of trusting the ones pushed here (mispredicts per churn
//! `alloc` 0.88 to 0.51 and per `free` 1.41 to 0.60, but 31 more
//! instructions per churn `free` and 90 per small `free`: churn 1.31× to
//! 1.25×, small `free` 1.21× to 1.46×). With `compare` as above (three to
//! six runs beside the build before): `no_start_in` with no branch on the
//! order for orders 6 to 12 (the four A words of the aligned 64 quads,
//! each masked; mispredicts per churn call 0.70 to 0.14, but per churn
//! `alloc` and `free` 46 and 82 instructions more and per small `free`
//! 359 to 667: churn unchanged, small `free` 1.2× to 1.8×), the merge loop
//! out of line or its first level peeled, so that a `free` without merge
//! saves the loop's register spills (9 to 16 instructions less per churn
//! `free`, 13 to 17 more per small `free`; churn 1.18× to 1.15×, small
//! `free` 1.19× to 1.23×, both within the noise). Prefetching, at a pop,
//! the header of the new head's successor (the block the next pop of the
//! list checks): churn 1.25× to 1.23×, `churn-aged` 1.26× to 1.24×,
//! `small-random` `alloc` 0.95× to 1.00× (five runs each side by side,
//! within the noise).
//!
//! # Drawbacks
//!
//! - Power-of-two rounding: a request just above a power of two wastes
//!   almost half its block (the `fill` example: 100-byte requests use 77 %
//!   of the arena). That is the buddy system's price for O(1) buddies.
//! - The metadata sits at the start of the arena, so a large power-of-two
//!   arena loses its largest block: 1 MiB gives blocks of at most 512 KiB.
//! - Not thread-safe by itself: the C layer's `ALLOCATOR_FLAG_LOCKED` and
//!   the `GlobalArena` adapter add a spin lock.
//! - A write into a *free* block (use after free) changes a free-block
//!   header; it is never followed (see the hardening below), but each one
//!   found costs a rebuild of the free areas from the bitmaps.
//!
//! # Measuring
//!
//! - `cargo bench -p buddy --bench vs_peers`: ns per operation against
//!   `buddy_system_allocator`, `buddy-alloc` and `rlsf`, used directly over
//!   the same pre-faulted arena; `INTERLEAVED=15 cargo bench -p buddy
//!   --bench vs_peers` for medians of interleaved rounds on a busy machine.
//! - `cargo run --release -p buddy --example fill`: usage at the first
//!   failed allocation, against the zero-metadata bound.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

mod alloc;
mod bitmap;
mod discard;
mod free;
mod free_area;
mod harden;
mod invariants;
pub mod layout;
pub mod order;
pub mod quad;
mod realloc;
mod regions;
mod stats;

use core::ptr::NonNull;

use arena_api::{
    ALLOCATOR_ABI_VERSION, ALLOCATOR_ALIGNMENT, ALLOCATOR_PROP_NO_BLOCK_HEADER,
    ALLOCATOR_PROP_NO_SYSCALLS, ALLOCATOR_PROP_REALLOC_IN_PLACE, ALLOCATOR_PROP_REJECTS_BAD_FREE,
    ALLOCATOR_PROP_STATE_IN_ARENA, AddRegionError, AllocatorInfo, AllocatorStats, ArenaAllocator,
    BadPointer, InvariantViolation, ReallocError,
};

use crate::bitmap::AllocMap;
use crate::free_area::{Frame, FreeAreas};
use crate::order::{GRANULE, GRANULE_SHIFT, covering};

pub use crate::invariants::Corruption;
pub use crate::order::{MAX_ORDER, MIN_ORDER};
pub use crate::stats::{FreeBlock, FreeBlocks};
pub use arena_api;

/// The buddy allocator's state. It lives at the start of the arena it
/// manages; get one with [`Buddy::new_in`] or
/// [`ArenaAllocator::create_in`].
///
/// Invariants (all checked by [`Buddy::check`]):
/// - `frame`: `[start, end)` lies inside the arena, after this struct and the
///   bitmaps; it is covered exactly by blocks (allocated or free), each
///   naturally aligned and inside one top block of
///   [`order::covering`]`(start, end)`.
/// - `map`: see `bitmap.rs`: exactly the allocated blocks.
/// - `areas`: see `free_area.rs`: exactly the free blocks;
///   no two free buddies of the same order are left unmerged.
/// - `reserved_bytes` is the sum of the allocated blocks' sizes,
///   `live_blocks` their number; the free bytes are not counted on the hot
///   path but derived (`Buddy::free_bytes`): `(end - start) * 16 -
///   reserved_bytes`, which the checker compares with the free blocks.
#[repr(C)]
#[derive(Debug)]
pub struct Buddy {
    frame: Frame,
    map: AllocMap,
    areas: FreeAreas,
    /// The `len` given to create.
    region_len: usize,
    reserved_bytes: usize,
    live_blocks: usize,
    failed_allocs: usize,
    rejected_frees: usize,
    /// The address of the region given to create (or to `add_region`).
    region_addr: usize,
    /// The regions added after creation, newest first (`regions.rs`).
    more: Option<NonNull<Buddy>>,
    /// Corrupt free-area links or headers found (writes into freed
    /// blocks), each time the free areas were rebuilt from the bitmaps.
    list_repairs: usize,
}

/// `allocator_info().min_arena`: the handle of the C layer (with its
/// worst-case padding for 16-byte aligned memory), the state, the bitmaps
/// for the worst case (the base may lie up to 255 granules before the one
/// managed granule: four A words and one Q word), padding, one block.
const MIN_ARENA: usize = (64 - ALLOCATOR_ALIGNMENT)
    + arena_api::C_HANDLE_BYTES
    + size_of::<Buddy>()
    + 5 * 8
    + (GRANULE - 1)
    + GRANULE;

impl Buddy {
    /// A buddy allocator whose state and blocks all live in `region`.
    /// `None` if the region cannot hold the state, its bitmaps and one
    /// 16-byte block (about 300 bytes).
    ///
    /// The blocks it hands out are raw pointers into `region`; using one
    /// after `'a` ends is the caller's business (it needs `unsafe`).
    ///
    /// # Time complexity
    ///
    /// O(len / 512) (the bitmaps are zeroed: read, and written only where
    /// not zero already) plus O(log len) (the top blocks are put in their
    /// free areas).
    ///
    /// # Example
    ///
    /// ```
    /// let mut memory = vec![0u8; 64 << 10];
    /// let heap = buddy::Buddy::new_in(&mut memory).unwrap();
    /// let a = heap.alloc(16).unwrap();
    /// let b = heap.alloc(16).unwrap();
    /// assert_ne!(a, b);
    /// assert_eq!(heap.stats().live_blocks, 2);
    /// heap.free(a).unwrap();
    /// heap.free(b).unwrap();
    /// ```
    pub fn new_in(region: &mut [u8]) -> Option<&mut Buddy> {
        // SAFETY: the slice is valid for reads and writes and ours alone for
        // its lifetime, which bounds the returned reference.
        let state = unsafe { Self::create(region.as_mut_ptr(), region.len()) }?;
        // SAFETY: `create` wrote a `Buddy` there; it is reachable only
        // through this reference for the slice's lifetime.
        Some(unsafe { &mut *state.as_ptr() })
    }

    /// Places a buddy allocator in `[region, region + len)`.
    ///
    /// # Safety
    ///
    /// `region` is valid for reads and writes of `len` bytes for as long as
    /// the allocator or any block from it is used, and nothing else accesses
    /// it meanwhile except through handed-out blocks.
    ///
    /// # Time complexity
    ///
    /// As [`Buddy::new_in`].
    pub unsafe fn create(region: *mut u8, len: usize) -> Option<NonNull<Buddy>> {
        if region.is_null() {
            return None;
        }
        let l = layout::compute(region.addr(), len, size_of::<Buddy>(), align_of::<Buddy>())?;
        // SAFETY: `compute` places the state and the bitmaps inside the
        // region, before the managed range, 8-byte aligned.
        let (state, a, q) = unsafe {
            (
                region.add(l.state_off).cast::<Buddy>(),
                region.add(l.a_off).cast::<u64>(),
                region.add(l.q_off).cast::<u64>(),
            )
        };
        // SAFETY: as above; the bitmaps are ours (caller's contract).
        unsafe {
            zero_words(a, l.a_words);
            zero_words(q, l.q_words);
        }
        let base_addr = l.base_g << GRANULE_SHIFT;
        let base = region.wrapping_add(base_addr.wrapping_sub(region.addr()));
        // SAFETY: `base` derives from `region`, whose memory holds the
        // managed range (`compute`), at address `base_g * 16`; `compute`
        // caps the range at MAX_GRANULES < u32::MAX from the base.
        let frame = unsafe { Frame::new(base, l.base_g, l.start_g, l.end_g) };
        // SAFETY: the bitmaps were zeroed above and are used by this
        // allocator only.
        let map = unsafe { AllocMap::new(a, l.a_words, q, l.base_g) };
        let mut buddy = Buddy {
            frame,
            map,
            areas: FreeAreas::new(),
            region_len: len,
            reserved_bytes: 0,
            live_blocks: 0,
            failed_allocs: 0,
            rejected_frees: 0,
            region_addr: region.addr(),
            more: None,
            list_repairs: 0,
        };
        for (g, k) in covering(l.start_g, l.end_g) {
            // SAFETY: a top block of the fresh range: managed, in no list;
            // the lists hold only such blocks, whose headers were just
            // written.
            unsafe { buddy.areas.push(&frame, g, k) };
        }
        // SAFETY: the state's place is inside the region, aligned, and not
        // part of any block or bitmap.
        unsafe { state.write(buddy) };
        NonNull::new(state)
    }

    /// The bytes of this region's free blocks: the managed range less the
    /// allocated blocks.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub(crate) fn free_bytes(&self) -> usize {
        self.managed_range().1 - self.reserved_bytes
    }

    /// The managed range: the address of its first byte and its length. Every
    /// block lies inside it.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn managed_range(&self) -> (usize, usize) {
        (
            self.frame.addr_of(self.frame.start),
            self.frame.addr_of(self.frame.end) - self.frame.addr_of(self.frame.start),
        )
    }
}

/// Zeroes the `n` words at `w`, writing only those that are not zero
/// already.
///
/// A region fresh from `mmap` (a malloc shim's arena) is zero: reading its
/// untouched pages maps the kernel's shared zero page, writing them would
/// give each one a page of its own. So the bitmaps (1 % of the region: 160
/// KiB for 16 MiB) become resident only where blocks are allocated, not all
/// at creation: under the buddy malloc shim, the three arenas of
/// `small-loop-2t` (cores of 4, 8 and 16 MiB) held 480 KiB resident, 240 KiB
/// of it zeroed bitmap words nobody read; now 240 KiB.
///
/// # Safety
///
/// `w` is valid for reads and writes of `n` aligned `u64`s.
///
/// # Time complexity
///
/// O(n).
unsafe fn zero_words(w: *mut u64, n: usize) {
    for i in 0..n {
        // SAFETY: caller's contract; `i < n`.
        unsafe {
            let p = w.add(i);
            if p.read() != 0 {
                p.write(0);
            }
        }
    }
}

impl ArenaAllocator for Buddy {
    const INFO: AllocatorInfo = AllocatorInfo {
        abi_version: ALLOCATOR_ABI_VERSION,
        supported_flags: 0,
        properties: ALLOCATOR_PROP_STATE_IN_ARENA
            | ALLOCATOR_PROP_NO_BLOCK_HEADER
            | ALLOCATOR_PROP_REJECTS_BAD_FREE
            | ALLOCATOR_PROP_REALLOC_IN_PLACE
            | ALLOCATOR_PROP_NO_SYSCALLS,
        reserved: 0,
        name: c"buddy".as_ptr(),
        description: c"binary buddy system: blocks of 2^k bytes (k >= 4), split on alloc, merged with their buddy on free; no block header; 5-bit out-of-band code per 64 bytes"
            .as_ptr(),
        complexity: c"alloc O(log(arena/16)), free O(log(arena/16)) worst case; buddy lookup and free-area removal O(1)"
            .as_ptr(),
        alignment: ALLOCATOR_ALIGNMENT,
        min_block: GRANULE,
        min_arena: MIN_ARENA,
    };

    unsafe fn create_in(region: *mut u8, len: usize, flags: u32) -> Option<NonNull<Self>> {
        if flags != 0 {
            return None;
        }
        // SAFETY: the trait's contract is `create`'s.
        unsafe { Buddy::create(region, len) }
    }

    // Always: the C layer calls it inside `catch_unwind`, where LLVM
    // otherwise keeps it out of line (one more call per allocation).
    #[inline(always)]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        Buddy::alloc(self, size)
    }

    // The C layer's fast path: `alloc` of this region, outside
    // `catch_unwind` (no reachable panic: the indices are orders the
    // free-area mask and `order_of_size` bound).
    #[inline(always)]
    fn alloc_fast(&mut self, size: usize) -> Option<NonNull<u8>> {
        Buddy::alloc_fast(self, size)
    }

    // As for `alloc_fast`.
    #[inline(always)]
    fn free_fast(&mut self, ptr: *mut u8) -> bool {
        Buddy::free_fast(self, ptr)
    }

    fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        Buddy::alloc_aligned(self, size, align)
    }

    #[inline]
    fn alloc_many(&mut self, size: usize, n: usize, out: impl FnMut(NonNull<u8>)) -> usize {
        Buddy::alloc_many(self, size, n, out)
    }

    // Always: as for `alloc`.
    #[inline(always)]
    fn free(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer> {
        Buddy::free(self, ptr)
    }

    fn realloc(&mut self, ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, ReallocError> {
        Buddy::realloc(self, ptr, new_size)
    }

    fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        Buddy::usable_size(self, ptr)
    }

    fn stats(&self) -> AllocatorStats {
        Buddy::stats(self)
    }

    fn check_invariants(&self) -> Result<(), InvariantViolation> {
        Buddy::check_invariants(self)
    }

    fn free_list_repairs(&self) -> usize {
        Buddy::free_list_repairs(self)
    }

    fn discardable(&self, page: usize, min_len: usize, f: &mut dyn FnMut(NonNull<u8>, usize)) {
        Buddy::discardable(self, page, min_len, f)
    }

    unsafe fn add_region(&mut self, region: *mut u8, len: usize) -> Result<(), AddRegionError> {
        // SAFETY: the trait's contract is `add_region`'s.
        unsafe { Buddy::add_region(self, region, len) }
    }
}
