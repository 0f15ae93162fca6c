//! The buddy core against the test kit's shadow model: random scenarios on
//! arenas of odd sizes (0 to about 1 MiB) and alignments, every answer, the
//! stats and `check_invariants` checked after every action, and at the end
//! (all freed) the free bytes and the largest free block back to their
//! initial values.

use alloc_testkit::{Expectations, Outcome, Report, action::scenario_strategy, check_core};
use buddy::Buddy;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

const CASES: u32 = if cfg!(miri) { 2 } else { 200 };

fn run(s: &alloc_testkit::Scenario, max: usize) -> Result<Outcome, String> {
    check_core::<Buddy>(s, max, 0, &Expectations::default())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        // Miri's isolation forbids the failure file's `getcwd`.
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    #[test]
    fn small_arenas(s in scenario_strategy(if cfg!(miri) { 4 << 10 } else { 16 << 10 }, if cfg!(miri) { 40 } else { 300 })) {
        let max = if cfg!(miri) { 4 << 10 } else { 16 << 10 };
        let outcome = run(&s, max);
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }

    #[test]
    fn arenas_up_to_one_mib(s in scenario_strategy(if cfg!(miri) { 16 << 10 } else { 1 << 20 }, if cfg!(miri) { 30 } else { 400 })) {
        let max = if cfg!(miri) { 16 << 10 } else { 1 << 20 };
        let outcome = run(&s, max);
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}

/// The scenarios above do real work: summed over many of them, every kind of
/// event happens, in-place reallocs included.
#[test]
fn scenarios_exercise_everything() {
    let mut runner = TestRunner::deterministic();
    let (max, n) = if cfg!(miri) {
        (4 << 10, 4)
    } else {
        (64 << 10, 300)
    };
    let strategy = scenario_strategy(max, if cfg!(miri) { 80 } else { 300 });
    let mut total = Report::default();
    let mut created = 0;
    for _ in 0..n {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        match run(&s, max) {
            Ok(Outcome::Passed(r)) => {
                created += 1;
                total.allocations += r.allocations;
                total.failed += r.failed;
                total.frees += r.frees;
                total.rejected += r.rejected;
                total.in_place += r.in_place;
                total.peak_live = total.peak_live.max(r.peak_live);
                total.regions_added += r.regions_added;
                total.scribbled_freed += r.scribbled_freed;
            }
            Ok(Outcome::NotCreated) => {}
            Err(e) => panic!("{e}\n{s:?}"),
        }
    }
    assert!(created >= n / 2, "only {created} arenas created");
    assert!(total.allocations > 10 * created, "{total:?}");
    assert!(total.frees > 0 && total.rejected > 0, "{total:?}");
    if !cfg!(miri) {
        // Enough failures, reallocs and live blocks only in the full run.
        assert!(total.failed > 0 && total.in_place > 0, "{total:?}");
        assert!(total.peak_live >= 20, "{total:?}");
        // Memory added to live allocators (`Action::AddRegion`).
        assert!(total.regions_added > 0, "{total:?}");
        assert!(total.scribbled_freed > 10, "{total:?}");
    }
}
