//! The out-of-band record of allocated blocks: the A and Q bitmaps that hold
//! one [quad code](crate::quad) per 64 bytes of the managed range.
//!
//! ```text
//!   quad index qi = (g - base_g) / 4            (g: absolute granule)
//!   A word qi / 16, nibble qi % 16 : the code's low 4 bits
//!   Q word qi / 64, bit    qi % 64 : the code's bit 4
//! ```
//!
//! Invariant (checked by [`crate::Buddy::check`]): the code of every quad
//! is exactly the one the allocated blocks determine, that is
//! - `START[code][i] == k` for `k` in `4..=8` iff an allocated block of
//!   order `k` starts at granule `i` of the quad (for `k >= 6`, `i == 0` and
//!   the code is `exact(k)`), `== 9` iff one of order `>= 9` does (then the
//!   code is `WIDE` and the Q bits of the next five quads hold its order - 9);
//! - the code is `DIGIT` iff the quad is one of those five and its bit is 1;
//! - every other quad (free, interior, outside the managed range) is `FREE`.

use crate::quad::{
    self, CLEAR, Code, FREE, INVALID, ORDER_DIGITS, SET4, SET5, START, STARTS, WIDE,
    WIDE_MIN_ORDER, at, exact,
};

/// The largest order for which [`AllocMap::no_start_in`] answers from the
/// bitmaps (a region of 64 quads: four A words, one Q word).
pub(crate) const WORD_ORDER: u32 = 12;

/// `NIBBLES[log_n]`: the low `4 * 2^log_n` bits.
const NIBBLES: [u64; 5] = [0xF, 0xFF, 0xFFFF, 0xFFFF_FFFF, u64::MAX];

/// The A and Q bitmaps, inside the arena.
///
/// `Copy` so that a hot loop can read the bitmaps through a copy in
/// registers (the compiler cannot tell that writes into blocks leave the
/// state, which lives in the arena too, unchanged); writes go through the
/// allocator's own map.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AllocMap {
    /// A bitmap: `u64` words, 16 nibbles each.
    a: *mut u64,
    /// Q bitmap: `u64` words, 64 bits each.
    q: *mut u64,
    /// Absolute granule number of quad 0's first granule (a multiple of 256:
    /// a Q word covers an aligned 4 KiB, which `no_start_in` relies on).
    base_g: usize,
    /// Quads covered: `16 * a_words` (the Q bitmap covers at least as many).
    quads: usize,
}

impl AllocMap {
    /// The bitmaps at `a` (`a_words` words) and `q` (`a_words.div_ceil(4)`
    /// words), which must be zero, covering granules from `base_g`.
    ///
    /// # Safety
    ///
    /// Both are valid for reads and writes, 8-byte aligned, zeroed, and used
    /// by nothing else for as long as this map is used.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub(crate) unsafe fn new(a: *mut u64, a_words: usize, q: *mut u64, base_g: usize) -> Self {
        AllocMap {
            a,
            q,
            base_g,
            quads: a_words * 16,
        }
    }

    /// Quads covered by the bitmaps.
    pub(crate) fn quads(&self) -> usize {
        self.quads
    }

    /// The code of the quad holding granule `g` (`FREE` if `g` is not
    /// covered, which a consistent caller never asks).
    ///
    /// # Time complexity
    ///
    /// O(1): two word loads.
    #[inline(always)]
    pub(crate) fn code(&self, g: usize) -> Code {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        if qi >= self.quads {
            debug_assert!(false, "granule {g:#x} outside the bitmaps");
            return FREE;
        }
        // SAFETY: just checked.
        unsafe { self.code_of_quad(qi) }
    }

    /// The code of quad `qi`.
    ///
    /// # Safety
    ///
    /// `qi < self.quads`.
    #[inline(always)]
    unsafe fn code_of_quad(&self, qi: usize) -> Code {
        // SAFETY: `qi < quads = 16 * a_words` (caller), so word `qi / 16` of
        // A and word `qi / 64 < a_words.div_ceil(4)` of Q exist (contract of
        // `new`).
        let (aw, qw) = unsafe { (self.a.add(qi >> 4).read(), self.q.add(qi >> 6).read()) };
        let nibble = (aw >> ((qi & 15) << 2)) & 15;
        let q = (qw >> (qi & 63)) & 1;
        (nibble | (q << 4)) as Code
    }

    /// Writes the code of the quad holding granule `g`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn set_code(&mut self, g: usize, c: Code) {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        if qi >= self.quads || c >= quad::NUM_CODES {
            debug_assert!(false, "code {c} at granule {g:#x}");
            return;
        }
        let shift = (qi & 15) << 2;
        let bit = 1u64 << (qi & 63);
        // SAFETY: as in `code`; `&mut self` makes this the only access.
        unsafe {
            let a = self.a.add(qi >> 4);
            a.write((a.read() & !(15 << shift)) | (u64::from(c & 15) << shift));
            let q = self.q.add(qi >> 6);
            let w = q.read();
            q.write(if c >= 16 { w | bit } else { w & !bit });
        }
    }

    /// True when an allocated block starts at granule `g`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn has_start(&self, g: usize) -> bool {
        START[at(self.code(g), g)] != 0
    }

    /// True when no allocated block starts inside the naturally aligned
    /// region of order `k` at granule `g`, for `k <= WORD_ORDER` (a region of
    /// at most 64 quads, so at most 4 A words are tested).
    ///
    /// # Safety
    ///
    /// `4 <= k <= WORD_ORDER`, and the region lies inside the granules the
    /// bitmaps cover (for instance inside the managed range).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) unsafe fn no_start_in(&self, g: usize, k: u32) -> bool {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        // n = 2^(k-6) quads, aligned to n (the base is aligned to 64 quads).
        let log_n = k.wrapping_sub(6);
        debug_assert!(
            (4..=WORD_ORDER).contains(&k)
                && qi < self.quads
                && (k < 6 || (self.quads - qi) >> log_n != 0 && qi.trailing_zeros() >= log_n),
            "region {g:#x} of order {k}"
        );
        if k <= 5 {
            // SAFETY: `qi < quads` (caller).
            let c = unsafe { self.code_of_quad(qi) };
            // Order 4: granule g; order 5: the pair at g.
            return START[at(c, g)] | (if k == 5 { START[at(c, g + 1)] } else { 0 }) == 0;
        }
        // A quad's code is FREE iff its nibble is zero (no Q = 1 code but
        // DIGIT has a zero nibble, and a DIGIT quad lies inside an allocated
        // block whose start is in any aligned region holding the DIGIT):
        // only the A bitmap is read. The nibbles lie in one A word (n <= 16)
        // or in n / 16 whole A words.
        if log_n <= 4 {
            // SAFETY: `qi < quads` (caller): the word exists (see `code`).
            let a = unsafe { self.a.add(qi >> 4).read() } >> ((qi & 15) << 2);
            a & NIBBLES[log_n as usize] == 0
        } else {
            let mut any = 0;
            for w in 0..1usize << (log_n - 4) {
                // SAFETY: `qi + n <= quads` (caller): the words
                // `qi / 16 .. (qi + n) / 16` exist.
                any |= unsafe { self.a.add((qi >> 4) + w).read() };
            }
            any == 0
        }
    }

    /// [`AllocMap::no_start_in`] of two regions of the same order `k` at
    /// once (both true), the order decided once for both: the safe unlink's
    /// test of a free block's two neighbours. `g == h` is allowed (a block
    /// with one neighbour tests it twice).
    ///
    /// # Safety
    ///
    /// As for [`AllocMap::no_start_in`], for both regions.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) unsafe fn no_start_in_both(&self, g: usize, h: usize, k: u32) -> bool {
        let qg = g.wrapping_sub(self.base_g) >> 2;
        let qh = h.wrapping_sub(self.base_g) >> 2;
        let log_n = k.wrapping_sub(6);
        if k <= 5 {
            // SAFETY: `qg, qh < quads` (caller).
            let (cg, ch) = unsafe { (self.code_of_quad(qg), self.code_of_quad(qh)) };
            // Order 4: the bit of granule g; order 5: those of the pair at
            // g (g even).
            let pair = (1u8 << (k - 3)) - 1;
            let s = (STARTS[cg as usize & 31] >> (g & 3)) | (STARTS[ch as usize & 31] >> (h & 3));
            return s & pair == 0;
        }
        if log_n <= 4 {
            // SAFETY: `qg, qh < quads` (caller): the words exist.
            let (a, b) = unsafe { (self.a.add(qg >> 4).read(), self.a.add(qh >> 4).read()) };
            ((a >> ((qg & 15) << 2)) | (b >> ((qh & 15) << 2))) & NIBBLES[log_n as usize] == 0
        } else {
            let mut any = 0;
            for w in 0..1usize << (log_n - 4) {
                // SAFETY: both regions lie in the bitmaps (caller).
                any |=
                    unsafe { self.a.add((qg >> 4) + w).read() | self.a.add((qh >> 4) + w).read() };
            }
            any == 0
        }
    }

    /// The order of the allocated block that starts at granule `g`, or 0 if
    /// none does.
    ///
    /// # Time complexity
    ///
    /// O(1): the two words of `g`'s quad (a `WIDE` block's order digits are
    /// in the same Q word).
    #[inline(always)]
    pub(crate) fn start_order(&self, g: usize) -> u32 {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        if qi >= self.quads {
            debug_assert!(false, "granule {g:#x} outside the bitmaps");
            return 0;
        }
        // SAFETY: as in `code`.
        let (aw, qw) = unsafe { (self.a.add(qi >> 4).read(), self.q.add(qi >> 6).read()) };
        let q = qw >> (qi & 63);
        let c = ((aw >> ((qi & 15) << 2)) & 15) | ((q & 1) << 4);
        let t = u32::from(START[at(c as Code, g)]);
        if t == WIDE_MIN_ORDER {
            // A WIDE start is aligned to 8 quads: its digits are bits
            // 1..=5 above it in the same word.
            t + (q >> 1) as u32 % (1 << ORDER_DIGITS)
        } else {
            t
        }
    }

    /// If an allocated block starts at granule `g`, forgets it and returns
    /// its order; otherwise changes nothing and returns 0. The same as
    /// `start_order` then `clear_allocated`, with one read of each word.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn take_start(&mut self, g: usize) -> u32 {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        if qi >= self.quads {
            debug_assert!(false, "granule {g:#x} outside the bitmaps");
            return 0;
        }
        // SAFETY: as in `code`; `&mut self` makes this the only access.
        unsafe {
            let (a, q) = (self.a.add(qi >> 4), self.q.add(qi >> 6));
            let (aw, qw) = (a.read(), q.read());
            let (a_shift, q_shift) = ((qi & 15) << 2, qi & 63);
            let c = ((aw >> a_shift) & 15) | (((qw >> q_shift) & 1) << 4);
            let i = at(c as Code, g);
            let t = u32::from(START[i]);
            if t == 0 {
                return 0;
            }
            // CLEAR is FREE for the start of a block of order >= 6.
            let n = u64::from(CLEAR[i]);
            let wide = t == WIDE_MIN_ORDER;
            a.write((aw & !(15 << a_shift)) | ((n & 15) << a_shift));
            let q_mask = if wide { 0x3F } else { 1 };
            q.write((qw & !(q_mask << q_shift)) | ((n >> 4) << q_shift));
            if wide {
                t + (qw >> (q_shift + 1)) as u32 % (1 << ORDER_DIGITS)
            } else {
                t
            }
        }
    }

    /// Records an allocated block of order `k` at granule `g` (which lies in
    /// a free block: no start, no digit).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn mark_allocated(&mut self, g: usize, k: u32) {
        match k {
            4 | 5 => {
                let c = self.code(g);
                let n = if k == 4 {
                    SET4[at(c, g)]
                } else {
                    SET5[at(c, g)]
                };
                debug_assert!(n != INVALID, "order {k} at {g:#x} over code {c}");
                if n != INVALID {
                    self.set_code(g, n);
                }
            }
            6..=8 => {
                debug_assert_eq!(self.code(g), FREE);
                self.set_code(g, exact(k));
            }
            _ => {
                debug_assert_eq!(self.code(g), FREE);
                self.set_wide(g, 1 | ((k - WIDE_MIN_ORDER) << 1) as u64);
            }
        }
    }

    /// Forgets the allocated block of order `k` at granule `g`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn clear_allocated(&mut self, g: usize, k: u32) {
        match k {
            4 | 5 => {
                let c = self.code(g);
                let n = CLEAR[at(c, g)];
                debug_assert!(n != INVALID, "clear at {g:#x} of code {c}");
                if n != INVALID {
                    self.set_code(g, n);
                }
            }
            6..=8 => self.set_code(g, FREE),
            _ => self.set_wide(g, 0),
        }
    }

    /// Writes the nibble of `g`'s quad (`WIDE` if `bits` is not 0, else 0)
    /// and the six Q bits from it: its own (bit 0 of `bits`) and the order
    /// digits (bits 1..=5). `g` starts a block of order >= 9.
    #[inline(always)]
    fn set_wide(&mut self, g: usize, bits: u64) {
        let qi = g.wrapping_sub(self.base_g) >> 2;
        if qi >= self.quads || !qi.is_multiple_of(8) {
            debug_assert!(false, "wide block at granule {g:#x}");
            return;
        }
        let nibble = if bits == 0 { 0 } else { u64::from(WIDE & 15) };
        let a_shift = (qi & 15) << 2;
        let q_shift = qi & 63;
        // SAFETY: `qi < quads` (see `code`); `qi % 8 == 0`, so the six Q
        // bits lie in word `qi / 64`.
        unsafe {
            let a = self.a.add(qi >> 4);
            a.write((a.read() & !(15 << a_shift)) | (nibble << a_shift));
            let q = self.q.add(qi >> 6);
            q.write((q.read() & !(0x3F << q_shift)) | (bits << q_shift));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::granules;

    /// `no_start_in_both` answers as two `no_start_in`, on bitmaps holding
    /// allocated blocks of every order from 4 to 12.
    #[test]
    fn no_start_in_both_is_two_no_start_in() {
        // 16 KiB granules (64 regions of order 12), base at granule 256.
        let a_words = 16 * 16;
        let mut a = vec![0u64; a_words];
        let mut q = vec![0u64; a_words.div_ceil(4)];
        let base_g = 256;
        let end = base_g + a_words * 16 * 4;
        // SAFETY: zeroed buffers of the sizes `new` asks, kept alive below.
        let mut map = unsafe { AllocMap::new(a.as_mut_ptr(), a_words, q.as_mut_ptr(), base_g) };
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut g = base_g;
        while g < end {
            let k = 4 + (next() % 9) as u32;
            let k = (4..=k).rev().find(|&k| g % granules(k) == 0).unwrap_or(4);
            if next() % 2 == 0 {
                map.mark_allocated(g, k);
            }
            g += granules(k);
        }
        for k in 4..=WORD_ORDER {
            let n = granules(k);
            let regions = (end - base_g) / n;
            for _ in 0..4000 {
                let g = base_g + (next() as usize % regions) * n;
                let h = base_g + (next() as usize % regions) * n;
                // SAFETY: aligned regions inside the bitmaps.
                unsafe {
                    assert_eq!(
                        map.no_start_in_both(g, h, k),
                        map.no_start_in(g, k) && map.no_start_in(h, k),
                        "order {k} at {g:#x} and {h:#x}"
                    );
                }
            }
        }
        drop((a, q));
    }
}
