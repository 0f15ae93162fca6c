//! With page return, freeing everything gives every page back: the whole
//! arena can be taken again as one page run. Without it (4.4BSD), bucket
//! pages stay in their buckets.

use core::ptr::NonNull;

use mckusick_karels::{Config, Heap};

/// A small deterministic generator (no dependency).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Fills the heap with blocks of random sizes (1 B .. 5 pages) until a
/// request fails, frees a random half, refills, then frees everything in a
/// shuffled order. Returns how many blocks were allocated in all.
fn churn(heap: &mut Heap<'_>, seed: u64) -> usize {
    let mut rng = XorShift(seed);
    let mut live: Vec<NonNull<u8>> = Vec::new();
    let mut total = 0;
    for round in 0..2 {
        loop {
            let size = match rng.next() % 8 {
                0..=4 => 1 + rng.next() as usize % 256,
                5 | 6 => 1 + rng.next() as usize % 4096,
                _ => 1 + rng.next() as usize % (5 * 4096),
            };
            match heap.malloc(size) {
                Some(p) => {
                    live.push(p);
                    total += 1;
                }
                None => break,
            }
        }
        if round == 0 {
            for _ in 0..live.len() / 2 {
                let i = rng.next() as usize % live.len();
                heap.free(live.swap_remove(i)).unwrap();
            }
        }
        heap.check_invariants().unwrap();
    }
    while !live.is_empty() {
        let i = rng.next() as usize % live.len();
        heap.free(live.swap_remove(i)).unwrap();
    }
    total
}

#[test]
fn after_freeing_everything_the_whole_arena_is_one_page_run_again() {
    let size = if cfg!(miri) { 40 << 10 } else { 1 << 20 };
    for seed in 1..=if cfg!(miri) { 1 } else { 8 } {
        let mut mem = vec![0u8; size + seed as usize * 16 + 1];
        let mut heap = Heap::new(&mut mem[seed as usize * 16..], Config::RETURN_PAGES).unwrap();
        let whole = heap.npages() * heap.page_size();
        let initial = heap.stats();
        assert_eq!(initial.largest_free_block, whole);
        let n = churn(&mut heap, seed);
        assert!(n > 10, "{n}");
        let s = heap.stats();
        assert_eq!(s.live_blocks, 0);
        assert_eq!(s.bytes_free, whole);
        assert_eq!(s.metadata_bytes, initial.metadata_bytes);
        assert_eq!(s.largest_free_block, whole);
        let all = heap.malloc(whole).expect("the whole arena as one run");
        assert_eq!(heap.usable_size(all), Some(whole));
        assert!(heap.malloc(1).is_none());
        heap.free(all).unwrap();
        heap.check_invariants().unwrap();
    }
}

#[test]
fn the_faithful_mode_keeps_bucket_pages() {
    let size = if cfg!(miri) { 40 << 10 } else { 1 << 20 };
    let mut mem = vec![0u8; size];
    let mut heap = Heap::new(&mut mem, Config::FAITHFUL).unwrap();
    let whole = heap.npages() * heap.page_size();
    churn(&mut heap, 3);
    let s = heap.stats();
    assert_eq!(s.live_blocks, 0);
    // Every byte not in metadata is free, but bucket pages stay cut up.
    assert_eq!(s.bytes_free + s.metadata_bytes, s.arena_bytes);
    assert!(s.largest_free_block < whole);
    assert!(heap.malloc(whole).is_none());
    heap.check_invariants().unwrap();
}

/// The default mode keeps empty bucket runs; `release_cached` (what the
/// malloc shim calls when it trims) gives them all back, after which every
/// page but the metadata is one free run that `discardable` reports; with
/// nothing freed since, a second call finds nothing and walks nothing.
#[test]
fn the_default_mode_gives_its_empty_runs_back_when_asked() {
    let size = if cfg!(miri) { 40 << 10 } else { 1 << 20 };
    for seed in 1..=if cfg!(miri) { 1 } else { 4 } {
        let mut mem = vec![0u8; size];
        let mut heap = Heap::new(&mut mem, Config::default()).unwrap();
        let page = heap.page_size();
        let whole = heap.npages() * page;
        // Small blocks only: every bucket page is cut up.
        let mut rng = XorShift(seed);
        let mut live = Vec::new();
        while let Some(p) = heap.malloc(1 + rng.next() as usize % 512) {
            live.push(p);
        }
        for p in live.drain(..) {
            heap.free(p).unwrap();
        }
        heap.check_invariants().unwrap();
        let mut before = 0;
        heap.discardable(page, page, &mut |_, len| before += len);
        assert!(
            before < whole / 2,
            "bucket pages are kept: {before} of {whole}"
        );
        let released = heap.release_cached();
        assert!(released > whole / 2, "{released} of {whole}");
        heap.check_invariants().unwrap();
        let mut after = 0;
        heap.discardable(page, page, &mut |_, len| after += len);
        assert_eq!(after, whole);
        assert_eq!(heap.release_cached(), 0);
        assert_eq!(heap.stats().largest_free_block, whole);
        let all = heap.malloc(whole).expect("the whole arena as one run");
        heap.free(all).unwrap();
    }
}

/// The other modes keep nothing aside to release: eager return leaves no
/// empty run, the faithful mode never returns one.
#[test]
fn release_cached_does_nothing_in_the_other_modes() {
    for config in [Config::RETURN_PAGES, Config::FAITHFUL] {
        let mut mem = vec![0u8; 256 << 10];
        let mut heap = Heap::new(&mut mem, config).unwrap();
        let live: Vec<_> = (0..1000).map_while(|_| heap.malloc(48)).collect();
        for p in live {
            heap.free(p).unwrap();
        }
        assert_eq!(heap.release_cached(), 0);
        heap.check_invariants().unwrap();
    }
}

/// The default mode gives its empty runs back while the footprint grows
/// (at the request for pages after one that took never-used pages): fill
/// bucket pages, empty them, then take runs of fresh pages of every kind
/// (buckets of other sizes, large blocks) with contents checked and every
/// invariant walked after each call; the empty runs end up reused instead
/// of more fresh pages.
#[test]
fn empty_runs_go_back_while_the_footprint_grows() {
    let size = if cfg!(miri) { 64 << 10 } else { 1 << 20 };
    let mut mem = vec![0u8; size];
    let mut heap = Heap::new(&mut mem, Config::default()).unwrap();
    let page = heap.page_size();
    let small: Vec<_> = (0..(size / 4 / 32))
        .map_while(|_| heap.malloc(32))
        .collect();
    for p in small {
        heap.free(p).unwrap();
    }
    heap.check_invariants().unwrap();
    let mut rng = XorShift(7);
    let mut live: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
    for i in 0..200u32 {
        let n = match rng.next() % 3 {
            0 => 64 + rng.next() as usize % 1024,
            1 => 2 * page + rng.next() as usize % (3 * page),
            _ => 4096 + rng.next() as usize % 4096,
        };
        let Some(p) = heap.malloc(n) else { break };
        let tag = i as u8;
        // SAFETY: a fresh block of `n` bytes.
        unsafe { p.as_ptr().write_bytes(tag, n) };
        live.push((p, n, tag));
        heap.check_invariants().unwrap();
        for &(q, m, t) in &live {
            // SAFETY: live blocks of `m` bytes.
            let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr(), m) };
            assert!(
                bytes.iter().all(|&b| b == t),
                "block {t} of {m} B overwritten"
            );
        }
    }
    // 1 MiB holds more than 20 such blocks once the emptied runs are
    // reused (Miri's 64 KiB arena, 16 pages: 8).
    let enough = if cfg!(miri) { 5 } else { 20 };
    assert!(
        live.len() > enough,
        "{} blocks before the first refusal",
        live.len()
    );
    for (p, _, _) in live {
        heap.free(p).unwrap();
    }
    heap.check_invariants().unwrap();
    heap.release_cached();
    assert_eq!(heap.stats().largest_free_block, heap.npages() * page);
}
