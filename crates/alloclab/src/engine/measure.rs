//! The measurement core's machine-facing parts: pinning, clocks (and their
//! own cost), scrubbing caches and the branch predictor between repetitions,
//! kernel counters.

use std::time::{Duration, Instant};

/// Pins the calling thread to the last online CPU (the first is where the
/// kernel and most other tasks tend to run). Returns the CPU, or `None` if
/// the system does not allow it.
pub fn pin_to_last_cpu() -> Option<usize> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = cpus.checked_sub(1)?;
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .ok()
        .map(|()| cpu)
}

/// The cost of one `Instant::now()` (ns): the smallest gap between two
/// back-to-back readings, over many.
pub fn instant_cost_ns() -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..10_000 {
        let a = Instant::now();
        let b = Instant::now();
        best = best.min(b - a);
    }
    best.as_nanos() as f64
}

/// A cycle counter read, ordered against the code around it: `lfence; rdtsc`
/// before an operation, `rdtscp; lfence` after it.
#[cfg(target_arch = "x86_64")]
pub mod tsc {
    use core::arch::x86_64::{__rdtscp, _mm_lfence, _rdtsc};

    /// Reading before the measured code.
    #[inline(always)]
    pub fn start() -> u64 {
        // SAFETY: lfence and rdtsc exist on every x86_64 CPU.
        unsafe {
            _mm_lfence();
            _rdtsc()
        }
    }

    /// Reading after the measured code.
    #[inline(always)]
    pub fn stop() -> u64 {
        let mut aux = 0;
        // SAFETY: rdtscp exists on every x86_64 CPU this runs on (checked
        // by `available`); lfence keeps later code from starting early.
        unsafe {
            let t = __rdtscp(&mut aux);
            _mm_lfence();
            t
        }
    }

    /// The CPU has an invariant TSC with rdtscp (a constant-rate counter).
    pub fn available() -> bool {
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.contains(" rdtscp") && c.contains(" constant_tsc"))
            .unwrap_or(false)
    }
}

/// Cycle-counter frequency in Hz, calibrated against `Instant` over 50 ms.
#[cfg(target_arch = "x86_64")]
pub fn tsc_hz() -> Option<f64> {
    if !tsc::available() {
        return None;
    }
    let (t0, c0) = (Instant::now(), tsc::start());
    while t0.elapsed() < Duration::from_millis(50) {
        std::hint::spin_loop();
    }
    let (c1, t1) = (tsc::stop(), Instant::now());
    Some((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
}

/// No cycle counter here.
#[cfg(not(target_arch = "x86_64"))]
pub fn tsc_hz() -> Option<f64> {
    None
}

/// The median cost (cycles) of a start/stop pair around nothing.
#[cfg(target_arch = "x86_64")]
pub fn tsc_overhead_cycles() -> f64 {
    let mut v: Vec<u64> = (0..10_001)
        .map(|_| {
            let a = tsc::start();
            let b = tsc::stop();
            b - a
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// Evicts `[ptr, ptr + len)` from every cache level (clflush of each line).
pub fn flush_range(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_clflush, _mm_mfence};
        let start = (ptr as usize) & !63;
        let end = ptr as usize + len;
        let mut line = start;
        while line < end {
            // SAFETY: clflush of an address inside a live mapping (the caller
            // passes ranges it owns) only evicts the line.
            unsafe { _mm_clflush(ptr.wrapping_add(line.wrapping_sub(ptr as usize))) };
            line += 64;
        }
        // SAFETY: a fence has no memory-safety preconditions.
        unsafe { _mm_mfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ptr, len);
    }
}

/// Runs a few hundred thousand data-dependent branches, so the branch
/// predictor forgets the previous repetition's identical request sequence.
#[inline(never)]
pub fn scramble_branch_predictor(seed: u64) -> u64 {
    let mut x = seed | 1;
    let mut acc = 0u64;
    for _ in 0..300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x & 1 != 0 {
            acc = acc.wrapping_add(x);
        } else if x & 2 != 0 {
            acc ^= x >> 3;
        } else {
            acc = acc.rotate_left(5);
        }
    }
    std::hint::black_box(acc)
}

/// Kernel counters of the calling thread.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Rusage {
    /// Minor faults.
    pub minflt: i64,
    /// Major faults.
    pub majflt: i64,
    /// Context switches (voluntary + involuntary).
    pub csw: i64,
}

impl Rusage {
    /// Now.
    pub fn now() -> Rusage {
        // SAFETY: getrusage fills the struct we pass; RUSAGE_THREAD is Linux's.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
        Rusage {
            minflt: u.ru_minflt,
            majflt: u.ru_majflt,
            csw: u.ru_nvcsw + u.ru_nivcsw,
        }
    }

    /// Counts since `earlier`.
    pub fn since(self, earlier: Rusage) -> Rusage {
        Rusage {
            minflt: self.minflt - earlier.minflt,
            majflt: self.majflt - earlier.majflt,
            csw: self.csw - earlier.csw,
        }
    }
}

/// CPU time the calling thread has used (user and kernel), which a loaded
/// machine does not inflate as it inflates wall-clock time.
pub fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
