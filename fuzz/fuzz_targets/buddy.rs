//! The buddy allocator against the shadow model: random arenas (size up to
//! 1 MiB, any alignment) and random actions, the same `Action` type as the
//! property tests.
#![no_main]

use alloc_testkit::{Expectations, Scenario, check_core};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| {
    if let Err(e) = check_core::<buddy::Buddy>(&scenario, 1 << 20, 0, &Expectations::default()) {
        panic!("{e}");
    }
});
