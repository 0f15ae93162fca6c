//! The allocator as this test program's `#[global_allocator]`: every `Box`,
//! `Vec`, `String`, `HashMap` and thread stack bookkeeping of the program
//! (the test harness included) is served from a static arena.

use std::collections::HashMap;

use mckusick_karels::McKusickKarels;

plugin_abi::global_arena!(
    #[global_allocator]
    static GLOBAL: McKusickKarels = if cfg!(miri) { 4 << 20 } else { 64 << 20 }
);

fn live() -> usize {
    GLOBAL.stats().unwrap().live_blocks
}

#[test]
fn real_rust_code_runs_on_the_arena() {
    // Blocks come from the arena: a thousand boxes are a thousand more live blocks.
    let before = live();
    let n: u64 = if cfg!(miri) { 100 } else { 1000 };
    let boxes: Vec<Box<u64>> = (0..n).map(Box::new).collect();
    assert!(live() >= before + n as usize, "{} -> {}", before, live());
    assert_eq!(boxes.iter().map(|b| **b).sum::<u64>(), (n - 1) * n / 2);
    drop(boxes);

    let (rounds, keys, big_len) = if cfg!(miri) {
        (1, 40u32, 20_000)
    } else {
        (50, 200u32, 300_000)
    };
    // Vec, String and HashMap churn with growing and shrinking reallocs.
    for round in 0..rounds {
        let mut map: HashMap<String, Vec<u32>> = HashMap::new();
        for i in 0..keys {
            let key = format!("key-{round}-{i}-{}", "x".repeat((i % 40) as usize));
            let v: Vec<u32> = (0..(i * 7 % 300)).collect();
            map.insert(key, v);
        }
        for i in (0..keys).step_by(3) {
            let key = format!("key-{round}-{i}-{}", "x".repeat((i % 40) as usize));
            let v = map.get_mut(&key).unwrap();
            v.extend(0..if cfg!(miri) { 100 } else { 1000 });
            v.truncate(10);
            v.shrink_to_fit();
        }
        let total: usize = map.values().map(Vec::len).sum();
        assert!(total > 0);
        let mut s = String::new();
        for i in 0..if cfg!(miri) { 100 } else { 500 } {
            s.push_str(&i.to_string());
        }
        assert!(s.len() > 100);
        // A large block (page run) and its growth.
        let mut big: Vec<u8> = Vec::with_capacity(big_len / 3);
        big.resize(big_len, round as u8);
        assert!(big.iter().all(|&b| b == round as u8));
    }

    // Threads allocating and freeing at the same time, through the lock.
    let threads: Vec<_> = (0..if cfg!(miri) { 2 } else { 4 })
        .map(|t| {
            std::thread::spawn(move || {
                let mut keep = Vec::new();
                for i in 0..if cfg!(miri) { 30 } else { 20_000 } {
                    let v =
                        vec![t as u8; 1 + (i * 37 + t * 11) % if cfg!(miri) { 600 } else { 3000 }];
                    if i % 3 == 0 {
                        keep.push(v);
                    }
                    if keep.len() > 100 {
                        keep.drain(..50);
                    }
                }
                keep.iter().map(Vec::len).sum::<usize>()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap() > 0);
    }

    let s = GLOBAL.stats().unwrap();
    assert!(s.adds_up(), "{s:?}");
    assert_eq!(s.rejected_frees, 0);
    assert_eq!(s.failed_allocs, 0);
    // Only what the harness and this test still hold is live.
    assert!(s.live_blocks < before + 200, "{s:?}");
    GLOBAL.with(|a| a.check_invariants()).unwrap().unwrap();
    println!("{s:#?}");
}
