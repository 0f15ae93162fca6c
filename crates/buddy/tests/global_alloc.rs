//! The buddy allocator as this test program's `#[global_allocator]`:
//! `Vec`, `String`, `HashMap` and threads all allocate from a static arena
//! through `plugin_abi::GlobalArena<Buddy>`.
//!
//! Not under Miri: whenever a `Box` passed by value is dropped inside the
//! callee (`drop(b)`, a thread's own `Box<Self>`), the allocator writes its
//! free-list header into the freed block while the argument's (weak)
//! protector is still active, and Miri, which does not know that the block
//! left the `Box` (it is part of one big static allocation), reports it,
//! under Stacked and Tree Borrows alike: the known false positive of
//! in-arena global allocators (rlsf reports the same, its issue #20). The
//! core's own tests (`api`, `shadow_model`, `c_abi`) run under Miri. The
//! program has its own `main` (no libtest harness), which then skips.

use std::collections::HashMap;
use std::hint::black_box;

use buddy::Buddy;

const ARENA: usize = if cfg!(miri) { 1 << 20 } else { 64 << 20 };

plugin_abi::global_arena!(#[global_allocator] static GLOBAL: Buddy = ARENA);

/// Words of a little text generator, deterministic.
fn word(mut x: u64) -> String {
    let mut s = String::new();
    for _ in 0..(1 + x % 12) {
        s.push((b'a' + (x % 26) as u8) as char);
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 7;
    }
    s
}

fn churn(seed: u64, rounds: usize) -> (usize, u64) {
    let mut counts: HashMap<String, Vec<u32>> = HashMap::new();
    let mut vecs: Vec<Vec<u64>> = Vec::new();
    let mut text = String::new();
    let mut x = seed | 1;
    for i in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = word(x);
        counts.entry(w.clone()).or_default().push(i as u32);
        text.push_str(&w);
        text.push(' ');
        if text.len() > 10_000 {
            text = text.split_off(text.len() / 2); // moves and reallocs
        }
        match x % 4 {
            0 => vecs.push((0..(x % 300)).collect()),
            1 if !vecs.is_empty() => {
                let j = (x as usize >> 9) % vecs.len();
                vecs.swap_remove(j);
            }
            2 if !vecs.is_empty() => {
                let j = (x as usize >> 9) % vecs.len();
                let v = &mut vecs[j];
                v.extend(0..(x % 500)); // grows: realloc, in place or not
                v.truncate(v.len() / 3);
                v.shrink_to_fit(); // shrinks: realloc in place
            }
            _ => {}
        }
    }
    let total: usize = counts.values().map(Vec::len).sum();
    let sum: u64 = vecs.iter().flatten().sum();
    (total, sum)
}

fn main() {
    if cfg!(miri) {
        println!(
            "test real_rust_code_runs_on_the_buddy_heap ... skipped under Miri (see the file)"
        );
        return;
    }
    real_rust_code_runs_on_the_buddy_heap();
    println!("test real_rust_code_runs_on_the_buddy_heap ... ok");
    println!("1 passed, 0 failed");
}

fn real_rust_code_runs_on_the_buddy_heap() {
    let before = GLOBAL.stats().expect("the arena holds an allocator");
    let (start, len) = GLOBAL.with(|b| b.managed_range()).unwrap();
    let probe = Box::new([0u8; 100]);
    let addr = &*probe as *const _ as usize;
    assert!(
        addr >= start && addr < start + len,
        "Box is not on the buddy heap"
    );
    assert_eq!(
        addr % 128,
        0,
        "100 bytes take a naturally aligned 128-byte block"
    );
    drop(probe);

    let rounds = 50_000;
    let (total, _) = churn(1, rounds);
    assert_eq!(total, rounds);

    // Threads, each with its own churn.
    let handles: Vec<_> = (0..4u64)
        .map(|t| std::thread::spawn(move || churn(t + 2, rounds / 2)))
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|&(n, _)| n == rounds / 2));

    // A big one, and over-aligned ones.
    let big = vec![7u8; ARENA / 8];
    assert_eq!(
        black_box(&big).iter().map(|&b| b as usize).sum::<usize>(),
        7 * ARENA / 8
    );
    let during = GLOBAL.stats().unwrap();
    assert!(during.bytes_reserved >= ARENA / 8);
    drop(big);
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let pages: Vec<Box<Page>> = (0..8).map(|_| Box::new(Page([1; 4096]))).collect();
    assert!(
        pages
            .iter()
            .all(|p| (&**p as *const Page as usize).is_multiple_of(4096) && p.0[4095] == 1)
    );
    drop(pages);

    let after = GLOBAL.stats().unwrap();
    assert!(after.adds_up(), "{after:?}");
    assert_eq!(after.failed_allocs, 0);
    assert_eq!(after.rejected_frees, 0);
    assert!(
        after.live_blocks <= before.live_blocks + 16,
        "leak? {before:?} -> {after:?}"
    );
    // The whole-state check runs under the allocator's lock and allocates nothing.
    let check = GLOBAL.with(|b| b.check()).unwrap();
    assert_eq!(check, Ok(()));
}
