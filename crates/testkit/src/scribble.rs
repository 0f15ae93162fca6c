//! Writes into freed blocks, case by case, for any [`ArenaAllocator`]: what
//! a use-after-free bug in a program does to an allocator that keeps its
//! free-list links in free blocks.
//!
//! Each case fills a 1 MiB arena with blocks of one size (and some four
//! times larger), frees one of each, writes 16 bytes into the first freed
//! block ([`SCRIBBLES`]), then allocates that size and 16 bytes many times,
//! freeing some. Every new block must lie inside the arena, be aligned and
//! overlap no live block, every live block must keep its contents, the
//! allocator's invariant check must pass afterwards, and the corrupt link
//! must have been found ([`ArenaAllocator::free_list_repairs`]).

use std::collections::BTreeMap;
use std::ptr::NonNull;

use plugin_abi::ArenaAllocator;

use crate::arena::{TestArena, fill_pattern, find_pattern_damage};

/// The scribbles tried, by name.
pub const SCRIBBLES: [&str; 11] = [
    "0x41 bytes",
    "zero bytes",
    "a live block's address",
    "an address inside a live block",
    "the next block's address",
    "the previous block's address",
    "a freed block of another size",
    "an address before the arena",
    "an address after the arena",
    "its own address",
    "a wild word",
];

const ARENA: usize = 1 << 20;

/// The two words scribble `kind` writes into freed block `f`.
fn words(
    kind: usize,
    f: usize,
    size: usize,
    live: usize,
    other: usize,
    lo: usize,
    hi: usize,
) -> [usize; 2] {
    let one = |w: usize| [w, w];
    match kind {
        0 => one(usize::from_ne_bytes([0x41; 8])),
        1 => one(0),
        2 => one(live),
        3 => one(live + 16),
        4 => one(f + size),
        5 => one(f - size),
        6 => one(other),
        7 => one(lo - 4096),
        8 => one(hi + 4096),
        9 => one(f),
        _ => [0xdead_beef_dead_beef_u64 as usize, 1],
    }
}

/// Runs scribble `kind` (an index into [`SCRIBBLES`]) with blocks of `size`
/// bytes on an `A` created with `flags`. Returns whether the allocator found
/// the corrupt link, or the first broken promise.
pub fn scribble_case<A: ArenaAllocator>(
    kind: usize,
    size: usize,
    flags: u32,
) -> Result<bool, String> {
    let arena = TestArena::new(ARENA, 0);
    // SAFETY: the test arena is valid, ours alone, and outlives the allocator.
    let mut core = unsafe { A::create_in(arena.start(), arena.len(), flags) }.ok_or("create")?;
    // SAFETY: just created; only this function uses it.
    let a = unsafe { core.as_mut() };
    let (lo, hi) = arena.bounds();
    let what = format!("{} into a freed {size}-byte block", SCRIBBLES[kind]);
    // Live blocks: address -> (usable, seed).
    let mut live: BTreeMap<usize, (usize, u64)> = BTreeMap::new();
    let mut seed = 1u64;
    let mut take = |a: &mut A,
                    live: &mut BTreeMap<usize, (usize, u64)>,
                    n: usize|
     -> Result<Option<usize>, String> {
        let Some(p) = a.alloc(n) else { return Ok(None) };
        let u = a.usable_size(p).ok_or("usable_size of a new block")?;
        let addr = p.as_ptr() as usize;
        if addr < lo || addr + u > hi || !addr.is_multiple_of(16) {
            return Err(format!(
                "{what}: block {addr:#x}+{u} outside the arena or misaligned"
            ));
        }
        if let Some((&b, &(bu, _))) = live.range(..addr + u).next_back()
            && b + bu > addr
        {
            return Err(format!(
                "{what}: block {addr:#x}+{u} overlaps live {b:#x}+{bu}"
            ));
        }
        seed += 1;
        // SAFETY: a new block of `u` bytes inside the arena.
        unsafe { fill_pattern(p.as_ptr(), u, seed) };
        live.insert(addr, (u, seed));
        Ok(Some(addr))
    };
    let mut order = Vec::new();
    for i in 0..50 {
        let n = if i < 40 { size } else { size * 4 };
        order.push(take(a, &mut live, n)?.ok_or("the arena is too small")?);
    }
    let give =
        |a: &mut A, live: &mut BTreeMap<usize, (usize, u64)>, addr: usize| -> Result<(), String> {
            let (u, s) = live.remove(&addr).ok_or("not live")?;
            // SAFETY: a live block of `u` bytes.
            if let Some(off) = unsafe { find_pattern_damage(arena.ptr_at(addr), u, s) } {
                return Err(format!("{what}: live block {addr:#x} damaged at {off}"));
            }
            a.free(NonNull::new(arena.ptr_at(addr)).ok_or("null")?)
                .map_err(|_| format!("{what}: free of live block {addr:#x} rejected"))
        };
    let other = order[45];
    give(a, &mut live, other)?;
    let f = order[7];
    give(a, &mut live, f)?;
    let w = words(kind, f, size, order[3], other, lo, hi);
    // SAFETY: the freed block's first 16 bytes lie in the arena and belong
    // to no live block: the write a use-after-free bug does.
    unsafe { arena.ptr_at(f).cast::<[usize; 2]>().write_unaligned(w) };
    for i in 0..60 {
        take(a, &mut live, size)?;
        if i % 3 == 0 {
            take(a, &mut live, 16)?;
        }
        if i % 5 == 0 {
            let victim = *live.keys().nth(i * 7 % live.len()).ok_or("empty")?;
            give(a, &mut live, victim)?;
        }
    }
    for (&addr, &(u, s)) in &live {
        // SAFETY: a live block of `u` bytes.
        if let Some(off) = unsafe { find_pattern_damage(arena.ptr_at(addr), u, s) } {
            return Err(format!("{what}: live block {addr:#x} damaged at {off}"));
        }
    }
    a.check_invariants().map_err(|e| format!("{what}: {e}"))?;
    let found = a.free_list_repairs() > 0;
    let rest: Vec<usize> = live.keys().copied().collect();
    for addr in rest {
        give(a, &mut live, addr)?;
    }
    a.check_invariants()
        .map_err(|e| format!("{what}, all freed: {e}"))?;
    arena.margins_intact()?;
    Ok(found)
}
