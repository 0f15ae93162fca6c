//! Fill-until-failure usage of the McKusick-Karels allocator against the
//! ideal power-of-two allocator with zero metadata.
//!
//! Run: `cargo run --release -p mckusick-karels --example usage`
//!
//! For each workload (a size distribution) and arena size, the same random
//! sequence of requests is given to:
//! - **mk**: this allocator (faithful mode and RETURN_PAGES);
//! - **ideal**: an allocator that charges each request `max(16, 2^ceil(log2
//!   size))` bytes (pages for sizes above MAXALLOCSAVE, like mk), has the
//!   whole arena to give and no metadata or fragmentation at all.
//!
//! Phase 1 allocates until the first failure; usage = bytes requested by the
//! successful allocations / arena bytes. Phase 2 then frees a random half of
//! the blocks and allocates again (same generator) until the first failure,
//! measuring what memory freed in one size class is worth to the next
//! requests (the ideal has no fragmentation: it takes everything back).

use std::ptr::NonNull;

use mckusick_karels::{Config, Heap};

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

type Workload = (&'static str, fn(&mut XorShift) -> usize);

const WORKLOADS: [Workload; 3] = [
    ("1..=4096 (the lab's rand()%4096+1)", |r| {
        1 + (r.next() % 4096) as usize
    }),
    ("16..=256", |r| 16 + (r.next() % 241) as usize),
    ("1..=64Ki, log-uniform", |r| {
        let k = r.next() % 16;
        1 + (r.next() % (2u64 << k)) as usize
    }),
];

fn ideal_cost(size: usize) -> usize {
    if size <= 8192 {
        size.max(16).next_power_of_two()
    } else {
        size.next_multiple_of(4096)
    }
}

/// (requested bytes after phase 1, after phase 2) for the ideal allocator.
fn ideal(arena: usize, draw: fn(&mut XorShift) -> usize, seed: u64) -> (usize, usize) {
    let mut rng = XorShift(seed);
    let mut used = 0;
    let mut live: Vec<usize> = Vec::new();
    loop {
        let s = draw(&mut rng);
        if used + ideal_cost(s) > arena {
            break;
        }
        used += ideal_cost(s);
        live.push(s);
    }
    let phase1: usize = live.iter().sum();
    let mut pick = XorShift(seed ^ 0xABCD);
    for _ in 0..live.len() / 2 {
        let i = (pick.next() % live.len() as u64) as usize;
        used -= ideal_cost(live.swap_remove(i));
    }
    loop {
        let s = draw(&mut rng);
        if used + ideal_cost(s) > arena {
            break;
        }
        used += ideal_cost(s);
        live.push(s);
    }
    (phase1, live.iter().sum())
}

/// (requested bytes after phase 1, after phase 2, metadata bytes) for mk.
fn mk(
    arena: usize,
    draw: fn(&mut XorShift) -> usize,
    seed: u64,
    config: Config,
) -> (usize, usize, usize) {
    let mut mem = vec![0u8; arena];
    let mut heap = Heap::new(&mut mem, config).unwrap();
    let mut rng = XorShift(seed);
    let mut live: Vec<(NonNull<u8>, usize)> = Vec::new();
    let fill = |heap: &mut Heap<'_>, rng: &mut XorShift, live: &mut Vec<(NonNull<u8>, usize)>| loop {
        let s = draw(rng);
        match heap.malloc(s) {
            Some(p) => live.push((p, s)),
            None => break,
        }
    };
    fill(&mut heap, &mut rng, &mut live);
    let phase1: usize = live.iter().map(|l| l.1).sum();
    let mut pick = XorShift(seed ^ 0xABCD);
    for _ in 0..live.len() / 2 {
        let i = (pick.next() % live.len() as u64) as usize;
        heap.free(live.swap_remove(i).0).unwrap();
    }
    fill(&mut heap, &mut rng, &mut live);
    heap.check_invariants().unwrap();
    let meta = heap.stats().metadata_bytes;
    (phase1, live.iter().map(|l| l.1).sum(), meta)
}

fn main() {
    println!(
        "{:<36} {:>8} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>7} | {:>6}",
        "workload", "arena", "ideal1", "mk1", "mk1/id", "ideal2", "mk2", "mk2-rp", "rp/id", "meta"
    );
    for (name, draw) in WORKLOADS {
        for arena in [1usize << 20, 16 << 20, 64 << 20] {
            let seeds = 1..=5u64;
            let n = seeds.clone().count() as f64;
            let (mut i1, mut i2, mut m1, mut m2, mut r2, mut meta) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            for seed in seeds {
                let (a, b) = ideal(arena, draw, seed);
                let (c, d, e) = mk(arena, draw, seed, Config::FAITHFUL);
                let (_, f, _) = mk(arena, draw, seed, Config::RETURN_PAGES);
                let x = arena as f64 * n;
                i1 += a as f64 / x;
                i2 += b as f64 / x;
                m1 += c as f64 / x;
                m2 += d as f64 / x;
                r2 += f as f64 / x;
                meta += e as f64 / x;
            }
            println!(
                "{:<36} {:>7}K | {:>7.4} {:>7.4} {:>7.4} | {:>7.4} {:>7.4} {:>7.4} {:>7.4} | {:>5.2}%",
                name,
                arena >> 10,
                i1,
                m1,
                m1 / i1,
                i2,
                m2,
                r2,
                r2 / i2,
                meta * 100.0
            );
        }
    }
    println!(
        "\nusage = requested bytes of live blocks / arena, mean of 5 seeds; 1 = until the first \
         failure, 2 = after freeing a random half and refilling; mk = faithful, rp = RETURN_PAGES; \
         meta = metadata share of the arena at the end (faithful)."
    );
}
