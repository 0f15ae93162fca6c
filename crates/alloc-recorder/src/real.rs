//! The real allocator, found with `dlsym(RTLD_NEXT, ...)`, and the static
//! bootstrap buffer that serves the calls made while `dlsym` itself runs
//! (it may allocate, which calls back into this library before the real
//! functions are known).

use core::ffi::{CStr, c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type MemalignFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> c_int;
type UsableFn = unsafe extern "C" fn(*mut c_void) -> usize;

/// One resolved function (null until resolved).
struct Slot(AtomicPtr<c_void>);

impl Slot {
    const fn new() -> Self {
        Slot(AtomicPtr::new(ptr::null_mut()))
    }
    fn get(&self) -> *mut c_void {
        self.0.load(Ordering::Acquire)
    }
}

static MALLOC: Slot = Slot::new();
static FREE: Slot = Slot::new();
static CALLOC: Slot = Slot::new();
static REALLOC: Slot = Slot::new();
static MEMALIGN: Slot = Slot::new();
static POSIX_MEMALIGN: Slot = Slot::new();
static ALIGNED_ALLOC: Slot = Slot::new();
static VALLOC: Slot = Slot::new();
static PVALLOC: Slot = Slot::new();
static USABLE: Slot = Slot::new();

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const RESOLVED: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);

/// Resolves the real functions once. True when they are known; false while
/// the resolution runs (on this thread, re-entered from `dlsym`, or on
/// another): the caller then uses the bootstrap buffer.
pub fn ready() -> bool {
    match STATE.load(Ordering::Acquire) {
        RESOLVED => true,
        RESOLVING => false,
        _ => {
            if STATE
                .compare_exchange(UNRESOLVED, RESOLVING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return STATE.load(Ordering::Acquire) == RESOLVED;
            }
            let find = |slot: &Slot, name: &CStr| {
                // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; it
                // may allocate, which re-enters here and is served by the
                // bootstrap buffer.
                let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
                slot.0.store(f, Ordering::Release);
            };
            find(&MALLOC, c"malloc");
            find(&FREE, c"free");
            find(&CALLOC, c"calloc");
            find(&REALLOC, c"realloc");
            find(&MEMALIGN, c"memalign");
            find(&POSIX_MEMALIGN, c"posix_memalign");
            find(&ALIGNED_ALLOC, c"aligned_alloc");
            find(&VALLOC, c"valloc");
            find(&PVALLOC, c"pvalloc");
            find(&USABLE, c"malloc_usable_size");
            let ok = !MALLOC.get().is_null()
                && !FREE.get().is_null()
                && !CALLOC.get().is_null()
                && !REALLOC.get().is_null()
                && !MEMALIGN.get().is_null();
            if !ok {
                let msg = b"alloc-recorder: the real malloc/free/calloc/realloc/memalign were not found\n";
                malloc_shim::sys::write_all(2, msg);
                // SAFETY: abort has no preconditions; there is no allocator.
                unsafe { libc::abort() };
            }
            STATE.store(RESOLVED, Ordering::Release);
            true
        }
    }
}

// ---- the bootstrap buffer ------------------------------------------------

const BOOT_BYTES: usize = 256 << 10;

#[repr(C, align(4096))]
struct Boot([u8; BOOT_BYTES]);

static mut BOOT: Boot = Boot([0; BOOT_BYTES]);
static BOOT_USED: AtomicUsize = AtomicUsize::new(0);

fn boot_base() -> usize {
    (&raw const BOOT) as usize
}

/// True if `p` lies in the bootstrap buffer (such blocks are never freed).
pub fn is_boot(p: *const c_void) -> bool {
    let p = p as usize;
    p >= boot_base() && p < boot_base() + BOOT_BYTES
}

/// A zeroed block of the bootstrap buffer, aligned to `align` (≥ 16); its
/// size is kept in the 16 bytes before it. NULL when the buffer is used up.
pub fn boot_alloc(size: usize, align: usize) -> *mut c_void {
    let align = align.max(16);
    let mut used = BOOT_USED.load(Ordering::Relaxed);
    loop {
        let Some(start) = (boot_base() + used + 16).checked_next_multiple_of(align) else {
            return ptr::null_mut();
        };
        let Some(end) = start.checked_add(size) else {
            return ptr::null_mut();
        };
        if end > boot_base() + BOOT_BYTES {
            return ptr::null_mut();
        }
        match BOOT_USED.compare_exchange_weak(
            used,
            end - boot_base(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                let p = start as *mut u8;
                // SAFETY: `[start - 16, end)` lies in the buffer and was
                // just reserved by this thread alone; fresh bytes are zero.
                unsafe { p.sub(16).cast::<usize>().write(size) };
                return p.cast();
            }
            Err(now) => used = now,
        }
    }
}

/// The size a bootstrap block was asked with.
///
/// # Safety
///
/// `p` is a block from [`boot_alloc`].
pub unsafe fn boot_size(p: *const c_void) -> usize {
    // SAFETY: caller's contract: the size sits just before the block.
    unsafe { p.cast::<u8>().sub(16).cast::<usize>().read() }
}

// ---- calls to the real functions ------------------------------------------
//
// Each is called only after `ready()` answered true, so the slot holds the
// address of a function of the C signature named (the transmute inside each
// caller's `unsafe` block relies on that).

macro_rules! real {
    ($slot:ident, $ty:ty) => {
        core::mem::transmute::<*mut c_void, $ty>($slot.get())
    };
}

/// The real `malloc`.
pub fn malloc(n: usize) -> *mut c_void {
    // SAFETY: the slot holds the real malloc (see `real!`); it accepts any size.
    unsafe { real!(MALLOC, MallocFn)(n) }
}

/// The real `free`.
///
/// # Safety
///
/// `p` is NULL or a live block of the real allocator.
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: the slot holds the real function (see `real!`); the
    // caller's contract is its contract.
    unsafe { real!(FREE, FreeFn)(p) }
}

/// The real `calloc`.
pub fn calloc(n: usize, m: usize) -> *mut c_void {
    // SAFETY: the slot holds the real calloc (see `real!`), which accepts any arguments.
    unsafe { real!(CALLOC, CallocFn)(n, m) }
}

/// The real `realloc`.
///
/// # Safety
///
/// As for [`free`].
pub unsafe fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    // SAFETY: the slot holds the real function (see `real!`); the
    // caller's contract is its contract.
    unsafe { real!(REALLOC, ReallocFn)(p, n) }
}

/// The real `memalign`.
pub fn memalign(align: usize, n: usize) -> *mut c_void {
    // SAFETY: the slot holds the real memalign (see `real!`), which accepts any arguments.
    unsafe { real!(MEMALIGN, MemalignFn)(align, n) }
}

/// The real `posix_memalign` (`memalign` when the next library has none).
///
/// # Safety
///
/// `out` is valid for a pointer write.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> c_int {
    if POSIX_MEMALIGN.get().is_null() {
        if !align.is_power_of_two() || align < size_of::<*mut c_void>() {
            return libc::EINVAL;
        }
        let p = memalign(align, n);
        if p.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: caller's contract.
        unsafe { out.write(p) };
        return 0;
    }
    // SAFETY: the slot holds the real function (see `real!`); the
    // caller's contract is its contract.
    unsafe { real!(POSIX_MEMALIGN, PosixMemalignFn)(out, align, n) }
}

/// The real `aligned_alloc` (or `memalign`).
pub fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    if ALIGNED_ALLOC.get().is_null() {
        return memalign(align, n);
    }
    // SAFETY: the slot holds the real aligned_alloc (see `real!`), which accepts any arguments.
    unsafe { real!(ALIGNED_ALLOC, MemalignFn)(align, n) }
}

/// The real `valloc` (or `memalign(4096, n)`).
pub fn valloc(n: usize) -> *mut c_void {
    if VALLOC.get().is_null() {
        return memalign(4096, n);
    }
    // SAFETY: the slot holds the real valloc (see `real!`), which accepts any size.
    unsafe { real!(VALLOC, MallocFn)(n) }
}

/// The real `pvalloc` (or `memalign(4096, round_up(n, 4096))`).
pub fn pvalloc(n: usize) -> *mut c_void {
    if PVALLOC.get().is_null() {
        return match n.checked_next_multiple_of(4096) {
            Some(r) => memalign(4096, r.max(4096)),
            None => ptr::null_mut(),
        };
    }
    // SAFETY: the slot holds the real pvalloc (see `real!`), which accepts any size.
    unsafe { real!(PVALLOC, MallocFn)(n) }
}

/// The real `malloc_usable_size` (0 when the next library has none).
///
/// # Safety
///
/// As for [`free`].
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    if USABLE.get().is_null() {
        return 0;
    }
    // SAFETY: the slot holds the real function (see `real!`); the
    // caller's contract is its contract.
    unsafe { real!(USABLE, UsableFn)(p) }
}
