//! The shadow model: a record of every live block, against which each answer
//! of the allocator is checked.
//!
//! After every action: every live block lies inside the arena, is aligned,
//! overlaps no other, and the allocator's stats agree with the model (live
//! count, reserved bytes, the three parts adding up to the arena, every
//! rejected pointer and failed request counted), its own invariant check
//! passes, and nothing was written outside the arena. A block's contents (a
//! pattern written at allocation) are checked when it is freed or
//! reallocated, and all of them every 64 actions and at the end. At the end
//! everything is freed, and every byte must be free or metadata again (and,
//! where the allocator promises to restore its initial state, its free bytes,
//! metadata and largest free block must be back to their initial values).

use std::collections::{BTreeMap, HashMap};

use crate::action::{Action, BadPointer, Scribble, Size};
use crate::arena::{TestArena, fill_pattern, find_pattern_damage};
use crate::target::{MIN_ALIGN, Target};
use plugin_abi::AllocatorStats;

/// What a particular allocator promises beyond the header's contract.
#[derive(Clone, Copy, Debug)]
pub struct Expectations {
    /// Once everything is freed, `largest_free_block`, `bytes_free` and
    /// `metadata_bytes` are back to their values right after creation (a
    /// buddy allocator merges everything back; a McKusick-Karels allocator
    /// does only when it returns pages).
    pub restores_largest_after_free_all: bool,
    /// Every request of at most `largest_free_block` bytes succeeds (true of
    /// a buddy allocator; not of power-of-two buckets, where a small request
    /// can fail while a large bucket has a free object).
    pub largest_free_is_monotone: bool,
    /// Run the allocator's invariant check after every action (otherwise
    /// every 64 actions and at the end).
    pub check_every_action: bool,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            restores_largest_after_free_all: true,
            largest_free_is_monotone: true,
            check_every_action: true,
        }
    }
}

/// What a run did, for tests that want to see real work happen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Successful allocations (alloc, aligned, realloc that moved or allocated).
    pub allocations: usize,
    /// Allocation requests answered NULL.
    pub failed: usize,
    /// Valid frees.
    pub frees: usize,
    /// Bad pointers rejected.
    pub rejected: usize,
    /// Reallocs that kept the block in place.
    pub in_place: usize,
    /// Largest number of blocks live at once.
    pub peak_live: usize,
    /// Freed blocks scribbled (`ScribbleFreed` that wrote).
    pub scribbled_freed: usize,
    /// Regions `add_region` took.
    pub regions_added: usize,
}

/// The arena and the regions added to the allocator since, each between
/// guard margins.
pub struct Arenas<'a> {
    first: &'a TestArena,
    more: Vec<TestArena>,
}

/// Regions added in one run, at most (each up to about twice the arena).
const MAX_ADDED_REGIONS: usize = 6;
/// A region of at least this many bytes must be taken by `add_region` (both
/// cores need far less: state, tables and one block or page).
const MUST_TAKE_REGION: usize = 16 << 10;

impl Arenas<'_> {
    /// A pointer to `addr` with the provenance of the region that holds it
    /// (or whose margins do; else the arena's).
    fn ptr_at(&self, addr: usize) -> *mut u8 {
        let near = |a: &TestArena| {
            let (lo, hi) = a.bounds();
            addr.wrapping_sub(lo.wrapping_sub(crate::arena::MARGIN))
                < hi - lo + 2 * crate::arena::MARGIN
        };
        self.more
            .iter()
            .find(|a| near(a))
            .unwrap_or(self.first)
            .ptr_at(addr)
    }

    /// True when `[addr, end)` lies inside one region.
    fn holds(&self, addr: usize, end: usize) -> bool {
        std::iter::once(self.first).chain(&self.more).any(|a| {
            let (lo, hi) = a.bounds();
            lo <= addr && end <= hi
        })
    }

    fn margins_intact(&self) -> Result<(), String> {
        self.first.margins_intact()?;
        for (i, a) in self.more.iter().enumerate() {
            a.margins_intact()
                .map_err(|e| format!("added region {i}: {e}"))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct Block {
    addr: usize,
    /// Bytes asked for (the pattern covers them).
    size: usize,
    /// Bytes the allocator says the block holds.
    usable: usize,
    seed: u64,
}

/// Every live block, by address and by slot.
struct ShadowModel {
    /// The arena's bounds.
    lo: usize,
    hi: usize,
    /// The arena and every region added since.
    arena_bytes: usize,
    /// `bytes_free` and `metadata_bytes` once every block is freed: at
    /// creation, plus what each added region brought.
    empty_free: usize,
    empty_metadata: usize,
    blocks: Vec<Block>,
    slot_of: HashMap<usize, usize>,
    /// Live blocks' `[addr, addr + max(usable, 1))`, by start address.
    ranges: BTreeMap<usize, usize>,
    /// Recently freed addresses, for `FreeAgain`.
    freed: Vec<usize>,
    next_seed: u64,
    expected_rejected: usize,
    expected_failed: usize,
    reserved: usize,
    /// The block freed last and its usable size, while nothing has been
    /// allocated since (so its memory is still a free block's).
    last_freed: Option<(usize, usize)>,
    /// A freed block was scribbled: the allocator may have lost it (its
    /// invariant check may then fail), but nothing else may change.
    scribbled: bool,
}

impl ShadowModel {
    fn new(lo: usize, hi: usize, initial: &AllocatorStats) -> Self {
        ShadowModel {
            lo,
            hi,
            arena_bytes: hi - lo,
            empty_free: initial.bytes_free,
            empty_metadata: initial.metadata_bytes,
            blocks: Vec::new(),
            slot_of: HashMap::new(),
            ranges: BTreeMap::new(),
            freed: Vec::new(),
            next_seed: 0x5eed,
            expected_rejected: 0,
            expected_failed: 0,
            reserved: 0,
            last_freed: None,
            scribbled: false,
        }
    }

    fn pick(&self, i: u16) -> Option<Block> {
        (!self.blocks.is_empty()).then(|| self.blocks[i as usize % self.blocks.len()])
    }

    fn is_live_start(&self, addr: usize) -> bool {
        self.slot_of.contains_key(&addr)
    }

    /// Checks a block the allocator just handed out and records it.
    fn insert(
        &mut self,
        arena: &Arenas,
        addr: usize,
        size: usize,
        align: usize,
        usable: usize,
    ) -> Result<Block, String> {
        let end = addr
            .checked_add(usable.max(size).max(1))
            .ok_or_else(|| format!("block {addr:#x}+{size} wraps around"))?;
        if !arena.holds(addr, end) {
            return Err(format!(
                "block [{addr:#x}, {end:#x}) of {size} bytes is not inside the arena [{:#x}, {:#x}) or a region added to it",
                self.lo, self.hi
            ));
        }
        if !addr.is_multiple_of(align.max(MIN_ALIGN)) {
            return Err(format!(
                "block {addr:#x} is not aligned to {}",
                align.max(MIN_ALIGN)
            ));
        }
        if usable < size {
            return Err(format!(
                "block {addr:#x}: usable size {usable} < requested {size}"
            ));
        }
        if let Some((&a, &e)) = self.ranges.range(..end).next_back()
            && e > addr
        {
            return Err(format!(
                "block [{addr:#x}, {end:#x}) overlaps live block [{a:#x}, {e:#x})"
            ));
        }
        let seed = self.next_seed;
        self.next_seed = self
            .next_seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // SAFETY: the block lies inside the arena (checked above) and belongs
        // to no other live block.
        unsafe { fill_pattern(arena.ptr_at(addr), size, seed) };
        let block = Block {
            addr,
            size,
            usable,
            seed,
        };
        self.slot_of.insert(addr, self.blocks.len());
        self.blocks.push(block);
        self.ranges.insert(addr, end);
        self.freed.retain(|&f| f != addr);
        self.reserved += usable;
        self.last_freed = None;
        Ok(block)
    }

    /// Checks a live block's contents.
    fn verify(&self, arena: &Arenas, b: &Block, keep: usize) -> Result<(), String> {
        // SAFETY: a live block inside the arena (checked at insertion).
        match unsafe { find_pattern_damage(arena.ptr_at(b.addr), b.size.min(keep), b.seed) } {
            None => Ok(()),
            Some(off) => Err(format!(
                "block {:#x} ({} bytes) was damaged at offset {off} while live",
                b.addr, b.size
            )),
        }
    }

    fn remove(&mut self, addr: usize) -> Block {
        let slot = self
            .slot_of
            .remove(&addr)
            .expect("removing a block the model does not hold");
        let block = self.blocks.swap_remove(slot);
        if let Some(moved) = self.blocks.get(slot) {
            self.slot_of.insert(moved.addr, slot);
        }
        self.ranges.remove(&addr);
        self.freed.push(addr);
        if self.freed.len() > 64 {
            self.freed.remove(0);
        }
        self.reserved -= block.usable;
        self.last_freed = Some((addr, block.usable));
        block
    }

    /// True when `[addr, addr + len)` overlaps a live block.
    fn overlaps_live(&self, addr: usize, len: usize) -> bool {
        self.ranges
            .range(..addr + len)
            .next_back()
            .is_some_and(|(_, &e)| e > addr)
    }

    /// The two words a scribble writes into the freed block at `addr`.
    fn scribble_words(&self, addr: usize, how: Scribble) -> [u64; 2] {
        let one = |w: usize| [w as u64; 2];
        match how {
            Scribble::Bytes(b) => [u64::from_ne_bytes([b; 8]); 2],
            Scribble::LiveBlock(i, inside) => match self.pick(i) {
                Some(b) => one(b.addr + if inside { 16 } else { 0 }),
                None => one(self.lo),
            },
            Scribble::Neighbour(k) => {
                let k = if k == 0 { 1 } else { k as isize };
                one(addr.wrapping_add_signed(16 * k))
            }
            Scribble::OtherFreed(i) => match self.freed.len() {
                0 => one(addr),
                n => one(self.freed[i as usize % n]),
            },
            Scribble::OutOfArena(k, after) => one(if after {
                self.hi + 16 * (k as usize % 4096)
            } else {
                self.lo.wrapping_sub(16 * (1 + k as usize % 4096))
            }),
            Scribble::Words(a, b) => [a, b],
        }
    }

    /// A pointer that is not the start of a live block, per `kind` (relative
    /// to the live block at index `near`, or to the arena if none is live).
    fn bad_pointer(&self, near: u16, kind: BadPointer) -> usize {
        match (kind, self.pick(near)) {
            (BadPointer::Interior(off), Some(b)) if b.usable > 1 => {
                b.addr + 1 + off as usize % (b.usable - 1)
            }
            (BadPointer::Misaligned(off), Some(b)) => b.addr + 1 + off as usize % 15,
            (BadPointer::Interior(_) | BadPointer::Misaligned(_), _) => self.lo + 1,
            (BadPointer::Before(k), _) => self.lo.wrapping_sub(16 * (1 + k as usize % 64)),
            (BadPointer::After(k), _) => self.hi + 16 * (k as usize % 64),
            (BadPointer::ArenaStart(k), _) => self.lo + 16 * (k as usize % 64),
        }
    }
}

/// Runs `actions` on `target`, an allocator created on `arena` (and on nothing
/// else yet), then frees every block still live; checks everything the model
/// knows after each step. Returns what was done, or the first discrepancy.
pub fn run<T: Target>(
    target: &mut T,
    arena: &TestArena,
    actions: &[Action],
    exp: &Expectations,
) -> Result<Report, String> {
    let (lo, hi) = arena.bounds();
    let initial = target.stats();
    let mut model = ShadowModel::new(lo, hi, &initial);
    let mut report = Report::default();
    let mut arenas = Arenas {
        first: arena,
        more: Vec::new(),
    };
    let arena = &mut arenas;
    check_stats(&initial, &model, &initial)?;
    target
        .check()
        .map_err(|e| format!("right after create: {e}"))?;

    for (step, action) in actions.iter().enumerate() {
        let before = target.stats();
        do_action(
            target,
            &mut *arena,
            &mut model,
            &mut report,
            *action,
            &before,
            exp,
        )
        .map_err(|e| format!("step {step} ({action:?}): {e}"))?;
        let after = target.stats();
        check_stats(&after, &model, &initial)
            .map_err(|e| format!("step {step} ({action:?}): {e}"))?;
        arena
            .margins_intact()
            .map_err(|e| format!("step {step} ({action:?}): {e}"))?;
        if (exp.check_every_action || step % 64 == 63) && !model.scribbled {
            target
                .check()
                .map_err(|e| format!("step {step} ({action:?}): invariants: {e}"))?;
        }
        if step % 64 == 63 {
            for b in &model.blocks {
                model
                    .verify(arena, b, usize::MAX)
                    .map_err(|e| format!("step {step}: {e}"))?;
            }
        }
        report.peak_live = report.peak_live.max(model.blocks.len());
    }

    // Free everything, in an order that mixes old and new blocks.
    let mut order: Vec<usize> = model.blocks.iter().map(|b| b.addr).collect();
    let n = order.len();
    for i in 0..n {
        order.swap(i, (i * 7919 + 13) % n);
    }
    for addr in order {
        let b = model.blocks[model.slot_of[&addr]];
        model
            .verify(arena, &b, usize::MAX)
            .map_err(|e| format!("final free: {e}"))?;
        target.free(arena.ptr_at(addr));
        model.remove(addr);
        report.frees += 1;
    }
    let end = target.stats();
    check_stats(&end, &model, &initial).map_err(|e| format!("after freeing everything: {e}"))?;
    if !model.scribbled {
        target
            .check()
            .map_err(|e| format!("after freeing everything: {e}"))?;
    }
    arena.margins_intact()?;
    // Every byte is free again, or held as metadata (bucket pages an
    // allocator keeps may hold bitmaps); an allocator that restores its
    // initial state must be back to its initial split exactly.
    // (With regions added: plus what each brought when it was added.)
    if model.scribbled {
        return Ok(report); // a scribbled block may be lost: the totals may differ
    }
    if end.bytes_free + end.metadata_bytes != model.empty_free + model.empty_metadata
        || (exp.restores_largest_after_free_all
            && (end.bytes_free != model.empty_free || end.metadata_bytes != model.empty_metadata))
    {
        return Err(format!(
            "after freeing everything {} bytes are free and {} metadata, {} and {} were at the start",
            end.bytes_free, end.metadata_bytes, model.empty_free, model.empty_metadata
        ));
    }
    // A larger block may have come with an added region.
    if exp.restores_largest_after_free_all
        && (end.largest_free_block < initial.largest_free_block
            || (arena.more.is_empty() && end.largest_free_block != initial.largest_free_block))
    {
        return Err(format!(
            "after freeing everything the largest free block is {}, it was {} at the start",
            end.largest_free_block, initial.largest_free_block
        ));
    }
    Ok(report)
}

fn check_stats(
    s: &AllocatorStats,
    model: &ShadowModel,
    initial: &AllocatorStats,
) -> Result<(), String> {
    let expect = |what: &str, got: usize, want: usize| {
        if got == want {
            Ok(())
        } else {
            Err(format!("stats: {what} is {got}, the model says {want}"))
        }
    };
    if !s.adds_up() {
        return Err(format!("stats do not add up to the arena: {s:?}"));
    }
    expect("arena_bytes", s.arena_bytes, model.arena_bytes)?;
    // The state an allocator set up at creation never shrinks. It may hold
    // more metadata while blocks are live: McKusick-Karels keeps the
    // allocated bitmaps of its 16- and 32-byte bucket pages inside those
    // pages. (Back to the initial value after freeing everything is checked
    // at the end, for allocators that promise to restore their state.)
    if s.metadata_bytes < initial.metadata_bytes {
        return Err(format!(
            "stats: metadata_bytes is {}, below its {} at creation",
            s.metadata_bytes, initial.metadata_bytes
        ));
    }
    expect("live_blocks", s.live_blocks, model.blocks.len())?;
    expect("bytes_reserved", s.bytes_reserved, model.reserved)?;
    expect("rejected_frees", s.rejected_frees, model.expected_rejected)?;
    expect("failed_allocs", s.failed_allocs, model.expected_failed)?;
    if s.largest_free_block > s.bytes_free {
        return Err(format!(
            "stats: largest free block {} > free bytes {}",
            s.largest_free_block, s.bytes_free
        ));
    }
    Ok(())
}

/// Records the answer to an allocation request of `size` bytes.
#[allow(clippy::too_many_arguments)]
fn allocated<T: Target>(
    target: &mut T,
    arena: &Arenas,
    model: &mut ShadowModel,
    report: &mut Report,
    p: *mut u8,
    size: usize,
    align: usize,
    before: &AllocatorStats,
    exp: &Expectations,
) -> Result<(), String> {
    if p.is_null() {
        model.expected_failed += 1;
        report.failed += 1;
        if exp.largest_free_is_monotone
            && align <= MIN_ALIGN
            && size.max(1) <= before.largest_free_block
        {
            return Err(format!(
                "a request of {size} bytes failed though the largest free block was {}",
                before.largest_free_block
            ));
        }
        return Ok(());
    }
    if align <= MIN_ALIGN && size > before.largest_free_block {
        return Err(format!(
            "a request of {size} bytes succeeded though the largest free block was {}",
            before.largest_free_block
        ));
    }
    let usable = target.usable_size(p);
    model.insert(arena, p as usize, size, align, usable)?;
    report.allocations += 1;
    Ok(())
}

fn do_action<T: Target>(
    target: &mut T,
    arena: &mut Arenas,
    model: &mut ShadowModel,
    report: &mut Report,
    action: Action,
    before: &AllocatorStats,
    exp: &Expectations,
) -> Result<(), String> {
    let arena_len = model.hi - model.lo;
    let resolve = |s: Size| s.resolve(arena_len);
    match action {
        Action::Alloc(s) => {
            let size = resolve(s);
            let p = target.alloc(size);
            allocated(target, arena, model, report, p, size, 1, before, exp)?;
        }
        Action::ReallocNull(s) => {
            let size = resolve(s);
            let p = target.realloc(std::ptr::null_mut(), size);
            allocated(target, arena, model, report, p, size, 1, before, exp)?;
        }
        Action::AllocAligned(s, log2) => {
            let size = resolve(s);
            let align = 1usize << (log2 % 13);
            let p = target.alloc_aligned(size, align);
            allocated(target, arena, model, report, p, size, align, before, exp)?;
        }
        Action::AllocBadAlign(s, a) => {
            let align = [0, 3, 24, 48, 100, 4097][a as usize % 6];
            let p = target.alloc_aligned(resolve(s), align);
            if !p.is_null() {
                return Err(format!(
                    "alloc_aligned with alignment {align} returned {p:?}"
                ));
            }
            model.expected_failed += 1;
            report.failed += 1;
        }
        Action::Free(i) | Action::ReallocZero(i) => {
            let Some(b) = model.pick(i) else {
                return Ok(());
            };
            model.verify(arena, &b, usize::MAX)?;
            if matches!(action, Action::Free(_)) {
                target.free(arena.ptr_at(b.addr));
            } else {
                let q = target.realloc(arena.ptr_at(b.addr), 0);
                if !q.is_null() {
                    return Err(format!("realloc(p, 0) returned {q:?}, not NULL"));
                }
            }
            model.remove(b.addr);
            report.frees += 1;
            if target.usable_size(arena.ptr_at(b.addr)) != 0 {
                return Err(format!("usable_size of freed block {:#x} is not 0", b.addr));
            }
        }
        Action::Realloc(i, s) => {
            let Some(b) = model.pick(i) else {
                return Ok(());
            };
            let size = resolve(s);
            model.verify(arena, &b, usize::MAX)?;
            let q = target.realloc(arena.ptr_at(b.addr), size);
            if size == 0 {
                if !q.is_null() {
                    return Err(format!("realloc(p, 0) returned {q:?}, not NULL"));
                }
                model.remove(b.addr);
                report.frees += 1;
            } else if q.is_null() {
                model.expected_failed += 1;
                report.failed += 1;
                model
                    .verify(arena, &b, usize::MAX)
                    .map_err(|e| format!("failed realloc damaged the block: {e}"))?;
                if target.usable_size(arena.ptr_at(b.addr)) != b.usable {
                    return Err("failed realloc changed the block's usable size".into());
                }
            } else {
                let old = model.remove(b.addr);
                let kept = old.size.min(size);
                // SAFETY: the new block is live and holds at least `size` bytes.
                if let Some(off) = unsafe { find_pattern_damage(q, kept, old.seed) } {
                    return Err(format!(
                        "realloc {old_size} -> {size} lost byte {off}",
                        old_size = old.size
                    ));
                }
                if q as usize == old.addr {
                    report.in_place += 1;
                }
                let usable = target.usable_size(q);
                model.insert(arena, q as usize, size, 1, usable)?;
                report.allocations += 1;
            }
        }
        Action::FreeNull => target.free(std::ptr::null_mut()),
        Action::FreeBad(i, kind) => {
            let addr = model.bad_pointer(i, kind);
            if model.is_live_start(addr) {
                return Ok(()); // not bad after all (e.g. a block right after the arena start)
            }
            target.free(arena.ptr_at(addr));
            model.expected_rejected += 1;
            report.rejected += 1;
        }
        Action::ReallocBad(i, kind, s) => {
            let addr = model.bad_pointer(i, kind);
            let size = resolve(s);
            if model.is_live_start(addr) || size == 0 {
                return Ok(());
            }
            let q = target.realloc(arena.ptr_at(addr), size);
            if !q.is_null() {
                return Err(format!("realloc of bad pointer {addr:#x} returned {q:?}"));
            }
            model.expected_rejected += 1;
            report.rejected += 1;
        }
        Action::FreeAgain(i) => {
            if model.freed.is_empty() {
                return Ok(());
            }
            let addr = model.freed[i as usize % model.freed.len()];
            if model.is_live_start(addr) {
                return Ok(()); // handed out again: freeing it now would be valid
            }
            target.free(arena.ptr_at(addr));
            model.expected_rejected += 1;
            report.rejected += 1;
        }
        Action::Scribble(i) => {
            let Some(b) = model.pick(i) else {
                return Ok(());
            };
            model.verify(arena, &b, usize::MAX)?;
            let slot = model.slot_of[&b.addr];
            let seed = b.seed ^ 0xdead_beef;
            // SAFETY: a live block of at least `usable` bytes; the caller may
            // write all of them.
            unsafe { fill_pattern(arena.ptr_at(b.addr), b.usable, seed) };
            model.blocks[slot].seed = seed;
        }
        Action::AddRegion { len, misalign } => {
            if arena.more.len() >= MAX_ADDED_REGIONS {
                return Ok(());
            }
            let len = len as usize % (2 * arena_len.max(4096) + 1);
            let region = TestArena::new(len, misalign as usize);
            // SAFETY: the region is valid and ours alone; it is kept (in
            // `arena.more`) until the run ends, after the allocator's last use.
            let taken = unsafe { target.add_region(region.start(), region.len()) };
            region.margins_intact()?;
            match taken {
                None => return Ok(()), // this allocator takes no memory later
                Some(false) if len >= MUST_TAKE_REGION => {
                    return Err(format!("add_region refused a region of {len} bytes"));
                }
                Some(false) => {
                    let after = target.stats();
                    if after != *before {
                        return Err(format!(
                            "a refused add_region changed the stats: {before:?} -> {after:?}"
                        ));
                    }
                }
                Some(true) => {
                    let after = target.stats();
                    model.arena_bytes += len;
                    // All the new bytes are free or the region's bookkeeping.
                    let free = after.bytes_free.checked_sub(before.bytes_free);
                    let meta = after.metadata_bytes.checked_sub(before.metadata_bytes);
                    match (free, meta) {
                        (Some(f), Some(m)) if f + m == len => {
                            model.empty_free += f;
                            model.empty_metadata += m;
                        }
                        _ => {
                            return Err(format!(
                                "add_region of {len} bytes: free {} -> {}, metadata {} -> {}",
                                before.bytes_free,
                                after.bytes_free,
                                before.metadata_bytes,
                                after.metadata_bytes
                            ));
                        }
                    }
                    arena.more.push(region);
                    report.regions_added += 1;
                }
            }
        }
        Action::AddOverlapping(off) => {
            let (lo, hi) = arena.first.bounds();
            if hi == lo {
                return Ok(());
            }
            let start = lo + off as usize % (hi - lo);
            let len = (hi - start).max(4096);
            // SAFETY: memory the allocator manages: it must refuse it without
            // touching it (and it stays valid, being the arena).
            let taken = unsafe { target.add_region(arena.ptr_at(start), len) };
            if taken == Some(true) {
                return Err(format!(
                    "add_region took [{start:#x}, +{len}), which overlaps the arena"
                ));
            }
        }
        Action::ScribbleFreed(how) => {
            let Some((addr, usable)) = model.last_freed else {
                return Ok(());
            };
            let len = usable.min(16);
            if len < 16 || model.overlaps_live(addr, len) {
                return Ok(());
            }
            let words = model.scribble_words(addr, how);
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            // SAFETY: 16 bytes of a block freed since the last allocation:
            // inside the arena, part of no live block (checked); only the
            // allocator's free-list links are there, which it must not trust.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), arena.ptr_at(addr), len) };
            model.scribbled = true;
            report.scribbled_freed += 1;
        }
    }
    if target.usable_size(std::ptr::null_mut()) != 0 {
        return Err("usable_size(NULL) is not 0".into());
    }
    Ok(())
}
