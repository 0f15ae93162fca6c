//! The brief's fallback: when no plugin is given or none loads, the runner
//! binds the allocator API to these functions, which wrap the OS allocator
//! (`mmap`/`munmap`) in the same API.
//!
//! Each allocation is its own anonymous mapping of `size + 16` bytes rounded
//! up to whole pages; the first 16 bytes hold the mapping's length, so `free`
//! can `munmap` exactly what was mapped, and the caller's block starts 16
//! bytes in (16-byte aligned). `realloc` uses `mremap`, which moves pages
//! instead of copying bytes.
//!
//! The arena given to `allocator_create` holds the fallback's own state: a
//! hash set of the live mappings, so a pointer it did not hand out is
//! rejected (never read, never unmapped) as the plugin contract requires.

use std::ffi::{c_int, c_void};
use std::ptr::{self, null_mut};

use crate::allocators::facts::{ReallocKind, TypedFacts};
use crate::allocators::table;
use plugin_abi::loader::PluginApi;
use plugin_abi::*;
use rustix::mm::{MapFlags, MremapFlags, ProtFlags, mmap_anonymous, mremap, munmap};

/// Bytes before the caller's block in each mapping.
const HEADER: usize = 16;
const MAGIC: u64 = u64::from_le_bytes(*b"fallback");
const DEAD: u64 = u64::from_le_bytes(*b"deadback");

/// The fallback's state, at the start of the arena, followed by its table.
#[repr(C)]
struct Fallback {
    magic: u64,
    /// Slots in `table` (a power of two). A slot holds 0 (empty) or the start
    /// address of a live mapping; linear probing, no tombstones (deletion
    /// shifts entries back).
    capacity: usize,
    table: *mut usize,
    live: usize,
    mapped_bytes: usize,
    failed: usize,
    rejected: usize,
    arena_bytes: usize,
}

fn page_size() -> usize {
    rustix::param::page_size()
}

impl Fallback {
    fn slot_of(&self, key: usize) -> usize {
        ((key >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & (self.capacity - 1)
    }

    fn get(&self, i: usize) -> usize {
        // SAFETY: `i < capacity` (masked by every caller); the table lies in the arena.
        unsafe { *self.table.add(i & (self.capacity - 1)) }
    }

    fn set(&mut self, i: usize, v: usize) {
        // SAFETY: as in `get`.
        unsafe { *self.table.add(i & (self.capacity - 1)) = v }
    }

    fn find(&self, key: usize) -> Option<usize> {
        let mut i = self.slot_of(key);
        loop {
            match self.get(i) {
                0 => return None,
                k if k == key => return Some(i & (self.capacity - 1)),
                _ => i += 1,
            }
        }
    }

    fn insert(&mut self, key: usize) {
        let mut i = self.slot_of(key);
        while self.get(i) != 0 {
            i += 1;
        }
        self.set(i, key);
        self.live += 1;
    }

    /// Backward-shift deletion keeps every probe sequence unbroken.
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.capacity - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let k = self.get(j);
            if k == 0 {
                break;
            }
            let home = self.slot_of(k);
            // Move `k` into the hole if its home is not cyclically in (hole, j].
            let in_range = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !in_range {
                self.set(hole, k);
                hole = j;
            }
        }
        self.set(hole, 0);
        self.live -= 1;
    }

    /// The mapping start of a block pointer we handed out, if it is one.
    fn mapping_of(&self, p: *mut c_void) -> Option<(usize, usize)> {
        let addr = p as usize;
        if addr % page_size() != HEADER {
            return None;
        }
        let map = addr - HEADER;
        let slot = self.find(map)?;
        Some((map, slot))
    }

    fn map(&mut self, size: usize) -> *mut c_void {
        // Keep the table at most 3/4 full so probes stay short.
        let Some(total) = size
            .checked_add(HEADER)
            .filter(|_| self.live < self.capacity / 4 * 3)
        else {
            self.failed += 1;
            return null_mut();
        };
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let m = unsafe {
            mmap_anonymous(
                null_mut(),
                total,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        };
        let Ok(m) = m else {
            self.failed += 1;
            return null_mut();
        };
        let len = total.next_multiple_of(page_size());
        // SAFETY: the mapping is at least HEADER bytes long and page-aligned.
        unsafe { m.cast::<usize>().write(len) };
        self.insert(m as usize);
        self.mapped_bytes += len;
        m.cast::<u8>().wrapping_add(HEADER).cast()
    }
}

/// The live state behind a handle, if `a` is one.
///
/// # Safety
///
/// `a` is NULL or a handle returned by [`create`] whose arena is mapped.
unsafe fn state<'a>(a: *const Allocator) -> Option<&'a mut Fallback> {
    // SAFETY: caller's contract: a non-null `a` points to a `Fallback`.
    let f = unsafe { a.cast::<Fallback>().cast_mut().as_mut()? };
    (f.magic == MAGIC).then_some(f)
}

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    if memory.is_null() {
        return null_mut();
    }
    let pad = memory.cast::<u8>().align_offset(align_of::<Fallback>());
    let Some(room) = size.checked_sub(pad + size_of::<Fallback>()) else {
        return null_mut();
    };
    let slots = room / size_of::<usize>();
    if slots < 16 {
        return null_mut();
    }
    let capacity = 1usize << (usize::BITS - 1 - slots.leading_zeros());
    // SAFETY: `pad + size_of::<Fallback>() + capacity * 8 <= size`: all
    // inside the caller's arena, which it gave us.
    unsafe {
        let f = memory.cast::<u8>().add(pad).cast::<Fallback>();
        let table = f.add(1).cast::<usize>();
        table.write_bytes(0, capacity);
        f.write(Fallback {
            magic: MAGIC,
            capacity,
            table,
            live: 0,
            mapped_bytes: 0,
            failed: 0,
            rejected: 0,
            arena_bytes: size,
        });
        f.cast()
    }
}

unsafe extern "C" fn destroy(a: *mut Allocator) {
    // SAFETY: the C contract of `allocator_destroy`.
    let Some(f) = (unsafe { state(a) }) else {
        return;
    };
    for i in 0..f.capacity {
        let map = f.get(i);
        if map != 0 {
            // SAFETY: a live mapping we made; its first word is its length.
            unsafe {
                let len = *(map as *const usize);
                let _ = munmap(map as *mut c_void, len);
            }
        }
    }
    f.magic = DEAD;
}

unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
    // SAFETY: the C contract of `allocator_alloc`.
    match unsafe { state(a) } {
        Some(f) => f.map(size),
        None => null_mut(),
    }
}

unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: the C contract of `allocator_free`.
    let Some(f) = (unsafe { state(a) }) else {
        return;
    };
    match f.mapping_of(p) {
        Some((map, slot)) => {
            // SAFETY: `map` is a live mapping of ours; its first word is its length.
            let len = unsafe { *(map as *const usize) };
            // SAFETY: unmapping exactly what `map` mapped; the caller gave it back.
            let _ = unsafe { munmap(map as *mut c_void, len) };
            f.remove_at(slot);
            f.mapped_bytes -= len;
        }
        None => f.rejected += 1,
    }
}

unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { alloc(a, size) };
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free(a, p) };
        return null_mut();
    }
    // SAFETY: the C contract of `allocator_realloc`.
    let Some(f) = (unsafe { state(a) }) else {
        return null_mut();
    };
    let Some((map, slot)) = f.mapping_of(p) else {
        f.rejected += 1;
        return null_mut();
    };
    // SAFETY: a live mapping of ours.
    let old_len = unsafe { *(map as *const usize) };
    let Some(total) = size.checked_add(HEADER) else {
        f.failed += 1;
        return null_mut();
    };
    let new_len = total.next_multiple_of(page_size());
    // SAFETY: resizing our own mapping; MAYMOVE keeps the contents.
    let moved = unsafe { mremap(map as *mut c_void, old_len, new_len, MremapFlags::MAYMOVE) };
    let Ok(m) = moved else {
        f.failed += 1;
        return null_mut();
    };
    // SAFETY: the (possibly moved) mapping is `new_len >= HEADER` bytes.
    unsafe { m.cast::<usize>().write(new_len) };
    f.remove_at(slot);
    f.insert(m as usize);
    f.mapped_bytes = f.mapped_bytes - old_len + new_len;
    m.cast::<u8>().wrapping_add(HEADER).cast()
}

unsafe extern "C" fn usable_size(a: *const Allocator, p: *const c_void) -> usize {
    // SAFETY: the C contract of `allocator_usable_size`.
    let Some(f) = (unsafe { state(a) }) else {
        return 0;
    };
    match f.mapping_of(p.cast_mut()) {
        // SAFETY: a live mapping of ours.
        Some((map, _)) => (unsafe { *(map as *const usize) }) - HEADER,
        None => 0,
    }
}

unsafe extern "C" fn stats(a: *const Allocator, out: *mut AllocatorStats) -> c_int {
    // SAFETY: the C contract of `allocator_stats`.
    let Some(f) = (unsafe { state(a) }) else {
        return -1;
    };
    if out.is_null() {
        return -1;
    }
    // The mappings lie outside the arena, which holds only the fallback's
    // table: for the fallback, metadata + reserved + free == arena does not
    // hold; `bytes_reserved` is the bytes mapped for live blocks.
    let s = AllocatorStats {
        arena_bytes: f.arena_bytes,
        metadata_bytes: f.arena_bytes,
        bytes_requested: ALLOCATOR_STAT_UNKNOWN,
        bytes_reserved: f.mapped_bytes,
        bytes_free: 0,
        largest_free_block: 0,
        live_blocks: f.live,
        failed_allocs: f.failed,
        rejected_frees: f.rejected,
    };
    // SAFETY: `out` is valid for writes (caller's contract).
    unsafe { ptr::write(out, s) };
    0
}

extern "C" fn info() -> *const AllocatorInfo {
    static INFO: AllocatorInfo = AllocatorInfo {
        abi_version: ALLOCATOR_ABI_VERSION,
        supported_flags: 0,
        properties: ALLOCATOR_PROP_REJECTS_BAD_FREE | ALLOCATOR_PROP_REALLOC_IN_PLACE,
        reserved: 0,
        name: c"mmap fallback".as_ptr(),
        description:
            c"one anonymous mmap per allocation (size + 16 bytes, whole pages), munmap on free"
                .as_ptr(),
        complexity: c"one system call per alloc and per free".as_ptr(),
        alignment: ALLOCATOR_ALIGNMENT,
        min_block: 4096 - HEADER,
        min_arena: size_of::<Fallback>() + 16 * size_of::<usize>(),
    };
    &INFO
}

/// The fallback's documented facts.
pub const FACTS: TypedFacts = TypedFacts {
    calls: "allocator_create, allocator_alloc, allocator_free, allocator_destroy",
    free_needs_size: false,
    realloc: ReallocKind::Native,
    threads: "one instance per thread",
    introspection: "allocator_stats (live blocks, mapped bytes)",
    adapter_header: HEADER,
    uses_arena: false,
};

/// The fallback's function table.
pub fn api() -> PluginApi {
    PluginApi {
        realloc: Some(realloc),
        usable_size: Some(usable_size),
        stats: Some(stats),
        info: Some(info),
        ..table(create, destroy, alloc, free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::Arena;

    #[test]
    fn maps_frees_and_rejects() {
        let arena = Arena::map(1 << 16).unwrap();
        let api = api();
        // SAFETY: the arena is mapped and outlives the allocator.
        unsafe {
            let a = (api.create)(arena.as_ptr(), arena.len());
            assert!(!a.is_null());
            let mut blocks = Vec::new();
            for i in 0..300 {
                let p = (api.alloc)(a, 1 + i * 37);
                assert!(!p.is_null());
                assert_eq!(p as usize % 16, 0);
                p.cast::<u8>().write_bytes(i as u8, 1 + i * 37);
                blocks.push((p, i));
            }
            let u = usable_size(a, blocks[10].0);
            assert!(u > 10 * 37);
            // Bad pointers: interior, foreign, double free.
            free(a, blocks[3].0.cast::<u8>().add(16).cast());
            let mut local = 0u64;
            free(a, (&raw mut local).cast());
            for (p, _) in blocks.drain(..150) {
                free(a, p);
            }
            let first_freed = (api.alloc)(a, 1);
            free(a, first_freed);
            free(a, first_freed);
            let mut s = AllocatorStats::default();
            assert_eq!(stats(a, &mut s), 0);
            assert_eq!(s.rejected_frees, 3);
            assert_eq!(s.live_blocks, 150);
            // Contents survive realloc (mremap), including a move.
            let (p, i) = blocks[0];
            let q = realloc(a, p, 1 << 20);
            assert!(!q.is_null());
            assert_eq!(*q.cast::<u8>(), i as u8);
            assert_eq!(*q.cast::<u8>().add(i * 37), i as u8);
            blocks[0].0 = q;
            for (p, _) in blocks.drain(..) {
                free(a, p);
            }
            assert_eq!(stats(a, &mut s), 0);
            assert_eq!(
                (s.live_blocks, s.bytes_reserved, s.rejected_frees),
                (0, 0, 3)
            );
            (api.destroy)(a);
            assert!(
                (api.alloc)(a, 1).is_null(),
                "a destroyed handle answers NULL"
            );
        }
    }

    #[test]
    fn table_deletion_keeps_probe_chains() {
        let arena = Arena::map(4096).unwrap();
        // SAFETY: as above.
        unsafe {
            let a = create(arena.as_ptr(), arena.len());
            let f = state(a).unwrap();
            // Keys that collide: same home slot for many.
            let keys: Vec<usize> = (1..200).map(|k| k << 40).collect();
            for &k in &keys[..f.capacity / 2] {
                f.insert(k);
            }
            for (n, &k) in keys[..f.capacity / 2].iter().enumerate() {
                if n % 3 == 0 {
                    let slot = f.find(k).unwrap();
                    f.remove_at(slot);
                }
            }
            for (n, &k) in keys[..f.capacity / 2].iter().enumerate() {
                assert_eq!(f.find(k).is_some(), n % 3 != 0, "key {n}");
            }
        }
    }
}
