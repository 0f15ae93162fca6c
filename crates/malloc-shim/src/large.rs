//! Large blocks: requests above [`LARGE_THRESHOLD`] (or aligned beyond
//! [`MAX_CORE_ALIGN`]) get a mapping of their own, 64 MiB-aligned and
//! registered like an arena, a header page (or `align` bytes) before the
//! block.
//!
//! **Reuse, with hysteresis.** A freed large mapping is not unmapped at once:
//! it goes into a small cache (at most [`CACHE_SLOTS`] mappings and
//! [`CACHE_BYTES`] in all), its pages still resident, its header marked
//! [`LARGE_FREE`] (so a second `free` of the block is recognised). The next
//! large request takes the cached mapping that fits best and resizes it
//! with `mremap` (shrinking unmaps the tail; growing extends it in place,
//! or moves its pages — no copy, no fault — to a new aligned place), so a
//! program that frees and allocates large buffers in turn reuses the same
//! pages as glibc's heap would, without a system call per page. A cached
//! mapping unused for [`DECAY_MS`] is unmapped at the next large-block call
//! (memory goes back to the kernel, as mimalloc and jemalloc do), and so is
//! the oldest one when the cache is over its budget; `malloc_trim` empties
//! it.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::arena::SlotHead;
use crate::lock::Mutex;
use crate::registry::{self, ARENA};
use crate::sys::{self, PAGE};

/// Requests above this many bytes get a mapping of their own (glibc's
/// `M_MMAP_THRESHOLD` starts at 128 KiB and adapts up to 32 MiB; a fixed
/// 1 MiB keeps the cores serving everything up to what a buddy arena can
/// hand out many times over).
pub const LARGE_THRESHOLD: usize = 1 << 20;

/// Alignments above this go to a mapping of their own.
pub const MAX_CORE_ALIGN: usize = PAGE;

/// Marks a live large block's header.
pub const LARGE_MAGIC: u64 = u64::from_le_bytes(*b"alclLrge");
/// Marks a freed large mapping kept in the cache.
pub const LARGE_FREE: u64 = u64::from_le_bytes(*b"alclLfre");

/// Cached mappings at most.
pub const CACHE_SLOTS: usize = 16;
/// Bytes of cached mappings at most.
pub const CACHE_BYTES: usize = 64 << 20;
/// A cached mapping unused this long is unmapped.
pub const DECAY_MS: u64 = 1000;
/// Mappings at least this long ask for transparent huge pages
/// ([`sys::want_huge_pages`]; the advice stays with the mapping when `mremap`
/// grows or moves it). A program touching a multi-megabyte buffer then
/// takes one page fault per 2 MiB rather than 512 (large-churn: the faults
/// were most of its time). Only whole 2 MiB-aligned ranges inside the mapping
/// get a huge page, and only when touched: a block is never rounded up.
pub const HUGE_MIN: usize = 4 << 20;
/// A cached mapping taken for a request is shrunk when it exceeds the
/// request by more than this and is more than twice as large.
const SHRINK_SLACK: usize = 2 << 20;

/// The header page of a large block's mapping.
#[repr(C, align(64))]
pub struct LargeHeader {
    /// Magic ([`LARGE_MAGIC`] or [`LARGE_FREE`]) and owner.
    pub head: SlotHead,
    /// Length of the whole mapping.
    pub map_len: AtomicUsize,
    /// From the mapping's start to the block: `max(PAGE, align)`.
    pub offset: usize,
    /// When it was cached (`sys::now_ms`).
    freed_at: AtomicU64,
}

impl LargeHeader {
    /// The block's address.
    #[inline]
    pub fn block(&self) -> usize {
        (ptr::from_ref(self) as usize).wrapping_add(self.offset)
    }

    /// The block's usable size.
    #[inline]
    pub fn usable(&self) -> usize {
        self.map_len
            .load(Ordering::Relaxed)
            .saturating_sub(self.offset)
    }

    /// Writes a header at `base` (a fresh mapping of `len` bytes for shim
    /// `owner`), registers the slot and returns the block.
    ///
    /// # Safety
    ///
    /// `base` is a 64 MiB-aligned mapping of `len > offset` bytes, ours and
    /// unused.
    unsafe fn publish(base: NonNull<u8>, len: usize, offset: usize, owner: usize) -> NonNull<u8> {
        let h = base.as_ptr().cast::<LargeHeader>();
        // SAFETY: the mapping is at least one page, aligned (caller).
        unsafe {
            h.write(LargeHeader {
                head: SlotHead {
                    magic: AtomicU64::new(LARGE_MAGIC),
                    owner,
                },
                map_len: AtomicUsize::new(len),
                offset,
                freed_at: AtomicU64::new(0),
            });
        }
        registry::register(base.as_ptr() as usize);
        // SAFETY: `offset < len`.
        unsafe { NonNull::new_unchecked(base.as_ptr().add(offset)) }
    }
}

/// The bytes of mapping a block of `size` bytes aligned to `align` needs,
/// and the block's offset in it.
pub fn mapping_for(size: usize, align: usize) -> Option<(usize, usize)> {
    if align >= ARENA {
        return None;
    }
    let offset = align.max(PAGE);
    let len = sys::round_up(offset.checked_add(size)?, PAGE)?;
    (len <= isize::MAX as usize).then_some((len, offset))
}

/// Maps a fresh large block (`None`: the kernel said no).
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
pub fn map_new(size: usize, align: usize, owner: usize) -> Option<NonNull<u8>> {
    let (len, offset) = mapping_for(size, align)?;
    let base = sys::map_aligned(len, ARENA, false)?;
    if !registry::in_range(base.as_ptr() as usize) {
        // SAFETY: ours, published nowhere.
        unsafe { sys::unmap(base.as_ptr(), len) };
        return None;
    }
    if len >= HUGE_MIN {
        // SAFETY: the fresh mapping of `len` bytes.
        unsafe { sys::want_huge_pages(base.as_ptr(), len) };
    }
    // SAFETY: a fresh aligned mapping of `len > offset` bytes.
    Some(unsafe { LargeHeader::publish(base, len, offset, owner) })
}

/// Unregisters and unmaps a large mapping.
///
/// # Safety
///
/// `h` heads a large mapping of this shim that nothing uses any more.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
pub unsafe fn unmap(h: &LargeHeader) {
    let base = ptr::from_ref(h) as usize;
    let len = h.map_len.load(Ordering::Relaxed);
    registry::unregister(base);
    // SAFETY: the whole mapping is unused (caller); unregistered first, so
    // no lookup dereferences it any more.
    unsafe { sys::unmap(base as *mut u8, len) };
}

/// Resizes the mapping of `h` to `new_len` bytes: the tail unmapped, or the
/// mapping grown in place, or its pages moved to a new 64 MiB-aligned place.
/// Returns the (possibly moved) header; `None` if it could not be done (then
/// nothing changed).
///
/// # Safety
///
/// `h` heads a large mapping of this shim that the caller alone uses, and
/// `new_len` is a multiple of [`PAGE`] above its offset.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
pub unsafe fn resize(h: &LargeHeader, new_len: usize) -> Option<&LargeHeader> {
    let base = ptr::from_ref(h) as usize as *mut u8;
    let old_len = h.map_len.load(Ordering::Relaxed);
    if new_len == old_len {
        return Some(h);
    }
    if new_len < old_len {
        // SAFETY: the tail pages are the block's and beyond `new_len`.
        unsafe { sys::unmap(base.wrapping_add(new_len), old_len.wrapping_sub(new_len)) };
        h.map_len.store(new_len, Ordering::Relaxed);
        return Some(h);
    }
    // SAFETY: the mapping `[base, base + old_len)` is this block's.
    if unsafe { sys::remap_in_place(base, old_len, new_len) } {
        h.map_len.store(new_len, Ordering::Relaxed);
        return Some(h);
    }
    // Move the pages (header included) to a new 64 MiB-aligned place.
    let dst = sys::map_aligned(new_len, ARENA, false)?;
    if registry::in_range(dst.as_ptr() as usize) {
        registry::unregister(base as usize);
        // SAFETY: the old mapping is this block's; `dst` is a fresh mapping
        // of `new_len` bytes that nothing uses; they are distinct.
        if unsafe { sys::remap_to(base, old_len, new_len, dst.as_ptr()) } {
            // SAFETY: the header moved with its page to `dst`.
            let nh = unsafe { &*dst.as_ptr().cast::<LargeHeader>() };
            nh.map_len.store(new_len, Ordering::Relaxed);
            registry::register(dst.as_ptr() as usize);
            return Some(nh);
        }
        registry::register(base as usize);
    }
    // SAFETY: `dst` is ours and unused.
    unsafe { sys::unmap(dst.as_ptr(), new_len) };
    None
}

/// Freed large mappings kept for reuse.
pub struct LargeCache {
    lock: Mutex,
    /// Cached headers (null: empty slot); touched only under `lock`.
    slots: [core::sync::atomic::AtomicPtr<LargeHeader>; CACHE_SLOTS],
    /// Bytes of the cached mappings (written under `lock`).
    bytes: AtomicUsize,
    /// Mappings taken from the cache, and unmapped from it.
    pub reused: AtomicU64,
    /// Mappings unmapped (by decay, budget or trim).
    pub released: AtomicU64,
}

impl Default for LargeCache {
    fn default() -> Self {
        Self::new()
    }
}

impl LargeCache {
    /// An empty cache.
    pub const fn new() -> Self {
        LargeCache {
            lock: Mutex::new(),
            slots: [const { core::sync::atomic::AtomicPtr::new(ptr::null_mut()) }; CACHE_SLOTS],
            bytes: AtomicUsize::new(0),
            reused: AtomicU64::new(0),
            released: AtomicU64::new(0),
        }
    }

    /// Keeps the freed mapping `h` for reuse, or unmaps it (cache locked by
    /// this thread, or the mapping alone exceeds the budget). Also unmaps
    /// what has decayed or is over budget.
    ///
    /// # Safety
    ///
    /// `h` heads a large mapping of this shim whose block was just freed.
    #[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
    pub unsafe fn put(&self, h: &LargeHeader) {
        let len = h.map_len.load(Ordering::Relaxed);
        let Ok(_g) = self.lock.lock() else {
            // SAFETY: caller's contract.
            unsafe { unmap(h) };
            return;
        };
        if len > CACHE_BYTES || h.offset != PAGE {
            // Too big, or aligned beyond a page (its block does not sit
            // where `take` expects it): unmapped at once.
            // SAFETY: caller's contract.
            unsafe { unmap(h) };
            return;
        }
        h.head.magic.store(LARGE_FREE, Ordering::Relaxed);
        h.freed_at.store(sys::now_ms(), Ordering::Relaxed);
        let hp = ptr::from_ref(h).cast_mut();
        // Room by budget: unmap the oldest until it fits.
        while self.bytes.load(Ordering::Relaxed).saturating_add(len) > CACHE_BYTES
            || self
                .slots
                .iter()
                .all(|s| !s.load(Ordering::Relaxed).is_null())
        {
            if !self.evict_oldest() {
                break;
            }
        }
        if let Some(s) = self
            .slots
            .iter()
            .find(|s| s.load(Ordering::Relaxed).is_null())
        {
            s.store(hp, Ordering::Relaxed);
            self.bytes.fetch_add(len, Ordering::Relaxed);
        } else {
            // SAFETY: caller's contract.
            unsafe { unmap(h) };
        }
        self.decay_locked(sys::now_ms());
    }

    /// Takes the cached mapping that best serves a block of `size` bytes
    /// (page-aligned) and resizes it; `None` if the cache is empty or locked
    /// by this thread, or the resize failed (then the mapping is unmapped).
    #[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
    pub fn take(&self, size: usize) -> Option<NonNull<u8>> {
        let (need, _) = mapping_for(size, PAGE)?;
        let h = {
            let _g = self.lock.lock().ok()?;
            self.decay_locked(sys::now_ms());
            // Best fit among those large enough; else the largest.
            let mut best: Option<(usize, usize)> = None; // (slot, len)
            let mut largest: Option<(usize, usize)> = None;
            for (i, s) in self.slots.iter().enumerate() {
                // SAFETY: cached headers are valid mappings owned by the cache.
                let Some(h) = (unsafe { s.load(Ordering::Relaxed).as_ref() }) else {
                    continue;
                };
                let len = h.map_len.load(Ordering::Relaxed);
                if len >= need && best.is_none_or(|(_, b)| len < b) {
                    best = Some((i, len));
                }
                if largest.is_none_or(|(_, l)| len > l) {
                    largest = Some((i, len));
                }
            }
            let (i, len) = best.or(largest)?;
            let slot = self.slots.get(i)?;
            let h = slot.swap(ptr::null_mut(), Ordering::Relaxed);
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            h
        };
        // SAFETY: taken out of the cache: ours alone.
        let h = unsafe { &*h };
        let len = h.map_len.load(Ordering::Relaxed);
        // Keep a mapping that is at most twice the request whole (its pages
        // stay resident and are reused, as glibc reuses its heap); shrink a
        // larger one; grow a smaller one (in place when the address space
        // after it is free: only the new tail faults in).
        let target = if len >= need && (len.wrapping_sub(need) <= SHRINK_SLACK || len / 2 <= need) {
            len
        } else {
            need
        };
        // SAFETY: ours alone; `target` is page-aligned and above the offset.
        let Some(h) = (unsafe { resize(h, target) }) else {
            // SAFETY: ours alone.
            unsafe { unmap(h) };
            self.released.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        h.head.magic.store(LARGE_MAGIC, Ordering::Relaxed);
        self.reused.fetch_add(1, Ordering::Relaxed);
        NonNull::new(h.block() as *mut u8)
    }

    /// Unmaps every cached mapping; returns the bytes given back.
    #[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
    pub fn purge(&self) -> usize {
        let Ok(_g) = self.lock.lock() else {
            return 0;
        };
        let mut n = 0usize;
        for s in &self.slots {
            n = n.saturating_add(self.release_slot(s));
        }
        n
    }

    /// Bytes cached now.
    pub fn cached_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn decay_locked(&self, now: u64) {
        for s in &self.slots {
            // SAFETY: cached headers are valid mappings owned by the cache.
            if let Some(h) = unsafe { s.load(Ordering::Relaxed).as_ref() }
                && now.saturating_sub(h.freed_at.load(Ordering::Relaxed)) >= DECAY_MS
            {
                self.release_slot(s);
            }
        }
    }

    #[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
    fn evict_oldest(&self) -> bool {
        let oldest = self
            .slots
            .iter()
            .filter_map(|s| {
                // SAFETY: as in `decay_locked`.
                let h = unsafe { s.load(Ordering::Relaxed).as_ref()? };
                Some((h.freed_at.load(Ordering::Relaxed), s))
            })
            .min_by_key(|(t, _)| *t);
        match oldest {
            Some((_, s)) => {
                self.release_slot(s);
                true
            }
            None => false,
        }
    }

    /// Unmaps the mapping in slot `s` (under the lock); its bytes.
    fn release_slot(&self, s: &core::sync::atomic::AtomicPtr<LargeHeader>) -> usize {
        let h = s.swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: a cached header: a valid mapping owned by the cache.
        let Some(h) = (unsafe { h.as_ref() }) else {
            return 0;
        };
        let len = h.map_len.load(Ordering::Relaxed);
        self.bytes.fetch_sub(len, Ordering::Relaxed);
        // SAFETY: out of the cache, used by nothing.
        unsafe { unmap(h) };
        self.released.fetch_add(1, Ordering::Relaxed);
        len
    }

    /// The lock, for the `pthread_atfork` handlers.
    pub fn mutex(&self) -> &Mutex {
        &self.lock
    }
}
