//! The shared shadow model (alloc-testkit) over many random scenarios:
//! arena sizes from 0 to about 1 MiB (odd ones, powers of two), misaligned
//! arenas, every action of the kit (freed blocks scribbled included), in the
//! default mode, the faithful one (`ALLOCATOR_FLAG_FAITHFUL`) and with
//! `ALLOCATOR_FLAG_RETURN_PAGES`.

use alloc_testkit::{Expectations, Outcome, action::scenario_strategy, check_core};
use mckusick_karels::McKusickKarels;
use plugin_abi::{ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES};
use proptest::prelude::*;

#[cfg(not(miri))]
const MAX_ARENA: usize = 1 << 20;
#[cfg(miri)]
const MAX_ARENA: usize = 24 << 10;
#[cfg(not(miri))]
const ACTIONS: usize = 400;
#[cfg(miri)]
const ACTIONS: usize = 24;
#[cfg(not(miri))]
const CASES: u32 = 300;
#[cfg(miri)]
const CASES: u32 = 2;

fn expectations(return_pages: bool) -> Expectations {
    Expectations {
        restores_largest_after_free_all: return_pages,
        largest_free_is_monotone: false,
        check_every_action: true,
    }
}

fn run(s: &alloc_testkit::Scenario, flags: u32) -> Result<(), TestCaseError> {
    let exp = expectations(flags & ALLOCATOR_FLAG_RETURN_PAGES != 0);
    match check_core::<McKusickKarels>(s, MAX_ARENA, flags, &exp) {
        Ok(Outcome::Passed(_) | Outcome::NotCreated) => Ok(()),
        Err(e) => Err(TestCaseError::fail(e)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn default_mode_passes_the_shadow_model(s in scenario_strategy(MAX_ARENA, ACTIONS)) {
        run(&s, 0)?;
    }

    #[test]
    fn faithful_mode_passes_the_shadow_model(s in scenario_strategy(MAX_ARENA, ACTIONS)) {
        run(&s, ALLOCATOR_FLAG_FAITHFUL)?;
    }

    #[test]
    fn return_pages_mode_passes_the_shadow_model(s in scenario_strategy(MAX_ARENA, ACTIONS)) {
        run(&s, ALLOCATOR_FLAG_RETURN_PAGES)?;
    }
}

/// The scenarios really exercise the allocator: most arenas are created, and
/// allocations, frees, rejections and in-place reallocs all happen.
#[test]
fn scenarios_do_real_work() {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = scenario_strategy(MAX_ARENA, ACTIONS);
    let mut total = alloc_testkit::Report::default();
    let mut created = 0;
    for _ in 0..if cfg!(miri) { 1 } else { 60 } {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        for flags in [0, ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES] {
            let exp = expectations(flags == ALLOCATOR_FLAG_RETURN_PAGES);
            match check_core::<McKusickKarels>(&s, MAX_ARENA, flags, &exp).unwrap() {
                Outcome::Passed(r) => {
                    created += 1;
                    total.allocations += r.allocations;
                    total.frees += r.frees;
                    total.rejected += r.rejected;
                    total.in_place += r.in_place;
                    total.failed += r.failed;
                    total.regions_added += r.regions_added;
                    total.scribbled_freed += r.scribbled_freed;
                }
                Outcome::NotCreated => {}
            }
        }
    }
    assert!(created > 0);
    assert!(total.allocations > 0 && total.frees > 0, "{total:?}");
    if !cfg!(miri) {
        assert!(
            total.rejected > 0 && total.in_place > 0 && total.failed > 0,
            "{total:?}"
        );
        // Memory added to live allocators (`Action::AddRegion`).
        assert!(total.regions_added > 0, "{total:?}");
        assert!(total.scribbled_freed > 10, "{total:?}");
    }
}

/// Found by the shadow model: a freed object scribbled with links to itself
/// passed `safe_unlink`'s checks, so returning its run left it at the head
/// of its bucket list (and a later `malloc` took an object from a free run).
#[test]
fn a_self_linked_scribble_is_not_unlinked_into_a_returned_run() {
    use alloc_testkit::{Action, Scribble, Size};
    let s = alloc_testkit::Scenario {
        arena: 525_961,
        misalign: 0,
        actions: vec![
            Action::Alloc(Size {
                class: 91,
                raw: 1_402_745_853,
            }),
            Action::Free(0),
            Action::ScribbleFreed(Scribble::OtherFreed(0)),
            Action::Alloc(Size { class: 0, raw: 0 }),
            Action::Alloc(Size {
                class: 0,
                raw: 11_694_224,
            }),
            Action::Alloc(Size { class: 69, raw: 32 }),
            Action::Realloc(
                0,
                Size {
                    class: 133,
                    raw: 64,
                },
            ),
            Action::Alloc(Size {
                class: 189,
                raw: 2_226_628_089,
            }),
            Action::Alloc(Size {
                class: 186,
                raw: 3_223_979_128,
            }),
        ],
    };
    run(&s, 0).unwrap();
}
