//! Two hash tables in anonymous mappings (no allocator: they live inside
//! `malloc`): live pointer → block id, and thread → thread number.
//!
//! Open addressing with linear probing; deletion shifts the following
//! entries back (no tombstones), so probe sequences stay short under heavy
//! churn. The pointer table doubles (rehash into a new mapping) at half load.

use core::ptr::NonNull;

use malloc_shim::sys;

#[derive(Clone, Copy)]
#[repr(C)]
struct Entry {
    /// 0: empty.
    key: usize,
    value: u64,
}

/// An insertion that found no room (a fixed table is full, or a growing
/// one could not map a bigger array).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A map from non-zero `usize` keys to `u64` values.
pub struct Table {
    entries: NonNull<Entry>,
    /// A power of two.
    cap: usize,
    len: usize,
    /// Never grow (the thread table): inserts into a full table fail.
    fixed: bool,
}

// SAFETY: the mapping is owned by the value; used under the recorder's lock.
unsafe impl Send for Table {}

#[inline]
fn hash(key: usize) -> usize {
    // Fibonacci hashing of the pointer without its (always zero) low bits.
    ((key as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize
}

impl Table {
    /// An empty table of `cap` entries (a power of two).
    pub fn new(cap: usize, fixed: bool) -> Option<Table> {
        debug_assert!(cap.is_power_of_two());
        let p = sys::map(cap.checked_mul(size_of::<Entry>())?, true)?;
        Some(Table {
            entries: p.cast(),
            cap,
            len: 0,
            fixed,
        })
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no entry is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(&self, i: usize) -> *mut Entry {
        // SAFETY: callers pass `i < cap` (masked).
        unsafe { self.entries.as_ptr().add(i & (self.cap - 1)) }
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn find(&self, key: usize) -> usize {
        let mut i = hash(key) & (self.cap - 1);
        loop {
            // SAFETY: `at` masks the index into the mapping.
            let k = unsafe { (*self.at(i)).key };
            if k == key || k == 0 {
                return i;
            }
            i = (i + 1) & (self.cap - 1);
        }
    }

    /// The value of `key`.
    ///
    /// # Time complexity
    ///
    /// O(1) expected.
    pub fn get(&self, key: usize) -> Option<u64> {
        // SAFETY: `find` returns a slot index inside the mapping.
        let e = unsafe { *self.at(self.find(key)) };
        (e.key == key).then_some(e.value)
    }

    /// Sets `key` to `value`; returns the previous value. False (and no
    /// change) if the table is fixed and full, or cannot grow.
    ///
    /// # Time complexity
    ///
    /// O(1) expected, amortised over doublings.
    pub fn insert(&mut self, key: usize, value: u64) -> Result<Option<u64>, Full> {
        debug_assert!(key != 0);
        let i = self.find(key);
        let e = self.at(i);
        // SAFETY: inside the mapping.
        unsafe {
            if (*e).key == key {
                let old = (*e).value;
                (*e).value = value;
                return Ok(Some(old));
            }
        }
        // A new key: keep at least one empty slot, so that probes end.
        let room = self.len + 2 <= self.cap;
        if self.fixed {
            if !room {
                return Err(Full);
            }
        } else if (self.len + 1) * 2 > self.cap && !self.grow() && !room {
            return Err(Full);
        }
        self.insert_new(key, value)
    }

    fn insert_new(&mut self, key: usize, value: u64) -> Result<Option<u64>, Full> {
        let i = self.find(key);
        // SAFETY: `find` stops at an empty slot (the table is never full).
        unsafe { self.at(i).write(Entry { key, value }) };
        self.len += 1;
        Ok(None)
    }

    fn grow(&mut self) -> bool {
        let Some(cap) = self.cap.checked_mul(2) else {
            return false;
        };
        let Some(mut bigger) = Table::new(cap, false) else {
            return false;
        };
        for i in 0..self.cap {
            // SAFETY: inside the old mapping.
            let e = unsafe { *self.at(i) };
            if e.key != 0 {
                let _ = bigger.insert_new(e.key, e.value);
            }
        }
        core::mem::swap(self, &mut bigger);
        true // `bigger` (the old mapping) is unmapped here
    }

    /// Removes `key`, returning its value.
    ///
    /// # Time complexity
    ///
    /// O(1) expected (backward-shift deletion).
    pub fn remove(&mut self, key: usize) -> Option<u64> {
        let mut hole = self.find(key);
        // SAFETY: inside the mapping.
        let e = unsafe { *self.at(hole) };
        if e.key != key {
            return None;
        }
        let mask = self.cap - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            // SAFETY: inside the mapping.
            let next = unsafe { *self.at(j) };
            if next.key == 0 {
                break;
            }
            let home = hash(next.key) & mask;
            // Move `next` into the hole unless its home lies cyclically in
            // (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                // SAFETY: both slots inside the mapping.
                unsafe { self.at(hole).write(next) };
                hole = j;
            }
        }
        // SAFETY: inside the mapping.
        unsafe { self.at(hole).write(Entry { key: 0, value: 0 }) };
        self.len -= 1;
        Some(e.value)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: our mapping, of this size.
        unsafe { sys::unmap(self.entries.as_ptr().cast(), self.cap * size_of::<Entry>()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_hash_map_under_churn() {
        let mut t = Table::new(16, false).unwrap();
        let mut m = HashMap::new();
        let mut x = 99u64;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Keys like heap pointers: 16-aligned, clustered.
            let key = 0x5555_0000_0000usize + ((x >> 20) as usize % 50_000) * 16;
            if x % 5 < 3 {
                assert_eq!(t.insert(key, x).unwrap(), m.insert(key, x));
            } else {
                assert_eq!(t.remove(key), m.remove(&key));
            }
            assert_eq!(t.len(), m.len());
        }
        for (k, v) in &m {
            assert_eq!(t.get(*k), Some(*v));
        }
        assert_eq!(t.get(12345 * 16), None);
    }

    #[test]
    fn a_fixed_table_refuses_when_full() {
        let mut t = Table::new(8, true).unwrap();
        let mut n = 0;
        for k in 1..=100usize {
            if t.insert(k * 16, k as u64).is_ok() {
                n += 1;
            }
        }
        assert_eq!(n, 7, "one slot stays empty so lookups end");
        assert_eq!(t.get(16), Some(1));
        assert!(t.remove(16).is_some());
        assert!(t.insert(5000 * 16, 1).is_ok());
    }
}
