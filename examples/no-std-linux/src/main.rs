//! A `#![no_std]`, `#![no_main]` Linux program whose only allocator is the
//! buddy core, as a kernel or firmware would use it: no libc, no C runtime,
//! its pages from raw `mmap` system calls, asked for by the global
//! allocator's out-of-memory hook whenever the heap is full (it starts with
//! no memory at all). It then drives a second allocator, McKusick-Karels,
//! through the same adapter, checks both, prints what happened and exits 0
//! (any failure: a message and exit status 1).
//!
//! ```text
//! cd examples/no-std-linux && cargo run --release
//! ```
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod sys;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use arena_api::{GlobalArena, OomHandler, Region};
use buddy::Buddy;
use mckusick_karels::McKusickKarels;

/// Pages mapped by the out-of-memory hooks, in bytes, and how many times.
static MAPPED: AtomicUsize = AtomicUsize::new(0);
static MAPS: AtomicUsize = AtomicUsize::new(0);

/// The out-of-memory hook: maps fresh pages, at least twice the request
/// plus room for the allocator's bookkeeping, and at least `next` bytes,
/// which doubles (up to 16 MiB) so that a growing heap needs few regions.
struct Mmap {
    next: usize,
}

impl Mmap {
    const fn new() -> Self {
        Mmap { next: 256 << 10 }
    }
}

// SAFETY: every region is a fresh private anonymous mapping, never unmapped,
// used by nothing else.
unsafe impl OomHandler for Mmap {
    fn handle_oom(&mut self, layout: Layout) -> Option<Region> {
        let want = layout.size().checked_add(layout.align())?.checked_mul(2)?;
        let len = want
            .checked_add(64 << 10)?
            .max(self.next)
            .next_multiple_of(4096);
        self.next = (self.next * 2).min(16 << 20);
        let start = sys::mmap(len)?;
        MAPPED.fetch_add(len, Ordering::Relaxed);
        MAPS.fetch_add(1, Ordering::Relaxed);
        Some(Region { start, len })
    }
}

/// The program's only global allocator: no memory until the first request.
#[global_allocator]
static HEAP: GlobalArena<Buddy, Mmap> = GlobalArena::empty(Mmap::new());

/// A second allocator, driven through `GlobalAlloc` by hand.
static MK: GlobalArena<McKusickKarels, Mmap> = GlobalArena::empty(Mmap::new());

/// The entry point, called by `_start` (sys.rs) with the stack aligned.
#[unsafe(no_mangle)]
extern "C" fn program_main() -> ! {
    match run() {
        Ok(()) => sys::exit(0),
        Err(e) => {
            sys::print(&e);
            sys::print("\n");
            sys::exit(1)
        }
    }
}

fn run() -> Result<(), String> {
    let mut out = String::new();

    // 1. Collections on the buddy heap, which grows by mmap as they do.
    let mut v: Vec<u64> = Vec::new();
    for i in 0..2_000_000u64 {
        v.push(i * 3);
    }
    let sum: u64 = v.iter().sum();
    if sum != 3 * (2_000_000 * 1_999_999 / 2) {
        return Err(alloc::format!("vector sum {sum} is wrong"));
    }
    let mut map = BTreeMap::new();
    for i in 0..20_000u32 {
        map.insert(i.wrapping_mul(2_654_435_761), alloc::format!("value {i}"));
    }
    if map.len() != 20_000 || map.values().filter(|s| s.starts_with("value ")).count() != 20_000 {
        return Err("the map lost entries".into());
    }
    // An over-aligned block, and realloc across the heap's regions.
    let layout = Layout::from_size_align(10_000, 4096).map_err(|e| alloc::format!("{e}"))?;
    // SAFETY: a non-zero-size layout; freed below with the same layout.
    let page = unsafe { alloc::alloc::alloc(layout) };
    if page.is_null() || page.addr() % 4096 != 0 {
        return Err(alloc::format!("aligned block {page:?}"));
    }
    // SAFETY: allocated above with this layout.
    unsafe { alloc::alloc::dealloc(page, layout) };
    let mut s = String::new();
    for i in 0..100_000 {
        let _ = write!(s, "{i},");
    }
    let stats = HEAP.stats().ok_or("no buddy heap")?;
    HEAP.with(|a| a.check_invariants())
        .ok_or("no buddy heap")?
        .map_err(|e| alloc::format!("buddy invariants: {e}"))?;
    let _ = writeln!(
        out,
        "buddy heap: {} KiB in {} mmap'd regions, {} live blocks, {} KiB in use; \
         2,000,000-element Vec, 20,000-entry BTreeMap, {}-byte String: ok",
        stats.arena_bytes >> 10,
        MAPS.load(Ordering::Relaxed),
        stats.live_blocks,
        stats.bytes_reserved >> 10,
        s.len()
    );
    drop((v, map, s));
    let after = HEAP.stats().ok_or("no buddy heap")?;

    // 2. McKusick-Karels through the same adapter, also starting empty.
    let maps_before = MAPS.load(Ordering::Relaxed);
    let mut blocks: Vec<(NonNull<u8>, Layout)> = Vec::new();
    for i in 0..5_000usize {
        let layout = Layout::from_size_align(16 + (i * 37) % 20_000, 16)
            .map_err(|e| alloc::format!("{e}"))?;
        // SAFETY: a non-zero-size layout, freed below with it.
        let p =
            NonNull::new(unsafe { MK.alloc(layout) }).ok_or("McKusick-Karels: out of memory")?;
        // SAFETY: a fresh block of `layout.size()` bytes.
        unsafe { p.as_ptr().write_bytes(i as u8, layout.size()) };
        blocks.push((p, layout));
    }
    for (i, &(p, layout)) in blocks.iter().enumerate() {
        // SAFETY: live blocks of `layout.size()` bytes, written above.
        let last = unsafe { p.as_ptr().add(layout.size() - 1).read() };
        if last != i as u8 {
            return Err(alloc::format!("McKusick-Karels block {i} was overwritten"));
        }
    }
    let mk = MK.stats().ok_or("no McKusick-Karels heap")?;
    for (p, layout) in blocks.drain(..) {
        // SAFETY: allocated above with this layout.
        unsafe { MK.dealloc(p.as_ptr(), layout) };
    }
    MK.with(|a| a.check_invariants())
        .ok_or("no McKusick-Karels heap")?
        .map_err(|e| alloc::format!("McKusick-Karels invariants: {e}"))?;
    let _ = writeln!(
        out,
        "McKusick-Karels: 5,000 blocks of 16 B to 20 KiB in {} KiB ({} mmap'd regions), contents intact, all freed: ok",
        mk.arena_bytes >> 10,
        MAPS.load(Ordering::Relaxed) - maps_before
    );
    let _ = writeln!(
        out,
        "after dropping everything: buddy heap {} live blocks; {} KiB mapped in all, no libc",
        after.live_blocks,
        MAPPED.load(Ordering::Relaxed) >> 10
    );
    sys::print(&out);
    Ok(())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut buf = sys::StackWriter::new();
    let _ = writeln!(buf, "panic: {info}");
    sys::print(buf.as_str());
    sys::exit(101)
}
