//! The McKusick-Karels allocator against the shadow model, in its faithful
//! mode and with page return (chosen by the top bit of `misalign`, which the
//! arena placement does not use): random arenas up to 1 MiB and random
//! actions, the same `Action` type as the property tests.
#![no_main]

use alloc_testkit::{Expectations, Scenario, check_core};
use libfuzzer_sys::fuzz_target;
use plugin_abi::ALLOCATOR_FLAG_RETURN_PAGES;

fuzz_target!(|scenario: Scenario| {
    let return_pages = scenario.misalign & 0x8000 != 0;
    let flags = if return_pages {
        ALLOCATOR_FLAG_RETURN_PAGES
    } else {
        0
    };
    let exp = Expectations {
        restores_largest_after_free_all: return_pages,
        largest_free_is_monotone: false,
        check_every_action: true,
    };
    if let Err(e) = check_core::<mckusick_karels::McKusickKarels>(&scenario, 1 << 20, flags, &exp) {
        panic!("{e}");
    }
});
