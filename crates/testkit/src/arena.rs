//! A test arena: a region of any size and alignment, between two guard
//! margins that are checked after every operation (an allocator must never
//! write outside the memory it was given).

use std::alloc::{Layout, alloc_zeroed, dealloc};

/// Bytes of guard before and after the region.
pub const MARGIN: usize = 4096;
const GUARD_BYTE: u8 = 0xA5;

/// A heap buffer holding a region `[start, start + len)` whose address is
/// `misalign` bytes past a 4096-byte boundary, guarded on both sides.
pub struct TestArena {
    buf: *mut u8,
    layout: Layout,
    offset: usize,
    len: usize,
}

impl TestArena {
    /// A region of `len` bytes starting `misalign % 4096` bytes after a
    /// 4096-byte boundary.
    pub fn new(len: usize, misalign: usize) -> TestArena {
        let misalign = misalign % 4096;
        let offset = MARGIN + misalign;
        let total = offset + len + MARGIN;
        let layout = Layout::from_size_align(total, 4096).expect("arena too large");
        // SAFETY: `total > 0`.
        let buf = unsafe { alloc_zeroed(layout) };
        assert!(
            !buf.is_null(),
            "cannot allocate a test arena of {len} bytes"
        );
        // SAFETY: both margins lie inside the buffer.
        unsafe {
            buf.write_bytes(GUARD_BYTE, offset);
            buf.add(offset + len).write_bytes(GUARD_BYTE, MARGIN);
        }
        TestArena {
            buf,
            layout,
            offset,
            len,
        }
    }

    /// The region's first byte.
    pub fn start(&self) -> *mut u8 {
        // SAFETY: `offset` is inside the buffer.
        unsafe { self.buf.add(self.offset) }
    }

    /// The region's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `[start, end)` as addresses.
    pub fn bounds(&self) -> (usize, usize) {
        let lo = self.start() as usize;
        (lo, lo + self.len)
    }

    /// A pointer to `addr` carrying the buffer's provenance, for addresses in
    /// or near the region (the margins included).
    pub fn ptr_at(&self, addr: usize) -> *mut u8 {
        self.buf.wrapping_add(addr.wrapping_sub(self.buf as usize))
    }

    /// Checks that nothing wrote into the guard margins.
    pub fn margins_intact(&self) -> Result<(), String> {
        // SAFETY: both margins lie inside the buffer, which we own.
        let (before, after) = unsafe {
            (
                std::slice::from_raw_parts(self.buf, self.offset),
                std::slice::from_raw_parts(self.buf.add(self.offset + self.len), MARGIN),
            )
        };
        if let Some(i) = before.iter().rposition(|&b| b != GUARD_BYTE) {
            return Err(format!("wrote {} bytes before the arena", self.offset - i));
        }
        if let Some(i) = after.iter().position(|&b| b != GUARD_BYTE) {
            return Err(format!("wrote {} bytes after the end of the arena", i + 1));
        }
        Ok(())
    }
}

impl Drop for TestArena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.buf, self.layout) };
    }
}

/// Fills `[p, p + len)` with the pattern of `seed`.
///
/// # Safety
///
/// `p` is valid for writes of `len` bytes.
pub unsafe fn fill_pattern(p: *mut u8, len: usize, seed: u64) {
    for i in 0..len {
        // SAFETY: `i < len` (caller's contract).
        unsafe { p.add(i).write(pattern_byte(seed, i)) };
    }
}

/// The first offset in `[p, p + len)` that does not hold the pattern of `seed`.
///
/// # Safety
///
/// `p` is valid for reads of `len` bytes.
pub unsafe fn find_pattern_damage(p: *const u8, len: usize, seed: u64) -> Option<usize> {
    // SAFETY: caller's contract.
    (0..len).find(|&i| unsafe { p.add(i).read() } != pattern_byte(seed, i))
}

#[inline]
fn pattern_byte(seed: u64, i: usize) -> u8 {
    let x = seed ^ (i as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x.rotate_left((i as u32 & 7) * 8) >> 56) as u8 ^ (x >> 29) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_catch_writes_outside() {
        let arena = TestArena::new(100, 7);
        assert_eq!(arena.start() as usize % 4096, 7);
        arena.margins_intact().unwrap();
        // SAFETY: one byte after the region, inside the after-margin.
        unsafe { arena.start().add(100).write(0) };
        assert!(arena.margins_intact().unwrap_err().contains("after"));
        let arena = TestArena::new(100, 0);
        // SAFETY: one byte before the region, inside the before-margin.
        unsafe { arena.start().sub(1).write(0) };
        assert!(arena.margins_intact().unwrap_err().contains("before"));
    }

    #[test]
    fn patterns_differ_by_seed_and_detect_damage() {
        let arena = TestArena::new(64, 0);
        let p = arena.start();
        // SAFETY: 64 bytes inside the region.
        unsafe {
            fill_pattern(p, 64, 1);
            assert_eq!(find_pattern_damage(p, 64, 1), None);
            assert!(find_pattern_damage(p, 64, 2).is_some());
            p.add(40).write(p.add(40).read() ^ 1);
            assert_eq!(find_pattern_damage(p, 64, 1), Some(40));
        }
    }
}
