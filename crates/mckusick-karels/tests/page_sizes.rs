//! Every page size from 256 bytes to 64 KiB, both modes: random allocs,
//! frees and reallocs against a small model (bounds, alignment, overlap,
//! contents), with the invariant check after every step. (The shared shadow
//! model drives the C-ABI configuration, 4 KiB pages.)

use std::collections::BTreeMap;
use std::ptr::NonNull;

use mckusick_karels::{Config, Heap, PageReturn};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize),
    Free(usize),
    Realloc(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        4 => 0usize..300,
        3 => 0usize..5000,
        2 => 0usize..140_000,
        1 => (0u32..18).prop_map(|k| 1usize << k),
    ];
    prop_oneof![
        5 => size.clone().prop_map(Op::Alloc),
        4 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), size).prop_map(|(i, s)| Op::Realloc(i, s)),
    ]
}

fn byte(addr: usize) -> u8 {
    (addr >> 4) as u8 ^ (addr >> 12) as u8
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 200 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_page_size_keeps_every_invariant(
        shift in 8u32..=16,
        mode in 0u8..3,
        len in (if cfg!(miri) { 8usize << 10 } else { 64 << 10 })..(if cfg!(miri) { 24 << 10 } else { 1 << 20 }),
        ops in proptest::collection::vec(op(), 0..if cfg!(miri) { 24 } else { 300 }),
    ) {
        let mut mem = vec![0u8; len];
        let page_return = [PageReturn::Never, PageReturn::Hysteresis, PageReturn::Eager][mode as usize];
        let Ok(mut heap) = Heap::new(&mut mem, Config { page_size: 1 << shift, page_return }) else {
            return Ok(());
        };
        let initial = heap.stats();
        // Live blocks: start -> (usable, requested).
        let mut live: BTreeMap<usize, (NonNull<u8>, usize, usize)> = BTreeMap::new();
        let fill = |p: NonNull<u8>, n: usize| {
            for i in 0..n {
                // SAFETY: a live block of at least `n` bytes.
                unsafe { p.as_ptr().add(i).write(byte(p.as_ptr().addr() + i)) };
            }
        };
        let intact = |p: NonNull<u8>, from: usize, n: usize| {
            // SAFETY: a live block of at least `n` bytes.
            (0..n).all(|i| unsafe { p.as_ptr().add(i).read() } == byte(from + i))
        };
        for op in ops {
            match op {
                Op::Alloc(size) => {
                    if let Some(p) = heap.malloc(size) {
                        let usable = heap.usable_size(p).unwrap();
                        let a = p.as_ptr().addr();
                        prop_assert!(usable >= size.max(1) && a % 16 == 0);
                        if size <= (2 << shift) {
                            prop_assert_eq!(usable, size.max(16).next_power_of_two());
                            prop_assert_eq!(a % usable.min(1 << shift), 0);
                        } else {
                            prop_assert_eq!(usable, size.next_multiple_of(1 << shift));
                        }
                        if let Some((&b, &(_, u, _))) = live.range(..a + usable).next_back() {
                            prop_assert!(b + u <= a, "overlap");
                        }
                        fill(p, size);
                        live.insert(a, (p, usable, size));
                    }
                }
                Op::Free(i) if !live.is_empty() => {
                    let a = *live.keys().nth(i % live.len()).unwrap();
                    let (p, _, size) = live.remove(&a).unwrap();
                    prop_assert!(intact(p, a, size));
                    heap.free(p).unwrap();
                    prop_assert!(heap.free(p).is_err());
                }
                Op::Realloc(i, size) if !live.is_empty() => {
                    let a = *live.keys().nth(i % live.len()).unwrap();
                    let (p, _, old) = live[&a];
                    if let Ok(q) = heap.realloc(p, size) {
                        live.remove(&a);
                        let b = q.as_ptr().addr();
                        prop_assert!(intact(q, a, old.min(size)));
                        let usable = heap.usable_size(q).unwrap();
                        prop_assert!(usable >= size);
                        if let Some((&c, &(_, u, _))) = live.range(..b + usable).next_back() {
                            prop_assert!(c + u <= b, "overlap");
                        }
                        fill(q, size);
                        live.insert(b, (q, usable, size));
                    } else {
                        prop_assert!(intact(p, a, old));
                    }
                }
                _ => {}
            }
            if let Err(e) = heap.check_invariants() {
                return Err(TestCaseError::fail(e.to_string()));
            }
            let s = heap.stats();
            prop_assert!(s.adds_up());
            prop_assert_eq!(s.live_blocks, live.len());
            prop_assert_eq!(s.bytes_reserved, live.values().map(|v| v.1).sum::<usize>());
        }
        for (a, (p, _, size)) in std::mem::take(&mut live) {
            prop_assert!(intact(p, a, size));
            heap.free(p).unwrap();
        }
        heap.check_invariants().unwrap();
        let s = heap.stats();
        prop_assert_eq!(s.live_blocks, 0);
        if page_return == PageReturn::Hysteresis {
            // Empty runs past the high-water mark went back; the rest go
            // back before a request for pages fails.
            prop_assert_eq!(
                s.bytes_free + s.metadata_bytes,
                initial.bytes_free + initial.metadata_bytes
            );
            prop_assert!(heap.malloc(initial.largest_free_block).is_some());
        }
        if page_return == PageReturn::Eager {
            prop_assert_eq!(s.bytes_free, initial.bytes_free);
            prop_assert_eq!(s.largest_free_block, initial.largest_free_block);
        }
    }
}
