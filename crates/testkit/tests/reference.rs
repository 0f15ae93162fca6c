//! The test kit checked against itself: a tiny correct allocator passes the
//! shadow model, and the same allocator with one bug planted fails it.

use std::ptr::NonNull;

use alloc_testkit::{Expectations, Outcome, action::scenario_strategy, check_core};
use plugin_abi::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const SLOT: usize = 64;

/// Fixed 64-byte slots after a one-byte-per-slot table, all in the arena.
/// `BUG` plants a defect: 1 = hands out the slot after the last (past the
/// end), 2 = free does not clear the used mark for slot 0... see `bug`.
#[repr(C)]
struct Slots<const BUG: u8> {
    base: *mut u8,
    table: *mut u8,
    slots: usize,
    failed: usize,
    rejected: usize,
    live: usize,
    metadata: usize,
    len: usize,
}

impl<const BUG: u8> Slots<BUG> {
    fn slot_of(&self, p: NonNull<u8>) -> Option<usize> {
        let off = (p.as_ptr() as usize).checked_sub(self.base as usize)?;
        let i = off / SLOT;
        // SAFETY: `i < slots`, so the table byte is inside the arena.
        (off % SLOT == 0 && i < self.slots && unsafe { *self.table.add(i) } == 1).then_some(i)
    }
}

impl<const BUG: u8> ArenaAllocator for Slots<BUG> {
    const INFO: AllocatorInfo = AllocatorInfo {
        abi_version: ALLOCATOR_ABI_VERSION,
        supported_flags: 0,
        properties: 0,
        reserved: 0,
        name: c"slots".as_ptr(),
        description: c"test".as_ptr(),
        complexity: c"O(n)".as_ptr(),
        alignment: 16,
        min_block: SLOT,
        min_arena: 256,
    };

    unsafe fn create_in(region: *mut u8, len: usize, flags: u32) -> Option<NonNull<Self>> {
        if flags != 0 {
            return None;
        }
        let pad = region.align_offset(64);
        let head = pad + size_of::<Self>();
        let usable = len.checked_sub(head)?;
        let slots = usable / (SLOT + 1);
        // SAFETY: inside the region.
        let table = unsafe { region.add(head) };
        let base_off = head + slots + region.wrapping_add(head + slots).align_offset(SLOT);
        let slots = if base_off + slots * SLOT <= len {
            slots
        } else {
            (len.saturating_sub(base_off)) / SLOT
        };
        if slots == 0 {
            return None;
        }
        // SAFETY: all offsets below `len`.
        unsafe {
            table.write_bytes(0, slots);
            let this = region.add(pad).cast::<Self>();
            this.write(Slots {
                base: region.add(base_off),
                table,
                slots,
                failed: 0,
                rejected: 0,
                live: 0,
                metadata: len - slots * SLOT,
                len,
            });
            NonNull::new(this)
        }
    }

    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let limit = if BUG == 1 { self.slots + 1 } else { self.slots };
        // SAFETY: table bytes `< slots` are inside the arena.
        let free = (0..self.slots).find(|&i| unsafe { *self.table.add(i) } == 0);
        match free.filter(|_| size <= SLOT) {
            Some(i) => {
                let i = if BUG == 1 && self.live + 1 == self.slots {
                    limit - 1
                } else {
                    i
                };
                // SAFETY: `i < slots` (or the planted bug).
                unsafe { *self.table.add(i.min(self.slots - 1)) = 1 };
                self.live += 1;
                // SAFETY: inside the arena except for the planted bug.
                NonNull::new(unsafe { self.base.add(i * SLOT) })
            }
            None => {
                self.failed += 1;
                None
            }
        }
    }

    fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        if align.is_power_of_two() && align <= SLOT {
            self.alloc(size)
        } else {
            self.failed += 1;
            None
        }
    }

    fn free(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer> {
        match self.slot_of(ptr) {
            Some(i) => {
                if BUG == 2 && i == 1 {
                    // forgets to write the block back, but counts it free
                } else {
                    // SAFETY: `i < slots`.
                    unsafe { *self.table.add(i) = 0 };
                }
                self.live -= 1;
                if BUG == 3 {
                    // scribbles over the block it was given back... and the next
                    // SAFETY: deliberately wrong only within the arena.
                    unsafe { ptr.as_ptr().add(SLOT).write(0x77) };
                }
                Ok(())
            }
            None => {
                self.rejected += 1;
                Err(BadPointer)
            }
        }
    }

    fn realloc(&mut self, ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, ReallocError> {
        if self.slot_of(ptr).is_none() {
            self.rejected += 1;
            return Err(ReallocError::BadPointer);
        }
        if new_size <= SLOT {
            Ok(ptr)
        } else {
            self.failed += 1;
            Err(ReallocError::OutOfMemory)
        }
    }

    fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        self.slot_of(ptr).map(|_| SLOT)
    }

    fn stats(&self) -> AllocatorStats {
        let free_slots = self.slots - self.live;
        AllocatorStats {
            arena_bytes: self.len,
            metadata_bytes: self.metadata,
            bytes_requested: ALLOCATOR_STAT_UNKNOWN,
            bytes_reserved: self.live * SLOT,
            bytes_free: free_slots * SLOT,
            largest_free_block: if free_slots > 0 { SLOT } else { 0 },
            live_blocks: self.live,
            failed_allocs: self.failed,
            rejected_frees: self.rejected,
        }
    }

    fn check_invariants(&self) -> Result<(), InvariantViolation> {
        // SAFETY: table bytes `< slots` are inside the arena.
        let used = (0..self.slots)
            .filter(|&i| unsafe { *self.table.add(i) } == 1)
            .count();
        ensure!(
            used == self.live,
            "{used} slots marked used, {} live",
            self.live
        );
        Ok(())
    }
}

fn exp() -> Expectations {
    Expectations::default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_correct_allocator_passes(s in scenario_strategy(16 << 10, 200)) {
        let outcome = check_core::<Slots<0>>(&s, 16 << 10, 0, &exp());
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}

/// Runs many random scenarios and returns the first failure message.
fn first_failure<const BUG: u8>() -> Option<String> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = scenario_strategy(4 << 10, 300);
    for _ in 0..500 {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        if let Err(e) = check_core::<Slots<BUG>>(&s, 4 << 10, 0, &exp()) {
            return Some(e);
        }
    }
    None
}

#[test]
fn a_block_past_the_end_is_caught() {
    let e = first_failure::<1>().expect("the planted bug went unnoticed");
    assert!(
        // Outside the arena, or over the last slot (then counted twice).
        e.contains("not inside the arena")
            || e.contains("overlaps")
            || e.contains("bytes_reserved is"),
        "{e}"
    );
}

#[test]
fn a_lost_free_is_caught() {
    let e = first_failure::<2>().expect("the planted bug went unnoticed");
    assert!(
        e.contains("invariants")
            || e.contains("slots marked used")
            || e.contains("stats")
            || e.contains("usable_size of freed"),
        "{e}"
    );
}

#[test]
fn damage_to_a_live_block_is_caught() {
    let e = first_failure::<3>().expect("the planted bug went unnoticed");
    assert!(
        e.contains("damaged") || e.contains("lost byte") || e.contains("after the end"),
        "{e}"
    );
}

#[test]
fn small_arenas_are_refused_not_mishandled() {
    let s = alloc_testkit::Scenario {
        arena: 0,
        misalign: 3,
        actions: vec![],
    };
    assert!(matches!(
        check_core::<Slots<0>>(&s, 0, 0, &exp()),
        Ok(Outcome::NotCreated)
    ));
}
