//! Instructions, data reads and writes, and cache misses per `alloc` and per
//! `free`, for this buddy allocator and for `buddy-alloc` 0.6 on the same
//! workload: run it under cachegrind, which counts them exactly.
//!
//! ```text
//! cargo build --release -p buddy --example cost_per_call
//! valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=cg.out \
//!     target/release/examples/cost_per_call buddy small
//! cg_annotate --show=Ir,Dr,Dw,D1mr,D1mw cg.out | grep -E 'call_(alloc|free)'
//! ```
//!
//! Divide the counts of `call_alloc` and `call_free` by the calls the
//! program prints. Arguments: `buddy` or `buddy-alloc`, then `small` (20
//! rounds of 10,000 allocations of 16..=128 bytes in 4 MiB, each round freed
//! in random order: `compare`'s `small-aged`) or `churn` (half of 16 MiB
//! filled with 16..=4096 bytes, then 250,000 random allocations and frees:
//! `churn-aged`). Both allocators are called directly, never inlined into
//! the loop (`#[inline(never)]` wrappers named `call_*`), so the counts are
//! those of one call.
//!
//! `ARENA_MIB=64` (in the environment) sets the arena's size in MiB, here
//! that of `vs_peers`' churn; add `--D1=49152,12,64 --LL=524288,8,64` to
//! cachegrind to count the misses of a 48 KiB L1 and a 512 KiB second level.

use std::ptr::{NonNull, null_mut};

use buddy_alloc::buddy_alloc::{BuddyAlloc, BuddyAllocParam};

/// xorshift64*: the same inputs for both allocators.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One allocator under measurement.
enum Subject<'a> {
    Buddy(&'a mut buddy::Buddy),
    BuddyAlloc(BuddyAlloc),
}

#[inline(never)]
fn call_alloc(s: &mut Subject<'_>, size: usize) -> *mut u8 {
    match s {
        Subject::Buddy(h) => h.alloc(size).map_or(null_mut(), NonNull::as_ptr),
        Subject::BuddyAlloc(h) => h.malloc(size),
    }
}

#[inline(never)]
fn call_free(s: &mut Subject<'_>, p: *mut u8) {
    match s {
        Subject::Buddy(h) => {
            if let Some(p) = NonNull::new(p) {
                let _ = h.free(p);
            }
        }
        Subject::BuddyAlloc(h) => h.free(p),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(which), Some(workload)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: cost_per_call buddy|buddy-alloc small|churn");
        std::process::exit(2);
    };
    let churn = match workload.as_str() {
        "small" => false,
        "churn" => true,
        _ => {
            eprintln!("workload: small or churn");
            std::process::exit(2);
        }
    };
    // ARENA_MIB overrides the arena's size (the bench's churn uses 64).
    let mib = match std::env::var("ARENA_MIB") {
        Err(_) => {
            if churn {
                16
            } else {
                4
            }
        }
        Ok(m) => match m.parse::<usize>() {
            Ok(n @ 1..=4096) => n,
            _ => {
                eprintln!("ARENA_MIB: a size in MiB, 1 to 4096 (got {m:?})");
                std::process::exit(2);
            }
        },
    };
    let mut memory = vec![0u8; mib << 20];
    let len = memory.len();
    let base = memory.as_mut_ptr();
    let mut s = match which.as_str() {
        "buddy" => Subject::Buddy(buddy::Buddy::new_in(&mut memory).expect("room")),
        "buddy-alloc" => {
            let param = BuddyAllocParam::new(base, len, 16);
            // SAFETY: the vector is valid for `len` bytes, used only by this
            // allocator, and outlives it.
            Subject::BuddyAlloc(unsafe { BuddyAlloc::new(param) })
        }
        _ => {
            eprintln!("allocator: buddy or buddy-alloc");
            std::process::exit(2);
        }
    };
    let mut rng = Rng(42);
    let (mut allocs, mut frees) = (0usize, 0usize);
    if churn {
        let mut live = Vec::new();
        let mut held = 0;
        while held < len / 2 {
            let size = 16 + rng.below(4081);
            let p = call_alloc(&mut s, size);
            allocs += 1;
            if p.is_null() {
                break;
            }
            live.push(p);
            held += size.next_power_of_two();
        }
        for _ in 0..250_000 {
            if rng.next() & 1 == 0 && !live.is_empty() {
                let i = rng.below(live.len());
                call_free(&mut s, live.swap_remove(i));
                frees += 1;
            } else {
                let p = call_alloc(&mut s, 16 + rng.below(4081));
                allocs += 1;
                if !p.is_null() {
                    live.push(p);
                }
            }
        }
    } else {
        let mut live = Vec::with_capacity(10_000);
        for _ in 0..20 {
            for _ in 0..10_000 {
                live.push(call_alloc(&mut s, 16 + rng.below(113)));
            }
            allocs += 10_000;
            for i in (1..live.len()).rev() {
                let j = rng.below(i + 1);
                live.swap(i, j);
            }
            for p in live.drain(..) {
                call_free(&mut s, p);
            }
            frees += 10_000;
        }
    }
    println!("{which} {workload}: {allocs} calls to call_alloc, {frees} to call_free");
}
