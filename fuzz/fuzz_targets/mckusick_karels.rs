//! The McKusick-Karels allocator against the shadow model, in its three
//! modes (chosen by the top two bits of `misalign`, which the arena
//! placement does not use): the default (pages returned past the high-water
//! mark), the faithful one and `ALLOCATOR_FLAG_RETURN_PAGES`; random arenas
//! up to 1 MiB and random actions (writes into freed blocks included), the
//! same `Action` type as the property tests.
#![no_main]

use alloc_testkit::{Expectations, Scenario, check_core};
use libfuzzer_sys::fuzz_target;
use plugin_abi::{ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES};

fuzz_target!(|scenario: Scenario| {
    let flags = match scenario.misalign >> 14 {
        1 => ALLOCATOR_FLAG_RETURN_PAGES,
        2 => ALLOCATOR_FLAG_FAITHFUL,
        _ => 0,
    };
    let exp = Expectations {
        restores_largest_after_free_all: flags == ALLOCATOR_FLAG_RETURN_PAGES,
        largest_free_is_monotone: false,
        check_every_action: true,
    };
    if let Err(e) = check_core::<mckusick_karels::McKusickKarels>(&scenario, 1 << 20, flags, &exp) {
        panic!("{e}");
    }
});
