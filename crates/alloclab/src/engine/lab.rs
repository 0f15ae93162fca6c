//! The brief's workload, as its author ran it but measured properly.
//!
//! `count` allocations of uniform random size `1..=max_size` bytes (sizes
//! generated before timing, from a fixed seed) are made on a fresh allocator
//! over a pre-faulted arena and timed as one batch; then every successful
//! block is freed in the order it was allocated, timed as one batch. Usage
//! factor = requested bytes of the successful allocations / arena size.
//!
//! Unlike the original, the run is repeated (on a fresh allocator each time,
//! the same arena) and the median and range are reported; the first run is
//! checked (every block inside the arena, aligned, not overlapping) and every
//! later run must reproduce its successes exactly.
//!
//! The sizes come from SplitMix64, which `examples/c/main.c` implements too,
//! so the C program and the runner make the very same requests.

use std::ffi::c_void;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::allocators::subject::Subject;
use crate::arena::Arena;
use crate::output::outln;
use crate::postmortem::{self, Stage};

/// The largest `--count`: the runner keeps three words per request (its
/// size, its block, the successful blocks), 2.4 GB at this count.
pub const MAX_COUNT: usize = 100_000_000;

/// The largest `--repeat`.
pub const MAX_REPEAT: usize = 10_000;

/// The brief's parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BriefConfig {
    /// Arena bytes.
    pub arena_size: usize,
    /// Allocation requests.
    pub count: usize,
    /// Largest request; sizes are uniform in `1..=max_size`.
    pub max_size: usize,
    /// Seed of the size sequence.
    pub seed: u64,
    /// Timed runs.
    pub repeat: usize,
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, and the same in C.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The request sizes: `count` values uniform in `1..=max_size` (modulo bias
/// below 2^-50 for any `max_size` up to 2^14, as in the brief's `rand() %`).
pub fn sizes(count: usize, max_size: usize, seed: u64) -> Vec<usize> {
    size_sequence(max_size, seed).take(count).collect()
}

/// The endless sequence that [`sizes`] takes its first `count` from.
fn size_sequence(max_size: usize, seed: u64) -> impl Iterator<Item = usize> {
    let mut rng = SplitMix64(seed);
    std::iter::repeat_with(move || 1 + (rng.next_u64() % max_size as u64) as usize)
}

/// An empty vector with room for `n` items, or an error when the memory
/// cannot be had (instead of the allocation failure that aborts the process).
fn reserved<T>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        anyhow::anyhow!(
            "not enough memory for a table of {n} requests ({} MiB)",
            n.saturating_mul(size_of::<T>()) >> 20
        )
    })?;
    Ok(v)
}

/// The figures of one timed run.
#[derive(Clone, Copy, Debug)]
struct Run {
    alloc: Duration,
    free: Duration,
    successes: usize,
    requested: usize,
}

impl BriefConfig {
    /// Refuses parameters the run cannot honour, naming the option.
    pub fn check(&self) -> Result<()> {
        if !(1..=MAX_COUNT).contains(&self.count) {
            bail!("--count must be 1 to {MAX_COUNT}, not {}", self.count);
        }
        if self.max_size == 0 {
            bail!("--max-size must be at least 1 byte");
        }
        if !(1..=MAX_REPEAT).contains(&self.repeat) {
            bail!("--repeat must be 1 to {MAX_REPEAT}, not {}", self.repeat);
        }
        crate::arena::check_size(self.arena_size).map_err(|e| anyhow::anyhow!("--arena-size: {e}"))
    }
}

/// The brief's figures over all runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BriefResult {
    /// Successful allocations (the same in every run).
    pub successes: usize,
    /// Refused requests.
    pub refused: usize,
    /// Requested bytes of the successful allocations.
    pub requested: usize,
    /// Alloc-batch times, sorted.
    pub alloc: Vec<Duration>,
    /// Free-batch times, sorted.
    pub free: Vec<Duration>,
    /// requested / arena size.
    pub usage_factor: f64,
    /// Bytes the allocator held for the successful blocks, if it reports it.
    pub reserved: Option<usize>,
    /// Bytes the allocator keeps for itself, if it reports it.
    pub metadata: Option<usize>,
}

/// Runs the brief's workload on `subject`.
pub fn run(subject: &Subject, cfg: &BriefConfig) -> Result<BriefResult> {
    cfg.check()?;
    let arena = Arena::map(cfg.arena_size)?;
    let mut sizes = reserved(cfg.count)?;
    sizes.extend(size_sequence(cfg.max_size, cfg.seed).take(cfg.count));
    let mut ptrs: Vec<*mut c_void> = reserved(cfg.count)?;
    ptrs.resize(cfg.count, std::ptr::null_mut());
    let mut live: Vec<*mut c_void> = reserved(cfg.count)?;
    let mut runs = Vec::with_capacity(cfg.repeat);
    let mut reserved = None;
    let mut metadata = None;
    // One untimed warm-up run (code and tables into the caches), then the timed ones.
    for rep in 0..=cfg.repeat {
        // SAFETY: the arena is mapped, pre-faulted, and used by nothing else
        // until `destroy` below.
        let a = unsafe { subject.create(arena.as_ptr(), arena.len()) };
        if a.is_null() {
            bail!(
                "{} refused an arena of {} bytes",
                subject.name,
                cfg.arena_size
            );
        }
        let api = black_box(subject.api);
        postmortem::stage(Stage::Allocs);
        let t0 = Instant::now();
        for (slot, &size) in ptrs.iter_mut().zip(&sizes) {
            // SAFETY: `a` is live.
            *slot = unsafe { (api.alloc)(a, size) };
        }
        let t1 = Instant::now();
        postmortem::stage(Stage::Idle);
        live.clear();
        let mut requested = 0usize;
        for (&p, &size) in ptrs.iter().zip(&sizes) {
            if !p.is_null() {
                live.push(p);
                requested = requested.saturating_add(size);
            }
        }
        if rep == 0 {
            check_blocks(subject, &arena, &ptrs, &sizes)?;
            // SAFETY: `a` is live.
            let stats = unsafe { subject.stats(a, arena.len()) }
                .map_err(|e| anyhow::anyhow!("{}: {e}", subject.name))?;
            if let Some(s) = stats {
                reserved = Some(s.bytes_reserved);
                metadata = Some(s.metadata_bytes);
            }
        }
        postmortem::stage(Stage::Frees);
        let t2 = Instant::now();
        for &p in &live {
            // SAFETY: `p` is a live block of `a`, freed once.
            unsafe { (api.free)(a, p) };
        }
        let t3 = Instant::now();
        postmortem::stage(Stage::Idle);
        // SAFETY: `a` is live and not used after this.
        unsafe { subject.destroy(a) };
        if let Some(at) = arena.changed_beyond(arena.len()) {
            bail!(
                "{} wrote outside its arena: byte {at} after its end changed",
                subject.name
            );
        }
        runs.push(Run {
            alloc: t1 - t0,
            free: t3 - t2,
            successes: live.len(),
            requested,
        });
    }
    result_of(subject, cfg, &runs, (reserved, metadata))
}

/// The figures of the runs (the first the untimed warm-up), which must all
/// have made the same allocations; `held` is the first run's (reserved,
/// metadata) bytes, if the allocator reports them.
fn result_of(
    subject: &Subject,
    cfg: &BriefConfig,
    runs: &[Run],
    (reserved, metadata): (Option<usize>, Option<usize>),
) -> Result<BriefResult> {
    let first = runs[0];
    if let Some(r) = runs
        .iter()
        .find(|r| r.successes != first.successes || r.requested != first.requested)
    {
        bail!(
            "{} is not deterministic: one run made {} allocations ({} bytes), another {} ({} bytes)",
            subject.name,
            first.successes,
            first.requested,
            r.successes,
            r.requested
        );
    }
    let timed = &runs[1..];
    let mut alloc: Vec<Duration> = timed.iter().map(|r| r.alloc).collect();
    let mut free: Vec<Duration> = timed.iter().map(|r| r.free).collect();
    alloc.sort();
    free.sort();
    Ok(BriefResult {
        successes: first.successes,
        refused: cfg.count - first.successes,
        requested: first.requested,
        alloc,
        free,
        usage_factor: first.requested as f64 / cfg.arena_size as f64,
        reserved,
        metadata,
    })
}

/// Every block inside the arena (for an arena allocator), 16-byte aligned,
/// and no two overlapping.
fn check_blocks(
    subject: &Subject,
    arena: &Arena,
    ptrs: &[*mut c_void],
    sizes: &[usize],
) -> Result<()> {
    let in_arena = subject.blocks_in_arena;
    let (lo, hi) = arena.bounds();
    let mut blocks: Vec<(usize, usize)> = ptrs
        .iter()
        .zip(sizes)
        .filter(|(p, _)| !p.is_null())
        .map(|(&p, &s)| (p as usize, s))
        .collect();
    blocks.sort_unstable();
    for (i, &(addr, size)) in blocks.iter().enumerate() {
        if addr % 16 != 0 {
            bail!(
                "{} returned a block at {addr:#x}, not 16-byte aligned",
                subject.name
            );
        }
        if in_arena && (addr < lo || addr + size > hi) {
            bail!(
                "{} returned a block [{addr:#x}, +{size}) outside its arena",
                subject.name
            );
        }
        if let Some(&(next, _)) = blocks.get(i + 1)
            && addr + size > next
        {
            if next == addr {
                bail!(
                    "{} returned the block at {addr:#x} twice while it was live",
                    subject.name
                );
            }
            bail!(
                "{} returned overlapping blocks at {addr:#x} and {next:#x}",
                subject.name
            );
        }
    }
    Ok(())
}

/// The middle value of sorted `d`.
pub fn median(d: &[Duration]) -> Duration {
    d[d.len() / 2]
}

/// What `Instant::now()` costs here (the smallest of many back-to-back
/// readings): the resolution floor of every batch time.
pub fn timer_cost() -> Duration {
    (0..1000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            b - a
        })
        .min()
        .unwrap_or_default()
}

/// The allocator as the report names it.
pub struct Shown {
    /// Its name.
    pub name: String,
    /// Where it came from (a path, or "built into alloclab").
    pub origin: String,
    /// Its blocks lie in the arena (not for the fallback).
    pub blocks_in_arena: bool,
}

/// The report, as the brief's table plus how it was measured.
pub fn print(subject: &Shown, cfg: &BriefConfig, r: &BriefResult) {
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let per = |d: Duration, n: usize| d.as_nanos() as f64 / n.max(1) as f64;
    let (alloc_med, free_med) = (median(&r.alloc), median(&r.free));
    outln!("allocator       {} ({})", subject.name, subject.origin);
    outln!(
        "workload        {} allocations of 1..={} bytes (uniform, seed {}), then every successful block freed in order",
        cfg.count,
        cfg.max_size,
        cfg.seed
    );
    outln!(
        "arena           {} bytes ({:.2} MiB), one mmap, pre-faulted",
        cfg.arena_size,
        mib(cfg.arena_size)
    );
    outln!(
        "allocated       {} blocks, {} bytes requested ({} requests refused)",
        r.successes,
        r.requested,
        r.refused
    );
    match (r.reserved, subject.blocks_in_arena) {
        (Some(reserved), true) => outln!(
            "held            {reserved} bytes for those blocks ({:.4} of the arena){}",
            reserved as f64 / cfg.arena_size as f64,
            r.metadata
                .map(|m| format!(", plus {m} bytes of allocator metadata"))
                .unwrap_or_default()
        ),
        (Some(mapped), false) => outln!(
            "held            {mapped} bytes mapped for those blocks (requested / mapped = {:.4}), outside the arena",
            r.requested as f64 / mapped as f64
        ),
        (None, _) => {}
    }
    outln!(
        "alloc time      {:.6} s for all {} calls ({:.1} ns per call); range {:.6} .. {:.6} s",
        alloc_med.as_secs_f64(),
        cfg.count,
        per(alloc_med, cfg.count),
        r.alloc[0].as_secs_f64(),
        r.alloc[r.alloc.len() - 1].as_secs_f64()
    );
    outln!(
        "free time       {:.6} s for {} frees ({:.1} ns per free); range {:.6} .. {:.6} s",
        free_med.as_secs_f64(),
        r.successes,
        per(free_med, r.successes),
        r.free[0].as_secs_f64(),
        r.free[r.free.len() - 1].as_secs_f64()
    );
    if subject.blocks_in_arena {
        outln!(
            "usage factor    {:.6} (requested bytes of the successful allocations / arena size)",
            r.usage_factor
        );
    } else {
        outln!(
            "usage factor    n/a (the fallback maps every block apart; the arena holds only its table)"
        );
    }
    outln!(
        "how measured    median of {} timed runs after one warm-up, each on a fresh allocator over the same \
         pre-faulted arena; sizes generated before timing; clock: Instant (CLOCK_MONOTONIC via vDSO, \
         {} ns per reading); the first run checked (blocks aligned, inside the arena, not overlapping) and \
         reproduced by every run.{}",
        cfg.repeat,
        timer_cost().as_nanos(),
        if r.refused > r.successes {
            format!(
                " {} of the {} alloc calls are refusals (the arena is full): the alloc time mostly \
                 measures how fast the allocator says no; `alloclab compare` times the two apart.",
                r.refused, cfg.count
            )
        } else {
            String::new()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brief_workload_runs_on_every_peer() {
        let cfg = BriefConfig {
            arena_size: 1 << 20,
            count: 2000,
            max_size: 4096,
            seed: 42,
            repeat: 2,
        };
        for peer in crate::allocators::peers::all() {
            let r = run(&crate::allocators::peer_subject(&peer), &cfg)
                .unwrap_or_else(|e| panic!("{}: {e:#}", peer.name));
            assert!(r.successes > 0, "{}", peer.name);
            eprintln!(
                "{:24} {:5} of {} blocks, usage factor {:.3}",
                peer.name, r.successes, cfg.count, r.usage_factor
            );
        }
    }
}
