//! `GlobalArena` over a core that panics: the process aborts with a message
//! instead of deadlocking on the adapter's lock (the panic allocates its
//! payload through the same allocator). Run in a child process, with a
//! deadline.

use core::ptr::NonNull;
use std::process::Command;
use std::time::{Duration, Instant};

use plugin_abi::{
    ALLOCATOR_ABI_VERSION, AllocatorInfo, AllocatorStats, ArenaAllocator, BadPointer,
    InvariantViolation, ReallocError,
};

/// A bump allocator that panics on a request of 12345 bytes.
struct Panicky {
    base: *mut u8,
    used: usize,
    len: usize,
}

impl ArenaAllocator for Panicky {
    const INFO: AllocatorInfo = AllocatorInfo {
        abi_version: ALLOCATOR_ABI_VERSION,
        supported_flags: 0,
        properties: 0,
        reserved: 0,
        name: c"panicky".as_ptr(),
        description: c"bump, panics on 12345".as_ptr(),
        complexity: c"O(1)".as_ptr(),
        alignment: 16,
        min_block: 16,
        min_arena: 4096,
    };

    unsafe fn create_in(region: *mut u8, len: usize, _flags: u32) -> Option<NonNull<Self>> {
        let state = region.cast::<Panicky>();
        // SAFETY: the region is ours and large (the test's static arena).
        unsafe {
            state.write(Panicky {
                base: region.add(64),
                used: 0,
                len: len - 64,
            })
        };
        NonNull::new(state)
    }

    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        assert!(size != 12345, "the core panics");
        let n = size.max(1).next_multiple_of(16);
        (self.used + n <= self.len).then(|| {
            // SAFETY: inside the region.
            let p = unsafe { self.base.add(self.used) };
            self.used += n;
            NonNull::new(p).unwrap()
        })
    }

    fn alloc_aligned(&mut self, size: usize, _align: usize) -> Option<NonNull<u8>> {
        self.alloc(size)
    }

    fn free(&mut self, _ptr: NonNull<u8>) -> Result<(), BadPointer> {
        Ok(())
    }

    fn realloc(&mut self, _ptr: NonNull<u8>, _new: usize) -> Result<NonNull<u8>, ReallocError> {
        Err(ReallocError::OutOfMemory)
    }

    fn usable_size(&self, _ptr: NonNull<u8>) -> Option<usize> {
        None
    }

    fn stats(&self) -> AllocatorStats {
        AllocatorStats::default()
    }

    fn check_invariants(&self) -> Result<(), InvariantViolation> {
        Ok(())
    }
}

plugin_abi::global_arena!(static ARENA: Panicky = 1 << 20);

#[test]
fn a_panic_in_the_core_aborts_with_a_message() {
    if std::env::var_os("GLOBAL_PANIC_CHILD").is_some() {
        let layout = core::alloc::Layout::from_size_align(12345, 8).unwrap();
        // SAFETY: a valid layout; the result is not used.
        let _ = unsafe { core::alloc::GlobalAlloc::alloc(&ARENA, layout) };
        unreachable!("the core's panic must abort");
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panic_in_the_core_aborts_with_a_message",
            "--nocapture",
        ])
        .env("GLOBAL_PANIC_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("the child hangs: GlobalArena deadlocked on a panic");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(6),
        "not SIGABRT: {status:?}\n{stderr}"
    );
    assert!(stderr.contains("GlobalArena: "), "{stderr}");
    assert!(stderr.contains("aborting"), "{stderr}");
}
