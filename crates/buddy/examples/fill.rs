//! Fill until the first failure: how much of an arena the buddy allocator
//! serves, against the ideal power-of-two bound, which is the same buddy
//! algorithm with zero metadata in the arena (its state is placed just
//! before the arena, so its managed range is exactly the arena).
//!
//! Run: `cargo run --release -p buddy --example fill`
//!
//! Columns: requested bytes of the successful allocations / arena (the
//! report's "usage factor"), and block bytes / arena, for ours and for the
//! ideal; `loss` = ideal block bytes - ours, in % of the arena.

use std::alloc::Layout;

use buddy::Buddy;

/// An aligned buffer of `2 * len` bytes; the arena is its upper half.
struct Buf {
    ptr: *mut u8,
    layout: Layout,
}

impl Buf {
    fn new(len: usize) -> Buf {
        let layout = Layout::from_size_align(2 * len, len).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Buf { ptr, layout }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Fixed(usize),
    /// `rand() % 4096 + 1`, as in the original report.
    Random(u64),
}

impl Workload {
    fn name(self) -> String {
        match self {
            Workload::Fixed(n) => format!("{n} B each"),
            Workload::Random(_) => "1..=4096 B random".into(),
        }
    }
}

/// Allocates per `w` until the first failure: (requested, block bytes).
fn fill(heap: &mut Buddy, w: Workload) -> (usize, usize) {
    let mut x = match w {
        Workload::Random(seed) => seed,
        Workload::Fixed(_) => 1,
    };
    let (mut requested, mut reserved) = (0, 0);
    loop {
        let size = match w {
            Workload::Fixed(n) => n,
            Workload::Random(_) => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 4096) as usize + 1
            }
        };
        match heap.alloc(size) {
            Some(p) => {
                requested += size;
                reserved += heap.usable_size(p).unwrap();
            }
            None => return (requested, reserved),
        }
    }
}

fn main() {
    let workloads = [
        Workload::Fixed(16),
        Workload::Fixed(64),
        Workload::Fixed(100),
        Workload::Fixed(1000),
        Workload::Fixed(4096),
        Workload::Random(0x9E37_79B9_7F4A_7C15),
    ];
    println!(
        "{:>9} {:>18} | {:>8} {:>8} | {:>8} {:>8} | {:>6} | metadata",
        "arena", "workload", "req%", "ideal", "blocks%", "ideal", "loss%"
    );
    for len in [64usize << 10, 1 << 20, 64 << 20] {
        let buf = Buf::new(len);
        // SAFETY: the upper half of the buffer.
        let arena = unsafe { buf.ptr.add(len) };
        // The smallest prefix that holds the ideal allocator's state before
        // the arena, so that its managed range is exactly the arena.
        let prefix = (0..len)
            .step_by(16)
            .find(|&x| {
                buddy::layout::compute(
                    arena as usize - x,
                    len + x,
                    size_of::<Buddy>(),
                    align_of::<Buddy>(),
                )
                .is_some_and(|l| l.start_g << 4 == arena as usize)
            })
            .expect("a prefix for the ideal allocator");
        for w in workloads {
            // SAFETY: the arena is ours, used by nothing else meanwhile.
            let ours = unsafe { &mut *Buddy::create(arena, len).unwrap().as_ptr() };
            let metadata = ours.stats().metadata_bytes;
            let (req, blocks) = fill(ours, w);
            // SAFETY: the buffer holds [arena - prefix, arena + len); the
            // previous allocator is not used any more.
            let ideal = unsafe {
                &mut *Buddy::create(arena.sub(prefix), len + prefix)
                    .unwrap()
                    .as_ptr()
            };
            assert_eq!(ideal.managed_range(), (arena as usize, len));
            let (ideal_req, ideal_blocks) = fill(ideal, w);
            let pct = |x: usize| 100.0 * x as f64 / len as f64;
            println!(
                "{:>9} {:>18} | {:>7.3}% {:>7.3}% | {:>7.3}% {:>7.3}% | {:>6.3} | {} B ({:.3}%)",
                len,
                w.name(),
                pct(req),
                pct(ideal_req),
                pct(blocks),
                pct(ideal_blocks),
                pct(ideal_blocks) - pct(blocks),
                metadata,
                pct(metadata),
            );
        }
    }
}
